"""Compression with PaddleSlim AutoCompression: calibrate, then QAT + distillation.

Why calibrate first: ACT's QuantAware starts every activation scale at 0.001
and moves it by a moving average, so the first training steps quantize with
scales far from the real ranges; on PP-OCRv4 rec a few such steps destroy
accuracy (first-step distillation loss ~10,800 vs 0.3 with calibrated scales).
We run post-training calibration on the train images, then write the
calibrated scales into ACT's programs just before training starts.

ACT 2.6 has no option for that, nor for keeping the teacher or chosen layers
in float, so two ACT internals are wrapped for the duration of one run
(`act_hooks`): `build_quant_program` (mark ops to skip, freeze BN, no student
dropout) and `AutoCompression._start_train` (inject scales).
"""
import contextlib
import copy
import logging
import os
import shutil
import tempfile

import numpy as np

from .data import batches, stack_images
from .errors import UserError

log = logging.getLogger("ocrslim")

FINAL_ACTIVATIONS = ("softmax", "sigmoid")


def find_distill_node(program, fetch_name):
    """The pre-activation output of the model: input of the final softmax/sigmoid.

    Distilling logits rather than probabilities keeps gradients useful where
    the softmax/sigmoid saturates.
    """
    ops = program.global_block().ops
    for op in reversed(ops):
        if fetch_name in op.output_arg_names:
            if op.type in FINAL_ACTIVATIONS:
                return op.input("X")[0]
            return fetch_name
    for op in reversed(ops):
        if op.type in FINAL_ACTIVATIONS:
            return op.input("X")[0]
    raise UserError("cannot find the model's final softmax/sigmoid; set Distillation.node")


def check_nodes(program, nodes):
    """Fail with candidates when a configured tensor name is not in the model."""
    names = set(program.global_block().vars)
    missing = [n for n in nodes if n not in names]
    if missing:
        ops = program.global_block().ops
        tail = [name for op in ops[-8:] for name in op.output_arg_names]
        raise UserError(f"tensor {missing[0]!r} is not in the model; candidates near the output: "
                        f"{', '.join(tail)} (leave Distillation.node empty to find it automatically)")


def train_reader(samples, batch_size, feed_name, seed=0, rank=0, world=1):
    """A callable returning an iterator of feed dicts, as ACT wants.

    Distillation needs images only, so labels are dropped. Each call is one
    epoch with a new shuffle; with several cards each rank reads its shard.
    """
    epoch = [0]

    def reader():
        order = np.random.default_rng(seed + epoch[0]).permutation(len(samples))
        epoch[0] += 1
        for batch, _ in batches(samples, batch_size, indices=order[rank::world]):
            if len(batch) == batch_size:  # fixed shapes: drop the ragged tail
                yield {feed_name: stack_images(batch)}
    return reader


def config_train_reader(config, task_name, feed_name, rank=0, world=1):
    """train_reader over config['Train']: what run.py calibrates and trains on, and
    what bench.py --peer calibrates on (same images, same shuffle)."""
    from .data import build_samples
    train = build_samples(config["Train"], task_name)
    return train_reader(train, config["Train"]["loader"]["batch_size_per_card"], feed_name,
                        seed=config["Global"]["seed"], rank=rank, world=world)


def calibration_batches(reader, batch_nums):
    out = []
    while len(out) < batch_nums:
        got = False
        for feed in reader():
            out.append(feed)
            got = True
            if len(out) == batch_nums:
                break
        if not got:
            raise UserError("no full training batch: lower Train.loader.batch_size_per_card or add images")
    return out


class _ArrayDataset:
    def __init__(self, arrays):
        self.arrays = arrays

    def __getitem__(self, i):
        return self.arrays[i]

    def __len__(self):
        return len(self.arrays)


