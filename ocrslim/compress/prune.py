"""Channel pruning: the `prune` and `prune_qat` strategies and `run.py --analyze prune`.

The unit is a group: PaddleSlim's Pruner cuts the output channels of one conv
(the master, named by its weight) and, with them, everything whose channels
must agree: its batch norm, the depthwise conv after it, the input channels of
the convs that read it, an SE block on it, the other branches of an add, and
through a concat (act_compat adds the worker PaddleSlim 2.6 lacks) the
matching input channels of the conv after it. `channel_problems` checks from
the pruned program that every conv, batch norm, add, multiply and concat still
agrees on its channels.

The sensitivity sweep prunes one group at a time by each ratio of
`Prune.ratios` and scores the output error against FP32 on a fixed subset of
Eval (as `--analyze quant` does), with the main metric beside it and the share
of multiply-adds removed, counted from the program. A target then picks one
ratio per group: every group takes the largest ratio whose error stays under
one threshold, and the threshold is searched until the multiply-adds removed
match `Prune.flops_ratio`, or the predicted metric (FP32 minus the sum of the
groups' drops on the subset) stays above `Prune.min_metric`. A group whose
smallest ratio already costs more than the threshold stays whole: that is what
"sensitive" means here.
"""
import functools
import logging
import os
import time

import numpy as np
from tqdm import tqdm

from ..deploy.paddle_graph import PaddleGraph, static_mode
from ..errors import UserError
from ..evaluate import evaluate
from . import act_compat

log = logging.getLogger("ocrslim")

CONV_OPS = ("conv2d", "depthwise_conv2d", "conv2d_transpose")
# groups below this share of the model's multiply-adds (at the largest ratio) are not swept: the
# SE blocks' 1x1 convs on pooled tensors, whose pruning saves nothing measurable
MIN_SHARE = 0.005


# ---- the program -------------------------------------------------------------------------------

def load(model_files):
    """The FP32 model as a PaddleGraph the Pruner can walk.

    PP-LCNetV3's learnable affine blocks multiply and add a one-element parameter as X and the
    activation as Y; PaddleSlim's elementwise worker asserts the tensor comes first (a bare
    AssertionError in prune_worker.py). The op is symmetric, so X and Y are swapped: same output."""
    graph = PaddleGraph.from_files(model_files)
    for op in graph.ops:
        if op.type in ("elementwise_mul", "elementwise_add") and graph.scalar(op) is not None \
                and graph.is_param(op.input("X")[0]):
            graph.swap_xy(op)
    return graph


def is_depthwise(op):
    return op.type == "depthwise_conv2d" or (op.type == "conv2d" and op.attr("groups") > 1)


def conv_weights(graph):
    """The weights of the ordinary convs (depthwise and transposed excluded), input side first."""
    return [op.input("Filter")[0] for op in graph.ops if op.type == "conv2d" and not is_depthwise(op)]


def spatial_sizes(graph, exe, shape):
    """{tensor: runtime shape} of every conv's input and output and every matmul's X and Out, from
    one run on zeros of `shape` (C, H, W). Pruning changes channels only, so these sizes and the
    pruned program's channels give its multiply-adds."""
    import paddle
    names = []
    for op in graph.ops:
        if op.type in CONV_OPS:
            names += [op.input("Input")[0], op.output("Output")[0]]
        elif op.type in ("matmul_v2", "mul", "matmul"):
            names += [op.input("X")[0], op.output("Out")[0]]
    names = list(dict.fromkeys(names))
    with paddle.static.scope_guard(graph.scope):
        got = exe.run(graph.program, feed={graph.feeds[0]: np.zeros([1, *shape], "float32")}, fetch_list=names)
    return {n: list(v.shape) for n, v in zip(names, got)}


# ops an int8 program puts between a tensor and its reader: their output has the input's shape
QDQ_OPS = ("quantize_linear", "dequantize_linear", "fake_quantize_dequantize_moving_average_abs_max")


