"""Compress a PaddleOCR det or rec inference model to int8 with PaddleSlim.

Five steps, the same for every strategy: (1) evaluate FP32, (2) compress
(qat: calibrate, then ACT quantization-aware training with distillation from
FP32; ptq: calibrate only), (3) evaluate the saved int8 model, (4) report and
publish, (5) benchmark as deployed.

usage:
  python run.py -c configs/ppocrv4/det_mobile.yaml --save_dir output/demo/det
  python run.py -c configs/ppocrv4/rec_mobile.yaml --save_dir output/demo/rec -o TrainConfig.train_iter=100
  python run.py -c configs/ppocrv4/rec_mobile.yaml --save_dir output/rec_ptq --strategy ptq
  python -m paddle.distributed.launch --gpus 0,1,2,3 run.py -c configs/ppocrv4/det_server.yaml --save_dir out --devices gpu
"""
import argparse
import copy
import json
import logging
import os
import shutil
import tempfile
import time

from . import config as cfg
from . import cpu, distributed, formats, stats
from .compress import act_compat
from .compress.strategies import STRATEGIES, get_strategy
from .distributed import rank_world
from .deploy import backends
from . import model as mdl
from .errors import ArgumentParser, StepFailed, UserError, catch_sigterm, check_stop
from .eval_cli import prepare
from .evaluate import evaluate
from .logs import setup_logging, table
from .outputs import (FolderLock, check_save_dir, config_inputs, handle_leftovers, publish, staging_dir,
                      write_json)

log = logging.getLogger("ocrslim")

def parse_args(argv):
    p = ArgumentParser(prog="run.py", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--config", "--config_path", dest="config", required=True,
                   help="YAML config (see configs/); --config_path as in PaddleSlim's example")
    p.add_argument("--save_dir", required=True, help="folder for the compressed model and report")
    p.add_argument("-o", "--opt", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="config overrides, e.g. -o TrainConfig.train_iter=50")
    p.add_argument("--strategy", choices=sorted(STRATEGIES),
                   help="how to compress (default: the config's sections say: a TrainConfig section "
                        "means qat, none means ptq)")
    p.add_argument("--analyze", choices=["quant", "prune"],
                   help="write a sensitivity table into save_dir instead of compressing: quant, per layer "
                        "(sensitivity.csv/.json/.png); prune, per conv group and ratio (prune_sensitivity.*)")
    p.add_argument("--max_drop", type=float, metavar="POINTS",
                   help="largest drop of the main metric (points, as deployed on Eval) to accept: "
                        "when missed, the most sensitive layers go back to float and the strategy runs again")
    p.add_argument("--max_float", type=int, metavar="N",
                   help="with --max_drop: at most N more layers in float (default: half the quantizable ones)")
    p.add_argument("--target_backend", choices=backends.CHOICES, metavar="NAME",
                   help="with --max_drop: measure the attempts on this runtime instead of auto's pick for int8 "
                        "here (e.g. openvino-bf16 on AMX CPUs, where the float layers given back then cost "
                        "little); step 5 still records the fastest runtime that keeps the accuracy")
    p.add_argument("--sensitivity", metavar="JSON",
                   help="with --max_drop: a sensitivity.json from --analyze quant (default: computed when needed)")
    p.add_argument("--model_dir", help="inference model folder; overrides Global.model_dir")
    p.add_argument("--devices", metavar="cpu|gpu|gpu:N",
                   help="overrides Global.devices; gpu:N pins one process to card N (gpu: card 0; under "
                        "paddle.distributed.launch each process takes the card launch gives it)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty save_dir")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--no_bench", action="store_true",
                   help="skip step 5 (deployment benchmark and report.md/report.png)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for the step 5 benchmark (default 2)")
    return p.parse_args(argv)


