"""formats/: detection of the three model formats, and inference.yml settings with their precedence
(the built-in defaults < the model's inference.yml < the config file < -o)."""
import json
import logging
import os
import shutil

import pytest

from ocrslim import config as cfg
from ocrslim import formats
from ocrslim.config import resolve_path
from ocrslim.errors import UserError
from ocrslim.eval_cli import main as eval_main

from helpers import make_rec_set

REC = "configs/ppocrv4/rec_mobile.yaml"


def test_detect_each_format_and_name_what_was_found(tmp_path):
    assert formats.detect(resolve_path("bundled:ch_PP-OCRv4_rec_infer")) == "pdmodel"
    pir = tmp_path / "v5"
    pir.mkdir()
    (pir / "inference.json").write_text("{}")
    (pir / "inference.pdiparams").write_bytes(b"")
    assert formats.detect(str(pir)) == "pir_json"
    onnx_dir = tmp_path / "v6"
    onnx_dir.mkdir()
    (onnx_dir / "inference.onnx").write_bytes(b"")
    assert formats.detect(str(onnx_dir)) == formats.detect(str(onnx_dir / "inference.onnx")) == "onnx"
    assert formats.onnx_file(str(onnx_dir)) == str(onnx_dir / "inference.onnx")
    (onnx_dir / "other.onnx").write_bytes(b"")
    with pytest.raises(UserError, match="holds 2 .onnx files: pass the one to use"):
        formats.onnx_file(str(onnx_dir))
    other = tmp_path / "other"
    other.mkdir()
    (other / "model.bin").write_bytes(b"")
    with pytest.raises(UserError, match=r"is not a model this tool reads \(found: model.bin\)"):
        formats.detect(str(other))
    src = formats.source(resolve_path("bundled:ch_PP-OCRv4_rec_infer"))
    assert src["format"] == "pdmodel" and len(src["sha256"]) == 64


@pytest.fixture
def rec_with_yml(tmp_path):
    """The bundled v4 rec model in PaddleOCR 3.x's way: no dictionary file, an inference.yml
    that holds the dictionary and the pre-processing."""
    model = tmp_path / "rec_model"
    shutil.copytree(resolve_path("bundled:ch_PP-OCRv4_rec_infer"), model)
    chars = open(resolve_path("bundled:ppocr_keys_v1.txt"), encoding="utf-8").read().splitlines()
    yml = {"Global": {"model_name": "PP-OCRv4_mobile_rec"},
           "PreProcess": {"transform_ops": [{"DecodeImage": {"channel_first": False, "img_mode": "BGR"}},
                                            {"MultiLabelEncode": {"gtc_encode": "NRTRLabelEncode"}},
                                            {"RecResizeImg": {"image_shape": [3, 48, 320]}},
                                            {"KeepKeys": {"keep_keys": ["image", "label_ctc"]}}]},
           "PostProcess": {"name": "CTCLabelDecode", "character_dict": chars}}
    import yaml
    (model / "inference.yml").write_text(yaml.safe_dump(yml, allow_unicode=True), encoding="utf-8")
    root = tmp_path / "rec"
    label = make_rec_set(str(root))
    config = tmp_path / "rec.yaml"  # no dictionary, no transforms: the model's yml gives them
    config.write_text(json.dumps({"Global": {"model_type": "rec"}, "Metric": {"main_indicator": "acc"},
                                  "Eval": {"dataset": {"data_dir": str(root), "label_file_list": [label]}}}))
    return model, config, chars


class Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def test_inference_yml_fills_what_the_user_did_not_set(rec_with_yml):
    model, config, chars = rec_with_yml
    lines, log = Lines(), logging.getLogger("ocrslim")
    level = log.level
    log.addHandler(lines)
    log.setLevel(logging.INFO)
    try:
        c = cfg.load_config(str(config), model_dir=str(model))
    finally:
        log.removeHandler(lines)
        log.setLevel(level)
    assert open(c["Global"]["character_dict_path"], encoding="utf-8").read().splitlines() == chars
    assert [list(t)[0] for t in c["Eval"]["dataset"]["transforms"]][2] == "RecResizeImg"
    assert c["PostProcess"]["name"] == "CTCLabelDecode"
    assert c["Global"]["settings_from"]["taken"] == ["Eval.dataset.transforms", "PostProcess.name",
                                                      "Global.character_dict_path"]
    assert any(line.startswith(f"settings from {model}/inference.yml: Eval.dataset.transforms") for line in lines.lines)
    # the config file wins over the yml, -o wins over both (also deep inside a value the yml gave)
    mine = resolve_path("bundled:ppocr_keys_v1.txt")
    c = cfg.load_config(str(config), [f"Global.character_dict_path={mine}",
                                      "Eval.dataset.transforms.2.RecResizeImg.image_shape=[3, 48, 160]"],
                        model_dir=str(model))
    assert c["Global"]["character_dict_path"] == mine
    assert c["Eval"]["dataset"]["transforms"][2]["RecResizeImg"]["image_shape"] == [3, 48, 160]
    assert "Global.character_dict_path" in c["Global"]["settings_from"]["kept_from_config"]


