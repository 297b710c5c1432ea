"""Compress a PaddleOCR det or rec inference model to int8 with PaddleSlim ACT.

Calibrates activation scales, then runs quantization-aware training with
distillation from the FP32 model, and reports FP32 vs int8.

usage:
  python run.py -c configs/ppocrv4/det_mobile.yaml --save_dir output/demo/det
  python run.py -c configs/ppocrv4/rec_mobile.yaml --save_dir output/demo/rec -o TrainConfig.train_iter=100
  python -m paddle.distributed.launch --gpus 0,1,2,3 run.py -c configs/ppocrv4/det_server.yaml --save_dir out --devices gpu
"""
import argparse
import functools
import inspect
import json
import logging
import os
import shutil
import tempfile
import time

from . import compress as cmp
from . import config as cfg
from . import cpu, stats
from .deploy import backends
from . import model as mdl
from .errors import StepFailed, UserError
from .eval_cli import prepare
from .evaluate import evaluate
from .logs import setup_logging, table
from .outputs import check_save_dir, publish, staging_dir, write_json

log = logging.getLogger("ocrslim")

ACT_SECTIONS = ("QuantAware", "Distillation", "TrainConfig")


def parse_args(argv):
    p = argparse.ArgumentParser(prog="run.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--config", required=True, help="YAML config (see configs/)")
    p.add_argument("--save_dir", required=True, help="folder for the compressed model and report")
    p.add_argument("-o", "--opt", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="config overrides, e.g. -o TrainConfig.train_iter=50")
    p.add_argument("--model_dir", help="inference model folder; overrides Global.model_dir")
    p.add_argument("--devices", choices=["cpu", "gpu"], help="overrides Global.devices")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty save_dir")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--no_bench", action="store_true",
                   help="skip step 5 (deployment benchmark and report.md/report.png)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for the step 5 benchmark (default 2)")
    return p.parse_args(argv)


def check_act_sections(config):
    """Unknown ACT keys fail here, not minutes later inside ACT."""
    from paddleslim.auto_compression import strategy_config as sc
    for section in ACT_SECTIONS:
        allowed = set(inspect.signature(getattr(sc, section).__init__).parameters) - {"self"}
        unknown = set(config[section]) - allowed
        if unknown:
            raise UserError(f"unknown key {section}.{sorted(unknown)[0]}; {section} takes: {', '.join(sorted(allowed))}")
    cfg.require(config, "TrainConfig.train_iter", "Train.dataset.data_dir",
                "Train.dataset.label_file_list", "Train.dataset.transforms")
    hist_percent = config["Calibration"]["hist_percent"]
    if not isinstance(hist_percent, (int, float)) or not 0 < hist_percent <= 1:
        raise UserError(f"Calibration.hist_percent must be in (0, 1], not {hist_percent!r}")
    if config["QuantAware"].get("use_pact"):
        log.warning("QuantAware.use_pact is on: on PP-OCRv4 det it zeroes the output (see README)")


def load_config(args):
    config = cfg.load_config(args.config, args.opt, defaults=cfg.COMPRESS_DEFAULTS)
    if args.model_dir:
        config["Global"]["model_dir"] = args.model_dir
    if args.devices:
        config["Global"]["devices"] = args.devices
    if config.get("Test"):  # a Test section takes Eval's transforms and loader unless it sets its own
        config["Test"] = cfg.merge({"dataset": {"transforms": config["Eval"]["dataset"]["transforms"]},
                                    "loader": config["Eval"]["loader"]}, config["Test"])
        cfg.require(config, "Test.dataset.data_dir", "Test.dataset.label_file_list")
    return config


def rank_world():
    """Rank and card count from paddle.distributed.launch's environment."""
    return int(os.environ.get("PADDLE_TRAINER_ID", 0)), int(os.environ.get("PADDLE_TRAINERS_NUM", 1))


def act_eval(exe, program, feed_names, fetch_targets, samples, task, batch_size, rank, progress, history=None):
    """ACT's eval callback: the shared evaluate(), main indicator as a float.

    Evaluation runs on rank 0 only; other ranks return -1 so they never save
    a 'best' checkpoint into ACT's shared temp folder. history: every result,
    in order (the first is the calibrated-only step 0, see compress.act_hooks).
    """
    if rank != 0:
        return -1.0
    predict = mdl.predictor(exe, program, feed_names, fetch_targets)
    result = evaluate(predict, samples, task, batch_size, desc="eval (int8 in training)", progress=progress)
    if history is not None:
        history.append(result)
    return float(result["metrics"][task.main_indicator])


