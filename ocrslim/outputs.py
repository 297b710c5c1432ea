"""Where results go: refuse unsafe save dirs, and publish results atomically.

A run writes everything into a hidden sibling folder and renames it to
save_dir only once the model, config and report are complete, so an
interrupted run never leaves a half-written model that looks finished.
"""
import json
import os
import shutil
import tempfile

from .errors import UserError


def is_inside(path, parent):
    path, parent = os.path.realpath(path), os.path.realpath(parent)
    return path == parent or path.startswith(parent.rstrip(os.sep) + os.sep)


def check_save_dir(save_dir, model_dirs, overwrite=False):
    """Refuse a save_dir that is (inside) a model dir, or non-empty without --overwrite."""
    if not save_dir:
        raise UserError("--save_dir is required: the folder that will receive the compressed model")
    for model_dir in model_dirs:
        if model_dir and is_inside(save_dir, model_dir):
            raise UserError(f"save_dir {save_dir} is inside the model dir {model_dir}: "
                            "choose a folder outside it (the model dir is never written)")
    if os.path.isfile(save_dir):
        raise UserError(f"save_dir {save_dir} is a file: choose a folder")
    if os.path.isdir(save_dir) and os.listdir(save_dir) and not overwrite:
        raise UserError(f"save_dir {save_dir} is not empty: choose another folder or pass --overwrite")


def staging_dir(save_dir):
    """A fresh hidden folder next to save_dir (same filesystem, so rename is atomic)."""
    parent = os.path.dirname(os.path.abspath(save_dir)) or "."
    os.makedirs(parent, exist_ok=True)
    name = "." + os.path.basename(os.path.abspath(save_dir)) + ".partial-"
    return tempfile.mkdtemp(prefix=name, dir=parent)


def publish(staging, save_dir):
    """Move the finished staging folder to save_dir, replacing an old one only now."""
    old = None
    if os.path.exists(save_dir):
        old = staging + ".old"
        os.rename(save_dir, old)
    os.rename(staging, save_dir)
    if old:
        shutil.rmtree(old, ignore_errors=True)


def write_text(path, text):
    """Write via a .tmp file and rename, so a reader never sees half a file."""
    tmp = path + ".tmp"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def write_json(path, data):
    write_text(path, json.dumps(data, indent=2, ensure_ascii=False))
