"""The deployment runtimes, as a registry keyed by name, and what differs per CPU kind.

bench.py, eval.py --e2e and run.py's step 5 get their predictors here. The
backend `auto` picks, for a model's task (det/rec) and precision (fp32/int8)
on this CPU's kind (cpu.kind()), the runtime that was measured fastest at
kept accuracy (CHOICE). A runtime that was measured to lose accuracy on a
CPU kind is not offered there (NOT_OFFERED); a kind never measured gets
SAFE, the runtime that kept accuracy on every kind measured.
"""
import logging
import os

from .. import cpu
from . import runtime
from ..errors import UserError
from ..model import model_size_mb
from ..model_check import check_model_files, check_onnx_file

log = logging.getLogger("ocrslim")


class PaddleBackend:
    """Paddle Inference: oneDNN (int8 kernels for quantized models) on CPU, TensorRT on GPU."""
    name = "paddle"

    @staticmethod
    def cpu_settings():
        """Paddle Inference settings for this CPU (also written into save_dir/deploy/settings.json)."""
        delete = []
        # self_attention_fuse_pass makes the SVTR attention one self_dp_attention op whose
        # kernel Paddle 2.6.2 builds for AVX-512 only: SIGILL on the first run() of PP-OCRv4
        # rec on an AVX2 CPU. Without the pass the attention runs as separate matmul/softmax ops.
        if not all(cpu.has(f) for f in ("avx512f", "avx512bw", "avx512vl")):
            delete.append("self_attention_fuse_pass")
        return {"delete_passes": delete}

    def predictor(self, files, work_dir, name, devices, threads, precision, shapes):
        settings = self.cpu_settings() if devices == "cpu" else {}
        predict, info = runtime.paddle_predictor(files, devices, threads, precision, shapes,
                                                 delete_passes=settings.get("delete_passes", []))
        return predict, {**info, "size_mb": model_size_mb(*files), "settings": settings}

    @staticmethod
    def model_file(files, work_dir, name):
        """What Paddle Inference runs: the model files themselves (paddle_predictor rewrites an
        int8 program as it loads it)."""
        return files


def has_vnni():
    return cpu.has("avx512_vnni") or cpu.has("avx_vnni")


class OnnxBackend:
    """onnxruntime on the paddle2onnx export (int8: rewritten by onnx_passes)."""
    name = "onnxruntime"

    @staticmethod
    def cpu_settings():
        # without VNNI the U8S8 int8 kernels saturate: int8 weights go in as uint8 (exact)
        return {"uint8_weights": not has_vnni()}

    @staticmethod
    def unavailable(devices="cpu"):
        """Why this runtime cannot run here at all, or None."""
        import onnxruntime as ort
        if devices != "cpu" and "CUDAExecutionProvider" not in ort.get_available_providers():
            return "onnxruntime's GPU build (the onnxruntime-gpu package) is not installed"
        return None

    def predictor(self, files, work_dir, name, devices, threads, precision, shapes):
        settings = self.cpu_settings() if devices == "cpu" else {"uint8_weights": False}
        path = self.model_file(files, work_dir, name, settings)
        predict, info = runtime.onnx_predictor(path, devices, threads)
        return predict, {**info, "size_mb": os.path.getsize(path) / 2 ** 20, "settings": settings}

    def model_file(self, files, work_dir, name, settings=None):
        """The ONNX file onnxruntime runs for Paddle model files, written into work_dir
        (settings: this CPU's by default)."""
        path = runtime.onnx_model(files, work_dir, name)
        return for_this_cpu(path, self.cpu_settings() if settings is None else settings, work_dir)


def for_this_cpu(onnx_path, settings, work_dir):
    """The ONNX file to run with `settings`: an int8 model gets uint8 weights where asked, from
    NAME.u8u8.onnx next to it when there is one (save_dir/deploy has), else written into work_dir."""
    if not settings.get("uint8_weights") or not runtime.onnx_is_quantized(onnx_path):
        return onnx_path
    from .onnx_passes import uint8_weights
    stem = os.path.splitext(os.path.basename(onnx_path))[0] + ".u8u8.onnx"
    beside = os.path.join(os.path.dirname(onnx_path), stem)
    if os.path.exists(beside):
        return beside
    out, count = uint8_weights(onnx_path, os.path.join(work_dir, stem))
    log.info("no VNNI on this CPU: %d int8 weights re-encoded as uint8 for onnxruntime", count)
    return out


