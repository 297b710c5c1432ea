"""Per-layer quantization sensitivity: `run.py --analyze quant` (produces a table, not a model).

One calibration of every quantizable layer gives each activation its threshold.
The FP32 program then gets, for every layer, a fake-quant pair on each
activation input and a fake-quantized copy of its weight; a layer is switched
on or off by which names its op reads. Two sweeps:
- "only": quantize this layer alone; its harm is the score of that model;
- "all but": quantize everything else; the gain of keeping it float is the
  score of the all-quantized model minus this one.

The score is the output error against FP32 on a fixed subset of Eval images,
sum |y - y_fp32|^2 / sum |y_fp32|^2 over the subset (the model's final output,
a probability map or CTC probabilities): every image counts, so a small subset
ranks layers stably, where a metric on the same images moves in whole boxes or
crops. The main metric on the subset is computed on the same run and reported
next to it, and `--analyze quant` says how well the two rankings agree.

PaddleSlim's `Analysis` is not used: it rebuilds the PTQ model for every layer
and, with `onnx_format`, PaddleSlim 2.6 evaluates it through the wrong path
(the strategies issue reading); one calibration and renamed inputs are cheaper.
"""
import logging
import os
import time

import numpy as np
from tqdm import tqdm

from .. import stats
from ..data import batches, calibration_batches, config_train_reader
from ..errors import UserError
from ..evaluate import evaluate
from ..deploy.paddle_graph import PaddleGraph, static_mode
from . import calibrate

log = logging.getLogger("ocrslim")

# Eval items scored per configuration when Sensitivity.images is not set: a det image holds
# ~5 boxes and costs ~30x a crop. Det 8: on the real dev split the ranking on a second 8 was
# the same (rho 0.94) and the table took 10.5 min on a 2-core EPYC (16: twice that)
DEFAULT_IMAGES = {"det": 8, "rec": 256}

# conv filters are quantized per output channel (axis 0); matmul weights [in, out] per column
WEIGHT_SLOTS = {"conv2d": ("Input", "Filter", 0), "depthwise_conv2d": ("Input", "Filter", 0),
                "matmul_v2": ("X", "Y", 1)}


def fake_quant_weight(w, axis, bits=8):
    """Per-channel symmetric abs-max quantize-dequantize, as channel_wise_abs_max does."""
    qmax = 2 ** (bits - 1) - 1
    moved = np.moveaxis(w, axis, 0)
    scale = np.abs(moved).reshape(moved.shape[0], -1).max(axis=1)
    scale = np.where(scale > 0, scale, 1.0).reshape((-1,) + (1,) * (moved.ndim - 1))
    q = np.clip(np.round(moved / scale * qmax), -qmax, qmax) * scale / qmax
    return np.moveaxis(q, 0, axis).astype(w.dtype)


class Layer:
    """One quantizable op: its name (the weight, as Calibration.keep_float names layers; an
    attention matmul without weight is named by its first input), the masks that switch its
    activation inputs, and its weights with their fake-quantized values."""

    def __init__(self, name, op_type, masks, weights):
        self.name, self.op_type, self.masks, self.weights = name, op_type, masks, weights


