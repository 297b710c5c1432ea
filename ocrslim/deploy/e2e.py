"""End-to-end OCR evaluation: det -> boxes -> crops -> rec -> text, scored on the det labels.

usage:
  python eval.py --e2e -c configs/ppocrv4/det_mobile.yaml --rec_config configs/ppocrv4/rec_mobile.yaml
  python eval.py --e2e -c configs/ppocrv4/det_mobile.yaml --rec_config configs/ppocrv4/rec_mobile.yaml \
      --model_dir output/demo/det --rec_model_dir output/demo/rec --json e2e.json

Det and rec are each scored alone by eval.py; what a user sees is the pair.
This runs both through the deployment runtime (deploy/runtime.py) the way an OCR
system does: boxes from DB post-processing, in reading order, cropped from the
original image, recognized in one batch per image. A prediction counts when
its box matches a labelled box AND its text equals the label.
"""
import json
import logging
import statistics
import tempfile
import time
from types import SimpleNamespace

import cv2
import numpy as np
from tqdm import tqdm

from .. import model as mdl
from .. import cpu
from ..config import resolve_path
from . import backends
from . import peer as peer_mod
from ..data import import_ppocr, read_labels
from ..errors import UserError
from ..metrics import geometry_iou, is_ignored_pred, det_scores, normalize_text, to_geometry
from ..tasks import DetTask, RecTask

log = logging.getLogger("ocrslim")

WARMUP_IMAGES = 3      # oneDNN builds kernels per input shape on first sight
CROP_ROTATE_RATIO = 1.5  # a crop this much taller than wide is vertical text


# --------------------------------------------------------------------------
# Metric
# --------------------------------------------------------------------------

class E2EMetric:
    """Boxes found AND read right, counted over a data set (micro-average, like DetMetric).

    A prediction is a true positive when its IoU with a still-unmatched cared
    GT box is > iou_thresh and the two texts are equal after the rec metric's
    normalization. Pairs are taken greedily by IoU, so two predictions on one
    GT count once. Predictions lying mostly (> ignore_overlap of their area)
    on a don't-care GT are dropped, as the det metric does.
    """

    def __init__(self, iou_thresh=0.5, ignore_overlap=0.5, ignore_space=True, filter_text=False):
        self.iou_thresh = iou_thresh
        self.ignore_overlap = ignore_overlap
        self.ignore_space = ignore_space
        self.filter_text = filter_text
        self.reset()

    def reset(self):
        self.tp = self.gt = self.pred = 0
        self.per_image = []  # [gt, pred, tp] per image, laid out as DetMetric's, for stats.py

    def _norm(self, text):
        return normalize_text(text, self.ignore_space, self.filter_text)

    def update(self, gt_boxes, gt_texts, gt_ignore, pred_boxes, pred_texts):
        """Add one image; returns its counts."""
        gts = [(to_geometry(b), self._norm(t)) for b, t, ign in zip(gt_boxes, gt_texts, gt_ignore) if not ign]
        dontcare = [to_geometry(b) for b, ign in zip(gt_boxes, gt_ignore) if ign]
        preds = [(to_geometry(b), self._norm(t)) for b, t in zip(pred_boxes, pred_texts)]
        preds = [p for p in preds if not is_ignored_pred(p[0], dontcare, self.ignore_overlap)]
        # Only pairs with equal text can match; best IoU first, ties in index order.
        pairs = []
        for i, (g, g_text) in enumerate(gts):
            for j, (p, p_text) in enumerate(preds):
                if g_text == p_text:
                    iou = geometry_iou(g, p)
                    if iou > self.iou_thresh:
                        pairs.append((-iou, i, j))
        used_gt, used_pred = set(), set()
        for _, i, j in sorted(pairs):
            if i not in used_gt and j not in used_pred:
                used_gt.add(i)
                used_pred.add(j)
        counts = {"tp": len(used_gt), "gt": len(gts), "pred": len(preds)}
        self.tp += counts["tp"]
        self.gt += counts["gt"]
        self.pred += counts["pred"]
        self.per_image.append([counts["gt"], counts["pred"], counts["tp"]])
        return counts

    def items(self):
        """Per-image [gt, pred, tp]: what stats.py resamples."""
        return list(self.per_image)

    def result(self):
        out = det_scores(self.gt, self.pred, self.tp)
        out.update(tp=self.tp, gt=self.gt, pred=self.pred)
        return out


# --------------------------------------------------------------------------
# Boxes and crops
# --------------------------------------------------------------------------

