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


def _text_lines(path):
    """The lines of a UTF-8 text file; one error line for a file that cannot be read or decoded."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise UserError(f"cannot read {path}: {err.strerror}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise UserError(f"{path}:{line} is not UTF-8 text (byte {err.start}): save the file as UTF-8")
    return text.splitlines()


def read_labels(data_dir, label_files, model_type, section="Eval"):
    """Parse label files into [(image_path, label)], failing with file:line on bad lines."""
    samples = []
    if not isinstance(label_files, list) or not all(isinstance(p, str) for p in label_files):
        raise UserError(f"{section}.dataset.label_file_list must be a list of label file paths, not {label_files!r}")
    if not isinstance(data_dir, str) or not os.path.isdir(data_dir):
        raise UserError(f"{section}.dataset.data_dir {data_dir!r} is not a folder: set it to the folder the "
                        "label file's image paths are relative to")
    for label_file in label_files:
        if not os.path.isfile(label_file):
            raise UserError(f"{section} label file not found: {label_file} (generate the demo data with "
                            f"`make data` or fix {section}.dataset.label_file_list)")
        for number, line in enumerate(_text_lines(label_file), 1):
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


def operators(transforms, where, drop=(), keep=()):
    """ppocr operators for a transform list, without what only shapes training labels: KeepKeys
    turns the sample into a list (the metric reads labels by name from the dict), and the rec
    label encoders of upstream and inference.yml lists need the dictionary and max_text_length
    while their output is never read (the metric compares the raw text). `keep`: encoders to keep;
    `drop`: more ops to leave out."""
    from ppocr.data.imaug import create_operators
    transforms = [t for t in transforms or [] if not any(
        name == "KeepKeys" or name in drop or (name.endswith("LabelEncode") and name not in keep) for name in t)]
    try:
        return create_operators(transforms)
    except Exception as err:  # ppocr builds ops by name from the config: a typo is a user error
        raise UserError(f"{where}: {type(err).__name__}: {err}")


class Samples:
    """Indexable samples: load(i) returns the transformed dict, or None if unreadable (the reason
    is kept in failures[i])."""

    def __init__(self, data_dir, label_files, transforms, model_type, section="Eval", max_unreadable=0.05):
        import_ppocr()
        self.items = read_labels(data_dir, label_files, model_type, section)
        # DetLabelEncode stays: det augmentations crop its polygons
        self.ops = operators(transforms, f"{section}.dataset.transforms", keep=("DetLabelEncode",))
        self.model_type, self.section, self.max_unreadable = model_type, section, max_unreadable
        self.failures = {}

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
            self.failures[index] = (f"{type(err).__name__}: {err}" if str(err) else type(err).__name__)
            log.debug("skip %s: %r", path, err)
            return None
        if out is None:
            self.failures[index] = "a transform dropped it (an image it could not decode?)"
            return None
        out["text"] = label  # rec metric compares against the raw text
        return out

    def describe(self, indices, limit=3):
        """'path (reason), ...' for the first few of `indices`."""
        named = [f"{self.items[i][0]} ({self.failures.get(i, 'unreadable')})" for i in list(indices)[:limit]]
        more = len(indices) - limit
        return "; ".join(named) + (f"; and {more} more" if more > 0 else "")

    def check_unreadable(self, bad, done=False):
        """Stop when more than max_unreadable of the items failed to load; at the end (done), name
        the skipped ones in a warning. bad: indices that failed so far."""
        if len(bad) > self.max_unreadable * len(self):
            raise UserError(f"{len(bad)} of {len(self)} {self.section} images could not be loaded, more than "
                            f"Global.max_unreadable ({self.max_unreadable:.0%}) allows: {self.describe(bad)}. "
                            f"Fix {self.section}.dataset.data_dir or the label file")
        if done and bad:
            log.warning("skipped %d of %d %s images that could not be loaded: %s", len(bad), len(self),
                        self.section, self.describe(bad))

    def check_sample(self, batch_size, count=4):
        """Before any work: every image file exists (up to max_unreadable may be missing), and a
        few spread over the set load through the transforms (not one of them: an error) into
        model inputs that a batch of batch_size can stack."""
        missing = [i for i, (path, _) in enumerate(self.items) if not os.path.isfile(path)]
        for i in missing:
            self.failures[i] = "no such file"
        self.check_unreadable(missing)
        present = [i for i in range(len(self)) if i not in set(missing)]
        picked = present[::max(1, len(present) // count)][:count]
        loaded = {i: self.load(i) for i in picked}
        bad = [i for i, item in loaded.items() if item is None]
        if picked and len(bad) == len(picked):
            raise UserError(f"none of {len(picked)} {self.section} images tried could be loaded through "
                            f"{self.section}.dataset.transforms: {self.describe(bad)}")
        self._check_inputs([item["image"] for item in loaded.values() if item is not None], batch_size)
        if missing or bad:
            log.warning("%s: %d of %d images are missing or did not load: %s", self.section,
                        len(missing) + len(bad), len(self), self.describe(missing + bad))

    def _check_inputs(self, images, batch_size):
        where = f"{self.section}.dataset.transforms"
        for image in images:
            if not (isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[0] in (1, 3)):
                shape = getattr(image, "shape", type(image).__name__)
                raise UserError(f"{where} give images of shape {shape}, not the channels-first (CHW) arrays a "
                                "model reads: end the list with NormalizeImage and ToCHWImage (see configs/ppocrv4)")
        shapes = sorted({image.shape for image in images})
        if batch_size > 1 and len(shapes) > 1:
            raise UserError(f"{where} give images of different sizes ({shapes[0]} and {shapes[-1]}), which a batch "
                            f"of {batch_size} cannot stack: resize them to one size or set "
                            f"{self.section}.loader.batch_size_per_card=1")


def batches(samples, batch_size, indices=None):
    """Yield (list_of_sample_dicts, skipped indices) over `indices`, skipping unreadable images."""
    indices = range(len(samples)) if indices is None else indices
    batch, skipped = [], []
    for i in indices:
        item = samples.load(i)
        if item is None:
            skipped.append(i)
            continue
        batch.append(item)
        if len(batch) == batch_size:
            yield batch, skipped
            batch, skipped = [], []
    if batch or skipped:
        yield batch, skipped


def stack_images(batch):
    try:
        return np.stack([b["image"] for b in batch]).astype("float32")
    except ValueError:  # check_sample saw only a few: sizes differ further on
        shapes = sorted({tuple(np.shape(b["image"])) for b in batch})
        raise UserError(f"a batch holds images of different sizes ({shapes[0]} and {shapes[-1]}): resize them to "
                        "one size in the dataset's transforms or set loader.batch_size_per_card=1") from None


def build_samples(config, name, model_type):
    """Samples from the config section `name` (Eval, Train, Test)."""
    ds = config[name]["dataset"]
    return Samples(ds["data_dir"], ds["label_file_list"], ds["transforms"], model_type, name,
                   config["Global"].get("max_unreadable", 0.05))


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
    train = build_samples(config, "Train", task_name)
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
