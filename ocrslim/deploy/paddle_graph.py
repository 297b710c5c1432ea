"""One indexed graph for Paddle static programs: what the Paddle rewrites and the analyses read.

Every look at a saved Paddle program goes through PaddleGraph: the rewrite
passes (paddle_passes), what the executor really quantizes
(runtime.executor_quantizers) and the small readers of a .pdmodel (its op
list, its input shape). The Paddle program internals they need (`_insert_op`,
`_remove_op`, `_rename_input`) are used here and nowhere else, so a Paddle
upgrade that moves them breaks one file.

The index (who reads and who writes each variable) is rebuilt lazily after a
change made through the graph's own methods; a pass that changes ops any
other way must call `changed()`.
"""
import contextlib
import logging

import numpy as np

from ..model_check import paddle_load_errors


@contextlib.contextmanager
def static_mode():
    """Paddle's static graph mode inside the block, and the caller's mode restored after it."""
    import paddle
    dynamic = paddle.in_dynamic_mode()
    paddle.enable_static()
    try:
        yield
    finally:
        if dynamic:
            paddle.disable_static()


@contextlib.contextmanager
def _quiet_paddle_logger():
    """load_inference_model warns that loading from memory is deprecated; it still works in 2.6."""
    logger = logging.getLogger("paddle.static.io")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def read_files(files):
    """(program bytes, params bytes) of model files (model_dir, model_file, params_file)."""
    import os
    model_dir, model_file, params_file = files
    with open(os.path.join(model_dir, model_file), "rb") as f, open(os.path.join(model_dir, params_file), "rb") as g:
        return f.read(), g.read()


def qmax(op):
    """The largest int code of a quantize_linear/dequantize_linear op: its Scale is the range that maps to it."""
    return 2 ** (op.attr("bit_length") - 1) - 1


def is_observer(op):
    """A PaddleSlim quantize_linear that only records a range (the executor runs it as an identity)."""
    return op.type == "quantize_linear" and op.has_attr("only_observer") and op.attr("only_observer")