def summary(task, baseline, compressed, candidates, chosen, sizes, seconds, test=None):
    """The step 4 table: FP32, both int8 candidates as measured in training, and the saved
    (kept) model as loaded back, on Eval (and Test)."""
    key = task.main_indicator
    header = (["model", f"Eval {key}", "drop [95% CI]"] + ([f"Test {key}", "drop"] if test else [])
              + ["MB", "eval ms/img", "kept"])
    rows = []
    named = [("FP32", baseline), *((f"int8 {k} (in training)", v) for k, v in candidates.items()),
             ("int8 saved", compressed)]
    for name, res in named:
        drop = stats.paired_drop(baseline["per_item"], res["per_item"], task.name) if name != "FP32" else None
        row = [name, f"{res['metrics'][key]:.4f}", stats.format_drop(drop)]
        if test:
            got = test["baseline" if name == "FP32" else "compressed"][key] if name in ("FP32", "int8 saved") else None
            row += ["" if got is None else f"{got:.4f}",
                    "" if got is None or name == "FP32" else f"{test['baseline'][key] - got:+.4f}"]
        size = sizes["baseline"] if name == "FP32" else sizes["compressed"]
        row += [f"{size:.2f}", f"{res['seconds'] / max(res['images'], 1) * 1000:.0f}",
                "yes" if chosen in name else ""]
        rows.append(row)
    unit = "images" if task.name == "det" else "crops"
    title = (f"{task.name}: {key} (drop = FP32 - int8, paired bootstrap over {len(baseline['per_item'])} Eval "
             f"{unit}; Eval chooses, Test only reports), size on disk, eval ms/image (static Executor); "
             f"total {seconds:.0f}s")
    return table(header, rows, title=title)


def compress_model(config, model_files, staging, task_cls, samples, rank, world, progress):
    """Step 2: calibrate on train images, then ACT QAT + distillation into `staging`.

    Returns (strategy, candidates): candidates has the Eval results of the calibrated-only
    state (step 0) and of the best trained one, and which of the two ACT saved ("kept");
    empty on ranks other than 0."""
    import paddle
    g = config["Global"]
    place = mdl.place(g["devices"])
    exe, program, feeds, fetches = mdl.load(g)
    node = (config["Distillation"].get("node") or [None])[0] or cmp.find_distill_node(program, fetches[0].name)
    keep_float = config["Calibration"]["keep_float"]
    cmp.check_nodes(program, [node] + list(keep_float))
    log.info("distillation node: %s; kept in float: %s", node, keep_float or "none")
    reader = cmp.config_train_reader(config, task_cls.name, feeds[0], rank, world)
    calib = config["Calibration"]
    t0 = time.time()
    scales = cmp.calibrate(model_files, cmp.calibration_batches(reader, calib["batch_nums"]),
                           config["QuantAware"], keep_float, calib["algo"], place, calib["hist_percent"])
    log.info("calibrated %d tensors (%s) in %.0fs", len(scales), calib["algo"], time.time() - t0)
    paddle.enable_static()
    history = []
    callback = functools.partial(act_eval, samples=samples, task=task_cls(config),
                                 batch_size=config["Eval"]["loader"]["batch_size_per_card"],
                                 rank=rank, progress=progress, history=history)
    strategy = cmp.act_config(config, node, world)
    choice = cmp.run_act(model_files, staging, strategy, reader, callback, keep_float, scales, place)
    if rank != 0 or not history:
        return strategy, {}
    key = task_cls.main_indicator
    trained = max(history[1:], key=lambda r: r["metrics"][key]) if len(history) > 1 else None
    return strategy, {"calibrated": history[0], "trained": trained, "kept": choice.get("kept", "trained")}


