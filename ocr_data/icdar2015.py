#!/usr/bin/env python
"""Convert the official ICDAR2015 (Challenge 4) ground truth to PaddleOCR labels.

Usage:
  python ocr_data/icdar2015.py \\
      --det_gt_dir ocr_data/icdar2015/Challenge4_Test_Task1_GT \\
      --det_img_dir ocr_data/icdar2015/ch4_test_images \\
      --det_out_label ocr_data/icdar2015/det/test.txt \\
      --rec_gt ocr_data/icdar2015/Challenge4_Test_Task3_GT.txt \\
      --rec_img_dir ocr_data/icdar2015/ch4_test_word_images_gt \\
      --rec_out_label ocr_data/icdar2015/rec/test.txt

Detection: every gt_img_N.txt in --det_gt_dir (lines
"x1,y1,x2,y2,x3,y3,x4,y4,transcription", the transcription may contain commas,
"###" = don't care; UTF-8, BOM allowed) becomes one line for img_N.jpg:
  "<image path>\\t[{"transcription": "...", "points": [[x1,y1],...,[x4,y4]]}, ...]"
Recognition: gt.txt lines 'word_1.png, "Genaxis Theatre"' (\\" and \\\\ escapes,
BOM allowed) become "<image path>\\tGenaxis Theatre".

Image paths in the written labels are relative to the directory of that label
file, so use that directory as the config's data_dir (e.g.
Eval.dataset.data_dir: ocr_data/icdar2015/det for ocr_data/icdar2015/det/test.txt,
whose lines start with ../ch4_test_images/).

Two more operations work on PaddleOCR-format labels (from this converter or
from anywhere else), chosen by a first word; without one the flags above
convert the official files (`convert` may also be written explicitly):

  # cut one rec crop per legible (non-###) det box: OUT_DIR/<image stem>_<k>.png
  python ocr_data/icdar2015.py crop --det_label DATA/det/train.txt \\
      --out_dir DATA/rec/crops --out_label DATA/rec/train.txt [--overwrite]

  # fixed train/dev split by seeded hash of the image file name
  python ocr_data/icdar2015.py split --det_label SRC/det/train.txt \\
      [--rec_label SRC/rec/train.txt] --out ocr_data/icdar2015 \\
      [--seed 0] [--dev_percent 20] [--overwrite]

crop: k is the 0-based index of the box among all boxes of its image (### and
degenerate boxes use up their number too, so names are stable). A box is cut
with a perspective warp of its 4 points (top-left, top-right, bottom-right,
bottom-left) onto a rectangle as wide as its longer top/bottom edge and as
high as its longer left/right edge, truncated to whole pixels (cv2, cubic,
replicated border); a crop at
least 1.5 times as high as wide is turned 90 degrees counter-clockwise, as
PaddleOCR does. Boxes with three collinear corners (zero area) are skipped and
counted. The rec label lines are "<crop path>\\t<transcription>".

split: an image goes to dev when
  int(sha256(f"{seed}:{image file name}").hexdigest()[:16], 16) / 16**16 < dev_percent / 100
(file name = basename, e.g. img_61.jpg). It writes OUT/det/{train,dev}.txt and,
with --rec_label, OUT/rec/{train,dev}.txt; a crop named <image stem>_<k>.<ext>
goes with its source image. Nothing is copied: image paths are rewritten
relative to the new label file's folder (data_dir = OUT/det or OUT/rec). The
dev split is for evaluation only: never calibrate or train on it.
"""
import argparse
import hashlib
import json
import math
import os
import re
import sys
from pathlib import Path

DONT_CARE = "###"
_GT_NAME = re.compile(r"^gt_(img_(\d+))\.txt$", re.IGNORECASE)
_IMG_EXTS = (".jpg", ".JPG", ".jpeg", ".png", ".PNG")


def _fail(msg):
    raise SystemExit(f"error: {msg}")


