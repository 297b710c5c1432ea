"""Profile one model on one runtime: where the time of an inference goes, node by node.

usage:
  python -m ocrslim.deploy.profile output/demo/det --backend paddle
  python -m ocrslim.deploy.profile bundled:ch_PP-OCRv4_det_infer --backend openvino --json fp32.json
  python -m ocrslim.deploy.profile output/demo/rec --backend onnxruntime -c configs/ppocrv4/rec_mobile.yaml
  python -m ocrslim.deploy.profile model.onnx --backend openvino --shape 1x3x736x1280 --top 30

MODEL: a run.py output folder (its deploy/ files, as load_predictor runs them), a Paddle model
folder (as bench.py runs it: onnxruntime and OpenVINO get its paddle2onnx export, an int8 model
rewritten as bench.py's) or an .onnx file (onnxruntime and OpenVINO run it as it is).

It runs a few untimed inferences, then --repeat timed ones on one input (random, or the first
Eval image of -c CONFIG), and prints the nodes that took longest, the time per precision class
(int8, f32, bf16 kernels; reorders, converts and quantize/dequantize nodes) and how many convs
ran int8 or float. The per-node times are the runtime's own:
  openvino, openvino-bf16  the CPU plugin's performance counters (PERF_COUNT): per node its type,
                           kernel (exec_type: jit_avx2_I8, brgconv_avx2_f32) and time (a mean
                           since compilation: read before and after the timed runs)
  onnxruntime              the session's JSON profile: per node its op type, provider, input
                           types and time, inside each run's model_run
  paddle                   oneDNN's verbose log (ONEDNN_VERBOSE=1) of a child process (oneDNN
                           reads the variable once, when it starts): per primitive its kind,
                           implementation (jit_uni_int8:avx2), data types and time; Paddle ops
                           outside oneDNN show only in the rest of the wall time
Profiling slows a runtime down (oneDNN prints a line per primitive): compare profiles with each
other and take latencies from bench.py.
"""
import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from .. import config as cfg
from .. import cpu
from . import backends, runtime
from ..errors import ArgumentParser, UserError
from ..logs import setup_logging, table
from ..outputs import check_json_out, config_inputs, write_json, write_result

log = logging.getLogger("ocrslim")

WARMUP = 3  # untimed runs first: oneDNN and OpenVINO build their kernels on the first call
DEFAULT_SHAPES = {"det": (1, 3, 544, 960), "rec": (1, 3, 48, 320)}  # what bench.py's figures use
CLASSES = ("int8", "bf16", "f16", "f32", "convert", "other")
FLOAT_CLASSES = ("bf16", "f16", "f32")
CLASS_NAMES = {"int8": "int8 kernels", "bf16": "bf16 kernels", "f16": "f16 kernels", "f32": "f32 kernels",
               "convert": "reorders, converts, quantize/dequantize", "other": "other (integer and shape ops)"}


def parse_args(argv):
    p = ArgumentParser(prog="python -m ocrslim.deploy.profile", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="MODEL", help="run.py output folder, Paddle model folder (or bundled:NAME) "
                                                  "or .onnx file")
    p.add_argument("--backend", required=True, choices=list(backends.BACKENDS),
                   help="the runtime to profile (openvino-bf16: CPUs with AMX or AVX512_BF16 only; openvino-w8: int8 "
                        "models with 8-bit weights, CPUs without VNNI only)")
    p.add_argument("--threads", type=int, default=2, metavar="N", help="CPU threads of the runtime (default 2)")
    p.add_argument("--repeat", type=int, default=10, metavar="N", help="timed inferences (default 10)")
    p.add_argument("--top", type=int, default=15, metavar="N", help="nodes to list, longest first (default 15)")
    p.add_argument("--shape", metavar="NxCxHxW", help="random input of this shape (default det 1x3x544x960, "
                                                      "rec 1x3x48x320)")
    p.add_argument("-c", "--config", help="YAML config: profile on its first Eval image, preprocessed by its Eval "
                                          "transforms (instead of a random input)")
    p.add_argument("-o", "--opt", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="config overrides for -c, e.g. -o Eval.dataset.data_dir=my/images")
    p.add_argument("--json", metavar="OUT", help="also write the profile to this JSON file")
    return p.parse_args(argv)