def main(argv=None):
    args = parse_args(argv)
    setup_logging()
    start = time.time()
    config = load_config(args)
    rank, world = rank_world()
    task_cls, samples = prepare(config)
    check_act_sections(config)
    model_files = mdl.model_files(config["Global"])
    check_save_dir(args.save_dir, [model_files[0]], args.overwrite)
    progress = not args.quiet and rank == 0
    log.info("config %s, model %s, %d card(s)", args.config, model_files[0], world)
    batch = config["Eval"]["loader"]["batch_size_per_card"]

    times = {}
    t = time.time()
    log.info("[1/5] evaluating the FP32 model")
    baseline = evaluate(_predict(config["Global"], task_cls, config), samples, task_cls(config), batch,
                        desc="eval FP32", progress=progress)
    times["baseline_eval"] = time.time() - t

    t = time.time()
    log.info("[2/5] compressing: calibration, then quantization-aware training with distillation")
    # ACT makes a temp folder inside save_dir on every rank; only rank 0 saves,
    # so the other ranks get a private throwaway folder.
    staging = staging_dir(args.save_dir) if rank == 0 else tempfile.mkdtemp(prefix=f"ocrslim-rank{rank}-")
    try:
        strategy, candidates = compress_model(config, model_files, staging, task_cls, samples,
                                              rank, world, progress)
        times["compress"] = time.time() - t
        if rank != 0:
            return {}
        return _finish(args, config, task_cls, samples, staging, candidates, baseline, strategy, times, start,
                       progress)
    finally:
        if os.path.isdir(staging):  # published staging folders are gone already
            shutil.rmtree(staging, ignore_errors=True)


def _predict(global_cfg, task_cls, config):
    exe, program, feeds, fetches = mdl.load(global_cfg)
    task_cls(config).check_model(program, fetches)
    return mdl.predictor(exe, program, feeds, fetches)


def _evaluate_dir(model_dir, config, task_cls, samples, desc, progress):
    """The executor's figure for an int8 model folder (inference.pdmodel + .pdiparams)."""
    g = dict(config["Global"], model_dir=model_dir, model_filename="inference.pdmodel",
             params_filename="inference.pdiparams")
    return evaluate(_predict(g, task_cls, config), samples, task_cls(config),
                    config["Eval"]["loader"]["batch_size_per_card"], desc=desc, progress=progress)


def choose(task_cls, calibrated, trained):
    """Do no harm (compress.keeps_calibration decides inside ACT): the trained model unless it is
    worse on Eval than calibration alone. Returns (name, reason)."""
    key = task_cls.main_indicator
    cal, qat = calibrated["metrics"][key], trained["metrics"][key]
    if not cmp.keeps_calibration(cal, qat):
        return "trained", f"training kept or raised the Eval {key} ({cal:.4f} calibrated, {qat:.4f} trained)"
    return "calibrated", (f"training lowered the Eval {key} from {cal:.4f} (calibrated only) to {qat:.4f}, so the "
                          "calibrated model is kept. That happens with too few steps from the calibrated scales or "
                          "when the Train images differ from the Eval images (domain gap): raise "
                          "TrainConfig.train_iter, lower the learning rate, or train on data like the Eval set")


def _test_figures(config, task_cls, model_dir, progress):
    """The optional Test section: FP32 and the kept int8 model on it, reported, never chosen by."""
    from .data import build_samples
    test_config = dict(config, Eval=config["Test"])
    samples = build_samples(config["Test"], task_cls.name)
    out = {"images": len(samples)}
    out["baseline"] = evaluate(_predict(config["Global"], task_cls, test_config), samples, task_cls(test_config),
                               config["Test"]["loader"]["batch_size_per_card"], desc="test FP32",
                               progress=progress)["metrics"]
    out["compressed"] = _evaluate_dir(model_dir, test_config, task_cls, samples, "test int8", progress)["metrics"]
    return out


