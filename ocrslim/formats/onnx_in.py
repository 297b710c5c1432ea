"""ONNX models (Baidu's PP-OCRv6 releases) -> a Paddle 2.6 inference model.

    convert(onnx_path, out_dir)   -> out_dir/inference.pdmodel + inference.pdiparams

Each ONNX node becomes the Paddle 2.x op(s) that compute the same thing (OPS:
one small function per op family), in graph order, with the model's dynamic
dims left dynamic (det height and width, rec width). Initializers stay numpy
arrays until an op needs them: as weights they become persistable variables
named after them, as shapes, axes or scales they become op attributes.
Attribute defaults and the opset differences that matter (Squeeze axes as an
input from opset 13, Softmax over the flattened tail before it) are read here.
x2paddle is not used: it needs a fixed rec width and lacks HardSwish.
"""
import re

import numpy as np

from ..errors import UserError
from . import builder
from .builder import Unsupported, functional, ints, known, paddle  # noqa: F401 (shared by the op functions)

ONNX_DOMAINS = ("", "ai.onnx")



class Node:
    """One ONNX node with its attributes decoded and the model's opset."""

    def __init__(self, node, opset):
        from onnx import helper
        self.op_type, self.opset = node.op_type, opset
        self.outputs = list(node.output)
        self.attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}

    def attr(self, name, default=None):
        value = self.attrs.get(name, default)
        return value.decode() if isinstance(value, bytes) else value


def convert(onnx_path, out_dir):
    """Convert the ONNX model at onnx_path into out_dir/inference.pdmodel + .pdiparams. Raises
    UserError for a damaged or unsupported model, before anything is built."""
    builder.check_out_dir(out_dir, [onnx_path])
    model = read_model(onnx_path)
    opset = check_model(model, onnx_path)
    with builder.building() as b:
        build(b, model.graph, opset, onnx_path)
        b.save(out_dir, onnx_path)
    return out_dir


def read_model(path):
    import onnx
    from ..model_check import check_onnx_file
    model = check_onnx_file(path, "copy the model again")
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer):
        raise UserError(f"{path} keeps its weights in external files, which the converter does not read: save "
                        "it as one file (onnx.save with save_as_external_data=False)")
    return model


def check_model(model, path):
    """The model's opset, once every op is known to be supported and the graph has one input."""
    opset = max((o.version for o in model.opset_import if o.domain in ONNX_DOMAINS), default=0)
    unknown = {op_name(n) for n in model.graph.node if op_name(n) not in OPS}
    if unknown:
        raise builder.unsupported(path, "ONNX", unknown, OPS)
    inputs = graph_inputs(model.graph)
    if len(inputs) != 1:
        raise UserError(f"{path}: {len(inputs)} inputs; the converter handles models with one (an image batch)")
    return opset


def op_name(node):
    return node.op_type if node.domain in ONNX_DOMAINS else f"{node.domain}.{node.op_type}"


def graph_inputs(graph):
    """The graph's real inputs (old exporters list initializers among the inputs too)."""
    weights = {t.name for t in graph.initializer}
    return [i for i in graph.input if i.name not in weights]


def build(b, graph, opset, path):
    from onnx import helper, numpy_helper
    values = {"": None}  # an omitted optional input is named ""
    for t in graph.initializer:
        # numbered, not exact: paddle2onnx's own names (helper.constant.0) must not come back
        # from an export of the converted model as variable names it will make again
        values[t.name] = b.name(numpy_helper.to_array(t), param_name(t.name), exact=False)
    x = graph_inputs(graph)[0]
    dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1 for d in x.type.tensor_type.shape.dim]
    dtype = helper.tensor_dtype_to_np_dtype(x.type.tensor_type.elem_type).name
    values[x.name] = b.feed(param_name(x.name), dims, dtype)
    for i, proto in enumerate(graph.node):
        node = Node(proto, opset)
        try:
            ins = [resolve(values, name) for name in proto.input]
            result = OPS[op_name(proto)](b, node, ins)
        except Unsupported as err:
            raise UserError(f"{path}: node {i} ({proto.op_type} '{proto.name}') cannot be converted: {err}") from None
        results = result if isinstance(result, tuple) else (result,)
        for name, value in zip(node.outputs, results):
            values[name] = value
    for out in graph.output:
        b.fetch(b.tensor(resolve(values, out.name)))


def resolve(values, name):
    if name not in values:
        raise Unsupported(f"input '{name}' is made by no node before it (or by an output the converter "
                          "does not make)")
    return values[name]


def param_name(name):
    """An initializer's name as a Paddle variable name (Paddle's own names keep [\\w.])."""
    return re.sub(r"[^\w.]", "_", name) or "const"



