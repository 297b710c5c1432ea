"""Small hand-made datasets for tests that must not depend on the generator."""
import glob
import json
import os

from PIL import Image, ImageDraw, ImageFont

import trdg

FONT = os.path.join(os.path.dirname(trdg.__file__), "fonts", "latin", "Lato-Bold.ttf")


def make_det_set(root, texts=("Hello World", "PADDLE 2024")):
    """One clean image with known boxes; returns the label file path."""
    os.makedirs(root, exist_ok=True)
    font = ImageFont.truetype(FONT, 40)
    img = Image.new("RGB", (640, 320), "white")
    draw = ImageDraw.Draw(img)
    boxes = []
    for i, text in enumerate(texts):
        x, y = 40, 60 + i * 120
        draw.text((x, y), text, font=font, fill="black")
        left, top, right, bottom = draw.textbbox((x, y), text, font=font)
        boxes.append({"transcription": text, "points": [[left, top], [right, top], [right, bottom], [left, bottom]]})
    img.save(os.path.join(root, "a.jpg"))
    label = os.path.join(root, "eval.txt")
    with open(label, "w", encoding="utf-8") as f:
        f.write("a.jpg\t" + json.dumps(boxes) + "\n")
    return label


def make_rec_set(root, texts=("Hello", "World42")):
    os.makedirs(root, exist_ok=True)
    font = ImageFont.truetype(FONT, 40)
    lines = []
    for i, text in enumerate(texts):
        img = Image.new("RGB", (300, 60), "white")
        ImageDraw.Draw(img).text((10, 5), text, font=font, fill="black")
        img.save(os.path.join(root, f"{i}.jpg"))
        lines.append(f"{i}.jpg\t{text}")
    label = os.path.join(root, "eval.txt")
    with open(label, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return label


def data_args(root, label):
    return ["-o", f"Eval.dataset.data_dir={root}", f"Eval.dataset.label_file_list=[{label}]"]


def snapshot(folder):
    """Names, sizes and mtimes of every file below folder (to prove nothing was written)."""
    out = {}
    for path in glob.glob(os.path.join(folder, "**"), recursive=True):
        st = os.stat(path)
        out[path] = (st.st_size, st.st_mtime_ns)
    return out


def data_overrides(root, kind):
    return [f"Eval.dataset.data_dir={root}/{kind}", f"Eval.dataset.label_file_list=[{root}/{kind}/eval.txt]",
            f"Train.dataset.data_dir={root}/{kind}", f"Train.dataset.label_file_list=[{root}/{kind}/train.txt]"]
