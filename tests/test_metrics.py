"""Hand-computed checks for ocrslim.metrics (no paddle needed)."""

import pytest

from ocrslim.metrics import (
    DetMetric,
    RecMetric,
    edit_distance,
    match_image,
    normalize_text,
    polygon_iou,
)

approx = pytest.approx


def rect(x0, y0, x1, y1):
    """Axis-aligned rectangle as a clockwise 4-point polygon."""
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def det(gts, ignore, preds, **kw):
    m = DetMetric(**kw)
    m.update(gts, ignore, preds)
    return m.result()


# ----------------------------------------------------------------- detection

def test_perfect_match():
    gts = [rect(0, 0, 10, 10), rect(20, 0, 40, 10)]
    r = det(gts, [False, False], [rect(0, 0, 10, 10), rect(20, 0, 40, 10)])
    assert (r["precision"], r["recall"], r["hmean"]) == (1.0, 1.0, 1.0)
    assert (r["gt_care"], r["pred_care"], r["matched"]) == (2, 2, 2)


def test_polygon_point_count_does_not_matter():
    # 8-point outline of the same 10x10 square (midpoints on each edge)
    octo = [(0, 0), (5, 0), (10, 0), (10, 5), (10, 10), (5, 10), (0, 10), (0, 5)]
    assert polygon_iou(octo, rect(0, 0, 10, 10)) == approx(1.0)
    assert match_image([octo], [False], [rect(0, 0, 10, 10)])["matched"] == 1


@pytest.mark.parametrize("y1, iou, matched", [
    (4.9, 0.49, 0),  # pred inside GT: IoU = 10*4.9 / 100 = 0.49
    (5.0, 0.50, 0),  # exactly 0.5: threshold is strict '>'
    (5.1, 0.51, 1),  # 10*5.1 / 100 = 0.51
])
def test_iou_threshold_nested(y1, iou, matched):
    gt, pred = rect(0, 0, 10, 10), rect(0, 0, 10, y1)
    assert polygon_iou(gt, pred) == approx(iou)
    assert match_image([gt], [False], [pred])["matched"] == matched


@pytest.mark.parametrize("dx, matched", [
    # GT 10x10, pred 10x10 shifted right by dx: inter = 10*(10-dx),
    # union = 200 - inter.
    (3.4, 0),  # inter 66, union 134 -> IoU 0.4925
    (3.0, 1),  # inter 70, union 130 -> IoU 0.5385
])
def test_iou_threshold_shifted(dx, matched):
    gt, pred = rect(0, 0, 10, 10), rect(dx, 0, 10 + dx, 10)
    assert polygon_iou(gt, pred) == approx(10 * (10 - dx) / (200 - 10 * (10 - dx)))
    assert match_image([gt], [False], [pred])["matched"] == matched


def test_one_gt_split_into_two_predictions():
    # GT 20x10 (area 200). Left piece 11x10: IoU 110/200 = 0.55 (match);
    # right piece 9x10: IoU 90/200 = 0.45 (no match).
    r = det([rect(0, 0, 20, 10)], [False],
            [rect(0, 0, 11, 10), rect(11, 0, 20, 10)])
    assert (r["gt_care"], r["pred_care"], r["matched"]) == (1, 2, 1)
    assert r["precision"] == approx(0.5)
    assert r["recall"] == approx(1.0)
    assert r["hmean"] == approx(2 / 3)  # 2*0.5*1 / 1.5


def test_duplicate_predictions_match_once():
    # Both predictions have IoU 1 with the GT, but matching is one-to-one.
    g = rect(0, 0, 10, 10)
    r = det([g], [False], [g, g])
    assert r["matched"] == 1
    assert r["precision"] == approx(0.5) and r["recall"] == approx(1.0)


def test_two_gts_merged_into_one_prediction():
    # GT1 12x10 (120), GT2 8x10 (80), pred covers both (200):
    # IoU(GT1) = 120/200 = 0.6 (match), IoU(GT2) = 80/200 = 0.4 (no).
    r = det([rect(0, 0, 12, 10), rect(12, 0, 20, 10)], [False, False],
            [rect(0, 0, 20, 10)])
    assert (r["gt_care"], r["pred_care"], r["matched"]) == (2, 1, 1)
    assert r["precision"] == approx(1.0)
    assert r["recall"] == approx(0.5)
    assert r["hmean"] == approx(2 / 3)