def check_flags(args):
    """The numbers and flag combinations given on the command line, before anything is read."""
    import math
    if args.max_drop is not None and (not math.isfinite(args.max_drop) or args.max_drop < 0):
        raise UserError(f"--max_drop is a drop in points and must be a number >= 0, not {args.max_drop}")
    for flag in ("max_float", "sensitivity", "target_backend"):
        if getattr(args, flag) is not None and args.max_drop is None:
            raise UserError(f"--{flag} only applies with --max_drop POINTS: add it or leave out --{flag}")
    if args.max_float is not None and args.max_float < 0:  # 0: only the config's float layers, no search
        raise UserError(f"--max_float is a number of layers and must be >= 0, not {args.max_float}")
    if args.threads < 1:
        raise UserError(f"--threads must be at least 1, not {args.threads}")
    if args.analyze and (args.max_drop is not None or args.strategy):
        raise UserError(f"--analyze {args.analyze} writes a table and compresses nothing: leave out --max_drop "
                        "and --strategy")
    if args.sensitivity and not os.path.isfile(args.sensitivity):
        raise UserError(f"--sensitivity {args.sensitivity}: no such file (write one with run.py --analyze quant)")


def run_inputs(args, config):
    """What the run reads, which its save_dir may never be or hold (outputs.check_save_dir)."""
    extra = [("--sensitivity file", args.sensitivity)] if args.sensitivity else []
    return config_inputs(config) + extra


def load_config(args):
    config = cfg.load_config(args.config, args.opt, defaults=cfg.COMPRESS_DEFAULTS, model_dir=args.model_dir)
    if args.devices:
        config["Global"]["devices"] = args.devices
    if config.get("Test"):  # a Test section takes Eval's transforms and loader unless it sets its own
        config["Test"] = cfg.merge({"dataset": {"transforms": config["Eval"]["dataset"]["transforms"]},
                                    "loader": config["Eval"]["loader"]}, config["Test"])
        cfg.require(config, "Test.dataset.data_dir", "Test.dataset.label_file_list")
    return config


def summary(task, baseline, compressed, candidates, chosen, sizes, seconds, strategy, test=None):
    """The step 4 table: FP32, the strategy's candidates as measured during compression (int8, or
    FP32 pruned ones), and the saved (kept) model as loaded back, on Eval (and Test)."""
    key = task.main_indicator
    header = (["model", f"Eval {key}", "drop [95% CI]"] + ([f"Test {key}", "drop"] if test else [])
              + ["MB", "eval ms/img", "kept"])
    rows = []
    from .compress.strategies import precision
    saved = f"{precision(chosen)} saved"
    named = [("FP32", baseline), *((f"{precision(k)} {k} (in training)", v) for k, v in candidates.items()),
             (saved, compressed)]
    for name, res in named:
        drop = stats.paired_drop(baseline["per_item"], res["per_item"], task.name) if name != "FP32" else None
        row = [name, f"{res['metrics'][key]:.4f}", stats.format_drop(drop)]
        if test:
            got = test["baseline" if name == "FP32" else "compressed"][key] if name in ("FP32", saved) else None
            row += ["" if got is None else f"{got:.4f}",
                    "" if got is None or name == "FP32" else f"{test['baseline'][key] - got:+.4f}"]
        # a candidate of another precision than the saved model (prune_qat's pruned FP32 ones) has no size here
        size = sizes["baseline"] if name == "FP32" else sizes["compressed"] if name.split()[0] == saved.split()[0] else None
        kept = f" {chosen} " in name or (name == saved and not candidates)
        row += ["" if size is None else f"{size:.2f}", f"{res['seconds'] / max(res['images'], 1) * 1000:.0f}", "yes" if kept else ""]
        rows.append(row)
    unit = "images" if task.name == "det" else "crops"
    title = (f"{task.name}, strategy {strategy}: {key} (drop = FP32 - compressed, paired bootstrap over "
             f"{len(baseline['per_item'])} Eval {unit}; Eval chooses, Test only reports), size on disk, "
             f"eval ms/image (static Executor); total {seconds:.0f}s")
    return table(header, rows, title=title)


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


def _test_figures(config, task_cls, model_dir, progress):
    """The optional Test section: FP32 and the kept int8 model on it, reported, never chosen by.
    Returns (the figures for report.json, the Test samples, FP32's result with its per-item scores)."""
    from .data import build_samples
    test_config = dict(config, Eval=config["Test"])
    samples = build_samples(config, "Test", task_cls.name)
    out = {"images": len(samples)}
    fp32 = evaluate(_predict(config["Global"], task_cls, test_config), samples, task_cls(test_config),
                    config["Test"]["loader"]["batch_size_per_card"], desc="test FP32", progress=progress)
    out["baseline"] = fp32["metrics"]
    out["compressed"] = _evaluate_dir(model_dir, test_config, task_cls, samples, "test int8", progress)["metrics"]
    return out, samples, fp32