def _read_lines(path):
    try:
        with open(path, encoding="utf-8-sig") as f:  # strips a BOM if present
            return f.read().splitlines()
    except UnicodeDecodeError as e:
        _fail(f"{path}: not UTF-8 ({e.reason} at byte {e.start})")
    except OSError as e:
        _fail(f"{path}: {e.strerror}")


def _rel(path, label_file):
    """`path` relative to the directory of `label_file`, with / separators."""
    rel = os.path.relpath(os.path.abspath(path), os.path.dirname(os.path.abspath(label_file)))
    return rel.replace(os.sep, "/")


def _write_atomic(path, lines):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        for ln in lines:
            f.write(ln + "\n")
    os.replace(tmp, path)


def parse_det_line(line, where):
    """'x1,y1,...,x4,y4,transcription' -> {"transcription", "points"}."""
    parts = line.split(",", 8)
    if len(parts) < 9:
        _fail(f"{where}: expected 8 coordinates and a transcription, got {line!r}")
    try:
        coords = [int(round(float(v))) for v in parts[:8]]
    except ValueError:
        _fail(f"{where}: non-numeric coordinate in {line!r}")
    text = parts[8].strip().replace("\t", " ")
    if text == "":
        _fail(f"{where}: empty transcription (use ### for don't care) in {line!r}")
    return {"transcription": text, "points": [coords[i:i + 2] for i in range(0, 8, 2)]}


def parse_rec_line(line, where):
    """'word_1.png, "Genaxis Theatre"' -> ("word_1.png", "Genaxis Theatre")."""
    name, sep, rest = line.partition(",")
    name, rest = name.strip(), rest.strip()
    if not sep or not name:
        _fail(f"{where}: expected 'image, \"text\"', got {line!r}")
    if len(rest) < 2 or rest[0] != '"' or rest[-1] != '"':
        _fail(f"{where}: transcription must be in double quotes, got {line!r}")
    body, out, i = rest[1:-1], [], 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body) and body[i + 1] in '"\\':
            out.append(body[i + 1])
            i += 2
            continue
        if c == '"':
            _fail(f"{where}: unescaped double quote inside the transcription in {line!r}")
        out.append(c)
        i += 1
    text = "".join(out).replace("\t", " ")
    if text == "":
        _fail(f"{where}: empty transcription in {line!r}")
    return name, text


def _find_image(img_dir, stem):
    for ext in _IMG_EXTS:
        p = Path(img_dir) / (stem + ext)
        if p.is_file():
            return p
    return None


def convert_det(gt_dir, img_dir, out_label):
    gt_dir, img_dir = Path(gt_dir), Path(img_dir)
    if not gt_dir.is_dir():
        _fail(f"--det_gt_dir {gt_dir} is not a directory")
    if not img_dir.is_dir():
        _fail(f"--det_img_dir {img_dir} is not a directory")
    gts = []
    for p in gt_dir.iterdir():
        m = _GT_NAME.match(p.name)
        if m and p.is_file():
            gts.append((int(m.group(2)), m.group(1), p))
    if not gts:
        _fail(f"no gt_img_N.txt files in {gt_dir}")
    lines, n_boxes, n_ignored = [], 0, 0
    for _, stem, p in sorted(gts):
        img = _find_image(img_dir, stem)
        if img is None:
            _fail(f"{p}: image {stem}.jpg not found in {img_dir}")
        boxes = []
        for no, line in enumerate(_read_lines(p), 1):
            if line.strip():
                boxes.append(parse_det_line(line.strip(), f"{p}:{no}"))
        n_boxes += len(boxes)
        n_ignored += sum(b["transcription"] == DONT_CARE for b in boxes)
        lines.append(_rel(img, out_label) + "\t" + json.dumps(boxes, ensure_ascii=False))
    _write_atomic(out_label, lines)
    return {"label": str(out_label), "images": len(lines), "boxes": n_boxes, "ignored": n_ignored}


