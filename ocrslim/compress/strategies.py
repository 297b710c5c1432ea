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
import time

from .. import model as mdl
from ..data import build_samples, calibration_batches, config_train_reader
from ..errors import UserError
from ..evaluate import evaluate
from . import act_compat, calibrate, qat

log = logging.getLogger("ocrslim")


def check_calibration(config):
    """Calibration keys and the Train images it reads, checked before any work."""
    from .. import config as cfg
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
    result = evaluate(predict, samples, task, batch_size, desc="eval (int8 in training)", progress=progress)
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
        from .. import config as cfg
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
            log.warning("QuantAware.use_pact is on: on PP-OCRv4 det it zeroes the output (see README)")

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
        node = (config["Distillation"].get("node") or [None])[0] or qat.find_distill_node(program, fetches[0].name)
        keep_float = config["Calibration"]["keep_float"]
        qat.check_nodes(program, [node] + list(keep_float))
        log.info("distillation node: %s; kept in float: %s", node, keep_float or "none")
        scales, reader = run_calibration(run, feeds[0], place)
        paddle.enable_static()
        history = []
        callback = functools.partial(act_eval, samples=run.samples, task=run.task_cls(config),
                                     batch_size=config["Eval"]["loader"]["batch_size_per_card"],
                                     rank=run.rank, progress=run.progress, history=history)
        train_images = len(build_samples(config["Train"], run.task_cls.name))  # for TrainConfig.epochs
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
        if not candidates:  # no Eval during training: what was saved is the trained model
            return ({"trained": saved}, "trained",
                    "no Eval ran during training (TrainConfig.eval_iter): the trained model is kept")
        candidates = {"calibrated": candidates["calibrated"], "trained": candidates["trained"] or saved}
        key = task_cls.main_indicator
        cal, trained = candidates["calibrated"]["metrics"][key], candidates["trained"]["metrics"][key]
        if not qat.keeps_calibration(cal, trained):
            return candidates, "trained", (f"training kept or raised the Eval {key} ({cal:.4f} calibrated, "
                                           f"{trained:.4f} trained)")
        return candidates, "calibrated", (
            f"training lowered the Eval {key} from {cal:.4f} (calibrated only) to {trained:.4f}, so the "
            "calibrated model is kept. That happens with too few steps from the calibrated scales or "
            "when the Train images differ from the Eval images (domain gap): raise "
            "TrainConfig.train_iter, lower the learning rate, or train on data like the Eval set")


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


STRATEGIES = {"qat": Qat, "ptq": Ptq}


def get_strategy(config, name=None):
    """The strategy `name`, or the one the config's sections select (TrainConfig: qat; none: ptq)."""
    if name is None:
        name = "qat" if config.get("TrainConfig") else "ptq"
    if name not in STRATEGIES:
        raise UserError(f"unknown strategy {name!r}: use one of {', '.join(STRATEGIES)}")
    return STRATEGIES[name]()