def check_tensor_names(config, model_files, strategy):
    """The tensors the config names (Calibration.keep_float, Distillation.node, Prune.distill_node)
    are in the model, and a strategy that distils finds its node: on the program alone (parsed,
    no weights), before step 1, not at step 2."""
    from .compress import qat
    from .deploy.paddle_graph import PaddleGraph
    graph = PaddleGraph.from_files(model_files, weights=False)
    given = {"Distillation.node": config["Distillation"].get("node") or [],
             "Prune.distill_node": config["Prune"]["distill_node"] or [],
             "Calibration.keep_float": config["Calibration"]["keep_float"] or []}
    for key, value in given.items():
        if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
            raise UserError(f"{key} {value!r}: give a list of tensor names, e.g. [linear_170.tmp_1]")
    nodes = [given["Distillation.node"], given["Prune.distill_node"]]
    names = given["Calibration.keep_float"] + [n for node in nodes for n in node if n != qat.OUTPUT]
    qat.check_nodes(graph.program, names)
    if strategy.name != "ptq" and not any(nodes):
        qat.find_distill_node(graph.program, graph.fetches[0].name)


def check_other_sets(config, task_cls):
    """The Train set every strategy reads and the optional Test set: label files parse, image
    files exist, a few decode (data.Samples.check_sample), before step 1."""
    from .data import build_samples
    for name in ("Train", "Test"):
        if config.get(name):
            build_samples(config, name, task_cls.name).check_sample(config[name]["loader"]["batch_size_per_card"])