def cost(program, spatial):
    """{"macs", "params"} of a program: multiply-adds of its convs and matmuls at the sizes of
    spatial_sizes(), with channels from the program's own weights; params: every weight read.
    An int8 program of the same model counts the same (its quantize ops are looked through)."""
    block = program.global_block()
    producers = {n: op for op in block.ops for n in op.output_arg_names}

    def size(name):
        while name not in spatial and name in producers and producers[name].type in QDQ_OPS:
            name = producers[name].input("X")[0]
        return spatial[name]

    macs = 0
    for op in block.ops:
        if op.type in ("conv2d", "depthwise_conv2d"):
            out = size(op.output("Output")[0])
            macs += out[2] * out[3] * int(np.prod(block.var(op.input("Filter")[0]).shape))
        elif op.type == "conv2d_transpose":
            x = size(op.input("Input")[0])
            macs += x[2] * x[3] * int(np.prod(block.var(op.input("Filter")[0]).shape))
        elif op.type in ("matmul_v2", "mul", "matmul"):
            x, out = size(op.input("X")[0]), size(op.output("Out")[0])
            trans = op.has_attr("trans_x") and op.attr("trans_x")
            macs += int(np.prod(out)) * x[-2 if trans else -1]
    read = {n for op in block.ops if op.type != "feed" for n in op.input_arg_names}
    params = sum(int(np.prod(block.var(n).shape)) for n in read if block.var(n).persistable)
    return {"macs": int(macs), "params": int(params)}


def channel_problems(program):
    """What no longer agrees on channels in a (pruned) program, one line each; [] when all do.
    Read from the program's shapes: conv inputs against their filters and groups, batch norm
    against its statistics, both sides of an add or multiply, and a concat against its inputs."""
    block = program.global_block()

    def ch(name):
        shape = block.var(name).shape
        return shape[1] if len(shape) == 4 else None

    out = []
    for op in block.ops:
        if op.type in ("conv2d", "depthwise_conv2d"):
            w = block.var(op.input("Filter")[0]).shape
            if ch(op.input("Input")[0]) != w[1] * op.attr("groups") or ch(op.output("Output")[0]) != w[0]:
                out.append(f"{op.type} {op.input('Filter')[0]}: input {ch(op.input('Input')[0])} channels, "
                           f"filter {list(w)} x groups {op.attr('groups')}, output {ch(op.output('Output')[0])}")
        elif op.type == "conv2d_transpose":
            w = block.var(op.input("Filter")[0]).shape
            if ch(op.input("Input")[0]) != w[0]:
                out.append(f"conv2d_transpose {op.input('Filter')[0]}: input {ch(op.input('Input')[0])} channels, "
                           f"filter {list(w)}")
        elif op.type == "batch_norm":
            sizes = {block.var(op.input(s)[0]).shape[0] for s in ("Scale", "Bias", "Mean", "Variance")}
            if sizes != {ch(op.input("X")[0])}:
                out.append(f"batch_norm {op.input('Scale')[0]}: input {ch(op.input('X')[0])} channels, "
                           f"statistics {sorted(sizes)}")
        elif op.type in ("elementwise_add", "elementwise_mul", "elementwise_sub"):
            sides = {ch(op.input("X")[0]), ch(op.input("Y")[0])} - {None, 1}
            if len(sides) > 1:
                out.append(f"{op.type} {op.output('Out')[0]}: channels {sorted(sides)}")
        elif op.type == "concat" and ch(op.output("Out")[0]) is not None and op.attr("axis") in (1, -3):
            parts = [ch(n) for n in op.input("X")]
            if sum(parts) != ch(op.output("Out")[0]):
                out.append(f"concat {op.output('Out')[0]}: inputs {parts}, output {ch(op.output('Out')[0])}")
    return out


def prune(graph, ratios, criterion, place, only_graph=False):
    """Prune {master weight: ratio} of graph; (pruned program, weights before). The weights in
    graph.scope are cut (unless only_graph); restore() puts them back. Stops with an error when
    the result's channels do not agree (channel_problems)."""
    program, backup = act_compat.prune_program(graph.program, graph.scope, ratios, criterion, place, only_graph)
    problems = channel_problems(program)
    if problems:
        restore(graph, backup, place)
        raise UserError(f"pruning left channels that do not agree ({len(problems)}): {problems[0]}; "
                        "add the layer to Prune.skip")
    return program, backup


def restore(graph, backup, place):
    for name, value in backup.items():
        graph.scope.find_var(name).get_tensor().set(value, place)


# ---- groups --------------------------------------------------------------------------------------

def groups(graph, skip_first, skip=()):
    """[{"name": master weight, "convs": the conv weights whose output channels it cuts, "skip":
    why not swept or None}] for every group the ordinary convs start."""
    weights = conv_weights(graph)
    first = set(weights[:skip_first])
    out = []
    for master, members in act_compat.pruning_groups(graph.program, weights):
        convs = [w for w, axis in members if axis == 0 and w in set(weights) | _depthwise_weights(graph)]
        why = None
        if first & set(convs):
            why = f"one of the first {skip_first} convs (Prune.skip_first)"
        elif set(skip) & set(convs):
            why = "Prune.skip"
        out.append({"name": master, "convs": convs, "skip": why})
    return out


