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


def make_rec_set(root, texts=("Hello", "World42"), tight=False):
    """Word crops; tight: cut 8 pixels around the text, as a detector's box is (PP-OCRv5 rec misreads
    a word in a wide white crop: 'Hell' for 'Hello' in 300x60)."""
    os.makedirs(root, exist_ok=True)
    font = ImageFont.truetype(FONT, 40)
    lines = []
    for i, text in enumerate(texts):
        left, top, right, bottom = ImageDraw.Draw(Image.new("RGB", (8, 8))).textbbox((0, 0), text, font=font)
        size, at = ((right - left + 16, bottom - top + 16), (8 - left, 8 - top)) if tight else ((300, 60), (10, 5))
        img = Image.new("RGB", size, "white")
        ImageDraw.Draw(img).text(at, text, font=font, fill="black")
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


def upstream_det_config(root, model_dir):
    """A det QAT config in the upstream example's layout (PaddleSlim's example/auto_compression/ocr
    and PaddleOCR's deploy/slim/auto_compression): the keys and spellings those files use, with
    small settings for the tiny set under `root` (8 train images, 6 eval)."""
    normalize = {"NormalizeImage": {"scale": "1./255.", "mean": [0.485, 0.456, 0.406],
                                    "std": [0.229, 0.224, 0.225], "order": "hwc"}}

    def dataset(label, resize, keep):
        return {"name": "SimpleDataSet", "data_dir": f"{root}/det", "label_file_list": [f"{root}/det/{label}"],
                "ratio_list": [1.0],
                "transforms": [{"DecodeImage": {"img_mode": "BGR", "channel_first": False}},
                               {"DetLabelEncode": None}, {"DetResizeForTest": resize}, normalize,
                               {"ToCHWImage": None}, {"KeepKeys": {"keep_keys": keep}}]}
    return {
        "Global": {"model_type": "det", "model_dir": model_dir, "model_filename": "inference.pdmodel",
                   "params_filename": "inference.pdiparams", "algorithm": "DB", "input_name": "x"},
        "Distillation": {"alpha": 1.0, "loss": "l2"},
        "Quantization": {"use_pact": False, "activation_bits": 8, "is_full_quantize": False, "onnx_format": True,
                         "activation_quantize_type": "moving_average_abs_max",
                         "weight_quantize_type": "channel_wise_abs_max", "not_quant_pattern": ["skip_quant"],
                         "quantize_op_types": ["conv2d", "depthwise_conv2d"], "weight_bits": 8},
        "TrainConfig": {"epochs": 1, "eval_iter": 4,
                        "learning_rate": {"type": "CosineAnnealingDecay", "learning_rate": 0.00002},
                        "optimizer_builder": {"optimizer": {"type": "Adam"}, "weight_decay": 5.0e-05}},
        "PostProcess": {"name": "DBPostProcess", "thresh": 0.3, "box_thresh": 0.6, "max_candidates": 1000,
                        "unclip_ratio": 1.5},
        "Metric": {"name": "DetMetric", "main_indicator": "hmean"},
        "Train": {"dataset": dataset("train.txt", {"image_shape": [320, 320]}, ["image"]),
                  "loader": {"shuffle": True, "drop_last": False, "batch_size_per_card": 2, "num_workers": 2}},
        "Eval": {"dataset": dataset("eval.txt", {"limit_side_len": 960, "limit_type": "max"},
                                    ["image", "shape", "polys", "ignore_tags"]),
                 "loader": {"shuffle": False, "drop_last": False, "batch_size_per_card": 1, "num_workers": 2}},
        # ours, in the same file: fewer calibration batches than the default 8
        "Calibration": {"batch_nums": 2},
    }


def readme_example():
    """The README's load_predictor example (the python block after its marker)."""
    text = open("README.md", encoding="utf-8").read()
    after = text.split("<!-- load_predictor example: tests/test_compress_e2e.py runs it -->", 1)[1]
    return after.split("```python\n", 1)[1].split("```", 1)[0]
