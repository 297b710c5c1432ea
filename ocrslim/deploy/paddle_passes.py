"""Rewrites that make an int8 Paddle program fast in Paddle Inference (oneDNN).

ACT saves a training-shaped program. Paddle Inference's oneDNN passes fuse
conv + bias + activation into one int8 kernel, but PP-LCNetV3 (the PP-OCRv4
backbone) puts a learnable affine block (x * s + t, two scalar parameters)
between every conv and its activation and another one after it, so nothing
fuses and every tensor is written and read five more times in float. The
DB head's two stride-2 transposed convs run in float as oneDNN
deconvolutions, about 1 ms per det image slower than the 1x1 convs below.

The rewrites (all but affine_into_pointwise compute the same function up to
float rounding; a test checks it on the FP32 models):
  strip_observers   drop PaddleSlim's observer-only quantizers, which the
                    executor ignores too (its doc says which ones it keeps);
  fold_affine       conv -> +bias -> *s -> +t  becomes  conv(W*s) -> +(b*s+t),
                    so oneDNN fuses conv + bias + hard_swish;
  merge_affine      the affine after an activation (*a, +c) becomes one
                    `scale` op: one pass over the tensor instead of two;
  affine_into_pointwise
                    such a `scale` op feeding a 1x1 conv moves into that
                    conv's weights and bias (exact in float; in int8 only
                    where c is under half a quantization step, see its doc);
  se_residual       x + x * gate  becomes  x * (gate + 1) (the neck's SE
                    blocks): one pass over the feature map instead of two;
  deconv_pairs      two chained kernel-2 stride-2 transposed convs (+bias,
                    batch norm, relu/sigmoid) become two 1x1 convs and one
                    pixel_shuffle(4): each input pixel owns its own 4x4 output
                    block, so nothing overlaps.
Each is a function of a paddle_graph.PaddleGraph that returns how many
rewrites it made; PASSES holds them in the order optimize() applies them.
The int8 weights and the trained activation scales are kept (a folded scalar
only rescales a weight's scale). On the demo det model at 544x768, in one
process, int8 went from 26.5 to 20.9 ms with the first four (FP32
onnxruntime: 31.0 ms); the last two and the runtime settings in
runtime.paddle_predictor took it to about 18.5 ms.
"""
import functools
import logging
import os
import shutil

import numpy as np

from .deconv import pair_as_pointwise
from .paddle_graph import PaddleGraph, is_observer, qmax, static_mode

log = logging.getLogger("ocrslim")

CONVS = ("conv2d", "depthwise_conv2d")
# affine_into_pointwise moves an affine offset c out of an int8 quantizer's
# input only when |c| is at most this many quantization steps
MAX_SHIFT = 0.5


def strip_observers(p, keep_int8_conv_inputs=False):
    """Drop PaddleSlim's observer Q/DQ pairs; returns how many pairs went.

    PaddleSlim puts a quantize_linear(only_observer=True) + dequantize_linear
    pair on the output of nearly every op just to record its range (rec: 262
    of 301 quantizers). The training executor runs them as identities, so the
    accuracy run.py reports is "quantized ops int8, the rest float". Paddle
    Inference's oneDNN passes read them as real scales and also quantize the
    ops the recipe kept in float (depthwise convs, keep_float convs): rec
    accuracy fell from 0.767 to 0.700. Removing them gives the executor's
    accuracy.

    keep_int8_conv_inputs: an observer on the Input of a conv with int8
    weights becomes a real quantizer instead (det: the three FPN convs after
    an add), so oneDNN runs that conv in int8 too: 1 ms of 25 on the demo
    det model, with the same hmean and rec accuracy. The ONNX path does not
    use it: it rebuilds quantizers from what the executor does.
    """
    drop, rename = [], {}
    for op in list(p.ops):
        if not is_observer(op):
            continue
        dequants = p.readers(op.output("Y")[0])
        if not all(d.type == "dequantize_linear" for d in dequants) or \
                any(d.output("Y")[0] in p.fetch_names() for d in dequants):
            continue  # not the observer pattern we know, or a fetched output: leave it
        if keep_int8_conv_inputs and any(_int8_conv_input(p, r, d.output("Y")[0])
                                         for d in dequants for r in p.readers(d.output("Y")[0])):
            for q in [op] + dequants:
                p.set_attr(q, "only_observer", False)
            continue
        drop.append(op)
        for d in dequants:
            drop.append(d)
            rename[d.output("Y")[0]] = op.input("X")[0]
    pairs = sum(1 for op in drop if op.type == "quantize_linear")
    for name in rename:  # an observer pair may read another one's output: follow the chain
        while rename[name] in rename:
            rename[name] = rename[rename[name]]
    p.rename_inputs(rename)
    p.remove(drop)  # the removed ops' handles are invalid from here on
    return pairs


