"""Evaluate a PaddleOCR det or rec inference model (FP32 or int8).

usage:
  python eval.py -c configs/ppocrv4/det_mobile.yaml
  python eval.py -c configs/ppocrv4/rec_mobile.yaml --model_dir output/demo/rec --json rec.json
  python eval.py -c CONFIG -o Eval.dataset.label_file_list=[my/eval.txt] --devices cpu
  python eval.py --e2e -c configs/ppocrv4/det_mobile.yaml --rec_config configs/ppocrv4/rec_mobile.yaml
  python eval.py --e2e -c DET_CONFIG --rec_config REC_CONFIG --model_dir output/demo/det --rec_model_dir output/demo/rec

--e2e scores the det+rec pair as an OCR system (a box counts when found and
read right) through the deployment runtime, and times each image end to end;
-o overrides then apply to the det config.
"""
import argparse
import logging

from . import config as cfg
from . import model as mdl
from . import cpu, distributed, stats
from .deploy import backends
from .data import build_samples
from .deploy import peer as peer_mod
from .deploy.e2e import run_e2e
from .errors import ArgumentParser, UserError
from .evaluate import evaluate
from .logs import setup_logging, table
from .outputs import check_json_out, config_inputs, write_result
from .tasks import DetTask, get_task

log = logging.getLogger("ocrslim")