def has_bf16():
    """bf16 arithmetic OpenVINO runs on this CPU: AMX tiles, or AVX-512 BF16 (Cooper Lake, Zen 4)."""
    return cpu.has("amx_bf16") or cpu.has("avx512_bf16")


class OpenVinoBackend:
    """OpenVINO's CPU plugin. FP32: the ONNX model onnxruntime runs. int8: that model with signed
    activations, and 7-bit weights on CPUs without VNNI (onnx_passes.openvino_int8_onnx). hint "f32"
    keeps every float op in FP32; "bf16" lets OpenVINO run the float ops in bfloat16 (its default on
    AMX CPUs), offered where the CPU has bf16 instructions."""

    def __init__(self, name, hint, eight_bit_weights=False):
        self.name, self.hint, self.eight_bit_weights = name, hint, eight_bit_weights

    def cpu_settings(self):
        # without VNNI the int8 kernels saturate u8 x s8 pair sums: 7-bit weights fit (see
        # onnx_passes.seven_bit_weights). openvino-w8 keeps the trained 8-bit weights there: the
        # same speed, exact where no pair sum of the model saturates (v4 det: 0.3567 against 7-bit's
        # 0.3485; v3 det: 0.2934 against 0.3376), so run.py's step 5 measures it per model.
        return {"seven_bit_weights": not has_vnni() and not self.eight_bit_weights}

    def unavailable(self, devices="cpu"):
        """Why this runtime cannot run here at all, or None."""
        if devices != "cpu":
            return "OpenVINO runs on the CPU here (its GPU plugin is not set up)"
        if self.hint == "bf16" and not has_bf16():
            return "this CPU has no bf16 instructions (AMX or AVX512_BF16)"
        if self.eight_bit_weights and has_vnni():
            return "this CPU has VNNI: openvino runs the 8-bit weights already"
        return None

    def predictor(self, files, work_dir, name, devices, threads, precision, shapes):
        path = self.model_file(files, work_dir, name)
        settings = self.cpu_settings() if runtime.onnx_is_quantized(path) else {}
        return self.load(path, threads, settings)

    def model_file(self, files, work_dir, name, settings=None):
        """The ONNX file OpenVINO runs for Paddle model files, written into work_dir (settings:
        this CPU's by default)."""
        return for_openvino(runtime.onnx_model(files, work_dir, name, openvino=True),
                            self.cpu_settings() if settings is None else settings, work_dir)

    def load(self, model_path, threads, settings=None):
        predict, info = runtime.openvino_predictor(model_path, threads, self.hint)
        size = os.path.getsize(model_path)
        if model_path.endswith(".xml"):
            size += os.path.getsize(model_path[:-4] + ".bin")
        # the registry's name (openvino-bf16, openvino-w8): what auto records and resolve takes back
        return predict, {**info, "backend": self.name, "size_mb": size / 2 ** 20,
                         "settings": {"hint": self.hint, **(settings or {})}}


def for_openvino(onnx_path, settings, work_dir):
    """The ONNX file OpenVINO runs for an ONNX file onnxruntime runs: the same file for FP32; for int8
    NAME.ov.onnx (signed activations) or, with settings["seven_bit_weights"], NAME.ov7.onnx, written
    into work_dir."""
    if not runtime.onnx_is_quantized(onnx_path):
        return onnx_path
    from .onnx_passes import openvino_int8_onnx
    seven = bool(settings.get("seven_bit_weights"))
    stem = os.path.splitext(os.path.basename(onnx_path))[0] + (".ov7.onnx" if seven else ".ov.onnx")
    out, counts = openvino_int8_onnx(onnx_path, os.path.join(work_dir, stem), seven)
    log.info("OpenVINO's int8 file: %s", ", ".join(f"{k} {v}" for k, v in counts.items()))
    return out


BACKENDS = {b.name: b for b in (PaddleBackend(), OnnxBackend(), OpenVinoBackend("openvino", "f32"),
                                OpenVinoBackend("openvino-bf16", "bf16"),
                                OpenVinoBackend("openvino-w8", "f32", eight_bit_weights=True))}
CHOICES = ("auto",) + tuple(BACKENDS)