def _int8_conv_input(p, op, name):
    """True when `name` is the Input of a conv whose weights are quantized in the program."""
    if op.type not in CONVS or op.input("Input") != [name]:
        return False
    weight = p.producer(op.input("Filter")[0])
    return weight is not None and weight.type == "dequantize_linear"


def _int8_weight(p, conv):
    """The dequantize_linear op that makes a conv's int8 weight, or None for a float weight."""
    dequant = p.producer(conv.input("Filter")[0])
    return dequant if dequant is not None and dequant.type == "dequantize_linear" else None


def _can_scale_weight(p, conv):
    """True when the conv's weight (or its codes and scale) belongs to this conv alone."""
    dequant = _int8_weight(p, conv)
    if dequant is not None:
        return len(p.readers(dequant.input("X")[0])) == 1 and len(p.readers(dequant.input("Scale")[0])) == 1
    weight = conv.input("Filter")[0]
    return p.is_param(weight) and len(p.readers(weight)) == 1


def _scale_weight(p, conv, s):
    """Multiply a conv's weight by the scalar s (check _can_scale_weight first); int8 weights keep
    their codes (the scale absorbs |s|)."""
    dequant = _int8_weight(p, conv)
    if dequant is not None:
        codes, scale = dequant.input("X")[0], dequant.input("Scale")[0]
        p.set_value(scale, (p.value(scale) * abs(s)).astype(p.value(scale).dtype))
        if s < 0:
            p.set_value(codes, (-p.value(codes)).astype(p.value(codes).dtype))
    else:
        weight = conv.input("Filter")[0]
        p.set_value(weight, (p.value(weight) * s).astype(np.float32))


def fold_affine(p):
    """conv -> +bias[C] -> *s -> +t  into  conv(W*s) -> +(bias*s + t). Returns the count."""
    count = 0
    for conv in [op for op in p.ops if op.type in CONVS]:
        add_bias = p.only_reader(conv.output("Output")[0], "elementwise_add")
        if add_bias is None or not p.is_param(add_bias.input("Y")[0]):
            continue
        mul = p.only_reader(add_bias.output("Out")[0], "elementwise_mul")
        if mul is None or p.scalar(mul) is None:
            continue
        add_t = p.only_reader(mul.output("Out")[0], "elementwise_add")
        if add_t is None or p.scalar(add_t) is None or add_t.output("Out")[0] in p.fetch_names():
            continue  # (a fetched output keeps its name)
        s, t = p.scalar(mul), p.scalar(add_t)
        bias = add_bias.input("Y")[0]
        if not _can_scale_weight(p, conv) or len(p.readers(bias)) != 1:
            continue
        _scale_weight(p, conv, s)
        p.set_value(bias, (p.value(bias).astype(np.float64) * s + t).astype(np.float32))
        p.rename_readers(add_t.output("Out")[0], add_bias.output("Out")[0])
        p.remove([mul, add_t])
        count += 1
    return count


