"""The qat strategy's engine: PaddleSlim AutoCompression QAT + distillation from calibrated scales.

Why calibrate first: ACT's QuantAware starts every activation scale at 0.001
and moves it by a moving average, so the first training steps quantize with
scales far from the real ranges; on PP-OCRv4 rec a few such steps destroy
accuracy (first-step distillation loss ~10,800 vs 0.3 with calibrated scales).
We run post-training calibration on the train images, then write the
calibrated scales into ACT's programs just before training starts.

ACT 2.6 has no option for that, nor for keeping the teacher or chosen layers
in float, nor for where it trains, so three ACT internals are wrapped for the
duration of one run (`act_hooks`, through act_compat): `build_quant_program`
(mark ops to skip, freeze BN, no student dropout), `AutoCompression._start_train`
(inject scales, measure and keep the calibrated state) and
`AutoCompression._prepare_envs` (fleet from the launch world, our card).
"""
import contextlib
import copy
import logging
import os
import shutil
import tempfile

import numpy as np

from ..errors import UserError
from . import act_compat

log = logging.getLogger("ocrslim")

FINAL_ACTIVATIONS = ("softmax", "sigmoid")


def _fetched(program, fetch_name):
    """The fetched tensor and the op that makes it, looking through the identity scale op
    that save_inference_model puts before a fetch (save_infer_model/scale_*)."""
    producers = {name: op for op in program.global_block().ops for name in op.output_arg_names}
    name, op = fetch_name, producers.get(fetch_name)
    while op is not None and op.type == "scale" and op.attr("scale") == 1.0 and op.attr("bias") == 0.0:
        name = op.input("X")[0]
        op = producers.get(name)
    return name, op


def find_distill_node(program, fetch_name):
    """The pre-activation output of the model: input of the final softmax/sigmoid.

    Distilling logits rather than probabilities keeps gradients useful where
    the softmax/sigmoid saturates.
    """
    name, op = _fetched(program, fetch_name)
    if op is not None:
        return op.input("X")[0] if op.type in FINAL_ACTIVATIONS else name
    for op in reversed(program.global_block().ops):
        if op.type in FINAL_ACTIVATIONS:
            return op.input("X")[0]
    raise UserError("cannot find the model's final softmax/sigmoid; set Distillation.node")


# Distillation.node / Prune.distill_node may say this instead of a tensor name: the model's
# output after its final activation (the det probability map), whatever the program calls it.
OUTPUT = "output"


def find_output_node(program, fetch_name):
    """The fetched tensor (the model's output after its final activation)."""
    return _fetched(program, fetch_name)[0]


def distill_node(program, fetch_name, configured):
    """The tensor to distil: the configured one (a list of at most one name; "output" for the
    model's output), else the model's pre-activation output (find_distill_node)."""
    node = (configured or [None])[0]
    if node == OUTPUT:
        return find_output_node(program, fetch_name)
    return node or find_distill_node(program, fetch_name)


def check_nodes(program, nodes):
    """Fail with candidates when a configured tensor name is not in the model."""
    names = set(program.global_block().vars)
    missing = [n for n in nodes if n not in names]
    if missing:
        ops = program.global_block().ops
        tail = [name for op in ops[-8:] for name in op.output_arg_names]
        raise UserError(f"tensor {missing[0]!r} is not in the model; candidates near the output: "
                        f"{', '.join(tail)} (leave Distillation.node empty to find it automatically)")