def _depthwise_weights(graph):
    return {op.input("Filter")[0] for op in graph.ops if is_depthwise(op)}


# ---- sensitivity ---------------------------------------------------------------------------------

class Scorer:
    """Runs a program over a cached Eval subset: its outputs and evaluate()'s result."""

    def __init__(self, graph, exe, samples, task_factory, batch_size):
        self.graph, self.exe, self.samples = graph, exe, samples
        self.task_factory, self.batch_size = task_factory, batch_size
        self.fp32 = self.run(graph.program)
        self.energy = sum(float(np.sum(b.astype(np.float64) ** 2)) for b in self.fp32["outputs"])

    def run(self, program):
        import paddle
        outputs = []
        fetch = [v.name for v in self.graph.fetches]

        def predict(images):
            got = self.exe.run(program, feed={self.graph.feeds[0]: images}, fetch_list=fetch)
            outputs.append(got[0])
            return got
        with paddle.static.scope_guard(self.graph.scope):
            result = evaluate(predict, self.samples, self.task_factory(), self.batch_size, progress=False)
        return {"outputs": outputs, "result": result}

    def error(self, got):
        num = sum(float(np.sum((a.astype(np.float64) - b) ** 2)) for a, b in zip(got["outputs"], self.fp32["outputs"]))
        return num / max(self.energy, 1e-12)


def sweep(graph, scorer, spatial, swept, settings, key, place, progress):
    """A row per (group, ratio): output error, metric and its drop, share of multiply-adds and of
    weights removed."""
    base = cost(graph.program, spatial)
    fp32_metric = scorer.fp32["result"]["metrics"][key]
    rows = []
    configs = [(g, r) for g in swept for r in settings["ratios"]]
    for g, ratio in tqdm(configs, desc="prune sensitivity", unit="config", disable=not progress):
        program, backup = prune(graph, {g["name"]: ratio}, settings["criterion"], place)
        try:
            got = scorer.run(program)
            pruned = cost(program, spatial)
        finally:
            restore(graph, backup, place)
        metric = got["result"]["metrics"][key]
        rows.append({"group": g["name"], "ratio": ratio, "error": scorer.error(got), key: metric,
                     "drop": round(fp32_metric - metric, 4),
                     "flops_removed": round(1 - pruned["macs"] / base["macs"], 5),
                     "params_removed": round(1 - pruned["params"] / base["params"], 5)})
    return rows


def settings(config):
    s = config["Prune"]
    ratios = sorted(float(r) for r in s["ratios"] or [])
    if not ratios or any(not 0 < r < 1 for r in ratios):
        raise UserError(f"Prune.ratios must be ratios between 0 and 1, not {s['ratios']!r}")
    if s["criterion"] not in ("geometry_median", "l1_norm", "bn_scale"):
        raise UserError(f"Prune.criterion {s['criterion']!r} is not one of geometry_median, l1_norm, bn_scale")
    for key in ("flops_ratio", "min_metric"):
        if s[key] is not None and not (isinstance(s[key], (int, float)) and 0 < s[key] < 1):
            raise UserError(f"Prune.{key} must be a number between 0 and 1, not {s[key]!r}")
    if s["flops_ratio"] is not None and s["min_metric"] is not None:
        raise UserError("set one pruning target: Prune.flops_ratio or Prune.min_metric, not both")
    return {"criterion": s["criterion"], "ratios": ratios, "skip_first": int(s["skip_first"]),
            "skip": list(s["skip"] or []), "flops_ratio": s["flops_ratio"], "min_metric": s["min_metric"]}


def analyze(config, task_cls, model_files, progress):
    """The pruning sensitivity table (see the module doc) on the config's Sensitivity subset."""
    from .. import model as mdl
    with static_mode():
        return _analyze(config, task_cls, model_files, mdl.place(config["Global"]["devices"]), progress)


