"""PaddleOCR 3.x models (a Paddle 3 PIR program in inference.json) -> a Paddle 2.6 inference model.

    convert(model_dir, out_dir)   model_dir/inference.json + inference.pdiparams
                                  -> out_dir/inference.pdmodel + inference.pdiparams

Paddle 2.6 and PaddleSlim 2.6 cannot read a PIR program, and no converter
exists (Paddle #74210). The program is plain JSON, so this module walks its
ops in order and appends, for each, the Paddle 2.x op that computes the same
thing (OPS: one small function per op family). Everything that knows the
JSON layout is in this file, and its version is checked on read.

The layout, as Paddle 3.0-3.3 writes it (base_code {"magic": "pir", "version": 1}):
program.regions[0].blocks[0].ops is a list of ops, each {"#": "<dialect>.<name>"
("1.conv2d": pd_op, "0.combine": builtin), "I": [{"%": value id}] (id 0: no
value), "O": [{"%": id, "TT": type}], "A": [{"N": name, "AT": {"#": kind, "D":
data}}]}. Parameters are "p" ops with the name last in "A" and one "O" whose
type gives dtype and shape; their tensors are in inference.pdiparams in the
order of the names sorted as strings (save_combine layout).

Values the PIR program computes from constants only (full, full_int_array,
shape lists) stay numpy arrays here and end up as op attributes, as they would
in a Paddle 2.x program; a reshape whose target has one dim computed at run
time gets -1 there instead (exact: reshape checks the element count), so the
shape ops feeding it are pruned on save and the width of a rec model stays free.
"""
import functools
import json
import os

import numpy as np

from ..errors import UserError
from . import builder
from .builder import Unsupported, functional, ints, known, paddle  # noqa: F401 (shared by the op functions)

JSON_FILE = "inference.json"
PARAMS_FILE = "inference.pdiparams"
SUPPORTED_FORMATS = {("pir", 1)}
# PIR tensor types -> numpy dtype names
TENSOR_TYPES = {"0.t_f32": "float32", "0.t_f64": "float64", "0.t_f16": "float16", "0.t_i64": "int64",
                "0.t_i32": "int32", "0.t_i16": "int16", "0.t_i8": "int8", "0.t_ui8": "uint8", "0.t_bool": "bool"}
INT32_MAX = 2 ** 31 - 1



class Op:
    """One PIR op: its name ("1.conv2d"), input ids, [(output id, dtype, shape)] and attributes."""

    def __init__(self, name, ins, outs, attrs):
        self.name, self.ins, self.outs, self.attrs = name, ins, outs, attrs

    def attr(self, name):
        if name not in self.attrs:
            raise Unsupported(f"attribute '{name}' missing")
        return self.attrs[name]

    def pick(self, *names):
        return {n: self.attr(n) for n in names}

    @property
    def paddle_type(self):
        return self.name.split(".", 1)[1]


def convert(model_dir, out_dir):
    """Convert model_dir's inference.json + inference.pdiparams into out_dir/inference.pdmodel +
    .pdiparams. Raises UserError for a damaged or unsupported model, before anything is built."""
    json_path, params_path = (os.path.join(model_dir, n) for n in (JSON_FILE, PARAMS_FILE))
    builder.check_out_dir(out_dir, [json_path, params_path])
    ops = read_program(json_path)
    check_ops(ops, json_path)
    arrays = read_params(params_path, ops)
    with builder.building() as b:
        build(b, ops, arrays, json_path)
        if not b.feeds or not b.fetches:
            raise UserError(f"{json_path}: a program with no data or no fetch op is not an inference model")
        b.save(out_dir, json_path)
    return out_dir