class Run:
    """One run.py command. Everything is checked in __init__, before any heavy work; then one
    method per step, called in order by main()."""

    def __init__(self, args):
        self.args, self.start, self.times = args, time.time(), {}
        check_flags(args)
        self.config = load_config(args)
        self.rank, self.world = rank_world()
        # fleet from the launch world, not from how many GPUs are visible (ACT's own rule);
        # several processes on CPU are refused here, before any work
        devices = self.config["Global"]["devices"]
        self.device = distributed.plan(self.world, 0 if devices == "cpu" else distributed.visible_gpus(), devices)
        if self.device["fleet"]:
            distributed.check_fleet()
        if args.max_drop is not None and self.world > 1:
            raise UserError("--max_drop measures every attempt as deployed on one process: run it without "
                            "paddle.distributed.launch")
        self.task_cls, self.samples = prepare(self.config)
        catch_sigterm()  # Paddle is imported now: take SIGTERM back from its handler
        self.strategy = get_strategy(self.config, args.strategy)
        act_compat.check()
        self.strategy.check(self.config)
        self.model_files = mdl.model_files(self.config["Global"])
        check_save_dir(args.save_dir, run_inputs(args, self.config), args.overwrite)
        check_tensor_names(self.config, self.model_files, self.strategy)
        check_other_sets(self.config, self.task_cls)
        if args.target_backend not in (None, "auto"):  # a runtime that cannot run int8 here: before step 1
            backends.resolve(args.target_backend, self.task_cls.name, "int8", devices)
        if args.max_drop is not None and not args.sensitivity:  # the ranking is computed on demand
            from .compress.sensitivity import check_subset
            check_subset(self.config, self.task_cls, len(self.samples))
        self.progress = not args.quiet and self.rank == 0
        self.staging, self.report, self.target = None, {}, None
        self.thresholds = None  # the first calibration's, reused by later ones (strategies.run_calibration)
        self.prune_info = self.prune_table = None  # set by the prune strategies
        # one writer per save_dir: under paddle.distributed.launch only rank 0 writes it
        self.lock = FolderLock(args.save_dir).acquire() if self.rank == 0 else None
        if self.rank == 0:
            handle_leftovers(args.save_dir, remove=args.overwrite)
        log.info("config %s, model %s, strategy %s, device %s, %d process(es), fleet %s", args.config,
                 self.model_files[0], self.strategy.name, devices if self.device["card"] is None
                 else f"gpu:{self.device['card']}", self.world, "on" if self.device["fleet"] else "off")

    def _step(self, key, number, text, fn):
        check_stop()
        log.info("[%d/5] %s", number, text)
        t = time.time()
        out = fn()
        check_stop()
        self.times[key] = time.time() - t
        return out

    def baseline(self):
        """Step 1: the FP32 model on Eval."""
        predict = _predict(self.config["Global"], self.task_cls, self.config)
        batch = self.config["Eval"]["loader"]["batch_size_per_card"]
        self.fp32 = self._step("baseline_eval", 1, "evaluating the FP32 model", lambda: evaluate(
            predict, self.samples, self.task_cls(self.config), batch, desc="eval FP32", progress=self.progress))
        self.task_cls.warn_result(self.config, self.fp32)

    def compress(self):
        """Step 2: the strategy writes the int8 model into a staging folder.

        ACT makes a temp folder inside save_dir on every rank; only rank 0 saves, so the
        other ranks get a private throwaway folder."""
        self.staging = (staging_dir(self.args.save_dir) if self.rank == 0
                        else tempfile.mkdtemp(prefix=f"ocrslim-rank{self.rank}-"))
        compress = self.strategy.compress if self.args.max_drop is None else self._compress_to_target
        self.candidates = self._step("compress", 2, f"compressing ({self.strategy.name}): {self.strategy.summary}",
                                     lambda: compress(self))

    def deployed(self, files, name, section="Eval", samples=None):
        """The main metric of model files as deployed: on --target_backend, else the runtime `auto`
        picks for this CPU, on Eval (or on `samples` of the config section `section`)."""
        part = dict(self.config, Eval=self.config[section])
        with tempfile.TemporaryDirectory(prefix="ocrslim-deployed-") as work:
            predict, info = backends.predictor(files, self.args.target_backend or "auto", self.task_cls.name, work,
                                               name, self.config["Global"]["devices"], self.args.threads)
            result = evaluate(predict, self.samples if samples is None else samples, self.task_cls(part),
                              part["Eval"]["loader"]["batch_size_per_card"],
                              desc=f"{section.lower()} {name} as deployed", progress=self.progress)
        return result, info

    def _compress_to_target(self, _run):
        """Step 2 under --max_drop: compress, measure as deployed, give layers back until it holds."""
        from .compress import sensitivity, target
        key = self.task_cls.main_indicator
        # The drop is against the FP32 model itself (step 1, the executor), not against FP32 on
        # auto's FP32 runtime: that runtime is the fastest FP32-accurate one, which may still be
        # a point off (bf16 on AMX: v5 rec 1.1 points below FP32, v4 rec above it).
        fp32 = self.fp32
        first_staging, attempts_dirs = self.staging, []
        base = self.config

        def attempt(keep):
            self.config = copy.deepcopy(base)
            self.config["Calibration"]["keep_float"] = keep
            self.staging = first_staging if not attempts_dirs else staging_dir(self.args.save_dir)
            candidates = self.strategy.compress(self)
            got, info = self.deployed((self.staging,) + backends.PADDLE_FILES, "int8")
            attempts_dirs.append((self.staging, self.config, candidates))
            return {key: got["metrics"][key], "drop": fp32["metrics"][key] - got["metrics"][key],
                    "drop_ci": stats.paired_drop(fp32["per_item"], got["per_item"], self.task_cls.name),
                    "backend": info["backend"], "ms_per_item": round(1000 * got["seconds"] / max(got["images"], 1), 1),
                    "size_mb": round(mdl.model_size_mb(self.staging), 3)}

        def ranking():
            if self.args.sensitivity:
                with open(self.args.sensitivity, encoding="utf-8") as f:
                    table = json.load(f)
            else:
                log.info("the target is missed: ranking the layers (run.py --analyze quant, on demand)")
                table = sensitivity.analyze(base, self.task_cls, self.model_files, self.progress, stability=False)
            self.sensitivity = table
            return sensitivity.ranked_for_float(table)

        self.sensitivity = None
        try:
            attempts, best = target.hold(self.args.max_drop, list(base["Calibration"]["keep_float"] or []), ranking,
                                         self.args.max_float, attempt)
        except target.TargetMissed as err:
            self.target = {"max_drop": self.args.max_drop, "attempts": err.attempts}
            for staging, _, _ in attempts_dirs:
                shutil.rmtree(staging, ignore_errors=True)
            self.staging = None
            raise
        self.staging, self.config, candidates = attempts_dirs[best]
        for staging, _, _ in attempts_dirs:
            if staging != self.staging:
                shutil.rmtree(staging, ignore_errors=True)
        if self.sensitivity is not None:
            sensitivity.write(self.sensitivity, self.staging)
        self.target = {"max_drop": self.args.max_drop, "fp32": fp32["metrics"][key], "attempts": attempts,
                       "chosen": best}
        print(target_table(self.target, key))
        return candidates

    def evaluate_saved(self):
        """Step 3: the saved int8 model on Eval (and Test), and which candidate was kept and why."""
        self.saved = self._step("compressed_eval", 3, "evaluating the saved model", lambda: _evaluate_dir(
            self.staging, self.config, self.task_cls, self.samples, "eval int8", self.progress))
        self.candidates, self.chosen, self.why = self.strategy.choose(self.task_cls, self.candidates, self.saved)
        log.info("kept the %s model: %s", self.chosen, self.why)
        self.test = None
        if self.config.get("Test"):
            self.test, samples, fp32 = self._step(
                "test_eval", 3, "the Test set (reported only): FP32 and the kept int8 model",
                lambda: _test_figures(self.config, self.task_cls, self.staging, self.progress))
            if self.target:  # the target was held as deployed: say how the kept model does there on Test
                self.target["test"] = self._target_on_test(samples, fp32)
                log.info("Test as deployed (never chosen by): FP32 %s %.4f, int8 %.4f, drop %s",
                         self.task_cls.main_indicator, self.target["test"]["fp32"], self.target["test"]["int8"],
                         stats.format_drop(self.target["test"]["drop_ci"]))

    def _target_on_test(self, samples, fp32):
        """The kept model as deployed on Test against FP32 there (the executor, as on Eval)."""
        key = self.task_cls.main_indicator
        int8, info = self.deployed((self.staging,) + backends.PADDLE_FILES, "int8", "Test", samples)
        return {"fp32": fp32["metrics"][key], "int8": int8["metrics"][key], "backend": info["backend"],
                "drop_ci": stats.paired_drop(fp32["per_item"], int8["per_item"], self.task_cls.name)}

    def summarize(self):
        """Step 4: report.json, the summary table, and the model published into save_dir."""
        log.info("[4/5] summary")
        task, g = self.task_cls, self.config["Global"]
        model_dir = cfg.resolve_path(g["model_dir"])  # the user's model, not its conversion
        sizes = {"baseline": mdl.model_size_mb(*self.model_files), "compressed": mdl.model_size_mb(self.staging)}
        seconds = time.time() - self.start
        drops = {k: stats.paired_drop(self.fp32["per_item"], v["per_item"], task.name)
                 for k, v in {**self.candidates, "saved": self.saved}.items()}
        report = {"model_type": task.name, "model_dir": model_dir, "main_indicator": task.main_indicator,
                  "baseline": self.fp32["metrics"], "compressed": self.saved["metrics"],
                  "candidates": {k: v["metrics"] for k, v in self.candidates.items()}, "chosen": self.chosen,
                  "chosen_why": self.why, "drop": drops,
                  "size_mb": {k: round(v, 3) for k, v in sizes.items()}, "seconds": round(seconds, 1),
                  "step_seconds": {k: round(v, 1) for k, v in self.times.items()},
                  "strategy": {"name": self.strategy.name, "label": self.strategy.labels[self.chosen],
                               "settings": self.strategy.settings(self.config)}}
        if self.test:
            report["test"] = self.test
        if self.target:
            report["target"] = self.target
        if self.prune_info:
            report["prune"] = self.prune_info
            from .compress import prune
            prune.write(self.prune_table, self.staging)
        report["source"] = formats.source(model_dir)
        carry_model_settings(self.config, self.staging, self.args.save_dir)
        cfg.dump(self.config, os.path.join(self.staging, "config_used.yaml"))
        # what the runtimes run, for ocrslim.load_predictor and users' own predictor code; the
        # files above stay as the strategy saved them (executor eval, ONNX export)
        report["deploy_rewrites"] = backends.write_deploy(self.staging, os.path.join(self.staging, "deploy"),
                                                          task.name)
        # written before step 5 too: bench labels a model with a report.json as ours
        report["cpu"] = cpu.summary()
        write_json(os.path.join(self.staging, "report.json"), report)
        print(summary(task, self.fp32, self.saved, self.candidates, self.chosen, sizes, seconds,
                      self.strategy.name, self.test))
        # published before step 5: a benchmark that crashes can never cost the finished model
        check_stop()
        publish(self.staging, self.args.save_dir, kind="run")
        log.info("wrote %s", self.args.save_dir)
        self.report = report

    def bench(self):
        """Step 5 (unless --no_bench): the deployment benchmark, in a child process."""
        if not self.args.no_bench:
            self.report["bench"] = deploy_report(self.args, self.config)
            write_json(os.path.join(self.args.save_dir, "report.json"), self.report)

    def cleanup(self):
        if self.staging and os.path.isdir(self.staging):  # published staging folders are gone already
            shutil.rmtree(self.staging, ignore_errors=True)

    def release(self):
        if self.lock:
            self.lock.release()