def calibrate(model_files, feeds, quant_cfg, keep_float, algo, place, hist_percent):
    """Post-training calibration: {activation tensor name: threshold}.

    hist_percent (algo hist): the share of each activation's histogram kept inside its threshold.

    Runs in its own scope so nothing leaks into ACT's programs.
    """
    import paddle
    from paddle.static.quantization import PostTrainingQuantization
    name = next(iter(feeds[0]))
    images = [img for feed in feeds for img in feed[name]]
    bs = len(feeds[0][name])
    prog = paddle.static.Program()
    with paddle.static.program_guard(prog):
        var = paddle.static.data(name=name, shape=[-1] + list(images[0].shape), dtype="float32")
    loader = paddle.io.DataLoader(_ArrayDataset(images), feed_list=[var], batch_size=bs,
                                  return_list=False, places=place, shuffle=False)
    scope = paddle.static.Scope()
    with paddle.static.scope_guard(scope), uniform_histograms():
        return _run_ptq(PostTrainingQuantization, place, model_files, loader, len(feeds), algo,
                        quant_cfg, keep_float, scope, hist_percent)


def histogram_uniform(values, edges):
    """np.histogram(values, bins=edges) for evenly spaced edges, the same counts, without a sort.

    Given an edge array, numpy sorts the data in blocks to place it (the general path); given a
    bin count and a range it computes each bin from the value and then corrects it against the
    same edges, so the counts are equal. PaddleSlim's hist calibration passes the edge array:
    in a profile of rec calibration 34 s of 130 were np.sort, and without AVX-512 numpy 1.26
    sorts with scalar code (AVX-512 machines get its SIMD sort), which fits hist calibration
    taking ~15 min on the AVX2 CPU against ~150 s on the AVX-512 one. Rec calibration on 2
    batches with numpy's AVX-512 dispatch off: 263 s with the edge array, 83 s with this.
    """
    return np.histogram(values, bins=len(edges) - 1, range=(float(edges[0]), float(edges[-1])))


@contextlib.contextmanager
def uniform_histograms():
    """PaddleSlim's PTQ hist sampling through histogram_uniform, for one calibration; restored after."""
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
            hist, _ = histogram_uniform(np.abs(var_tensor), self._sampling_act_histogram[var_name][1])
            self._sampling_act_histogram[var_name][0] += hist
    cls._sample_histogram = _sample_histogram
    try:
        yield
    finally:
        cls._sample_histogram = original


