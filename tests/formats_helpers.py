"""What test_formats_pir.py and test_formats_onnx.py share: the real models' folder, Paddle
Inference on a converted model, numpy references for the per-op checks, and a writer of
Paddle's save_combine files that does not use the converter's reader."""
import math
import os
import struct

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = os.environ.get("OCRSLIM_MODELS", os.path.join(ROOT, "..", "shared", "models"))


def real_model(*parts):
    """A path under the real-models folder (OCRSLIM_MODELS), or skip the test when it is missing."""
    path = os.path.join(MODELS, *parts)
    if not os.path.exists(path):
        pytest.skip(f"{path} not found: set OCRSLIM_MODELS to the folder of real PP-OCR models (../shared/models)")
    return path


def golden(name):
    with np.load(real_model("golden", f"{name}.golden.npz")) as g:
        return dict(g)


def native(model_dir, ir_optim=True):
    """Paddle Inference with its native CPU kernels (oneDNN off), 1 thread: x -> list of outputs."""
    from paddle import inference
    config = inference.Config(*(os.path.join(model_dir, n) for n in ("inference.pdmodel", "inference.pdiparams")))
    config.disable_gpu()
    config.disable_mkldnn()
    config.set_cpu_math_library_num_threads(1)
    config.switch_ir_optim(ir_optim)
    config.disable_glog_info()
    predictor = inference.create_predictor(config)
    inp = predictor.get_input_handle(predictor.get_input_names()[0])
    outs = [predictor.get_output_handle(n) for n in predictor.get_output_names()]

    def run(x):
        inp.reshape(x.shape)
        inp.copy_from_cpu(np.ascontiguousarray(x, np.float32))
        predictor.run()
        return [o.copy_to_cpu() for o in outs]
    return run


def program_ops(model_dir):
    """[(op type, {slot: [names]} of inputs)] and the persistable names of a saved program."""
    from ocrslim.model_check import read_program
    path = os.path.join(model_dir, "inference.pdmodel")
    with open(path, "rb") as f:
        program = read_program(f.read(), path)
    block = program.blocks[0]
    ops = [(op.type, {i.parameter: list(i.arguments) for i in op.inputs}) for op in block.ops]
    return ops, {v.name for v in block.vars if v.persistable}


def conv_biases(model_dir):
    """Names of the persistable 1-D tensors added along axis 1 (Paddle 2.x's conv bias)."""
    from ocrslim.model_check import read_program
    path = os.path.join(model_dir, "inference.pdmodel")
    with open(path, "rb") as f:
        block = read_program(f.read(), path).blocks[0]
    dims = {v.name: list(v.type.lod_tensor.tensor.dims) for v in block.vars if v.persistable}
    found = []
    for op in block.ops:
        if op.type == "elementwise_add" and any(a.name == "axis" and a.i == 1 for a in op.attrs):
            y = [i.arguments[0] for i in op.inputs if i.parameter == "Y"][0]
            found += [y] if len(dims.get(y, [])) == 1 else []
    return found


def feed_shape(model_dir):
    from ocrslim.deploy.runtime import paddle_input_shape
    return paddle_input_shape(os.path.join(model_dir, "inference.pdmodel"))


# ---- a save_combine (.pdiparams) writer, from the format itself ----

FP_CODES = {np.dtype(np.float32): 5, np.dtype(np.int64): 3, np.dtype(np.int32): 2}


def varint(n):
    out = b""
    while True:
        byte, n = n & 0x7F, n >> 7
        out += bytes([byte | (0x80 if n else 0)])
        if not n:
            return out


def write_pdiparams(path, arrays):
    """Each array as save_combine writes it: uint32 0, uint64 0 (no LoD), uint32 0, int32 size of
    a TensorDesc {1: data type, 2: dims (proto2, unpacked)}, the TensorDesc, the raw data."""
    with open(path, "wb") as f:
        for a in arrays:
            desc = b"\x08" + varint(FP_CODES[a.dtype]) + b"".join(b"\x10" + varint(d) for d in a.shape)
            f.write(struct.pack("<IQIi", 0, 0, 0, len(desc)) + desc + np.ascontiguousarray(a).tobytes())


# ---- numpy references (float64) ----

