"""OCR evaluation metrics: text detection (ICDAR2015 IoU protocol) and recognition.

Written for this project because the paddleocr wheel does not ship
``ppocr.metrics``. Pure Python + numpy/shapely; no paddle import, so the
metrics can be unit-tested and used on machines without paddle.

Detection
    Per image, :func:`match_image` counts cared GTs, cared predictions and
    one-to-one matches; :class:`DetMetric` sums these counts over the whole
    data set before computing precision/recall/hmean (micro-average, as the
    official ICDAR script does), so large images are not diluted by small ones.

Recognition
    :class:`RecMetric` reports exact-match accuracy and the normalized edit
    distance score ``1 - mean(ED / max(len(pred), len(label), 1))``.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from shapely.geometry import Polygon
from shapely.validation import make_valid

Point = Sequence[float]
Poly = Sequence[Point]

__all__ = [
    "to_geometry",
    "polygon_iou",
    "match_image",
    "DetMetric",
    "normalize_text",
    "edit_distance",
    "RecMetric",
]


# --------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------

def to_geometry(points: Poly):
    """Turn a sequence of (x, y) points into a valid shapely geometry.

    Detectors and annotators both produce self-intersecting quads (e.g. a
    "bow-tie" from mis-ordered corners); shapely would raise or return
    nonsense areas for those, so they are repaired with ``make_valid``.
    Fewer than 3 points gives an empty polygon (area 0, matches nothing).
    """
    pts = [(float(p[0]), float(p[1])) for p in points]
    if len(pts) < 3:
        return Polygon()
    geom = Polygon(pts)
    if not geom.is_valid:
        geom = make_valid(geom)
    return geom


def geometry_iou(a, b) -> float:
    """IoU of two shapely geometries; 0 when the union is empty."""
    if a.is_empty or b.is_empty:
        return 0.0
    inter = a.intersection(b).area
    union = a.area + b.area - inter
    return inter / union if union > 0 else 0.0


def polygon_iou(p1: Poly, p2: Poly) -> float:
    """Intersection-over-union of two point-list polygons."""
    return geometry_iou(to_geometry(p1), to_geometry(p2))


def is_ignored_pred(pred, dontcare_geoms, ignore_overlap: float) -> bool:
    """True when the prediction lies mostly on a don't-care ('###') region.

    Such predictions are dropped rather than counted as false positives,
    because the region does contain text that simply was not transcribed.
    A zero-area prediction is never ignored: it stays a false positive.
    """
    area = pred.area
    if area <= 0:
        return False
    for g in dontcare_geoms:
        if g.is_empty:
            continue
        if pred.intersection(g).area / area > ignore_overlap:
            return True
    return False


def match_image(
    gt_polys: Sequence[Poly],
    gt_ignore: Sequence[bool],
    pred_polys: Sequence[Poly],
    iou_thresh: float = 0.5,
    ignore_overlap: float = 0.5,
) -> dict:
    """Count cared GTs, cared predictions and matches for ONE image.

    Matching is one-to-one and greedy in order of GT index, then prediction
    index (the same order as the official ICDAR2015 script): the first
    still-unmatched cared prediction with ``IoU > iou_thresh`` (strict)
    is taken. Don't-care GTs are never matched and never counted.

    Returns ``dict(gt_care=int, pred_care=int, matched=int)``.
    """
    if len(gt_ignore) != len(gt_polys):
        raise ValueError("gt_ignore must have one flag per GT polygon")
    gts = [to_geometry(p) for p in gt_polys]
    preds = [to_geometry(p) for p in pred_polys]
    dontcare = [g for g, ign in zip(gts, gt_ignore) if ign]
    cared_gts = [g for g, ign in zip(gts, gt_ignore) if not ign]
    cared_preds = [p for p in preds
                   if not is_ignored_pred(p, dontcare, ignore_overlap)]

    matched = len(greedy_pairs(cared_gts, cared_preds, iou_thresh))
    return {"gt_care": len(cared_gts), "pred_care": len(cared_preds),
            "matched": matched}


def greedy_pairs(first, second, iou_thresh: float = 0.5) -> list:
    """(i, j) pairs of shapely geometries matched one-to-one, greedy in order of ``first``, then
    ``second``: each of ``first`` takes the first still-unmatched one of ``second`` with
    ``IoU > iou_thresh`` (strict)."""
    used = [False] * len(second)
    pairs = []
    for i, g in enumerate(first):
        for j, p in enumerate(second):
            if not used[j] and geometry_iou(g, p) > iou_thresh:
                used[j] = True
                pairs.append((i, j))
                break  # each of first matches at most once
    return pairs


def det_scores(gt_care: int, pred_care: int, matched: int) -> dict:
    """Precision/recall/hmean from summed counts, ICDAR conventions.

    * recall = 1.0 when there is no cared GT (nothing to miss);
    * precision = 1.0 when there are neither cared predictions nor cared GTs,
      0.0 when GTs exist but nothing was predicted;
    * hmean = 0.0 when precision + recall == 0.
    """
    recall = matched / gt_care if gt_care > 0 else 1.0
    if pred_care > 0:
        precision = matched / pred_care
    else:
        precision = 1.0 if gt_care == 0 else 0.0
    s = precision + recall
    hmean = 0.0 if s == 0 else 2 * precision * recall / s
    return {"precision": precision, "recall": recall, "hmean": hmean}


class DetMetric:
    """Accumulates :func:`match_image` counts over a data set."""

    def __init__(self, iou_thresh: float = 0.5, ignore_overlap: float = 0.5):
        self.iou_thresh = iou_thresh
        self.ignore_overlap = ignore_overlap
        self.reset()

    def reset(self) -> None:
        self.gt_care = 0
        self.pred_care = 0
        self.matched = 0
        self.per_image = []  # [gt_care, pred_care, matched] per image, for intervals (stats.py)

    def update(self, gt_polys, gt_ignore, pred_polys) -> dict:
        """Add one image; returns that image's counts (handy for debugging)."""
        c = match_image(gt_polys, gt_ignore, pred_polys,
                        self.iou_thresh, self.ignore_overlap)
        self.gt_care += c["gt_care"]
        self.pred_care += c["pred_care"]
        self.matched += c["matched"]
        self.per_image.append([c["gt_care"], c["pred_care"], c["matched"]])
        return c

    def items(self) -> list:
        """Per-image [gt_care, pred_care, matched]: what stats.py resamples."""
        return list(self.per_image)

    def result(self) -> dict:
        """Micro-averaged scores plus the raw summed counts."""
        out = det_scores(self.gt_care, self.pred_care, self.matched)
        out.update(gt_care=self.gt_care, pred_care=self.pred_care,
                   matched=self.matched)
        return out