def _run_ptq(PostTrainingQuantization, place, model_files, loader, batch_nums, algo, quant_cfg, keep_float, scope,
             hist_percent):
    import paddle
    ptq = PostTrainingQuantization(
        executor=paddle.static.Executor(place), model_dir=model_files[0],
        model_filename=model_files[1], params_filename=model_files[2],
        data_loader=loader, batch_nums=batch_nums, algo=algo, hist_percent=hist_percent,
        quantizable_op_type=quant_cfg.get("quantize_op_types"),
        weight_quantize_type=quant_cfg.get("weight_quantize_type", "channel_wise_abs_max"),
        onnx_format=True, skip_tensor_list=list(keep_float), scope=scope)
    ptq.quantize()
    return {k: float(np.max(v)) for k, v in ptq._scale_dict.items()}


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
        teacher = any(n.startswith("teacher_") for n in inputs)
        if teacher or any(n in keep_float for n in inputs):
            op._set_attr("op_namescope", "/skip_quant")
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
    """
    import paddle
    scope = paddle.static.global_scope()
    state = 1.0 / (1.0 - moving_rate)

    def put(name, value):
        scope.find_var(name).get_tensor().set(np.array([value], "float32"), place)

    done = 0
    block = program.global_block()
    for op in block.ops:
        if op.type not in ("quantize_linear", "moving_average_abs_max_scale"):
            continue
        if "InState" not in op.input_names or not op.input("InState"):
            continue
        x = op.input("X")[0]
        # weights get per-channel scales computed from the weights themselves
        if x not in scales or block._find_var_recursive(x).persistable:
            continue
        scale_var = op.input("Scale")[0] if op.type == "quantize_linear" else op.output("OutScale")[0]
        put(scale_var, scales[x])
        put(op.input("InState")[0], state)
        put(op.input("InAccum")[0], scales[x] * state)
        done += 1
    return done


def keeps_calibration(calibrated, trained):
    """Do no harm: the calibrated-only state is kept only when training ended below it."""
    return calibrated is not None and trained is not None and calibrated > trained


@contextlib.contextmanager
def act_hooks(keep_float, scales, moving_rate, place, choice=None):
    """Wrap the two ACT internals for one run; always restore them.

    choice (a dict) receives the Eval metric of the calibrated-only state (step 0, before
    any training step), the best trained one, and which of the two ACT saves."""
    import paddle
    import paddleslim.auto_compression.compressor as act
    build_quant, start_train = act.build_quant_program, act.AutoCompression._start_train
    choice = {} if choice is None else choice

    def build_quant_program(exe, place_, config, train_info, test_info):
        for info in (train_info, test_info):
            _prepare_student(info.program, keep_float)
        return build_quant(exe, place_, config, train_info, test_info)

    def _start_train(self, train_info, test_info, strategy, train_config):
        program = getattr(train_info.program, "_program", train_info.program)
        n = _inject_scales(program, scales, moving_rate, place)
        log.info("started %d activation quantizers from calibrated scales", n)
        # step 0, the calibrated-only model: measured with the same eval as training, and kept
        # in ACT's own format, so that ACT saves it instead when training makes it worse
        test_program = getattr(test_info.program, "_program", test_info.program)
        log.info("set %d weight quantizer scales for the step-0 eval", _init_weight_scales(test_program, place))
        calibrated = None
        if self.eval_function is not None:
            calibrated = self.eval_function(self._exe, test_info.program, test_info.feed_target_names,
                                            test_info.fetch_targets)
            log.info("calibrated only (step 0): Eval metric %.4f", calibrated)
        snapshot = os.path.join(self.tmp_dir, "ocrslim_calibrated")
        paddle.static.save(program=test_program, model_path=snapshot)  # .pdparams, .pdopt, .pdmodel
        out = start_train(self, train_info, test_info, strategy, train_config)
        trained = self.final_metric if self.eval_function is not None else None
        keep = keeps_calibration(calibrated, trained)
        if keep:  # ACT's _save_model loads best_model.* when present: make it the calibrated state
            best = os.path.join(self.tmp_dir, "best_model")
            for ext in (".pdparams", ".pdopt", ".pdmodel"):
                os.replace(snapshot + ext, best + ext)
            self.final_metric = calibrated
        else:
            for ext in (".pdparams", ".pdopt", ".pdmodel"):
                if os.path.exists(snapshot + ext):
                    os.remove(snapshot + ext)
        choice.update(calibrated=calibrated, trained=trained, kept="calibrated" if keep else "trained")
        return out

    act.build_quant_program = build_quant_program
    act.AutoCompression._start_train = _start_train
    try:
        yield choice
    finally:
        act.build_quant_program = build_quant
        act.AutoCompression._start_train = start_train


def act_config(config, distill_node, world):
    """The ACT strategy dict: QuantAware + Distillation + TrainConfig from our config.

    With several cards the learning rate and cosine T_max follow the card
    count: the global batch grows with `world`, so lr scales linearly, and each
    card runs train_iter / world steps for the same number of epochs.
    """
    quant = copy.deepcopy(config["QuantAware"])
    distill = copy.deepcopy(config["Distillation"])
    distill["node"] = [distill_node]
    train = copy.deepcopy(config["TrainConfig"])
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
    return {"QuantAware": quant, "Distillation": distill, "TrainConfig": train}


def run_act(model_files, save_dir, strategy, reader, eval_callback, keep_float, scales, place):
    """Run ACT on a private copy of the model (ACT rewrites the .pdmodel it is given).

    Returns act_hooks' choice: {"calibrated", "trained": Eval metric, "kept": which was saved}."""
    from paddleslim.auto_compression import AutoCompression
    model_dir, model_file, params_file = model_files
    work = tempfile.mkdtemp(prefix="ocrslim-model-")
    try:
        shutil.copy(os.path.join(model_dir, model_file), os.path.join(work, "inference.pdmodel"))
        shutil.copy(os.path.join(model_dir, params_file), os.path.join(work, "inference.pdiparams"))
        rate = float(strategy["QuantAware"].get("moving_rate", 0.9))
        with act_hooks(set(keep_float), scales, rate, place) as choice:
            ac = AutoCompression(model_dir=work, model_filename="inference.pdmodel",
                                 params_filename="inference.pdiparams", save_dir=save_dir,
                                 config=copy.deepcopy(strategy), train_dataloader=reader,
                                 eval_callback=eval_callback, deploy_hardware=None)
            ac.compress()
        return choice
    finally:
        shutil.rmtree(work, ignore_errors=True)
