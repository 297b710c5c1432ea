"""onnx_passes: each rewrite of a paddle2onnx int8 export, on a tiny synthetic graph, run in onnxruntime.

Every test builds the pattern a pass rewrites (and a near miss it must leave alone), runs that pass
alone through OnnxGraph, saves the result (save() runs the ONNX checker) and compares the outputs of
the original and rewritten graph on the same seeded input, at ORT_DISABLE_ALL (the graph's math as
written) and at ORT_ENABLE_ALL (what deploy runs: onnxruntime's own fusions, QLinearConv included).
"""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from ocrslim.deploy import onnx_passes as passes
from ocrslim.deploy.onnx_graph import OnnxGraph

X_SHAPE = [1, 4, 8, 8]
PLAIN, OPTIMIZED = ort.GraphOptimizationLevel.ORT_DISABLE_ALL, ort.GraphOptimizationLevel.ORT_ENABLE_ALL
node = helper.make_node


# ---------------------------------------------------------------------------- graphs


def make_model(nodes, inits, outputs=("y",)):
    """An opset-13 model with the float input x [1, 4, 8, 8] and 4-d float outputs; inits: {name: array}."""
    graph = helper.make_graph(
        nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, X_SHAPE)],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, ["n", "c", "h", "w"]) for o in outputs],
        [numpy_helper.from_array(np.asarray(a), k) for k, a in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model)
    return model


def act_qdq(inits, x, out, scale, zero=np.int8(0)):
    """paddle2onnx's activation quantizer: QuantizeLinear(x, scale, zero point) -> DequantizeLinear."""
    inits[out + "_s"], inits[out + "_z"] = np.float32(scale), zero
    return [node("QuantizeLinear", [x, out + "_s", out + "_z"], [out + "_q"]),
            node("DequantizeLinear", [out + "_q", out + "_s", out + "_z"], [out])]


def int8_weights_values(rng, shape):
    """Random int8 weights in [-64, 63]: a pair of u8 x s8 products then fits in int16, so the
    saturating U8S8 kernels of AVX2 CPUs (see uint8_weights) sum exactly, as VNNI ones do, and the
    optimized outputs compared below do not depend on the CPU."""
    return rng.integers(-64, 64, shape).astype(np.int8)


def int8_weight(rng, inits, out, shape):
    """A weight as int8_weights leaves it: int8 initializer -> per-channel DequantizeLinear (axis 0)."""
    inits[out + "_i8"] = int8_weights_values(rng, shape)
    inits[out + "_s"] = rng.uniform(0.002, 0.01, shape[0]).astype(np.float32)
    inits[out + "_z"] = np.zeros(shape[0], np.int8)
    return [node("DequantizeLinear", [out + "_i8", out + "_s", out + "_z"], [out], axis=0)]


def int8_conv(rng, inits, x, out, cout=6, k=3, pads=1, **attrs):
    """Conv(x, int8 weight) -> out, its weight [cout, 4, k, k] dequantized per channel."""
    return int8_weight(rng, inits, out + "_w", [cout, 4, k, k]) + [
        node("Conv", [x, out + "_w"], [out], kernel_shape=[k, k], pads=[pads] * 4, **attrs)]


def op_types(model):
    return [n.op_type for n in model.graph.node]


def inits_of(model):
    return {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}


def readers(model, name):
    return [n for n in model.graph.node if name in n.input]


def producer(model, name):
    return next(n for n in model.graph.node if name in n.output)


# ---------------------------------------------------------------------------- running


