"""What differs between det and rec, kept in one small registry keyed by model_type.

Each task knows how to build its post-processing and metric from the config,
how to turn one batch of model outputs into metric updates, and how to check
that a model fits the config before any heavy work starts.
"""
import logging

from .config import resolve_path
from .data import import_ppocr
from .errors import UserError
from .metrics import DetMetric, RecMetric

log = logging.getLogger("ocrslim")


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

    def update(self, outputs, batch):
        import numpy as np
        shapes = np.stack([b["shape"] for b in batch])
        boxes = self.post({"maps": outputs[0]}, shapes)
        for item, found in zip(batch, boxes):
            gt = [g for g in _det_gt(item["text"])]
            self.metric.update([g[0] for g in gt], [g[1] for g in gt], list(found["points"]))


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

    def update(self, outputs, batch):
        decoded = self.post(outputs[0])
        self.metric.update([text for text, _ in decoded], [b["text"] for b in batch])


TASKS = {"det": DetTask, "rec": RecTask}


def get_task(config):
    model_type = config["Global"].get("model_type")
    if model_type not in TASKS:
        raise UserError(f"unknown Global.model_type {model_type!r}: use one of {', '.join(TASKS)}")
    return TASKS[model_type]