def _prepare_student(program, keep_float):
    """Before the quant passes: which ops stay float, and a stable student.

    - teacher ops (prefixed 'teacher_') must stay FP32: ACT would otherwise
      fake-quantize the teacher's matmul inputs (matmul_v2 is also an
      activation-quant type), which corrupts the distillation target;
    - ops reading a `keep_float` tensor keep that layer in float;
    - student dropout is off (ACT turns every op to training mode);
    - batch norm keeps its running statistics (momentum 1: running = running * 1
      + batch * 0). ACT trains with BN in training mode, which also moves the
      running mean and variance toward each batch's; on real ICDAR2015 images
      (batch 4, 544x960) 40 steps shrank the variance of the DB head's first BN
      10-30x and grew the second's 4-6x, and dev hmean fell from 0.356
      (calibrated only) to 0.144, while the weights moved by under 0.5%.
      Forcing use_global_stats instead made PP-OCRv4 det's BN gradients NaN in
      Paddle 2.6 (all BN weights NaN after 6 steps even at lr 0), so training
      still normalizes with batch statistics; only the stored ones stay.
    """
    for op in program.global_block().ops:
        inputs = op.input_arg_names
        teacher = any(n.startswith(act_compat.TEACHER_PREFIX) for n in inputs)
        if teacher or any(n in keep_float for n in inputs):
            op._set_attr("op_namescope", act_compat.SKIP_QUANT)
        if op.type == "batch_norm":
            op._set_attr("momentum", 1.0)
        if teacher:
            continue
        if op.type == "dropout":
            op._set_attr("dropout_prob", 0.0)


def _init_weight_scales(program, place):
    """Give every weight quantizer of an eval program the scale training would compute (abs max
    per output channel). In ACT's eval program a weight quantize_linear reads its Scale variable,
    which only a training step writes: evaluated before the first step, the untouched scales
    made rec accuracy 0.0. Returns how many were set."""
    import paddle
    scope = paddle.static.global_scope()
    block, done = program.global_block(), 0
    for op in block.ops:
        if op.type != "quantize_linear" or not block._find_var_recursive(op.input("X")[0]).persistable:
            continue
        weight = np.array(scope.find_var(op.input("X")[0]).get_tensor())
        scale = scope.find_var(op.input("Scale")[0]).get_tensor()
        axis = op.attr("quant_axis")
        if axis in (None, -1) or weight.ndim == 0:
            value = np.abs(weight).max(keepdims=True).ravel()
        else:
            value = np.abs(np.moveaxis(weight, axis, 0)).reshape(weight.shape[axis], -1).max(axis=1)
        old = np.array(scale)
        scale.set(value.astype(old.dtype).reshape(old.shape), place)
        done += 1
    return done


def _inject_scales(program, scales, moving_rate, place):
    """Start every activation quantizer from its calibrated threshold.

    The moving average is scale = accum / state; setting state = 1/(1-rate)
    (its steady state) and accum = scale * state makes training continue from
    the calibrated value instead of drifting in from 0.001.
    Returns (set, total): how many activation input quantizers got a scale, of how many there are.
    """
    import paddle
    scope = paddle.static.global_scope()
    state = 1.0 / (1.0 - moving_rate)

    def put(name, value):
        scope.find_var(name).get_tensor().set(np.array([value], "float32"), place)

    done = total = 0
    block = program.global_block()
    for op in block.ops:
        if op.type not in ("quantize_linear", "moving_average_abs_max_scale"):
            continue
        if "InState" not in op.input_names or not op.input("InState"):
            continue
        x = op.input("X")[0]
        # weights get per-channel scales computed from the weights themselves
        if block._find_var_recursive(x).persistable:
            continue
        # an input quantizer without a scale would start at 0.001; output observers
        # (moving_average_abs_max_scale) only record ranges for export
        total += op.type == "quantize_linear"
        if x not in scales:
            continue
        scale_var = op.input("Scale")[0] if op.type == "quantize_linear" else op.output("OutScale")[0]
        put(scale_var, scales[x])
        put(op.input("InState")[0], state)
        put(op.input("InAccum")[0], scales[x] * state)
        done += op.type == "quantize_linear"
    return done, total


def keeps_calibration(calibrated, trained):
    """Do no harm: the calibrated-only state is kept only when training ended below it."""
    return calibrated is not None and trained is not None and calibrated > trained


