"""Every private PaddleSlim / Paddle quantization name ocrslim uses, in one room, checked at start-up.

ACT 2.6 has no option to start QAT from calibrated scales, to keep the teacher
or chosen layers in float, to read the thresholds PTQ found, or to say where it
trains (it picks fleet mode and its card itself). So we wrap three ACT internals
for the duration of one run and read one PTQ attribute. When an
upgrade moves any of them, `check()` fails before any work with a line that
says which name moved, instead of a run that silently trains from scale 0.001
(which takes PP-OCRv4 rec accuracy to 0 in a few steps).
"""
import contextlib
import importlib.metadata
import inspect

from ..errors import UserError

# versions these names were read from (requirements.txt pins them)
PADDLESLIM_VERSION = "2.6"
PADDLE_VERSION = "2.6"

# ACT prefixes every teacher variable in the merged distillation program with this
TEACHER_PREFIX = "teacher_"
# an op whose op_namescope holds 'skip_quant' is left in float by the quant passes
# (ACT's QuantAware not_quant_pattern default, and Paddle's PTQ skip_tensor_list)
SKIP_QUANT = "/skip_quant"

# (module, attribute path, the parameters we call it with or replace it by)
SIGNATURES = (
    ("paddleslim.auto_compression.compressor", "build_quant_program",
     ("executor", "place", "config", "train_program_info", "test_program_info")),
    ("paddleslim.auto_compression.compressor", "AutoCompression._start_train",
     ("self", "train_program_info", "test_program_info", "strategy", "train_config")),
    ("paddleslim.auto_compression.compressor", "AutoCompression.__init__",
     ("self", "model_dir", "train_dataloader", "model_filename", "params_filename", "save_dir", "config",
      "eval_callback", "deploy_hardware")),
    ("paddleslim.auto_compression.compressor", "AutoCompression._prepare_envs", ("self",)),
    ("paddle.static.quantization.post_training_quantization", "PostTrainingQuantization._sample_histogram",
     ("self",)),
    ("paddle.static.quantization.post_training_quantization", "PostTrainingQuantization.__init__",
     ("self", "executor", "model_dir", "scope", "model_filename", "params_filename", "data_loader", "batch_nums",
      "algo", "hist_percent", "quantizable_op_type", "weight_quantize_type", "onnx_format", "skip_tensor_list",
      "scale_dict")),
    ("paddleslim.prune", "Pruner.prune",
     ("self", "program", "scope", "params", "ratios", "place", "only_graph", "param_backup")),
    ("paddleslim.prune.collections", "StaticPruningCollections.__init__", ("self", "params", "graph")),
    ("paddleslim.prune.prune_worker", "PruneWorker._visit_and_search", ("self", "var", "axis", "transforms")),
)
# (module, attribute path, a line its source must still hold): what a signature cannot show
SOURCES = (
    # the (executor, place, fleet) that wrapped_act's prepare_envs returns
    ("paddleslim.auto_compression.compressor", "AutoCompression.__init__",
     "self._exe, self._places, self.fleet = self._prepare_envs()"),
)
# ACT's config sections whose __init__ parameters are the keys a config may use
ACT_SECTIONS = ("QuantAware", "Distillation", "TrainConfig")


def _resolve(module, path):
    obj = importlib.import_module(module)
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def problems(signatures=SIGNATURES, sources=SOURCES):
    """What does not match this PaddleSlim/Paddle: a list of one-line descriptions."""
    out = []
    for package, want in (("paddleslim", PADDLESLIM_VERSION), ("paddlepaddle", PADDLE_VERSION)):
        try:
            got = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            got = None
        if got is None or not (got == want or got.startswith(want + ".")):
            out.append(f"{package} {got or 'not installed'} (ocrslim needs {want}.x)")
    for module, path, params in signatures:
        obj = _resolve(module, path)
        if obj is None:
            out.append(f"{module}.{path} is gone")
            continue
        have = list(inspect.signature(obj).parameters)
        missing = [p for p in params if p not in have]
        if missing:
            out.append(f"{module}.{path} has no parameter {missing[0]!r} (it takes {', '.join(have)})")
    for module, path, line in sources:
        obj = _resolve(module, path)
        if obj is None or line not in inspect.getsource(obj):
            out.append(f"{module}.{path} no longer holds {line!r}")
    return out