# Measured fastest at kept accuracy: (measured CPU kind, task, precision) -> (backend, why).
# fp32: the fastest FP32-accurate runtime of the FP32 model, the baseline every speed-up is
# against (bench.choose_baseline); int8: the fastest runtime that keeps our int8 model's accuracy.
# Figures: docs/results-per-cpu.md; 2 threads.
CHOICE = {
    # amx: Sapphire Rapids, one bench run per task on the real dev split (185 images / 895 crops,
    # session 15, docs/performance.md#sapphire-rapids-amx). bf16 keeps FP32's accuracy there
    # (det 0.3596-0.3625 vs 0.3614, rec 0.8045-0.8067 vs 0.8034) and is the fastest FP32 runtime
    ("amx", "det", "fp32"): ("openvino-bf16", "OpenVINO bf16 40.3 ms (25.8 with the exact rewrites), f32 59.5, "
                                              "Paddle 78.5 ms; hmean 0.3596 vs FP32 0.3614 (185 real images)"),
    ("amx", "rec", "fp32"): ("openvino-bf16", "OpenVINO bf16 5.6 ms, f32 9.4, onnxruntime 15.7, Paddle 19.3 ms; "
                                              "acc 0.8067 vs FP32 0.8034 (895 real crops)"),
    # int8 + bf16: the int8 convs on AMX, the float ops in bf16; rec's float ops in bf16 cost 1.8
    # points there (0.7799 vs 0.7978), so int8 rec keeps them in f32
    ("amx", "det", "int8"): ("openvino-bf16", "OpenVINO int8 + bf16 27.0 ms, hmean 0.3556 (executor 0.3564); f32 "
                                              "32.3 ms, Paddle int8 49.9 ms; the FP32 model on OpenVINO bf16 28.7 ms"),
    ("amx", "rec", "int8"): ("openvino", "OpenVINO int8 6.2 ms, acc 0.7978 (executor 0.7933); with bf16 5.9 ms but "
                                         "0.7799; Paddle int8 12.0 ms; slower than the FP32 model on OpenVINO bf16 "
                                         "(5.4 ms)"),
    ("avx512_vnni", "det", "int8"): ("paddle", "oneDNN int8 1.51-1.85x the fastest FP32 in 7 bench runs, "
                                               "hmean at the executor's; onnxruntime int8 0.99x"),
    # On the synthetic demo crops both runtimes matched the executor and onnxruntime was faster;
    # on 895 real ICDAR2015 crops onnxruntime lost 1.8-3.2 points against the executor on both
    # int8 rec models measured, Paddle Inference stayed within 0.8 and was faster there.
    ("avx512_vnni", "rec", "int8"): ("paddle", "real crops (895): Paddle int8 at the executor's accuracy "
                                               "(-0.7/+0.8 points) and 1.39-1.54x, onnxruntime int8 1.8-3.2 "
                                               "points below it and 1.18-1.20x; synthetic crops: both at the "
                                               "executor's, onnxruntime 1.10-1.40x, Paddle 1.00-1.28x"),
    ("avx512_vnni", "det", "fp32"): ("paddle", "Paddle 34-46 ms, onnxruntime 32-49 ms: even; Paddle's "
                                               "p90 is lower (OpenVINO not measured on this kind)"),
    ("avx512_vnni", "rec", "fp32"): ("onnxruntime", "onnxruntime 7.1 ms, Paddle 11.4 ms (OpenVINO not measured "
                                                    "on this kind)"),
    # avx2: AMD EPYC, one bench run per task on the real dev split (docs/results-per-cpu.md)
    ("avx2", "det", "fp32"): ("openvino", "OpenVINO f32 58.6 ms, Paddle 69.7, onnxruntime 80.9 (185 real images)"),
    ("avx2", "rec", "fp32"): ("openvino", "OpenVINO f32 11.9 ms, onnxruntime 18.8, Paddle 20.9 (895 real crops)"),
    # OpenVINO int8 (7-bit weights, docs/performance.md) is faster here but lost 1.3 points of v4
    # det (0.5 kept on v2 and v3): Paddle kept every generation within 0.6 point
    ("avx2", "det", "int8"): ("paddle", "oneDNN int8 44.0 ms, 1.33x the FP32 model on OpenVINO (58.5 ms), hmean "
                                        "0.3559 vs FP32 0.3614 on 185 real images; OpenVINO int8 39.0 ms but 0.3485"),
    ("avx2", "rec", "int8"): ("onnxruntime", "the one runtime that keeps int8 rec here (uint8 weights, no 16-bit "
                                             "saturation): 0.7799 (executor 0.7966) on 895 real crops, but 17.3 ms, "
                                             "slower than the FP32 model on OpenVINO (11.9 ms)"),
}
# Runtimes that lost accuracy as deployed on a CPU kind: (kind, task, precision, backend) -> why.
NOT_OFFERED = {
    ("avx2", "rec", "int8", "paddle"): "without VNNI oneDNN halves int8 weights for signed inputs (7 bits) and "
                                       "saturates unsigned ones: rec 0.680 vs the executor's 0.777 on the demo set "
                                       "(ONEDNN_MAX_CPU_ISA=AVX2), 0.397 vs 0.628 on real crops (AMD EPYC)",
    # OpenVINO's int8 kernels without VNNI sum u8 x s8 pairs in 16 bits with saturation, as
    # oneDNN's do: uint8 weights would be exact (0.7700 vs the executor's 0.7733 on 300 real
    # crops), but OpenVINO then runs those convs slower than FP32 (22.3 against 19.9 ms)
    ("avx2", "rec", "int8", "openvino"): "without VNNI OpenVINO's int8 kernels saturate: 0.6123 vs the executor's "
                                         "0.7966 on 895 real crops (AMD EPYC)",
    ("avx2", "rec", "int8", "openvino-w8"): "without VNNI OpenVINO's int8 kernels saturate 8-bit weights: 0.6123 "
                                            "vs the executor's 0.7966 on 895 real crops (AMD EPYC)",
    # onnxruntime's int8 det misses boxes the trained model finds, on both kinds measured (Paddle
    # Inference keeps them and is faster there, so det int8 stays on Paddle)
    ("avx512_vnni", "det", "int8", "onnxruntime"): "onnxruntime int8 det loses boxes the executor finds: demo set "
                                                   "0.7846 vs 0.8000, tiny test set 17 vs 20 of 27 boxes",
    ("avx2", "det", "int8", "onnxruntime"): "onnxruntime int8 det loses boxes the executor finds: demo set 0.7653 "
                                            "vs 0.7876 (AMD EPYC)",
}
# OpenVINO int8 on AVX-512 VNNI CPUs without AMX: never checked against the executor on such a
# CPU. On Sapphire Rapids (amx) its files (the executor's quantizers on the exactly rewritten
# program) matched the executor: det 0.3552 vs 0.3564, rec 0.7978 vs 0.7933 (session 15). Issue
# 26's 6.4-point loss there came from an earlier file (paddle2onnx's Q/DQ, conv-output Q); which
# of its differences caused it was not measured
NOT_OFFERED.update({
    ("avx512_vnni", task, "int8", name): "OpenVINO int8 was never checked against the executor on an AVX-512 "
                                         "VNNI CPU without AMX (it matched it on Sapphire Rapids)"
    for task in ("det", "rec") for name in ("openvino", "openvino-bf16")})
