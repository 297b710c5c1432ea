"""The strategy registry and the ACT compatibility checks (fast, no ACT run)."""
import numpy as np
import pytest

from ocrslim import config as cfg
from ocrslim.compress import act_compat, qat, strategies
from ocrslim.errors import UserError

REC = "configs/ppocrv4/rec_mobile.yaml"


def test_sections_select_the_strategy_and_the_flag_overrides_them():
    config = cfg.load_config(REC, defaults=cfg.COMPRESS_DEFAULTS)
    assert strategies.get_strategy(config).name == "qat"
    assert strategies.get_strategy(config, "ptq").name == "ptq"
    config["TrainConfig"] = {}
    assert strategies.get_strategy(config).name == "ptq"
    with pytest.raises(UserError, match="unknown strategy 'pruned': use one of qat, ptq"):
        strategies.get_strategy(config, "pruned")


def test_ptq_needs_no_training_sections_but_qat_does():
    config = cfg.load_config(REC, defaults=cfg.COMPRESS_DEFAULTS)
    config["TrainConfig"] = {}
    strategies.Ptq().check(config)
    with pytest.raises(UserError, match="TrainConfig.train_iter"):
        strategies.Qat().check(config)
    config["Calibration"]["algo"] = "kl"
    with pytest.raises(UserError, match="Calibration.algo 'kl' is not one of hist, KL"):
        strategies.Ptq().check(config)


def test_this_paddleslim_matches_what_we_wrap():
    assert act_compat.problems() == []
    act_compat.check()


def test_a_moved_or_changed_internal_is_refused_in_one_line():
    module = "paddleslim.auto_compression.compressor"
    with pytest.raises(UserError, match=r"AutoCompression._start_train has no parameter 'train_cfg'"):
        act_compat.check(((module, "AutoCompression._start_train", ("self", "train_cfg")),))
    with pytest.raises(UserError, match=r"AutoCompression._no_such_hook is gone"):
        act_compat.check(((module, "AutoCompression._no_such_hook", ("self",)),))


def test_ptq_without_thresholds_is_refused():
    with pytest.raises(UserError, match="_scale_dict"):
        act_compat.ptq_thresholds(object())


def _quantized_program():
    """A small conv net through PaddleSlim's quant_aware (what ACT builds): activation quantizers
    with moving-average state, as in a real QAT program."""
    import paddle
    from paddleslim.quant import quant_aware
    main, start = paddle.static.Program(), paddle.static.Program()
    with paddle.static.program_guard(main, start):
        x = paddle.static.data("x", [1, 3, 8, 8], "float32")
        y = paddle.static.nn.conv2d(paddle.nn.functional.relu(x), 4, 3)
        paddle.static.nn.conv2d(paddle.nn.functional.relu(y), 4, 3)
    exe = paddle.static.Executor(paddle.CPUPlace())
    exe.run(start)
    program = quant_aware(main, paddle.CPUPlace(), {"quantize_op_types": ["conv2d"], "onnx_format": True},
                          for_test=False, return_program=True)
    return program


def test_calibrated_scales_that_miss_the_program_stop_the_run():
    """Zero (or too few) injected scales is the failure that destroys rec (QAT from 0.001): it must raise."""
    import paddle
    from ocrslim.deploy.paddle_graph import static_mode
    with static_mode(), paddle.static.scope_guard(paddle.static.Scope()):
        program = _quantized_program()
        inputs = [op.input("X")[0] for op in program.global_block().ops if op.type == "quantize_linear"
                  and not program.global_block()._find_var_recursive(op.input("X")[0]).persistable]
        assert len(inputs) == 2, inputs
        done, total = qat._inject_scales(program, {inputs[0]: 1.5}, 0.9, paddle.CPUPlace())
        assert (done, total) == (1, 2)
        with pytest.raises(UserError, match="1 of 2 calibrated activation scales"):
            act_compat.require_scales(done, total, "QAT start")
        done, total = qat._inject_scales(program, {"not_in_the_program": 1.0}, 0.9, paddle.CPUPlace())
        with pytest.raises(UserError, match="0 of 2"):
            act_compat.require_scales(done, total, "QAT start")
        done, total = qat._inject_scales(program, dict.fromkeys(inputs, 2.0), 0.9, paddle.CPUPlace())
        act_compat.require_scales(done, total, "QAT start")
        scale_op = [op for op in program.global_block().ops if op.type == "quantize_linear"
                    and op.input("X")[0] == inputs[1]][0]
        got = np.array(paddle.static.global_scope().find_var(scale_op.input("Scale")[0]).get_tensor())
        assert np.allclose(got, 2.0)


