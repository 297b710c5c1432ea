"""Benchmark det or rec models with the deployment runtimes.

For every model (and every --backend) it reports latency per image (median
and p90), images/s, size on disk, the backend and precision actually used,
and the metric on the eval set computed from the same predictor's outputs.

usage:
  python bench.py -c configs/ppocrv4/det_mobile.yaml \\
      --model_dir bundled:ch_PP-OCRv4_det_infer --model_dir output/demo/det --backend paddle onnxruntime
  python bench.py -c configs/ppocrv4/rec_mobile.yaml --model_dir output/demo/rec --peer --json rec.json

How it times: images are loaded and preprocessed outside the timer. Two
untimed passes per model warm up each runtime (oneDNN builds kernels for every
new input shape). Then --repeat timed passes, in which the models take turns
every 10 images (A B C, then B C A, ...), so a noisy machine slows all models
alike. Batch size 1, as a deployed OCR service runs.
"""
import argparse
import json
import logging
import os
import tempfile
import time

import numpy as np
from tqdm import tqdm

from .. import config as cfg
from .. import cpu, distributed, stats
from .. import model as mdl
from . import backends, examples, runtime
from . import peer as peer_mod
from ..data import stack_images
from ..errors import ArgumentParser, UserError
from ..eval_cli import prepare
from ..logs import setup_logging, table
from ..outputs import check_json_out, check_report_dir, config_inputs, write_result
from ..tasks import get_task

log = logging.getLogger("ocrslim")