def build(graph, thresholds, op_types):
    """Make `graph` (FP32, with weights) switchable per layer; returns the layers.

    Each activation input x of a layer is read as x + m * (dq(x) - x), with dq Paddle's
    quantize_linear/dequantize_linear pair at the calibrated threshold and m a one-element
    parameter of that layer (0: float, 1: quantized). Weights are swapped in the scope. Every
    configuration then runs the same program: one executor, no rebuild per configuration
    (a program clone and a new executor cost ~3 s each on rec, more than the evaluation).
    """
    found = []
    for op in graph.ops:
        if op.type not in WEIGHT_SLOTS or op.type not in op_types:
            continue
        act_slot, weight_slot, axis = WEIGHT_SLOTS[op.type]
        acts, weights = [], []
        for slot in (act_slot, weight_slot):
            for name in op.input(slot):
                if graph.is_param(name):
                    weights.append((name, axis))
                elif name in thresholds:
                    acts.append(name)
        if weights or acts:
            found.append((op, (weights[0][0] if weights else acts[0]), acts, weights))
    dequantized = {}
    for name in sorted({a for _, _, acts, _ in found for a in acts}):
        first = min(graph.ops.index(r) for r in graph.readers(name))
        scale, zero = f"{name}@sens_scale", f"{name}@sens_zero"
        graph.add_param(scale, np.array([thresholds[name]], "float32"))
        graph.add_param(zero, np.zeros([1], "float32"))
        q, dq, diff = f"{name}.sens_q", f"{name}.sens_dq", f"{name}.sens_diff"
        for var in (q, dq, diff):
            graph.add_var(var, graph.shape(name))
        attrs = {"quant_axis": -1, "bit_length": 8}
        graph.insert(first, "quantize_linear", {"X": [name], "Scale": [scale], "ZeroPoint": [zero]},
                     {"Y": [q]}, attrs)
        graph.insert(first + 1, "dequantize_linear", {"X": [q], "Scale": [scale], "ZeroPoint": [zero]},
                     {"Y": [dq]}, attrs)
        graph.insert(first + 2, "elementwise_sub", {"X": [dq], "Y": [name]}, {"Out": [diff]}, {"axis": -1})
        dequantized[name] = diff
    layers = []
    for k, (op, name, acts, weights) in enumerate(found):
        masks = []
        for act in acts:
            mask, scaled, mixed = f"sens_mask_{k}_{act}", f"{act}.sens_m{k}", f"{act}.sens_x{k}"
            graph.add_param(mask, np.zeros([1], "float32"))
            graph.add_var(scaled, graph.shape(act))
            graph.add_var(mixed, graph.shape(act))
            at = graph.ops.index(op)
            graph.insert(at, "elementwise_mul", {"X": [dequantized[act]], "Y": [mask]}, {"Out": [scaled]},
                         {"axis": -1})
            graph.insert(at + 1, "elementwise_add", {"X": [act], "Y": [scaled]}, {"Out": [mixed]}, {"axis": -1})
            graph.rename_input(op, act, mixed)
            masks.append(mask)
        stored = [(w, graph.value(w), fake_quant_weight(graph.value(w), axis)) for w, axis in weights]
        layers.append(Layer(name, op.type, masks, stored))
    return layers


class CachedSamples:
    """A fixed subset of a Samples object, decoded once (every configuration reads it)."""

    def __init__(self, samples, indices):
        self.items = [samples.load(i) for i in indices]

    def __len__(self):
        return len(self.items)

    def load(self, i):
        return self.items[i]


def subset_indices(n_total, n, seed, part=0):
    """Images `part*n .. (part+1)*n` of Eval in a seeded shuffle: subset 0 is the analysis, 1 the
    stability check (disjoint)."""
    order = np.random.default_rng(seed).permutation(n_total)
    got = order[part * n:(part + 1) * n]
    if len(got) < n:
        raise UserError(f"Eval has {n_total} images, too few for {part + 1} subset(s) of {n}: lower "
                        "Sensitivity.images")
    return [int(i) for i in got]


# ops whose weights a configuration swaps: with is_test their oneDNN kernel keeps the first
# weights it reordered and ignores the swap (the scores then depended on the order configurations
# ran in: 1.7e-6 and 1.9e-3 for one layer in two runs); without it, it reads them every run
SWAPPED_WEIGHT_OPS = ("conv2d", "depthwise_conv2d")


def use_onednn_kernels(graph):
    """Let the CPU executor run every op that has one through its oneDNN kernel (attribute
    use_mkldnn; conv_transpose's needs is_test, and batch norm must stay in inference mode).
    It about halves the time of a det configuration on a 2-core EPYC; the scores agree with the
    plain kernels' to 3-4 digits. The fake-quant ops have no oneDNN kernel and run as before. No
    fused ops are made (unlike Paddle Inference's passes, one of which is the any-CPU issue's
    SIGILL)."""
    for op in graph.ops:
        if op.has_attr("use_mkldnn"):
            op._set_attr("use_mkldnn", True)
        if op.has_attr("is_test") and op.type not in SWAPPED_WEIGHT_OPS:
            op._set_attr("is_test", True)