def convert_rec(gt_file, img_dir, out_label):
    gt_file = Path(gt_file)
    if not gt_file.is_file():
        _fail(f"--rec_gt {gt_file} is not a file")
    img_dir = Path(img_dir) if img_dir else gt_file.parent
    if not img_dir.is_dir():
        _fail(f"--rec_img_dir {img_dir} is not a directory")
    lines = []
    for no, line in enumerate(_read_lines(gt_file), 1):
        if not line.strip():
            continue
        name, text = parse_rec_line(line.strip(), f"{gt_file}:{no}")
        img = img_dir / name
        if not img.is_file():
            _fail(f"{gt_file}:{no}: image {name} not found in {img_dir}")
        lines.append(_rel(img, out_label) + "\t" + text)
    if not lines:
        _fail(f"{gt_file}: no word labels")
    _write_atomic(out_label, lines)
    return {"label": str(out_label), "words": len(lines)}


# ------------------------------------------------ PaddleOCR-format labels

# k of the first box of an image in <image stem>_<k>.png: 0, as in the shared PaddleOCR-format copy
CROP_INDEX_START = 0
_CROP_NAME = re.compile(r"^(.+)_(\d+)\.[A-Za-z0-9]+$")


def _same_file(a, b):
    return os.path.realpath(a) == os.path.realpath(b)


def _label_rows(label_file, what):
    """Non-empty lines of a PaddleOCR label file -> [(where, image path as written, label)]."""
    label_file = Path(label_file)
    if not label_file.is_file():
        _fail(f"{what} {label_file} is not a file")
    rows = []
    for no, line in enumerate(_read_lines(label_file), 1):
        if not line.strip():
            continue
        where = f"{label_file}:{no}"
        path, sep, label = line.partition("\t")
        if not sep or not path.strip():
            _fail(f"{where}: expected 'image path<TAB>label', got {line[:80]!r}")
        rows.append((where, path, label))
    if not rows:
        _fail(f"{label_file}: no labels")
    return rows


def _resolve(label_file, path):
    """An image path from a label line, as a path usable from here (relative to the label's folder)."""
    return Path(os.path.dirname(os.path.abspath(label_file))) / path


def _base(path):
    return path.replace("\\", "/").rsplit("/", 1)[-1]


def _parse_det_boxes(label, where):
    try:
        boxes = json.loads(label)
    except json.JSONDecodeError as e:
        _fail(f"{where}: det label is not valid JSON ({e.msg})")
    if not isinstance(boxes, list):
        _fail(f"{where}: det label must be a JSON list of boxes")
    for i, b in enumerate(boxes, 1):
        ok = isinstance(b, dict) and isinstance(b.get("transcription"), str)
        pts = b.get("points") if ok else None
        if not (ok and isinstance(pts, list) and all(
                isinstance(p, list) and len(p) == 2
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                        for v in p) for p in pts)):
            _fail(f"{where}: box {i} needs a 'transcription' string and 'points' [[x, y], ...]")
    return boxes


def _import_cv2():
    try:
        import cv2
    except ImportError:
        _fail("cutting crops needs OpenCV: pip install opencv-python-headless")
    return cv2


def _degenerate(pts):
    """True when three of the 4 corners are collinear (this includes zero area and repeated corners)."""
    for i in range(4):
        (ax, ay), (bx, by), (cx, cy) = pts[i], pts[(i + 1) % 4], pts[(i + 2) % 4]
        if abs((bx - ax) * (cy - ay) - (by - ay) * (cx - ax)) < 1e-6:
            return True
    return False


