"""The real PP-OCRv2 / PP-OCRv3 models (../shared/models, or OCRSLIM_MODELS): what differs between
generations is found from each program, and the Paddle Inference rewrites leave each generation's
FP32 outputs unchanged. Skips, with the reason, where the folder is missing."""
import os

import numpy as np
import pytest

import formats_helpers as fh
from ocrslim.deploy import paddle_passes

# folder, config, the rewrites each pass makes on it. v2 det (MobileNetV3 without SE + DB) keeps
# only the DB head's transposed-conv pair; v3 det adds the neck's 8 residual SE blocks (RSEFPN);
# the v3 rec (MobileNetV1Enhance + SVTR) has no pattern the passes know: nothing is touched.
# Neither has PP-LCNetV3's learnable affines, so fold/merge/affine_into_pointwise find nothing.
GENERATIONS = {
    "v2_det": ("ch_PP-OCRv2_det_infer", "configs/ppocrv2/det_icdar2015.yaml",
               {"deconv_pairs": 1, "se_residual": 0}),
    "v3_det": ("ch_PP-OCRv3_det_infer", "configs/ppocrv3/det_icdar2015.yaml",
               {"deconv_pairs": 1, "se_residual": 8}),
    "v3_rec": ("en_PP-OCRv3_rec_infer", "configs/ppocrv3/rec_icdar2015.yaml",
               {"deconv_pairs": 0, "se_residual": 0}),
}


def files(folder):
    return (fh.real_model(folder), "inference.pdmodel", "inference.pdiparams")


def images(config_path, tiny_data, n):
    """n images of the generated eval set, through the config's own Eval transforms."""
    from ocrslim.config import load_config
    from ocrslim.data import Samples
    config = load_config(config_path)
    task = config["Global"]["model_type"]
    root = f"{tiny_data}/{task}"
    samples = Samples(root, [f"{root}/eval.txt"], config["Eval"]["dataset"]["transforms"], task)
    return [samples.load(i)["image"][None].astype("float32") for i in range(n)]


@pytest.mark.parametrize("gen", GENERATIONS)
def test_distillation_node_is_the_input_of_the_final_activation(gen):
    from ocrslim.compress.qat import distill_node, find_distill_node
    from ocrslim.deploy.paddle_graph import PaddleGraph, static_mode
    with static_mode():
        graph = PaddleGraph.from_files(files(GENERATIONS[gen][0]))
        node = find_distill_node(graph.program, graph.fetches[0].name)
        readers = [op for op in graph.ops if node in op.input_arg_names]
        # Prune.distill_node: [output] is the probability map (v2's fetch is a scale op after it)
        output = distill_node(graph.program, graph.fetches[0].name, ["output"])
    final = "sigmoid" if gen.endswith("det") else "softmax"
    assert [op.type for op in readers] == [final], (node, readers)
    assert output == readers[0].output("Out")[0]


def test_output_as_distillation_node_passes_the_early_name_check():
    """Prune.distill_node: [output] is resolved from the program, so the check of the names a
    config gives (before step 1) must not look for a tensor called 'output'."""
    from ocrslim import config as cfg
    from ocrslim.compress.strategies import get_strategy
    from ocrslim.run_cli import check_tensor_names
    config = cfg.load_config("configs/ppocrv2/det_icdar2015_prune.yaml", defaults=cfg.COMPRESS_DEFAULTS,
                             model_dir=fh.real_model("ch_PP-OCRv2_det_infer"))
    assert config["Prune"]["distill_node"] == ["output"]
    check_tensor_names(config, files("ch_PP-OCRv2_det_infer"), get_strategy(config))


@pytest.mark.parametrize("gen", GENERATIONS)
def test_rewrites_are_exact_on_the_real_program(gen, tiny_data, tmp_path):
    """Within 1e-5 with Paddle Inference's native kernels: the rewrites change nothing the model
    computes, and a pattern they do not know (no PP-LCNetV3 affine here) is left as it is."""
    folder, config_path, expected = GENERATIONS[gen]
    model_dir = fh.real_model(folder)
    with open(os.path.join(model_dir, "inference.pdmodel"), "rb") as f, \
            open(os.path.join(model_dir, "inference.pdiparams"), "rb") as g:
        program, params, counts = paddle_passes.optimize(f.read(), g.read(), source=model_dir)
    assert {k: counts[k] for k in expected} == expected, counts
    assert counts["fold_affine"] == counts["merge_affine"] == counts["affine_into_pointwise"] == 0, counts
    out = tmp_path / "opt"
    out.mkdir()
    (out / "inference.pdmodel").write_bytes(program)
    (out / "inference.pdiparams").write_bytes(params)
    before, after = fh.native(model_dir), fh.native(str(out))
    for x in images(config_path, tiny_data, 2):
        a, b = before(x)[0], after(x)[0]
        assert a.shape == b.shape
        assert a.max() > 0.5  # text found: an all-zero map would prove nothing
        assert np.abs(a - b).max() <= 1e-5, np.abs(a - b).max()


