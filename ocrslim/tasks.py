"""What differs between det and rec, kept in one small registry keyed by model_type.

Each task knows how to build its post-processing and metric from the config,
how to turn one batch of model outputs into metric updates, and how to check
that a model fits the config before any heavy work starts.
"""
import logging
import os

from .config import resolve_path
from .data import import_ppocr
from .errors import UserError
from .metrics import DetMetric, RecMetric

log = logging.getLogger("ocrslim")


NO_BOXES = ("the Eval labels hold no box to find (every transcription is '###' or '*', or no box at all), so "
            "recall and hmean are not defined: label the text boxes")


class DetTask:
    name = "det"
    main_indicator = "hmean"
    required = ("Eval.dataset.data_dir", "Eval.dataset.label_file_list", "Eval.dataset.transforms")

    def __init__(self, config):
        import_ppocr()
        from ppocr.postprocess import build_post_process
        params = {"name": "DBPostProcess", **config.get("PostProcess", {})}
        self.post = build_post_process(params)
        self.metric = DetMetric()

    def check_model(self, program, fetch_vars):
        shape = list(fetch_vars[0].shape)
        if len(shape) != 4 or shape[1] != 1:
            raise UserError(f"model output {fetch_vars[0].name} has shape {shape}, but a det (DB) model "
                            "outputs a [N,1,H,W] probability map: is Global.model_type right?")

    @staticmethod
    def check_config(config, sections=("Eval", "Test")):
        """Det images keep their own sizes, so an eval batch cannot stack two of them."""
        for name in sections:
            batch = ((config.get(name) or {}).get("loader") or {}).get("batch_size_per_card")
            if batch not in (None, 1):
                raise UserError(f"{name}.loader.batch_size_per_card is {batch!r}: det evaluation runs one image at "
                                "a time (each keeps its own size), so set it to 1")

    @staticmethod
    def check_data(config, samples):
        if not any(not ignored for _, label in samples.items for _, ignored in _det_gt(label)):
            raise UserError(NO_BOXES)

    def check_result(self):  # also when the images with boxes were the ones that failed to load
        if self.metric.gt_care == 0:
            raise UserError(NO_BOXES)

    @staticmethod
    def warn_result(config, result):
        pass

    def update(self, outputs, batch):
        """Score one batch; returns per item its image, cared ground truth and the boxes found (the
        predictions this metric used, which bench keeps for the report's pictures)."""
        import numpy as np
        shapes = np.stack([b["shape"] for b in batch])
        boxes = self.post({"maps": outputs[0]}, shapes)
        found_per_item = []
        for item, found in zip(batch, boxes):
            gt = [g for g in _det_gt(item["text"])]
            self.metric.update([g[0] for g in gt], [g[1] for g in gt], list(found["points"]))
            found_per_item.append({"image": item.get("img_path"), "gt": [_ints(g[0]) for g in gt if not g[1]],
                                   "boxes": [_ints(box) for box in found["points"]]})
        return found_per_item


def _ints(points):
    """[[x, y], ...] as plain ints (pixels of the original image), for JSON."""
    return [[int(round(float(x))), int(round(float(y)))] for x, y in points]


def _det_gt(label):
    import json
    for box in json.loads(label):
        yield box["points"], box["transcription"] in ("###", "*")


