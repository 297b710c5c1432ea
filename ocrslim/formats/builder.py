"""A Paddle 2.6 static inference program built op by op, and saved with its weights.

pir.py and onnx_in.py walk a foreign graph in order and call one small function
per op; those functions append standard Paddle 2.x ops (conv2d,
depthwise_conv2d, matmul_v2, batch_norm, elementwise_*) through a Builder, the
ops PaddleSlim quantizes and Paddle Inference's passes fuse. Weights become
persistable variables whose values the Builder keeps until save(), which goes
through save_inference_model: the files are those of any Paddle 2.x model.

Values the converters pass between op functions are of three kinds: a numpy
array (known while converting: constants, shape lists, initializers), a Paddle
Variable (computed when the model runs), or a Python list (a PIR `combine`).
`tensor()` turns a known value into a Variable where an op needs one.
"""
import contextlib
import os
import tempfile

import numpy as np

from ..errors import UserError
from ..model_check import open_for_reading, read_tensor_header

# Paddle's VarType data types (framework.proto) as numpy ones, for reading save_combine files
PADDLE_DTYPES = {"BOOL": np.bool_, "INT8": np.int8, "UINT8": np.uint8, "INT16": np.int16, "INT32": np.int32,
                 "INT64": np.int64, "FP16": np.float16, "FP32": np.float32, "FP64": np.float64}
MODEL_FILE = "inference.pdmodel"
PARAMS_FILE = "inference.pdiparams"


@contextlib.contextmanager
def building():
    """A Builder whose program is Paddle's default one inside the block, in static mode, with
    fresh unique names (so two conversions in one process write the same program)."""
    import paddle
    dynamic = paddle.in_dynamic_mode()
    paddle.enable_static()
    try:
        b = Builder(paddle)
        with paddle.static.program_guard(b.program, paddle.static.Program()), paddle.utils.unique_name.guard():
            yield b
    finally:
        if dynamic:
            paddle.disable_static()