def fold_batch_norm(p):
    """conv -> [+bias] -> batch_norm  into  conv(W*k) -> +(bias*k + beta - mean*k), with
    k = gamma / sqrt(var + eps): exact in FP32 with BN in inference mode. A transposed conv's
    weight scales along its output axis (1). Not in PASSES (Paddle Inference fuses conv + BN
    itself): pruning's fine-tuning runs it first, so that training and eval normalize alike
    (ACT trains BN on batch statistics, and after pruning the stored ones no longer fit).
    Returns the count."""
    count = 0
    for bn in [op for op in p.ops if op.type == "batch_norm"]:
        x, out = bn.input("X")[0], bn.output("Y")[0]
        add, conv = None, p.producer(x)
        if conv is not None and conv.type == "elementwise_add" and p.is_param(conv.input("Y")[0]):
            add, conv = conv, p.producer(conv.input("X")[0])
        if conv is None or conv.type not in CONVS + ("conv2d_transpose",) or len(p.readers(x)) != 1:
            continue
        weight = conv.input("Filter")[0]
        if not p.is_param(weight) or len(p.readers(weight)) != 1 or \
                (add is not None and len(p.readers(conv.output("Output")[0])) != 1):
            continue
        gamma, beta, mean, var = (p.value(bn.input(k)[0]).astype(np.float64) for k in ("Scale", "Bias", "Mean", "Variance"))
        k = gamma / np.sqrt(var + bn.attr("epsilon"))
        axis = 1 if conv.type == "conv2d_transpose" else 0
        shape = [1] * 4
        shape[axis] = -1
        p.set_value(weight, (p.value(weight).astype(np.float64) * k.reshape(shape)).astype(np.float32))
        bias = p.value(add.input("Y")[0]).astype(np.float64).ravel() if add is not None else np.zeros_like(k)
        folded = (bias * k + beta - mean * k).astype(np.float32)
        at = p.ops.index(bn)
        if add is not None:
            p.set_value(add.input("Y")[0], folded.reshape(p.value(add.input("Y")[0]).shape))
            p.remove([bn])
            p.rename_readers(out, add.output("Out")[0])
        else:
            name = f"{weight}.bn_folded_bias"
            p.add_param(name, folded)
            p.remove([bn])
            p.insert(at, "elementwise_add", {"X": [x], "Y": [name]}, {"Out": [out]}, {"axis": 1})
        count += 1
    return count


def merge_affine(p):
    """x -> *a -> +c (scalar parameters)  into one  scale(x, a, c). Returns the count."""
    count = 0
    for mul in [op for op in p.ops if op.type == "elementwise_mul"]:
        a = p.scalar(mul)
        if a is None:
            continue
        add = p.only_reader(mul.output("Out")[0], "elementwise_add")
        if add is None or p.scalar(add) is None:
            continue
        c, x, out = p.scalar(add), p.tensor_input(mul), add.output("Out")[0]
        at = p.ops.index(mul)
        p.remove([mul, add])
        p.insert(at, type="scale", inputs={"X": [x]}, outputs={"Out": [out]},
                           attrs={"scale": a, "bias": c, "bias_after_scale": True})
        count += 1
    return count


def se_residual(p):
    """x + x * s  (s: one value per channel, the SE gate)  into  x * (s + 1). Returns the count.

    The neck's residual SE blocks run both passes over a full feature map in
    float; with the 1 added to the [N, C, 1, 1] gate, one pass remains.
    """
    count = 0
    for mul in [op for op in p.ops if op.type == "elementwise_mul"]:
        x, gate = mul.input("X")[0], mul.input("Y")[0]
        shape = p.shape(gate)
        if p.is_param(gate) or len(shape) != 4 or list(shape[2:]) != [1, 1]:
            continue
        add = p.only_reader(mul.output("Out")[0], "elementwise_add")
        if add is None or sorted(add.input("X") + add.input("Y")) != sorted([x, mul.output("Out")[0]]):
            continue
        if add.output("Out")[0] in p.fetch_names():
            continue  # keep the model's output names
        gate1 = gate + ".plus1"
        p.add_var(gate1, shape)
        p.insert(p.ops.index(mul), type="scale", inputs={"X": [gate]}, outputs={"Out": [gate1]},
                           attrs={"scale": 1.0, "bias": 1.0, "bias_after_scale": True})
        p.rename_input(mul, gate, gate1)
        p.rename_readers(add.output("Out")[0], mul.output("Out")[0])
        p.remove([add])
        count += 1
    return count


def _pointwise(p, op):
    """True for an NCHW 1x1 conv without padding: shifting its input by c adds c * sum(W) to every output."""
    if op.type != "conv2d" or any(op.attr("paddings")) or op.attr("padding_algorithm") not in ("EXPLICIT", "VALID"):
        return False
    if op.attr("data_format") not in ("NCHW", "AnyLayout"):
        return False
    shape = p.shape(op.input("Filter")[0])
    return len(shape) == 4 and list(shape[2:]) == [1, 1]


def _weight(p, conv):
    """A conv's weight in float64 (int8 codes times their per-channel scale)."""
    dequant = _int8_weight(p, conv)
    if dequant is None:
        return p.value(conv.input("Filter")[0]).astype(np.float64)
    codes, scale = p.value(dequant.input("X")[0]).astype(np.float64), p.value(dequant.input("Scale")[0])
    shape = [1] * codes.ndim
    if scale.size > 1:
        shape[dequant.attr("quant_axis")] = -1
    return codes * scale.reshape(shape) / qmax(dequant)