def carry_model_settings(config, staging, save_dir):
    """What the source model's inference.yml prescribed goes with the result: the yml itself (a
    later eval.py or bench.py --model_dir save_dir reads it again) and a dictionary that lived only
    in it, which config_used.yaml then names at its published place."""
    from .formats import yml
    record = config["Global"].get("settings_from")
    if not record:
        return
    shutil.copyfile(record["inference_yml"], os.path.join(staging, yml.NAME))
    dictionary = config["Global"].get("character_dict_path")
    if dictionary and "Global.character_dict_path" in record["taken"]:
        shutil.copyfile(dictionary, os.path.join(staging, "character_dict.txt"))
        config["Global"]["character_dict_path"] = os.path.join(os.path.abspath(save_dir), "character_dict.txt")


def target_table(target, key):
    """--max_drop: every attempt, as deployed on Eval, and the one kept."""
    rows = [[i + 1, len(a["keep_float"]), f"+{a['extra_float']}", f"{a[key]:.4f}",
             stats.format_drop(a["drop_ci"]), a["backend"], f"{a['ms_per_item']:.1f}", f"{a['size_mb']:.2f}",
             "yes" if i == target.get("chosen") else ""] for i, a in enumerate(target["attempts"])]
    title = (f"--max_drop {target['max_drop']} points: attempts as deployed on Eval against the FP32 model "
             f"({key} {target['fp32']:.4f}); "
             "layers float = Calibration.keep_float + the most sensitive")
    return table(["attempt", "layers float", "given back", key, "drop [95% CI]", "runtime", "eval ms/item", "MB",
                  "kept"], rows, title=title)