# For CPU kinds never measured: what kept accuracy on every kind measured.
SAFE = {("det", "fp32"): "onnxruntime", ("rec", "fp32"): "onnxruntime",
        ("det", "int8"): "paddle", ("rec", "int8"): "onnxruntime"}


def choose(task, precision, devices="cpu", model_dir=None):
    """(backend name, reason) for `auto`: what run.py's step 5 measured for this model on this CPU
    kind (measured_choice), else the per-kind tables above."""
    if devices != "cpu":  # gpu or gpu:N
        return "paddle", "GPU: Paddle Inference (TensorRT when built in); onnxruntime-gpu is not a dependency"
    measured = measured_choice(model_dir, task, precision) if model_dir else None
    if measured and not not_offered(task, precision, measured[0], model_dir=model_dir):
        return measured
    kind = cpu.measured_kind()
    if kind is None:
        name = SAFE[(task, precision)]
        return name, (f"CPU kind {cpu.kind()} was never measured: the runtime that kept {precision} {task} "
                      "accuracy on every kind measured")
    name, why = CHOICE[(kind, task, precision)]
    missing = BACKENDS[name].unavailable() if hasattr(BACKENDS[name], "unavailable") else None
    if missing:  # flags that name the kind but lack what the choice needs (OCRSLIM_CPU_FLAGS)
        return SAFE[(task, precision)], f"measured on {kind}: {name}, but {missing}"
    return name, f"measured on {kind}: {why}"


