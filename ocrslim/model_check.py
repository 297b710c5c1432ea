"""A cheap, exact check of a model's files before Paddle or onnxruntime loads them.

Paddle reports a damaged model with a C++ traceback: a truncated .pdiparams, a
.pdmodel that is not a program, and even an unreadable file ("complete or
damaged") all end that way. Reading the files ourselves costs milliseconds
(the .pdmodel is parsed, the .pdiparams only walked: its tensor headers are
read and their data skipped) and names the file and the real cause.

The .pdiparams layout is Paddle's save_combine, as serialize_persistables
writes it (checked byte for byte against the bundled PP-OCRv4 models and
run.py's outputs): for each persistable variable of block 0 except
feed/fetch/reader/raw ones, in name order,
    uint32 version (0), uint64 LoD level count, per level uint64 byte count + data,
    uint32 tensor version (0), int32 TensorDesc size, TensorDesc (data type, dims),
    numel * element size bytes of data.
"""
import contextlib
import os
import struct

from .errors import UserError

MODEL_DIR_FIX = "point --model_dir at a Paddle inference model"
# Not saved by save_combine: feed/fetch lists, readers and raw variables hold no tensor.
UNSAVED_TYPES = ("FEED_MINIBATCH", "FETCH_LIST", "READER", "RAW")
ELEMENT_BYTES = {"BOOL": 1, "INT16": 2, "INT32": 4, "INT64": 8, "FP16": 2, "FP32": 4, "FP64": 8,
                 "UINT8": 1, "INT8": 1, "BF16": 2, "COMPLEX64": 8, "COMPLEX128": 16}
HEADER = struct.Struct("<IQ")  # version, LoD level count
TENSOR_HEADER = struct.Struct("<Ii")  # tensor version, TensorDesc size
MAX_DESC_BYTES = 1 << 16  # a TensorDesc is a data type and a few dims: more is not a header


def check_model_files(model_dir, model_file, params_file, fix=MODEL_DIR_FIX):
    """Raise a one-line UserError if model_dir's program or weights file is unreadable,
    not a Paddle program, truncated or not this program's weights. `fix` ends the
    not-a-program message (what the user should point at instead)."""
    model_path, params_path = (os.path.join(model_dir, n) for n in (model_file, params_file))
    # both opened before anything is parsed: an unreadable file is named as such, whatever else is wrong
    with open_for_reading(model_path) as program_file, open_for_reading(params_path) as params:
        program = read_program(program_file.read(), model_path, fix)
        walk_params(params, params_path, saved_variables(program), model_file)


@contextlib.contextmanager
def open_for_reading(path):
    """The file opened in binary; an OSError becomes a UserError that names its cause (Paddle
    calls an unreadable file complete or damaged)."""
    try:
        f = open(path, "rb")
    except PermissionError:
        raise UserError(f"cannot read {path}: permission denied (check the file's permissions)") from None
    except FileNotFoundError:
        raise UserError(f"{path} not found") from None
    except OSError as err:
        raise UserError(f"cannot read {path}: {err.strerror or err} (check the file and its disk)") from None
    with f:
        yield f


def read_program(data, path, fix=MODEL_DIR_FIX):
    """The .pdmodel bytes `data` as a framework_pb2.ProgramDesc, checked to look like an
    inference program."""
    from google.protobuf.message import DecodeError
    from paddle.base.proto import framework_pb2
    program = framework_pb2.ProgramDesc()
    try:
        program.ParseFromString(data)
    except DecodeError:
        raise UserError(f"{path} is not a Paddle program (its {len(data)} bytes do not parse as one): {fix}") from None
    # protobuf accepts some garbage (an empty file, bytes that read as unknown fields): what it
    # parsed must have what every inference program has
    if not program.blocks or not program.blocks[0].ops:
        why = "no operators" if program.blocks else f"no program blocks in its {len(data)} bytes"
        raise UserError(f"{path} is not a Paddle program ({why}): {fix}")
    if not any(op.type == "feed" for op in program.blocks[0].ops):
        raise UserError(f"{path} is not a Paddle program (no feed op: not saved as an inference model): {fix}")
    return program


def saved_variables(program):
    """[(name, TensorDesc)] of the variables save_combine writes for `program`, in file order."""
    from paddle.base.proto import framework_pb2
    var_type = framework_pb2.VarType
    unsaved = {var_type.Type.Value(t) for t in UNSAVED_TYPES}
    found = {v.name: v.type.lod_tensor.tensor for v in program.blocks[0].vars
             if v.persistable and v.type.type not in unsaved}
    return sorted(found.items())