class PaddleGraph:
    """Block 0 of a Paddle static program, indexed by variable name.

    With params_bytes the weights load into a private scope (value, set_value,
    add_param and serialize with weights need them); without, only the
    program is read, which is fast. Build one with weights, and change any
    graph, inside static_mode(). `source` (the model's folder or file) names it
    in the one-line error a Paddle load error becomes.
    """

    def __init__(self, program_bytes, params_bytes=None, source=None):
        import paddle
        self.paddle = paddle
        self.scope = None
        if params_bytes is None:
            # Paddle builds its Operator objects only in static mode
            with static_mode(), paddle_load_errors(source or "a Paddle program"):
                self.program = paddle.static.Program.parse_from_string(program_bytes)
            block = self.program.global_block()
            self.feeds = [op.output("Out")[0] for op in block.ops if op.type == "feed"]
            self.fetches = [block.var(op.input("X")[0]) for op in block.ops if op.type == "fetch"]
        else:
            self.scope = paddle.static.Scope()
            self.exe = paddle.static.Executor(paddle.CPUPlace())
            with paddle.static.scope_guard(self.scope), _quiet_paddle_logger(), \
                    paddle_load_errors(source or "a Paddle model"):
                self.program, self.feeds, self.fetches = paddle.static.load_inference_model(
                    None, self.exe, model_filename=program_bytes, params_filename=params_bytes)
        self.block = self.program.global_block()
        self._readers = self._producers = None

    @classmethod
    def from_files(cls, files, weights=True):
        program, params = read_files(files)
        return cls(program, params if weights else None, source=files[0])

    # -- the index --------------------------------------------------------------------------
    @property
    def ops(self):
        return self.block.ops

    def changed(self):
        self._readers = self._producers = None

    def _index(self):
        if self._readers is None:
            self._readers, self._producers = {}, {}
            for op in self.block.ops:
                for name in op.input_arg_names:
                    self._readers.setdefault(name, []).append(op)
                for name in op.output_arg_names:
                    self._producers[name] = op

    def readers(self, name):
        """The ops that read `name`, in program order."""
        self._index()
        return list(self._readers.get(name, []))

    def producer(self, name):
        """The op that writes `name`, or None (a parameter, a feed)."""
        self._index()
        return self._producers.get(name)

    def only_reader(self, name, op_type):
        """The op reading `name` when it is the only reader and of type op_type, else None."""
        found = self.readers(name)
        if len(found) == 1 and found[0].type == op_type and name not in self.fetch_names():
            return found[0]
        return None

    def fetch_names(self):
        return {v.name for v in self.fetches}

    # -- variables and weights ---------------------------------------------------------------
    def is_param(self, name):
        var = self.block.vars.get(name)
        return var is not None and var.persistable

    def shape(self, name):
        return list(self.block.var(name).shape)

    def value(self, name):
        return np.array(self.scope.find_var(name).get_tensor())

    def set_value(self, name, array):
        self.scope.var(name).get_tensor().set(array, self.paddle.CPUPlace())

    def add_param(self, name, array):
        array = array.astype(np.float32)
        self.block.create_var(name=name, shape=array.shape, dtype="float32", persistable=True)
        self.set_value(name, array)

    def add_var(self, name, shape=None):
        self.block.create_var(name=name, shape=shape, dtype="float32")

    def scalar(self, op):
        """The value of the one-element parameter of a binary elementwise op, or None."""
        x, y = op.input("X")[0], op.input("Y")[0]
        for param, tensor in ((x, y), (y, x)):
            if self.is_param(param) and not self.is_param(tensor) and self.value(param).size == 1:
                return float(self.value(param).ravel()[0])
        return None

    def tensor_input(self, op):
        x, y = op.input("X")[0], op.input("Y")[0]
        return y if self.is_param(x) else x

    # -- changes ------------------------------------------------------------------------------
    def remove(self, ops):
        """Remove ops; their handles are invalid afterwards (Paddle frees the op descs)."""
        for i in sorted((self.block.ops.index(op) for op in ops), reverse=True):
            self.block._remove_op(i)
        self.changed()

    def insert(self, at, type, inputs, outputs, attrs):
        """A new op at position `at` (an index into ops); returns it."""
        op = self.block._insert_op(at, type=type, inputs=inputs, outputs=outputs, attrs=attrs)
        self.changed()
        return op

    def rename_input(self, op, old, new):
        op._rename_input(old, new)
        self.changed()

    def rename_inputs(self, mapping):
        """Every op input named a key of mapping reads its value instead."""
        for op in self.block.ops:
            for name in op.input_arg_names:
                if name in mapping:
                    op._rename_input(name, mapping[name])
        self.changed()

    def swap_xy(self, op):
        """Exchange a binary op's X and Y inputs (for ops where the order does not matter)."""
        x, y = op.input("X"), op.input("Y")
        op.desc.set_input("X", y)
        op.desc.set_input("Y", x)
        self.changed()

    def adopt(self, program):
        """Take another program over this graph's weights (the pruner returns a pruned clone)."""
        self.program, self.block = program, program.global_block()
        self.fetches = [self.block.var(v.name) for v in self.fetches]
        self.changed()

    def set_attr(self, op, name, value):
        op._set_attr(name, value)

    def rename_readers(self, old, new):
        for op in self.readers(old):
            op._rename_input(old, new)
        self.changed()

    def serialize(self):
        """(program bytes, params bytes); params is None for a graph read without weights."""
        if self.scope is None:
            self.program.desc.flush()
            return self.program.desc.serialize_to_string(), None
        paddle = self.paddle
        feeds = [self.block.var(n) for n in self.feeds]
        with paddle.static.scope_guard(self.scope):
            program = paddle.static.serialize_program(feeds, self.fetches, program=self.program)
            params = paddle.static.serialize_persistables(feeds, self.fetches, self.exe, program=self.program)
        return program, params

    def write(self, out_dir):
        """This graph with its weights as out_dir/inference.pdmodel + inference.pdiparams."""
        import os
        os.makedirs(out_dir, exist_ok=True)
        for name, data in zip(("inference.pdmodel", "inference.pdiparams"), self.serialize()):
            with open(os.path.join(out_dir, name), "wb") as f:
                f.write(data)