def test_greedy_order_is_gt_then_prediction():
    # GT1 [0,10], GT2 [4,14]; P1 [2,12] has IoU 80/120 with both GTs,
    # P2 [0,10] has IoU 1 with GT1 and 60/140 = 0.43 with GT2.
    # GT1 is visited first and takes the first eligible prediction, P1;
    # GT2 then has only P2 left (0.43) -> 1 match (an optimal assignment
    # would find 2). This is the documented ICDAR-script behaviour.
    c = match_image([rect(0, 0, 10, 10), rect(4, 0, 14, 10)], [False, False],
                    [rect(2, 0, 12, 10), rect(0, 0, 10, 10)])
    assert c == {"gt_care": 2, "pred_care": 2, "matched": 1}


def test_prediction_on_dontcare_is_ignored():
    gts = [rect(0, 0, 10, 10), rect(50, 0, 70, 10)]
    # 2nd prediction lies fully inside the '###' region -> not counted.
    r = det(gts, [False, True], [rect(0, 0, 10, 10), rect(52, 0, 68, 10)])
    assert (r["gt_care"], r["pred_care"], r["matched"]) == (1, 1, 1)
    assert r["precision"] == 1.0 and r["recall"] == 1.0


@pytest.mark.parametrize("x0, pred_care", [
    (60, 2),  # pred [60,80]x10 area 200, overlap with [50,70] = 100 -> 0.5, kept
    (59, 1),  # pred [59,79]: overlap 110/200 = 0.55 > 0.5 -> ignored
])
def test_dontcare_overlap_threshold(x0, pred_care):
    gts = [rect(0, 0, 10, 10), rect(50, 0, 70, 10)]
    c = match_image(gts, [False, True],
                    [rect(0, 0, 10, 10), rect(x0, 0, x0 + 20, 10)])
    assert c["pred_care"] == pred_care and c["matched"] == 1


def test_dontcare_gt_not_counted_in_recall():
    # Two '###' GTs with no prediction at all: recall stays 1.
    gts = [rect(0, 0, 10, 10), rect(50, 0, 70, 10), rect(80, 0, 90, 10)]
    r = det(gts, [False, True, True], [rect(0, 0, 10, 10)])
    assert r["gt_care"] == 1
    assert r["recall"] == 1.0 and r["precision"] == 1.0


def test_no_predictions():
    r = det([rect(0, 0, 10, 10), rect(20, 0, 30, 10)], [False, False], [])
    assert (r["gt_care"], r["pred_care"], r["matched"]) == (2, 0, 0)
    assert (r["precision"], r["recall"], r["hmean"]) == (0.0, 0.0, 0.0)


def test_no_gt_with_predictions():
    r = det([], [], [rect(0, 0, 10, 10)])
    assert (r["precision"], r["recall"], r["hmean"]) == (0.0, 1.0, 0.0)


def test_no_gt_no_predictions_and_empty_metric():
    assert det([], [], [])["hmean"] == 1.0
    r = DetMetric().result()  # nothing accumulated: same convention
    assert (r["precision"], r["recall"], r["hmean"]) == (1.0, 1.0, 1.0)


def test_counts_are_summed_not_averaged():
    m = DetMetric()
    # image A: 1 GT, 1 pred, 1 match        (p=1,    r=1)
    m.update([rect(0, 0, 10, 10)], [False], [rect(0, 0, 10, 10)])
    # image B: 3 GTs, 4 preds, 1 match      (p=0.25, r=1/3)
    gts = [rect(0, 0, 10, 10), rect(20, 0, 30, 10), rect(40, 0, 50, 10)]
    preds = [rect(0, 0, 10, 10), rect(100, 0, 110, 10),
             rect(120, 0, 130, 10), rect(140, 0, 150, 10)]
    m.update(gts, [False] * 3, preds)
    r = m.result()
    # summed: gt 4, pred 5, matched 2 -> p=0.4, r=0.5, h=2*.2/.9 = 4/9.
    # (per-image averaging would give p=0.625, r=2/3.)
    assert (r["gt_care"], r["pred_care"], r["matched"]) == (4, 5, 2)
    assert r["precision"] == approx(0.4)
    assert r["recall"] == approx(0.5)
    assert r["hmean"] == approx(4 / 9)
    m.reset()
    assert (m.gt_care, m.pred_care, m.matched) == (0, 0, 0)