def every(task, precision, devices="cpu", model_dir=None):
    """([backend], [(backend, why not)]): each runtime that may run a model (model_dir) here, and
    the others. openvino-w8 only for int8 (an FP32 model runs as on openvino)."""
    names = [n for n in BACKENDS if not (n == "openvino-w8" and precision != "int8")]
    why = {n: not_offered(task, precision, n, devices, model_dir) for n in names}
    return [n for n in names if not why[n]], [(n, why[n]) for n in names if why[n]]


# How far a runtime may score below FP32 (or, where no run of the model gets that close, below
# its most accurate run) and still be chosen for it: the drop allowed to int8 (det 0.5, rec 1.0 point)
TOLERANCE = {"det": 0.005, "rec": 0.01}
MEASURED = "measured"   # save_dir/deploy/settings.json: {cpu kind: what step 5 measured there}


def pick_measured(runs, task, fp32=None):
    """(backend, why) from one model's runs on this CPU, [{"backend", "metric", "median_ms"}]: the
    fastest that scores within TOLERANCE of the FP32 model's metric `fp32` (a run that happens to
    score above FP32 does not rule out the others); where no run does (or `fp32` is unknown), the
    fastest within TOLERANCE of the most accurate run. Not the most accurate run's alone: a model
    made to a drop (run.py --max_drop) would then get a runtime that loses more (v5 rec on AMX:
    OpenVINO bf16 0.22 point below OpenVINO f32, 1.1 below FP32). None when no run has a metric."""
    scored = [r for r in runs if isinstance(r.get("metric"), (int, float)) and r["metric"] == r["metric"]]
    if not scored:
        return None
    best = max(r["metric"] for r in scored)
    reference, against = best, "the most accurate run's"
    if isinstance(fp32, (int, float)) and fp32 == fp32 and any(r["metric"] >= fp32 - TOLERANCE[task] for r in scored):
        reference, against = fp32, "the FP32 model's"
    kept = [r for r in scored if r["metric"] >= reference - TOLERANCE[task]]
    pick = min(kept, key=lambda r: r["median_ms"])
    others = ", ".join(f"{r['backend']} {r['median_ms']:.1f} ms {r['metric']:.4f}" for r in scored if r is not pick)
    return pick["backend"], (f"{pick['backend']} {pick['median_ms']:.1f} ms, {pick['metric']:.4f}: the fastest within "
                             f"{TOLERANCE[task] * 100:.1f} point of {against} {reference:.4f}"
                             + (f"; {others}" if others else ""))


def _settings_path(model_dir):
    """settings.json of a run.py output folder (model_dir = save_dir, or its deploy/), or None."""
    for path in (os.path.join(model_dir, "deploy", SETTINGS_FILE), os.path.join(model_dir, SETTINGS_FILE)):
        if os.path.isfile(path):
            return path
    return None


def measured_choice(model_dir, task, precision):
    """(backend, why) that run.py's step 5 (or bench.py --report SAVE_DIR) measured fastest at kept
    accuracy for this model on this CPU kind; None where it was never measured on this kind."""
    import json
    path = _settings_path(model_dir)
    try:
        with open(path, encoding="utf-8") as f:
            settings = json.load(f)
        entry = settings[MEASURED][cpu.kind()]
        name = entry["backend"]
    except (TypeError, OSError, ValueError, KeyError):  # no folder of ours, never measured here
        return None
    if name not in BACKENDS or (settings.get("task"), settings.get("precision")) != (task, precision):
        return None
    return name, f"measured for this model on {cpu.kind()} ({entry.get('cpu', 'this CPU kind')}): {entry.get('why', '')}"