@contextlib.contextmanager
def act_hooks(keep_float, scales, moving_rate, place, choice=None, fleet=False, rank=0):
    """Wrap the three ACT internals for one run (act_compat restores them).

    choice (a dict) receives the Eval metric of the calibrated-only state (step 0, before
    any training step), the best trained one, and which of the two ACT saves (rank 0 only).
    fleet: whether ACT trains data-parallel (distributed.plan); place: where."""
    import paddle
    choice = {} if choice is None else choice
    built = []

    def prepare_envs(_original, _self):
        # ACT's own: fleet when more than one GPU is visible, and an executor on card 0 or
        # launch's card (it drops the N of gpu:N); ours: fleet from the launch world, our place
        return paddle.static.Executor(place), place, fleet

    def build_quant_program(original, exe, place_, config, train_info, test_info):
        for info in (train_info, test_info):
            _prepare_student(info.program, keep_float)
        built.append(True)
        return original(exe, place_, config, train_info, test_info)

    def start_train(original, self, train_info, test_info, strategy, train_config):
        program = act_compat.act_program(train_info)
        if not built:  # distillation alone (pruning's fine-tuning): no quant program was built
            for info in (train_info, test_info):
                _prepare_student(act_compat.act_program(info), keep_float)
        n, total = _inject_scales(program, scales, moving_rate, place)
        if scales:  # a quantizer left without its scale starts at 0.001 (see the module doc)
            act_compat.require_scales(n, total, "QAT start")
        # step 0, the calibrated-only model (or the pruned one, before fine-tuning): measured with
        # the same eval as training, and kept in ACT's own format, so that ACT saves it instead
        # when training makes it worse
        test_program = act_compat.act_program(test_info)
        weights = _init_weight_scales(test_program, place)
        if built:
            log.info("started %d of %d activation quantizers from calibrated scales; set %d weight quantizer "
                     "scales for the step-0 eval", n, total, weights)
        calibrated = None
        if self.eval_function is not None:
            calibrated = self.eval_function(self._exe, test_info.program, test_info.feed_target_names,
                                            test_info.fetch_targets)
            log.info("before training (step 0): Eval metric %.4f", calibrated)
        if rank != 0:  # only rank 0 evaluates and saves (strategies.act_eval): no snapshot to keep
            return original(self, train_info, test_info, strategy, train_config)
        tmp_dir = getattr(self, act_compat.ACT_TMP_DIR)
        snapshot = os.path.join(tmp_dir, "ocrslim_calibrated")
        paddle.static.save(program=test_program, model_path=snapshot)  # .pdparams, .pdopt, .pdmodel
        out = original(self, train_info, test_info, strategy, train_config)
        trained = getattr(self, act_compat.ACT_FINAL_METRIC) if self.eval_function is not None else None
        keep = keeps_calibration(calibrated, trained)
        if keep:  # ACT's _save_model loads best_model.* when present: make it the calibrated state
            best = os.path.join(tmp_dir, act_compat.ACT_BEST_MODEL)
            for ext in (".pdparams", ".pdopt", ".pdmodel"):
                os.replace(snapshot + ext, best + ext)
            setattr(self, act_compat.ACT_FINAL_METRIC, calibrated)
        else:
            for ext in (".pdparams", ".pdopt", ".pdmodel"):
                if os.path.exists(snapshot + ext):
                    os.remove(snapshot + ext)
        choice.update(calibrated=calibrated, trained=trained, kept="calibrated" if keep else "trained")
        return out

    with act_compat.wrapped_act(build_quant_program, start_train, prepare_envs):
        yield choice


def act_config(config, distill_node, world, train_images=None):
    """The ACT strategy dict: QuantAware + Distillation + TrainConfig from our config (see
    train_config for TrainConfig)."""
    return {"QuantAware": copy.deepcopy(config["QuantAware"]), **distill_config(config, distill_node),
            "TrainConfig": train_config(config["TrainConfig"], config, world, train_images)}