def check(signatures=SIGNATURES, sources=SOURCES):
    """Raise a one-line UserError when a PaddleSlim/Paddle internal we rely on has moved."""
    found = problems(signatures, sources)
    if found:
        raise UserError(f"this PaddleSlim/Paddle does not match what ocrslim wraps: {found[0]}"
                        f"{f' (and {len(found) - 1} more)' if len(found) > 1 else ''}; "
                        "install the pinned versions: pip install -r requirements.txt")


def section_keys(section):
    """The keys ACT's `section` (QuantAware, Distillation, TrainConfig) accepts."""
    from paddleslim.auto_compression import strategy_config as sc
    return set(inspect.signature(getattr(sc, section).__init__).parameters) - {"self"}


def ptq_thresholds(ptq):
    """{activation tensor: threshold} that PostTrainingQuantization.quantize() found."""
    scales = getattr(ptq, "_scale_dict", None)
    if not isinstance(scales, dict):
        raise UserError("PaddleSlim's PTQ kept no _scale_dict after quantize(): this Paddle does not match "
                        "what ocrslim reads; install the pinned versions: pip install -r requirements.txt")
    return scales


def require_scales(injected, expected, where):
    """Calibrated scales that never reach the program are the failure that destroys rec accuracy
    (QAT from scale 0.001): stop instead of training from them."""
    if injected == 0 or injected < expected:
        raise UserError(f"{where}: {injected} of {expected} calibrated activation scales reached ACT's program "
                        "(the quantizer layout of this PaddleSlim differs from what ocrslim expects); "
                        "install the pinned versions: pip install -r requirements.txt")


# ACT 2.6 calls fleet.init(is_collective=True) when its _prepare_envs says fleet. PaddleSlim#1848
# (commit 2e947ddf, "fix ACT's bug on distributed training", not in 2.6.0) changed that call to
# fleet.init(). It is deliberately not applied here: in Paddle 2.6's static mode fleet.init()
# builds a parameter-server role, which under paddle.distributed.launch (no parameter servers)
# falls back to a non-distributed world of one worker, and fleet's minimize then inserts no
# all-reduce, so every card would train its own copy (tests/test_distributed.py shows both roles,
# on CPU). What the change fixed upstream is not visible from 2.6; the one case 2.6 gets wrong
# that we know of, fleet in a single process because several GPUs are visible, cannot happen
# here: fleet follows the launch world (distributed.plan, through prepare_envs below).


@contextlib.contextmanager
def wrapped_act(build_quant_program, start_train, prepare_envs):
    """Replace ACT's build_quant_program, AutoCompression._start_train and
    AutoCompression._prepare_envs (its executor, place and fleet decision) for one run.

    Each replacement receives the original as its first argument; all are always restored."""
    import paddleslim.auto_compression.compressor as act
    cls = act.AutoCompression
    originals = act.build_quant_program, cls._start_train, cls._prepare_envs

    def build(*args):
        return build_quant_program(originals[0], *args)

    def start(self, *args):
        return start_train(originals[1], self, *args)

    def envs(self):
        return prepare_envs(originals[2], self)

    act.build_quant_program, cls._start_train, cls._prepare_envs = build, start, envs
    try:
        yield
    finally:
        act.build_quant_program, cls._start_train, cls._prepare_envs = originals


def act_program(info):
    """The static Program inside one of ACT's ProgramInfo (ACT wraps it in a CompiledProgram on GPU)."""
    return getattr(info.program, "_program", info.program)


# ACT's trainer state that the step-0 hook reads and sets (AutoCompression attributes)
ACT_TMP_DIR, ACT_FINAL_METRIC, ACT_BEST_MODEL = "tmp_dir", "final_metric", "best_model"


