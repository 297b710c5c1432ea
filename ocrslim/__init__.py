"""ocrslim: compress PaddleOCR det/rec inference models with PaddleSlim ACT.

Import this package before paddle. Paddle's libpaddle.so exports its own zlib
symbols; the system libz that Python's zlib module uses binds its internal
calls lazily, so after `import paddle` they resolve into paddle's copy and any
extension built with Cython >= 3.1 (which zlib-decompresses its string table
at import: sklearn, lxml, scipy >= 1.14, pyclipper 1.4) crashes in
inflateReset2. Calling each zlib entry point once here binds them to the
system libz first.
"""
import zlib as _zlib


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