def parse_args(argv):
    p = ArgumentParser(prog="eval.py", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--config", required=True, help="YAML config (see configs/)")
    p.add_argument("--model_dir", help="inference model folder; overrides Global.model_dir")
    p.add_argument("-o", "--opt", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="config overrides, e.g. -o Eval.loader.batch_size_per_card=8")
    p.add_argument("--json", help="write the results to this JSON file")
    p.add_argument("--devices", metavar="cpu|gpu|gpu:N", help="overrides Global.devices (gpu: card 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    e2e = p.add_argument_group("end-to-end (det + rec) evaluation")
    e2e.add_argument("--e2e", action="store_true", help="evaluate det -c CONFIG and rec --rec_config together")
    e2e.add_argument("--rec_config", help="rec YAML config (--e2e)")
    e2e.add_argument("--rec_model_dir", help="rec inference model folder; overrides its Global.model_dir (--e2e)")
    e2e.add_argument("--backend", choices=backends.CHOICES,
                     help="deployment runtime (--e2e; default auto: per model, the one measured fastest at kept "
                          "accuracy on this CPU kind)")
    e2e.add_argument("--rec_backend", choices=backends.CHOICES,
                     help="rec's runtime, where it should differ from det's (--e2e; default: --backend); e.g. "
                          "the fastest FP32-accurate pair of a model whose bf16 loses rec accuracy")
    e2e.add_argument("--threads", type=int, help="CPU threads per model (--e2e; default 2)")
    e2e.add_argument("--peer", nargs="?", const="onnxruntime", choices=sorted(peer_mod.PEERS), metavar="NAME",
                     help="run a peer's int8 of the FP32 det and rec models instead (onnxruntime, the default, or "
                          "nncf), each calibrated on its config's Train images (--e2e)")
    args = p.parse_args(argv)
    e2e_only = [f"--{name}" for name in ("rec_config", "rec_model_dir", "backend", "rec_backend", "threads", "peer")
                if getattr(args, name) is not None]
    if args.peer and (args.backend or args.rec_backend):
        raise UserError("--peer runs the peer's int8 models on its own runtime: leave out --backend and "
                        "--rec_backend")
    if args.e2e and not args.rec_config:
        raise UserError("--e2e needs --rec_config REC_CONFIG (e.g. configs/ppocrv4/rec_mobile.yaml)")
    if not args.e2e and e2e_only:
        raise UserError(f"{', '.join(e2e_only)} only apply to end-to-end evaluation: add --e2e")
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads must be at least 1, got {args.threads}")
    if args.devices:
        distributed.parse_devices(args.devices)
    return args


def prepare(config):
    """Validate everything cheap before loading the model; return (task_cls, samples)."""
    task_cls = get_task(config)
    cfg.require(config, *task_cls.required)
    task_cls.check_config(config)
    samples = build_samples(config, "Eval", task_cls.name)
    samples.check_sample(config["Eval"]["loader"]["batch_size_per_card"])
    task_cls.check_data(config, samples)
    return task_cls, samples


def run_eval(config, progress=True):
    """Load the model in config['Global'] and evaluate it on config['Eval']."""
    task_cls, samples = prepare(config)
    mdl.model_files(config["Global"])  # the files checked before anything loads them
    task = task_cls(config)
    exe, program, feeds, fetches = mdl.load(config["Global"])
    task.check_model(program, fetches)
    predict = mdl.predictor(exe, program, feeds, fetches)
    batch_size = config["Eval"]["loader"]["batch_size_per_card"]
    result = evaluate(predict, samples, task, batch_size, progress=progress)
    task_cls.warn_result(config, result)
    return result


def main_e2e(args):
    """eval.py --e2e: load both configs, check them, score the pair, print and save."""
    # the peer calibrates on each config's Train set with its Calibration.batch_nums
    defaults = cfg.COMPRESS_DEFAULTS if args.peer else cfg.DEFAULTS
    det_config = cfg.load_config(args.config, args.opt, defaults=defaults, model_dir=args.model_dir)
    rec_config = cfg.load_config(args.rec_config, defaults=defaults, model_dir=args.rec_model_dir)
    for config, want in ((det_config, "det"), (rec_config, "rec")):
        task_cls = get_task(config)
        if task_cls.name != want:
            raise UserError(f"{config['Global']['config_path']} is a {task_cls.name} config, but --e2e needs a "
                            f"{want} config there (-c DET_CONFIG --rec_config REC_CONFIG)")
    cfg.require(det_config, *DetTask.required)
    cfg.require(rec_config, "Eval.dataset.transforms", "Global.character_dict_path")
    if args.json:
        check_json_out(args.json, config_inputs(det_config) + config_inputs(rec_config))
    out = run_e2e(det_config, rec_config, backend=args.backend or "auto", rec_backend=args.rec_backend,
                  devices=args.devices or det_config["Global"]["devices"],
                  threads=args.threads or 2, progress=not args.quiet, peer=args.peer)
    rows = [[k, f"{v:.4f}" if isinstance(v, float) else v] for k, v in out["metrics"].items()]
    ci = stats.interval(out["per_image"], "e2e")
    out["interval"] = ci
    rows += [["F 95% CI", stats.format_interval(ci, "images")]]
    rows += [["images", out["images"]], ["skipped", out["skipped"]],
             ["ms/image (median)", out["latency_ms"]["median"]], ["ms/image (mean)", out["latency_ms"]["mean"]]]
    info = out["backend"]
    title = (f"e2e {out['det_model_dir']} ({info['det']['precision']}, {info['det']['backend']} "
             f"{info['det']['engine']}) + {out['rec_model_dir']} ({info['rec']['precision']}, "
             f"{info['rec']['backend']} {info['rec']['engine']})\nCPU: {cpu.line(out['cpu'])}")
    print(table(["metric", "value"], rows, title=title))
    for task in ("det", "rec"):
        if info[task].get("choice", "asked for") != "asked for":
            print(f"{task}: auto chose {info[task]['backend']}: {info[task]['choice']}")
    if args.json:
        write_result(args.json, out, "e2e")
        log.info("wrote %s", args.json)
    return out


def main(argv=None):
    args = parse_args(argv)
    setup_logging()
    if args.e2e:
        return main_e2e(args)
    config = cfg.load_config(args.config, args.opt, model_dir=args.model_dir)
    if args.devices:
        config["Global"]["devices"] = args.devices
    if args.json:
        check_json_out(args.json, config_inputs(config))
    result = run_eval(config, progress=not args.quiet)
    model_dir = cfg.resolve_path(config["Global"]["model_dir"])  # the user's model, not its conversion
    out = {"model_dir": model_dir, "model_type": config["Global"]["model_type"], **result}
    rows = [[k, f"{v:.4f}" if isinstance(v, float) else v] for k, v in result["metrics"].items()]
    task = config["Global"]["model_type"]
    ci = stats.interval(result["per_item"], task)
    out["interval"] = ci
    unit = "images" if task == "det" else "crops"
    rows += [[f"{get_task(config).main_indicator} 95% CI", stats.format_interval(ci, unit)]]
    rows += [["images", result["images"]], ["skipped", result["skipped"]],
             ["sec/image", f"{result['seconds'] / max(result['images'], 1):.3f}"]]
    print(table(["metric", "value"], rows, title=f"{out['model_type']} {model_dir}"))
    if args.json:
        write_result(args.json, out, "eval")
        log.info("wrote %s", args.json)
    return out