def sorted_boxes(boxes, line_tol=10):
    """Reading order: lines top to bottom, boxes left to right within a line.

    A box starts a new line when its top-left corner is line_tol pixels or
    more below the first box of the current line (DB boxes start at top-left).
    """
    boxes = sorted(boxes, key=lambda b: (b[0][1], b[0][0]))
    lines = []
    for box in boxes:
        if lines and box[0][1] - lines[-1][0][0][1] < line_tol:
            lines[-1].append(box)
        else:
            lines.append([box])
    return [box for line in lines for box in sorted(line, key=lambda b: b[0][0])]


def crop_box(image, box):
    """Cut a quad (top-left first, clockwise) out of image as an upright rectangle.

    The output size is the quad's longer opposite sides, so a tilted line comes
    out level; a crop much taller than wide is vertical text and is turned 90
    degrees counter-clockwise, because rec models read horizontal lines only.
    """
    pts = np.asarray(box, dtype=np.float32)
    width = int(round(max(np.linalg.norm(pts[0] - pts[1]), np.linalg.norm(pts[3] - pts[2]))))
    height = int(round(max(np.linalg.norm(pts[0] - pts[3]), np.linalg.norm(pts[1] - pts[2]))))
    width, height = max(width, 1), max(height, 1)
    target = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
    matrix = cv2.getPerspectiveTransform(pts, target)
    # replicate the border: a box touching the image edge gets no black band
    crop = cv2.warpPerspective(image, matrix, (width, height), flags=cv2.INTER_CUBIC,
                               borderMode=cv2.BORDER_REPLICATE)
    if height / width >= CROP_ROTATE_RATIO:
        crop = np.ascontiguousarray(np.rot90(crop))
    return crop


# --------------------------------------------------------------------------
# Pipeline
# --------------------------------------------------------------------------

def _ops(transforms, where):
    """ppocr ops for a config's Eval transforms, without DecodeImage and the label encoders.

    The image is decoded once with cv2 (BGR, as the configs' DecodeImage gives)
    because the crops must come from the original, unresized image; there are
    no labels to encode on the way.
    """
    from ..data import operators
    return operators(transforms, where, drop=("DecodeImage",))


def _color_mode(transforms):
    for t in transforms:
        if "DecodeImage" in t:
            return (t["DecodeImage"] or {}).get("img_mode", "RGB")
    return "BGR"


class Pipeline:
    """image (BGR uint8) -> (boxes in reading order, texts), with the det and rec predictors given."""

    def __init__(self, det_config, rec_config, det_predict, rec_predict):
        import_ppocr()
        self.det_task, self.rec_task = DetTask(det_config), RecTask(rec_config)
        self.det_predict, self.rec_predict = det_predict, rec_predict
        det_transforms = det_config["Eval"]["dataset"]["transforms"]
        rec_transforms = rec_config["Eval"]["dataset"]["transforms"]
        self.det_ops = _ops(det_transforms, "det Eval.dataset.transforms")
        self.rec_ops = _ops(rec_transforms, "rec Eval.dataset.transforms")
        self.det_rgb = _color_mode(det_transforms) == "RGB"
        self.rec_rgb = _color_mode(rec_transforms) == "RGB"

    def _input(self, image, ops, rgb):
        from ppocr.data.imaug import transform
        if rgb:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        return transform({"image": image}, ops)

    def check_models(self):
        """Run each model once on a blank input and check its output fits the config."""
        data = self._input(np.zeros((64, 64, 3), np.uint8), self.det_ops, self.det_rgb)
        out = self.det_predict(data["image"][None].astype("float32"))[0]
        self.det_task.check_model(None, [SimpleNamespace(name="det output", shape=list(out.shape))])
        data = self._input(np.zeros((48, 160, 3), np.uint8), self.rec_ops, self.rec_rgb)
        out = self.rec_predict(data["image"][None].astype("float32"))[0]
        self.rec_task.check_model(None, [SimpleNamespace(name="rec output", shape=list(out.shape))])

    def __call__(self, image):
        data = self._input(image, self.det_ops, self.det_rgb)
        if data is None:
            return [], []
        maps = self.det_predict(data["image"][None].astype("float32"))[0]
        found = self.det_task.post({"maps": maps}, data["shape"][None])[0]["points"]
        boxes = sorted_boxes([np.asarray(b).tolist() for b in found])
        if not boxes:
            return [], []
        # One batch per image: the rec transforms (RecResizeImg) give every crop the same size.
        crops = [self._input(crop_box(image, b), self.rec_ops, self.rec_rgb)["image"] for b in boxes]
        logits = self.rec_predict(np.stack(crops).astype("float32"))[0]
        texts = [text for text, _score in self.rec_task.post(logits)]
        # An empty text is a box rec could not read: not a text line, drop it.
        keep = [i for i, text in enumerate(texts) if text.strip()]
        return [boxes[i] for i in keep], [texts[i] for i in keep]


