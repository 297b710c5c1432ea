"""Compression strategies, a registry shaped like tasks.TASKS.

A strategy is step 2 of run.py: it writes an int8 model into the staging
folder it is given and says which candidate it kept and why. Steps 1, 3, 4
and 5 (FP32 eval, eval of what was saved, report, deployment benchmark) are
the same for every strategy.

- qat: calibrate on Train images, then ACT quantization-aware training with
  distillation from the FP32 model, started from the calibrated scales; the
  calibrated state is kept when training ends below it on Eval.
- ptq: calibrate only (post-training quantization); minutes, no training.

The config's sections select one (a TrainConfig section means qat, none means
ptq); `run.py --strategy NAME` overrides that.
"""
import functools
import logging
import os
import shutil
import tempfile
import time

from .. import config as cfg
from .. import model as mdl
from ..data import build_samples, calibration_batches, config_train_reader
from ..errors import UserError
from ..evaluate import evaluate
from . import act_compat, calibrate, qat

log = logging.getLogger("ocrslim")


def check_calibration(config):
    """Calibration keys and the Train images it reads, checked before any work."""
    cfg.require(config, "Train.dataset.data_dir", "Train.dataset.label_file_list", "Train.dataset.transforms")
    calib = config["Calibration"]
    if calib["algo"] not in calibrate.ALGOS:
        raise UserError(f"Calibration.algo {calib['algo']!r} is not one of {', '.join(calibrate.ALGOS)}")
    hist_percent = calib["hist_percent"]
    if not isinstance(hist_percent, (int, float)) or not 0 < hist_percent <= 1:
        raise UserError(f"Calibration.hist_percent must be in (0, 1], not {hist_percent!r}")
    if not isinstance(calib["batch_nums"], int) or calib["batch_nums"] < 1:
        raise UserError(f"Calibration.batch_nums must be a whole number >= 1, not {calib['batch_nums']!r}")


def run_calibration(run, feed_name, place, save_dir=None):
    """Calibrate on run's Train images: {tensor: threshold}; with save_dir, also save the model there.

    The first calibration of a run is kept (run.thresholds) and reused by the next ones, which
    differ only in Calibration.keep_float (--max_drop's attempts; see calibrate.calibrate)."""
    settings = calibrate.settings(run.config)
    reader = config_train_reader(run.config, run.task_cls.name, feed_name, run.rank, run.world)
    t0 = time.time()
    known = run.thresholds
    feeds = calibration_batches(reader, 1 if known else settings["batch_nums"])
    scales = calibrate.calibrate(run.model_files, feeds, settings, place, save_dir=save_dir, thresholds=known)
    if known is None:
        run.thresholds = scales
        log.info("calibrated %d tensors (%s, %d batches) in %.0fs", len(scales), settings["algo"],
                 settings["batch_nums"], time.time() - t0)
    else:
        log.info("reused the run's calibrated thresholds (%d tensors) in %.0fs", len(scales), time.time() - t0)
    return scales, reader


def act_eval(exe, program, feed_names, fetch_targets, samples, task, batch_size, rank, progress, history=None):
    """ACT's eval callback: the shared evaluate(), main indicator as a float.

    Evaluation runs on rank 0 only; other ranks return -1 so they never save
    a 'best' checkpoint into ACT's shared temp folder. history: every result,
    in order (the first is the calibrated-only step 0, see qat.act_hooks).
    """
    if rank != 0:
        return -1.0
    predict = mdl.predictor(exe, program, feed_names, fetch_targets)
    result = evaluate(predict, samples, task, batch_size, desc="eval (in training)", progress=progress)
    if history is not None:
        history.append(result)
    return float(result["metrics"][task.main_indicator])