def analyze(args):
    """run.py --analyze quant|prune: a sensitivity table into save_dir (no model is written).

    quant: every quantizable layer alone and all but it (compress/sensitivity.py); prune: every
    conv group by each pruning ratio (compress/prune.py)."""
    from .compress import prune, sensitivity
    from .compress.strategies import check_calibration
    start = time.time()
    check_flags(args)
    config = load_config(args)
    if rank_world()[1] > 1:  # every process would write the same table into save_dir
        raise UserError(f"--analyze {args.analyze} measures on one process: run it without paddle.distributed.launch")
    distributed.card(config["Global"]["devices"])  # a bad device fails here, before any work
    task_cls, samples = prepare(config)
    catch_sigterm()  # Paddle is imported now: take SIGTERM back from its handler
    act_compat.check()
    model_files = mdl.model_files(config["Global"])
    check_save_dir(args.save_dir, run_inputs(args, config), args.overwrite)
    stability = args.analyze == "quant" and bool(config["Sensitivity"]["stability"])
    n = sensitivity.check_subset(config, task_cls, len(samples), parts=2 if stability else 1)
    if args.analyze == "quant":
        check_calibration(config)
        check_other_sets(config, task_cls)
    else:
        prune.settings(config)
    with FolderLock(args.save_dir):
        handle_leftovers(args.save_dir, remove=args.overwrite)
        if args.analyze == "quant":
            log.info("sensitivity of %s: every quantizable layer alone and all but it, on %d Eval items%s",
                     model_files[0], n, " (and a second subset for stability)" if stability else "")
            result = sensitivity.analyze(config, task_cls, model_files, progress=not args.quiet)
            write, text, files = sensitivity.write, sensitivity_table(result), "sensitivity.csv, .json, .png"
        else:
            log.info("pruning sensitivity of %s: every conv group alone by each of Prune.ratios, on %d Eval items",
                     model_files[0], n)
            result = prune.analyze(config, task_cls, model_files, progress=not args.quiet)
            write, text, files = prune.write, prune_sensitivity_table(result), "prune_sensitivity.csv, .json, .png"
        staging = staging_dir(args.save_dir)
        try:
            write(result, staging)
            cfg.dump(config, os.path.join(staging, "config_used.yaml"))
            check_stop()
            publish(staging, args.save_dir, kind="analyze")
        finally:
            if os.path.isdir(staging):
                shutil.rmtree(staging, ignore_errors=True)
    print(text)
    log.info("wrote %s (%s) in %.0fs", args.save_dir, files, time.time() - start)
    return result