class Scorer:
    """Evaluates one configuration (which layers are quantized) on a cached subset."""

    def __init__(self, graph, layers, samples, task_factory, batch_size):
        import paddle
        self.graph, self.layers = graph, layers
        self.samples, self.task_factory, self.batch_size = samples, task_factory, batch_size
        use_onednn_kernels(graph)
        self.exe = paddle.static.Executor(paddle.CPUPlace())
        self.reset()
        self.fp32 = self.run(set())
        self.fp32_energy = sum(float(np.sum(b.astype(np.float64) ** 2)) for b in self.fp32["outputs"])

    def reset(self):
        """Every layer float. The graph may come from an earlier Scorer (the stability subset's
        follows the analysis one), left in its last configuration."""
        self.on = {layer.name for layer in self.layers}
        self._switch(set())

    def _switch(self, on):
        """Set masks and weights for the layers whose state changes."""
        for layer in self.layers:
            want = layer.name in on
            if want == (layer.name in self.on):
                continue
            for mask in layer.masks:
                self.graph.set_value(mask, np.full([1], float(want), "float32"))
            for name, fp32, fake in layer.weights:
                self.graph.set_value(name, fake if want else fp32)
        self.on = set(on)

    def run(self, on):
        """{"outputs": [...], "result": evaluate()} with the layers named in `on` quantized."""
        import paddle
        self._switch(on)
        outputs = []

        def predict(images):
            out = self.exe.run(self.graph.program, feed={self.graph.feeds[0]: images},
                               fetch_list=self.graph.fetches)
            outputs.append(out[0])
            return out
        with paddle.static.scope_guard(self.graph.scope):
            result = evaluate(predict, self.samples, self.task_factory(), self.batch_size, progress=False)
        return {"outputs": outputs, "result": result}

    def error(self, got):
        """Output error against FP32 over the subset: sum of squared differences / sum of squares."""
        num = sum(float(np.sum((a.astype(np.float64) - b) ** 2)) for a, b in zip(got["outputs"], self.fp32["outputs"]))
        return num / max(self.fp32_energy, 1e-12)


def rank_correlation(a, b):
    """Spearman's rho of two score lists (average ranks for ties)."""
    def ranks(x):
        x = np.asarray(x, dtype=np.float64)
        order = np.argsort(x, kind="mergesort")
        r = np.empty(len(x))
        r[order] = np.arange(len(x))
        for v in np.unique(x):  # ties share their mean rank
            r[x == v] = r[x == v].mean()
        return r
    if len(a) < 3:
        return None
    ra, rb = ranks(a), ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return None
    return round(float(np.corrcoef(ra, rb)[0, 1]), 3)


def sweep(scorer, layers, key, kind, progress, desc):
    """Both sweeps on one subset: a row per layer with error and metric, only and all-but."""
    names = {layer.name for layer in layers}
    full = scorer.run(names)
    fp32_metric = scorer.fp32["result"]["metrics"][key]
    full_error, full_metric = scorer.error(full), full["result"]["metrics"][key]
    rows = []
    for layer in tqdm(layers, desc=desc, unit="layer", disable=not progress):
        only, but = scorer.run({layer.name}), scorer.run(names - {layer.name})
        rows.append({"layer": layer.name, "op": layer.op_type,
                     "only_error": scorer.error(only), "all_but_error": scorer.error(but),
                     "only_drop": round(fp32_metric - only["result"]["metrics"][key], 4),
                     "all_but_gain": round(but["result"]["metrics"][key] - full_metric, 4)})
        rows[-1]["float_gain"] = full_error - rows[-1]["all_but_error"]
    return rows, {"fp32": fp32_metric, "all_quantized": full_metric, "all_quantized_error": full_error,
                  "all_quantized_drop": stats.paired_drop(scorer.fp32["result"]["per_item"],
                                                          full["result"]["per_item"], kind)}


def subset_size(config, task_cls):
    """Eval items per configuration: Sensitivity.images, or the task's default."""
    return config["Sensitivity"]["images"] or DEFAULT_IMAGES[task_cls.name]


def check_subset(config, task_cls, n_eval, parts=1):
    """Before any work: Eval holds `parts` disjoint subsets of Sensitivity.images items."""
    n = subset_size(config, task_cls)
    if n * parts > n_eval:
        raise UserError(f"Eval has {n_eval} images, too few for {parts} subset(s) of {n}: lower Sensitivity.images "
                        f"(at most {n_eval // parts})")
    return n


def analyze(config, task_cls, model_files, progress, stability=None):
    """The sensitivity table of every quantizable layer (see the module doc), on the config's
    Sensitivity subset; stability (default Sensitivity.stability) adds the second subset."""
    from .. import model as mdl
    if stability is None:
        stability = bool(config["Sensitivity"]["stability"])
    with static_mode():
        return _analyze(config, task_cls, model_files, mdl.place(config["Global"]["devices"]),
                        subset_size(config, task_cls), stability, progress)