def paddle_pads(pads):
    """ONNX 2-D pads [top, left, bottom, right] -> Paddle paddings: [top, left] when symmetric,
    else [top, bottom, left, right]."""
    top, left, bottom, right = pads
    return [top, left] if (top, left) == (bottom, right) else [top, bottom, left, right]


def window_padding(node, kernel, strides, dilations):
    """(paddings, padding_algorithm) of a conv or pool node. SAME_* with stride 1 pads the same
    whatever the input size, so it is written out (SAME_UPPER puts the odd pixel after, LOWER
    before); with larger strides SAME_UPPER is Paddle's own "SAME"."""
    auto_pad = node.attr("auto_pad", "NOTSET")
    if auto_pad == "NOTSET":
        return paddle_pads(node.attr("pads", [0, 0, 0, 0])), "EXPLICIT"
    if auto_pad == "VALID":
        return [0, 0], "VALID"
    if all(s == 1 for s in strides):
        totals = [d * (k - 1) for k, d in zip(kernel, dilations)]
        before = [t // 2 if auto_pad == "SAME_UPPER" else t - t // 2 for t in totals]
        return paddle_pads(before + [t - b for t, b in zip(totals, before)]), "EXPLICIT"
    if auto_pad == "SAME_UPPER":
        return [0, 0], "SAME"
    raise Unsupported(f"auto_pad {auto_pad} with strides {strides}")


def two_d(node, kernel):
    if len(kernel) != 2:
        raise Unsupported(f"a {len(kernel)}-D window; only 2-D (NCHW) is supported")


def add_bias(b, out, bias):
    """A Conv's third input, as Paddle's own conv bias (see Builder.add)."""
    if bias is None:
        return out
    if known(bias):
        return b.add(out, b.name(bias.reshape(1, -1, 1, 1), None, like=bias))
    return b.add(out, paddle().reshape(bias, [1, -1, 1, 1]))


# ---- op functions: (builder, node, input values) -> output value(s) ----

def _conv(b, node, ins):
    x, w, bias = (ins + [None])[:3]
    kernel = list(w.shape[2:])
    two_d(node, kernel)
    strides, dilations = node.attr("strides", [1, 1]), node.attr("dilations", [1, 1])
    paddings, algorithm = window_padding(node, kernel, strides, dilations)
    group = node.attr("group", 1)
    # Paddle's own rule (nn.Conv2D): one input channel per group is a depthwise conv
    op_type = "depthwise_conv2d" if group > 1 and w.shape[1] == 1 else "conv2d"
    attrs = {"strides": strides, "paddings": paddings, "padding_algorithm": algorithm, "dilations": dilations,
             "groups": group, "data_format": "NCHW"}
    out = b.op(op_type, {"Input": [x], "Filter": [b.tensor(w)]}, attrs, ("Output",), x.dtype)
    return add_bias(b, out, bias)


def _conv_transpose(b, node, ins):
    x, w, bias = (ins + [None])[:3]
    kernel = list(w.shape[2:])
    two_d(node, kernel)
    if node.attr("output_shape") or node.attr("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        raise Unsupported("output_shape or SAME auto_pad; only explicit pads are supported")
    attrs = {"strides": node.attr("strides", [1, 1]), "paddings": paddle_pads(node.attr("pads", [0, 0, 0, 0])),
             "output_padding": node.attr("output_padding", []), "output_size": [], "padding_algorithm": "EXPLICIT",
             "groups": node.attr("group", 1), "dilations": node.attr("dilations", [1, 1]), "data_format": "NCHW"}
    out = b.op("conv2d_transpose", {"Input": [x], "Filter": [b.tensor(w)]}, attrs, ("Output",), x.dtype)
    return add_bias(b, out, bias)


def _pool(pooling_type):
    def translate(b, node, ins):
        kernel = node.attr("kernel_shape")
        two_d(node, kernel)
        strides, dilations = node.attr("strides", [1, 1]), node.attr("dilations", [1, 1])
        if any(d != 1 for d in dilations) or len(node.outputs) > 1 and node.outputs[1]:
            raise Unsupported("dilated pooling or max pool indices")
        paddings, algorithm = window_padding(node, kernel, strides, dilations)
        attrs = {"ksize": kernel, "strides": strides, "paddings": paddings, "padding_algorithm": algorithm,
                 "ceil_mode": bool(node.attr("ceil_mode", 0)), "pooling_type": pooling_type,
                 "exclusive": not node.attr("count_include_pad", 0), "global_pooling": False, "adaptive": False,
                 "data_format": "NCHW"}
        return b.op("pool2d", {"X": [ins[0]]}, attrs, ("Out",), ins[0].dtype)
    return translate


def _global_average_pool(b, node, ins):
    return mean_by_axis(ins[0], [2, 3], keepdim=True)


def mean_by_axis(x, axes, keepdim):
    """The mean over `axes`, one axis at a time from the last. Paddle 2.6's reduce_mean and
    pool2d sum a whole plane in one float32 accumulator: over a 240x320 plane that is 15x less
    accurate than onnxruntime (2e-5 against 1.4e-6 on values near 1.5), which moved v6 det's
    map by 3e-4; a row at a time is as accurate as onnxruntime, and the same mean."""
    p = paddle()
    rank = len(x.shape)
    axes = sorted({a % rank for a in axes}, reverse=True)
    for axis in axes:
        x = p.mean(x, axis=axis, keepdim=True)
    return x if keepdim else p.squeeze(x, axes)


# (mode, coordinate_transformation_mode) -> Paddle interp op and the attributes that match it.
# Paddle's nearest is floor(out * in/out) (ONNX asymmetric + floor); its bilinear align_mode 0 is
# ONNX half_pixel, align_mode 1 asymmetric.
RESIZE_MODES = {("nearest", "asymmetric"): ("nearest_interp_v2", {"align_corners": False, "align_mode": 1}),
                ("linear", "half_pixel"): ("bilinear_interp_v2", {"align_corners": False, "align_mode": 0}),
                ("linear", "asymmetric"): ("bilinear_interp_v2", {"align_corners": False, "align_mode": 1}),
                ("linear", "align_corners"): ("bilinear_interp_v2", {"align_corners": True, "align_mode": 1})}


def _resize(b, node, ins):
    x = ins[0]
    scales, sizes = (ins[1], None) if node.opset < 11 else ((ins + [None, None])[2], (ins + [None] * 3)[3])
    mode = node.attr("mode", "nearest")
    transform = node.attr("coordinate_transformation_mode", "asymmetric" if node.opset < 11 else "half_pixel")
    if (mode, transform) not in RESIZE_MODES or mode == "nearest" and node.attr("nearest_mode",
                                                                             "round_prefer_floor") != "floor":
        raise Unsupported(f"mode {mode} with {transform} coordinates (supported: nearest asymmetric floor, linear "
                          "half_pixel / asymmetric / align_corners)")
    op_type, attrs = RESIZE_MODES[(mode, transform)]
    attrs = {**attrs, "data_layout": "NCHW", "interp_method": mode.replace("linear", "bilinear"),
             "out_d": -1, "out_h": -1, "out_w": -1, "scale": []}
    if sizes is not None and np.size(sizes):
        attrs["out_h"], attrs["out_w"] = ints(sizes, "sizes")[2:]
    elif known(scales) and np.size(scales) == 4 and list(np.ravel(scales)[:2]) == [1, 1]:
        attrs["scale"] = [float(s) for s in np.ravel(scales)[2:]]
    else:
        raise Unsupported("scales not of the form [1, 1, h, w] or computed at run time")
    return b.op(op_type, {"X": [x]}, attrs, ("Out",), x.dtype)


def _batch_norm(b, node, ins):
    x, scale, bias, mean, variance = ins
    if node.attr("training_mode", 0) or len([o for o in node.outputs if o]) > 1:
        raise Unsupported("batch norm in training mode: export the model for inference")
    return functional().batch_norm(x, b.tensor(mean), b.tensor(variance), b.tensor(scale), b.tensor(bias),
                                   training=False, momentum=node.attr("momentum", 0.9),
                                   epsilon=node.attr("epsilon", 1e-5), data_format="NCHW")


def _binary(fn_name, fold):
    def translate(b, node, ins):
        x, y = ins
        if known(x, y):  # arithmetic on constants is done now, in their own dtype
            return fold(x, y)
        if fn_name == "add":
            return b.add(x, y)
        return getattr(paddle(), fn_name)(b.tensor(x), b.tensor(y))
    return translate


def _matmul(b, node, ins):
    return paddle().matmul(b.tensor(ins[0]), b.tensor(ins[1]))


def _activation(fn_name):
    def translate(b, node, ins):
        return getattr(functional(), fn_name)(b.tensor(ins[0]))
    return translate


def _erf(b, node, ins):
    return paddle().erf(b.tensor(ins[0]))


def _hard_sigmoid(b, node, ins):
    return functional().hardsigmoid(b.tensor(ins[0]), node.attr("alpha", 0.2), node.attr("beta", 0.5))


def _softmax(b, node, ins):
    """From opset 13 Softmax normalizes one axis (default -1); before, everything from `axis`
    (default 1) on, which is one axis only when it is the last."""
    x = b.tensor(ins[0])
    rank = len(x.shape)
    axis = node.attr("axis", -1 if node.opset >= 13 else 1) % rank
    if node.opset < 13 and axis != rank - 1:
        raise Unsupported(f"opset {node.opset} Softmax over axes {axis}..{rank - 1} (only the last axis is supported)")
    return functional().softmax(x, axis)


def _identity(b, node, ins):
    """Identity, and Dropout at inference (the identity; its mask output is not made)."""
    if node.op_type == "Dropout" and len(ins) > 2 and ins[2] is not None and (not known(ins[2]) or ins[2].any()):
        raise Unsupported("dropout in training mode")
    return ins[0]


def _constant(b, node, ins):
    from onnx import numpy_helper
    if "value" in node.attrs:
        return numpy_helper.to_array(node.attrs["value"])
    for name, dtype in (("value_float", np.float32), ("value_floats", np.float32), ("value_int", np.int64),
                        ("value_ints", np.int64)):
        if name in node.attrs:
            return np.array(node.attrs[name], dtype)
    raise Unsupported(f"a Constant with {sorted(node.attrs)}")


def _reduce_mean(b, node, ins):
    axes = node.attr("axes") if node.opset < 18 else (ints(ins[1], "axes") if len(ins) > 1 and ins[1] is not None
                                                      else None)
    keepdim = bool(node.attr("keepdims", 1))
    if not axes:  # no axes: all of them, or none with noop_with_empty_axes
        return ins[0] if node.attr("noop_with_empty_axes", 0) else mean_by_axis(ins[0], range(len(ins[0].shape)),
                                                                                 keepdim)
    return mean_by_axis(ins[0], axes, keepdim)


def _axes(node, ins, what):
    """Squeeze/Unsqueeze axes: an attribute before opset 13, the second input from it."""
    if node.opset < 13:
        return node.attr("axes")
    return ints(ins[1], what) if len(ins) > 1 and ins[1] is not None else None


def _squeeze(b, node, ins):
    axes = _axes(node, ins, "axes")
    return paddle().squeeze(b.tensor(ins[0]), axes)


def _unsqueeze(b, node, ins):
    # ONNX axes index the output; in ascending order Paddle inserts them one by one the same way
    rank = len(ins[0].shape) + len(_axes(node, ins, "axes"))
    return paddle().unsqueeze(b.tensor(ins[0]), sorted(a % rank for a in _axes(node, ins, "axes")))


def _transpose(b, node, ins):
    perm = node.attr("perm") or list(reversed(range(len(ins[0].shape))))
    if known(ins[0]):  # a transposed weight stays a weight (a matmul_v2 reading it is quantizable)
        return b.name(np.ascontiguousarray(np.transpose(ins[0], perm)), None, like=ins[0])
    return paddle().transpose(ins[0], perm)


def _concat(b, node, ins):
    if known(*ins):
        return np.concatenate(ins, node.attr("axis"))
    return paddle().concat([b.tensor(v) for v in ins], node.attr("axis"))


def _reshape(b, node, ins):
    shape = ints(ins[1], "shape")
    if node.attr("allowzero", 0) and 0 in shape:
        raise Unsupported("allowzero with a 0 in the shape (Paddle reads 0 as 'keep this dim')")
    if known(ins[0]):
        return b.name(builder.reshaped(ins[0], shape), None, like=ins[0])
    return paddle().reshape(b.tensor(ins[0]), shape)


OPS = {
    "Conv": _conv, "ConvTranspose": _conv_transpose, "MaxPool": _pool("max"), "AveragePool": _pool("avg"),
    "GlobalAveragePool": _global_average_pool, "Resize": _resize, "BatchNormalization": _batch_norm,
    "Add": _binary("add", np.add), "Sub": _binary("subtract", np.subtract), "Mul": _binary("multiply", np.multiply),
    "Div": _binary("divide", np.divide), "MatMul": _matmul, "Relu": _activation("relu"),
    "Sigmoid": _activation("sigmoid"), "HardSwish": _activation("hardswish"), "HardSigmoid": _hard_sigmoid,
    "Erf": _erf, "Softmax": _softmax, "Identity": _identity, "Dropout": _identity, "Constant": _constant,
    "ReduceMean": _reduce_mean, "Squeeze": _squeeze, "Unsqueeze": _unsqueeze, "Transpose": _transpose,
    "Concat": _concat, "Reshape": _reshape,
}