class RecTask:
    name = "rec"
    main_indicator = "acc"
    required = DetTask.required + ("Global.character_dict_path",)

    def __init__(self, config):
        import_ppocr()
        from ppocr.postprocess import build_post_process
        g = config["Global"]
        self.dict_path = resolve_path(g["character_dict_path"])
        params = {"name": "CTCLabelDecode", **config.get("PostProcess", {}),
                  "character_dict_path": self.dict_path, "use_space_char": g.get("use_space_char", True)}
        self.post = build_post_process(params)
        m = config.get("Metric", {})
        self.metric = RecMetric(ignore_space=m.get("ignore_space", True), filter_text=m.get("filter_text", False))

    def check_model(self, program, fetch_vars):
        shape = list(fetch_vars[0].shape)
        if len(shape) != 3:
            raise UserError(f"model output {fetch_vars[0].name} has shape {shape}, but a CTC rec model outputs "
                            "[N,T,classes]: is Global.model_type right?")
        classes = shape[-1]
        # CTCLabelDecode adds the blank class (and ' ' when use_space_char).
        expected = len(self.post.character)
        if classes not in (-1, expected):
            raise UserError(f"dictionary {self.dict_path} gives {expected} classes (with blank/space) but the "
                            f"model outputs {classes}: use the dictionary the model was trained with, "
                            "or toggle Global.use_space_char")

    @staticmethod
    def check_config(config, sections=("Eval", "Test")):
        pass

    @staticmethod
    def check_data(config, samples):
        """Warn when Eval labels hold characters the dictionary lacks: those crops are never read right."""
        share, missing = dictionary_coverage(config, [label for _, label in samples.items])
        if missing:
            shown = " ".join(repr(c) for c in missing[:8])
            log.warning("%.0f%% of the Eval labels hold characters the dictionary %s lacks (%s%s): the model can "
                        "never read those crops right", 100 * (1 - share), config["Global"]["character_dict_path"],
                        shown, " ..." if len(missing) > 8 else "")

    def check_result(self):
        pass

    @staticmethod
    def warn_result(config, result):
        """An accuracy near zero on labels the dictionary covers: most likely a dictionary of the
        right length in another order (every decoded character is then a wrong one)."""
        share, _ = dictionary_coverage(config, None)
        if result["metrics"]["acc"] < 0.05 and share >= 0.5:
            log.warning("accuracy %.4f although the dictionary covers %.0f%% of the labels: is %s the dictionary the "
                        "model was trained with, in the same order?", result["metrics"]["acc"], 100 * share,
                        config["Global"]["character_dict_path"])

    def update(self, outputs, batch):
        """Score one batch; returns per crop its image, label and the text read (as DetTask.update)."""
        decoded = self.post(outputs[0])
        self.metric.update([text for text, _ in decoded], [b["text"] for b in batch])
        return [{"image": b.get("img_path"), "label": b["text"], "text": text} for b, (text, _) in zip(batch, decoded)]


def read_dictionary(path):
    """The characters of a rec dictionary file (one per line), as CTCLabelDecode reads them."""
    from .data import _text_lines
    resolved = resolve_path(path)
    if not resolved or not isinstance(resolved, str) or not os.path.isfile(resolved):
        raise UserError(f"Global.character_dict_path {path!r}: no such file (the dictionary the rec model was "
                        "trained with, one character per line)")
    return [line.rstrip("\r\n") for line in _text_lines(resolved)]


def dictionary_coverage(config, labels):
    """(share of labels whose every character is in the dictionary, the missing characters). The
    labels (Eval's when None) are compared as the metric compares them (Metric.ignore_space...)."""
    from .metrics import normalize_text
    g, m = config["Global"], config.get("Metric") or {}
    if labels is None:
        from .data import read_labels
        ds = config["Eval"]["dataset"]
        labels = [label for _, label in read_labels(ds["data_dir"], ds["label_file_list"], "rec")]
    chars = set(read_dictionary(g["character_dict_path"])) | ({" "} if g.get("use_space_char", True) else set())
    missing, covered = set(), 0
    for label in labels:
        text = normalize_text(label, m.get("ignore_space", True), False)
        lacking = set(text) - chars
        missing |= lacking
        covered += not lacking
    return covered / max(len(labels), 1), sorted(missing)


TASKS = {"det": DetTask, "rec": RecTask}


def get_task(config):
    model_type = config["Global"].get("model_type")
    if model_type not in TASKS:
        raise UserError(f"unknown Global.model_type {model_type!r}: use one of {', '.join(TASKS)}")
    return TASKS[model_type]
