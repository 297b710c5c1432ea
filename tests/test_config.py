"""Override parsing and config validation (no model needed)."""
import pytest

from ocrslim import config as cfg
from ocrslim.errors import UserError


def test_parse_override_yaml_values():
    assert cfg.parse_override("A.b=3") == (["A", "b"], 3)
    assert cfg.parse_override("A.b=0.5") == (["A", "b"], 0.5)
    assert cfg.parse_override("A.b=[x.txt, y.txt]") == (["A", "b"], ["x.txt", "y.txt"])
    assert cfg.parse_override("A.b=true") == (["A", "b"], True)
    # split on the first '=' only: the value may contain '='
    assert cfg.parse_override("A.b=k=v") == (["A", "b"], "k=v")


@pytest.mark.parametrize("bad", ["noequals", "=3", "A..b=1"])
def test_parse_override_rejects_malformed(bad):
    with pytest.raises(UserError):
        cfg.parse_override(bad)


def _config():
    return cfg.merge(cfg.DEFAULTS, {"Global": {"model_type": "det"}, "Eval": {"loader": {"batch_size_per_card": 1}}})


def test_apply_override_sets_nested_value():
    c = _config()
    cfg.apply_override(c, ["Eval", "loader", "batch_size_per_card"], 8)
    cfg.apply_override(c, ["Eval", "dataset", "label_file_list"], ["a.txt"])
    assert c["Eval"]["loader"]["batch_size_per_card"] == 8
    assert c["Eval"]["dataset"]["label_file_list"] == ["a.txt"]


def test_unknown_key_lists_known_keys():
    with pytest.raises(UserError, match="unknown config key 'Global.modle_dir'.*model_dir"):
        cfg.apply_override(_config(), ["Global", "modle_dir"], "x")


def test_wrong_type_is_rejected():
    with pytest.raises(UserError, match="expects int, got str"):
        cfg.apply_override(_config(), ["Eval", "loader", "batch_size_per_card"], "eight")
    with pytest.raises(UserError, match="expects bool"):
        cfg.apply_override(_config(), ["Global", "use_space_char"], 1)


def test_int_accepted_for_float_and_open_sections_take_new_keys():
    c = _config()
    c["PostProcess"] = {"thresh": 0.3}
    cfg.apply_override(c, ["PostProcess", "thresh"], 1)
    cfg.apply_override(c, ["PostProcess", "use_dilation"], True)
    assert c["PostProcess"] == {"thresh": 1, "use_dilation": True}