def distill_config(config, distill_node):
    """ACT's Distillation section on `distill_node` (the teacher: see run_act)."""
    distill = copy.deepcopy(config["Distillation"])
    distill["node"] = [distill_node]
    return {"Distillation": distill}


def train_config(section, config, world, train_images=None):
    """ACT's TrainConfig from ours.

    TrainConfig.epochs (the upstream spelling) becomes train_iter = epochs x the steps in one
    pass over the `train_images` at the config's batch; a cosine schedule without T_max gets
    T_max = train_iter (ACT hands the dict to paddle, which requires it).
    With several cards the learning rate and cosine T_max follow the card
    count: the global batch grows with `world`, so lr scales linearly, and each
    card runs train_iter / world steps for the same number of epochs.
    """
    train = copy.deepcopy(section)
    epochs = train.pop("epochs", None)
    if not train.get("train_iter"):
        batch = config["Train"]["loader"]["batch_size_per_card"]
        train["train_iter"] = max(1, int(epochs) * (int(train_images) // batch))
        log.info("TrainConfig.epochs %s: %d steps (%d Train images at batch %d)", epochs,
                 train["train_iter"], train_images, batch)
    lr = train.get("learning_rate")
    if isinstance(lr, dict) and lr.get("type") == "CosineAnnealingDecay" and not lr.get("T_max"):
        lr["T_max"] = int(train["train_iter"])
    train["train_iter"] = max(1, int(train["train_iter"]) // world)
    train["eval_iter"] = max(1, int(train.get("eval_iter") or train["train_iter"]) // world)
    lr = train.get("learning_rate")
    if isinstance(lr, dict):
        if "learning_rate" in lr:
            lr["learning_rate"] = float(lr["learning_rate"]) * world
        if lr.get("T_max"):
            lr["T_max"] = max(1, int(lr["T_max"]) // world)
    elif lr is not None:
        train["learning_rate"] = float(lr) * world
    return train


def copy_model(model_files, out_dir):
    """model_files as out_dir/inference.pdmodel + inference.pdiparams."""
    model_dir, model_file, params_file = model_files
    os.makedirs(out_dir, exist_ok=True)
    shutil.copy(os.path.join(model_dir, model_file), os.path.join(out_dir, "inference.pdmodel"))
    shutil.copy(os.path.join(model_dir, params_file), os.path.join(out_dir, "inference.pdiparams"))


def run_act(model_files, save_dir, strategy, reader, eval_callback, keep_float, scales, place,
            fleet=False, rank=0, teacher_files=None):
    """Run ACT on a private copy of the model (ACT rewrites the .pdmodel it is given).

    teacher_files: the distillation teacher when it is another model (pruning's unpruned FP32
    model), also copied, so that no user folder is handed to ACT.
    Returns act_hooks' choice: {"calibrated", "trained": Eval metric, "kept": which was saved}."""
    from paddleslim.auto_compression import AutoCompression
    work = tempfile.mkdtemp(prefix="ocrslim-model-")
    try:
        copy_model(model_files, work)
        if teacher_files:
            copy_model(teacher_files, os.path.join(work, "teacher"))
            strategy = dict(strategy, Distillation=dict(
                strategy["Distillation"], teacher_model_dir=os.path.join(work, "teacher"),
                teacher_model_filename="inference.pdmodel", teacher_params_filename="inference.pdiparams"))
        rate = float((strategy.get("QuantAware") or {}).get("moving_rate", 0.9))
        with act_hooks(set(keep_float), scales, rate, place, fleet=fleet, rank=rank) as choice:
            ac = AutoCompression(model_dir=work, model_filename="inference.pdmodel",
                                 params_filename="inference.pdiparams", save_dir=save_dir,
                                 config=copy.deepcopy(strategy), train_dataloader=reader,
                                 eval_callback=eval_callback, deploy_hardware=None)
            ac.compress()
        return choice
    finally:
        shutil.rmtree(work, ignore_errors=True)