class Builder:
    """One program under construction: its weights, its feeds and fetches."""

    def __init__(self, paddle):
        self.paddle = paddle
        self.program = paddle.static.Program()
        self.block = self.program.global_block()
        self.values = {}  # persistable variable name -> numpy array saved for it
        self.constants = {}  # id(array) -> (array, its variable): one variable per constant, however often read
        self.hints = {}  # id(array) -> (array, name for its variable, whether exactly that name)
        self.feeds, self.fetches = [], []

    def param(self, name, array):
        """The persistable variable `name` holding `array` (made on first use)."""
        if name not in self.values:
            self.block.create_var(name=name, shape=array.shape, dtype=str(array.dtype), persistable=True)
            self.values[name] = array
        return self.block.var(name)

    def tensor(self, value):
        """`value` as a Variable: a known array becomes a persistable variable, named as its
        hint says (0-d as [1]: Paddle 2.6's elementwise kernels and paddle2onnx take [1] everywhere)."""
        if not isinstance(value, np.ndarray):
            return value
        if id(value) not in self.constants:
            array = np.ascontiguousarray(value.reshape(1) if value.ndim == 0 else value)
            name, exact = self.hint(value)
            if not exact or name in self.values:
                name = self.paddle.utils.unique_name.generate(name or "const")
            self.constants[id(value)] = (value, self.param(name, array))
        return self.constants[id(value)][1]

    def name(self, value, name, exact=True, like=None):
        """Name the variable a known value will become: `name` (exact: as it is, else with a
        number added), or as `like` is (the array it was reshaped from). Returns value."""
        if like is not None:
            name, exact = self.hint(like)
        if name is not None:
            self.hints[id(value)] = (value, name, exact)  # the array is kept: its id cannot name another
        return value

    def hint(self, value):
        """(name, exact) for a known value's variable; (None, False) when it has none."""
        entry = self.hints.get(id(value))
        return entry[1:] if entry and entry[0] is value else (None, False)

    def add(self, x, y):
        """x + y. A known [1, C, 1, 1] added to an NCHW tensor of C channels (how PIR and
        paddle2onnx write a conv bias) becomes Paddle 2.x's own conv bias, elementwise_add
        along axis 1 of a 1-D bias: the same sums, in the pattern Paddle Inference fuses into
        the conv and PaddleSlim's int8 programs expect."""
        if isinstance(x, np.ndarray) and not isinstance(y, np.ndarray):
            x, y = y, x  # float addition commutes exactly
        shape = getattr(x, "shape", ())
        if (isinstance(y, np.ndarray) and not isinstance(x, np.ndarray) and len(shape) == 4 and y.ndim == 4
                and y.shape[0] == 1 and y.shape[2:] == (1, 1) and y.shape[1] == shape[1] > 0):
            bias = self.tensor(self.name(y.reshape(-1), None, like=y))
            return self.op("elementwise_add", {"X": [x], "Y": [bias]}, {"axis": 1}, dtype=x.dtype)
        return self.paddle.add(self.tensor(x), self.tensor(y))

    def op(self, op_type, inputs, attrs, outputs=("Out",), dtype="float32"):
        """Append one Paddle op; returns the variable of its first output slot."""
        generate = self.paddle.utils.unique_name.generate_with_ignorable_key
        outs = {slot: self.block.create_var(name=generate(f"{op_type}.tmp"), dtype=dtype) for slot in outputs}
        self.block.append_op(type=op_type, inputs=inputs, outputs=outs, attrs=attrs)
        return outs[outputs[0]]

    def feed(self, name, shape, dtype):
        var = self.paddle.static.data(name, shape, dtype)
        self.feeds.append(var)
        return var

    def fetch(self, var):
        self.fetches.append(var)
        return var

    def save(self, out_dir, source):
        """Write out_dir/inference.pdmodel and .pdiparams with save_inference_model (pruned to
        what the fetches need, weights in name order), less the Python call stack Paddle
        records on every op: it named the converting machine's paths and made two conversions
        of one model differ."""
        paddle = self.paddle
        scope = paddle.static.Scope()
        for name, value in self.values.items():
            scope.var(name).get_tensor().set(value, paddle.CPUPlace())
        with tempfile.TemporaryDirectory(prefix="ocrslim-convert-") as staging, paddle.static.scope_guard(scope):
            paddle.static.save_inference_model(os.path.join(staging, "inference"), self.feeds, self.fetches,
                                               paddle.static.Executor(paddle.CPUPlace()), program=self.program)
            if not os.path.exists(os.path.join(staging, PARAMS_FILE)):
                raise UserError(f"{source}: the converted program has no weights, and Paddle Inference cannot "
                                "load such a model: this is not a det or rec model")
            params, program = (read_bytes(os.path.join(staging, n)) for n in (PARAMS_FILE, MODEL_FILE))
        program = with_xshape_outputs(without_call_stacks(program))
        os.makedirs(out_dir, exist_ok=True)
        # the weights first: a .pdmodel next to weights that are not its own is worse than none
        for name, data in ((PARAMS_FILE, params), (MODEL_FILE, program)):
            write_atomic(os.path.join(out_dir, name), data)


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def without_call_stacks(program_bytes):
    from paddle.base.proto import framework_pb2
    program = framework_pb2.ProgramDesc()
    program.ParseFromString(program_bytes)
    for block in program.blocks:
        for op in block.ops:
            kept = [a for a in op.attrs if a.name != "op_callstack"]
            del op.attrs[:]
            op.attrs.extend(kept)
    return program.SerializeToString()


# ops whose Paddle 2.x form has an XShape output (the input's shape, for the backward pass):
# Paddle 2.6's static API builds some of them without it, and a program lacking it runs and
# quantizes, but PaddleSlim's distiller re-appends the teacher's ops with append_op, which
# refuses such an op (QAT of a converted PP-OCRv6 rec stopped on squeeze2).
XSHAPE_OPS = ("squeeze2", "unsqueeze2", "transpose2", "reshape2", "flatten_contiguous_range", "flatten2")


def with_xshape_outputs(program_bytes):
    """The program with an XShape output on every XSHAPE_OPS op lacking one, declared as a
    Paddle 2.x export declares it: float32, shape [0] + the input's shape, never read."""
    from paddle.base.proto import framework_pb2
    program = framework_pb2.ProgramDesc()
    program.ParseFromString(program_bytes)
    for block in program.blocks:
        names = {v.name for v in block.vars}
        dims = {v.name: list(v.type.lod_tensor.tensor.dims) for v in block.vars}
        for op in block.ops:
            if op.type not in XSHAPE_OPS or any(o.parameter == "XShape" for o in op.outputs):
                continue
            x = next(i.arguments[0] for i in op.inputs if i.parameter == "X")
            out = next(o.arguments[0] for o in op.outputs if o.parameter == "Out")
            name = out + ".xshape"
            assert name not in names, name
            names.add(name)
            var = block.vars.add()
            var.name, var.persistable = name, False
            var.type.type = framework_pb2.VarType.LOD_TENSOR
            var.type.lod_tensor.tensor.data_type = framework_pb2.VarType.FP32
            var.type.lod_tensor.tensor.dims.extend([0] + dims.get(x, []))
            slot = op.outputs.add()
            slot.parameter = "XShape"
            slot.arguments.append(name)
    return program.SerializeToString()