class Qat:
    name = "qat"
    summary = "calibration, then ACT quantization-aware training with distillation from FP32"
    labels = {"trained": "ocrslim: ACT QAT + distillation",
              "calibrated": "ocrslim: calibrated scales only (QAT was worse on Eval)"}

    def check(self, config):
        """Unknown ACT keys fail here, not minutes later inside ACT."""
        for section in act_compat.ACT_SECTIONS:
            allowed = act_compat.section_keys(section)
            unknown = set(config[section]) - allowed
            if unknown:
                raise UserError(f"unknown key {section}.{sorted(unknown)[0]}; {section} takes: "
                                f"{', '.join(sorted(allowed))}")
        if not config["TrainConfig"].get("epochs"):
            cfg.require(config, "TrainConfig.train_iter")
        if config["QuantAware"].get("onnx_format") is False:
            raise UserError("QuantAware.onnx_format false: set it true (the deployment runtimes here read "
                            "the quantize_linear/dequantize_linear format)")
        check_calibration(config)
        if config["QuantAware"].get("use_pact"):
            log.warning("QuantAware.use_pact is on: on PP-OCRv4 det it zeroes the output (see docs/recipe.md)")

    def settings(self, config):
        return {"Calibration": calibrate.settings(config),
                **{s: config[s] for s in act_compat.ACT_SECTIONS}}

    def compress(self, run):
        """Calibrate, then ACT QAT + distillation into run.staging. Returns the candidates: the Eval
        results of the calibrated-only state (step 0) and of the best trained one, and which of
        the two ACT saved ("kept"); empty on ranks other than 0."""
        import paddle
        config = run.config
        place = mdl.place(config["Global"]["devices"])
        _, program, feeds, fetches = mdl.load(config["Global"])
        node = qat.distill_node(program, fetches[0].name, config["Distillation"].get("node"))
        keep_float = config["Calibration"]["keep_float"]
        qat.check_nodes(program, [node] + list(keep_float))
        log.info("distillation node: %s; kept in float: %s", node, keep_float or "none")
        scales, reader = run_calibration(run, feeds[0], place)
        paddle.enable_static()
        history = []
        callback = functools.partial(act_eval, samples=run.samples, task=run.task_cls(config),
                                     batch_size=config["Eval"]["loader"]["batch_size_per_card"],
                                     rank=run.rank, progress=run.progress, history=history)
        train_images = len(build_samples(config, "Train", run.task_cls.name))  # for TrainConfig.epochs
        act = qat.act_config(config, node, run.world, train_images)
        choice = qat.run_act(run.model_files, run.staging, act, reader, callback, keep_float, scales, place,
                             fleet=run.device["fleet"], rank=run.rank)
        if run.rank != 0 or not history:
            return {}
        key = run.task_cls.main_indicator
        trained = max(history[1:], key=lambda r: r["metrics"][key]) if len(history) > 1 else None
        return {"calibrated": history[0], "trained": trained, "kept": choice.get("kept", "trained")}

    def choose(self, task_cls, candidates, saved):
        """(candidates, chosen, why): do no harm (qat.keeps_calibration decided inside ACT): the
        trained model unless it is worse on Eval than calibration alone."""
        return do_no_harm(task_cls, candidates, saved, ("calibrated", "trained"), "training", (
            "That happens with too few steps from the calibrated scales or when the Train images differ "
            "from the Eval images (domain gap): raise TrainConfig.train_iter, lower the learning rate, or "
            "train on data like the Eval set"))


def do_no_harm(task_cls, candidates, saved, names, what, advice):
    """(candidates, chosen, why) for a strategy whose training started from a measured state
    (names: (start, trained)): the trained model unless it is worse on Eval than the start, as
    ACT saved it (qat.act_hooks)."""
    start, trained = names
    if not candidates:  # no Eval during training: what was saved is the trained model
        return ({trained: saved}, trained,
                f"no Eval ran during {what} (TrainConfig.eval_iter): the {trained} model is kept")
    candidates = {start: candidates[start], trained: candidates[trained] or saved}
    key = task_cls.main_indicator
    before, after = candidates[start]["metrics"][key], candidates[trained]["metrics"][key]
    if not qat.keeps_calibration(before, after):
        return candidates, trained, f"{what} kept or raised the Eval {key} ({before:.4f} {start}, {after:.4f} {trained})"
    return candidates, start, (f"{what} lowered the Eval {key} from {before:.4f} ({start}) to {after:.4f}, so the "
                               f"{start} model is kept. {advice}")