def _analyze(config, task_cls, model_files, place, images, stability, progress):
    import paddle
    from ..data import build_samples
    t0 = time.time()
    settings = dict(calibrate.settings(config), keep_float=[])  # every layer calibrated
    graph = PaddleGraph.from_files(model_files)
    reader = config_train_reader(config, task_cls.name, graph.feeds[0])
    thresholds = calibrate.calibrate(model_files, calibration_batches(reader, settings["batch_nums"]),
                                     settings, place)
    t_cal = time.time() - t0
    layers = build(graph, thresholds, settings["quantize_op_types"])
    log.info("calibrated in %.0fs; %d quantizable layers", t_cal, len(layers))
    samples = build_samples(config, "Eval", task_cls.name)
    key, batch = task_cls.main_indicator, config["Eval"]["loader"]["batch_size_per_card"]
    parts = [0, 1] if stability else [0]
    results = []
    for part in parts:
        subset = CachedSamples(samples, subset_indices(len(samples), images, config["Global"]["seed"], part))
        scorer = Scorer(graph, layers, subset, lambda: task_cls(config), batch)
        results.append(sweep(scorer, layers, key, task_cls.name, progress,
                             f"sensitivity, subset {part + 1}/{len(parts)}"))
    rows, summary = results[0]
    keep = set(config["Calibration"]["keep_float"] or [])
    for row in rows:
        row["kept_float_in_config"] = row["layer"] in keep
    rows.sort(key=lambda r: -r["only_error"])
    checks = {
        # does the cheap score rank layers as the metric does (same subset, both sweeps)
        "rho_error_vs_metric_only": rank_correlation([r["only_error"] for r in rows],
                                                     [r["only_drop"] for r in rows]),
        "rho_error_vs_metric_all_but": rank_correlation([r["float_gain"] for r in rows],
                                                        [r["all_but_gain"] for r in rows]),
    }
    if stability:
        other = {r["layer"]: r for r in results[1][0]}
        checks["rho_between_subsets_only"] = rank_correlation([r["only_error"] for r in rows],
                                                              [other[r["layer"]]["only_error"] for r in rows])
        checks["rho_between_subsets_all_but"] = rank_correlation(
            [r["float_gain"] for r in rows], [other[r["layer"]]["float_gain"] for r in rows])
    unit = "images" if task_cls.name == "det" else "crops"
    return {"model_type": task_cls.name, "main_indicator": key, "layers": len(rows),
            "subset": {"size": images, unit: images, "how": f"the first {images} of Eval in a shuffle seeded by "
                       f"Global.seed ({config['Global']['seed']}); the stability subset is the next {images}",
                       "of": len(samples)},
            "calibration": {k: settings[k] for k in ("algo", "batch_nums", "hist_percent", "quantize_op_types")},
            "score": "output error vs FP32: sum (y - y_fp32)^2 / sum y_fp32^2 over the subset",
            **summary, "checks": checks, "seconds": round(time.time() - t0, 1),
            "calibration_seconds": round(t_cal, 1), "rows": rows}


def ranked_for_float(table):
    """Layer names, the one to keep float first: the most harmful quantized alone.

    Not the all-but sweep's gain, though that asks the question directly: on real det its
    ranking did not repeat on a second subset of 8 images (rho 0.02; past the top three its
    gains are +-1e-3 noise on a 0.055 total), while the alone sweep's did (rho 0.94)."""
    return [r["layer"] for r in sorted(table["rows"], key=lambda r: -r["only_error"])]


def write(table, out_dir):
    """sensitivity.json, sensitivity.csv (sorted, most harmful first) and sensitivity.png."""
    import csv
    import io
    from ..outputs import write_json, write_text
    write_json(os.path.join(out_dir, "sensitivity.json"), table)
    cols = ["layer", "op", "only_error", "only_drop", "all_but_error", "float_gain", "all_but_gain",
            "kept_float_in_config"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for row in table["rows"]:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    write_text(os.path.join(out_dir, "sensitivity.csv"), buf.getvalue())
    plot(table, os.path.join(out_dir, "sensitivity.png"))


def plot(table, path, top=30):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = table["rows"][:top]
    names = [r["layer"].replace(".w_0", "") for r in rows][::-1]
    fig, ax = plt.subplots(figsize=(8, 0.28 * len(rows) + 1.5))
    y = np.arange(len(rows))
    ax.barh(y + 0.2, [r["only_error"] for r in rows][::-1], 0.4, label="quantized alone: output error")
    ax.barh(y - 0.2, [max(r["float_gain"], 0) for r in rows][::-1], 0.4,
            label="kept float, rest quantized: error removed")
    ax.set_yticks(y)
    ax.set_yticklabels(names, fontsize=7)
    ax.set_xscale("symlog", linthresh=1e-4)
    ax.set_xlabel("relative squared output error vs FP32")
    n = table["subset"]["size"]
    ax.set_title(f"{table['model_type']} quantization sensitivity (top {len(rows)} of {table['layers']}, "
                 f"{n} Eval items)", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