def conv2d(x, w, stride=(1, 1), pad=(0, 0, 0, 0), dilation=(1, 1), groups=1):
    """NCHW convolution; pad = (top, bottom, left, right)."""
    x = np.pad(x.astype(np.float64), ((0, 0), (0, 0), pad[:2], pad[2:]))
    n, c, h, wd = x.shape
    oc, icg, kh, kw = w.shape
    oh = (h - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.zeros((n, oc, oh, ow))
    ocg = oc // groups
    for g in range(groups):
        xs, ws = x[:, g * icg:(g + 1) * icg], w[g * ocg:(g + 1) * ocg].astype(np.float64)
        for i in range(kh):
            for j in range(kw):
                r, s = i * dilation[0], j * dilation[1]
                patch = xs[:, :, r:r + stride[0] * (oh - 1) + 1:stride[0], s:s + stride[1] * (ow - 1) + 1:stride[1]]
                out[:, g * ocg:(g + 1) * ocg] += np.einsum("nchw,oc->nohw", patch, ws[:, :, i, j])
    return out


def conv2d_transpose(x, w, stride=(1, 1), pad=(0, 0, 0, 0), output_padding=(0, 0), groups=1):
    """Transposed convolution, w [in, out / groups, kh, kw]; pad = (top, bottom, left, right)."""
    n, c, h, wd = x.shape
    ic, ocg, kh, kw = w.shape
    full = np.zeros((n, ocg * groups, (h - 1) * stride[0] + kh + output_padding[0],
                     (wd - 1) * stride[1] + kw + output_padding[1]))
    icg = ic // groups
    for g in range(groups):
        xs, ws = x[:, g * icg:(g + 1) * icg].astype(np.float64), w[g * icg:(g + 1) * icg].astype(np.float64)
        for i in range(kh):
            for j in range(kw):
                full[:, g * ocg:(g + 1) * ocg, i:i + stride[0] * (h - 1) + 1:stride[0],
                     j:j + stride[1] * (wd - 1) + 1:stride[1]] += np.einsum("nchw,co->nohw", xs, ws[:, :, i, j])
    return full[:, :, pad[0]:full.shape[2] - pad[1], pad[2]:full.shape[3] - pad[3]]


def pool2d(x, kernel, stride, pad=(0, 0, 0, 0), kind="max", exclusive=True):
    """Max or average pooling; average divides by the input cells in the window when exclusive."""
    n, c, h, w = x.shape
    fill = -np.inf if kind == "max" else 0.0
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), pad[:2], pad[2:]), constant_values=fill)
    valid = np.pad(np.ones((h, w)), (pad[:2], pad[2:]))
    oh = (h + pad[0] + pad[1] - kernel[0]) // stride[0] + 1
    ow = (w + pad[2] + pad[3] - kernel[1]) // stride[1] + 1
    out = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            rows = slice(i * stride[0], i * stride[0] + kernel[0])
            cols = slice(j * stride[1], j * stride[1] + kernel[1])
            window = xp[:, :, rows, cols]
            if kind == "max":
                out[:, :, i, j] = window.max(axis=(2, 3))
            else:
                count = valid[rows, cols].sum() if exclusive else kernel[0] * kernel[1]
                out[:, :, i, j] = window.sum(axis=(2, 3)) / count
    return out


def bilinear_half_pixel(x, out_h, out_w):
    """Bilinear resize with half-pixel centres, source coordinates clamped at 0 (Paddle's
    align_corners=False, align_mode=0)."""
    n, c, h, w = x.shape

    def taps(out, size):
        src = np.maximum((np.arange(out) + 0.5) * size / out - 0.5, 0)
        lo = np.minimum(np.floor(src).astype(int), size - 1)
        return lo, np.minimum(lo + 1, size - 1), src - lo
    y0, y1, fy = taps(out_h, h)
    x0, x1, fx = taps(out_w, w)
    x = x.astype(np.float64)
    top = x[:, :, y0][..., x0] * (1 - fx) + x[:, :, y0][..., x1] * fx
    bottom = x[:, :, y1][..., x0] * (1 - fx) + x[:, :, y1][..., x1] * fx
    return top * (1 - fy)[:, None] + bottom * fy[:, None]


def erf(x):
    return np.vectorize(math.erf)(np.asarray(x, np.float64))


def softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def hardsigmoid(x, slope, offset):
    return np.clip(x * slope + offset, 0, 1)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))