def parse_args(argv):
    p = ArgumentParser(prog="bench.py", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--config", required=True, help="YAML config (see configs/); its Eval set is used")
    p.add_argument("--model_dir", action="append", default=[],
                   help="model folder (repeat for several; default: Global.model_dir)")
    p.add_argument("--backend", nargs="+", choices=backends.CHOICES + ("every",), default=["auto"],
                   help="runtimes to run every model with (default auto: the one measured fastest at kept "
                        "accuracy for the model on this CPU kind; every: each runtime that may run it here; "
                        "onnxruntime: exported with paddle2onnx). With every and --report DIR, where DIR is a "
                        "run.py output benched here, the fastest runtime within the accuracy tolerance of FP32 (or "
                        "of its most accurate run, where none is that close) becomes its auto on this CPU kind "
                        "(DIR/deploy/settings.json)")
    p.add_argument("--peer", nargs="*", choices=sorted(peer_mod.PEERS), metavar="NAME",
                   help="also quantize the first (FP32) model with the peers and bench them: onnxruntime "
                        "(quantize_static) and nncf (NNCF on OpenVINO), calibrated on the config's Train images "
                        "(default: both)")
    p.add_argument("--devices", metavar="cpu|gpu|gpu:N", help="overrides Global.devices (gpu: card 0)")
    p.add_argument("--precision", choices=["fp32", "fp16"], default="fp32",
                   help="TensorRT precision for FP32 models on GPU (quantized models run int8)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads per runtime (default 2)")
    p.add_argument("--repeat", type=int, default=2, help="timed passes over the eval set (default 2)")
    p.add_argument("--max_images", type=int, help="use only the first N eval images")
    p.add_argument("-o", "--opt", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="config overrides, e.g. -o Eval.dataset.label_file_list=[my/eval.txt]")
    p.add_argument("--json", help="write the results to this JSON file")
    p.add_argument("--report", metavar="DIR", help="write report.md and report.png into DIR, with pictures of what "
                   "int8 changed (the FP32 and our int8 model's predictions, kept in the JSON as \"predictions\")")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier report in DIR")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p.parse_args(argv)


class Candidate:
    """One model on one runtime, with its timings and metric state."""

    def __init__(self, name, strategy, model_dir, size_mb, predict, info, task):
        self.name, self.strategy, self.model_dir, self.size_mb = name, strategy, model_dir, size_mb
        self.predict, self.info, self.task = predict, info, task
        self.times = []
        self.records = []  # what the task scored per item (tasks.*.update), for the report's pictures


def model_label(files):
    """FP32 or int8, and what made it: our run.py leaves a report.json next to the model (a
    pruned model is FP32 too, and not a baseline: speed-ups are against the unpruned one)."""
    model_dir = files[0]
    precision = "int8" if runtime.paddle_is_quantized(os.path.join(model_dir, files[1])) else "FP32"
    report = os.path.join(model_dir, "report.json")
    if os.path.isfile(report):
        with open(report, encoding="utf-8") as f:
            data = json.load(f)
        # run.py's strategy label; reports written before strategies existed were all qat
        strategy = data.get("strategy") or {}
        return precision, strategy.get("label") or OLD_LABELS.get(data.get("chosen"), "ocrslim")
    return precision, "baseline" if precision == "FP32" else "quantized Paddle model"


# what run.py kept (report.json "chosen") before reports named their strategy
OLD_LABELS = {"trained": "ocrslim: ACT QAT + distillation",
              "calibrated": "ocrslim: calibrated scales only (QAT was worse on Eval)"}


def build_candidates(config, opts, task_cls, work_dir, shapes):
    """Predictors for every model dir x backend (+ the peer), in bench order."""
    g = config["Global"]
    out, skipped = [], []
    first_fp32 = None
    for model_dir in opts.model_dirs:
        files = mdl.model_files(dict(g, model_dir=cfg.resolve_path(model_dir)))
        precision, strategy = model_label(files)
        short = opts.names.get(model_dir, cfg.display_path(model_dir))
        if (precision, strategy) == ("FP32", "baseline") and first_fp32 is None:
            first_fp32 = (files, short)
        names, left_out = _unique(opts.backends, files, task_cls.name, g["devices"])
        skipped += [{"name": f"{short} [{b}]", "reason": why} for b, why in left_out]
        for backend in names:
            try:
                predict, info = backends.predictor(files, backend, task_cls.name, work_dir, str(len(out)),
                                                   g["devices"], opts.threads, opts.precision, shapes)
            except backends.NotOffered as err:
                log.warning("%s: skipped, %s", short, err)
                skipped.append({"name": f"{short} [{backend}]", "reason": str(err)})
                continue
            out.append(Candidate(f"{short} [{info['backend']}]", f"{precision} {strategy}",
                                 opts.names.get(model_dir, cfg.resolve_path(model_dir)), info["size_mb"], predict, info,
                                 task_cls(config)))
    if opts.peer is not None:
        if first_fp32 is None:
            raise UserError("--peer quantizes an FP32 model: pass an FP32 --model_dir")
        for name in opts.peer or list(peer_mod.PEERS):
            out.append(make_peer(config, task_cls, *first_fp32, work_dir, opts.threads, name))
    return out, skipped


def _unique(names, files, task, devices):
    """(backends to run, [(backend, why not)]): those asked for, auto resolved and every expanded
    (backends.every), each once (--backend auto paddle: paddle once)."""
    precision = "int8" if runtime.paddle_is_quantized(os.path.join(files[0], files[1])) else "fp32"
    asked, left_out = [], []
    for name in names:
        if name == "every":
            offered, left_out = backends.every(task, precision, devices, files[0])
            asked += [(b, b) for b in offered]
        else:
            asked.append((name, backends.choose(task, precision, devices, files[0])[0] if name == "auto" else name))
    out, seen = [], set()
    for name, resolved in asked:
        if resolved not in seen:
            seen.add(resolved)
            out.append(name)
    return out, [(b, why) for b, why in left_out if b not in seen]


def record_choice(rows, record_dir, task_cls):
    """bench.py --backend every --report DIR, DIR a run.py output benched here: the runtime measured
    fastest within the accuracy tolerance of the FP32 model's metric on its exact runtimes (not the
    baseline row's, which may be a bf16 run up to FP32_TOLERANCE lower), or of its most accurate
    run where none is that close, becomes auto's pick for it on this CPU kind (backends.record_measured).
    Returns {"model_dir", "backend", "why"} or None."""
    target = os.path.realpath(record_dir)
    key = task_cls.main_indicator
    runs = [{"backend": r["backend"], "metric": r["metrics"][key], "median_ms": r["latency_ms"]["median"]}
            for r in rows if os.path.realpath(r["model_dir"]) == target and "peer" not in r["strategy"]]
    fp32 = exact_fp32_metric(rows, key)
    picked = backends.record_measured(record_dir, runs, task_cls.name, fp32) if runs else None
    if not picked:
        return None
    log.info("auto for %s on this CPU kind (%s) from now on: %s", record_dir, cpu.kind(), picked[0])
    return {"model_dir": record_dir, "backend": picked[0], "why": picked[1]}


def make_peer(config, task_cls, files, short, work_dir, threads, name):
    predict, info = peer_mod.predictor(config, task_cls.name, files, work_dir, "bench",
                                       config["Global"]["devices"], threads, name)
    size = info.pop("size_mb")
    strategy = info.pop("strategy")
    return Candidate(f"{short} [{peer_mod.PEERS[name][1]}]", "int8 peer: " + strategy,
                     files[0], size, predict, info, task_cls(config))


def input_shapes(samples, indices):
    """(min, opt, max) input shapes over the set, for TensorRT's dynamic shapes."""
    shapes = []
    for i in indices[:64]:  # a sample of the set is enough for the range
        item = samples.load(i)
        if item is not None:
            shapes.append((1,) + tuple(item["image"].shape))
    if not shapes:
        return None
    arr = np.array(shapes)
    return [list(arr.min(0)), list(shapes[0]), list(arr.max(0))]


def _load(samples, indices):
    """Preprocessed (sample, input batch) pairs for `indices`, and the indices that were unreadable."""
    items = [samples.load(i) for i in indices]
    loaded = [(item, stack_images([item])) for item in items if item is not None]
    return loaded, [i for i, item in zip(indices, items) if item is None]


def _run(candidate, loaded, timed, task=None):
    """One model over loaded images, one call per image."""
    for item, images in loaded:
        t = time.perf_counter()
        outputs = candidate.predict(images)
        elapsed = time.perf_counter() - t
        if timed:
            candidate.times.append(elapsed)
        if task is not None:
            candidate.records += task.update(outputs, [item])


BLOCK = 10  # images per turn: long enough that a turn is mostly steady state
# Untimed passes before timing. After one pass over the 12 demo det shapes,
# Paddle rebuilt the kernels of the first 6-7 shapes on their next call (FP32
# det 60-120 ms instead of 35), whatever its shape cache size; from the
# second pass on every call was steady.
WARMUP_PASSES = 2


def run_bench(candidates, samples, indices, repeat, progress=True):
    """WARMUP_PASSES untimed passes per model, then `repeat` timed passes in turns.

    The set is cut into blocks of BLOCK images, each loaded once per pass, and
    the models take turns per block (A B C on block 1, B C A on block 2, ...),
    so a machine that drifts between fast and slow states slows all models
    alike. Turns are blocks, not single calls: on a 2-core machine Paddle's
    OpenMP threads and onnxruntime's spinning threads keep a core busy for a
    while after a call and steal it from whichever runtime runs next, which
    made call-by-call interleaving up to 2x wrong. Each turn starts with two
    untimed calls for the same reason. The metric comes from each model's
    first timed pass.
    """
    n = len(candidates)
    skipped = []
    blocks = [indices[k:k + BLOCK] for k in range(0, len(indices), BLOCK)]
    with tqdm(total=len(indices) * (WARMUP_PASSES + repeat), desc="bench", unit="img", disable=not progress,
              leave=False) as bar:
        for warmup in range(WARMUP_PASSES):  # every model sees every input shape
            for block in blocks:
                loaded, bad = _load(samples, block)
                if warmup == 0 and bad:
                    skipped += bad
                    samples.check_unreadable(skipped)
                for c in candidates:
                    _run(c, loaded, timed=False)
                bar.update(len(block))
        turn = 0
        for rep in range(repeat):
            for block in blocks:
                loaded, _ = _load(samples, block)
                for j in range(n):
                    c = candidates[(j + turn) % n]
                    _run(c, loaded[:1] * 2, timed=False)
                    _run(c, loaded, timed=True, task=c.task if rep == 0 else None)
                turn += 1
                bar.update(len(block))
    samples.check_unreadable(skipped, done=True)
    return len(skipped)


def results(candidates, task_cls):
    """Per-model JSON rows, with speed-up against the fastest FP32 row and size against the FP32 model."""
    rows = []
    for c in candidates:
        ms = np.array(c.times) * 1000
        rows.append({
            "name": c.name, "model_dir": c.model_dir, "strategy": c.strategy,
            **c.info,
            "latency_ms": {"median": round(float(np.median(ms)), 3), "p90": round(float(np.percentile(ms, 90)), 3),
                           "mean": round(float(ms.mean()), 3)},
            "images_per_s": round(float(len(ms) / (ms.sum() / 1000)), 2),
            "timed_runs": int(len(ms)),
            "size_mb": round(c.size_mb, 3),
            "metrics": c.task.metric.result(),
            "per_item": c.task.metric.items(),  # what the drop interval resamples (stats.py)
        })
    baseline, why = choose_baseline(rows, task_cls)
    fp32 = [r for r in rows if is_fp32_model(r, rows)]
    base_size = next((r["size_mb"] for r in fp32 if r["backend"] == "paddle"), fp32[0]["size_mb"] if fp32 else None)
    base_metric = baseline["metrics"][task_cls.main_indicator] if baseline else None
    for r in rows:
        r["speedup"] = round(baseline["latency_ms"]["median"] / r["latency_ms"]["median"], 3) if baseline else None
        r["size_ratio"] = round(r["size_mb"] / base_size, 3) if base_size else None
        r["metric_drop"] = round(base_metric - r["metrics"][task_cls.main_indicator], 4) if baseline else None
        # the same images for every model: a paired bootstrap interval of the drop
        r["drop"] = (stats.paired_drop(baseline["per_item"], r["per_item"], task_cls.name)
                     if baseline and r is not baseline else None)
    if baseline:  # the row everything is measured against comes first
        rows.remove(baseline)
        rows.insert(0, baseline)
    return rows, (baseline["name"] if baseline else None), why


# How far below FP32 a reduced-precision run of the FP32 model (OpenVINO bf16, TensorRT fp16) may
# score and still be a baseline: the drop allowed to int8 (det 0.5, rec 1.0 point; higher is fine),
# the same tolerance auto's per-model pick keeps (backends.TOLERANCE).
FP32_TOLERANCE = backends.TOLERANCE


def is_fp32_model(row, rows):
    """A row of an FP32 model not made by run.py (a pruned model is FP32 too, and not a baseline)."""
    if any(r["strategy"] == "FP32 baseline" for r in rows):
        return row["strategy"] == "FP32 baseline"
    return row["precision"] in ("fp32", "bf16", "fp16")


def exact_fp32_metric(rows, key):
    """The FP32 model's metric on its exact (fp32) runtimes, the lowest where they differ; None
    without such a run."""
    exact = [r["metrics"][key] for r in rows if is_fp32_model(r, rows) and r["precision"] == "fp32"]
    return min(exact) if exact else None


def choose_baseline(rows, task_cls):
    """(row, why): the fastest FP32-accurate run of the FP32 model. Exact FP32 runtimes always are;
    a bf16/fp16 one is when its metric here is at most FP32_TOLERANCE below the exact ones'."""
    key = task_cls.main_indicator
    models = [r for r in rows if is_fp32_model(r, rows)]
    exact = [r for r in models if r["precision"] == "fp32"]
    if not exact:
        return None, "no FP32 model in this benchmark"
    reference = exact_fp32_metric(rows, key)
    reduced = [r for r in models if r["precision"] != "fp32"]
    kept = [r for r in reduced if r["metrics"][key] >= reference - FP32_TOLERANCE[task_cls.name]]
    best = min(exact + kept, key=lambda r: r["latency_ms"]["median"])
    dropped = [f"{r['name']} ({r['metrics'][key]:.4f} against FP32 {reference:.4f})" for r in reduced if r not in kept]
    why = (f"the fastest FP32-accurate run of the FP32 model ({best['precision']}"
           + (f"; not FP32-accurate here: {', '.join(dropped)}" if dropped else "") + ")")
    return best, why


def honest_note(rows, baseline_name):
    """When the baseline is faster than every int8 row of ours, say so (and by how much)."""
    ours = [r for r in rows if r["precision"] == "int8" and r["strategy"].startswith("int8 ocrslim")]
    if not ours or not baseline_name or any(r["speedup"] and r["speedup"] > 1 for r in ours):
        return None
    best = max(ours, key=lambda r: r["speedup"] or 0)
    return (f"note: the FP32 model on {baseline_name} is faster than every int8 model of ours here: the fastest, "
            f"{best['name']}, runs at {best['speedup']:.2f}x of it")


def measured_line(measured):
    return (f"auto for {measured['model_dir']} on this CPU kind ({cpu.kind()}) from now on: {measured['backend']} "
            f"({measured['why']}; in its deploy/settings.json)")


def print_table(out, task_cls):
    """The bench table of bench()'s result, with the CPU, the auto choices and what was not offered."""
    rows, fastest, threads = out["models"], out["fastest_fp32"], out["threads"]
    note = honest_note(rows, fastest)
    key = task_cls.main_indicator
    lines = [[r["name"], f"{r['precision']} {r['engine']}", f"{r['metrics'][key]:.4f}",
              stats.format_drop(r.get("drop")), f"{r['latency_ms']['median']:.1f}", f"{r['latency_ms']['p90']:.1f}", f"{r['images_per_s']:.1f}",
              f"{r['speedup']:.2f}x" if r["speedup"] else "", f"{r['size_mb']:.2f}",
              f"{r['size_ratio']:.0%}" if r["size_ratio"] else ""] for r in rows]
    items = len(rows[0].get("per_item", [])) if rows else 0
    unit = "images" if task_cls.name == "det" else "crops"
    title = (f"{task_cls.name}: latency per image at batch 1, {threads} thread(s); speed-up and {key} drop "
             f"[95% paired bootstrap interval, {items} {unit}] vs the baseline {fastest}, {out.get('baseline_why', '')}; "
             f"size vs the FP32 Paddle model\nCPU: {cpu.line(out.get('cpu'))}")
    notes = [note] if note else []
    notes += [f"{r['name']}: auto chose {r['backend']}: {r['choice']}" for r in rows
              if r.get("choice", "asked for") != "asked for"]
    notes += [f"{s['name']}: not run: {s['reason']}" for s in out.get("not_offered", [])]
    notes += [measured_line(out["measured_choice"])] if out.get("measured_choice") else []
    text = table(["model", "precision", key, "drop [95% CI]", "median ms", "p90 ms", "img/s", "speed-up", "MB",
                  "size"],
                 lines, title=title)
    return "\n".join([text] + notes)



class Options:
    """What to bench and how (the CLI flags, also filled in by run.py)."""

    def __init__(self, model_dirs, backends=("auto",), peer=None, threads=2, repeat=1,
                 precision="fp32", max_images=None, names=None, record_dir=None):
        # record_dir: a run.py output among model_dirs whose auto pick this bench records (record_choice)
        self.record_dir = record_dir
        # peer: None (no peer), [] (every peer of peer.PEERS) or the names asked for
        self.model_dirs, self.backends, self.peer = list(model_dirs), list(backends), peer
        self.threads, self.repeat, self.precision, self.max_images = threads, repeat, precision, max_images
        self.names = names or {}  # model_dir -> name shown in tables (run.py: save_dir, not its staging dir)


def bench(config, opts, progress=True):
    """Run the benchmark; returns the JSON dict."""
    if opts.repeat < 1 or opts.threads < 1 or (opts.max_images is not None and opts.max_images < 1):
        raise UserError("--repeat, --threads and --max_images must be at least 1")
    task_cls, samples = prepare(config)
    indices = list(range(len(samples)))[: opts.max_images or None]
    shapes = input_shapes(samples, indices) if config["Global"]["devices"] != "cpu" else None  # gpu, gpu:N
    with tempfile.TemporaryDirectory(prefix="ocrslim-bench-") as work_dir:
        candidates, not_offered = build_candidates(config, opts, task_cls, work_dir, shapes)
        log.info("benchmarking %d model(s) on %d images, %d thread(s)", len(candidates), len(indices), opts.threads)
        skipped = run_bench(candidates, samples, indices, opts.repeat, progress)
    if skipped == len(indices):
        raise UserError(f"none of the {len(indices)} Eval images could be loaded: nothing was timed or scored")
    for c in candidates:
        c.task.check_result()
    rows, fastest, why = results(candidates, task_cls)
    measured = record_choice(rows, opts.record_dir, task_cls) if opts.record_dir else None
    # the FP32 and the int8 model's own predictions from the scored pass, for the report's pictures
    predictions = examples.keep(rows, {c.name: c.records for c in candidates}, fastest, task_cls.name,
                                config["Global"]["devices"])
    return {"model_type": task_cls.name, "main_indicator": task_cls.main_indicator, "threads": opts.threads,
            "devices": config["Global"]["devices"], "cpu": cpu.summary(), "images": len(indices) - skipped,
            "repeat": opts.repeat, "fastest_fp32": fastest, "baseline_why": why, "models": rows,
            "not_offered": not_offered, "measured_choice": measured, "predictions": predictions}


def main(argv=None):
    args = parse_args(argv)
    setup_logging()
    if os.environ.get("OCRSLIM_BENCH_ABORT"):
        # test hook: a benchmark that dies in native code, as Paddle 2.6.2 did with SIGILL
        # on AVX2 CPUs; run.py must keep the model it published before step 5
        os.abort()
    # the pre- and post-processing of the first model that has an inference.yml (formats/yml.py)
    from ..formats import yml
    with_yml = next((d for d in args.model_dir if yml.find(cfg.resolve_path(d))), None)
    config = cfg.load_config(args.config, args.opt, defaults=cfg.COMPRESS_DEFAULTS, model_dir=with_yml)
    if args.devices:
        config["Global"]["devices"] = args.devices
    distributed.parse_devices(config["Global"]["devices"])  # a bad value fails here, before any model loads
    model_dirs = args.model_dir or [config["Global"]["model_dir"]]
    if not all(model_dirs):
        raise UserError("no model given: set Global.model_dir or pass --model_dir DIR")
    for model_dir in model_dirs:  # each model's files checked before any is loaded
        mdl.model_files(dict(config["Global"], model_dir=model_dir))
    inputs = config_inputs(config) + [("model dir", cfg.resolve_path(d)) for d in model_dirs]
    if args.json:
        check_json_out(args.json, inputs)
    if args.report:
        check_report_dir(args.report, inputs, args.overwrite)
    # every runtime measured on the CPU, into a run.py output folder benched here: its auto pick
    # on this CPU kind is recorded (a GPU run says nothing about the CPU)
    # (backends.record_measured writes only into a folder with our deploy/settings.json)
    ours = [cfg.resolve_path(d) for d in model_dirs
            if args.report and os.path.realpath(cfg.resolve_path(d)) == os.path.realpath(args.report)]
    record = ours[0] if ours and "every" in args.backend and config["Global"]["devices"] == "cpu" else None
    opts = Options(model_dirs, args.backend, args.peer, args.threads, args.repeat, args.precision, args.max_images,
                   record_dir=record)
    out = bench(config, opts, progress=not args.quiet)
    print(print_table(out, get_task(config)))
    if args.json:
        write_result(args.json, out, "bench")
        log.info("wrote %s", args.json)
    if args.report:
        from .report import write_report
        write_report(args.report, [out])
        log.info("wrote %s", os.path.join(args.report, "report.md"))
    return out


if __name__ == "__main__":
    from ..errors import run_cli
    run_cli(main)