def prune_sensitivity_table(result):
    """A row per group, most sensitive first: output error at each ratio, FLOPs share, or why skipped."""
    from .compress.prune import summary_rows
    ratios = result["ratios"]
    rows = [[r["group"], r["convs"], "" if r["flops_share"] is None else f"{r['flops_share']:.1%}",
             *[f"{r['errors'][x]:.1e}" if x in r["errors"] else "" for x in ratios], r["skip"] or ""]
            for r in summary_rows(result)]
    title = (f"{result['model_type']} pruning sensitivity ({result['criterion']}): output error vs FP32 with "
             f"each group pruned alone, on {result['subset']['size']} Eval items (FP32 {result['main_indicator']} "
             f"{result['fp32']:.4f}); FLOPs share removed at ratio {max(ratios)}; {result['seconds']:.0f}s")
    return table(["group (master conv)", "convs", "FLOPs", *[f"r={x:g}" for x in ratios], "not swept"], rows,
                 title=title)


def sensitivity_table(result, top=12):
    key = result["main_indicator"]
    rows = [[r["layer"], r["op"], f"{r['only_error']:.2e}", f"{r['only_drop']:+.4f}", f"{r['float_gain']:.2e}",
             f"{r['all_but_gain']:+.4f}", "yes" if r["kept_float_in_config"] else ""] for r in result["rows"][:top]]
    c = result["checks"]
    title = (f"{result['model_type']}: the {min(top, len(rows))} most sensitive of {result['layers']} layers on "
             f"{result['subset']['size']} Eval items (FP32 {key} {result['fp32']:.4f}, all quantized "
             f"{result['all_quantized']:.4f}); rank agreement error vs {key}: only {c['rho_error_vs_metric_only']}, "
             f"all-but {c['rho_error_vs_metric_all_but']}"
             + (f"; between two subsets: only {c['rho_between_subsets_only']}, all-but "
                f"{c['rho_between_subsets_all_but']}" if "rho_between_subsets_only" in c else ""))
    return table(["layer", "op", "alone: error", f"alone: {key} drop", "float: error removed",
                      f"float: {key} gain", "float in config"], rows, title=title)


def main(argv=None):
    setup_logging()
    args = parse_args(argv)
    if args.analyze:
        return analyze(args)
    run = Run(args)
    try:
        run.baseline()
        try:
            run.compress()
            if run.rank != 0:
                return {}
            run.evaluate_saved()
            run.summarize()
        finally:
            run.cleanup()
        run.bench()
    finally:
        run.release()  # after step 5: it writes its report into save_dir
    return run.report


def bench_command(args, config):
    """Step 5 as a bench.py command line: FP32 and our model on every runtime that may run them here,
    and the peers (onnxruntime, NNCF); report.md, report.png and bench.json into save_dir, and into
    save_dir/deploy/settings.json the runtime measured fastest at kept accuracy for our model on
    this CPU kind, auto's pick for it from then on (bench.record_choice)."""
    on_cpu = config["Global"]["devices"] == "cpu"
    cmd = ["bench.py", "-c", args.config, "--model_dir", config["Global"]["model_dir"],
           "--model_dir", args.save_dir, "--backend", "every", "--threads", str(args.threads), "--repeat", "1",
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
    log.info("[5/5] deployment benchmark in a child process (FP32 and ours on every runtime here, the onnxruntime "
             "and NNCF PTQ peers)")
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
            "not_offered": out.get("not_offered", []), "measured_choice": out.get("measured_choice")}