# --------------------------------------------------------------------------
# Recognition
# --------------------------------------------------------------------------

def normalize_text(text: str, ignore_space: bool = True,
                   filter_text: bool = False) -> str:
    """Canonicalize a transcription before comparison.

    ``ignore_space`` drops all whitespace (labels and models disagree on
    spacing, especially in CJK). ``filter_text`` keeps only ``str.isalnum``
    characters (unicode letters/digits, CJK included) and lower-cases, for
    the case- and punctuation-insensitive protocol.
    """
    if ignore_space:
        text = "".join(ch for ch in text if not ch.isspace())
    if filter_text:
        text = "".join(ch for ch in text if ch.isalnum()).lower()
    return text


def edit_distance(a: Sequence, b: Sequence) -> int:
    """Levenshtein distance (unit insert/delete/substitute costs).

    Two-row dynamic programming: O(len(a)*len(b)) time, O(len(b)) memory.
    """
    if len(a) < len(b):
        a, b = b, a  # keep the row on the shorter string
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1,            # delete ca
                         cur[j - 1] + 1,         # insert cb
                         prev[j - 1] + (ca != cb))  # substitute / keep
        prev = cur
    return prev[-1]


class RecMetric:
    """Accuracy and normalized edit distance over a recognition data set."""

    def __init__(self, ignore_space: bool = True, filter_text: bool = False):
        self.ignore_space = ignore_space
        self.filter_text = filter_text
        self.reset()

    def reset(self) -> None:
        self.correct = 0
        self.total = 0
        self._norm_ed_sum = 0.0  # sum of ED / max(len) over samples
        self.per_item = []  # 1 per correct crop, 0 per wrong one, for intervals (stats.py)

    def update(self, preds: Iterable[str], labels: Iterable[str]) -> None:
        preds, labels = list(preds), list(labels)
        if len(preds) != len(labels):
            raise ValueError("preds and labels must have the same length")
        for p, t in zip(preds, labels):
            p = normalize_text(p, self.ignore_space, self.filter_text)
            t = normalize_text(t, self.ignore_space, self.filter_text)
            self.correct += int(p == t)
            self.per_item.append(int(p == t))
            # max(..., 1) makes two empty strings a perfect (0) distance
            self._norm_ed_sum += edit_distance(p, t) / max(len(p), len(t), 1)
            self.total += 1

    def items(self) -> list:
        """Per-crop 1 (correct) or 0: what stats.py resamples."""
        return list(self.per_item)

    def result(self) -> dict:
        if self.total == 0:
            return {"acc": 0.0, "norm_edit_dis": 0.0, "correct": 0, "total": 0}
        return {"acc": self.correct / self.total,
                "norm_edit_dis": 1.0 - self._norm_ed_sum / self.total,
                "correct": self.correct, "total": self.total}
