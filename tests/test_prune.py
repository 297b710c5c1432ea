"""Channel pruning: groups, the concat worker, the channel check, FLOPs counting, the ratio choice
(fast: no ACT run), and the prune / prune_qat strategies end to end (slow)."""
import json
import os

import numpy as np
import pytest

from ocrslim import config as cfg
from ocrslim.compress import prune
from ocrslim.compress.strategies import check_prune, get_strategy
from ocrslim.deploy.paddle_graph import static_mode
from ocrslim.errors import UserError

DET = ("bundled:ch_PP-OCRv4_det_infer", "inference.pdmodel", "inference.pdiparams")
# the DB neck's four 3x3 convs feed one concat, read by the head's first conv (conv2d_159)
NECK = ("conv2d_138.w_0", "conv2d_144.w_0", "conv2d_150.w_0", "conv2d_156.w_0")
SHAPE = [3, 160, 224]


@pytest.fixture(scope="module")
def det():
    """(graph, executor, place, spatial sizes at SHAPE, FP32 output on one input)."""
    import paddle
    with static_mode():
        graph = prune.load((cfg.resolve_path(DET[0]),) + DET[1:])
        place = paddle.CPUPlace()
        exe = paddle.static.Executor(place)
        spatial = prune.spatial_sizes(graph, exe, SHAPE)
        x = np.random.default_rng(0).standard_normal([1, *SHAPE]).astype("float32")
        yield graph, exe, place, spatial, x


def run(graph, exe, program, x):
    import paddle
    with paddle.static.scope_guard(graph.scope):
        return exe.run(program, feed={graph.feeds[0]: x}, fetch_list=[v.name for v in graph.fetches])[0]


def test_learnable_affine_swap_keeps_the_output(det):
    """prune.load swaps X and Y of PP-LCNetV3's scalar multiply/add (PaddleSlim asserts the tensor
    comes first); the output must be the same to the bit."""
    import paddle
    from ocrslim.deploy.paddle_graph import PaddleGraph
    graph, exe, _, _, x = det

    def scalar_first(g):
        return [op for op in g.ops if op.type in ("elementwise_mul", "elementwise_add")
                and g.scalar(op) is not None and g.is_param(op.input("X")[0])]
    with static_mode():
        plain = PaddleGraph.from_files((cfg.resolve_path(DET[0]),) + DET[1:])
    assert len(scalar_first(plain)) == 52 and scalar_first(graph) == []  # PP-LCNetV3's learnable affine blocks
    with static_mode():
        with paddle.static.scope_guard(plain.scope):
            want = exe.run(plain.program, feed={plain.feeds[0]: x}, fetch_list=[v.name for v in plain.fetches])[0]
    assert np.array_equal(run(graph, exe, graph.program, x), want)


def test_a_neck_conv_group_reaches_the_head_through_the_concat(det):
    """Without the concat worker PaddleSlim 2.6 drops these four groups; with a shared visited
    table only the first of them would cut the head conv's input channels."""
    graph = det[0]
    groups = dict(prune.act_compat.pruning_groups(graph.program, prune.conv_weights(graph)))
    for neck in NECK:
        assert ("conv2d_159.w_0", 1) in groups[neck], neck


def test_pruned_program_agrees_on_channels_runs_and_counts_fewer_macs(det):
    graph, exe, place, spatial, x = det
    before = prune.cost(graph.program, spatial)
    ratios = {name: 0.5 for name in NECK + ("conv2d_153.w_0", "conv2d_159.w_0", "conv2d_421.w_0")}
    with static_mode():
        program, backup = prune.prune(graph, ratios, "geometry_median", place)
        try:
            assert prune.channel_problems(program) == []
            out = run(graph, exe, program, x)
            after = prune.cost(program, spatial)
        finally:
            prune.restore(graph, backup, place)
    assert out.shape == (1, 1, *SHAPE[1:])
    removed = 1 - after["macs"] / before["macs"]
    assert 0.2 < removed < 0.6 and after["params"] < before["params"]
    # the weights are back: FP32 again
    assert np.array_equal(run(graph, exe, graph.program, x), run(graph, exe, graph.program.clone(), x))