def crop_box(img, points):
    """Perspective crop of a 4-point box (top-left, top-right, bottom-right, bottom-left).

    The output is as wide as the longer of the top and bottom edges and as high
    as the longer of the left and right edges (truncated to whole pixels, at
    least 1 px, as PaddleOCR's pipeline crops what the rec model reads); a crop
    at least 1.5 times as high as wide is rotated 90 degrees counter-clockwise.
    Returns None for a degenerate box (three collinear corners).
    """
    import numpy as np
    cv2 = _import_cv2()
    pts = [(float(x), float(y)) for x, y in points]
    if len(pts) != 4:
        raise ValueError(f"a crop box needs 4 points, got {len(pts)}")
    if _degenerate(pts):
        return None
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = pts
    w = max(1, int(max(math.hypot(x1 - x0, y1 - y0), math.hypot(x2 - x3, y2 - y3))))
    h = max(1, int(max(math.hypot(x3 - x0, y3 - y0), math.hypot(x2 - x1, y2 - y1))))
    src = np.array(pts, dtype=np.float32)
    dst = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
    m = cv2.getPerspectiveTransform(src, dst)
    out = cv2.warpPerspective(img, m, (w, h), flags=cv2.INTER_CUBIC,
                              borderMode=cv2.BORDER_REPLICATE)
    if h / w >= 1.5:
        out = np.rot90(out)
    return np.ascontiguousarray(out)


def _read_image(path, where):
    import numpy as np
    cv2 = _import_cv2()
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as e:
        _fail(f"{where}: cannot read image {path}: {e.strerror}")
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        _fail(f"{where}: {path} is not a readable image")
    return img


def _write_png_atomic(path, img):
    cv2 = _import_cv2()
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        _fail(f"could not encode {path} as PNG")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(buf.tobytes())
    os.replace(tmp, path)


def cut_crops(det_label, out_dir, out_label, overwrite=False):
    """One PNG per legible det box in out_dir and a rec label file out_label."""
    det_label, out_dir, out_label = Path(det_label), Path(out_dir), Path(out_label)
    rows = _label_rows(det_label, "--det_label")
    if _same_file(out_label, det_label):
        _fail(f"--out_label {out_label} is the det label file itself")
    if not overwrite:
        if out_label.exists():
            _fail(f"{out_label} exists (pass --overwrite to replace it)")
        if out_dir.is_dir() and any(out_dir.iterdir()):
            _fail(f"--out_dir {out_dir} is not empty (pass --overwrite to write into it)")
    if out_dir.exists() and not out_dir.is_dir():
        _fail(f"--out_dir {out_dir} is not a directory")
    parsed, stems = [], {}
    for where, path, label in rows:  # check every line before writing anything
        boxes = _parse_det_boxes(label, where)
        for i, b in enumerate(boxes, 1):
            if b["transcription"] != DONT_CARE and len(b["points"]) != 4:
                _fail(f"{where}: box {i} has {len(b['points'])} points; crops need 4")
            if b["transcription"] != DONT_CARE and not b["transcription"].strip():
                _fail(f"{where}: box {i} has an empty transcription (use ### for don't care)")
        img = _resolve(det_label, path)
        if not img.is_file():
            _fail(f"{where}: image {path} not found (paths are relative to {det_label.parent})")
        stem = _base(path).rsplit(".", 1)[0]
        if stem in stems and not _same_file(stems[stem], img):
            _fail(f"{where}: {path} and {stems[stem]} would both give crops named {stem}_<k>.png")
        stems[stem] = img
        parsed.append((where, path, img, stem, boxes))
    sources = {os.path.realpath(img) for _, _, img, _, _ in parsed}
    out_dir.mkdir(parents=True, exist_ok=True)
    lines, seen = [], set()
    res = {"label": str(out_label), "crop_dir": str(out_dir), "images": 0, "crops": 0,
           "skipped_dont_care": 0, "skipped_degenerate": 0}
    for where, path, img_path, stem, boxes in parsed:
        if stem in seen:  # the same image listed twice: its crops exist already
            continue
        seen.add(stem)
        res["images"] += 1
        img = None
        for k, b in enumerate(boxes, CROP_INDEX_START):
            if b["transcription"] == DONT_CARE:
                res["skipped_dont_care"] += 1
                continue
            if img is None:
                img = _read_image(img_path, where)
            crop = crop_box(img, b["points"])
            if crop is None:
                res["skipped_degenerate"] += 1
                continue
            name = out_dir / f"{stem}_{k}.png"
            if os.path.realpath(name) in sources:
                _fail(f"{where}: crop {name} would overwrite a det image: choose another --out_dir")
            _write_png_atomic(name, crop)
            text = re.sub(r"[\t\r\n]", " ", b["transcription"])
            lines.append(_rel(name, out_label) + "\t" + text)
            res["crops"] += 1
    if not lines:
        _fail(f"{det_label}: no legible (non-###) boxes to crop")
    _write_atomic(out_label, lines)
    return res