def parse_shape(text):
    """'1x3x544x960' -> (1, 3, 544, 960)."""
    try:
        shape = tuple(int(d) for d in text.lower().split("x"))
    except ValueError:
        shape = ()
    if len(shape) != 4 or min(shape) < 1:
        raise UserError(f"--shape {text}: give four whole numbers >= 1 as NxCxHxW, e.g. 1x3x544x960")
    return shape


def check_args(args):
    """Everything about the flags that can be wrong, before any model is read."""
    for flag in ("threads", "repeat", "top"):
        if getattr(args, flag) < 1:
            raise UserError(f"--{flag} must be at least 1")
    if args.shape and args.config:
        raise UserError("--shape and -c exclude each other: -c profiles on the config's first Eval image")
    if args.opt and not args.config:
        raise UserError("-o overrides a config: pass -c CONFIG too")
    unavailable = getattr(backends.BACKENDS[args.backend], "unavailable", None)
    if unavailable and unavailable():
        raise UserError(f"--backend {args.backend}: {unavailable()}")
    return parse_shape(args.shape) if args.shape else None


# ------------------------------------------------------------------ the model and its input

class Model:
    """What MODEL is: kind "output" (a run.py save_dir), "onnx" (a file) or "paddle" (a model
    folder, or anything model.model_files converts); its task when known without loading it."""

    def __init__(self, path):
        path = cfg.resolve_path(path)
        if not os.path.exists(path):
            raise UserError(f"MODEL {path} not found: give a run.py output folder, a Paddle model folder or an "
                            ".onnx file")
        self.path, self.task, self.settings = path, None, None
        if os.path.isfile(os.path.join(path, "deploy", backends.SETTINGS_FILE)):
            self.kind = "output"
            self.deploy_dir, self.settings = backends.read_deploy_settings(path)
            self.task = self.settings["task"]
        elif path.endswith(".onnx") and os.path.isfile(path):
            from ..model_check import check_onnx_file
            check_onnx_file(path, "give an ONNX model file")
            self.kind = "onnx"
        elif os.path.isfile(path):
            raise UserError(f"MODEL {path} is a file but no .onnx model: give a run.py output folder, a Paddle "
                            "model folder or an .onnx file")
        else:
            from .. import model as mdl
            self.kind = "paddle"
            self.files = mdl.model_files({"model_dir": path})  # checked here, converted if not a .pdmodel

    def file_to_run(self, backend, work_dir):
        """What `backend` runs: the file bench.py and load_predictor give it (the Paddle
        (model_dir, model, params) for paddle)."""
        if self.kind == "output":
            return backends.deploy_file(self.deploy_dir, self.settings, backend, work_dir)
        if self.kind == "onnx":
            if backend == "paddle":  # as bench.py runs an .onnx model on Paddle: converted (formats/)
                from .. import model as mdl
                return mdl.model_files({"model_dir": self.path})
            return self.path
        return backends.BACKENDS[backend].model_file(self.files, work_dir, "profile")

    def input_dims(self):
        """The input's declared dims (-1 or 0 where free) of the model as given."""
        if self.kind == "onnx":
            import onnx
            dims = onnx.load(self.path, load_external_data=False).graph.input[0].type.tensor_type.shape.dim
            return [d.dim_value if d.HasField("dim_value") else -1 for d in dims]
        return runtime.paddle_input_shape(os.path.join(self.files[0], self.files[1]))

    def guess_task(self):
        """det or rec: a run.py folder says; else a fixed height with a free width is a rec model."""
        if self.task:
            return self.task
        dims = self.input_dims()
        return "rec" if len(dims) == 4 and dims[2] > 0 and not dims[3] > 0 else "det"


def load_config(args, model):
    """The -c config, checked, with its task and samples (eval_cli.prepare, as bench.py)."""
    from ..eval_cli import prepare
    model_dir = model.path if model.kind != "onnx" else None
    config = cfg.load_config(args.config, args.opt, model_dir=model_dir)
    task_cls, samples = prepare(config)
    if model.task and model.task != task_cls.name:
        raise UserError(f"-c {args.config} is a {task_cls.name} config, {model.path} a {model.task} model")
    return config, task_cls.name, samples