def test_channel_problems_finds_a_conv_reading_the_wrong_number_of_channels(det):
    graph, _, place, _, _ = det
    with static_mode():
        program, _ = prune.prune(graph, {"conv2d_138.w_0": 0.5}, "geometry_median", place, only_graph=True)
        head = program.global_block().var("conv2d_159.w_0")
        head.desc.set_shape([24, 96, 3, 3])  # as if the concat had been skipped: 96 inputs again
        problems = prune.channel_problems(program)
    assert len(problems) == 1 and "conv2d_159.w_0" in problems[0] and "input 84 channels" in problems[0]


def test_macs_of_one_conv_are_counted_by_hand(det):
    graph, _, _, spatial, _ = det
    block = graph.program.global_block()
    op = next(o for o in graph.ops if o.type == "conv2d" and o.input("Filter")[0] == "conv2d_138.w_0")
    out = spatial[op.output("Output")[0]]
    assert out == [1, 24, 40, 56]  # 1/4 of 160x224
    assert list(block.var("conv2d_138.w_0").shape) == [24, 96, 3, 3]
    one = prune.cost(graph.program, spatial)["macs"]
    # cutting half of conv2d_138's 24 filters removes 12 x 96 x 9 MACs per output pixel of it,
    # plus what its group cuts downstream (SE and the head's inputs)
    with static_mode():
        program, _ = prune.prune(graph, {"conv2d_138.w_0": 0.5}, "geometry_median", det[2], only_graph=True)
    saved = one - prune.cost(program, spatial)["macs"]
    assert saved >= 12 * 96 * 9 * 40 * 56


# ---- the ratio choice, on a hand-made table --------------------------------------------------------

TABLE = {"rows": [
    {"group": "a", "ratio": 0.2, "error": 0.01, "drop": 0.0}, {"group": "a", "ratio": 0.4, "error": 0.05, "drop": 0.01},
    {"group": "b", "ratio": 0.2, "error": 0.03, "drop": 0.005}, {"group": "b", "ratio": 0.4, "error": 0.02, "drop": 0.02},
    {"group": "c", "ratio": 0.2, "error": 0.5, "drop": -0.2}, {"group": "c", "ratio": 0.4, "error": 0.9, "drop": 0.4}]}


def test_ratios_at_a_threshold_take_the_largest_ratio_whose_smaller_ones_also_hold():
    by_group = prune.curves(TABLE)
    assert prune.ratios_at(by_group, 0.0) == {}
    assert prune.ratios_at(by_group, 0.01) == {"a": 0.2}
    # b's 0.4 (0.02) is under 0.03 but its 0.2 (0.03) is not under 0.025: b stays whole
    assert prune.ratios_at(by_group, 0.025) == {"a": 0.2}
    assert prune.ratios_at(by_group, 0.05) == {"a": 0.4, "b": 0.4}
    assert prune.predicted_drop(by_group, {"a": 0.4, "b": 0.4}) == pytest.approx(0.03)
    # c's gain at 0.2 on the subset is not counted as a gain
    assert prune.predicted_drop(by_group, {"a": 0.4, "c": 0.2}) == pytest.approx(0.01)


def test_threshold_for_a_flops_target_is_the_nearest():
    removed = {0.01: 0.1, 0.02: 0.18, 0.05: 0.31, 0.5: 0.6}
    assert prune._threshold_for_flops(sorted(removed), removed.get, 0.3) == 0.05
    assert prune._threshold_for_flops(sorted(removed), removed.get, 0.2) == 0.02
    assert prune._threshold_for_flops(sorted(removed), removed.get, 0.9) == 0.5


# ---- settings and strategy choice ------------------------------------------------------------------

def config_with(*overrides):
    return cfg.load_config("configs/ppocrv4/det_mobile.yaml", list(overrides), defaults=cfg.COMPRESS_DEFAULTS)


def test_a_pruning_target_selects_prune_qat_or_prune():
    assert get_strategy(config_with()).name == "qat"
    assert get_strategy(config_with("Prune.flops_ratio=0.3")).name == "prune_qat"  # QuantAware present
    no_quant = config_with("Prune.min_metric=0.7")
    no_quant["QuantAware"] = {}
    assert get_strategy(no_quant).name == "prune"