def record_measured(model_dir, runs, task, fp32=None):
    """Write pick_measured(runs, task, fp32) into model_dir's deploy/settings.json for this CPU kind
    (atomically; the file is the tool's own). Returns (backend, why), or None when nothing was recorded."""
    import json
    from ..outputs import write_json
    path = _settings_path(model_dir)
    picked = pick_measured(runs, task, fp32) if path else None
    if not picked:
        return None
    with open(path, encoding="utf-8") as f:
        settings = json.load(f)
    measured = settings.get(MEASURED) if isinstance(settings.get(MEASURED), dict) else {}
    measured[cpu.kind()] = {"backend": picked[0], "why": picked[1], "cpu": cpu.describe(),
                            "runs": {r["backend"]: {"metric": r["metric"], "median_ms": r["median_ms"]} for r in runs}}
    settings[MEASURED] = measured
    write_json(path, settings)
    return picked


def weight_bits(model_dir):
    """7 for a run.py output folder whose int8 weights all fit 7 bits (trained with
    QuantAware.weight_bits 7, as written into deploy/settings.json), else 8."""
    import json
    try:
        with open(_settings_path(model_dir), encoding="utf-8") as f:
            return 7 if json.load(f).get("weight_bits") == 7 else 8
    except (TypeError, OSError, ValueError, AttributeError):
        return 8


def not_offered(task, precision, backend, devices="cpu", model_dir=None):
    """Why `backend` is not offered for the model in model_dir (or any model, without it) on this
    CPU (or cannot run here), or None."""
    unavailable = getattr(BACKENDS.get(backend), "unavailable", None)
    if unavailable and unavailable(devices):
        return unavailable(devices)
    if devices != "cpu":
        return None
    kind = cpu.measured_kind()
    if kind is None:  # never measured: only what kept accuracy everywhere
        if precision == "int8" and backend != SAFE[(task, precision)] and any(
                k[1:] == (task, precision, backend) for k in NOT_OFFERED):
            return f"CPU kind {cpu.kind()} was never measured, and {backend} lost {task} int8 accuracy elsewhere"
        return None
    why = NOT_OFFERED.get((kind, task, precision, backend))
    if why and backend == "openvino" and not has_vnni() and model_dir and weight_bits(model_dir) == 7:
        return None  # 7-bit weights: the int8 kernels without VNNI do not saturate (OpenVinoBackend)
    return why


def predictor(files, backend, task, work_dir, name, devices="cpu", threads=2, precision="fp32", shapes=None):
    """A predictor for Paddle model files on `backend` ("auto" or a BACKENDS name).

    Returns (predict, info); info names the backend, engine, precision, size_mb (of what
    runs), the settings applied and, for auto, why that runtime was chosen.
    """
    quantized = runtime.paddle_is_quantized(os.path.join(files[0], files[1]))
    backend, choice = resolve(backend, task, "int8" if quantized else "fp32", devices, files[0])
    predict, info = BACKENDS[backend].predictor(files, work_dir, name, devices, threads, precision, shapes)
    info["choice"] = choice
    return predict, info


def resolve(backend, task, precision, devices="cpu", model_dir=None):
    """(backend name, why) for `backend` as asked ("auto" or a name); NotOffered where this
    CPU kind was measured to lose the model's accuracy on it."""
    choice = "asked for"
    if backend == "auto":
        backend, choice = choose(task, precision, devices, model_dir)
    elif backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r}: use one of {', '.join(CHOICES)}")
    why = not_offered(task, precision, backend, devices, model_dir)
    if why:
        raise NotOffered(f"{backend} is not offered for {precision} {task} on this CPU ({cpu.kind()}): {why}")
    return backend, choice


class NotOffered(UserError):
    """The runtime asked for loses accuracy on this CPU kind."""


# --------------------------------------------------------------------------
# save_dir/deploy: what a user's own code needs, and load_predictor
# --------------------------------------------------------------------------

SETTINGS_FILE = "settings.json"
PADDLE_FILES = ("inference.pdmodel", "inference.pdiparams")
ONNX_FILE = "model.onnx"
ONNX_NO_VNNI = "model.u8u8.onnx"
OPENVINO_IR = "model.xml"   # with model.bin beside it
OPENVINO_IR_NO_VNNI = "model.w7.xml"   # int8 only: 7-bit weights, with model.w7.bin


