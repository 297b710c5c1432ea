"""eval.py --e2e: the end-to-end metric by hand, box order, crops, CLI errors, and real runs."""
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from ocrslim.config import resolve_path
from ocrslim.deploy.e2e import E2EMetric, crop_box, sorted_boxes
from ocrslim.errors import UserError
from ocrslim.eval_cli import main

from helpers import data_args, make_det_set

DET = "configs/ppocrv4/det_mobile.yaml"
REC = "configs/ppocrv4/rec_mobile.yaml"
E2E = ["--e2e", "-c", DET, "--rec_config", REC, "--quiet"]


def box(x, y, w=100, h=20):
    return [[x, y], [x + w, y], [x + w, y + h], [x, y + h]]


def scores(*images):
    """Feed (gt_boxes, gt_texts, gt_ignore, pred_boxes, pred_texts) per image; return result()."""
    metric = E2EMetric()
    for image in images:
        metric.update(*image)
    return metric.result()


# ---- metric ----

def test_perfect_match_and_space_insensitive_text():
    r = scores(([box(0, 0)], ["Hello World"], [False], [box(2, 1)], ["HelloWorld"]))
    assert (r["precision"], r["recall"], r["hmean"]) == (1.0, 1.0, 1.0)
    assert (r["tp"], r["gt"], r["pred"]) == (1, 1, 1)


def test_right_box_wrong_text_and_wrong_box_right_text_miss():
    r = scores(([box(0, 0)], ["abc"], [False], [box(0, 0)], ["abd"]),
               ([box(0, 0)], ["abc"], [False], [box(300, 300)], ["abc"]))
    assert (r["tp"], r["gt"], r["pred"]) == (0, 2, 2)
    assert r["precision"] == r["recall"] == r["hmean"] == 0.0


def test_iou_must_exceed_half():
    # same height, shifted by half a width: IoU = 50 / 150 = 1/3
    r = scores(([box(0, 0)], ["abc"], [False], [box(50, 0)], ["abc"]))
    assert r["tp"] == 0


def test_dont_care_predictions_are_dropped_not_counted():
    gt = [box(0, 0), box(0, 100)]
    r = scores((gt, ["abc", "###"], [False, True], [box(0, 0), box(0, 100)], ["abc", "whatever"]))
    assert (r["tp"], r["gt"], r["pred"]) == (1, 1, 1)
    assert r["precision"] == r["recall"] == 1.0


def test_duplicate_predictions_on_one_gt_count_once():
    r = scores(([box(0, 0)], ["abc"], [False], [box(0, 0), box(1, 0)], ["abc", "abc"]))
    assert (r["tp"], r["gt"], r["pred"]) == (1, 1, 2)
    assert r["precision"] == 0.5 and r["recall"] == 1.0 and r["hmean"] == pytest.approx(2 / 3)


def test_a_better_box_with_the_wrong_text_does_not_steal_the_match():
    r = scores(([box(0, 0)], ["abc"], [False], [box(0, 0), box(10, 0)], ["xyz", "abc"]))
    assert r["tp"] == 1 and r["pred"] == 2


def test_empty_predictions_and_empty_ground_truth():
    nothing_found = scores(([box(0, 0)], ["abc"], [False], [], []))
    assert (nothing_found["precision"], nothing_found["recall"], nothing_found["hmean"]) == (0.0, 0.0, 0.0)
    empty = scores(([], [], [], [], []))
    assert (empty["precision"], empty["recall"]) == (1.0, 1.0)  # ICDAR convention, as DetMetric
    false_alarm = scores(([], [], [], [box(0, 0)], ["abc"]))
    assert false_alarm["precision"] == 0.0 and false_alarm["pred"] == 1


# ---- boxes and crops ----

def test_sorted_boxes_reads_lines_top_to_bottom_then_left_to_right():
    a, b, c = box(200, 12), box(10, 15), box(50, 60)  # a and b share a line, b is left
    assert sorted_boxes([c, a, b]) == [b, a, c]