def is_dev(image_name, seed=0, dev_percent=20.0):
    """The fixed split rule: True when `image_name` (a basename) belongs to dev."""
    digest = hashlib.sha256(f"{seed}:{image_name}".encode("utf-8")).hexdigest()
    return int(digest[:16], 16) / 16 ** 16 < dev_percent / 100


def split(det_label, out, rec_label=None, seed=0, dev_percent=20.0, overwrite=False):
    """Write OUT/det/{train,dev}.txt (and OUT/rec/{train,dev}.txt) by a seeded hash of the image name."""
    if not 0 < dev_percent < 100:
        _fail(f"--dev_percent must be between 0 and 100 (exclusive), got {dev_percent:g}")
    det_label, out = Path(det_label), Path(out)
    outs = {("det", s): out / "det" / f"{s}.txt" for s in ("train", "dev")}
    if rec_label is not None:
        rec_label = Path(rec_label)
        outs.update({("rec", s): out / "rec" / f"{s}.txt" for s in ("train", "dev")})
    sources = [p for p in (det_label, rec_label) if p is not None]
    for o in outs.values():
        for src in sources:
            if _same_file(o, src):
                _fail(f"{o} would overwrite the source label file {src}: choose another --out")
    if not overwrite:
        for o in outs.values():
            if o.exists():
                _fail(f"{o} exists (pass --overwrite to replace it)")
    counts = {s: {"images": 0, "boxes": 0, "cared": 0, "crops": 0} for s in ("train", "dev")}
    lines = {k: [] for k in outs}
    stem_split = {}
    for where, path, label in _label_rows(det_label, "--det_label"):
        boxes = _parse_det_boxes(label, where)
        img = _resolve(det_label, path)
        if not img.is_file():
            _fail(f"{where}: image {path} not found (paths are relative to {det_label.parent})")
        name = _base(path)
        s = "dev" if is_dev(name, seed, dev_percent) else "train"
        stem = name.rsplit(".", 1)[0]
        if stem_split.setdefault(stem, s) != s:
            _fail(f"{where}: two images with the stem {stem} fall into different splits, "
                  "so their crops could not be assigned")
        counts[s]["images"] += 1
        counts[s]["boxes"] += len(boxes)
        counts[s]["cared"] += sum(b["transcription"] != DONT_CARE for b in boxes)
        lines[("det", s)].append(_rel(img, outs[("det", s)]) + "\t" + label)
    if rec_label is not None:
        for where, path, label in _label_rows(rec_label, "--rec_label"):
            name = _base(path)
            m = _CROP_NAME.match(name)
            if not m:
                _fail(f"{where}: crop {name} is not named <image stem>_<k>.<ext>, "
                      "so its source image (and split) is unknown")
            if m.group(1) not in stem_split:
                _fail(f"{where}: crop {name}: its image {m.group(1)}.* is not in {det_label}")
            crop = _resolve(rec_label, path)
            if not crop.is_file():
                _fail(f"{where}: crop {path} not found (paths are relative to {rec_label.parent})")
            s = stem_split[m.group(1)]
            counts[s]["crops"] += 1
            lines[("rec", s)].append(_rel(crop, outs[("rec", s)]) + "\t" + label)
    for key, o in outs.items():
        _write_atomic(o, lines[key])
    res = {"out": str(out), "seed": seed, "dev_percent": dev_percent, **counts}
    if rec_label is None:
        for s in ("train", "dev"):
            del res[s]["crops"]
    return res


