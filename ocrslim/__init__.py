"""ocrslim: compress PaddleOCR det/rec inference models with PaddleSlim ACT.

Import this package before paddle. Paddle's libpaddle.so exports its own zlib
symbols; the system libz that Python's zlib module uses binds its internal
calls lazily, so after `import paddle` they resolve into paddle's copy and any
extension built with Cython >= 3.1 (which zlib-decompresses its string table
at import: sklearn, lxml, scipy >= 1.14, pyclipper 1.4) crashes in
inflateReset2. Calling each zlib entry point once here binds them to the
system libz first.
"""
import os as _os
import zlib as _zlib

# oneDNN keeps 1024 compiled kernels by default. FP32 and int8 det in one
# process over the 12 demo input shapes need more: each call rebuilt its
# kernels (FP32 det 70-90 ms instead of 35, int8 27-35 instead of 20). Read
# by oneDNN at its first use, so it must be set before paddle runs anything;
# the cache costs ~10 MB more. A value the user set is kept.
_os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "8192")


def _bind_zlib():
    data = _zlib.compress(b"ocrslim" * 64)
    _zlib.decompress(data)
    d = _zlib.decompressobj()
    d.decompress(data)
    d.flush()
    c = _zlib.compressobj()
    c.compress(b"x")
    c.flush()


_bind_zlib()


def load_predictor(save_dir, backend="auto", threads=2):
    """A ready predictor for a run.py output folder on this CPU (see backends.load_predictor)."""
    from .deploy.backends import load_predictor as load
    return load(save_dir, backend, threads)