class Ptq:
    name = "ptq"
    summary = "post-training quantization: calibration on Train images only, no training"
    labels = {"calibrated": "ocrslim: PTQ (calibration only)"}

    def check(self, config):
        check_calibration(config)
        for section in ("Distillation", "TrainConfig"):
            if config.get(section):
                log.info("strategy ptq: the %s section is not used", section)

    def settings(self, config):
        return {"Calibration": calibrate.settings(config)}

    def compress(self, run):
        """Calibrate and save the calibrated model into run.staging (rank 0 only: PTQ needs no cards)."""
        if run.rank != 0:
            return {}
        g = run.config["Global"]
        place = mdl.place(g["devices"])
        _, program, feeds, _ = mdl.load(g)
        qat.check_nodes(program, list(run.config["Calibration"]["keep_float"]))
        run_calibration(run, feeds[0], place, save_dir=run.staging)
        return {}

    def choose(self, task_cls, candidates, saved):
        return {}, "calibrated", "post-training quantization: the calibrated model, no training step"


def check_prune(config):
    """What the prune strategies read, checked before any work."""
    from . import prune
    s = prune.settings(config)
    if s["flops_ratio"] is None and s["min_metric"] is None:
        raise UserError("pruning needs a target: set Prune.flops_ratio (share of the multiply-adds to remove) "
                        "or Prune.min_metric (the lowest predicted Eval metric to accept)")
    if config["Prune"]["sensitivity"] and not os.path.isfile(config["Prune"]["sensitivity"]):
        raise UserError(f"Prune.sensitivity {config['Prune']['sensitivity']}: no such file (write one with "
                        "run.py --analyze prune)")
    cfg.require(config, "Train.dataset.data_dir", "Train.dataset.label_file_list", "Train.dataset.transforms")
    node = config["Prune"]["distill_node"]
    if not isinstance(node, list) or len(node) > 1 or not all(isinstance(n, str) for n in node):
        raise UserError(f"Prune.distill_node {node!r}: give a list of one tensor name, e.g. [sigmoid_0.tmp_0], "
                        "[output] for the model's output, or [] for Distillation.node's")
    train = cfg.merge(config["TrainConfig"] or {}, config["Prune"]["finetune"] or {})
    if not train.get("train_iter") and not train.get("epochs"):
        raise UserError("pruning fine-tunes: set TrainConfig.train_iter (or Prune.finetune.train_iter)")
    for section, keys in (("Distillation", config["Distillation"] or {}), ("TrainConfig", train)):
        unknown = set(keys) - act_compat.section_keys(section)
        if unknown:
            raise UserError(f"unknown key {section}.{sorted(unknown)[0]}; {section} takes: "
                            f"{', '.join(sorted(act_compat.section_keys(section)))}")


def prune_table(run):
    """The pruning sensitivity table: Prune.sensitivity, or computed now (run.py --analyze prune)."""
    import json
    from . import prune
    path = run.config["Prune"]["sensitivity"]
    if path:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    log.info("ranking the groups for pruning (run.py --analyze prune, on demand)")
    return prune.analyze(run.config, run.task_cls, run.model_files, run.progress)