def test_eval_reads_a_model_whose_dictionary_is_only_in_its_yml(rec_with_yml, tmp_path):
    model, config, _ = rec_with_yml
    out = eval_main(["-c", str(config), "--model_dir", str(model), "--quiet"])
    assert out["metrics"]["acc"] == 1.0 and out["model_dir"] == str(model)
    # a yml dictionary that does not fit the model's classes: one error line
    import yaml
    data = yaml.safe_load(open(model / "inference.yml", encoding="utf-8"))
    data["PostProcess"]["character_dict"] = data["PostProcess"]["character_dict"][:-5]
    (model / "inference.yml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(UserError, match="gives 6620 classes .* but the model outputs 6625"):
        eval_main(["-c", str(config), "--model_dir", str(model), "--quiet"])


@pytest.mark.parametrize("config, model", [("configs/ppocrv5/rec_icdar2015.yaml", "PP-OCRv5_mobile_rec"),
                                           ("configs/ppocrv6/rec_icdar2015.yaml", "PP-OCRv6_tiny_rec_onnx")])
def test_eval_takes_a_paddleocr3_or_onnx_model_as_it_is(config, model, tmp_path):
    """--model_dir on PaddleOCR 3.x's folder or Baidu's ONNX: converted in a work folder (the model's
    folder untouched), the dictionary and pre-processing from its inference.yml."""
    from formats_helpers import real_model
    from helpers import snapshot
    path = real_model(model)
    before = snapshot(path)
    root = tmp_path / "rec"
    label = make_rec_set(str(root), tight=True)
    out = eval_main(["-c", config, "--model_dir", path, "--quiet", "-o", f"Eval.dataset.data_dir={root}",
                     f"Eval.dataset.label_file_list=[{label}]"])
    assert out["metrics"]["acc"] == 1.0 and out["model_dir"] == path
    assert snapshot(path) == before


@pytest.mark.slow
def test_run_compresses_a_paddleocr3_model_and_its_result_carries_the_yml(tmp_path):
    """run.py (ptq) from PaddleOCR 3.x's v5 rec folder: save_dir records the source, holds the yml
    and the dictionary that lived only in it, and loads as any save_dir does."""
    import numpy as np
    import ocrslim
    from formats_helpers import real_model
    from ocrslim.run_cli import main as run_main
    path = real_model("PP-OCRv5_mobile_rec")
    root = tmp_path / "rec"
    label = make_rec_set(str(root), tight=True)
    save = tmp_path / "v5_int8"
    report = run_main(["-c", "configs/ppocrv5/rec_icdar2015.yaml", "--model_dir", path, "--save_dir", str(save),
                       "--strategy", "ptq", "--no_bench", "--quiet", "-o", f"Eval.dataset.data_dir={root}",
                       f"Eval.dataset.label_file_list=[{label}]", f"Train.dataset.data_dir={root}",
                       f"Train.dataset.label_file_list=[{label}]", "Train.loader.batch_size_per_card=2",
                       "Train.dataset.transforms=[{DecodeImage: {img_mode: BGR}}, "
                       "{RecResizeImg: {image_shape: [3, 48, 320]}}]", "Calibration.batch_nums=1"])
    assert report["source"]["format"] == "pir_json" and report["model_dir"] == path
    assert {"inference.yml", "character_dict.txt", "inference.pdmodel"} <= set(os.listdir(save))
    import yaml
    used = yaml.safe_load(open(save / "config_used.yaml", encoding="utf-8"))
    assert used["Global"]["character_dict_path"] == str(save / "character_dict.txt")
    assert report["baseline"]["acc"] == 1.0
    # eval.py on the result reads the same settings from the yml it carries
    out = eval_main(["-c", "configs/ppocrv5/rec_icdar2015.yaml", "--model_dir", str(save), "--quiet", "-o",
                     f"Eval.dataset.data_dir={root}", f"Eval.dataset.label_file_list=[{label}]"])
    assert out["metrics"]["acc"] == report["compressed"]["acc"]
    predict = ocrslim.load_predictor(str(save))
    assert predict(np.zeros((1, 3, 48, 200), "float32"))[0].shape[-1] == 18385
    # save_dir/deploy holds every runtime's file, made from the converted program: each runtime
    # offered for int8 rec on this CPU loads it alone and reads what the executor read
    from ocrslim.deploy import backends, runtime
    assert {"inference.pdmodel", "model.onnx", "model.xml", "model.bin", "settings.json"} <= set(
        os.listdir(save / "deploy"))
    x = np.random.RandomState(0).rand(1, 3, 48, 320).astype("float32")
    from_ir = runtime.openvino_predictor(str(save / "deploy" / "model.xml"))[0](x)[0]
    from ocrslim.deploy.onnx_passes import openvino_int8_onnx
    # OpenVINO's file: the program exported with exactly the executor's quantizers (runtime.onnx_model)
    source = runtime.onnx_model((str(save),) + backends.PADDLE_FILES, str(tmp_path), "ov_src", openvino=True)
    ov_onnx = openvino_int8_onnx(source, str(tmp_path / "ov.onnx"))[0]
    assert np.array_equal(from_ir, runtime.openvino_predictor(ov_onnx)[0](x)[0])
    offered = [b for b in backends.BACKENDS if not backends.not_offered("rec", "int8", b)]
    assert offered, "no runtime offered for int8 rec on this CPU"
    for backend in offered:
        assert ocrslim.load_predictor(str(save), backend)(x)[0].shape == (1, 40, 18385), backend