def rewrite(model, fn, tmp_path):
    """Run the pass fn alone on a copy of model; save (checked) and reload: (count, new model)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    g = OnnxGraph(copy)
    count = fn(g)
    path = str(tmp_path / f"{fn.__name__}.onnx")
    g.save(path)
    return count, onnx.load(path)


def run(model, x, level):
    options = ort.SessionOptions()
    options.graph_optimization_level = level
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})


def x_input(seed=1):
    return np.random.default_rng(seed).standard_normal(X_SHAPE).astype(np.float32)


def compare(before, after, x, plain=0.0, optimized=None):
    """The outputs of before and after agree within an absolute tolerance, one value or one per output:
    `plain` at ORT_DISABLE_ALL, `optimized` (default: plain) at ORT_ENABLE_ALL."""
    for level, tol in ((PLAIN, plain), (OPTIMIZED, plain if optimized is None else optimized)):
        a, b = run(before, x, level), run(after, x, level)
        assert len(a) == len(b)
        for i, (u, v, t) in enumerate(zip(a, b, np.broadcast_to(tol, len(a)))):
            assert u.shape == v.shape
            err = float(np.abs(u.astype(np.float64) - v).max())
            assert err <= t, f"output {i} at {level}: max difference {err} > {t}"


def rel(scale, eps=1e-5):
    """Float rewrites (re-associated sums, folded factors): a tolerance relative to the output size."""
    return eps * scale


# ---------------------------------------------------------------------------- int8_weights


def weight_q_graph(rng, q_weights=True):
    """x -> Q/DQ -> Conv(w) -> y; with q_weights, w is QuantizeLinear(float w, per-channel) -> DQ as
    paddle2onnx exports it, else the float constant itself."""
    inits = {}
    nodes = act_qdq(inits, "x", "xd", 0.03)
    s = rng.uniform(0.01, 0.02, 6).astype(np.float32)
    s[0] = 1 / 64  # a power of two: w / s is exact, so channel 0 holds exact ties k + 0.5
    k = rng.integers(-140, 141, (6, 4, 3, 3))  # a few outside int8: saturation
    # the other channels stay 0.1 away from ties (near one, float32 and float64 division may round
    # apart: see test_int8_weights_rounds_near_ties_like_ort)
    frac = rng.uniform(-0.4, 0.4, k.shape)
    frac[0] = 0.5
    inits["w"] = ((k + frac) * s[:, None, None, None]).astype(np.float32)
    if q_weights:
        inits.update({"w_s": s, "w_z": np.zeros(6, np.int8)})
        nodes += [node("QuantizeLinear", ["w", "w_s", "w_z"], ["w_q"], axis=0),
                  node("DequantizeLinear", ["w_q", "w_s", "w_z"], ["w_dq"], axis=0)]
    nodes.append(node("Conv", ["xd", "w_dq" if q_weights else "w"], ["y"], kernel_shape=[3, 3], pads=[1] * 4))
    return make_model(nodes, inits)


def test_int8_weights(tmp_path):
    """int8_weights: QuantizeLinear(float constant) becomes an int8 initializer holding what ORT's
    QuantizeLinear computes (half to even, saturating), read by the same DequantizeLinear."""
    before = weight_q_graph(np.random.default_rng(0))
    count, after = rewrite(before, passes.int8_weights, tmp_path)
    assert count == 1
    assert op_types(after) == ["QuantizeLinear", "DequantizeLinear", "DequantizeLinear", "Conv"]
    consts = inits_of(after)
    assert not [n for n in after.graph.node if n.op_type == "QuantizeLinear" and n.input[0] in consts]
    w_dq = producer(after, "w_dq")
    q = consts[w_dq.input[0]]
    assert q.dtype == np.int8 and q.shape == (6, 4, 3, 3)
    # the reference: ORT's own QuantizeLinear of the weight
    orig = inits_of(before)
    only_q = helper.make_model(helper.make_graph(
        [node("QuantizeLinear", ["w", "w_s", "w_z"], ["q"], axis=0)], "q", [],
        [helper.make_tensor_value_info("q", TensorProto.INT8, None)],
        [numpy_helper.from_array(orig[k], k) for k in ("w", "w_s", "w_z")]),
        opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    expected = ort.InferenceSession(only_q.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {})[0]
    np.testing.assert_array_equal(q, expected)
    ties = q[0][np.abs(orig["w"][0] * 64) < 127]  # channel 0, not saturated: k + 0.5
    assert ties.size > 20 and not (ties % 2).any()  # every tie rounded to even
    assert q.min() == -128 and q.max() == 127
    # the same int8 weights: the same conv, bit for bit
    compare(before, after, x_input())


def test_int8_weights_leaves_activation_quantizers(tmp_path):
    """int8_weights: the QuantizeLinear of an activation (and a float weight) is not touched."""
    before = weight_q_graph(np.random.default_rng(0), q_weights=False)
    count, after = rewrite(before, passes.int8_weights, tmp_path)
    assert count == 0
    assert op_types(after) == op_types(before) == ["QuantizeLinear", "DequantizeLinear", "Conv"]
    assert inits_of(after)["w"].dtype == np.float32


def test_int8_weights_rounds_near_ties_like_ort(tmp_path):
    """int8_weights: the int8 value is what the QuantizeLinear it replaces computes, also when w / s
    is only a half step in float32 (-0.058016323 / 0.0011962128: float32 -48.5 -> -48, float64
    -48.5000001 -> -49)."""
    w, s = np.float32(-0.058016323), np.float32(0.0011962128)
    inits = {"w": np.full((1, 4, 1, 1), w, np.float32), "w_s": np.array([s]), "w_z": np.zeros(1, np.int8)}
    nodes = [node("QuantizeLinear", ["w", "w_s", "w_z"], ["w_q"], axis=0),
             node("DequantizeLinear", ["w_q", "w_s", "w_z"], ["w_dq"], axis=0),
             node("Conv", ["x", "w_dq"], ["y"], kernel_shape=[1, 1])]
    count, after = rewrite(make_model(nodes, inits), passes.int8_weights, tmp_path)
    assert count == 1
    assert (inits_of(after)[producer(after, "w_dq").input[0]] == -48).all()


# ---------------------------------------------------------------------------- uint8_activations


def int8_conv_graph(rng, zero=np.int8(0)):
    """x -> Q/DQ -> Conv(int8 weight) -> Q/DQ -> y, activation zero points `zero`."""
    inits = {}
    nodes = (act_qdq(inits, "x", "xd", 0.03, zero) + int8_conv(rng, inits, "xd", "c")
             + act_qdq(inits, "c", "y", 0.02, zero))
    return make_model(nodes, inits)


def test_uint8_activations(tmp_path):
    """uint8_activations: activation Q/DQ zero points int8 0 -> uint8 128 (the same 256 values);
    the weight's DequantizeLinear keeps its int8 zero points."""
    before = int8_conv_graph(np.random.default_rng(0))
    count, after = rewrite(before, passes.uint8_activations, tmp_path)
    assert count == 4
    consts = inits_of(after)
    for n in [n for n in after.graph.node if n.op_type != "Conv"]:
        z = consts[n.input[2]]
        if n.input[0] in consts:  # the weight
            assert z.dtype == np.int8 and not z.any()
        else:
            assert z.dtype == np.uint8 and z.shape == () and int(z) == 128
    # plain: the same grid, bit for bit. Optimized: both run as QLinearConv, with int8 (S8S8) or
    # uint8 (U8S8) activations: different kernels, whose requantization of the int32 sums to the
    # output scale may round a value that lands near a half step apart: at most one step (0.02).
    compare(before, after, x_input(), 0.0, 0.02 * 1.0001)


