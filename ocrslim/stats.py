"""How far to trust a metric: bootstrap intervals over the items it rests on.

A det hmean (or an end-to-end F) is computed from counts summed over images,
so it is resampled by image: each bootstrap draw picks N images with
replacement and recomputes the hmean from their summed [gt, pred, matched]
counts. Rec accuracy is resampled by crop. A drop between two models measured
on the same items is paired: the same draw serves both, so what the two
models have in common (hard images) cancels and the interval is the one of
the difference, much narrower than the two intervals side by side.
"""
import numpy as np

DRAWS = 2000
LEVEL = 0.95


def _scores(rows, kind):
    """The metric of each row of summed items: hmean from [gt, pred, matched] sums, else the mean."""
    if kind == "rec":
        return rows
    gt, pred, matched = rows[..., 0], rows[..., 1], rows[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(gt > 0, matched / np.maximum(gt, 1), 1.0)
        precision = np.where(pred > 0, matched / np.maximum(pred, 1), np.where(gt == 0, 1.0, 0.0))
        total = precision + recall
        return np.where(total > 0, 2 * precision * recall / np.where(total > 0, total, 1), 0.0)


def metric(items, kind):
    """The metric of a list of items (rec: 0/1 per crop; det/e2e: [gt, pred, matched] per image)."""
    a = np.asarray(items, dtype=np.float64)
    return float(_scores(a.mean(0) if kind == "rec" else a.sum(0), kind))


def _draws(n, draws, seed):
    return np.random.default_rng(seed).integers(0, n, size=(draws, n))


def _resampled(a, idx, kind):
    return _scores(a[idx].mean(1) if kind == "rec" else a[idx].sum(1), kind)


def interval(items, kind, draws=DRAWS, level=LEVEL, seed=0):
    """{"value", "lo", "hi", "items"}: the metric and its bootstrap percentile interval."""
    a = np.asarray(items, dtype=np.float64)
    if len(a) == 0:
        return {"value": None, "lo": None, "hi": None, "items": 0}
    boot = _resampled(a, _draws(len(a), draws, seed), kind)
    lo, hi = np.percentile(boot, [50 * (1 - level), 50 * (1 + level)])
    return {"value": round(metric(a, kind), 4), "lo": round(float(lo), 4), "hi": round(float(hi), 4),
            "items": len(a)}


def paired_drop(base_items, items, kind, draws=DRAWS, level=LEVEL, seed=0):
    """{"drop", "lo", "hi", "items"}: base metric minus this one, with a paired bootstrap interval.
    Both lists must hold the same items in the same order (one eval set, two models)."""
    a, b = np.asarray(base_items, dtype=np.float64), np.asarray(items, dtype=np.float64)
    if len(a) != len(b):
        raise ValueError(f"paired items differ in number: {len(a)} vs {len(b)}")
    if len(a) == 0:
        return {"drop": None, "lo": None, "hi": None, "items": 0}
    idx = _draws(len(a), draws, seed)
    boot = _resampled(a, idx, kind) - _resampled(b, idx, kind)
    lo, hi = np.percentile(boot, [50 * (1 - level), 50 * (1 + level)])
    return {"drop": round(metric(a, kind) - metric(b, kind), 4), "lo": round(float(lo), 4),
            "hi": round(float(hi), 4), "items": len(a)}


def format_drop(d):
    """'+0.0120 [-0.0040, +0.0280]' (drop and its 95% interval), or '' without one."""
    if not d or d.get("drop") is None:
        return ""
    return f"{d['drop']:+.4f} [{d['lo']:+.4f}, {d['hi']:+.4f}]"


def format_interval(ci, unit):
    """'[0.5812, 0.6420] (bootstrap over 185 images)', or 'none (no items)'."""
    if not ci or not ci.get("items"):
        return "none (no items)"
    return f"[{ci['lo']:.4f}, {ci['hi']:.4f}] (bootstrap over {ci['items']} {unit})"
