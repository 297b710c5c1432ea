"""Datasets in PaddleOCR's label format, run through PaddleOCR's own transforms.

Label lines are `relative/path<TAB>label`: for det the label is a JSON list of
{"transcription", "points"} (transcription '###' = don't care), for rec it is
the text. We parse labels ourselves (so a bad line is reported as file:line and
an unreadable image is skipped and counted instead of silently replaced by a
random other sample, as ppocr's SimpleDataSet does), then apply the ppocr
transform list from the config to build the model input.
"""
import json
import logging
import os
import sys

import numpy as np

from .errors import UserError

log = logging.getLogger("ocrslim")


def import_ppocr():
    """Make the `ppocr` package inside the installed paddleocr wheel importable."""
    import paddleocr
    root = os.path.dirname(os.path.abspath(paddleocr.__file__))
    if root not in sys.path:
        sys.path.append(root)
    import ppocr  # noqa: F401


def _check_det_label(text, where):
    try:
        items = json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(f"{where}: det label is not valid JSON ({err.msg}); expected "
                        '[{"transcription": "...", "points": [[x,y],...]}]')
    if not isinstance(items, list):
        raise UserError(f"{where}: det label must be a JSON list of boxes")
    for item in items:
        pts = item.get("points") if isinstance(item, dict) else None
        if not (isinstance(pts, list) and len(pts) >= 3
                and all(isinstance(p, list) and len(p) == 2 for p in pts)
                and "transcription" in item):
            raise UserError(f"{where}: each det box needs 'transcription' and 'points' "
                            "(a list of at least 3 [x, y] pairs)")
    return items


def read_labels(data_dir, label_files, model_type):
    """Parse label files into [(image_path, label)], failing with file:line on bad lines."""
    samples = []
    for label_file in label_files:
        if not os.path.isfile(label_file):
            raise UserError(f"label file not found: {label_file} (generate the demo data with "
                            "`make data` or fix Eval.dataset.label_file_list)")
        with open(label_file, encoding="utf-8-sig") as f:
            for number, line in enumerate(f, 1):
                line = line.rstrip("\r\n")
                if not line.strip():
                    continue
                where = f"{label_file}:{number}"
                if "\t" not in line:
                    raise UserError(f"{where}: expected 'image_path<TAB>label', found no tab")
                path, label = line.split("\t", 1)
                if model_type == "det":
                    _check_det_label(label, where)
                samples.append((os.path.join(data_dir, path), label))
    if not samples:
        raise UserError(f"dataset is empty: no samples in {', '.join(label_files)}")
    return samples


class Samples:
    """Indexable samples: load(i) returns the transformed dict, or None if unreadable."""

    def __init__(self, data_dir, label_files, transforms, model_type):
        import_ppocr()
        from ppocr.data.imaug import create_operators
        self.items = read_labels(data_dir, label_files, model_type)
        # KeepKeys turns the sample into a list; we keep the dict so the metric
        # can read labels by name. Rec label encoders (upstream configs have them) need the
        # character dict and max_text_length, and their output is not read: the metric
        # compares the raw text. DetLabelEncode stays: det augmentations crop its polygons.
        transforms = [t for t in transforms if not any(name == "KeepKeys" or (
            name.endswith("LabelEncode") and name != "DetLabelEncode") for name in t)]
        self.ops = create_operators(transforms)
        self.model_type = model_type

    def __len__(self):
        return len(self.items)

    def load(self, index):
        from ppocr.data.imaug import transform
        path, label = self.items[index]
        try:
            with open(path, "rb") as f:
                data = {"img_path": path, "label": label, "image": f.read()}
            out = transform(data, self.ops)
        except Exception as err:  # ppocr ops assert on undecodable images
            log.debug("skip %s: %r", path, err)
            return None
        if out is None:
            return None
        out["text"] = label  # rec metric compares against the raw text
        return out


def batches(samples, batch_size, indices=None):
    """Yield (list_of_sample_dicts, n_skipped) over `indices`, skipping unreadable images."""
    indices = range(len(samples)) if indices is None else indices
    batch, skipped = [], 0
    for i in indices:
        item = samples.load(i)
        if item is None:
            skipped += 1
            continue
        batch.append(item)
        if len(batch) == batch_size:
            yield batch, skipped
            batch, skipped = [], 0
    if batch or skipped:
        yield batch, skipped


def stack_images(batch):
    return np.stack([b["image"] for b in batch]).astype("float32")


def build_samples(section, model_type):
    """Samples from a config section like config['Eval']."""
    ds = section["dataset"]
    return Samples(ds["data_dir"], ds["label_file_list"], ds["transforms"], model_type)


def train_reader(samples, batch_size, feed_name, seed=0, rank=0, world=1):
    """A callable returning an iterator of feed dicts, as ACT wants.

    Distillation and calibration need images only, so labels are dropped. Each call is one
    epoch with a new shuffle; with several cards each rank reads its shard.
    """
    epoch = [0]

    def reader():
        order = np.random.default_rng(seed + epoch[0]).permutation(len(samples))
        epoch[0] += 1
        for batch, _ in batches(samples, batch_size, indices=order[rank::world]):
            if len(batch) == batch_size:  # fixed shapes: drop the ragged tail
                yield {feed_name: stack_images(batch)}
    return reader


def config_train_reader(config, task_name, feed_name, rank=0, world=1):
    """train_reader over config['Train']: what run.py calibrates and trains on, and
    what bench.py --peer calibrates on (same images, same shuffle)."""
    train = build_samples(config["Train"], task_name)
    return train_reader(train, config["Train"]["loader"]["batch_size_per_card"], feed_name,
                        seed=config["Global"]["seed"], rank=rank, world=world)


def calibration_batches(reader, batch_nums):
    """The first `batch_nums` feeds of `reader` (more epochs when one is too short)."""
    out = []
    while len(out) < batch_nums:
        got = False
        for feed in reader():
            out.append(feed)
            got = True
            if len(out) == batch_nums:
                break
        if not got:
            raise UserError("no full training batch: lower Train.loader.batch_size_per_card or add images")
    return out