def parse_args(argv=None):
    ap = argparse.ArgumentParser(usage="%(prog)s [convert] [--det_* ...] [--rec_* ...]\n"
                                       "       %(prog)s crop --det_label L --out_dir D --out_label R\n"
                                       "       %(prog)s split --det_label L [--rec_label R] --out OUT",
                                 description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--det_gt_dir", help="folder of gt_img_N.txt files")
    ap.add_argument("--det_img_dir", help="folder of img_N.jpg images")
    ap.add_argument("--det_out_label", help="det label file to write")
    ap.add_argument("--rec_gt", help="word-crop ground truth (gt.txt)")
    ap.add_argument("--rec_img_dir", help="folder of the word crops (default: the folder of --rec_gt)")
    ap.add_argument("--rec_out_label", help="rec label file to write")
    args = ap.parse_args(argv)
    det = [args.det_gt_dir, args.det_img_dir, args.det_out_label]
    rec = [args.rec_gt, args.rec_out_label]
    if any(det) and not all(det):
        _fail("--det_gt_dir, --det_img_dir and --det_out_label go together")
    if (any(rec) or args.rec_img_dir) and not all(rec):
        _fail("--rec_gt and --rec_out_label go together")
    if not any(det) and not any(rec):
        _fail("nothing to do: give the --det_* and/or the --rec_* arguments "
              "(or the crop / split operation, see --help)")
    return args


def _parse_crop_args(argv):
    ap = argparse.ArgumentParser(prog="icdar2015.py crop",
                                 description="Cut one rec crop per legible (non-###) box of a "
                                             "PaddleOCR det label file.")
    ap.add_argument("--det_label", required=True, help="PaddleOCR det label file to read")
    ap.add_argument("--out_dir", required=True, help="folder for the <image stem>_<k>.png crops")
    ap.add_argument("--out_label", required=True, help="rec label file to write")
    ap.add_argument("--overwrite", action="store_true",
                    help="replace --out_label and same-named crops in a non-empty --out_dir")
    return ap.parse_args(argv)


def _parse_split_args(argv):
    ap = argparse.ArgumentParser(prog="icdar2015.py split",
                                 description="Fixed train/dev split of PaddleOCR labels by a seeded "
                                             "hash of the image file name.")
    ap.add_argument("--det_label", required=True, help="PaddleOCR det label file to split")
    ap.add_argument("--rec_label", help="rec label file whose crops are named <image stem>_<k>.<ext>")
    ap.add_argument("--out", required=True, help="writes OUT/det/{train,dev}.txt (and OUT/rec/...)")
    ap.add_argument("--seed", type=int, default=0, help="hash seed (default 0)")
    ap.add_argument("--dev_percent", type=float, default=20.0,
                    help="share of the images that go to dev, in percent (default 20)")
    ap.add_argument("--overwrite", action="store_true", help="replace existing OUT label files")
    return ap.parse_args(argv)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    op = argv[0] if argv and argv[0] in ("convert", "crop", "split") else "convert"
    if argv and argv[0] == op:
        argv = argv[1:]
    if op == "crop":
        a = _parse_crop_args(argv)
        return {"crop": cut_crops(a.det_label, a.out_dir, a.out_label, a.overwrite)}
    if op == "split":
        a = _parse_split_args(argv)
        return {"split": split(a.det_label, a.out, a.rec_label, a.seed, a.dev_percent, a.overwrite)}
    args = parse_args(argv)
    result = {}
    if args.det_gt_dir:
        result["det"] = convert_det(args.det_gt_dir, args.det_img_dir, args.det_out_label)
    if args.rec_gt:
        result["rec"] = convert_rec(args.rec_gt, args.rec_img_dir, args.rec_out_label)
    return result


if __name__ == "__main__":
    print(json.dumps(main(), indent=1))