def test_self_intersecting_prediction_is_repaired():
    # Bow-tie over the 10x10 square: make_valid -> two triangles of area 25,
    # so IoU with the square = 50/100 = 0.5 -> no match (strict), no crash.
    bowtie = [(0, 0), (10, 10), (10, 0), (0, 10)]
    assert polygon_iou(bowtie, rect(0, 0, 10, 10)) == approx(0.5)
    assert match_image([rect(0, 0, 10, 10)], [False], [bowtie])["matched"] == 0


def test_zero_area_prediction_matches_nothing():
    flat = [(0, 0), (10, 0), (10, 0), (0, 0)]
    c = match_image([rect(0, 0, 10, 10)], [False], [flat])
    # still a (false-positive) cared prediction
    assert c == {"gt_care": 1, "pred_care": 1, "matched": 0}


def test_ignore_flags_length_checked():
    with pytest.raises(ValueError):
        match_image([rect(0, 0, 1, 1)], [], [])


# --------------------------------------------------------------- recognition

def test_normalize_text():
    assert normalize_text(" a b\tc\n") == "abc"
    assert normalize_text(" a b ", ignore_space=False) == " a b "
    assert normalize_text("Hello, World!", filter_text=True) == "helloworld"
    assert normalize_text("你好，世界!", filter_text=True) == "你好世界"


@pytest.mark.parametrize("a, b, d", [
    ("kitten", "sitting", 3),
    ("flaw", "lawn", 2),
    ("", "abc", 3),
    ("abc", "", 3),
    ("", "", 0),
    ("same", "same", 0),
    ("你好", "你们好", 1),
])
def test_edit_distance(a, b, d):
    assert edit_distance(a, b) == d
    assert edit_distance(b, a) == d


def test_rec_exact_match():
    m = RecMetric()
    m.update(["abc", "de"], ["abc", "de"])
    assert m.result() == {"acc": 1.0, "norm_edit_dis": 1.0,
                          "correct": 2, "total": 2}


def test_rec_ignore_space():
    m = RecMetric(ignore_space=True)
    m.update(["hello world"], ["helloworld"])
    assert m.result()["acc"] == 1.0
    m = RecMetric(ignore_space=False)
    m.update(["hello world"], ["helloworld"])
    r = m.result()
    assert r["acc"] == 0.0
    assert r["norm_edit_dis"] == approx(1 - 1 / 11)  # 1 insertion / len 11


def test_rec_filter_text():
    m = RecMetric(filter_text=True)
    m.update(["Hello, World!"], ["hello world"])
    assert m.result()["acc"] == 1.0
    # Unfiltered: "Hello,World!" vs "helloworld": H->h, W->w, drop ',' '!'
    # -> ED 4 over max len 12 -> 1 - 4/12 = 2/3.
    m = RecMetric(filter_text=False)
    m.update(["Hello, World!"], ["hello world"])
    r = m.result()
    assert r["acc"] == 0.0
    assert r["norm_edit_dis"] == approx(2 / 3)


def test_rec_norm_edit_distance_batch():
    # per-sample ED/maxlen: 0/3, 1/3, 2/2, 1/3 -> sum 5/3, mean 5/12
    m = RecMetric()
    m.update(["abc", "abd", ""], ["abc", "abc", "ab"])
    m.update(["xyz"], ["xy"])  # accumulates across calls
    r = m.result()
    assert (r["correct"], r["total"]) == (1, 4)
    assert r["acc"] == approx(0.25)
    assert r["norm_edit_dis"] == approx(7 / 12)


def test_rec_empty_strings_and_empty_metric():
    m = RecMetric()
    assert m.result() == {"acc": 0.0, "norm_edit_dis": 0.0,
                          "correct": 0, "total": 0}
    m.update([""], [""])  # both empty: exact match, distance 0
    assert m.result() == {"acc": 1.0, "norm_edit_dis": 1.0,
                          "correct": 1, "total": 1}
    m.update(["a"], [""])  # ED 1 / max(1, 0, 1) -> 1
    assert m.result()["norm_edit_dis"] == approx(0.5)
    m.reset()
    assert m.result()["total"] == 0


def test_rec_length_mismatch():
    with pytest.raises(ValueError):
        RecMetric().update(["a"], [])