def test_uint8_activations_leaves_other_zero_points(tmp_path):
    """uint8_activations: a zero point other than int8 0 (another grid) is left as it is."""
    before = int8_conv_graph(np.random.default_rng(0), zero=np.int8(5))
    count, after = rewrite(before, passes.uint8_activations, tmp_path)
    assert count == 0
    assert all(z.dtype == np.int8 for k, z in inits_of(after).items() if k.endswith("_z"))


# ---------------------------------------------------------------------------- gap_from_conv_input


def gap_graph(rng, k, pads, **attrs):
    """x -> Q/DQ -> Conv(int8 weight, int32 bias via DQ) -> c; c -> Q/DQ -> y; GAP(c) -> gap
    (the det neck's SE block: the conv's float output is read by its Q and a GlobalAveragePool)."""
    inits = {}
    nodes = act_qdq(inits, "x", "xd", 0.03) + int8_conv(rng, inits, "xd", "c", k=k, pads=pads, **attrs)
    inits.update({"b_i32": rng.integers(-2000, 2000, 6).astype(np.int32),
                  "b_s": (0.03 * inits["c_w_s"]).astype(np.float32), "b_z": np.zeros(6, np.int32)})
    nodes.insert(-1, node("DequantizeLinear", ["b_i32", "b_s", "b_z"], ["b"], axis=0))
    nodes[-1].input.append("b")  # the Conv's bias
    nodes += act_qdq(inits, "c", "y", 0.02) + [node("GlobalAveragePool", ["c"], ["gap"])]
    return make_model(nodes, inits, outputs=("y", "gap"))


@pytest.mark.parametrize("k, pads", [(1, 0), (3, 1)])
def test_gap_from_conv_input(tmp_path, k, pads):
    """gap_from_conv_input: GAP(conv(x)) is computed from x (1x1: conv(GAP(x)); 3x3 pad 1: per-tap
    sums of x), so the conv's only reader is its QuantizeLinear."""
    before = gap_graph(np.random.default_rng(0), k, pads)
    count, after = rewrite(before, passes.gap_from_conv_input, tmp_path)
    assert count == 1
    assert [n.op_type for n in readers(after, "c")] == ["QuantizeLinear"]
    assert producer(after, "gap").op_type == "Conv"
    assert not [n for n in after.graph.node if n.op_type == "GlobalAveragePool" and n.input[0] != "xd"]
    x = x_input()
    gap = np.abs(run(before, x, PLAIN)[1]).max()
    # gap: the same sum in another order (float rounding). y: as written it is the same graph;
    # optimized, the rewritten conv (now read only by its Q) runs as QLinearConv, which requantizes
    # its int32 sum directly instead of rounding a float conv output: at most one step (0.02) apart.
    compare(before, after, x, [0.0, rel(gap)], [0.02 * 1.0001, rel(gap)])


@pytest.mark.parametrize("k, pads, attrs", [(1, 0, {"strides": [2, 2]}), (3, 0, {}), (3, 1, {"dilations": [2, 2]})],
                         ids=["strided", "3x3-pad0", "dilated"])
def test_gap_from_conv_input_leaves_other_convs(tmp_path, k, pads, attrs):
    """gap_from_conv_input: a strided, unpadded 3x3 or dilated conv keeps its GlobalAveragePool."""
    before = gap_graph(np.random.default_rng(0), k, pads, **attrs)
    count, after = rewrite(before, passes.gap_from_conv_input, tmp_path)
    assert count == 0
    assert sorted(n.op_type for n in readers(after, "c")) == ["GlobalAveragePool", "QuantizeLinear"]


def test_gap_from_conv_input_float_bias(tmp_path):
    """gap_from_conv_input: a conv with an int8 weight and a float bias initializer (what
    apply_quantizers writes for a conv whose output keeps float) is rewritten like a DQ bias."""
    rng, inits = np.random.default_rng(0), {}
    nodes = act_qdq(inits, "x", "xd", 0.03) + int8_conv(rng, inits, "xd", "c", k=1, pads=0)
    inits["b"] = rng.standard_normal(6).astype(np.float32)
    nodes[-1].input.append("b")
    before = make_model(nodes + [node("GlobalAveragePool", ["c"], ["gap"])], inits, outputs=("c", "gap"))
    count, after = rewrite(before, passes.gap_from_conv_input, tmp_path)
    assert count == 1
    x = x_input()
    compare(before, after, x, rel(np.abs(run(before, x, PLAIN)[1]).max()))


# ---------------------------------------------------------------------------- fold_scalar_muls


