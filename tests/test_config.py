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