def _two_colour_quad(image, corners):
    """Fill quad tl,tr,br,bl: first half (tl side) red, second half blue (BGR)."""
    tl, tr, br, bl = [np.asarray(p, np.float32) for p in corners]
    mid_top, mid_bottom = (tl + tr) / 2, (bl + br) / 2
    cv2.fillPoly(image, [np.int32([tl, mid_top, mid_bottom, bl])], (0, 0, 255))
    cv2.fillPoly(image, [np.int32([mid_top, tr, br, mid_bottom])], (255, 0, 0))


def _red_left_blue_right(crop):
    h, w = crop.shape[:2]
    left = crop[h // 4: 3 * h // 4, w // 8: 3 * w // 8].reshape(-1, 3).mean(0)
    right = crop[h // 4: 3 * h // 4, 5 * w // 8: 7 * w // 8].reshape(-1, 3).mean(0)
    return left[2] > 200 > left[0] and right[0] > 200 > right[2]


def test_crop_of_a_tilted_line_comes_out_level():
    image = np.full((200, 200, 3), 255, np.uint8)
    c, angle = np.array([100.0, 100.0]), np.deg2rad(30)
    u, v = np.array([np.cos(angle), np.sin(angle)]), np.array([-np.sin(angle), np.cos(angle)])
    corners = [c - 40 * u - 10 * v, c + 40 * u - 10 * v, c + 40 * u + 10 * v, c - 40 * u + 10 * v]
    _two_colour_quad(image, corners)
    crop = crop_box(image, corners)
    assert crop.shape == (20, 80, 3)
    assert _red_left_blue_right(crop)


def test_tall_crop_is_turned_to_horizontal():
    image = np.full((200, 200, 3), 255, np.uint8)
    # a vertical line read top to bottom: top half red, bottom half blue
    cv2.rectangle(image, (50, 20), (69, 59), (0, 0, 255), -1)
    cv2.rectangle(image, (50, 60), (69, 99), (255, 0, 0), -1)
    crop = crop_box(image, [[50, 20], [70, 20], [70, 100], [50, 100]])
    assert crop.shape == (20, 80, 3)
    assert _red_left_blue_right(crop)  # turned counter-clockwise: the top comes first


# ---- CLI ----

def _error(argv):
    with pytest.raises(UserError) as info:
        main(argv)
    return str(info.value)


def test_cli_errors(tmp_path):
    assert "--e2e needs --rec_config" in _error(["--e2e", "-c", DET])
    assert "add --e2e" in _error(["-c", DET, "--rec_model_dir", "x"])
    assert "add --e2e" in _error(["-c", DET, "--backend", "onnxruntime"])
    assert "add --e2e" in _error(["-c", DET, "--rec_backend", "onnxruntime"])
    assert "is a rec config" in _error(["--e2e", "-c", REC, "--rec_config", REC])
    assert "has no inference.pdmodel" in _error(E2E + ["--rec_model_dir", str(tmp_path)])


def test_missing_rec_config_is_one_line_and_exit_code_2():
    out = subprocess.run([sys.executable, "eval.py", "--e2e", "-c", DET], capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.startswith("error: --e2e needs --rec_config")
    assert out.stderr.strip().count("\n") == 0


# ---- real runs (bundled FP32 models, a few images) ----

@pytest.fixture(scope="module")
def clean_set(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("det"))
    return root, make_det_set(root)


@pytest.mark.parametrize("backend, rec_backend", [("paddle", "onnxruntime"), ("onnxruntime", "paddle"),
                                                  ("openvino", None)])
def test_clean_image_is_read_perfectly(clean_set, tmp_path, backend, rec_backend):
    # Clean black-on-white lines: FP32 det+rec must find and read both, which
    # checks the whole chain (det input, DB boxes, crops, rec input, CTC decode),
    # on each runtime for det and for rec (--rec_backend, or --backend for both).
    det_dir, rec_dir = resolve_path("bundled:ch_PP-OCRv4_det_infer"), resolve_path("bundled:ch_PP-OCRv4_rec_infer")
    out = main(E2E + ["--backend", backend, "--threads", "1", "--model_dir", det_dir, "--rec_model_dir", rec_dir,
                      "--json", str(tmp_path / "e2e.json")] + data_args(*clean_set)
               + (["--rec_backend", rec_backend] if rec_backend else []))
    assert out["metrics"]["hmean"] == 1.0 and out["metrics"]["tp"] == 2
    written = json.load(open(tmp_path / "e2e.json"))
    assert set(written) >= {"det_model_dir", "rec_model_dir", "metrics", "images", "latency_ms", "backend"}
    assert written["rec_model_dir"] == rec_dir and written["images"] == 1
    assert written["latency_ms"]["median"] > 0 and written["latency_ms"]["mean"] > 0
    assert written["backend"]["det"]["backend"] == backend and written["backend"]["rec"]["threads"] == 1
    assert written["backend"]["rec"]["backend"] == (rec_backend or backend)


def test_generated_images_give_sane_numbers(tmp_path):
    from ocr_data import synth
    root = str(tmp_path / "set")
    synth.main(["--out", root, "--seed", "11", "--det_train", "0", "--det_eval", "3",
                "--rec_train", "0", "--rec_eval", "0", "--quiet"])
    # a smaller det input keeps the test fast; the override reaches the det config
    out = main(E2E + ["-o", "Eval.dataset.transforms.1.DetResizeForTest.limit_side_len=320"]
               + data_args(f"{root}/det", f"{root}/det/eval.txt"))
    assert out["images"] == 3 and out["metrics"]["gt"] > 0
    assert all(0.0 <= out["metrics"][k] <= 1.0 for k in ("precision", "recall", "hmean"))
    assert out["metrics"]["tp"] > 0  # some lines are read right even at 320 px
    assert out["latency_ms"]["median"] > 0


@pytest.mark.parametrize("peer, runtime", [("onnxruntime", "onnxruntime"),
                                           pytest.param("nncf", "openvino", marks=pytest.mark.slow)])
def test_peer_pair_is_quantized_on_each_configs_train_images(clean_set, tmp_path, peer, runtime):
    """--peer NAME: both FP32 models quantized by the peer (calibrated on each config's Train set)
    and run as the pipeline on its runtime; refuses an int8 model and --backend."""
    import yaml
    from helpers import make_rec_set
    root, label = clean_set
    rec_label = make_rec_set(str(tmp_path / "rec"))
    rec = yaml.safe_load(open(REC, encoding="utf-8"))
    rec["Train"]["dataset"].update(data_dir=str(tmp_path / "rec"), label_file_list=[rec_label])
    rec["Train"]["loader"]["batch_size_per_card"] = 1
    rec["Calibration"]["batch_nums"] = 2
    rec_config = tmp_path / "rec.yaml"
    rec_config.write_text(yaml.safe_dump(rec), encoding="utf-8")
    argv = ["--e2e", "-c", DET, "--rec_config", str(rec_config), "--peer", peer, "--quiet", "--threads", "1",
            "-o", f"Train.dataset.data_dir={root}", f"Train.dataset.label_file_list=[{label}]",
            "Train.loader.batch_size_per_card=1", "Calibration.batch_nums=1"] + data_args(root, label)[1:]
    out = main(argv)
    assert out["peer"] == peer and out["images"] == 1
    for task in ("det", "rec"):
        assert out["backend"][task]["backend"] == runtime and out["backend"][task]["precision"] == "int8"
    assert out["metrics"]["gt"] == 2 and len(out["per_image"]) == 1
    assert "leave out --backend" in _error(argv + ["--backend", "paddle"])
    assert "leave out --backend and --rec_backend" in _error(argv + ["--rec_backend", "paddle"])


@pytest.mark.parametrize("gen, det, rec", [("ppocrv5", "PP-OCRv5_mobile_det", "PP-OCRv5_mobile_rec"),
                                           ("ppocrv6", "PP-OCRv6_tiny_det_onnx", "PP-OCRv6_tiny_rec_onnx")])
def test_a_paddleocr3_or_onnx_pair_reads_the_clean_image(clean_set, gen, det, rec):
    """--e2e takes PaddleOCR 3.x's and Baidu's ONNX models as they are, each with its yml's settings."""
    from formats_helpers import real_model
    out = main(["--e2e", "-c", f"configs/{gen}/det_icdar2015.yaml", "--rec_config", f"configs/{gen}/rec_icdar2015.yaml",
                "--model_dir", real_model(det), "--rec_model_dir", real_model(rec), "--quiet", "--threads", "1"]
               + data_args(*clean_set))
    assert out["metrics"]["hmean"] == 1.0 and out["metrics"]["tp"] == 2, out["metrics"]