def read_program(path):
    """The ops of a PIR inference.json, its format version checked."""
    from ..model_check import open_for_reading
    with open_for_reading(path) as f:
        try:
            doc = json.loads(f.read().decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as err:
            raise UserError(f"{path} is not valid JSON ({err}): copy the model again") from None
    code = doc.get("base_code") if isinstance(doc, dict) else None
    found = (code.get("magic"), code.get("version")) if isinstance(code, dict) else None
    if found not in SUPPORTED_FORMATS:
        raise UserError(f"{path}: not a PIR program of a format this converter reads (base_code {code!r}; it "
                        f"reads magic/version {sorted(SUPPORTED_FORMATS)}, as Paddle 3.0-3.3 write them)")
    try:
        regions = doc["program"]["regions"]
        if len(regions) != 1 or len(regions[0]["blocks"]) != 1:
            raise UserError(f"{path}: a program with several regions or blocks (control flow) is not supported")
        return [parse_op(o) for o in regions[0]["blocks"][0]["ops"]]
    except (KeyError, TypeError, IndexError, ValueError, AttributeError) as err:
        raise UserError(f"{path} is not a PIR program as Paddle 3 writes it ({type(err).__name__}: {err}): "
                        "copy the model again") from None


def parse_op(o):
    if o["#"] == "p":  # parameter: a compact op whose last "A" entry is the name
        name = [a for a in o["A"] if isinstance(a, str)][-1]
        out = parse_output(o["O"])
        if out[2] is None:
            raise ValueError(f"parameter {name} is not a dense tensor")
        return Op("p", [], [out], {"name": name})
    attrs = {a["N"]: attr_value(a["AT"]) for a in o.get("A", [])}
    return Op(o["#"], [int(i["%"]) for i in o["I"]], [parse_output(x) for x in o["O"]], attrs)


def parse_output(o):
    kind, data = o["TT"]["#"], o["TT"].get("D")
    if kind == "0.t_dtensor":
        return int(o["%"]), TENSOR_TYPES.get(data[0]["#"], data[0]["#"]), list(data[1])
    return int(o["%"]), kind, None


def attr_value(a):
    if a["#"] == "0.a_array":
        return [attr_value(x) for x in a["D"]]
    return a["D"]


def check_ops(ops, path):
    unknown = {op.name for op in ops} - set(OPS)
    if unknown:
        raise builder.unsupported(path, "PIR", unknown, OPS)


def read_params(path, ops):
    """{parameter name: array} from the .pdiparams, checked against the "p" ops' shapes."""
    params = {op.attrs["name"]: (op.outs[0][2], op.outs[0][1]) for op in ops if op.name == "p"}
    return builder.read_combined(path, [(name, *params[name]) for name in sorted(params)], JSON_FILE)


def build(b, ops, arrays, path):
    """Append every op's translation to b's program, in program order."""
    handlers = {**OPS, "p": functools.partial(_parameter, arrays)}
    values = {0: None}
    for i, op in enumerate(ops):
        try:
            ins = [resolve(values, k) for k in op.ins]
            result = handlers[op.name](b, op, ins)
        except Unsupported as err:
            raise UserError(f"{path}: op {i} ({op.name}) cannot be converted: {err}") from None
        results = result if isinstance(result, tuple) else (result,)
        for k, (vid, _, _) in enumerate(op.outs):
            values[vid] = results[k] if k < len(results) else Missing(op.name, k)


class Missing:
    """An op output the translation does not produce (batch norm statistics, dropout masks)."""

    def __init__(self, name, index):
        self.name, self.index = name, index


def resolve(values, vid):
    if vid not in values:
        raise Unsupported(f"value {vid} is used before any op makes it (a damaged program?)")
    value = values[vid]
    if isinstance(value, Missing):
        raise Unsupported(f"it reads output {value.index} of a {value.name} op, which the converter does not make")
    return value



# ---- op functions: (builder, op, input values) -> output value(s) ----

def _parameter(arrays, b, op, ins):
    """A parameter is a known value: made a variable (of its own name) where an op reads it
    as a tensor; a reshape of it is done here."""
    return b.name(arrays[op.attrs["name"]], op.attrs["name"])


def _data(b, op, ins):
    return b.feed(op.attr("name"), op.attr("shape"), op.attr("dtype"))


def _fetch(b, op, ins):
    return b.fetch(b.tensor(ins[0]))


def _full(b, op, ins):
    return np.full(op.attr("shape"), op.attr("value"), dtype=op.attr("dtype"))


def _full_int_array(b, op, ins):
    return np.array(op.attr("value"), dtype=op.attr("dtype"))


def _combine(b, op, ins):
    return list(ins)


def _identity(b, op, ins):
    """assign copies its input: the copy is the same value for everything after it."""
    return ins[0]


def _shape(b, op, ins):
    if known(ins[0]):
        return np.array(ins[0].shape, op.outs[0][1])
    p = paddle()
    return p.cast(p.shape(ins[0]), op.outs[0][1])  # Paddle 2.6's shape op gives int32


def _conv(b, op, ins):
    x, w = ins
    attrs = op.pick("strides", "paddings", "padding_algorithm", "dilations", "groups", "data_format")
    return b.op(op.paddle_type, {"Input": [x], "Filter": [b.tensor(w)]}, attrs, ("Output",), x.dtype)


def _conv_transpose(b, op, ins):
    x, w, output_size = ins
    attrs = op.pick("strides", "paddings", "output_padding", "padding_algorithm", "groups", "dilations",
                    "data_format")
    attrs["output_size"] = [] if output_size is None else ints(output_size, "output size")
    return b.op(op.paddle_type, {"Input": [x], "Filter": [b.tensor(w)]}, attrs, ("Output",), x.dtype)


def _pool2d(b, op, ins):
    x, kernel = ins
    attrs = op.pick("strides", "paddings", "ceil_mode", "exclusive", "data_format", "pooling_type",
                    "global_pooling", "adaptive", "padding_algorithm")
    attrs["ksize"] = ints(kernel, "kernel size")
    return b.op("pool2d", {"X": [x]}, attrs, ("Out",), x.dtype)


def _interp(b, op, ins):
    """nearest/bilinear resize: PIR's interp ops are Paddle 2.x's *_interp_v2 with the same
    attributes; only data_format is called data_layout there."""
    x, out_size, size_list, scale = ins
    attrs = op.pick("out_d", "out_h", "out_w", "scale", "interp_method", "align_corners", "align_mode")
    attrs["data_layout"] = op.attr("data_format")
    if size_list is not None or scale is not None:
        raise Unsupported("size or scale given as tensors; only out_size and the scale attribute are supported")
    if out_size is not None:
        attrs["out_h"], attrs["out_w"] = ints(out_size, "output size")[-2:]
    return b.op(op.paddle_type + "_v2", {"X": [x]}, attrs, ("Out",), x.dtype)


def _batch_norm(b, op, ins):
    x, mean, variance, scale, bias = ins
    if not op.attr("is_test"):
        raise Unsupported("batch norm in training mode (is_test false): export the model for inference")
    return functional().batch_norm(x, b.tensor(mean), b.tensor(variance), b.tensor(scale), b.tensor(bias),
                                   training=False, momentum=op.attr("momentum"), epsilon=op.attr("epsilon"),
                                   data_format=op.attr("data_format"))


def _layer_norm(b, op, ins):
    x, scale, bias = ins
    inputs = {"X": [x]}
    for slot, value in (("Scale", scale), ("Bias", bias)):
        if value is not None:
            inputs[slot] = [b.tensor(value)]
    return b.op("layer_norm", inputs, op.pick("epsilon", "begin_norm_axis"), ("Y", "Mean", "Variance"), x.dtype)


def _binary(fn_name):
    def translate(b, op, ins):
        x, y = ins
        if fn_name == "add":
            return b.add(x, y)
        return getattr(paddle(), fn_name)(b.tensor(x), b.tensor(y))
    return translate


def _matmul(b, op, ins):
    x, y = ins
    return paddle().matmul(b.tensor(x), b.tensor(y), op.attr("transpose_x"), op.attr("transpose_y"))


def _activation(fn_name, *attr_names):
    """An activation whose Paddle 2.x function takes the PIR op's attributes in this order."""
    def translate(b, op, ins):
        return getattr(functional(), fn_name)(b.tensor(ins[0]), *[op.attr(n) for n in attr_names])
    return translate


def _scale(b, op, ins):
    x, scale = ins
    factor = float(np.ravel(scale)[0]) if known(scale) else scale
    return paddle().scale(x, factor, float(op.attr("bias")), op.attr("bias_after_scale"))


def _dropout(b, op, ins):
    """Dropout at inference: the identity in upscale_in_train mode, x * (1 - p) in downgrade_in_infer."""
    x, _, p = ins
    if not op.attr("is_test"):
        raise Unsupported("dropout in training mode (is_test false): export the model for inference")
    if op.attr("mode") == "upscale_in_train":
        return x
    keep = float(np.float32(1.0) - np.float32(np.ravel(p)[0])) if known(p) else None
    if keep is None:
        raise Unsupported("dropout rate computed at run time")
    return paddle().scale(x, keep)


def _transpose(b, op, ins):
    if known(ins[0]):  # a transposed weight stays a weight (a matmul_v2 reading it is quantizable)
        return b.name(np.ascontiguousarray(np.transpose(ins[0], op.attr("perm"))), None, like=ins[0])
    return paddle().transpose(ins[0], op.attr("perm"))


def _flatten(b, op, ins):
    return paddle().flatten(b.tensor(ins[0]), op.attr("start_axis"), op.attr("stop_axis"))


def _squeeze(fn_name):
    def translate(b, op, ins):
        x, axes = ins
        return getattr(paddle(), fn_name)(b.tensor(x), ints(axes, "axes"))
    return translate


def _softmax(b, op, ins):
    return functional().softmax(b.tensor(ins[0]), op.attr("axis"))


def _concat(b, op, ins):
    items, axis = ins
    axis = ints(axis, "axis")[0]
    if known(*items):
        return np.concatenate(items, axis)
    return paddle().concat([b.tensor(v) for v in items], axis)


def _stack(b, op, ins):
    """Stacking 0-d values is how PIR builds a shape at run time: a list of known ints and
    Variables is what reshape takes (see _reshape); anything else becomes a stack op."""
    items, axis = ins[0], op.attr("axis")
    if known(*items):
        return np.stack(items, axis)
    if axis == 0 and all(len(getattr(v, "shape", ())) == 0 for v in items):
        return ShapeList(items)
    return paddle().stack([b.tensor(v) for v in items], axis)


class ShapeList(list):
    """A 1-D shape some of whose entries are computed at run time (Variables)."""


def _reshape(b, op, ins):
    x, shape = ins
    if isinstance(shape, ShapeList):
        shape = shape_list(shape)
    elif known(shape):
        shape = ints(shape, "shape")
        if known(x):  # a parameter reshaped (v5's conv biases): done here, like PIR's constant folding
            return b.name(builder.reshaped(x, shape), None, like=x)
    return paddle().reshape(b.tensor(x), shape)


def shape_list(items):
    """Reshape's target: known entries as ints; one entry computed at run time among known,
    non -1 ones becomes -1, the only value reshape can accept there."""
    fixed = [int(v) if known(v) else None for v in items]
    if fixed.count(None) == 1 and -1 not in fixed:
        return [-1 if v is None else v for v in fixed]
    return [v if f is None else f for v, f in zip(items, fixed)]


def _slice(b, op, ins):
    x, starts, ends = ins
    axes, decrease = op.attr("axes"), op.attrs.get("decrease_axis", [])
    starts, ends = ints(starts, "starts"), ints(ends, "ends")
    if known(x):  # shape arithmetic: done here, as Paddle would
        index = [slice(None)] * x.ndim
        for axis, start, end in zip(axes, starts, ends):
            index[axis] = slice(start, end)
        return np.squeeze(x[tuple(index)], axis=tuple(decrease)) if decrease else x[tuple(index)]
    # PIR ends may be INT64_MAX ("to the end"); Paddle 2.6's slice attributes are int32
    clamp = [max(min(v, INT32_MAX), -INT32_MAX) for v in ends]
    attrs = {"axes": axes, "starts": starts, "ends": clamp, "infer_flags": [1] * len(axes), "decrease_axis": decrease}
    return b.op("slice", {"Input": [x]}, attrs, ("Out",), x.dtype)


OPS = {
    "p": _parameter, "1.data": _data, "1.fetch": _fetch, "1.full": _full, "1.full_int_array": _full_int_array,
    "0.combine": _combine, "1.assign": _identity, "1.shape64": _shape, "1.shape": _shape,
    "1.conv2d": _conv, "1.depthwise_conv2d": _conv, "1.conv2d_transpose": _conv_transpose,
    "1.depthwise_conv2d_transpose": _conv_transpose, "1.pool2d": _pool2d,
    "1.nearest_interp": _interp, "1.bilinear_interp": _interp,
    "1.batch_norm_": _batch_norm, "1.batch_norm": _batch_norm, "1.layer_norm": _layer_norm,
    "1.add": _binary("add"), "1.subtract": _binary("subtract"), "1.multiply": _binary("multiply"),
    "1.divide": _binary("divide"), "1.matmul": _matmul, "1.scale": _scale, "1.dropout": _dropout,
    "1.relu": _activation("relu"), "1.sigmoid": _activation("sigmoid"), "1.hardswish": _activation("hardswish"),
    "1.swish": _activation("swish"), "1.hardsigmoid": _activation("hardsigmoid", "slope", "offset"),
    "1.gelu": _activation("gelu", "approximate"), "1.softmax": _softmax,
    "1.transpose": _transpose, "1.flatten": _flatten, "1.squeeze": _squeeze("squeeze"),
    "1.unsqueeze": _squeeze("unsqueeze"), "1.concat": _concat, "1.stack": _stack, "1.reshape": _reshape,
    "1.slice": _slice,
}