@pytest.mark.parametrize("overrides, message", [
    ([], "pruning needs a target"),
    (["Prune.flops_ratio=0.3", "Prune.min_metric=0.5"], "not both"),
    (["Prune.flops_ratio=1.5"], r"Prune.flops_ratio must be in \(0, 1\), not 1.5"),
    (["Prune.flops_ratio=0.3", "Prune.ratios=[0.1, 1.2]"], r"Prune.ratios must be a list of shares in \(0, 1\)"),
    (["Prune.flops_ratio=0.3", "Prune.criterion=random"], "Prune.criterion 'random'"),
    (["Prune.flops_ratio=0.3", "Prune.sensitivity=no/such.json"], "no such file"),
    (["Prune.flops_ratio=0.3", "Prune.finetune={train_iter: 2, warmup: 3}"], "unknown key TrainConfig.warmup"),
    (["Prune.flops_ratio=0.3", "Prune.distill_node=sigmoid_0.tmp_0"], "Prune.distill_node expects list"),
    (["Prune.flops_ratio=0.3", "Prune.distill_node=[a, b]"], "give a list of one tensor name"),
])
def test_bad_pruning_settings_fail_before_any_work(overrides, message):
    with pytest.raises(UserError, match=message):
        check_prune(config_with(*overrides))


# ---- end to end (slow): --analyze prune, then prune_qat on its table ---------------------------------

# the backbone's late 1x1 convs skipped (Prune.skip): 10 groups swept instead of 21, a minute less
BACKBONE = [f"conv2d_{n}.w_0" for n in range(401, 422, 2)]
PRUNE_TINY = ["Sensitivity.images=2", "Prune.ratios=[0.3, 0.6]", "Train.loader.batch_size_per_card=2",
              f"Prune.skip=[{', '.join(BACKBONE)}]"]


@pytest.fixture(scope="module")
def prune_table(tiny_data, tmp_path_factory):
    from helpers import data_overrides
    from ocrslim.run_cli import main
    save = str(tmp_path_factory.mktemp("prune") / "sens")
    table = main(["--analyze", "prune", "-c", "configs/ppocrv4/det_mobile.yaml", "--save_dir", save, "--quiet",
                  "-o", *data_overrides(tiny_data, "det"), *PRUNE_TINY])
    return save, table


@pytest.fixture(scope="module")
def pruned_qat(tiny_data, prune_table, tmp_path_factory):
    from helpers import data_overrides
    from ocrslim.run_cli import main
    save = str(tmp_path_factory.mktemp("prune") / "det")
    report = main(["-c", "configs/ppocrv4/det_mobile.yaml", "--save_dir", save, "--quiet", "--no_bench",
                   "-o", *data_overrides(tiny_data, "det"), *PRUNE_TINY, "Prune.flops_ratio=0.25",
                   f"Prune.sensitivity={prune_table[0]}/prune_sensitivity.json", "Prune.finetune.train_iter=2",
                   "Prune.finetune.eval_iter=2", "Calibration.batch_nums=1", "TrainConfig.train_iter=2",
                   "TrainConfig.eval_iter=2"])
    return save, report


@pytest.mark.slow
def test_analyze_prune_writes_a_row_per_group_and_ratio(prune_table):
    save, table = prune_table
    for name in ("prune_sensitivity.json", "prune_sensitivity.csv", "prune_sensitivity.png", "config_used.yaml"):
        assert os.path.isfile(os.path.join(save, name)), name
    swept = [g["name"] for g in table["groups"] if g["skip"] is None]
    assert len(table["rows"]) == 2 * len(swept) and len(swept) >= 8
    skipped = {g["name"]: g["skip"] for g in table["groups"] if g["skip"]}
    assert "Prune.skip_first" in skipped["conv2d_0.w_0"]
    assert skipped["conv2d_411.w_0"] == "Prune.skip" and "conv2d_138.w_0" in swept
    rows = {(r["group"], r["ratio"]): r for r in table["rows"]}
    for name in swept:  # pruning more of a group removes more multiply-adds
        assert 0 < rows[(name, 0.3)]["flops_removed"] < rows[(name, 0.6)]["flops_removed"]
    assert all(r["error"] >= 0 for r in table["rows"])