def write_openvino_ir(onnx_path, xml_path):
    """OpenVINO's own format of the ONNX model, weights as they are, so that the IR computes what
    the ONNX file does: what an OpenVINO deployment loads without the ONNX frontend. Read with
    Core.read_model, as the openvino backend reads the ONNX file: ov.convert_model applies other
    transformations to our Q/DQ graph (int8 rec outputs differed by up to 0.5, measured), and
    compress_to_fp16 would round the float weights."""
    import openvino as ov
    ov.save_model(ov.Core().read_model(onnx_path), xml_path, compress_to_fp16=False)


def write_deploy(model_dir, out_dir, task):
    """Fill out_dir (run.py: save_dir/deploy) with what each runtime runs: the Paddle program
    rewritten for Paddle Inference, the ONNX model onnxruntime runs (int8: the onnx_passes
    rewrite), OpenVINO's IR of it (model.xml/.bin; int8: signed activations, and model.w7.xml/.bin
    with 7-bit weights for CPUs without VNNI, see OpenVinoBackend), and settings.json: the runtime
    settings and the `auto` choice per CPU kind.
    Returns the Paddle rewrite counts. model_dir is only read."""
    import shutil
    import tempfile
    from . import paddle_passes
    from .onnx_passes import int8_weight_bits
    from ..outputs import write_json
    counts = paddle_passes.write_model(model_dir, out_dir)
    with tempfile.TemporaryDirectory(prefix="ocrslim-onnx-") as tmp:
        path = runtime.onnx_model((model_dir,) + PADDLE_FILES, tmp, "model")
        shutil.copyfile(path, os.path.join(out_dir, ONNX_FILE))
    precision = "int8" if runtime.paddle_is_quantized(os.path.join(model_dir, PADDLE_FILES[0])) else "fp32"
    if precision == "int8":  # what onnxruntime runs on CPUs without VNNI (see OnnxBackend)
        from .onnx_passes import uint8_weights
        uint8_weights(os.path.join(out_dir, ONNX_FILE), os.path.join(out_dir, ONNX_NO_VNNI))
    irs = [(OPENVINO_IR, False)] + ([(OPENVINO_IR_NO_VNNI, True)] if precision == "int8" else [])
    with tempfile.TemporaryDirectory(prefix="ocrslim-openvino-") as tmp:
        # int8: the executor's quantizers only (no conv-output Q: see runtime.onnx_model)
        source = (runtime.onnx_model((model_dir,) + PADDLE_FILES, tmp, "openvino", openvino=True)
                  if precision == "int8" else os.path.join(out_dir, ONNX_FILE))
        bits = int8_weight_bits(source) if precision == "int8" else None
        for xml, seven in irs:
            onnx_path = for_openvino(source, {"seven_bit_weights": seven}, tmp)
            write_openvino_ir(onnx_path, os.path.join(out_dir, xml))
    int8_ops = sorted(runtime.MKLDNN_INT8_OPS)
    if precision == "int8":  # the op set oneDNN builds for this program (runtime.builds_int8_concat)
        int8_ops = runtime.paddle_predictor((out_dir,) + PADDLE_FILES, "cpu", 1)[1]["int8_ops"]
    kinds = sorted(set(cpu.MEASURED_AS.values()))
    write_json(os.path.join(out_dir, SETTINGS_FILE), {
        "task": task, "precision": precision, **({"weight_bits": bits} if bits else {}),
        "auto": {kind: CHOICE[(kind, task, precision)][0] for kind in kinds},
        "auto_never_measured_cpu": SAFE[(task, precision)],
        "not_offered": {k[0]: {"backend": k[3], "why": v} for k, v in NOT_OFFERED.items() if k[1:3] == (task, precision)},
        "paddle": {"files": list(PADDLE_FILES), "enable_mkldnn_int8_ops": int8_ops,
                   "mkldnn_cache_capacity": runtime.ONEDNN_SHAPE_CACHE,
                   "env": {"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "8192"},
                   "delete_passes_without_avx512": ["self_attention_fuse_pass"]},
        "onnxruntime": {"file": ONNX_FILE, "file_without_vnni": ONNX_NO_VNNI if precision == "int8" else ONNX_FILE,
                        "graph_optimization_level": "ORT_ENABLE_ALL"},
        "openvino": {"file": OPENVINO_IR, "file_without_vnni": OPENVINO_IR_NO_VNNI if precision == "int8" else OPENVINO_IR,
                     "made_from": ("the int8 program exported with exactly the executor's quantizers (no "
                                   "conv-output Q, which model.onnx has for onnxruntime), signed activations; "
                                   "without VNNI also 7-bit weights" if precision == "int8" else ONNX_FILE),
                     "INFERENCE_PRECISION_HINT": "f32 (openvino), bf16 (openvino-bf16, CPUs "
                     "with AMX or AVX512_BF16)", "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1},
    })
    return counts


def read_deploy_settings(save_dir):
    """(save_dir/deploy, its settings.json) of a run.py output folder, checked."""
    deploy_dir = os.path.join(save_dir, "deploy")
    settings_path = os.path.join(deploy_dir, SETTINGS_FILE)
    try:
        with open(settings_path, encoding="utf-8") as f:
            import json
            settings = json.load(f)
    except (OSError, ValueError) as err:
        raise UserError(f"{save_dir} is not a run.py output folder ({err}): load_predictor needs its deploy/")
    try:
        task, precision = settings["task"], settings["precision"]
        settings["onnxruntime"]["file"]  # what deploy_file reads
    except (KeyError, TypeError) as err:
        raise UserError(f"{settings_path} is damaged (no {err}): copy the folder again or run run.py again")
    if (task, precision) not in SAFE:
        raise UserError(f"{settings_path} is damaged (task {task!r}, precision {precision!r}): copy the folder "
                        "again or run run.py again")
    return deploy_dir, settings


def deploy_file(deploy_dir, settings, backend, work_dir):
    """What `backend` runs from a run.py save_dir/deploy: the ONNX file (onnxruntime: with this
    CPU's settings; a folder from before model.u8u8.onnx existed gets it in work_dir, never in
    save_dir), the OpenVINO IR for this CPU (int8 without VNNI: the 7-bit one; where the folder lacks
    it, made from the ONNX file into work_dir), or the Paddle (model_dir, model, params)."""
    fix = f"load_predictor needs {deploy_dir} as run.py wrote it (copy it again, or run run.py again)"
    onnx_path = os.path.join(deploy_dir, settings["onnxruntime"]["file"])
    if backend == "onnxruntime":
        check_onnx_file(onnx_path, fix)
        return for_this_cpu(onnx_path, OnnxBackend.cpu_settings(), work_dir)
    if backend.startswith("openvino"):
        # the IR for this CPU where the folder has it, else made from the ONNX file into work_dir
        # (folders from before the IR, or before its 7-bit variant, existed)
        cpu_settings = BACKENDS[backend].cpu_settings()
        ov = settings.get("openvino", {})
        ir = ov.get("file_without_vnni" if cpu_settings["seven_bit_weights"] else "file", "")
        path = os.path.join(deploy_dir, ir)
        if ir.endswith(".xml") and os.path.isfile(path) and os.path.isfile(path[:-4] + ".bin"):
            return path
        check_onnx_file(onnx_path, fix)
        return for_openvino(onnx_path, cpu_settings, work_dir)
    check_model_files(deploy_dir, *PADDLE_FILES, fix=fix)
    return (deploy_dir,) + PADDLE_FILES


def load_predictor(save_dir, backend="auto", threads=2):
    """A ready predictor for a run.py output folder on this CPU: images (float32 NCHW,
    preprocessed as the config's Eval transforms) -> list of output arrays.

    `auto` takes the runtime measured fastest at kept accuracy on this CPU kind, with this
    CPU's settings; predict.info says which and why."""
    import tempfile
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise UserError(f"load_predictor: threads must be a whole number >= 1, not {threads!r}")
    deploy_dir, settings = read_deploy_settings(save_dir)
    backend, choice = resolve(backend, settings["task"], settings["precision"], model_dir=save_dir)
    with tempfile.TemporaryDirectory(prefix="ocrslim-load-") as tmp:
        path = deploy_file(deploy_dir, settings, backend, tmp)
        if backend == "onnxruntime":
            predict, info = runtime.onnx_predictor(path, "cpu", threads)
        elif backend.startswith("openvino"):
            predict, info = BACKENDS[backend].load(
                path, threads, BACKENDS[backend].cpu_settings() if settings["precision"] == "int8" else {})
        else:  # paddle
            predict, info = runtime.paddle_predictor(path, "cpu", threads)
    predict.info = {**info, "choice": choice, "cpu": cpu.describe()}
    return predict