def test_load_config_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(UserError, match="config file not found"):
        cfg.load_config(str(tmp_path / "nope.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("Global: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        cfg.load_config(str(bad))
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just a string\n")
    with pytest.raises(UserError, match="mapping of sections"):
        cfg.load_config(str(scalar))


def test_require_names_missing_key():
    with pytest.raises(UserError, match="missing Eval.dataset.data_dir.*-o Eval.dataset.data_dir="):
        cfg.require(_config(), "Eval.dataset.data_dir")


def test_bundled_paths_resolve():
    import os
    model_dir = cfg.resolve_path("bundled:ch_PP-OCRv4_det_infer")
    assert os.path.isfile(os.path.join(model_dir, "inference.pdmodel"))
    assert cfg.resolve_path("bundled:ppocr_keys_v1.txt").endswith("ppocr_keys_v1.txt")
    assert cfg.resolve_path("plain/path") == "plain/path"
    with pytest.raises(UserError, match="not shipped"):
        cfg.resolve_path("bundled:no_such_model")


def test_repo_configs_load():
    import glob
    paths = glob.glob("configs/**/*.yaml", recursive=True)
    assert paths
    for path in paths:
        c = cfg.load_config(path)
        assert c["Global"]["model_type"] in ("det", "rec"), path


def test_list_index_override():
    c = _config()
    c["Eval"]["dataset"]["transforms"] = [{"DecodeImage": {"img_mode": "BGR"}}, {"RecResizeImg": {"image_shape": [3, 48, 320]}}]
    cfg.apply_override(c, ["Eval", "dataset", "transforms", "1", "RecResizeImg", "image_shape"], [3, 32, 100])
    assert c["Eval"]["dataset"]["transforms"][1]["RecResizeImg"]["image_shape"] == [3, 32, 100]
    with pytest.raises(UserError, match="out of range"):
        cfg.apply_override(c, ["Eval", "dataset", "transforms", "5", "x"], 1)


def test_learning_rate_takes_a_float_or_a_scheduler():
    c = cfg.merge(_config(), {"TrainConfig": {"learning_rate": 0.00002}})
    cfg.apply_override(c, ["TrainConfig", "learning_rate"], {"type": "CosineAnnealingDecay", "learning_rate": 1e-5, "T_max": 20})
    assert c["TrainConfig"]["learning_rate"]["T_max"] == 20
    cfg.apply_override(c, ["TrainConfig", "learning_rate"], 0.001)
    with pytest.raises(UserError, match="expects"):
        cfg.apply_override(c, ["TrainConfig", "learning_rate"], "fast")


def test_base_configs_merge_and_a_null_section_drops_the_base_one(tmp_path):
    from ocrslim import config as cfg
    (tmp_path / "base.yaml").write_text("Global: {model_type: rec, seed: 3}\nTrainConfig: {train_iter: 5}\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "child.yaml").write_text("_BASE_: [../base.yaml]\nGlobal: {seed: 4}\nTrainConfig: null\n")
    config = cfg.load_config(str(tmp_path / "sub" / "child.yaml"), defaults=cfg.COMPRESS_DEFAULTS)
    assert config["Global"]["model_type"] == "rec" and config["Global"]["seed"] == 4
    assert config["TrainConfig"] == {} and "_BASE_" not in config
    (tmp_path / "loop.yaml").write_text("_BASE_: loop.yaml\n")
    with pytest.raises(UserError, match="includes itself"):
        cfg.load_yaml(str(tmp_path / "loop.yaml"))


def test_every_ptq_config_selects_ptq_and_keeps_its_base_data():
    import glob
    from ocrslim import config as cfg
    from ocrslim.compress.strategies import get_strategy
    paths = glob.glob("configs/**/*_ptq.yaml", recursive=True)
    assert len(paths) >= 4
    for path in paths:
        config = cfg.load_config(path, defaults=cfg.COMPRESS_DEFAULTS)
        base = cfg.load_config(path.replace("_ptq", ""), defaults=cfg.COMPRESS_DEFAULTS)
        assert get_strategy(config).name == "ptq" and get_strategy(base).name == "qat", path
        assert config["Train"] == base["Train"] and config["Eval"] == base["Eval"], path


def _write(tmp_path, data, name="c.yaml"):
    import yaml
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return str(path)


def test_a_config_in_the_upstream_layout_is_taken(tmp_path):
    """Our own small config in the upstream example's layout (tests/helpers.py) loads into ours:
    Quantization is QuantAware, upstream-only keys are gone, and the qat strategy accepts it."""
    from helpers import upstream_det_config
    from ocrslim.compress import qat, strategies
    config = cfg.load_config(_write(tmp_path, upstream_det_config("data", "model")), defaults=cfg.COMPRESS_DEFAULTS)
    assert "Quantization" not in config and config["QuantAware"]["onnx_format"] is True
    assert "algorithm" not in config["Global"] and "name" not in config["Metric"]
    for section in ("Train", "Eval"):
        assert "name" not in config[section]["dataset"] and "ratio_list" not in config[section]["dataset"]
        assert set(config[section]["loader"]) == {"batch_size_per_card"}
    strategy = strategies.get_strategy(config)
    assert strategy.name == "qat"
    strategy.check(config)
    # epochs: 1 is one pass over the Train images; the cosine schedule gets T_max (ACT needs it)
    act = qat.act_config(config, "sigmoid_0.tmp_0", world=1, train_images=8)
    assert act["TrainConfig"]["train_iter"] == 4 and "epochs" not in act["TrainConfig"]
    assert act["TrainConfig"]["learning_rate"]["T_max"] == 4


def test_upstream_keys_we_cannot_keep_give_one_error_line_each(tmp_path, capsys):
    from helpers import upstream_det_config
    from ocrslim.errors import run_cli
    data = upstream_det_config("data", "model")
    data["Metric"]["name"] = "RecMetric"
    data["Train"]["dataset"]["name"] = "MultiScaleDataSet"
    data["Train"]["sampler"] = {"name": "MultiScaleSampler"}
    data["Distillation"] = {"alpha": [1.0, 1.0], "loss": ["skd", "l2"], "node": [["a"], ["b"]]}
    path = _write(tmp_path, data)
    with pytest.raises(SystemExit) as exit_info:
        run_cli(lambda argv: cfg.load_config(path))
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert all(line.startswith("error: ") for line in lines), lines
    for needle in ("Metric.name RecMetric", "Train.dataset.name MultiScaleDataSet", "Train.sampler",
                   "Distillation.node", "Distillation.loss", "Distillation.alpha"):
        assert sum(needle in line for line in lines) == 1, (needle, lines)
    assert len(lines) == 6


def test_rec_label_encoders_of_upstream_configs_are_not_run(tmp_path):
    """MultiLabelEncode needs a dict and max_text_length; the metric reads the raw text instead."""
    from helpers import make_rec_set
    from ocrslim.data import Samples
    label = make_rec_set(str(tmp_path))
    samples = Samples(str(tmp_path), [label], [{"DecodeImage": {"img_mode": "BGR", "channel_first": False}},
                                               {"MultiLabelEncode": {"gtc_encode": "NRTRLabelEncode"}},
                                               {"RecResizeImg": {"image_shape": [3, 48, 320]}},
                                               {"KeepKeys": {"keep_keys": ["image", "label_ctc"]}}], "rec")
    item = samples.load(0)
    assert item["image"].shape == (3, 48, 320) and item["text"] == "Hello"


@pytest.mark.parametrize("quant,match", [({"weight_bits": 6}, "weight_bits must be 8"),
                                         ({"weight_bits": True}, "weight_bits must be 8"),
                                         ({"activation_bits": 7}, "activation_bits must be 8")])
def test_quant_bits_are_checked(quant, match):
    """QuantAware.weight_bits: 8 or 7 only (the int8 files hold them); activations stay 8-bit."""
    with pytest.raises(UserError, match=match):
        cfg.check_numbers({"QuantAware": quant})
    cfg.check_numbers({"QuantAware": {"weight_bits": 7}})


def test_seven_bit_weights_need_training():
    """Paddle's post-training calibration makes 8-bit weights only: weight_bits 7 asks for qat."""
    from ocrslim.compress.strategies import get_strategy
    config = {"QuantAware": {"weight_bits": 7}, "TrainConfig": {"train_iter": 1}}
    assert get_strategy(config).name == "qat"
    with pytest.raises(UserError, match="use the qat or prune_qat strategy, not ptq"):
        get_strategy(config, "ptq")