def _ground_truth(label):
    boxes = json.loads(label)
    return ([b["points"] for b in boxes], [b["transcription"] for b in boxes],
            [b["transcription"] in ("###", "*") for b in boxes])


def evaluate_e2e(pipeline, items, metric, progress=True, warmup=WARMUP_IMAGES, max_unreadable=0.05):
    """Score `pipeline` on [(image_path, det_label)]; time each image end to end.

    A timed image covers decode, det pre/post-processing, crops, rec and text
    decoding. The first `warmup` images are run once untimed beforehand so
    the latency is not dominated by oneDNN kernel creation.
    """
    for path, _ in items[:warmup]:
        image = cv2.imread(path)
        if image is not None:
            pipeline(image)
    metric.reset()
    times, skipped = [], []
    for path, label in tqdm(items, desc="e2e", unit="img", disable=not progress, leave=False):
        start = time.perf_counter()
        image = cv2.imread(path)
        if image is None:
            skipped.append(path)
            if len(skipped) > max_unreadable * len(items):
                raise UserError(f"{len(skipped)} of {len(items)} Eval images could not be read, more than "
                                f"Global.max_unreadable ({max_unreadable:.0%}) allows: {', '.join(skipped[:3])}. "
                                "Fix Eval.dataset.data_dir or the label file")
            continue
        boxes, texts = pipeline(image)
        times.append(time.perf_counter() - start)
        metric.update(*_ground_truth(label), boxes, texts)
    if skipped:
        log.warning("skipped %d of %d images that could not be read: %s", len(skipped), len(items),
                    ", ".join(skipped[:3]))
    if not times or metric.gt == 0:
        raise UserError("no image with a labelled text box could be scored, so there is no end-to-end metric")
    latency = {"median": round(1000 * statistics.median(times), 2), "mean": round(1000 * statistics.mean(times), 2)}
    return {"metrics": metric.result(), "images": len(times), "skipped": len(skipped), "latency_ms": latency,
            "per_image": metric.items()}  # [gt, pred, tp] per image: what a drop interval resamples


def run_e2e(det_config, rec_config, backend="auto", devices="cpu", threads=2, progress=True, peer=None,
            rec_backend=None):
    """Evaluate the det+rec pair of the two configs; returns the result dict for --json.

    backend: both models' runtime; rec_backend: rec's instead, where given.

    peer: a peer's name (peer.PEERS): run its int8 of the two (FP32) models instead, each
    calibrated on its config's Train images, as bench.py --peer does for one model."""
    det_files = mdl.model_files(det_config["Global"])
    rec_files = mdl.model_files(rec_config["Global"])
    ds = det_config["Eval"]["dataset"]
    items = read_labels(ds["data_dir"], ds["label_file_list"], "det")
    m = rec_config.get("Metric", {})
    metric = E2EMetric(ignore_space=m.get("ignore_space", True), filter_text=m.get("filter_text", False))
    # ONNX exports live only as long as the run
    with tempfile.TemporaryDirectory(prefix="ocrslim-e2e-") as tmp_dir:
        if peer:
            det_predict, det_info = peer_mod.predictor(det_config, "det", det_files, tmp_dir, "det", devices, threads,
                                                       peer)
            rec_predict, rec_info = peer_mod.predictor(rec_config, "rec", rec_files, tmp_dir, "rec", devices, threads,
                                                       peer)
        else:
            det_predict, det_info = backends.predictor(det_files, backend, "det", tmp_dir, "det", devices, threads)
            rec_predict, rec_info = backends.predictor(rec_files, rec_backend or backend, "rec", tmp_dir, "rec",
                                                       devices, threads)
        pipeline = Pipeline(det_config, rec_config, det_predict, rec_predict)
        pipeline.check_models()
        result = evaluate_e2e(pipeline, items, metric, progress=progress,
                              max_unreadable=det_config["Global"].get("max_unreadable", 0.05))
    # the user's models, not their conversions
    return {"det_model_dir": resolve_path(det_config["Global"]["model_dir"]),
            "rec_model_dir": resolve_path(rec_config["Global"]["model_dir"]), **result,
            "backend": {"det": det_info, "rec": rec_info}, "cpu": cpu.summary(), "peer": peer}