@pytest.mark.slow
@pytest.mark.parametrize("gen", ["v2_det", "v3_det"])
def test_every_pruning_group_is_found_and_cut_consistently(gen):
    """The groups come from the program (MobileNetV3's hard_swish blocks, v3's SE blocks in the
    neck); cutting 30% of every swept group leaves a program whose channels agree and that runs."""
    import paddle
    from ocrslim.compress import prune
    from ocrslim.deploy.paddle_graph import static_mode
    with static_mode():
        place = paddle.CPUPlace()
        graph = prune.load(files(GENERATIONS[gen][0]))
        exe = paddle.static.Executor(place)
        spatial = prune.spatial_sizes(graph, exe, [3, 128, 192])
        base = prune.cost(graph.program, spatial)
        found = prune.groups(graph, skip_first=1)
        shares = prune.group_shares(graph, found, spatial, base, 0.5, "geometry_median", place)
        swept = {g["name"]: 0.3 for g in found if g["skip"] is None and shares[g["name"]] >= prune.MIN_SHARE}
        assert len(swept) >= 20, len(swept)
        program, backup = prune.prune(graph, swept, "geometry_median", place)
        with paddle.static.scope_guard(graph.scope):
            y = exe.run(program, feed={graph.feeds[0]: np.zeros([1, 3, 128, 192], "float32")},
                        fetch_list=[v.name for v in graph.fetches])[0]
        removed = 1 - prune.cost(program, spatial)["macs"] / base["macs"]
        prune.restore(graph, backup, place)
    assert y.shape == (1, 1, 128, 192)
    assert 0.3 < removed < 0.6, removed


@pytest.mark.slow
def test_v3_rec_reads_english_with_its_config(tiny_data, tmp_path):
    """configs/ppocrv3/rec_icdar2015.yaml names the English dictionary the model was trained with
    (bundled:en_dict.txt, from the paddleocr wheel): the generated English words are read. The
    Chinese models' ppocr_keys_v1.txt (the old config's) is refused before any work."""
    from ocrslim.errors import UserError
    from ocrslim.eval_cli import main
    model = fh.real_model("en_PP-OCRv3_rec_infer")
    with open(f"{tiny_data}/rec/eval.txt", encoding="utf-8") as f:
        english = [line for line in f if line.split("\t", 1)[1].strip().isascii()]
    assert len(english) >= 16
    (tmp_path / "en.txt").write_text("".join(english), encoding="utf-8")
    data = [f"Eval.dataset.data_dir={tiny_data}/rec", f"Eval.dataset.label_file_list=[{tmp_path}/en.txt]"]
    right = main(["-c", GENERATIONS["v3_rec"][1], "--model_dir", model, "--quiet", "-o"] + data)
    assert right["metrics"]["acc"] >= 0.8, right["metrics"]
    with pytest.raises(UserError, match="model outputs 97"):
        main(["-c", GENERATIONS["v3_rec"][1], "--model_dir", model, "--quiet", "-o", *data,
              "Global.character_dict_path=bundled:ppocr_keys_v1.txt"])


def test_v2_det_declared_size_does_not_bind_onnxruntime(tmp_path):
    """PP-OCRv2 det declares a 960x960 input; Paddle Inference and PaddleOCR feed any size. Its
    ONNX export takes any size too (runtime.free_image_size) and computes what Paddle does."""
    import onnxruntime
    from ocrslim.deploy import runtime
    model_dir = fh.real_model("ch_PP-OCRv2_det_infer")
    assert fh.feed_shape(model_dir) == [-1, 3, 960, 960]
    path = runtime.export_onnx(files("ch_PP-OCRv2_det_infer"), str(tmp_path / "v2.onnx"))
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    x = np.random.RandomState(0).rand(1, 3, 256, 448).astype("float32")
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    want = fh.native(model_dir)(x)[0]
    assert got.shape == want.shape == (1, 1, 256, 448)
    assert np.abs(got - want).max() <= 1e-5



def onnxruntime_predict(path):
    import onnxruntime
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})


@pytest.mark.parametrize("gen", ["v2_det", "v3_det"])
def test_onnx_deconv_pairs_are_exact_on_the_real_export(gen, tiny_data, tmp_path):
    """onnx_passes.deconv_pairs (what OpenVINO and onnxruntime run of an int8 det since issue 30) on
    each generation's real FP32 export: the DB head's transposed convs become 1x1 convs and a
    DepthToSpace, and the probability map stays within 1e-5 on onnxruntime and OpenVINO."""
    from ocrslim.deploy import runtime
    from ocrslim.deploy.onnx_graph import OnnxGraph
    from ocrslim.deploy.onnx_passes import deconv_pairs, fold_convtranspose_bn
    folder, config_path, _ = GENERATIONS[gen]
    path = runtime.export_onnx(files(folder), str(tmp_path / "fp32.onnx"))
    g = OnnxGraph.load(path)
    assert fold_convtranspose_bn(g) == 1 and deconv_pairs(g) == 1
    assert not any(n.op_type == "ConvTranspose" for n in g.nodes)
    g.save(str(tmp_path / "dc.onnx"))
    for load in (onnxruntime_predict, lambda p: runtime.openvino_predictor(p, 1)[0]):
        before, after = load(path), load(str(tmp_path / "dc.onnx"))
        for x in images(config_path, tiny_data, 2):
            a, b = before(x)[0], after(x)[0]
            assert a.max() > 0.5 and np.abs(a - b).max() <= 1e-5, np.abs(a - b).max()