def make_input(shape, samples=None, config_path=None):
    """(float32 NCHW batch of one, where it came from)."""
    if samples is None:
        rng = np.random.default_rng(0)  # values of a normalized image's range; kernels do not care
        return rng.uniform(-1, 1, shape).astype("float32"), "random, uniform in [-1, 1], seed 0"
    from ..data import stack_images
    item = samples.load(0)
    if item is None:
        raise UserError(f"the first Eval image of {config_path} could not be loaded ({samples.failures[0]})")
    return stack_images([item]), f"the first Eval image of {config_path}: {samples.items[0][0]}"


# ------------------------------------------------------------------ precision classes

def dtype_class(dtype):
    """The precision class of a data type as the runtimes spell it (u8, I8, uint8, f32, FP32, float, bf16...)."""
    d = dtype.lower()
    if d in ("u8", "s8", "i8", "uint8", "int8"):
        return "int8"
    if d in ("bf16", "bfloat16"):
        return "bf16"
    if d in ("f16", "fp16", "float16"):
        return "f16"
    if d in ("f32", "fp32", "float", "float32"):
        return "f32"
    return "other"


def record(name, type_, exec_, cls, ms, key=None, calls=1):
    """A node's time in `calls` runs (one inference, for all but OpenVINO), as every profiler reports it."""
    return {"name": name, "type": type_, "exec": exec_, "class": cls, "ms": ms, "calls": calls, "key": key or name}


def is_conv(type_):
    """Convolution, GroupConvolution, ConvolutionBackpropData (OpenVINO), Conv, QLinearConv,
    ConvTranspose (onnxruntime), convolution, deconvolution (oneDNN); not a Convert."""
    t = type_.lower()
    return "conv" in t and "convert" not in t


# ------------------------------------------------------------------ OpenVINO

OPENVINO_CONVERTS = {"Reorder", "Convert", "FakeQuantize", "Quantize", "Dequantize"}


def openvino_class(node_type, exec_type):
    """jit_avx2_1x1_I8 -> int8, brgconv_avx2_f32 -> f32, jit_avx512_BF16 -> bf16 (the kernel's
    precision is the last part of exec_type); Reorder, Convert and FakeQuantize nodes -> convert."""
    if node_type in OPENVINO_CONVERTS:
        return "convert"
    return dtype_class(exec_type.rsplit("_", 1)[-1])


def openvino_counters(request):
    """{node: (type, exec_type, microseconds)} of the nodes OpenVINO's CPU plugin reports as run.
    Each figure is the node's mean over every inference since the model was compiled, the slow
    first one included, in whole microseconds (its PerfCount.avg(); OpenVINO 2026.4)."""
    return {n.node_name: (n.node_type, n.exec_type, round(n.real_time.total_seconds() * 1e6))
            for n in request.get_profiling_info() if n.real_time.total_seconds() > 0}


def openvino_window(before, after, runs_before, runs_after):
    """Records of the runs between two counter readings: a node's time there is its mean after
    them times runs_after, less its mean before them times runs_before (every node runs once per
    inference; each mean is truncated to the microsecond, so a node's time is good to about
    runs_after microseconds over the window)."""
    out = []
    for name, (type_, exec_, us) in after.items():
        total = us * runs_after - before.get(name, (None, None, 0))[2] * runs_before
        out.append(record(name, type_, exec_, openvino_class(type_, exec_), max(total, 0) / 1000,
                          calls=runs_after - runs_before))
    return out


def warm_up(predict, image):
    """The untimed runs every profile starts with (kernels compiled, caches filled)."""
    for _ in range(WARMUP):
        predict(image)


def timed_runs(predict, image, repeat):
    """Wall time of each of `repeat` calls, in ms."""
    wall = []
    for _ in range(repeat):
        start = time.perf_counter()
        predict(image)
        wall.append((time.perf_counter() - start) * 1000)
    return wall