def write_atomic(path, data):
    """path holds data, or what it held before: never a partial file."""
    fd, tmp = tempfile.mkstemp(prefix=".converting-", dir=os.path.dirname(path) or ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)  # mkstemp makes 0600; the model is as readable as any file the user writes
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def reshaped(x, shape):
    """numpy's reshape of a known value, with Paddle's and ONNX's 0 (keep that dim)."""
    return x.reshape([x.shape[i] if s == 0 else s for i, s in enumerate(shape)])


def check_out_dir(out_dir, inputs):
    """Refuse an out_dir whose outputs would replace one of the model's own files."""
    targets = {os.path.realpath(os.path.join(out_dir, n)) for n in (MODEL_FILE, PARAMS_FILE)}
    for path in inputs:
        if os.path.realpath(path) in targets:
            raise UserError(f"converting into {out_dir} would overwrite {path}: choose another output folder")


def read_combined(path, expected, model_file):
    """The tensors of a save_combine file (Paddle's .pdiparams) as numpy arrays, checked one for
    one against `expected` [(name, shape, numpy dtype name)] in file order. `model_file` (the
    program they belong to) is named in the error when they do not fit."""
    from paddle.base.proto import framework_pb2
    arrays = {}
    with open_for_reading(path) as f:
        size = os.fstat(f.fileno()).st_size
        for i, (name, shape, dtype) in enumerate(expected):
            if f.tell() == size:
                raise mismatch(path, model_file, f"it holds {i} tensors, {model_file} has {len(expected)} parameters")
            desc, nbytes = read_tensor_header(f, path, size, [], model_file)
            found = np.dtype(PADDLE_DTYPES.get(framework_pb2.VarType.Type.Name(desc.data_type), np.void)).name
            if list(desc.dims) != list(shape) or found != dtype:
                raise mismatch(path, model_file, f"tensor {i + 1} ({name}) is {found} {list(desc.dims)}, "
                                                 f"{model_file} says {dtype} {list(shape)}")
            data = f.read(nbytes)
            if len(data) < nbytes:
                raise UserError(f"{path} is truncated at tensor {i + 1} of {len(expected)} ({name}): copy it again")
            arrays[name] = np.frombuffer(data, found).reshape(shape).copy()
        if f.tell() != size:
            raise mismatch(path, model_file, f"{size - f.tell()} bytes left after the {len(expected)} parameters "
                                             f"of {model_file}")
    return arrays


def mismatch(path, model_file, why):
    return UserError(f"{path} does not hold the weights of {model_file} ({why}): use the .pdiparams "
                     f"published with it")


def unsupported(path, kind, names, supported):
    """The error for ops the converter has no translation for, naming all of them at once."""
    listed = ", ".join(f"'{n}'" for n in sorted(names))
    verb = "is" if len(names) == 1 else "are"
    return UserError(f"{path}: {kind} op{'s' if len(names) > 1 else ''} {listed} {verb} not supported by the "
                     f"converter (supported: {', '.join(sorted(supported))}); convert the model another way "
                     f"or add a translation for {'it' if len(names) == 1 else 'them'}")


# ---- shared by the translators' op functions (pir.py, onnx_in.py) ----

class Unsupported(Exception):
    """A supported op with inputs or attributes this converter does not translate."""


def known(*values):
    return all(isinstance(v, np.ndarray) for v in values)


def ints(value, what):
    """A value known while converting, as a list of Python ints (an attribute of the Paddle op)."""
    if not known(value):
        raise Unsupported(f"its {what} is computed at run time; only constants are supported there")
    return [int(v) for v in np.ravel(value)]


def paddle():
    import paddle as p
    return p


def functional():
    import paddle.nn.functional as F
    return F