def prune_and_finetune(run, out_dir):
    """Prune run's FP32 model to the config's target and fine-tune it with distillation from the
    unpruned model into out_dir. Sets run.prune_info; returns the candidates (Eval results of the
    pruned model before any step and of the best fine-tuned one, and which ACT saved)."""
    import paddle
    from ..deploy import paddle_passes
    from ..deploy.paddle_graph import static_mode
    from . import prune
    config, s = run.config, prune.settings(run.config)
    table = prune_table(run)
    place = mdl.place(config["Global"]["devices"])
    pruned_dir = tempfile.mkdtemp(prefix="ocrslim-pruned-")
    try:
        with static_mode():
            graph = prune.load(run.model_files)
            spatial = prune.spatial_sizes(graph, paddle.static.Executor(place), table["input_shape"])
            chosen = prune.choose(table, graph, spatial, s, run.fp32["metrics"][run.task_cls.main_indicator], place)
            before = prune.cost(graph.program, spatial)
            program, _ = prune.prune(graph, chosen["ratios"], s["criterion"], place)
            graph.adopt(program)
            # batch norm into the convs: ACT fine-tunes with BN on batch statistics and evaluates
            # on the stored ones, which no longer fit a pruned input (real det, 30% pruned, lr 2e-5:
            # dev hmean 0.351 -> 0.095 after 60 steps with BN; see docs/pruning.md)
            paddle_passes.fold_batch_norm(graph)
            graph.write(pruned_dir)
        run.prune_info = dict(chosen, criterion=s["criterion"], input_shape=table["input_shape"],
                              cost={"baseline": before, "pruned": prune.cost(program, spatial)})
        run.prune_table = table
        log.info("pruned %d groups: %.1f%% of the multiply-adds removed (predicted %s %.4f); fine-tuning",
                 len(chosen["ratios"]), 100 * chosen["flops_removed"], run.task_cls.main_indicator,
                 chosen["predicted_metric"])
        return finetune(run, (pruned_dir, "inference.pdmodel", "inference.pdiparams"), out_dir, place)
    finally:
        shutil.rmtree(pruned_dir, ignore_errors=True)


def finetune(run, pruned_files, out_dir, place):
    """ACT distillation alone: the pruned model learns the unpruned FP32 model's output
    (Prune.distill_node, else Distillation.node; by default the logits, the input of the final
    sigmoid/softmax)."""
    import paddle
    config = run.config
    _, program, feeds, fetches = mdl.load(dict(config["Global"], model_dir=pruned_files[0],
                                               model_filename=pruned_files[1], params_filename=pruned_files[2]))
    node = qat.distill_node(program, fetches[0].name,
                            config["Prune"]["distill_node"] or config["Distillation"].get("node"))
    qat.check_nodes(program, [node])
    run.prune_info["distill_node"] = node
    train = cfg.merge(config["TrainConfig"] or {}, config["Prune"]["finetune"] or {})
    strategy = {**qat.distill_config(config, node),
                "TrainConfig": qat.train_config(train, config, run.world,
                                                len(build_samples(config, "Train", run.task_cls.name)))}
    reader = config_train_reader(config, run.task_cls.name, feeds[0], run.rank, run.world)
    paddle.enable_static()
    history = []
    callback = functools.partial(act_eval, samples=run.samples, task=run.task_cls(config),
                                 batch_size=config["Eval"]["loader"]["batch_size_per_card"],
                                 rank=run.rank, progress=run.progress, history=history)
    choice = qat.run_act(pruned_files, out_dir, strategy, reader, callback, [], {}, place,
                         fleet=run.device["fleet"], rank=run.rank, teacher_files=run.model_files)
    if run.rank != 0 or not history:
        return {}
    key = run.task_cls.main_indicator
    tuned = max(history[1:], key=lambda r: r["metrics"][key]) if len(history) > 1 else None
    return {"pruned": history[0], "fine-tuned": tuned,
            "kept": "pruned" if choice.get("kept") == "calibrated" else "fine-tuned"}