def profile_openvino(path, image, args, work_dir):
    hint = backends.BACKENDS[args.backend].hint
    predict, info = runtime.openvino_predictor(path, args.threads, hint, perf_count=True)
    warm_up(predict, image)
    before = openvino_counters(predict.request)
    wall = timed_runs(predict, image, args.repeat)
    after = openvino_counters(predict.request)
    return openvino_window(before, after, WARMUP, WARMUP + args.repeat), wall, None, info


# ------------------------------------------------------------------ onnxruntime

ONNX_CONVERTS = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "Cast", "ReorderInput",
                 "ReorderOutput"}  # the last two: the NCHWc layout changes onnxruntime inserts
ONNX_INT8_OPS = {"ConvInteger", "MatMulInteger", "QGemm", "MatMulIntegerToFloat", "DynamicQuantizeMatMul",
                 "QAttention"}


def onnxruntime_class(op_name, input_types):
    """QLinear* and the integer ops -> int8, Q/DQ, casts and layout reorders -> convert, any other
    op by the type of its first input (a Transpose or MaxPool of uint8 data runs int8)."""
    if op_name in ONNX_CONVERTS:
        return "convert"
    if op_name.startswith("QLinear") or op_name in ONNX_INT8_OPS:
        return "int8"
    return dtype_class(input_types[0]) if input_types else "other"


def onnxruntime_records(events, repeat):
    """(records, model_run ms) of the last `repeat` runs of an onnxruntime JSON profile: the
    node events ("cat": "Node", NAME_kernel_time) inside each of those model_run events."""
    runs = [e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"][-repeat:]
    windows = [(r["ts"], r["ts"] + r["dur"]) for r in runs]
    records = []
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time"):
            continue
        if not any(start <= e["ts"] <= end for start, end in windows):
            continue
        a = e.get("args", {})
        types = [next(iter(t)) for t in a.get("input_type_shape", []) if t]
        provider = a.get("provider", "").replace("ExecutionProvider", "")
        records.append(record(e["name"][:-len("_kernel_time")], a.get("op_name", "?"),
                              f"{provider} {types[0] if types else ''}".strip(),
                              onnxruntime_class(a.get("op_name", ""), types), e["dur"] / 1000))
    return records, [r["dur"] / 1000 for r in runs]


def profile_onnxruntime(path, image, args, work_dir):
    predict, info = runtime.onnx_predictor(path, "cpu", args.threads,
                                           profile_prefix=os.path.join(work_dir, "onnxruntime"))
    warm_up(predict, image)
    wall = timed_runs(predict, image, args.repeat)
    with open(predict.session.end_profiling(), encoding="utf-8") as f:
        records, runs = onnxruntime_records(json.load(f), args.repeat)
    return records, wall, runs, info


# ------------------------------------------------------------------ Paddle Inference (oneDNN)

TIMED_MARK = "ocrslim_profile,timed"  # the child's line between warm-up and timed runs
CHILD = "import sys; from ocrslim.deploy.profile import paddle_child; paddle_child(sys.argv[1])"
ONEDNN_CONVERTS = {"reorder"}  # layout changes and f32 <-> int8 (quantize, dequantize) alike


def parse_onednn(line):
    """A record for one oneDNN verbose exec line, or None for any other line. oneDNN 3.x (2.x
    wrote dnnl_verbose; 3.3 on write 'primitive,exec'; ONEDNN_VERBOSE_TIMESTAMP=1 adds a time):
      onednn_verbose,exec,cpu,KIND,IMPLEMENTATION,PROP_KIND,MEMORY_DESCRIPTORS,ATTRIBUTES,AUX,PROBLEM,MS
    The data types come from the memory descriptors (src_u8:a:blocked:acdb::f0 wei_s8:... dst_f32...):
    a primitive reading int8 data (or weights) runs int8 kernels; reorders are conversions."""
    fields = line.strip().split(",")
    if fields[0] not in ("onednn_verbose", "dnnl_verbose") or "exec" not in fields[1:4]:
        return None
    rest = fields[fields.index("exec", 1) + 1:]
    if len(rest) < 9:
        return None
    kind, impl, mds, aux, problem = rest[1], rest[2], rest[4], rest[-3], rest[-2]
    try:
        ms = float(rest[-1])
    except ValueError:
        return None
    types = [tuple(md.split(":")[0].rsplit("_", 1)) for md in mds.split()]
    types = [t for t in types if len(t) == 2 and t[1] != "undef"]
    inputs = [dt for arg, dt in types if arg.startswith(("src", "wei", "data"))]  # data: eltwise's in and out
    outputs = [dt for arg, dt in types if arg.startswith("dst")] or [dt for arg, dt in types if arg == "data"]
    classes = {dtype_class(dt) for dt in inputs}
    cls = ("convert" if kind in ONEDNN_CONVERTS else
           next((c for c in ("int8", "bf16", "f16", "f32") if c in classes), "other"))
    alg = aux.split("alg:", 1)[1].split()[0] if "alg:" in aux else ""
    type_ = kind if not alg or "conv" in kind else alg  # binary_add, eltwise_relu, pooling_max ...
    exec_ = f"{impl} {':'.join(inputs)}->{':'.join(outputs)}"
    return record(problem, type_, exec_, cls, ms, key=",".join(rest[:-1]))


def onednn_records(lines):
    """The records of the lines after the child's TIMED_MARK."""
    out, timed = [], False
    for line in lines:
        if line.startswith(TIMED_MARK):
            timed = True
        elif timed:
            r = parse_onednn(line)
            if r:
                out.append(r)
    return out


def paddle_child(spec_path):
    """The child process of profile_paddle: Paddle Inference as load_predictor and bench.py
    create it, with oneDNN's verbose lines on stdout, TIMED_MARK between warm-up and timed runs,
    and the wall times (or the UserError) written to spec["out"]."""
    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)
    try:
        predict, info = runtime.paddle_predictor(tuple(spec["files"]), "cpu", spec["threads"])
        image = np.load(spec["input"])
        warm_up(predict, image)
        sys.stdout.flush()
        os.write(1, (TIMED_MARK + "\n").encode())  # oneDNN flushes each line it prints: the order holds
        result = {"info": info, "wall_ms": timed_runs(predict, image, spec["repeat"])}
    except UserError as err:
        result = {"error": str(err)}
    write_json(spec["out"], result)


