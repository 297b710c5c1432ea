"""inference.yml (PaddleOCR 3.x / PaddleX) -> config settings, each with its source.

A PaddleOCR 3.x model carries its pre- and post-processing in inference.yml: the
Eval transforms (resize limits, normalisation), the DB thresholds, and for rec
the dictionary (only there: `PostProcess.character_dict`). config.load_config
puts them between the built-in defaults and what the user wrote: a value in the
config file (or its _BASE_ files) or in -o wins over the yml, the yml wins over
config.DEFAULTS.
"""
import hashlib
import os

import yaml

from ..errors import UserError

NAME = "inference.yml"


def find(model_path):
    """The inference.yml beside a model (in its folder, or beside its .onnx file), or None."""
    if not isinstance(model_path, str) or not os.path.exists(model_path):
        return None
    folder = model_path if os.path.isdir(model_path) else os.path.dirname(model_path)
    path = os.path.join(folder, NAME)
    return path if os.path.isfile(path) else None


def read(path):
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise UserError(f"cannot read {path}: {str(err).splitlines()[0]} (delete or fix it: the model's "
                        "pre- and post-processing come from it)")
    if not isinstance(data, dict):
        raise UserError(f"{path} is not a PaddleOCR inference.yml (a mapping with PreProcess / PostProcess)")
    return data


def settings(path, work_dir):
    """{dotted config key: value} that `path` (an inference.yml) prescribes. The rec dictionary
    is written as a file into work_dir (its name holds a hash of the content)."""
    data = read(path)
    out = {}
    transforms = (data.get("PreProcess") or {}).get("transform_ops")
    if isinstance(transforms, list) and transforms:
        out["Eval.dataset.transforms"] = transforms  # label encoders and KeepKeys are dropped by data.Samples
    post = data.get("PostProcess") or {}
    for key, value in post.items():
        if key != "character_dict":
            out[f"PostProcess.{key}"] = value
    chars = post.get("character_dict")
    if chars:
        out["Global.character_dict_path"] = write_dictionary(chars, work_dir)
    return out


def write_dictionary(chars, work_dir):
    """The yml's character list as a dictionary file (one character per line, as ppocr reads it)."""
    if not isinstance(chars, list) or not all(isinstance(c, str) for c in chars):
        raise UserError("inference.yml PostProcess.character_dict must be a list of characters")
    text = "\n".join(chars) + "\n"
    name = f"dict-{hashlib.sha256(text.encode('utf-8')).hexdigest()[:12]}.txt"
    path = os.path.join(work_dir, name)
    if not os.path.isfile(path):
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(path + ".tmp", path)
    return path