def _input_quantizer(p, name):
    """(quantize_linear, its conv readers) when `name` is read only through one per-tensor Q/DQ pair
    whose scale nothing else uses; else None."""
    readers = p.readers(name)
    if len(readers) != 1 or readers[0].type != "quantize_linear" or readers[0].attr("quant_axis") != -1:
        return None
    quant = readers[0]
    dequants = p.readers(quant.output("Y")[0])
    if not dequants or any(d.type != "dequantize_linear" for d in dequants):
        return None
    if {id(op) for op in p.readers(quant.input("Scale")[0])} != {id(op) for op in [quant] + dequants}:
        return None
    return quant, [r for d in dequants for r in p.readers(d.output("Y")[0])]


def affine_into_pointwise(p):
    """scale(h, a, c) -> [quantizer] -> 1x1 conv  into  [quantizer of h] -> conv(W*a) + (bias + c*sum(W)).

    Exact in float. In int8 the quantizer then rounds a*h where it rounded
    a*h + c, on the same grid (its range divided by |a|), so a value moves by
    one step where the two round differently. That is done only where |c| is
    at most MAX_SHIFT steps: in PP-LCNetV3 the affine after a depthwise
    conv's activation, where c is 0.00-0.24 steps (det: 7 of 24 affines).
    oneDNN then writes the depthwise conv's output directly in int8, with no
    float pass for the affine and none to quantize. Demo det: hmean 0.8021 ->
    0.8041, about 1.3 ms less per image; rec: one word of 300 changes.
    """
    count = 0
    for op in [o for o in p.ops if o.type == "scale"]:
        h, y = op.input("X")[0], op.output("Out")[0]
        a, c = op.attr("scale"), op.attr("bias")
        if a == 0 or not op.attr("bias_after_scale") or y in p.fetch_names():
            continue
        found = _input_quantizer(p, y)
        quant, convs = found if found else (None, p.readers(y))
        if not convs or not all(_pointwise(p, conv) and _can_scale_weight(p, conv) for conv in convs):
            continue
        adds = [p.only_reader(conv.output("Output")[0], "elementwise_add") for conv in convs]
        # the bias must be one value per output channel: c * sum(W) differs per channel
        if any(add is None or not p.is_param(add.input("Y")[0]) or len(p.readers(add.input("Y")[0])) != 1
               or p.value(add.input("Y")[0]).size != p.shape(conv.input("Filter")[0])[0]
               for conv, add in zip(convs, adds)):
            continue
        if quant is not None:
            step = p.value(quant.input("Scale")[0]).ravel()[0] / qmax(quant)
            if abs(c) > MAX_SHIFT * step:
                continue
            scale = quant.input("Scale")[0]
            p.set_value(scale, (p.value(scale) / abs(a)).astype(p.value(scale).dtype))
        for conv, add in zip(convs, adds):
            total = _weight(p, conv).sum(axis=(1, 2, 3))
            bias = add.input("Y")[0]
            p.set_value(bias, (p.value(bias).astype(np.float64) + c * total.reshape(p.value(bias).shape))
                        .astype(np.float32))
            _scale_weight(p, conv, a)
        p.rename_readers(y, h)
        p.remove([op])
        count += 1
    return count