@pytest.mark.slow
def test_prune_qat_meets_the_flops_target_and_runs_in_paddle_inference(pruned_qat, det):
    """The saved model: pruned by 0.25 +- 0.03 of the multiply-adds (counted again here from the
    saved program), int8 (quantize ops), and it runs in Paddle Inference with the FP32 output shape."""
    from ocrslim.deploy import backends
    from ocrslim.deploy.paddle_graph import PaddleGraph
    save, report = pruned_qat
    graph, _, _, spatial, x = det
    assert report["strategy"]["name"] == "prune_qat"
    assert abs(report["prune"]["flops_removed"] - 0.25) <= 0.03
    with static_mode():
        saved = PaddleGraph.from_files((save, "inference.pdmodel", "inference.pdiparams"), weights=False)
    assert any(op.type == "quantize_linear" for op in saved.ops)
    got = 1 - prune.cost(saved.program, spatial)["macs"] / prune.cost(graph.program, spatial)["macs"]
    assert abs(got - 0.25) <= 0.03
    assert prune.channel_problems(saved.program) == []
    predict, info = backends.predictor((save,) + backends.PADDLE_FILES, "paddle", "det", str(save) + "_work", "p",
                                       "cpu", 2)
    assert info["backend"] == "paddle" and predict(x)[0].shape == (1, 1, *SHAPE[1:])


@pytest.mark.slow
def test_prune_qat_reports_the_pruned_and_fine_tuned_candidates_within_a_bound(pruned_qat):
    """On the 6 tiny eval images, FP32 hmean ~0.9: pruning a quarter of the multiply-adds and two
    fine-tuning steps may cost boxes, but not more than 0.35 of hmean (a broken prune gives ~0)."""
    _, report = pruned_qat
    key = report["main_indicator"]
    fp32 = report["baseline"][key]
    for name in ("pruned", "fine-tuned", "calibrated", "trained"):
        assert name in report["candidates"], name
    assert report["candidates"]["fine-tuned"][key] >= fp32 - 0.35
    assert report["compressed"][key] >= fp32 - 0.35
    assert report["prune"]["cost"]["pruned"]["macs"] < report["prune"]["cost"]["baseline"]["macs"]
    assert report["prune"]["distill_node"]  # the tensor fine-tuning distilled (default: the logits)
    with open(os.path.join(pruned_qat[0], "report.json"), encoding="utf-8") as f:
        assert json.load(f)["prune"]["ratios"] == report["prune"]["ratios"]


def test_a_pruned_fp32_output_is_labelled_by_its_strategy_not_as_a_baseline(tmp_path):
    """bench compares every model with the fastest *baseline* FP32 row; a pruned FP32 model from
    run.py is not one (else it would be compared with itself)."""
    import shutil
    from ocrslim.deploy.bench import model_label
    from ocrslim.deploy.runtime import is_ocrslim_output
    src = cfg.resolve_path(DET[0])
    for name in DET[1:]:
        shutil.copy(os.path.join(src, name), tmp_path / name)
    files = (str(tmp_path),) + DET[1:]
    assert model_label(files) == ("FP32", "baseline") and not is_ocrslim_output(str(tmp_path))
    (tmp_path / "report.json").write_text(json.dumps({"strategy": {"label": "ocrslim: pruned + fine-tuned"}}))
    (tmp_path / "deploy").mkdir()
    assert model_label(files) == ("FP32", "ocrslim: pruned + fine-tuned") and is_ocrslim_output(str(tmp_path))


def test_batch_norm_folds_into_the_conv_and_deconv_before_it_exactly(det):
    """Pruning's fine-tuning starts from a model without batch norm (paddle_passes.fold_batch_norm):
    PP-OCRv4 det has three, after the stem conv, the head conv and the first transposed conv."""
    from ocrslim.deploy import paddle_passes
    _, exe, _, _, x = det
    with static_mode():
        graph = prune.load((cfg.resolve_path(DET[0]),) + DET[1:])
        want = run(graph, exe, graph.program, x)
        assert paddle_passes.fold_batch_norm(graph) == 3
        assert not any(op.type == "batch_norm" for op in graph.ops)
        got = run(graph, exe, graph.program, x)
    np.testing.assert_allclose(got, want, atol=1e-4)
