"""The way in: a registry keyed by model format (FORMATS), detect(path), and one module per format.

Every later step sees one thing: a Paddle 2.6 inference program plus its weights
(inference.pdmodel + inference.pdiparams), and a record of where it came from.

- pdmodel: a Paddle 2.x inference model folder, used as it is;
- pir_json: PaddleOCR 3.x / Paddle 3 (inference.json + inference.pdiparams),
  translated op by op (pir.py);
- onnx: an ONNX file, or a folder holding one (Baidu's PP-OCRv6), translated op
  by op (onnx_in.py).

A converted program never goes into the user's model folder: it is written once
per process into a private work folder, removed when the process ends.
An `inference.yml` beside the model (PaddleOCR 3.x's pre- and post-processing)
is read by yml.py.
"""
import atexit
import glob
import hashlib
import logging
import os
import shutil
import tempfile
import time

from ..errors import UserError

log = logging.getLogger("ocrslim")


def _pdmodel(path):
    return os.path.isdir(path) and bool(glob.glob(os.path.join(path, "*.pdmodel")))


def _pir_json(path):
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, "inference.json"))


def _onnx_files(path):
    if os.path.isfile(path):
        return [path] if path.endswith(".onnx") else []
    return sorted(glob.glob(os.path.join(path, "*.onnx"))) if os.path.isdir(path) else []


def _convert_pir(path, out_dir):
    from . import pir
    pir.convert(path, out_dir)


def _convert_onnx(path, out_dir):
    from . import onnx_in
    onnx_in.convert(onnx_file(path), out_dir)


class Format:
    def __init__(self, name, what, detect, convert, model_file):
        self.name, self.what, self.detect, self.convert, self.model_file = name, what, detect, convert, model_file


# In detection order: a folder with a .pdmodel is a Paddle 2.x model whatever else it holds.
FORMATS = {f.name: f for f in (
    Format("pdmodel", "Paddle 2.x inference model (inference.pdmodel + inference.pdiparams)", _pdmodel, None,
           lambda path: os.path.join(path, "inference.pdmodel")),
    Format("pir_json", "PaddleOCR 3.x / Paddle 3 model (inference.json + inference.pdiparams)", _pir_json,
           _convert_pir, lambda path: os.path.join(path, "inference.json")),
    Format("onnx", "ONNX model (a .onnx file, or a folder holding one)", lambda p: bool(_onnx_files(p)),
           _convert_onnx, lambda path: onnx_file(path)),
)}


def detect(path):
    """The format name of a model path; one error line naming what was found when none fits."""
    if not os.path.exists(path):
        raise UserError(f"model dir not found: {path}")
    for fmt in FORMATS.values():
        if fmt.detect(path):
            return fmt.name
    found = sorted(os.listdir(path))[:8] if os.path.isdir(path) else [os.path.basename(path)]
    raise UserError(f"{path} is not a model this tool reads (found: {', '.join(found) or 'nothing'}): give a "
                    "folder with inference.pdmodel + inference.pdiparams (Paddle 2.x), inference.json + "
                    "inference.pdiparams (PaddleOCR 3.x), or an .onnx file")


def onnx_file(path):
    """The one .onnx file of a path (the file itself, or the only one in a folder)."""
    files = _onnx_files(path)
    if len(files) != 1:
        raise UserError(f"{path} holds {len(files)} .onnx files: pass the one to use as --model_dir")
    return files[0]


def source(path):
    """The record of where a model came from: {"format", "path", "model_file", "sha256"} (of the
    program file, to tell two versions apart in reports)."""
    fmt = FORMATS[detect(path)]
    model_file = fmt.model_file(path)
    out = {"format": fmt.name, "what": fmt.what, "path": os.path.abspath(path)}
    if os.path.isfile(model_file):
        with open(model_file, "rb") as f:
            out.update(model_file=os.path.abspath(model_file), sha256=hashlib.sha256(f.read()).hexdigest())
    return out


class Converted:
    """Conversions of this process: each source model converted once, into a private work folder
    that is removed at exit (a converted program never goes into the user's model folder)."""

    def __init__(self):
        self.root, self.done = None, {}

    def work_dir(self):
        """This process's private work folder (converted programs, dictionaries from yml files)."""
        if self.root is None:
            self.root = tempfile.mkdtemp(prefix="ocrslim-converted-")
            atexit.register(shutil.rmtree, self.root, True)
        return self.root

    def get(self, path):
        key = self._key(path)
        if key not in self.done:
            self.done[key] = self._convert(path)
        return self.done[key]

    @staticmethod
    def _key(path):
        real = os.path.realpath(path)
        stamp = [(f, os.stat(f).st_mtime_ns, os.stat(f).st_size)
                 for f in sorted(glob.glob(os.path.join(real, "*")) if os.path.isdir(real) else [real])]
        return real, tuple(stamp)

    def _convert(self, path):
        fmt = FORMATS[detect(path)]
        out = tempfile.mkdtemp(prefix=f"{fmt.name}-", dir=self.work_dir())
        t = time.time()
        fmt.convert(path, out)
        log.info("converted %s (%s) to a Paddle 2.6 program in %.1fs", path, fmt.what, time.time() - t)
        return out


CONVERTED = Converted()


def as_pdmodel(path):
    """A Paddle 2.x model folder for `path` in any format: the folder itself for pdmodel, else
    its conversion (done once per process)."""
    return path if detect(path) == "pdmodel" else CONVERTED.get(path)
