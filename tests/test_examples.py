"""The report's pictures of what int8 changed (deploy/examples.py), drawn from the predictions
the bench's metric used."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from helpers import data_args, make_rec_set
from ocrslim.deploy import bench, examples
from ocrslim.deploy.report import main as report_main
from ocrslim.metrics import DetMetric
from ocrslim.outputs import REPORT_FILES

REC = "configs/ppocrv4/rec_mobile.yaml"
DET = "configs/ppocrv4/det_mobile.yaml"


def _box(x, y, w=60, h=20):
    return examples.box_text([[x, y], [x + w, y], [x + w, y + h], [x, y + h]])


def _bench_json(tmp_path, task, items, per_item=None, name="bench.json"):
    key = {"det": "hmean", "rec": "acc"}[task]
    rows = [{"name": n, "strategy": s, "backend": "paddle", "engine": "oneDNN", "precision": p,
             "metrics": {key: 0.8}, "latency_ms": {"median": 10.0, "p90": 11.0}, "speedup": 1.0, "size_mb": 4.0,
             "size_ratio": 1.0, **({"per_item": per_item[p]} if per_item else {})}
            for n, s, p in (("m [paddle]", "FP32 baseline", "fp32"),
                            ("q [paddle]", "int8 ocrslim: ACT QAT + distillation", "int8"))]
    data = {"model_type": task, "main_indicator": key, "images": len(items), "threads": 2, "devices": "cpu",
            "fastest_fp32": "m [paddle]", "models": rows,
            "predictions": {"fp32": "m [paddle]", "int8": "q [paddle]", "int8_why": "asked for", "items": items}}
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


def _images(tmp_path, count, size):
    paths = []
    for i in range(count):
        path = str(tmp_path / f"{i}.jpg")
        Image.new("RGB", size, (255, 255, 255)).save(path)
        paths.append(path)
    return paths


# det: FP32 and int8 boxes per image, and how many boxes of either have no counterpart in the other's
DET_CASES = [([_box(10, 10), _box(10, 60)], [_box(10, 10), _box(10, 60)], 0),   # the same boxes
             ([_box(10, 10), _box(10, 60)], [_box(10, 10)], 1),                 # int8 lost one
             ([_box(10, 10)], [_box(200, 10), _box(200, 60)], 3),               # nothing in common
             ([_box(10, 10), _box(10, 60)], [_box(12, 11), _box(200, 100)], 2),  # one moved a little, one new
             ([], [_box(10, 10)], 1)]                                           # int8 found one more


def _det_items(tmp_path):
    paths = _images(tmp_path, len(DET_CASES), (320, 160))
    return [{"image": p, "gt": [_box(10, 10)], "fp32": a, "int8": b} for p, (a, b, _) in zip(paths, DET_CASES)]


def test_det_picture_shows_the_images_that_differ_most_and_is_embedded(tmp_path):
    items = _det_items(tmp_path)
    # most first (3, 2), then the first of the two with 1 (set order breaks ties)
    assert examples.Det.differing(items, 3) == ([2, 3, 1], 4)
    assert examples.Det.differing(items, 10) == ([2, 3, 1, 4], 4)
    per_item = {"fp32": [[1, len(a), 1] for a, _, _ in DET_CASES], "int8": [[1, len(b), 1] for _, b, _ in DET_CASES]}
    out = tmp_path / "out"
    report_main(["--out", str(out), _bench_json(tmp_path, "det", items, per_item)])
    text = (out / "report.md").read_text()
    assert "![det: what int8 changed](report_det_examples.jpg)" in text
    assert "](report.png)" in text and (out / "report.png").exists()  # beside the existing plot
    assert "of the 5 images, the 3 where their boxes differ most (4 differ at all)" in text
    assert "Left: FP32 model m [paddle] (the drop column's baseline); right: int8 q [paddle]" in text
    assert (out / "report_det_examples.jpg").read_bytes()[:2] == b"\xff\xd8"
    # --det_examples: how many; 0 draws none, and the earlier picture goes
    assert examples.Det.differing(items, 1)[0] == [2]
    report_main(["--out", str(out), "--overwrite", "--det_examples", "0",
                 _bench_json(tmp_path, "det", items, per_item)])
    assert not (out / "report_det_examples.jpg").exists()
    assert "report_det_examples" not in (out / "report.md").read_text()


def test_det_boxes_differ_by_the_metrics_matching():
    for a, b, differ in DET_CASES:
        ma, mb = examples.matched([examples.box_points(t) for t in a], [examples.box_points(t) for t in b])
        assert len(a) - len(ma) + len(b) - len(mb) == differ, (a, b)


REC_LABELS = ["Hello", "World42", "OCR", "int8", "Paddle", "2024", "slim", "text"]
REC_INT8 = ["Hello", "Wor1d42", "OCR", "int 8", "Paddle", "2O24", "slim", "txt"]  # 1, 3, 5, 7 differ


def _rec_items(tmp_path):
    paths = _images(tmp_path, len(REC_LABELS), (120, 32))
    return [{"image": p, "label": t, "fp32": t, "int8": q} for p, t, q in zip(paths, REC_LABELS, REC_INT8)]


def test_rec_strip_holds_exactly_the_crops_read_differently(tmp_path, monkeypatch):
    items = _rec_items(tmp_path)
    drawn = []
    draw = examples.Rec.draw
    monkeypatch.setattr(examples.Rec, "draw", staticmethod(lambda *a: drawn.append(draw(*a)) or drawn[-1]))
    per_item = {"fp32": [1] * len(items), "int8": [int(p == t) for p, t in zip(REC_INT8, REC_LABELS)]}
    out = tmp_path / "out"
    report_main(["--out", str(out), _bench_json(tmp_path, "rec", items, per_item)])
    assert drawn == [[items[i]["image"] for i in (1, 3, 5, 7)]]
    text = (out / "report.md").read_text()
    assert "![rec: what int8 changed](report_rec_examples.png)" in text
    assert "The 4 crops (of 8) that FP32 model m [paddle]" in text
    with Image.open(out / "report_rec_examples.png") as img:
        assert img.height == round(90 * (0.5 * 4 + 0.5))  # a header and one row per crop
    # --rec_examples caps the count: the first N of those that differ
    report_main(["--out", str(out), "--overwrite", "--rec_examples", "2",
                 _bench_json(tmp_path, "rec", items, per_item)])
    assert drawn[-1] == [items[i]["image"] for i in (1, 3)]
    assert "The first 2 of the 4 crops (of 8)" in (out / "report.md").read_text()


def test_no_picture_without_predictions_or_images_or_differences(tmp_path):
    items = _rec_items(tmp_path)
    with open(_bench_json(tmp_path, "rec", items), encoding="utf-8") as f:
        old = json.load(f)
    del old["predictions"]  # a bench JSON from before bench kept predictions
    (tmp_path / "old.json").write_text(json.dumps(old))
    report_main(["--out", str(tmp_path / "a"), str(tmp_path / "old.json")])
    assert "- rec: no picture of what int8 changed: this bench JSON holds no per-item predictions" in \
        (tmp_path / "a" / "report.md").read_text()
    os.remove(items[1]["image"])  # an image moved since the bench
    report_main(["--out", str(tmp_path / "b"), _bench_json(tmp_path, "rec", items)])
    assert f"- rec: no picture of what int8 changed: {items[1]['image']} is missing" in \
        (tmp_path / "b" / "report.md").read_text()
    same = [dict(item, int8=item["fp32"]) for item in items]
    report_main(["--out", str(tmp_path / "c"), _bench_json(tmp_path, "rec", same)])
    assert "- rec: FP32 and int8 agree on every one of the 8 crops" in (tmp_path / "c" / "report.md").read_text()
    for d in "abc":
        assert not any(name.startswith("report_rec") for name in os.listdir(tmp_path / d))
    with pytest.raises(Exception, match="0 or more"):
        report_main(["--out", str(tmp_path / "d"), "--rec_examples", "-1", str(tmp_path / "old.json")])


def test_pair_is_the_baseline_against_our_int8_on_autos_runtime(monkeypatch):
    def row(name, backend, precision, strategy):
        return {"name": name, "backend": backend, "precision": precision, "strategy": strategy}
    rows = [row("f [onnxruntime]", "onnxruntime", "fp32", "FP32 baseline"),
            row("f [paddle]", "paddle", "fp32", "FP32 baseline"),
            row("q [paddle]", "paddle", "int8", "int8 ocrslim: PTQ (calibration only)"),
            row("q [onnxruntime]", "onnxruntime", "int8", "int8 ocrslim: PTQ (calibration only)"),
            row("f [onnxruntime PTQ]", "onnxruntime", "int8", "int8 peer: onnxruntime quantize_static")]
    from ocrslim.deploy import backends
    monkeypatch.setattr(backends, "choose",
                        lambda task, precision, devices="cpu", model_dir=None: ("onnxruntime", "measured"))
    base, int8, why = examples.pair(rows, "f [onnxruntime]", "rec", "cpu")
    assert (base["name"], int8["name"]) == ("f [onnxruntime]", "q [onnxruntime]") and "auto picks" in why
    base, int8, why = examples.pair(rows[:3], "f [paddle]", "rec", "cpu")
    assert int8["name"] == "q [paddle]" and "was not benched" in why
    assert examples.pair(rows[:2], "f [paddle]", "rec", "cpu")[2] == "no int8 model of ours in this benchmark"
    assert examples.PICTURES and set(examples.PICTURES) <= set(REPORT_FILES)


def test_det_task_returns_the_boxes_its_metric_scored():
    """What bench keeps is what the metric saw: the returned boxes score the same counts."""
    from ocrslim.config import load_config
    from ocrslim.tasks import DetTask
    task = DetTask(load_config(DET))
    prob = np.zeros((1, 1, 64, 128), "float32")
    prob[0, 0, 10:30, 10:90] = prob[0, 0, 40:55, 20:60] = 1.0
    gt = [{"transcription": "a", "points": [[10, 10], [90, 10], [90, 30], [10, 30]]},
          {"transcription": "###", "points": [[0, 0], [5, 0], [5, 5], [0, 5]]}]
    item = {"shape": np.array([64, 128, 1.0, 1.0]), "text": json.dumps(gt), "img_path": "x.jpg"}
    records = task.update([prob], [item])
    assert len(records) == 1 and records[0]["image"] == "x.jpg" and len(records[0]["boxes"]) == 2
    assert records[0]["gt"] == [gt[0]["points"]]  # the cared ground truth only
    again = DetMetric()
    again.update([g["points"] for g in gt], [g["transcription"] == "###" for g in gt], records[0]["boxes"])
    assert again.items() == task.metric.items()


def test_rec_bench_keeps_the_texts_its_metric_scored(tmp_path, monkeypatch):
    """A real bench run: the predictions it stores are its scored pass's, and the report draws
    from them. With one FP32 row only, the pair is that row with itself (the pairing is above)."""
    root = tmp_path / "rec"
    label = make_rec_set(str(root))
    monkeypatch.setattr(examples, "pair", lambda rows, baseline, task, devices: (rows[0], rows[0], "test"))
    out = bench.main(["-c", REC, "--backend", "onnxruntime", "--quiet", "--report", str(tmp_path / "r"),
                      *data_args(str(root), label)])
    items = out["predictions"]["items"]
    assert [(os.path.basename(i["image"]), i["label"], i["fp32"]) for i in items] == \
        [("0.jpg", "Hello", "Hello"), ("1.jpg", "World42", "World42")]
    assert out["models"][0]["per_item"] == [1, 1]
    assert "FP32 and int8 agree on every one of the 2 crops" in (tmp_path / "r" / "report.md").read_text()
    monkeypatch.undo()
    fp32_only = bench.main(["-c", REC, "--backend", "onnxruntime", "--quiet", *data_args(str(root), label)])
    assert fp32_only["predictions"] == {"missing": "no int8 model of ours in this benchmark"}


def test_report_help_lists_the_picture_flags(capsys):
    with pytest.raises(SystemExit) as done:
        report_main(["--help"])
    text = capsys.readouterr().out
    assert done.value.code == 0 and "usage" in text and "--det_examples N" in text and "--rec_examples N" in text
