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
"""
import argparse
import json
import os
import re
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


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
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
        _fail("nothing to do: give the --det_* and/or the --rec_* arguments")
    return args


def main(argv=None):
    args = parse_args(argv)
    result = {}
    if args.det_gt_dir:
        result["det"] = convert_det(args.det_gt_dir, args.det_img_dir, args.det_out_label)
    if args.rec_gt:
        result["rec"] = convert_rec(args.rec_gt, args.rec_img_dir, args.rec_out_label)
    return result


if __name__ == "__main__":
    print(json.dumps(main(), indent=1))