def profile_paddle(files, image, args, work_dir):
    spec = {"files": list(files), "threads": args.threads, "repeat": args.repeat,
            "input": os.path.join(work_dir, "input.npy"), "out": os.path.join(work_dir, "paddle.json")}
    np.save(spec["input"], image)
    spec_path = os.path.join(work_dir, "spec.json")
    write_json(spec_path, spec)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this ocrslim's
    env = dict(os.environ, ONEDNN_VERBOSE="1", DNNL_VERBOSE="1",
               PYTHONPATH=os.pathsep.join([root] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    out_path, err_path = os.path.join(work_dir, "onednn.log"), os.path.join(work_dir, "child.err")
    with open(out_path, "w") as out, open(err_path, "w") as err:
        code = subprocess.run([sys.executable, "-c", CHILD, spec_path], stdout=out, stderr=err, env=env).returncode
    result = {}
    if os.path.isfile(spec["out"]):
        with open(spec["out"], encoding="utf-8") as f:
            result = json.load(f)
    if "error" in result:
        raise UserError(result["error"])
    if code != 0 or "wall_ms" not in result:
        with open(err_path, encoding="utf-8", errors="replace") as f:
            tail = f.read().strip().splitlines()[-5:]
        raise RuntimeError(f"the Paddle Inference child process failed (exit {code}): " + " | ".join(tail))
    with open(out_path, encoding="utf-8", errors="replace") as f:
        records = onednn_records(f)
    if not records:
        raise RuntimeError("Paddle Inference ran, but oneDNN printed no verbose line: is oneDNN on?")
    return records, result["wall_ms"], None, result["info"]


PROFILERS = {"paddle": profile_paddle, "onnxruntime": profile_onnxruntime, "openvino": profile_openvino,
             "openvino-bf16": profile_openvino, "openvino-w8": profile_openvino}


# ------------------------------------------------------------------ summary

def aggregate(records, repeat, total_ms):
    """Per node (per distinct primitive for oneDNN): calls and ms per inference, share of the
    total, longest first."""
    nodes = {}
    for r in records:
        n = nodes.setdefault(r["key"], {k: r[k] for k in ("name", "type", "exec", "class")} | {"calls": 0, "ms": 0.0})
        n["calls"] += r["calls"]
        n["ms"] += r["ms"]
    out = sorted(nodes.values(), key=lambda n: -n["ms"])
    for n in out:
        n["calls"] = round(n["calls"] / repeat, 2)
        n["ms"] = round(n["ms"] / repeat, 6)
        n["share"] = round(n["ms"] / total_ms, 6) if total_ms else None
    return out


def by_class(nodes, total_ms):
    """{class: {"ms", "share", "calls"}} for each class that ran."""
    out = {}
    for c in CLASSES:
        mine = [n for n in nodes if n["class"] == c]
        if mine:
            ms = sum(n["ms"] for n in mine)
            out[c] = {"ms": round(ms, 6), "share": round(ms / total_ms, 6) if total_ms else None,
                      "calls": round(sum(n["calls"] for n in mine), 2)}
    return out


def conv_counts(nodes):
    """Conv runs per inference, int8 against float, and the float ones."""
    convs = [n for n in nodes if is_conv(n["type"])]
    counts = {c: round(sum(n["calls"] for n in convs if n["class"] == c), 2) for c in CLASSES}
    return {"int8": counts["int8"], "float": round(sum(counts[c] for c in FLOAT_CLASSES), 2),
            "by_class": {c: v for c, v in counts.items() if v},
            "float_nodes": [{k: n[k] for k in ("name", "type", "exec", "calls", "ms")}
                            for n in convs if n["class"] in FLOAT_CLASSES]}


def convert_counts(nodes, total_ms):
    """Reorder/convert/quantize runs per inference and their time, in all and per node type."""
    mine = [n for n in nodes if n["class"] == "convert"]
    types = {}
    for n in mine:
        t = types.setdefault(n["type"], {"calls": 0, "ms": 0.0})
        t["calls"] = round(t["calls"] + n["calls"], 2)
        t["ms"] = round(t["ms"] + n["ms"], 6)
    ms = sum(n["ms"] for n in mine)
    return {"calls": round(sum(n["calls"] for n in mine), 2), "ms": round(ms, 6),
            "share": round(ms / total_ms, 6) if total_ms else None,
            "by_type": dict(sorted(types.items(), key=lambda kv: -kv[1]["ms"]))}


def summarize(records, wall, runtime_ms, repeat):
    """The profile's figures: totals per inference, nodes, classes, convs, converts. Shares are
    of the runtime's own time per run where it reports one (onnxruntime's model_run), else of
    the wall time of the call."""
    def ms_stats(values):
        return {"mean": round(statistics.fmean(values), 4), "median": round(statistics.median(values), 4)}
    total = statistics.fmean(runtime_ms) if runtime_ms else statistics.fmean(wall)
    nodes = aggregate(records, repeat, total)
    nodes_ms = sum(n["ms"] for n in nodes)
    return {"wall_ms": ms_stats(wall), "runtime_ms": ms_stats(runtime_ms) if runtime_ms else None,
            "total_ms": round(total, 6), "total_is": "runtime_ms" if runtime_ms else "wall_ms",
            "nodes_ms": round(nodes_ms, 6), "outside_nodes_ms": round(total - nodes_ms, 6),
            "by_class": by_class(nodes, total), "convs": conv_counts(nodes),
            "converts": convert_counts(nodes, total), "nodes": nodes}


def _cut(text, width=60):
    return text if len(text) <= width else text[:width - 3] + "..."


def _head(p):
    total = p["total_ms"]
    what = ("onnxruntime's own time per run (model_run), wall %.2f ms" % p["wall_ms"]["mean"]
            if p["total_is"] == "runtime_ms" else "wall time of the call")
    return (f"{p['model']} on {p['backend']} ({p['engine']}), {p['precision']} model; runs {p['file']}\n"
            f"input {'x'.join(map(str, p['input']['shape']))} ({p['input']['source']}); {p['threads']} thread(s), "
            f"{p['repeat']} timed runs after {p['warmup']} untimed\nCPU: {cpu.line(p['cpu'])}\n"
            f"per inference: {total:.2f} ms ({what}); in the runtime's {len(p['nodes'])} nodes "
            f"{p['nodes_ms']:.2f} ms ({p['nodes_ms'] / total:.0%})")


def _counts(p, top):
    c, v = p["convs"], p["converts"]
    floats = [f"{_cut(n['name'], 40)} {n['exec']} {n['ms']:.3f} ms" for n in c["float_nodes"]]
    more = f" and {len(floats) - top} more" if len(floats) > top else ""
    types = ", ".join(f"{t} {x['calls']:g} ({x['ms']:.3f} ms)" for t, x in v["by_type"].items())
    return "\n".join([
        f"convs per inference: {c['int8']:g} int8, {c['float']:g} float "
        f"({', '.join(f'{k} {n:g}' for k, n in c['by_class'].items()) or 'none'})",
        f"float convs: {', '.join(floats[:top]) + more if floats else 'none'}",
        f"reorders/converts/quantize per inference: {v['calls']:g}, {v['ms']:.3f} ms ({v['share']:.1%})"
        + (f": {types}" if types else "")])


def report_text(p, top):
    """What the command prints: the run, the top nodes, the precision classes, the conv and
    convert counts."""
    total = p["total_ms"]
    rows = [[_cut(n["name"]), n["type"], n["exec"], f"{n['calls']:g}", f"{n['ms']:.3f}", f"{n['share']:.1%}"]
            for n in p["nodes"][:top]]
    nodes = table(["node", "type", "kernel / precision", "calls", "ms", "share"], rows,
                  title=f"top {len(rows)} nodes by time, ms per inference")
    rows = [[CLASS_NAMES[c], f"{v['calls']:g}", f"{v['ms']:.3f}", f"{v['share']:.1%}"]
            for c, v in p["by_class"].items()]
    rows.append(["outside the runtime's nodes", "", f"{p['outside_nodes_ms']:.3f}",
                 f"{p['outside_nodes_ms'] / total:.1%}"])
    classes = table(["precision class", "calls", "ms", "share"], rows, title="time by precision class")
    return "\n\n".join([_head(p), nodes, classes, _counts(p, top)])


# ------------------------------------------------------------------ the command

def profile(args, shape):
    """Load, run and summarize; returns the JSON dict."""
    model = Model(args.model)
    config, samples, task = None, None, model.guess_task()
    if args.config:
        config, task, samples = load_config(args, model)
    if args.json:
        inputs = [("model dir", model.path)] + (config_inputs(config) if config else [])
        check_json_out(args.json, inputs)
    image, source = make_input(shape or DEFAULT_SHAPES[task], samples, args.config)
    with tempfile.TemporaryDirectory(prefix="ocrslim-profile-") as work_dir:
        path = model.file_to_run(args.backend, work_dir)
        shown = os.path.join(path[0], path[1]) if isinstance(path, tuple) else path
        if shown.startswith(work_dir):
            shown = f"{os.path.basename(shown)}, exported as bench.py exports it"
        log.info("profiling on %s: %s; %d untimed and %d timed runs", args.backend, shown, WARMUP, args.repeat)
        records, wall, runtime_ms, info = PROFILERS[args.backend](path, image, args, work_dir)
    why = backends.not_offered(task, "int8" if info["precision"] == "int8" else "fp32", args.backend,
                               model_dir=model.path if model.kind != "onnx" else None)
    if why:
        log.warning("%s is not offered for this model on this CPU (%s); profiled all the same", args.backend, why)
    return {"model": model.path, "kind": model.kind, "file": shown, "backend": args.backend,
            "engine": info["engine"], "precision": info["precision"], "task": task,
            "input": {"shape": list(image.shape), "source": source}, "threads": info["threads"],
            "repeat": args.repeat, "warmup": WARMUP, "cpu": cpu.summary(),
            **summarize(records, wall, runtime_ms, args.repeat)}


def main(argv=None):
    args = parse_args(argv)
    setup_logging()
    shape = check_args(args)
    result = profile(args, shape)
    print(report_text(result, args.top))
    if args.json:
        write_result(args.json, result, "profile")
        log.info("wrote %s", args.json)
    return result


if __name__ == "__main__":
    from ..errors import run_cli
    run_cli(main)
