"""Evaluate a PaddleOCR det or rec inference model (FP32 or int8).

usage:
  python eval.py -c configs/ppocrv4/det_mobile.yaml
  python eval.py -c configs/ppocrv4/rec_mobile.yaml --model_dir output/demo/rec --json rec.json
  python eval.py -c CONFIG -o Eval.dataset.label_file_list=[my/eval.txt] --devices cpu
"""
import argparse
import logging

from . import config as cfg
from . import model as mdl
from .data import build_samples
from .evaluate import evaluate
from .logs import setup_logging, table
from .outputs import write_json
from .tasks import get_task

log = logging.getLogger("ocrslim")


def parse_args(argv):
    p = argparse.ArgumentParser(prog="eval.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--config", required=True, help="YAML config (see configs/)")
    p.add_argument("--model_dir", help="inference model folder; overrides Global.model_dir")
    p.add_argument("-o", "--opt", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="config overrides, e.g. -o Eval.loader.batch_size_per_card=8")
    p.add_argument("--json", help="write the results to this JSON file")
    p.add_argument("--devices", choices=["cpu", "gpu"], help="overrides Global.devices")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def prepare(config):
    """Validate everything cheap before loading the model; return (task_cls, samples)."""
    task_cls = get_task(config)
    cfg.require(config, *task_cls.required)
    samples = build_samples(config["Eval"], task_cls.name)
    return task_cls, samples


def run_eval(config, progress=True):
    """Load the model in config['Global'] and evaluate it on config['Eval']."""
    task_cls, samples = prepare(config)
    task = task_cls(config)
    exe, program, feeds, fetches = mdl.load(config["Global"])
    task.check_model(program, fetches)
    predict = mdl.predictor(exe, program, feeds, fetches)
    batch_size = config["Eval"]["loader"]["batch_size_per_card"]
    return evaluate(predict, samples, task, batch_size, progress=progress)


def main(argv=None):
    args = parse_args(argv)
    setup_logging()
    config = cfg.load_config(args.config, args.opt)
    if args.model_dir:
        config["Global"]["model_dir"] = args.model_dir
    if args.devices:
        config["Global"]["devices"] = args.devices
    result = run_eval(config, progress=not args.quiet)
    model_dir = mdl.model_files(config["Global"])[0]
    out = {"model_dir": model_dir, "model_type": config["Global"]["model_type"], **result}
    rows = [[k, f"{v:.4f}" if isinstance(v, float) else v] for k, v in result["metrics"].items()]
    rows += [["images", result["images"]], ["skipped", result["skipped"]],
             ["sec/image", f"{result['seconds'] / max(result['images'], 1):.3f}"]]
    print(table(["metric", "value"], rows, title=f"{out['model_type']} {model_dir}"))
    if args.json:
        write_json(args.json, out)
        log.info("wrote %s", args.json)
    return out