def _analyze(config, task_cls, model_files, place, progress):
    import paddle
    from ..data import build_samples
    from .sensitivity import CachedSamples, subset_indices, subset_size
    t0 = time.time()
    s = settings(config)
    graph = load(model_files)
    exe = paddle.static.Executor(place)
    samples = build_samples(config, "Eval", task_cls.name)
    n = subset_size(config, task_cls)
    subset = CachedSamples(samples, subset_indices(len(samples), n, config["Global"]["seed"]))
    shape = list(subset.load(0)["image"].shape)  # the first subset image's size: where FLOPs are counted
    spatial = spatial_sizes(graph, exe, shape)
    base = cost(graph.program, spatial)
    scorer = Scorer(graph, exe, subset, lambda: task_cls(config), config["Eval"]["loader"]["batch_size_per_card"])
    found = groups(graph, s["skip_first"], s["skip"])
    shares = group_shares(graph, found, spatial, base, max(s["ratios"]), s["criterion"], place)
    for g in found:
        g["flops_share"] = shares[g["name"]]
        if g["skip"] is None and g["flops_share"] < MIN_SHARE:
            g["skip"] = f"under {MIN_SHARE:.1%} of the multiply-adds"
    swept = [g for g in found if g["skip"] is None]
    log.info("%d prunable groups, %d swept x %d ratios on %d Eval items", len(found), len(swept), len(s["ratios"]), n)
    key = task_cls.main_indicator
    rows = sweep(graph, scorer, spatial, swept, s, key, place, progress)
    check = scorer.error(scorer.run(graph.program))  # every group restored: FP32 again
    if check > 1e-8:
        raise RuntimeError(f"the FP32 model did not come back after the sweep (error {check:.2e})")
    unit = "images" if task_cls.name == "det" else "crops"
    return {"model_type": task_cls.name, "main_indicator": key, "criterion": s["criterion"], "ratios": s["ratios"],
            "fp32": scorer.fp32["result"]["metrics"][key], "input_shape": shape,
            "baseline": {"macs": base["macs"], "params": base["params"]},
            "subset": {"size": n, unit: n, "of": len(samples),
                       "how": f"the first {n} of Eval in a shuffle seeded by Global.seed ({config['Global']['seed']})"},
            "score": "output error vs FP32: sum (y - y_fp32)^2 / sum y_fp32^2 over the subset",
            "groups": found, "rows": rows, "seconds": round(time.time() - t0, 1)}


def group_shares(graph, found, spatial, base, ratio, criterion, place):
    """{group: share of the multiply-adds removed at `ratio`}, counted from a pruned graph only
    (no weights cut): what decides which groups are worth a sweep."""
    out = {}
    for g in found:
        program, _ = prune(graph, {g["name"]: ratio}, criterion, place, only_graph=True)
        out[g["name"]] = round(1 - cost(program, spatial)["macs"] / base["macs"], 5)
    return out


# ---- a target: one ratio per group ---------------------------------------------------------------

def curves(table):
    """{group: [(ratio, error, drop)] by ratio} of a sensitivity table."""
    out = {}
    for r in table["rows"]:
        out.setdefault(r["group"], []).append((r["ratio"], r["error"], r["drop"]))
    return {g: sorted(v) for g, v in out.items()}


def ratios_at(curve_by_group, threshold):
    """{group: the largest ratio whose error, and every smaller ratio's, is at most threshold};
    groups that cannot take even the smallest are left out."""
    out = {}
    for group, points in curve_by_group.items():
        ratio = 0.0
        for r, error, _ in points:
            if error > threshold:
                break
            ratio = r
        if ratio > 0:
            out[group] = ratio
    return out


def predicted_drop(curve_by_group, ratios):
    """The metric drop the table predicts for pruning all `ratios` at once: the sum of each
    group's drop alone on the subset, a gain counted as none (on 8 det images pruning one group
    raised the hmean about as often as it lowered it: whole boxes move, and no group is
    expected to help once others are cut too)."""
    return sum(max(0.0, dict((r, d) for r, _, d in curve_by_group[g])[ratio]) for g, ratio in ratios.items())


