"""One logger for the project, and plain-text tables for summaries."""
import logging
import os

os.environ.setdefault("GLOG_minloglevel", "2")  # silence paddle's C++ info logs


def setup_logging(level=logging.INFO):
    log = logging.getLogger("ocrslim")
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("[%(asctime)s] %(message)s", "%H:%M:%S"))
        log.addHandler(handler)
        log.propagate = False
    log.setLevel(level)
    return log


def table(header, rows, title=None):
    """Render rows as an aligned text table."""
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    fmt = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths))
    out = ([title] if title else []) + [fmt(cells[0]), line] + [fmt(r) for r in cells[1:]]
    return "\n".join(out)