class Prune:
    name = "prune"
    summary = "channel pruning by sensitivity, then fine-tuning with distillation from the FP32 model"
    labels = {"fine-tuned": "ocrslim: pruned + fine-tuned (distillation)",
              "pruned": "ocrslim: pruned, not fine-tuned (fine-tuning was worse on Eval)"}

    def check(self, config):
        check_prune(config)

    def settings(self, config):
        return {"Prune": config["Prune"], "Distillation": config["Distillation"],
                "TrainConfig": cfg.merge(config["TrainConfig"] or {}, config["Prune"]["finetune"] or {})}

    def compress(self, run):
        return prune_and_finetune(run, run.staging)

    def choose(self, task_cls, candidates, saved):
        """Do no harm, as for qat: the fine-tuned model unless it is worse on Eval than the pruned one."""
        return do_no_harm(task_cls, candidates, saved, ("pruned", "fine-tuned"), "fine-tuning",
                          "Raise Prune.finetune.train_iter or lower its learning rate")


class PruneQat:
    name = "prune_qat"
    summary = "channel pruning and fine-tuning (prune), then calibration and QAT on the pruned model (qat)"
    labels = {"trained": "ocrslim: pruned + ACT QAT + distillation",
              "calibrated": "ocrslim: pruned + calibrated scales only (QAT was worse on Eval)"}

    def check(self, config):
        check_prune(config)
        Qat().check(config)

    def settings(self, config):
        return {**Prune().settings(config), **Qat().settings(config)}

    def compress(self, run):
        """Prune and fine-tune into a private folder, then run qat on that model; run's model and
        config are the FP32 ones again afterwards (steps 3-5 compare against them)."""
        tuned_dir = tempfile.mkdtemp(prefix="ocrslim-pruned-tuned-")
        original = run.model_files, run.config, run.thresholds
        try:
            pre = prune_and_finetune(run, tuned_dir)
            run.model_files = (tuned_dir, "inference.pdmodel", "inference.pdiparams")
            run.config = cfg.merge(run.config, {"Global": {"model_dir": tuned_dir, "model_filename": "inference.pdmodel",
                                                           "params_filename": "inference.pdiparams"}})
            run.thresholds = None
            post = Qat().compress(run)
        finally:
            run.model_files, run.config, run.thresholds = original
            shutil.rmtree(tuned_dir, ignore_errors=True)
        if not post:
            return {}
        self.pruning = {k: pre[k] for k in ("pruned", "fine-tuned") if pre.get(k)}
        return post

    def choose(self, task_cls, candidates, saved):
        candidates, chosen, why = Qat().choose(task_cls, candidates, saved)
        return {**getattr(self, "pruning", {}), **candidates}, chosen, why


# what prune_and_finetune's candidates are: FP32 models; every other candidate is int8
PRUNED_CANDIDATES = ("pruned", "fine-tuned")


def precision(candidate):
    return "FP32" if candidate in PRUNED_CANDIDATES else "int8"


STRATEGIES = {"qat": Qat, "ptq": Ptq, "prune": Prune, "prune_qat": PruneQat}


def get_strategy(config, name=None):
    """The strategy `name`, or the one the config's sections select: a pruning target (Prune.flops_ratio
    or min_metric) means prune, or prune_qat with a QuantAware section; else TrainConfig means qat
    and none ptq."""
    if name is None:
        pruning = (config.get("Prune") or {}).get("flops_ratio") is not None or \
            (config.get("Prune") or {}).get("min_metric") is not None
        if pruning:
            name = "prune_qat" if config.get("QuantAware") else "prune"
        else:
            name = "qat" if config.get("TrainConfig") else "ptq"
    if name not in STRATEGIES:
        raise UserError(f"unknown strategy {name!r}: use one of {', '.join(STRATEGIES)}")
    if (config.get("QuantAware") or {}).get("weight_bits", 8) != 8 and name not in ("qat", "prune_qat"):
        # Paddle 2.6's PostTrainingQuantization asserts activation_bits == weight_bits
        raise UserError(f"QuantAware.weight_bits 7 is trained in: use the qat or prune_qat strategy, not {name} "
                        "(post-training calibration makes 8-bit weights only)")
    return STRATEGIES[name]()