def _finish(args, config, task_cls, samples, staging, candidates, baseline, strategy, times, start, progress):
    """Steps 3 and 4 (rank 0): evaluate the saved int8 model (the better of calibrated-only and
    trained, which ACT saved), report both, publish."""
    t = time.time()
    log.info("[3/5] evaluating the saved int8 model")
    compressed = _evaluate_dir(staging, config, task_cls, samples, "eval int8", progress)
    times["compressed_eval"] = time.time() - t
    if candidates:
        candidates = {"calibrated": candidates["calibrated"], "trained": candidates["trained"] or compressed,
                      "kept": candidates["kept"]}
        chosen, why = choose(task_cls, candidates["calibrated"], candidates["trained"])
        log.info("kept the %s model: %s", chosen, why)
    else:  # no Eval during training: what was saved is the trained model
        candidates = {"calibrated": None, "trained": compressed, "kept": "trained"}
        chosen, why = "trained", "no Eval ran during training (TrainConfig.eval_iter): the trained model is kept"
    candidates = {k: v for k, v in candidates.items() if k != "kept" and v is not None}
    test = None
    if config.get("Test"):
        t = time.time()
        log.info("[3/5] the Test set (reported only): FP32 and the kept int8 model")
        test = _test_figures(config, task_cls, staging, progress)
        times["test_eval"] = time.time() - t

    log.info("[4/5] summary")
    model_dir = mdl.model_files(config["Global"])[0]
    g = config["Global"]
    sizes = {"baseline": mdl.model_size_mb(model_dir, g["model_filename"], g["params_filename"]),
             "compressed": mdl.model_size_mb(staging)}
    seconds = time.time() - start
    report = {"model_type": task_cls.name, "model_dir": model_dir, "main_indicator": task_cls.main_indicator,
              "baseline": baseline["metrics"], "compressed": compressed["metrics"],
              "candidates": {k: v["metrics"] for k, v in candidates.items()}, "chosen": chosen, "chosen_why": why,
              "drop": {k: stats.paired_drop(baseline["per_item"], v["per_item"], task_cls.name)
                       for k, v in {**candidates, "saved": compressed}.items()},
              "size_mb": {k: round(v, 3) for k, v in sizes.items()}, "seconds": round(seconds, 1),
              "step_seconds": {k: round(v, 1) for k, v in times.items()},
              "strategy": {**strategy, "Calibration": config["Calibration"]}}
    if test:
        report["test"] = test
    cfg.dump(config, os.path.join(staging, "config_used.yaml"))
    # what the runtimes run, for ocrslim.load_predictor and users' own predictor code; the
    # files above stay as ACT saved them (executor eval, ONNX export)
    report["deploy_rewrites"] = backends.write_deploy(staging, os.path.join(staging, "deploy"), task_cls.name)
    # written before step 5 too: bench labels a model with a report.json as ours
    report["cpu"] = cpu.summary()
    write_json(os.path.join(staging, "report.json"), report)
    print(summary(task_cls, baseline, compressed, candidates, chosen, sizes, seconds, test))
    # published before step 5: a benchmark that crashes can never cost the finished model
    publish(staging, args.save_dir)
    log.info("wrote %s", args.save_dir)
    if not args.no_bench:
        report["bench"] = deploy_report(args, config)
        write_json(os.path.join(args.save_dir, "report.json"), report)
    return report


def bench_command(args, config):
    """Step 5 as a bench.py command line: FP32 vs our int8 vs the onnxruntime peer, each on
    the runtime `auto` picks for this CPU; report.md, report.png and bench.json into save_dir."""
    on_cpu = config["Global"]["devices"] == "cpu"
    cmd = ["bench.py", "-c", args.config, "--model_dir", config["Global"]["model_dir"],
           "--model_dir", args.save_dir, "--backend", "auto", "--threads", str(args.threads), "--repeat", "1",
           "--devices", config["Global"]["devices"], "--report", args.save_dir, "--overwrite"]
    # onnxruntime's GPU build is not a dependency: on GPU there is no peer
    cmd += ["--peer"] if on_cpu else []
    cmd += ["-o", *args.opt] if args.opt else []
    return cmd + (["--quiet"] if args.quiet else [])


def deploy_report(args, config):
    """Step 5 in a child process: a runtime that crashes (SIGILL in a native kernel, say)
    takes down the child only; the published model stays, and run.py says how to retry."""
    import shlex
    import signal
    import subprocess
    import sys
    log.info("[5/5] deployment benchmark in a child process (FP32, ours, onnxruntime PTQ peer)")
    cmd = bench_command(args, config)
    # the package's own entry point, found from any cwd, so the child runs this same code
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, "-m", "ocrslim.deploy.bench", *cmd[1:]], env=env)
    if proc.returncode != 0:
        how = (f"died with {signal.Signals(-proc.returncode).name}" if proc.returncode < 0
               else f"failed with exit code {proc.returncode}")
        raise StepFailed(f"step 5 (deployment benchmark) {how}; the compressed model in {args.save_dir} is "
                         f"complete. Retry the benchmark with: python {shlex.join(cmd)}")
    with open(os.path.join(args.save_dir, "bench.json"), encoding="utf-8") as f:
        out = json.load(f)
    return {"fastest_fp32": out["fastest_fp32"], "cpu": out.get("cpu"),
            "models": [{k: r.get(k) for k in ("name", "strategy", "backend", "precision", "metrics", "drop",
                                              "latency_ms", "speedup", "size_mb", "choice")} for r in out["models"]],
            "not_offered": out.get("not_offered", [])}