def walk_params(f, path, variables, model_file):
    """Walk the open .pdiparams `f` tensor by tensor against the program's `variables`,
    seeking over the data; raise a UserError on the first thing that does not fit."""
    size = os.fstat(f.fileno()).st_size
    for i, (name, want) in enumerate(variables):
        desc, data_bytes = read_tensor_header(f, path, size, variables[i:], model_file)
        if not dims_match(desc.dims, want.dims):
            raise not_these_weights(path, model_file, f"tensor {i + 1} of {len(variables)} ({name}) has dims "
                                                      f"{list(desc.dims)}, the program says {list(want.dims)}")
        end = f.tell() + data_bytes
        if end > size:
            raise truncated(path, size, end + min_bytes(variables[i + 1:]))
        f.seek(end)
    if f.tell() != size:
        raise not_these_weights(path, model_file, f"{size - f.tell()} bytes left after the program's "
                                                  f"{len(variables)} tensors")


def read_tensor_header(f, path, size, remaining, model_file):
    """(TensorDesc, data byte count) of the tensor at f's position; f is left at its data."""
    from google.protobuf.message import DecodeError
    from paddle.base.proto import framework_pb2
    start = f.tell()

    def read(n):
        data = f.read(n)
        if len(data) < n:  # the file ends inside a header
            raise truncated(path, size, start + min_bytes(remaining))
        return data

    version, levels = HEADER.unpack(read(HEADER.size))
    for _ in range(levels if version == 0 and levels < 16 else 0):
        f.seek(struct.unpack("<Q", read(8))[0], os.SEEK_CUR)
    tensor_version, desc_size = TENSOR_HEADER.unpack(read(TENSOR_HEADER.size))
    desc = framework_pb2.VarType.TensorDesc()
    if version != 0 or levels >= 16 or tensor_version != 0 or not 0 < desc_size <= MAX_DESC_BYTES:
        raise not_these_weights(path, model_file, f"no tensor header at byte {start}")
    try:
        desc.ParseFromString(read(desc_size))
    except DecodeError:
        raise not_these_weights(path, model_file, f"a damaged tensor header at byte {start}") from None
    type_name = framework_pb2.VarType.Type.Name(desc.data_type)
    if type_name not in ELEMENT_BYTES or any(d < 0 for d in desc.dims):
        raise not_these_weights(path, model_file, f"a damaged tensor header at byte {start}")
    return desc, numel(desc.dims) * ELEMENT_BYTES[type_name]


def dims_match(found, want):
    """The saved tensor has as many elements as the program's variable (any, where the program
    leaves a dim unknown). Not the dims themselves: PaddleSlim saves the scale of a [240]
    variable as [1, 240] and of a [1] one as [], and Paddle loads them as saved."""
    return any(w < 0 for w in want) or numel(found) == numel(want)


def numel(dims):
    n = 1
    for d in dims:
        n *= d
    return n


def min_bytes(variables):
    """The fewest bytes the tensors of `variables` can take in a .pdiparams file: headers
    without LoD, one byte per element (PaddleSlim saves int8 weights under float32 variables,
    so the program's data type is not the file's), unknown dims counted as 0."""
    return sum(HEADER.size + TENSOR_HEADER.size + want.ByteSize() + numel(max(d, 0) for d in want.dims)
               for _, want in variables)


def truncated(path, size, need):
    return UserError(f"{path} is truncated: {size} bytes, the program's weights need at least {need}; "
                     "copy the file again")


def not_these_weights(path, model_file, why):
    return UserError(f"{path} does not hold this program's weights ({why}): use the .pdiparams saved with "
                     f"{model_file}")


def check_onnx_file(path, fix):
    """The parsed ONNX model at path; a one-line UserError if it is unreadable or does not parse
    (onnx and onnxruntime would raise DecodeError / InvalidProtobuf tracebacks). Protobuf
    cannot tell a truncated copy from another kind of file: the message names both."""
    import onnx
    from google.protobuf.message import DecodeError
    with open_for_reading(path) as f:
        data = f.read()
    try:
        model = onnx.load_model_from_string(data)
    except DecodeError:
        model = None
    if model is None or not model.graph.node:
        raise UserError(f"{path} is not a complete ONNX model ({len(data)} bytes: truncated, or another kind "
                        f"of file): {fix}")
    return model


# What Paddle's C++ load errors arrive as in Python (its error codes map to these types:
# InvalidArgument -> ValueError, Unavailable/PreconditionNotMet -> RuntimeError, ...).
PADDLE_LOAD_ERRORS = (RuntimeError, ValueError, OSError, MemoryError)


@contextlib.contextmanager
def paddle_load_errors(where):
    """Paddle's load errors inside the block become one UserError line naming `where`.
    Wrap Paddle's own load call and nothing more: an error from our code is a bug and
    keeps its traceback."""
    try:
        yield
    except PADDLE_LOAD_ERRORS as err:
        raise UserError(f"Paddle could not load {where}: {first_line(err)}") from err


def first_line(err):
    """The line of a Paddle error that says what went wrong: Paddle puts "In user code:" and a
    Python stack before the "(Unavailable) ..." or "UnavailableError: ..." line."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    for ln in lines:
        if ln.startswith("(") or ln.split(":")[0].endswith("Error"):
            return ln
    return lines[0] if lines else type(err).__name__