def choose(table, graph, spatial, s, fp32_metric, place):
    """One ratio per group for the config's target: {"ratios", "flops_removed", "predicted_metric",
    "threshold", "sensitive"}. Prune.flops_ratio is met within 0.03 as counted from the program;
    Prune.min_metric takes the largest reduction whose predicted metric stays above it."""
    by_group = curves(table)
    thresholds = sorted({e for points in by_group.values() for _, e, _ in points})
    base = cost(graph.program, spatial)["macs"]

    def removed(ratios):
        if not ratios:
            return 0.0
        program, _ = prune(graph, ratios, s["criterion"], place, only_graph=True)
        return 1 - cost(program, spatial)["macs"] / base

    if s["flops_ratio"] is not None:
        at = functools.lru_cache(maxsize=None)(lambda t: removed(ratios_at(by_group, t)))
        t = _threshold_for_flops(thresholds, at, s["flops_ratio"])
    else:
        ok = [t for t in thresholds if fp32_metric - predicted_drop(by_group, ratios_at(by_group, t)) >= s["min_metric"]]
        if not ok:
            raise UserError(f"Prune.min_metric {s['min_metric']}: even the smallest ratio of the least sensitive "
                            f"group is predicted below it (FP32 {fp32_metric:.4f}); lower it")
        t = max(ok)
    ratios = ratios_at(by_group, t)
    got = removed(ratios)
    if s["flops_ratio"] is not None and abs(got - s["flops_ratio"]) > 0.03:
        raise UserError(f"Prune.flops_ratio {s['flops_ratio']}: the nearest the sensitivity table's ratios give is "
                        f"{got:.3f} of the multiply-adds; set Prune.flops_ratio near it or add ratios to Prune.ratios")
    return {"ratios": ratios, "flops_removed": round(got, 4), "threshold": t,
            "predicted_metric": round(fp32_metric - predicted_drop(by_group, ratios), 4),
            "sensitive": sorted(g for g in by_group if g not in ratios)}


def _threshold_for_flops(thresholds, removed_at, target):
    """The error threshold whose pruning removes the share of multiply-adds nearest `target`
    (removed_at grows with the threshold: bisection over the table's own error values)."""
    lo, hi = 0, len(thresholds) - 1
    if removed_at(thresholds[hi]) < target:
        return thresholds[hi]
    while lo < hi:
        mid = (lo + hi) // 2
        if removed_at(thresholds[mid]) >= target:
            hi = mid
        else:
            lo = mid + 1
    if lo > 0 and abs(removed_at(thresholds[lo - 1]) - target) < abs(removed_at(thresholds[lo]) - target):
        return thresholds[lo - 1]
    return thresholds[lo]


# ---- the table on disk ---------------------------------------------------------------------------

def write(table, out_dir):
    """prune_sensitivity.json, .csv (a row per group and ratio) and .png (error by ratio)."""
    import csv
    import io
    from ..outputs import write_json, write_text
    write_json(os.path.join(out_dir, "prune_sensitivity.json"), table)
    key = table["main_indicator"]
    cols = ["group", "ratio", "error", key, "drop", "flops_removed", "params_removed"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for row in table["rows"]:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    write_text(os.path.join(out_dir, "prune_sensitivity.csv"), buf.getvalue())
    plot(table, os.path.join(out_dir, "prune_sensitivity.png"))


def plot(table, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 5))
    for group, points in sorted(curves(table).items()):
        ratios = [r for r, _, _ in points]
        ax.plot(ratios, [max(e, 1e-7) for _, e, _ in points], marker=".", label=group.replace(".w_0", ""))
        bx.plot(ratios, [d for _, _, d in points], marker=".")
    ax.set_yscale("log")
    ax.set_xlabel("share of the group's output channels pruned")
    ax.set_ylabel("relative squared output error vs FP32")
    bx.set_xlabel("share of the group's output channels pruned")
    bx.set_ylabel(f"{table['main_indicator']} drop on the subset")
    ax.legend(fontsize=6, ncol=2)
    n = table["subset"]["size"]
    fig.suptitle(f"{table['model_type']} pruning sensitivity ({table['criterion']}, each group alone, "
                 f"{n} Eval items, FLOPs at {table['input_shape'][1]}x{table['input_shape'][2]})", fontsize=9)
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def summary_rows(table):
    """A row per group, most sensitive first: its error and drop at each ratio, its share of the
    multiply-adds at the largest, or why it was not swept."""
    by_group = curves(table)
    share = {g["name"]: g.get("flops_share") for g in table["groups"]}
    out = []
    for g in table["groups"]:
        points = by_group.get(g["name"], [])
        out.append({"group": g["name"], "convs": len(g["convs"]), "flops_share": share[g["name"]],
                    "skip": g["skip"], "errors": {r: e for r, e, _ in points},
                    "drops": {r: d for r, _, d in points}})
    first = min(table["ratios"])
    return sorted(out, key=lambda r: (r["skip"] is not None, -r["errors"].get(first, 0)))
