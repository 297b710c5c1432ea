"""eval.py: bad input gives one clear error; tiny clean sets give exact metrics."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from ocrslim.config import resolve_path
from ocrslim.errors import UserError
from ocrslim.eval_cli import main

from helpers import data_args, make_det_set, make_rec_set, snapshot

DET = "configs/ppocrv4/det_mobile.yaml"
REC = "configs/ppocrv4/rec_mobile.yaml"


@pytest.fixture(scope="module")
def det_set(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("det"))
    return root, make_det_set(root)


@pytest.fixture(scope="module")
def rec_set(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("rec"))
    return root, make_rec_set(root)


@pytest.mark.parametrize("script", ["eval.py", "run.py"])
def test_help(script):
    if not os.path.exists(script):
        pytest.skip(f"{script} not written yet")
    out = subprocess.run([sys.executable, script, "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "usage" in out.stdout.lower()


def test_clean_det_and_rec_sets_score_perfectly(det_set, rec_set, tmp_path):
    # Clean black-on-white text: the FP32 models must get everything right,
    # which checks the whole pipeline (transforms, post-processing, metric).
    det = main(["-c", DET, "--quiet", "--json", str(tmp_path / "det.json")] + data_args(*det_set))
    assert det["metrics"]["hmean"] == 1.0 and det["metrics"]["gt_care"] == 2
    written = json.load(open(tmp_path / "det.json"))
    assert set(written) >= {"model_dir", "model_type", "metrics", "images", "seconds"}
    rec = main(["-c", REC, "--quiet"] + data_args(*rec_set))
    assert rec["metrics"]["acc"] == 1.0 and rec["images"] == 2


def test_model_dir_is_never_written(det_set, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(resolve_path("bundled:ch_PP-OCRv4_det_infer"), model)
    before = snapshot(str(model))
    main(["-c", DET, "--quiet", "--model_dir", str(model)] + data_args(*det_set))
    assert snapshot(str(model)) == before


def test_undecodable_image_is_skipped_and_counted(det_set, tmp_path):
    root, label = det_set
    bad_root = tmp_path / "d"
    shutil.copytree(root, bad_root)
    (bad_root / "broken.jpg").write_bytes(b"not an image")
    with open(bad_root / "eval.txt", "a") as f:
        f.write("broken.jpg\t[]\n")
    argv = ["-c", DET, "--quiet"] + data_args(str(bad_root), str(bad_root / "eval.txt"))
    # 1 of 2 unreadable: more than Global.max_unreadable (5%) stops with the file and why
    with pytest.raises(UserError, match=r"1 of 2 Eval images could not be loaded.*broken.jpg \(\w+"):
        main(argv)
    with open(bad_root / "eval.txt", "a") as f:
        f.write("missing.jpg\t[]\n")
    # a missing file is found before the model loads
    with pytest.raises(UserError, match=r"1 of 3 Eval images could not be loaded.*missing.jpg \(no such file\)"):
        main(argv)
    out = main(argv + ["Global.max_unreadable=0.9"])
    assert out["skipped"] == 2 and out["images"] == 1


def _error(argv):
    with pytest.raises(UserError) as info:
        main(argv)
    return str(info.value)


def test_bad_inputs_name_the_problem(det_set, rec_set, tmp_path):
    root, label = det_set
    assert "config file not found" in _error(["-c", "nope.yaml"])
    empty = tmp_path / "empty_model"
    empty.mkdir()
    assert "has no inference.pdmodel" in _error(["-c", DET, "--model_dir", str(empty)] + data_args(root, label))
    assert "label file not found" in _error(["-c", DET] + data_args(root, str(tmp_path / "x.txt")))
    bad = tmp_path / "bad.txt"
    bad.write_text("a.jpg\t[]\nb.jpg no tab here\n")
    assert f"{bad}:2" in _error(["-c", DET] + data_args(root, str(bad)))
    bad.write_text('a.jpg\t[{"transcription": "x", "points": [[0, 0]]}]\n')
    assert f"{bad}:1" in _error(["-c", DET] + data_args(root, str(bad)))
    blank = tmp_path / "blank.txt"
    blank.write_text("\n")
    assert "dataset is empty" in _error(["-c", DET] + data_args(root, str(blank)))
    assert "unknown Global.model_type 'cls'" in _error(["-c", DET, "-o", "Global.model_type=cls"])
    assert "unknown config key" in _error(["-c", DET, "-o", "Global.nope=1"])


def test_dictionary_size_mismatch(rec_set, tmp_path):
    small_dict = tmp_path / "dict.txt"
    small_dict.write_text("a\nb\nc\n")
    msg = _error(["-c", REC, "-o", f"Global.character_dict_path={small_dict}"] + data_args(*rec_set))
    assert "5 classes" in msg and "model outputs 6625" in msg


def test_det_model_with_rec_config_is_refused(rec_set):
    msg = _error(["-c", REC, "--model_dir", resolve_path("bundled:ch_PP-OCRv4_det_infer")] + data_args(*rec_set))
    assert "classes" in msg or "shape" in msg


def test_cli_prints_one_line_error_and_exit_code_2(tmp_path):
    out = subprocess.run([sys.executable, "eval.py", "-c", "configs/ppocrv4/det_mobile.yaml",
                          "--model_dir", str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and out.stderr.startswith("error: ")
    assert "Traceback" not in out.stderr


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    from ocr_data import synth
    out = str(tmp_path_factory.mktemp("gen") / "set")
    synth.main(["--out", out, "--seed", "11", "--det_train", "0", "--det_eval", "8",
                "--rec_train", "0", "--rec_eval", "60", "--quiet"])
    return out


@pytest.mark.parametrize("kind,config,key", [("det", DET, "hmean"), ("rec", REC, "acc")])
def test_generated_eval_set_is_not_saturated(generated, tmp_path, kind, config, key):
    # The generated eval split must be hard enough that FP32 does not score ~1
    # (an easy set hides int8 damage) yet easy enough that the pipeline clearly works.
    root = f"{generated}/{kind}"
    out = main(["-c", config, "--quiet", "--json", str(tmp_path / "m.json")] + data_args(root, f"{root}/eval.txt"))
    assert 0.4 < out["metrics"][key] < 0.97, out["metrics"]
    assert json.load(open(tmp_path / "m.json"))["metrics"][key] == out["metrics"][key]


def test_devices_gpu_on_cpu_paddle_is_a_clear_error(det_set):
    import paddle
    if paddle.is_compiled_with_cuda():
        pytest.skip("this paddle has CUDA")
    assert "needs paddlepaddle-gpu" in _error(["-c", DET, "--devices", "gpu"] + data_args(*det_set))