def scalar_mul_graph(rng, s_shape=()):
    """The two forms fold_scalar_muls rewrites, side by side (s1, s2 of shape s_shape):
    x -> Q/DQ -> Mul s1 -> Add b1 -> ya   (s1 a Constant node, as paddle2onnx writes scalars)
    x -> Mul s2 -> Add b2 -> Q/DQ -> yb"""
    inits, (s1, s2), (b1, b2) = {}, rng.uniform(0.5, 2.0, 2), rng.uniform(-0.5, 0.5, 2)
    inits.update({"s2": np.full(s_shape, s2, np.float32), "b1": np.float32(b1), "b2": np.array([b2], np.float32)})
    nodes = act_qdq(inits, "x", "xa", 0.03) + [
        node("Constant", [], ["s1"], value=numpy_helper.from_array(np.full(s_shape, s1, np.float32))),
        node("Mul", ["xa", "s1"], ["ma"]), node("Add", ["ma", "b1"], ["ya"]),
        node("Mul", ["s2", "x"], ["mb"]), node("Add", ["b2", "mb"], ["ab"])] + act_qdq(inits, "ab", "yb", 0.05)
    return make_model(nodes, inits, outputs=("ya", "yb")), s1, s2, b2


def test_fold_scalar_muls(tmp_path):
    """fold_scalar_muls: DQ(v, q) -> Mul s -> Add b  ==>  DQ(v, q*s) -> Add b, and
    Mul s -> Add b -> Q(q)  ==>  Add b/s -> Q(q/s) (the DQ after it keeps q)."""
    before, s1, s2, b2 = scalar_mul_graph(np.random.default_rng(0))
    count, after = rewrite(before, passes.fold_scalar_muls, tmp_path)
    assert count == 2
    assert "Mul" not in op_types(after)
    consts = inits_of(after)
    dq_a = producer(after, "xa")
    assert readers(after, "xa")[0].output[0] == "ya"
    np.testing.assert_allclose(consts[dq_a.input[1]], 0.03 * s1, rtol=1e-6)
    add_b, q_b, dq_b = producer(after, "ab"), readers(after, "ab")[0], producer(after, "yb")
    assert "x" in add_b.input
    np.testing.assert_allclose(consts[next(i for i in add_b.input if i != "x")], b2 / s2, rtol=1e-6)
    np.testing.assert_allclose(consts[q_b.input[1]], 0.05 / s2, rtol=1e-6)
    assert consts[dq_b.input[1]] == np.float32(0.05)
    x = x_input()
    ya = np.abs(run(before, x, PLAIN)[0]).max()
    # ya: (v * q) * s against v * (q * s): float rounding. yb: (x*s + b) / q against (x + b/s) / (q/s),
    # the same value rounded differently, so a value within float rounding of a half step may round
    # to the other neighbour: at most one step (0.05) apart.
    compare(before, after, x, [rel(ya), 0.05 * 1.0001])


def test_fold_scalar_muls_leaves_non_scalar_mul(tmp_path):
    """fold_scalar_muls: a per-channel Mul [1, 4, 1, 1] does not go into a per-tensor scale."""
    before = scalar_mul_graph(np.random.default_rng(0), s_shape=(1, 4, 1, 1))[0]
    count, after = rewrite(before, passes.fold_scalar_muls, tmp_path)
    assert count == 0
    assert op_types(after).count("Mul") == 2


# ---------------------------------------------------------------------------- fold_convtranspose_bn


