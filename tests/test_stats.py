"""stats.py: bootstrap intervals of hmean / accuracy and of paired drops."""
import numpy as np

from ocrslim import stats
from ocrslim.metrics import det_scores


def test_metric_is_the_micro_hmean_and_the_accuracy():
    rows = [[3, 4, 2], [5, 2, 2], [0, 1, 0]]
    assert abs(stats.metric(rows, "det") - det_scores(8, 7, 4)["hmean"]) < 1e-12
    assert stats.metric([1, 0, 1, 1], "rec") == 0.75
    assert stats.metric([[0, 0, 0]], "det") == 1.0  # nothing to find, nothing found (ICDAR convention)


def test_rec_interval_matches_the_binomial_width():
    """For accuracy the bootstrap interval is about p +- 1.96 sqrt(p(1-p)/n)."""
    items = [1] * 640 + [0] * 360
    ci = stats.interval(items, "rec")
    half = 1.96 * np.sqrt(0.64 * 0.36 / 1000)
    assert ci["value"] == 0.64 and ci["items"] == 1000
    assert abs((ci["hi"] - ci["lo"]) / 2 - half) < 0.006, (ci, half)
    assert ci["lo"] < 0.64 < ci["hi"]


def test_paired_drop_cancels_what_two_models_share():
    """Two models that differ on 10 of 1000 crops: the paired interval is far narrower than the
    two single intervals, and the same model against itself has a zero-width interval."""
    rng = np.random.default_rng(0)
    base = (rng.random(1000) < 0.7).astype(int)
    other = base.copy()
    other[np.flatnonzero(base)[:10]] = 0  # 10 crops lost
    d = stats.paired_drop(base, other, "rec")
    assert d["drop"] == 0.01 and d["items"] == 1000
    assert 0 < d["lo"] <= 0.01 <= d["hi"] < 0.02, d
    single = stats.interval(base, "rec")
    assert d["hi"] - d["lo"] < (single["hi"] - single["lo"]) / 3
    same = stats.paired_drop(base, base, "rec")
    assert same["drop"] == same["lo"] == same["hi"] == 0.0
    assert stats.format_drop(d).startswith("+0.0100 [")


def test_det_drop_resamples_images():
    rng = np.random.default_rng(1)
    gt = rng.integers(1, 8, 200)
    base = np.stack([gt, gt, gt - (rng.random(200) < 0.3)], 1)  # some misses
    worse = base.copy()
    worse[:20, 2] = np.maximum(worse[:20, 2] - 1, 0)
    d = stats.paired_drop(base, worse, "det")
    assert d["drop"] > 0 and d["lo"] > 0 and d["items"] == 200, d
    try:
        stats.paired_drop(base, worse[:-1], "det")
    except ValueError as err:
        assert "differ in number" in str(err)
    else:
        raise AssertionError("unpaired lists must be refused")
