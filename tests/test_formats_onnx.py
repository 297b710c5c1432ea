"""ocrslim.formats.onnx_in: ONNX (Baidu's PP-OCRv6) -> Paddle 2.6 inference model.

Per op family: tiny ONNX graphs built here with onnx.helper; onnxruntime on each graph is
the expected output, the converted model runs in Paddle Inference. Whole models: the
converted PP-OCRv6 tiny det and rec against onnxruntime on the original files, and on
every runtime the tool deploys to.
"""
import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import formats_helpers as fh
from ocrslim.errors import UserError
from ocrslim.formats import builder, onnx_in

RNG = np.random.default_rng(6)


def weights(*shape):
    return RNG.standard_normal(shape).astype(np.float32) * 0.5


def build(nodes, inits, outputs, opset=14, shape=("N", 4, "H", "W")):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))
    outs = [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs]
    graph = helper.make_graph(nodes, "test", [x], outs, [numpy_helper.from_array(v, k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def check_converted(tmp_path, model, shapes, atol=1e-5):
    """Convert `model` and compare every output with onnxruntime's, for inputs of each shape."""
    import onnxruntime as ort
    path = str(tmp_path / "model.onnx")
    onnx.save(model, path)
    run = fh.native(onnx_in.convert(path, str(tmp_path / "converted")))
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [o.name for o in model.graph.output]
    for shape in shapes:
        x = RNG.standard_normal(shape).astype(np.float32) * 2
        for name, want, got in zip(names, session.run(None, {"x": x}), run(x)):
            assert got.shape == want.shape, f"{name} at {shape}: shape {got.shape}, onnxruntime {want.shape}"
            assert np.abs(got - want).max() <= atol, f"{name} at {shape}: max abs diff {np.abs(got - want).max()}"


# ---- per op family ----

def test_conv_family(tmp_path):
    inits = {"w1": weights(6, 2, 3, 3), "b1": weights(6), "w2": weights(4, 1, 3, 3), "b2": weights(4),
             "w3": weights(3, 4, 2, 2), "w4": weights(3, 4, 3, 3), "wt1": weights(4, 3, 2, 2), "bt1": weights(3),
             "wt2": weights(4, 2, 3, 3)}
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["grouped"], group=2, strides=[2, 1], pads=[1, 0, 2, 1],
                              dilations=[1, 2], kernel_shape=[3, 3]),
             helper.make_node("Conv", ["x", "w2", "b2"], ["depthwise"], group=4, pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["x", "w3"], ["same_upper"], auto_pad="SAME_UPPER"),
             helper.make_node("Conv", ["x", "w3"], ["same_lower"], auto_pad="SAME_LOWER"),
             helper.make_node("Conv", ["x", "w4"], ["same_strided"], auto_pad="SAME_UPPER", strides=[2, 2]),
             helper.make_node("Conv", ["x", "w4"], ["valid"], auto_pad="VALID"),
             helper.make_node("ConvTranspose", ["x", "wt1", "bt1"], ["up"], strides=[2, 2]),
             helper.make_node("ConvTranspose", ["x", "wt2"], ["up_padded"], strides=[2, 2], pads=[1, 1, 1, 1],
                              output_padding=[1, 1])]
    model = build(nodes, inits, [n.output[0] for n in nodes])
    check_converted(tmp_path, model, [(2, 4, 7, 9), (1, 4, 6, 8)])
    assert fh.conv_biases(tmp_path / "converted") == ["b1_0", "b2_0", "bt1_0"]  # Paddle 2.x's conv bias


def test_pool_reduce_resize_family(tmp_path):
    inits = {"w": weights(4, 4, 1, 1), "scales2": np.array([1, 1, 2, 2], np.float32),
             "scales_mixed": np.array([1, 1, 2, 0.5], np.float32),
             "scales15": np.array([1, 1, 1.5, 1.5], np.float32), "sizes": np.array([1, 4, 5, 11], np.int64),
             "roi": np.array([], np.float32), "none": np.array([], np.float32)}
    resize = dict(mode="linear")
    nodes = [helper.make_node("Conv", ["x", "w"], ["conv"]),  # Paddle Inference loads no model without weights
             helper.make_node("MaxPool", ["x"], ["max_same"], kernel_shape=[2, 2], auto_pad="SAME_UPPER"),
             helper.make_node("MaxPool", ["x"], ["max_padded"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
             helper.make_node("MaxPool", ["x"], ["max_ceil"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
             helper.make_node("MaxPool", ["x"], ["max_same_strided"], kernel_shape=[3, 3], strides=[2, 2],
                              auto_pad="SAME_UPPER"),
             helper.make_node("AveragePool", ["x"], ["avg_same_strided"], kernel_shape=[3, 3], strides=[2, 2],
                              auto_pad="SAME_UPPER"),
             helper.make_node("AveragePool", ["x"], ["avg"], kernel_shape=[3, 2], strides=[3, 2]),
             helper.make_node("AveragePool", ["x"], ["avg_pads_counted"], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                              count_include_pad=1),
             helper.make_node("AveragePool", ["x"], ["avg_pads_excluded"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("GlobalAveragePool", ["x"], ["global_avg"]),
             helper.make_node("ReduceMean", ["x"], ["mean_hw"], axes=[2, 3]),
             helper.make_node("ReduceMean", ["x"], ["mean_c"], axes=[1], keepdims=0),
             helper.make_node("Resize", ["x", "roi", "scales2"], ["nearest"], mode="nearest",
                              coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
             helper.make_node("Resize", ["x", "roi", "scales_mixed"], ["half_pixel"], **resize),
             helper.make_node("Resize", ["x", "roi", "none", "sizes"], ["asymmetric"], **resize,
                              coordinate_transformation_mode="asymmetric"),
             helper.make_node("Resize", ["x", "roi", "scales15"], ["align_corners"], **resize,
                              coordinate_transformation_mode="align_corners")]
    model = build(nodes, inits, [n.output[0] for n in nodes], shape=(1, 4, "H", "W"))
    check_converted(tmp_path, model, [(1, 4, 7, 9), (1, 4, 6, 8)])


def test_elementwise_activation_norm_family(tmp_path):
    c = 4
    inits = {"s": np.array(1.4142135, np.float32), "one": np.array(1.0, np.float32), "half": np.array(0.5, np.float32),
             "per_c": weights(c, 1, 1), "row": weights(1, c, 1, 1), "scale": weights(c), "bias": weights(c),
             "mean": weights(c), "var": np.abs(weights(c)) + 0.5}
    value = numpy_helper.from_array(weights(1, c, 1, 1), "value")
    nodes = [helper.make_node("Add", ["x", "one"], ["add"]), helper.make_node("Sub", ["x", "per_c"], ["sub"]),
             helper.make_node("Mul", ["row", "x"], ["mul"]), helper.make_node("Div", ["x", "s"], ["div"]),
             helper.make_node("Relu", ["x"], ["relu"]), helper.make_node("Sigmoid", ["x"], ["sigmoid"]),
             helper.make_node("Erf", ["x"], ["erf"]), helper.make_node("HardSwish", ["x"], ["hardswish"]),
             helper.make_node("HardSigmoid", ["x"], ["hardsigmoid"], alpha=0.1666667, beta=0.5),
             helper.make_node("HardSigmoid", ["x"], ["hardsigmoid_default"]),
             helper.make_node("Softmax", ["x"], ["softmax"], axis=1),
             helper.make_node("Identity", ["x"], ["identity"]), helper.make_node("Dropout", ["x"], ["dropout"]),
             helper.make_node("Constant", [], ["c"], value=value), helper.make_node("Add", ["x", "c"], ["constant"]),
             helper.make_node("BatchNormalization", ["x", "scale", "bias", "mean", "var"], ["bn"], epsilon=1e-3),
             # GELU as paddle2onnx writes it for v6 (x * (erf(x / sqrt 2) + 1) * 0.5)
             helper.make_node("Div", ["x", "s"], ["g1"]), helper.make_node("Erf", ["g1"], ["g2"]),
             helper.make_node("Add", ["g2", "one"], ["g3"]), helper.make_node("Mul", ["x", "g3"], ["g4"]),
             helper.make_node("Mul", ["g4", "half"], ["gelu"])]
    outputs = [n.output[0] for n in nodes if n.output[0] not in ("c", "g1", "g2", "g3", "g4")]
    check_converted(tmp_path, build(nodes, inits, outputs), [(2, 4, 5, 6)])


def test_sequence_family_opset13(tmp_path):
    """The rec tail: squeeze the height, transpose, Linear, softmax; axes as inputs (opset 13)."""
    inits = {"h": np.array([2], np.int64), "w": weights(4, 6), "b": weights(6), "shape": np.array([0, -1, 2], np.int64),
             "wt": weights(3, 4), "flat_w": weights(12), "w_shape": np.array([4, 3], np.int64),
             "scale": weights(4), "bias": weights(4), "mean": weights(4), "var": np.abs(weights(4)) + 0.5}
    nodes = [helper.make_node("Squeeze", ["x", "h"], ["seq"]),
             helper.make_node("BatchNormalization", ["seq", "scale", "bias", "mean", "var"], ["bn1d"]),
             helper.make_node("Transpose", ["bn1d"], ["t"], perm=[0, 2, 1]),
             helper.make_node("MatMul", ["t", "w"], ["mm"]), helper.make_node("Add", ["mm", "b"], ["linear"]),
             helper.make_node("Softmax", ["linear"], ["probs"]),
             helper.make_node("Unsqueeze", ["probs", "h"], ["lifted"]),
             helper.make_node("Reshape", ["linear", "shape"], ["reshaped"]),
             helper.make_node("Transpose", ["seq"], ["reversed"]),
             helper.make_node("Concat", ["linear", "linear"], ["cat"], axis=1),
             # weights transposed or reshaped in the graph: done while converting, matmul_v2 reads a weight
             helper.make_node("Transpose", ["wt"], ["wt_t"], perm=[1, 0]),
             helper.make_node("MatMul", ["t", "wt_t"], ["mm_t"]),
             helper.make_node("Reshape", ["flat_w", "w_shape"], ["w2"]),
             helper.make_node("MatMul", ["t", "w2"], ["mm_r"])]
    model = build(nodes, inits, ["probs", "lifted", "reshaped", "reversed", "cat", "bn1d", "mm_t", "mm_r"], opset=13,
                  shape=("N", 4, 1, "W"))
    check_converted(tmp_path, model, [(2, 4, 1, 10), (3, 4, 1, 7)])
    ops, persistable = fh.program_ops(tmp_path / "converted")
    assert sum(1 for t, ins in ops if t == "matmul_v2" and ins["Y"][0] in persistable) == 3


def test_opset11_forms(tmp_path):
    """Squeeze/Unsqueeze with axes attributes, Softmax over the last axis of a 3-D tensor
    (opset < 13 normalizes from `axis` on), Resize with roi and scales."""
    inits = {"roi": np.array([], np.float32), "scales": np.array([1, 1, 2, 2], np.float32), "w": weights(4, 4, 1, 1)}
    nodes = [helper.make_node("Conv", ["x", "w"], ["conv"]),
             helper.make_node("Squeeze", ["conv"], ["seq"], axes=[2]),
             helper.make_node("Softmax", ["seq"], ["probs"], axis=2),
             helper.make_node("Unsqueeze", ["probs"], ["lifted"], axes=[-2]),
             helper.make_node("Resize", ["lifted", "roi", "scales"], ["up"], mode="nearest",
                              coordinate_transformation_mode="asymmetric", nearest_mode="floor")]
    check_converted(tmp_path, build(nodes, inits, ["probs", "up", "conv"], opset=11, shape=("N", 4, 1, "W")),
                    [(2, 4, 1, 6)])


# ---- refusals ----

def save(tmp_path, model):
    path = str(tmp_path / "model.onnx")
    onnx.save(model, path)
    return path


def test_unknown_ops_named_before_anything_is_built(tmp_path):
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Einsum", ["r", "r"], ["e"], equation="ij,ij->ij"),
             helper.make_node("FusedConv", ["e"], ["y"], domain="com.microsoft")]
    model = build(nodes, {}, ["y"])
    model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    path, out = save(tmp_path, model), tmp_path / "out"
    with pytest.raises(UserError) as err:
        onnx_in.convert(path, str(out))
    assert str(err.value).startswith(f"{path}: ONNX ops 'Einsum', 'com.microsoft.FusedConv' are not supported by "
                                     "the converter (supported: ")
    assert not out.exists()


@pytest.mark.parametrize("node, opset, expected", [
    (helper.make_node("Resize", ["x", "roi", "scales"], ["y"], mode="nearest"), 14,
     "cannot be converted: mode nearest with half_pixel coordinates"),
    (helper.make_node("Softmax", ["x"], ["y"], axis=1), 11, "opset 11 Softmax over axes 1..3"),
    (helper.make_node("MaxPool", ["x"], ["y", "i"], kernel_shape=[2, 2]), 14, "max pool indices"),
])
def test_unsupported_attributes_are_one_clear_error(tmp_path, node, opset, expected):
    inits = {"roi": np.array([], np.float32), "scales": np.array([1, 1, 2, 2], np.float32)}
    path = save(tmp_path, build([node], inits, list(node.output), opset=opset))
    with pytest.raises(UserError) as err:
        onnx_in.convert(path, str(tmp_path / "out"))
    assert str(err.value).startswith(f"{path}: node 0 ({node.op_type} ") and expected in str(err.value)


def test_damaged_file_is_one_clear_error(tmp_path):
    path = save(tmp_path, build([helper.make_node("Relu", ["x"], ["y"])], {}, ["y"]))
    with open(path, "r+b") as f:
        f.truncate(20)
    with pytest.raises(UserError, match="is not a complete ONNX model"):
        onnx_in.convert(path, str(tmp_path / "out"))


# ---- the real PP-OCRv6 tiny models ----

@pytest.fixture(scope="module")
def v6(tmp_path_factory):
    """{task: (original ONNX path, converted folder)}"""
    out = tmp_path_factory.mktemp("v6")
    paths = {task: fh.real_model(f"PP-OCRv6_tiny_{task}_onnx", "inference.onnx") for task in ("det", "rec")}
    return {task: (path, onnx_in.convert(path, str(out / task))) for task, path in paths.items()}


def original(path):
    from ocrslim.deploy.runtime import onnx_predictor
    return onnx_predictor(path, "cpu", 1)[0]


def input_dims(path):
    dims = onnx.load(path, load_external_data=False).graph.input[0].type.tensor_type.shape.dim
    return [d.dim_value or -1 for d in dims]


def test_v6_det_matches_onnxruntime(v6):
    """The v5 det goldens' inputs (same preprocessing family), three sizes."""
    path, folder = v6["det"]
    assert fh.feed_shape(folder) == input_dims(path) == [-1, 3, -1, -1]
    g, run, ref = fh.golden("PP-OCRv5_mobile_det"), fh.native(folder), original(path)
    for k in range(3):
        want, got = ref(g[f"x{k}"])[0], run(g[f"x{k}"])[0]
        assert got.shape == want.shape and np.abs(got - want).max() <= 1e-4, k


def test_v6_rec_matches_onnxruntime_at_two_widths(v6):
    path, folder = v6["rec"]
    height = input_dims(path)[2]
    assert fh.feed_shape(folder) == [-1, 3, height, -1]  # the width stays free
    g, run, ref = fh.golden("PP-OCRv5_mobile_rec"), fh.native(folder), original(path)
    for k in range(2):  # widths 320 and 160
        x = g[f"x{k}"]
        assert x.shape[2] == height, "the v5 rec crops are as high as v6 tiny rec reads them"
        want, got = ref(x)[0], run(x)[0]
        assert got.shape == want.shape and np.abs(got - want).max() <= 1e-4, k
        assert (got.argmax(-1) == want.argmax(-1)).all(), k


def test_v6_programs_are_what_paddleslim_quantizes(v6):
    for task, (path, folder) in v6.items():
        ops, persistable = fh.program_ops(folder)
        assert all(ins["Filter"][0] in persistable for t, ins in ops if t in ("conv2d", "depthwise_conv2d"))
        graph = onnx.load(path, load_external_data=False).graph
        weights_in = {t.name for t in graph.initializer}
        linear = sum(1 for n in graph.node if n.op_type == "MatMul" and n.input[1] in weights_in)
        assert sum(1 for t, ins in ops if t == "matmul_v2" and ins["Y"][0] in persistable) == linear, task


def test_v6_programs_merge_into_a_distillation_program(v6):
    """QAT's distiller copies the teacher's ops into the student's program with append_op, which
    checks each op's outputs: the translation gives squeeze2 / transpose2 / unsqueeze2 the XShape
    output a Paddle 2.x export has (without it QAT of v6 rec stopped at once)."""
    import paddle
    from paddleslim.dist import merge
    paddle.enable_static()
    exe = paddle.static.Executor(paddle.CPUPlace())
    for task, (path, folder) in v6.items():
        ops, _ = fh.program_ops(folder)
        assert task == "det" or any(t in builder.XSHAPE_OPS for t, _ in ops)
        programs = [paddle.static.load_inference_model(os.path.join(folder, "inference"), exe) for _ in range(2)]
        (teacher, feeds, _), (student, _, _) = programs
        before = len(student.global_block().ops)
        merge(teacher, student, {feeds[0]: feeds[0]}, paddle.CPUPlace(), scope=paddle.static.global_scope())
        assert len(student.global_block().ops) > before, task


def test_v6_on_every_runtime(v6, tmp_path):
    """oneDNN (Paddle Inference as deployed), onnxruntime and OpenVINO f32 on the paddle2onnx
    export of the converted model: finite, within 1e-4 of the converted model on Paddle's native
    kernels as translated (IR passes off: no batch norm folded into conv weights), rec argmax
    identical to it and to onnxruntime on the original.

    v6 tiny rec at width 320 is where float32 shows: against a float64 run of the converted
    model, onnxruntime on the original is 9.2e-5 off, oneDNN 3.9e-5, Paddle native with its
    default passes 4.6e-5, without them 1.6e-5. So oneDNN is 1.3e-4 from onnxruntime on the
    original and 8.6e-5 from native with passes: the reference here is the run closest to float64."""
    from ocrslim.deploy import runtime
    for task, inputs in (("det", ("x0", "x1")), ("rec", ("x0", "x1"))):
        path, folder = v6[task]
        files = (folder, "inference.pdmodel", "inference.pdiparams")
        exported = runtime.onnx_model(files, str(tmp_path), task)
        g = fh.golden(f"PP-OCRv5_mobile_{task}")
        native, ref = fh.native(folder, ir_optim=False), original(path)
        for name, (predict, _) in (("oneDNN", runtime.paddle_predictor(files, "cpu", 1)),
                                   ("onnxruntime", runtime.onnx_predictor(exported, "cpu", 1)),
                                   ("OpenVINO", runtime.openvino_predictor(exported, 1, "f32"))):
            for k in inputs:
                y, want = predict(g[k])[0], native(g[k])[0]
                assert np.isfinite(y).all() and np.abs(y - want).max() <= 1e-4, (task, name, k)
                if task == "rec":
                    assert (y.argmax(-1) == ref(g[k])[0].argmax(-1)).all(), (name, k)


def test_v6_det_int8_runs_on_paddle_inference(v6, tmp_path):
    """PP-OCRv6 tiny det concatenates a pooled map with a conv output; oneDNN cannot build that
    concat in int8 ("could not create a primitive descriptor"): the predictor finds it out on a
    dry run and runs its concats in float, for every input size."""
    import paddle
    from ocrslim.compress import calibrate
    from ocrslim.deploy import runtime
    paddle.enable_static()
    folder = v6["det"][1]
    rng = np.random.RandomState(0)
    name = [outs[0] for t, outs in runtime.paddle_ops(os.path.join(folder, "inference.pdmodel")) if t == "feed"][0]
    feeds = [{name: rng.rand(1, 3, 64, 64).astype("float32")}]
    calib = {"algo": "abs_max", "batch_nums": 1, "hist_percent": 0.99999, "keep_float": [],
             "quantize_op_types": ["conv2d", "depthwise_conv2d"], "weight_quantize_type": "channel_wise_abs_max"}
    out = tmp_path / "int8"
    calibrate.calibrate((folder, "inference.pdmodel", "inference.pdiparams"), feeds, calib, paddle.CPUPlace(),
                        save_dir=str(out))
    predict, info = runtime.paddle_predictor((str(out), "inference.pdmodel", "inference.pdiparams"), "cpu", 1)
    assert info["precision"] == "int8" and "concat" not in info["int8_ops"] and "conv2d" in info["int8_ops"]
    for shape in [(1, 3, 96, 160), (1, 3, 128, 128)]:
        assert predict(rng.rand(*shape).astype("float32"))[0].shape == (1, 1) + shape[2:]


def test_v6_rec_int8_onnx_computes_what_the_executor_does(v6, tmp_path):
    """PP-OCRv6 has GELU (Erf): its int8 ONNX gets no Q on conv outputs (onnx_passes.apply_quantizers
    says what they cost on real crops), so onnxruntime computes the executor's model."""
    import onnx
    import paddle
    from ocrslim.compress import calibrate
    from ocrslim.deploy import runtime
    paddle.enable_static()
    folder = v6["rec"][1]
    name = [outs[0] for t, outs in runtime.paddle_ops(os.path.join(folder, "inference.pdmodel")) if t == "feed"][0]
    x = fh.golden("PP-OCRv5_mobile_rec")["x0"]  # real crops, as high as v6 tiny rec reads them
    calib = {"algo": "abs_max", "batch_nums": 1, "hist_percent": 0.99999, "keep_float": [],
             "quantize_op_types": ["conv2d", "matmul_v2"], "weight_quantize_type": "channel_wise_abs_max"}
    out = tmp_path / "int8"
    calibrate.calibrate((folder, "inference.pdmodel", "inference.pdiparams"), [{name: x}], calib, paddle.CPUPlace(),
                        save_dir=str(out))
    path = runtime.onnx_model((str(out), "inference.pdmodel", "inference.pdiparams"), str(tmp_path), "model")
    graph = onnx.load(path).graph
    assert any(n.op_type == "Erf" for n in graph.node) and any(n.op_type == "QuantizeLinear" for n in graph.node)
    # apply_quantizers renames a conv whose output it quantizes to NAME__conv
    assert not [n.name for n in graph.node if n.op_type == "Conv" and n.output[0].endswith("__conv")]
    exe = paddle.static.Executor(paddle.CPUPlace())
    program, feeds, fetches = paddle.static.load_inference_model(os.path.join(str(out), "inference"), exe)
    want = exe.run(program, feed={feeds[0]: x}, fetch_list=fetches)[0]
    got = runtime.onnx_predictor(path, "cpu", 1)[0](x)[0]
    # measured: mean |diff| 9.0e-6 and 97.8% of the argmax frames equal; with the conv output
    # Qs 7.3e-5 (near ties between frames' top classes move either way: int8 rounding)
    assert np.abs(got - want).mean() < 3e-5 and (got.argmax(-1) == want.argmax(-1)).mean() > 0.95