def convtranspose_graph(rng, group=1):
    """x -> ConvTranspose(stride 2) -> Add(bias [1, 6, 1, 1]) -> BatchNormalization -> y."""
    inits = {"w": rng.standard_normal((4, 6 // group, 2, 2)).astype(np.float32),
             "bias": rng.standard_normal((1, 6, 1, 1)).astype(np.float32),
             "gamma": rng.uniform(0.5, 2, 6).astype(np.float32), "beta": rng.standard_normal(6).astype(np.float32),
             "mean": rng.standard_normal(6).astype(np.float32), "var": rng.uniform(0.1, 2, 6).astype(np.float32)}
    nodes = [node("ConvTranspose", ["x", "w"], ["ct"], kernel_shape=[2, 2], strides=[2, 2], group=group),
             node("Add", ["ct", "bias"], ["ab"]),
             node("BatchNormalization", ["ab", "gamma", "beta", "mean", "var"], ["y"], epsilon=1e-3)]
    return make_model(nodes, inits)


def test_fold_convtranspose_bn(tmp_path):
    """fold_convtranspose_bn: ConvTranspose -> Add(bias) -> BatchNormalization becomes one
    ConvTranspose with the batch norm in its weights and bias."""
    before = convtranspose_graph(np.random.default_rng(0))
    count, after = rewrite(before, passes.fold_convtranspose_bn, tmp_path)
    assert count == 1
    assert op_types(after) == ["ConvTranspose"]
    ct = after.graph.node[0]
    assert len(ct.input) == 3 and ct.output[0] == "y"
    x = x_input()
    compare(before, after, x, rel(np.abs(run(before, x, PLAIN)[0]).max()))


def test_fold_convtranspose_bn_leaves_grouped(tmp_path):
    """fold_convtranspose_bn: a grouped ConvTranspose (group=2) is left alone."""
    before = convtranspose_graph(np.random.default_rng(0), group=2)
    count, after = rewrite(before, passes.fold_convtranspose_bn, tmp_path)
    assert count == 0
    assert op_types(after) == ["ConvTranspose", "Add", "BatchNormalization"]


# ---------------------------------------------------------------------------- deconv_pairs


def deconv_pair_graph(rng, quantized=False, kernel=2, c_mid=3, second_reader=False):
    """The DB head: x [1, 4, 8, 8] -> ConvTranspose(k2 s2, bias) [-> Q/DQ] -> Relu [-> Q/DQ] ->
    ConvTranspose(k2 s2) -> Add(bias) -> Sigmoid -> y [1, 2, 32, 32]; with second_reader the Relu
    output is also a graph output."""
    inits = {"w1": rng.standard_normal((4, c_mid, kernel, kernel)).astype(np.float32),
             "b1": rng.standard_normal(c_mid).astype(np.float32),
             "w2": rng.standard_normal((c_mid, 2, 2, 2)).astype(np.float32),
             "b2": rng.standard_normal((1, 2, 1, 1)).astype(np.float32)}
    nodes = [node("ConvTranspose", ["x", "w1", "b1"], ["t1"], kernel_shape=[kernel, kernel], strides=[2, 2])]
    t = "t1"
    if quantized:
        nodes += act_qdq(inits, "t1", "t1d", 0.05, np.uint8(128))
        t = "t1d"
    nodes.append(node("Relu", [t], ["r"]))
    t = "r"
    if quantized:
        nodes += act_qdq(inits, "r", "rd", 0.04, np.uint8(128))
        t = "rd"
    nodes += [node("ConvTranspose", [t, "w2"], ["t2"], kernel_shape=[2, 2], strides=[2, 2]),
              node("Add", ["t2", "b2"], ["a2"]), node("Sigmoid", ["a2"], ["y"])]
    return make_model(nodes, inits, outputs=("y", "r") if second_reader else ("y",))


@pytest.mark.parametrize("quantized", [False, True])
def test_deconv_pairs(tmp_path, quantized):
    """deconv_pairs: the two k2s2 transposed convs of a DB head become 1x1 Conv -> (the per-value ops
    between, unchanged) -> 1x1 Conv -> Sigmoid -> DepthToSpace(4): the same map, up to float rounding
    (quantized: the same per-tensor Q/DQ grid, applied to the same values in channel groups)."""
    before = deconv_pair_graph(np.random.default_rng(0), quantized)
    count, after = rewrite(before, passes.deconv_pairs, tmp_path)
    assert count == 1
    assert "ConvTranspose" not in op_types(after) and op_types(after)[-1] == "DepthToSpace"
    assert op_types(after).count("Conv") == 2 and op_types(after).count("Relu") == 1
    x = x_input()
    # quantized: a conv sum that lands within float rounding of a half step may round the other way
    # in the rewritten order: at most one step of the Relu's output grid, seen through the sigmoid
    compare(before, after, x, 0.04 if quantized else 1e-5)
    assert run(after, x, PLAIN)[0].shape == (1, 2, 32, 32)


@pytest.mark.parametrize("kind", ["kernel 3", "tensor read twice"])
def test_deconv_pairs_leaves_other_patterns(tmp_path, kind):
    """deconv_pairs: a kernel-3 transposed conv (its outputs overlap), or a chain tensor that
    something else reads too, is left alone."""
    rng = np.random.default_rng(0)
    before = deconv_pair_graph(rng, kernel=3) if kind == "kernel 3" else deconv_pair_graph(rng, second_reader=True)
    count, after = rewrite(before, passes.deconv_pairs, tmp_path)
    assert count == 0
    assert op_types(after).count("ConvTranspose") == 2


# ---------------------------------------------------------------------------- OpenVINO's int8 file


def concat_graph(rng):
    """x -> Q/DQ (uint8 128) -> Conv -> Q/DQ -> c; Concat(c, x) -> Q/DQ -> y: every activation
    quantizer as uint8_activations leaves it."""
    inits = {}
    nodes = (act_qdq(inits, "x", "xd", 0.03, np.uint8(128)) + int8_conv(rng, inits, "xd", "c", cout=4)
             + act_qdq(inits, "c", "cd", 0.02, np.uint8(128)) + [node("Concat", ["cd", "xd"], ["cat"], axis=1)]
             + act_qdq(inits, "cat", "y", 0.03, np.uint8(128)))
    return make_model(nodes, inits)


def test_signed_activations(tmp_path):
    """signed_activations: uint8 zero point 128 -> int8 0 on each activation quantizer and its
    DequantizeLinear (the same 256 values), except the quantizer of a Concat output."""
    before = concat_graph(np.random.default_rng(0))
    count, after = rewrite(before, passes.signed_activations, tmp_path)
    assert count == 2
    consts = inits_of(after)
    zero = {n.output[0]: consts[n.input[2]] for n in after.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")
            and n.input[0] not in consts}
    assert {k: (z.dtype, int(z)) for k, z in zero.items()} == {
        "xd_q": (np.int8, 0), "xd": (np.int8, 0), "cd_q": (np.int8, 0), "cd": (np.int8, 0),
        "y_q": (np.uint8, 128), "y": (np.uint8, 128)}
    compare(before, after, x_input())  # as written: bit for bit


def test_seven_bit_weights(tmp_path):
    """seven_bit_weights: a conv's int8 weight becomes round(q / 2) (half to even) within [-64, 64]
    with twice the scale, so that a pair of u8 x s8 products fits 16 bits; activations are untouched."""
    rng, inits = np.random.default_rng(0), {}
    nodes = act_qdq(inits, "x", "xd", 0.03) + int8_conv(rng, inits, "xd", "c") + act_qdq(inits, "c", "y", 0.02)
    inits["c_w_i8"] = rng.integers(-128, 128, (6, 4, 3, 3)).astype(np.int8)
    inits["c_w_i8"].ravel()[:4] = [-128, 127, 3, -5]  # the ends, and ties (1.5 -> 2, -2.5 -> -2)
    before = make_model(nodes, inits)
    count, after = rewrite(before, passes.seven_bit_weights, tmp_path)
    assert count == 1
    consts, dq = inits_of(after), producer(after, "c_w")
    q7, s7 = consts[dq.input[0]], consts[dq.input[1]]
    assert q7.dtype == np.int8 and q7.min() >= -64 and q7.max() <= 64
    assert list(q7.ravel()[:4]) == [-64, 64, 2, -2]
    np.testing.assert_array_equal(q7, np.round(inits["c_w_i8"] / 2))
    np.testing.assert_array_equal(s7, 2 * inits["c_w_s"])
    assert 2 * 255 * int(np.abs(q7).max()) <= np.iinfo(np.int16).max
    assert count_activation_zero_points(after) == count_activation_zero_points(before)
    # weights that fit 7 bits already (trained with QuantAware.weight_bits 7) stay as they are
    assert rewrite(after, passes.seven_bit_weights, tmp_path)[0] == 0


def count_activation_zero_points(model):
    consts = inits_of(model)
    return sorted((n.output[0], int(consts[n.input[2]])) for n in model.graph.node
                  if n.op_type in ("QuantizeLinear", "DequantizeLinear") and n.input[0] not in consts)


def test_openvino_int8_onnx(tmp_path):
    """openvino_int8_onnx: signed activations, plus the 7-bit weights only when asked; OpenVINO
    runs both files."""
    from ocrslim.deploy import runtime
    before = concat_graph(np.random.default_rng(0))
    onnx.save(before, str(tmp_path / "src.onnx"))
    path, counts = passes.openvino_int8_onnx(str(tmp_path / "src.onnx"), str(tmp_path / "ov.onnx"))
    assert counts == {"signed_activations": 2}
    path7, counts7 = passes.openvino_int8_onnx(str(tmp_path / "src.onnx"), str(tmp_path / "ov7.onnx"), seven_bit=True)
    assert counts7 == {"signed_activations": 2, "seven_bit_weights": 0}  # its weights fit 7 bits already
    assert passes.int8_weight_bits(str(tmp_path / "src.onnx")) == 7
    w = next(i for i in before.graph.initializer if i.name == "c_w_i8")
    w.CopyFrom(numpy_helper.from_array(np.where(numpy_helper.to_array(w) == 0, 127, numpy_helper.to_array(w))
                                       .astype(np.int8), "c_w_i8"))
    onnx.save(before, str(tmp_path / "src.onnx"))
    path7, counts7 = passes.openvino_int8_onnx(str(tmp_path / "src.onnx"), str(tmp_path / "ov7.onnx"), seven_bit=True)
    assert counts7 == {"signed_activations": 2, "seven_bit_weights": 1}
    assert passes.int8_weight_bits(str(tmp_path / "src.onnx")) == 8
    x = x_input()
    for p in (path, path7):
        assert runtime.openvino_predictor(p, 1)[0](x)[0].shape == (1, 8, 8, 8)


# ---------------------------------------------------------------------------- one_dq_per_reader


def shared_dq_graph(rng, extra_reader=None):
    """x -> Q/DQ -> xd, read by two quantized convs (-> y1, y2) and optionally a third op -> y3."""
    inits = {}
    nodes = (act_qdq(inits, "x", "xd", 0.03) + int8_conv(rng, inits, "xd", "c1") + act_qdq(inits, "c1", "y1", 0.02)
             + int8_conv(rng, inits, "xd", "c2", k=1, pads=0) + act_qdq(inits, "c2", "y2", 0.02))
    outputs = ["y1", "y2"]
    if extra_reader == "Relu":
        nodes.append(node("Relu", ["xd"], ["y3"]))
        outputs.append("y3")
    elif extra_reader == "output":
        outputs.append("xd")
    return make_model(nodes, inits, outputs)


def activation_dqs(model):
    consts = inits_of(model)
    return [n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] not in consts]


@pytest.mark.parametrize("extra, copies", [(None, 1), ("Relu", 2)])
def test_one_dq_per_reader(tmp_path, extra, copies):
    """one_dq_per_reader: a DQ read by two Convs becomes two DQs, one per Conv; a non-fusable reader
    (Relu) keeps the original and each Conv gets its own copy."""
    before = shared_dq_graph(np.random.default_rng(0), extra)
    count, after = rewrite(before, passes.one_dq_per_reader, tmp_path)
    assert count == copies
    dqs = [n for n in activation_dqs(after) if n.input[0] == "xd_q"]
    assert len(dqs) == 1 + copies
    assert all(list(n.input) == ["xd_q", "xd_s", "xd_z"] for n in dqs)
    only_reader = [readers(after, dq.output[0]) for dq in dqs]
    assert all(len(r) == 1 for r in only_reader)
    assert sorted(r[0].output[0] for r in only_reader if r[0].op_type == "Conv") == ["c1", "c2"]
    if extra == "Relu":
        assert [n.op_type for n in readers(after, "xd")] == ["Relu"]
    # the same dequantized values: bit for bit as written. Optimized, the copies are what lets ORT
    # fuse each conv into QLinearConv (ORT may also copy DQs itself): at most one step (0.02) apart.
    compare(before, after, x_input(), 0.0, 0.02 * 1.0001)


def test_one_dq_per_reader_leaves_graph_output_dq(tmp_path):
    """one_dq_per_reader: a DQ that is also a graph output is not split; nor is a DQ with one reader."""
    before = shared_dq_graph(np.random.default_rng(0), "output")
    count, after = rewrite(before, passes.one_dq_per_reader, tmp_path)
    assert count == 0
    assert len(activation_dqs(after)) == len(activation_dqs(before)) == 3


# ---------------------------------------------------------------------------- uint8_weights


def test_uint8_weights(tmp_path):
    """uint8_weights: the int8 weight of a Conv is re-encoded as uint8 (value + 128) with zero point
    128, the same values exactly; an int8 constant read by something else (an Add) is left as it is."""
    rng, inits = np.random.default_rng(0), {}
    nodes = (act_qdq(inits, "x", "xd", 0.03, np.uint8(128)) + int8_conv(rng, inits, "xd", "c")
             + act_qdq(inits, "c", "cq", 0.02, np.uint8(128)) + int8_weight(rng, inits, "b", [1, 6, 1, 1])
             + [node("Add", ["cq", "b"], ["y"])])
    before = make_model(nodes, inits)
    onnx.save(before, str(tmp_path / "src.onnx"))
    dst, count = passes.uint8_weights(str(tmp_path / "src.onnx"), str(tmp_path / "dst.onnx"))
    assert dst == str(tmp_path / "dst.onnx") and count == 1
    after = onnx.load(dst)
    consts, w_dq = inits_of(after), producer(after, "c_w")
    w, z = consts[w_dq.input[0]], consts[w_dq.input[2]]
    assert w.dtype == np.uint8 and z.dtype == np.uint8 and z.shape == (6,) and (z == 128).all()
    np.testing.assert_array_equal(w.astype(np.int16) - 128, inits["c_w_i8"])
    assert consts[producer(after, "b").input[0]].dtype == np.int8
    # the same weights; optimized, U8U8 against U8S8 QLinearConv, both exact int32 sums (weights
    # within [-64, 63], see int8_weights_values): bit-identical outputs at both levels
    compare(before, after, x_input())


# ---------------------------------------------------------------------------- apply_quantizers


def float_conv_graph(rng, qw, f):
    """The float export: x -> Conv(float weight qw * f per output channel, float bias) -> conv_out."""
    inits = {"w": (qw * f[:, None, None, None]).astype(np.float32), "bias": rng.standard_normal(6).astype(np.float32)}
    return make_model([node("Conv", ["x", "w", "bias"], ["conv_out"], kernel_shape=[3, 3], pads=[1] * 4)],
                      inits, outputs=("conv_out",))


def test_apply_quantizers(tmp_path):
    """apply_quantizers: a float Conv gets the executor's quantizers: its input Q/DQ (int8, zero
    point 0), its int8 weight with a per-channel DQ (a batch norm factor folded into the exported
    weight, negative on one channel, moves into the scale and the sign), and a Q/DQ on its output
    with the scale of the last step folded into the conv (the bias here)."""
    rng = np.random.default_rng(0)
    qw = int8_weights_values(rng, (6, 4, 3, 3))
    scales = rng.uniform(0.002, 0.01, 6)
    f = scales * rng.uniform(0.5, 2, 6) * np.array([1, 1, -1, 1, 1, 1])  # executor scale * folded BN
    before = float_conv_graph(rng, qw, f)
    onnx.save(before, str(tmp_path / "float.onnx"))
    quantizers = {"conv_out": {"inputs": {0: ("act", 0.03), 1: ("weight", qw, scales, 0, 8)},
                               "after": [("out", 0.2), ("bias", 0.25)], "reads_feed": False}}
    dst = passes.apply_quantizers(str(tmp_path / "float.onnx"), str(tmp_path / "q.onnx"), quantizers)
    after = onnx.load(dst)
    consts = inits_of(after)
    conv = next(n for n in after.graph.node if n.op_type == "Conv")
    x_dq, w_dq = producer(after, conv.input[0]), producer(after, conv.input[1])
    x_q = producer(after, x_dq.input[0])
    assert (x_q.op_type, x_q.input[0]) == ("QuantizeLinear", "x")
    assert consts[x_q.input[1]] == np.float32(0.03) and consts[x_q.input[2]].dtype == np.int8
    np.testing.assert_array_equal(consts[w_dq.input[0]], qw * np.sign(f).astype(np.int8)[:, None, None, None])
    np.testing.assert_allclose(consts[w_dq.input[1]], np.abs(f), rtol=1e-6)
    out_q = readers(after, conv.output[0])
    assert conv.output[0] != "conv_out" and [n.op_type for n in out_q] == ["QuantizeLinear"]
    assert consts[out_q[0].input[1]] == np.float32(0.25) and producer(after, "conv_out").op_type == "DequantizeLinear"
    assert passes.quantized_nodes(after) == {conv.output[0]} and passes.quantized_nodes(before) == set()
    # the reference: the float conv of the quantized input, quantized to 0.25 steps. Its weights are
    # qw * f in float32, the rewrite's are qw * |f| with |f| refound by least squares: a conv output
    # within float rounding of a half step may round to the other neighbour: at most one step.
    x = x_input()
    xq = (np.clip(np.round(x / np.float32(0.03)), -128, 127) * np.float32(0.03)).astype(np.float32)
    expected = np.clip(np.round(run(before, xq, PLAIN)[0] / 0.25), -128, 127) * 0.25
    for level in (PLAIN, OPTIMIZED):
        assert np.abs(run(after, x, level)[0] - expected).max() <= 0.25 * 1.0001
    # OpenVINO's file (conv_output_q=False): the same input and weight quantizers, no output Q
    plain = onnx.load(passes.apply_quantizers(str(tmp_path / "float.onnx"), str(tmp_path / "ov.onnx"), quantizers,
                                              conv_output_q=False))
    assert producer(plain, "conv_out").op_type == "Conv" and op_types(plain).count("QuantizeLinear") == 1
    np.testing.assert_allclose(run(plain, x, PLAIN)[0], run(before, xq, PLAIN)[0], rtol=1e-4, atol=1e-4)


def test_apply_quantizers_seven_bit_weights(tmp_path):
    """A model trained with QuantAware.weight_bits 7: paddle2onnx 1.3 exports its weights
    dequantized with 127 instead of 63 (63/127 of their value); apply_quantizers gives the DQ the
    executor's scale, so the ONNX weight is the executor's exactly."""
    rng = np.random.default_rng(1)
    qw = np.clip(int8_weights_values(rng, (6, 4, 3, 3)) // 2, -63, 63).astype(np.int8)
    f = rng.uniform(0.002, 0.01, 6)  # the executor's scale (Scale / 63) times a folded BN
    onnx.save(float_conv_graph(rng, qw, f * 63 / 127), str(tmp_path / "float.onnx"))
    spec = {"inputs": {0: ("act", 0.03), 1: ("weight", qw, f, 0, 7)}, "after": [("out", 0.2)], "reads_feed": True}
    after = onnx.load(passes.apply_quantizers(str(tmp_path / "float.onnx"), str(tmp_path / "q.onnx"),
                                              {"conv_out": spec}))
    consts = inits_of(after)
    w_dq = producer(after, next(n for n in after.graph.node if n.op_type == "Conv").input[1])
    np.testing.assert_array_equal(consts[w_dq.input[0]], qw)
    np.testing.assert_allclose(consts[w_dq.input[1]], f, rtol=1e-6)


def test_apply_quantizers_first_conv_and_unknown_node(tmp_path):
    """apply_quantizers: a conv that reads the feed keeps a float output (no output Q); a quantizer
    for a node the export does not have is an error."""
    rng = np.random.default_rng(0)
    qw = int8_weights_values(rng, (6, 4, 3, 3))
    onnx.save(float_conv_graph(rng, qw, np.full(6, 0.01)), str(tmp_path / "float.onnx"))
    spec = {"inputs": {0: ("act", 0.03), 1: ("weight", qw, np.full(6, 0.01), 0, 8)},
            "after": [("out", 0.2)], "reads_feed": True}
    after = onnx.load(passes.apply_quantizers(str(tmp_path / "float.onnx"), str(tmp_path / "q.onnx"),
                                              {"conv_out": spec}))
    assert producer(after, "conv_out").op_type == "Conv"
    assert op_types(after).count("QuantizeLinear") == 1
    with pytest.raises(ValueError, match="no ONNX node computes"):
        passes.apply_quantizers(str(tmp_path / "float.onnx"), str(tmp_path / "q2.onnx"), {"other": spec})


# ---------------------------------------------------------------------------- the pass list


def test_int8_passes_in_order(tmp_path):
    """INT8_PASSES holds the seven rewrites in order; run_passes returns a count per name, and
    optimize_int8_onnx applies them to a paddle2onnx-like export without changing its outputs."""
    names = ["int8_weights", "uint8_activations", "gap_from_conv_input", "fold_scalar_muls",
             "fold_convtranspose_bn", "deconv_pairs", "one_dq_per_reader"]
    assert [n for n, _ in passes.INT8_PASSES] == names
    assert [fn for _, fn in passes.INT8_PASSES] == [getattr(passes, n) for n in names]
    before = weight_q_graph(np.random.default_rng(0))
    copy = onnx.ModelProto()
    copy.CopyFrom(before)
    counts = passes.run_passes(OnnxGraph(copy))
    assert list(counts) == names
    assert counts == dict.fromkeys(names, 0) | {"int8_weights": 1, "uint8_activations": 2}
    onnx.save(before, str(tmp_path / "src.onnx"))
    after = onnx.load(passes.optimize_int8_onnx(str(tmp_path / "src.onnx"), str(tmp_path / "dst.onnx")))
    assert inits_of(after)[producer(after, "w_dq").input[0]].dtype == np.int8
    compare(before, after, x_input())  # the same weights and grid: bit for bit