def _deconv(p, op):
    """A kernel-2 stride-2 transposed conv with what follows it (+bias, batch_norm, relu/sigmoid),
    as (weight [Cin, Cout, 2, 2], bias [Cout], activation, ops, output) in float64; None if not one."""
    if (op.type != "conv2d_transpose" or list(op.attr("strides")) != [2, 2] or any(op.attr("paddings"))
            or op.attr("groups") != 1 or any(d != 1 for d in op.attr("dilations")) or op.attr("output_size")
            or op.attr("output_padding") or op.attr("data_format") not in ("NCHW", "AnyLayout")
            or not p.is_param(op.input("Filter")[0])):
        return None
    weight = p.value(op.input("Filter")[0]).astype(np.float64)
    if weight.shape[2:] != (2, 2):
        return None
    bias = np.zeros(weight.shape[1])
    ops, out = [op], op.output("Output")[0]
    add = p.only_reader(out, "elementwise_add")
    if add is not None and p.is_param(add.input("Y")[0]) and p.value(add.input("Y")[0]).size == bias.size:
        bias = bias + p.value(add.input("Y")[0]).ravel()
        ops.append(add)
        out = add.output("Out")[0]
    bn = p.only_reader(out, "batch_norm")
    if bn is not None:
        gamma, beta, mean, var = (p.value(bn.input(k)[0]).astype(np.float64)
                                  for k in ("Scale", "Bias", "Mean", "Variance"))
        k = gamma / np.sqrt(var + bn.attr("epsilon"))
        weight = weight * k[None, :, None, None]
        bias = bias * k + beta - mean * k
        ops.append(bn)
        out = bn.output("Y")[0]
    act = None
    for kind in ("relu", "sigmoid"):
        found = p.only_reader(out, kind)
        if found is not None:
            act = kind
            ops.append(found)
            out = found.output("Out")[0]
            break
    return weight, bias, act, ops, out


def deconv_pairs(p):
    """Two chained k2s2 transposed convs into 1x1 conv -> 1x1 conv -> pixel_shuffle(4). Returns the count.

    Input pixel (i, j) gives output pixels (4i + 2di + di2, 4j + 2dj + dj2).
    The first 1x1 conv computes all four (di, dj) positions of the first
    transposed conv as channel groups; the second maps each group to its four
    (di2, dj2) positions, in the channel order pixel_shuffle(4) expects.
    Activations commute with the shuffle, so they run fused in the convs.
    """
    count = 0
    for first in [op for op in p.ops if op.type == "conv2d_transpose"]:
        if first not in p.ops:  # removed as the second of an earlier pair
            continue
        a = _deconv(p, first)
        if a is None:
            continue
        nxt = p.readers(a[4])
        if len(nxt) != 1 or a[4] in p.fetch_names():
            continue
        b = _deconv(p, nxt[0])
        if b is None:
            continue
        w_a, bias_a, act_a, ops_a, _ = a
        w_b, bias_b, act_b, ops_b, out = b
        w1, b1, w2, b2 = pair_as_pointwise(w_a, bias_a, w_b, bias_b)
        name, x = first.output("Output")[0], first.input("Input")[0]
        at = p.ops.index(first)
        p.remove(ops_a + ops_b)
        new = []
        for tag, w, bias, act in (("a", w1, b1, act_a), ("b", w2, b2, act_b)):
            p.add_param(f"{name}.{tag}.w", w)
            p.add_param(f"{name}.{tag}.b", bias)
            conv_out, add_out = f"{name}.{tag}.conv", f"{name}.{tag}.add"
            for var in (conv_out, add_out, f"{name}.{tag}.act"):
                p.add_var(var)
            new += [("conv2d", {"Input": [x], "Filter": [f"{name}.{tag}.w"]}, {"Output": [conv_out]},
                     {"strides": [1, 1], "paddings": [0, 0], "dilations": [1, 1], "groups": 1,
                      "data_format": "NCHW", "padding_algorithm": "EXPLICIT"}),
                    ("elementwise_add", {"X": [conv_out], "Y": [f"{name}.{tag}.b"]}, {"Out": [add_out]}, {"axis": 1})]
            x = add_out
            if act:
                new.append((act, {"X": [add_out]}, {"Out": [f"{name}.{tag}.act"]}, {}))
                x = f"{name}.{tag}.act"
        new.append(("pixel_shuffle", {"X": [x]}, {"Out": [out]}, {"upscale_factor": 4, "data_format": "NCHW"}))
        for i, (kind, inputs, outputs, attrs) in enumerate(new):
            p.insert(at + i, type=kind, inputs=inputs, outputs=outputs, attrs=attrs)
        count += 1
    return count


# The rewrites Paddle Inference gets, in order: the observers go first (the patterns below
# look through no quantizers but real ones), merge_affine makes the `scale` ops
# affine_into_pointwise moves, and the affines fold before deconv_pairs and se_residual
# look at what is left.
PASSES = (
    ("strip_observers", functools.partial(strip_observers, keep_int8_conv_inputs=True)),
    ("fold_affine", fold_affine),
    ("merge_affine", merge_affine),
    ("deconv_pairs", deconv_pairs),
    ("se_residual", se_residual),
    ("affine_into_pointwise", affine_into_pointwise),
)