def test_fake_quant_weight_is_per_channel_int8():
    from ocrslim.compress.sensitivity import fake_quant_weight
    w = np.random.RandomState(0).randn(4, 3, 3, 3).astype("float32")
    w[2] *= 100  # one channel's range must not coarsen the others
    q = fake_quant_weight(w, axis=0)
    for c in range(4):
        step = np.abs(w[c]).max() / 127
        assert np.abs(q[c] - w[c]).max() <= step / 2 + 1e-6
        assert np.allclose(np.round(q[c] / step), q[c] / step, atol=1e-3)
    assert fake_quant_weight(np.zeros((2, 3), "float32"), axis=1).sum() == 0


def test_rank_correlation():
    from ocrslim.compress.sensitivity import rank_correlation
    assert rank_correlation([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0
    assert rank_correlation([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    assert rank_correlation([1, 1, 1], [1, 2, 3]) is None and rank_correlation([1, 2], [1, 2]) is None


@pytest.mark.slow
def test_sensitivity_on_a_tiny_set_ranks_every_layer(rec_sensitivity):
    import csv
    import json
    import os
    save, table = rec_sensitivity
    assert sorted(os.listdir(save)) == [".ocrslim.json", "config_used.yaml", "sensitivity.csv", "sensitivity.json",
                                        "sensitivity.png"]
    rows = table["rows"]
    # one row per conv2d / depthwise_conv2d / matmul_v2 of PP-OCRv4 rec
    assert len(rows) == table["layers"] == 51 and len({r["layer"] for r in rows}) == 51
    assert {r["op"] for r in rows} == {"conv2d", "depthwise_conv2d", "matmul_v2"}
    assert [r["only_error"] for r in rows] == sorted((r["only_error"] for r in rows), reverse=True)
    assert rows[0]["only_error"] > 0 and table["all_quantized_error"] > rows[0]["only_error"] / 10
    assert [r["kept_float_in_config"] for r in rows].count(True) == 1  # conv2d_146 (rec_mobile.yaml)
    with open(os.path.join(save, "sensitivity.csv"), encoding="utf-8") as f:
        assert [r["layer"] for r in csv.DictReader(f)] == [r["layer"] for r in rows]
    assert json.load(open(os.path.join(save, "sensitivity.json")))["subset"]["size"] == 8
    # Sensitivity.stability (a second subset) is off here: it doubles the run
    assert set(table["checks"]) == {"rho_error_vs_metric_only", "rho_error_vs_metric_all_but"}


def test_target_search_doubles_then_bisects():
    """hold(): one attempt per tried count, doubling to the first hit, then bisection; a miss
    with every allowed layer raises with the attempts."""
    from ocrslim.compress import target
    ranked = [f"l{i}" for i in range(20)]
    tried = []

    def attempt(keep):  # the drop falls below 0.5 point once 6 layers are float
        tried.append(len(keep) - 1)
        return {"drop": 0.004 if len(keep) - 1 >= 6 else 0.02}
    attempts, best = target.hold(0.5, ["base"], lambda: ranked, None, attempt)
    assert tried == [0, 1, 2, 4, 8, 6, 5] and attempts[best]["extra_float"] == 6
    assert attempts[best]["keep_float"] == ["base"] + ranked[:6]
    tried.clear()
    with pytest.raises(target.TargetMissed, match="with 3 more layer"):
        target.hold(0.5, ["base"], lambda: ranked, 3, attempt)
    assert tried == [0, 1, 2, 3]
    tried.clear()
    attempts, best = target.hold(5, ["base"], lambda: pytest.fail("no ranking needed"), None, attempt)
    assert tried == [0] and best == 0


@pytest.mark.slow
def test_reused_thresholds_rebuild_the_model_full_calibration_makes(tiny_data, tmp_path):
    """--max_drop's later attempts reuse the first calibration: the model rebuilt from its thresholds
    with one more layer float is the one a full calibration with that layer float saves."""
    from conftest import REC_WITH_DEPTHWISE
    from helpers import data_overrides
    from ocrslim import model as mdl
    from ocrslim.compress import calibrate
    from ocrslim.data import calibration_batches, config_train_reader
    from ocrslim.deploy.paddle_graph import PaddleGraph, static_mode
    config = cfg.load_config("configs/ppocrv4/rec_mobile.yaml",
                             [*data_overrides(tiny_data, "rec"), *REC_WITH_DEPTHWISE], defaults=cfg.COMPRESS_DEFAULTS)
    files = mdl.model_files(config["Global"])
    with static_mode():
        import paddle
        place = paddle.CPUPlace()
        feeds = calibration_batches(config_train_reader(config, "rec", "x"), 1)
        first = calibrate.calibrate(files, feeds, calibrate.settings(config), place)
        more_float = dict(calibrate.settings(config), keep_float=["conv2d_158.w_0", "linear_85.w_0"])
        calibrate.calibrate(files, feeds, more_float, place, save_dir=str(tmp_path / "full"))
        reused = calibrate.calibrate(files, feeds, more_float, place, save_dir=str(tmp_path / "reused"),
                                     thresholds=first)
        graphs = [PaddleGraph.from_files((str(tmp_path / d), "inference.pdmodel", "inference.pdiparams"))
                  for d in ("full", "reused")]
        assert [op.type for op in graphs[0].ops] == [op.type for op in graphs[1].ops]
        params = [n for n in graphs[0].program.global_block().vars
                  if graphs[0].is_param(n) and n not in ("feed", "fetch")]
        assert params and all(np.array_equal(graphs[0].value(n), graphs[1].value(n)) for n in params)
        # the two layers are float in both: weights read directly, not through a dequantize_linear
        for g in graphs:
            readers = [op for op in g.ops if {"conv2d_158.w_0", "linear_85.w_0"} & set(op.input_arg_names)]
            assert len(readers) == 2 and all(op.type != "dequantize_linear" for op in readers)
    assert reused == first


def test_a_new_scorer_puts_a_used_graph_back_to_float():
    """The stability subset's Scorer gets the graph the analysis one left in its last configuration
    (all but one layer quantized); its FP32 reference must be FP32 again."""
    from ocrslim.compress.sensitivity import Layer, Scorer

    class Graph:
        values = {}

        def set_value(self, name, array):
            self.values[name] = array
    layers = [Layer(f"w{i}", "conv2d", [f"m{i}"], [(f"w{i}", np.zeros(2), np.ones(2))]) for i in range(3)]
    first = Scorer.__new__(Scorer)
    first.graph, first.layers, first.on = Graph(), layers, set()
    first._switch({"w0", "w1"})
    assert Graph.values["m0"][0] == 1 and Graph.values["w1"][0] == 1
    second = Scorer.__new__(Scorer)
    second.graph, second.layers, second.on = first.graph, layers, set()
    second.reset()
    assert all(Graph.values[f"m{i}"][0] == 0 and Graph.values[f"w{i}"][0] == 0 for i in range(3))