@contextlib.contextmanager
def histogram_sampler(histogram):
    """PaddleSlim's PTQ hist sampling with `histogram(values, edges)` in place of np.histogram."""
    import numpy as np
    from paddle.static.quantization import post_training_quantization as ptq_mod
    from paddle.static.quantization import utils
    cls = ptq_mod.PostTrainingQuantization
    original = cls._sample_histogram

    def _sample_histogram(self):  # PaddleSlim 2.6's loop, with the histogram call replaced
        for var_name in self._quantized_act_var_name:
            var_tensor = utils.load_variable_data(self._scope, var_name)
            if var_tensor.size == 0 or var_name not in self._sampling_act_histogram:
                self._zero_size_var_names.add(var_name)
                continue
            hist, _ = histogram(np.abs(var_tensor), self._sampling_act_histogram[var_name][1])
            self._sampling_act_histogram[var_name][0] += hist
    cls._sample_histogram = _sample_histogram
    try:
        yield
    finally:
        cls._sample_histogram = original


# ---- channel pruning: PaddleSlim 2.6's Pruner, and the one gap it has on PP-OCRv4 det ----------------

@contextlib.contextmanager
def _quiet_pruner():
    """The Pruner logs every leaf it skips and every depthwise group it changes, at each call."""
    import logging
    names = ("paddleslim.prune.pruner", "paddleslim.prune.collections", "paddleslim.prune.prune_worker",
             "paddleslim.core.graph_wrapper")
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _concat_worker():
    """A prune worker for concat, which PaddleSlim 2.6 lacks: without it every group reaching the DB
    neck's concat (the four 3x3 convs before it, about half of det's multiply-adds) is dropped with
    'Unsupported operator named concat' and silently left unpruned.

    An input's pruned channels are its slice of the output: index i of input k is channel
    offset_k + i of the output, which is what the Pruner's src/target transform expresses. The walk
    below the concat gets a visited table of its own: the Pruner shares one table between groups,
    and the first group to reach the concat would otherwise mark the conv after it as done, so the
    next group through another input left that conv's input channels unpruned (its program still
    ran, on mismatched channels: the executor does not check them)."""
    from paddleslim.prune.prune_worker import PruneWorker, UnsupportOpError

    class concat(PruneWorker):  # the registry keys workers by class name: the op type
        def _prune(self, var, pruned_axis, transforms):
            inputs, out = self.op.inputs("X"), self.op.outputs("Out")[0]
            axis = self.op.attr("axis")
            axis = axis + len(out.shape()) if axis < 0 else axis
            names = [v.name() for v in inputs]
            if var.name() not in names or pruned_axis != axis:
                raise UnsupportOpError("concat: only an input's channels along the concat axis can be pruned")
            k = names.index(var.name())
            start, width = int(sum(v.shape()[axis] for v in inputs[:k])), int(var.shape()[axis])
            slice_of_out = {"src_start": 0, "src_end": width, "target_start": start, "target_end": start + width,
                            "target_len": int(out.shape()[axis])}
            self.visited = {}
            self._visit_and_search(out, pruned_axis, transforms + [slice_of_out])
    return concat


def _register_prune_workers():
    from paddleslim.prune.prune_worker import PRUNE_WORKER
    if PRUNE_WORKER.get("concat") is None:
        PRUNE_WORKER.register(_concat_worker())


def pruning_groups(program, weights):
    """[(master weight, [(weight, axis), ...])]: for each conv weight in `weights`, what PaddleSlim's
    Pruner prunes with its output channels (BN, the depthwise conv after it, the next convs'
    inputs, an SE block, the other branches of an add). A weight already in an earlier group
    starts none of its own."""
    _register_prune_workers()
    from paddleslim.core import GraphWrapper
    from paddleslim.prune.collections import StaticPruningCollections
    with _quiet_pruner():
        found = StaticPruningCollections(list(weights), GraphWrapper(program))
    return [(c.master["name"], [(d.name, d.axis) for d in c.all_pruning_details()]) for c in found]


def prune_program(program, scope, ratios, criterion, place, only_graph=False):
    """(pruned clone of program, {weight: value before}): PaddleSlim's Pruner with {master weight:
    ratio}; the weights in scope are cut in place unless only_graph (then only shapes change)."""
    _register_prune_workers()
    import warnings
    from paddleslim.prune import Pruner
    with _quiet_pruner(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # np.product in its geometry_median
        pruned, backup, _ = Pruner(criterion).prune(program, scope, list(ratios), list(ratios.values()), place,
                                                    only_graph=only_graph, param_backup=not only_graph)
    return pruned, backup or {}