# The rewrites OpenVINO's int8 file is exported from (runtime.onnx_model): only those exact in
# int8 too. The observers go as the executor ignores them (no conv input becomes int8 that the
# executor runs in float), and affine_into_pointwise stays out (it moves an offset into a
# quantizer's input). On Sapphire Rapids they took v4 det int8 on OpenVINO bf16 from 0.96x to
# 1.06x of the FP32 model on bf16, and OpenVINO's hmean to the executor's (docs/performance.md).
EXACT_PASSES = (
    ("strip_observers", strip_observers),
    ("fold_affine", fold_affine),
    ("merge_affine", merge_affine),
    ("deconv_pairs", deconv_pairs),
    ("se_residual", se_residual),
)


def write_exact(files, out_dir):
    """files' program (an int8 one) with EXACT_PASSES applied, as out_dir/inference.pdmodel +
    .pdiparams. Returns (the new files tuple, {pass name: count})."""
    with static_mode():
        p = PaddleGraph.from_files(files)
        counts = run_passes(p, EXACT_PASSES)
        p.write(out_dir)
    return (out_dir, "inference.pdmodel", "inference.pdiparams"), counts


def run_passes(p, passes=PASSES):
    """Apply passes to the graph p in order; returns {pass name: how many rewrites it made}."""
    return {name: fn(p) for name, fn in passes}


def optimize(program_bytes, params_bytes, source=None):
    """The rewritten program and weights, as bytes for paddle.inference.Config.set_model_buffer.

    Returns (program, params, counts): counts says what each pass did. `source` (the model's
    folder) names the model if Paddle cannot load it.
    """
    with static_mode():
        p = PaddleGraph(program_bytes, params_bytes, source=source)
        counts = run_passes(p)
        program, params = p.serialize()
    log.debug("deploy rewrites: %s", counts)
    return program, params, counts


def write_model(model_dir, out_dir):
    """Write model_dir's rewritten inference.pdmodel + inference.pdiparams into out_dir (created).

    Returns what each rewrite did. The model dir is only read.
    """
    with open(os.path.join(model_dir, "inference.pdmodel"), "rb") as f, \
            open(os.path.join(model_dir, "inference.pdiparams"), "rb") as g:
        program, params, counts = optimize(f.read(), g.read(), source=model_dir)
    os.makedirs(out_dir, exist_ok=True)
    for name, data in (("inference.pdmodel", program), ("inference.pdiparams", params)):
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(data)
    return counts


def main(argv=None):
    """python -m ocrslim.deploy MODEL_DIR OUT_DIR: write the rewritten model for Paddle Inference.

    For users who run Paddle Inference with their own code: bench.py and
    eval.py --e2e apply the same rewrites in memory, and run.py writes them
    into save_dir/deploy. The model dir is only read.
    """
    import argparse
    from ..errors import ArgumentParser, UserError
    from ..model_check import check_model_files
    from ..outputs import check_save_dir, publish, staging_dir
    p = ArgumentParser(prog="python -m ocrslim.deploy", description=main.__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir", help="model folder (inference.pdmodel + inference.pdiparams): an int8 one from run.py, "
                                     "or an FP32 one (bundled:NAME too) for the FP32 baseline with the same exact rewrites")
    p.add_argument("out_dir", help="new folder for the rewritten inference.pdmodel + inference.pdiparams")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty out_dir")
    args = p.parse_args(argv)
    from ..config import resolve_path
    args.model_dir = resolve_path(args.model_dir)  # bundled:NAME, as the configs name models
    files = [os.path.join(args.model_dir, n) for n in ("inference.pdmodel", "inference.pdiparams")]
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        raise UserError(f"{missing[0]} not found: model_dir must hold inference.pdmodel and inference.pdiparams")
    check_model_files(args.model_dir, "inference.pdmodel", "inference.pdiparams",
                      fix="model_dir must be a Paddle inference model folder")
    check_save_dir(args.out_dir, [("model dir", args.model_dir)], args.overwrite, flag="out_dir")
    staging = staging_dir(args.out_dir)
    try:
        counts = write_model(args.model_dir, staging)
        publish(staging, args.out_dir, kind="deploy")
    finally:
        if os.path.isdir(staging):
            shutil.rmtree(staging, ignore_errors=True)
    print(f"wrote {args.out_dir}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return counts


if __name__ == "__main__":
    from ..errors import run_cli
    run_cli(main)
