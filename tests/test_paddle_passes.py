"""Each rewrite in deploy.paddle_passes on a tiny synthetic Paddle program.

A test builds a program holding exactly the pattern a pass rewrites (seeded
random weights, scalar affines as 1-element parameters), runs that pass
alone, checks its count and the op types, and runs the program before and
after on the same input. A near miss next to it must come back untouched.
"""
import numpy as np
import pytest

import ocrslim  # noqa: F401  (before paddle)
import paddle
from paddle.base import unique_name

from ocrslim.deploy import paddle_passes as passes
from ocrslim.deploy.paddle_graph import PaddleGraph, static_mode

C = 4  # channels of the input [1, C, 8, 8]
X = np.random.default_rng(1).standard_normal((1, C, 8, 8)).astype(np.float32)


class Builder:
    """Appends ops to the program being built; parameters get fixed values, set in the scope."""

    def __init__(self, main):
        self.block = main.global_block()
        self.values = {}
        self.rng = np.random.default_rng(0)

    def param(self, value, dtype="float32"):
        value = np.asarray(value, dtype)
        var = self.block.create_var(name=unique_name.generate("param"), shape=value.shape, dtype=dtype,
                                    persistable=True)
        self.values[var.name] = value
        return var

    def random(self, *shape):
        return self.param(self.rng.standard_normal(shape) * 0.5)

    def op(self, type, inputs, attrs=None, out="Out"):
        var = self.block.create_var(name=unique_name.generate(type + ".out"), dtype="float32")
        self.block.append_op(type=type, inputs=inputs, outputs={out: [var]}, attrs=attrs or {})
        return var

    def conv(self, x, c_out, k=1, groups=1, weight=None):
        """A conv2d (depthwise_conv2d when groups == C) with 'same' padding, no bias."""
        weight = weight if weight is not None else self.random(c_out, x.shape[1] // groups, k, k)
        return paddle.nn.functional.conv2d(x, weight, padding=k // 2, groups=groups)

    def int8_weight(self, c_out, c_in, k=1):
        """The dequantize_linear that makes a per-channel int8 conv weight, as PaddleSlim saves it."""
        codes = self.param(self.rng.integers(-127, 128, (c_out, c_in, k, k)), "int8")
        scale = self.param(self.rng.uniform(0.2, 0.6, c_out))
        return self.op("dequantize_linear", {"X": [codes], "Scale": [scale],
                                             "ZeroPoint": [self.param(np.zeros(c_out), "int32")]},
                       {"quant_axis": 0, "bit_length": 8}, out="Y")

    def add(self, x, y, axis=-1):
        return self.op("elementwise_add", {"X": [x], "Y": [y]}, {"axis": axis})

    def mul(self, x, y):
        return self.op("elementwise_mul", {"X": [x], "Y": [y]}, {"axis": -1})

    def bias(self, x):
        return self.add(x, self.random(x.shape[1]), axis=1)

    def affine(self, x, s, t):
        """x * s + t with s and t scalar parameters (PP-LCNetV3's learnable affine block)."""
        return self.add(self.mul(x, self.param([s])), self.param([t]))

    def qdq(self, x, scale, observer):
        """A per-tensor quantize_linear + dequantize_linear pair (observer: only_observer=True)."""
        inputs = {"Scale": [self.param([scale])], "ZeroPoint": [self.param([0], "int32")]}
        attrs = {"quant_axis": -1, "bit_length": 8}
        if observer:
            attrs["only_observer"] = True
        q = self.op("quantize_linear", {"X": [x], **inputs}, attrs, out="Y")
        return self.op("dequantize_linear", {"X": [q], **inputs}, attrs, out="Y")


def model(build):
    """(program bytes, params bytes) of the inference program whose output is build(b, x)."""
    main, startup = paddle.static.Program(), paddle.static.Program()
    with static_mode(), paddle.static.program_guard(main, startup), unique_name.guard():
        b = Builder(main)
        x = paddle.static.data("x", list(X.shape), "float32")
        y = build(b, x)
        exe, scope = paddle.static.Executor(paddle.CPUPlace()), paddle.static.Scope()
        with paddle.static.scope_guard(scope):
            for name, value in b.values.items():
                scope.var(name).get_tensor().set(value, paddle.CPUPlace())
            return (paddle.static.serialize_program([x], [y], program=main),
                    paddle.static.serialize_persistables([x], [y], exe, program=main))


def types(p):
    """The op types of a graph, without feed, fetch and the scale(1) save_inference_model adds."""
    return [op.type for op in p.ops if op.type not in ("feed", "fetch")
            and not op.output_arg_names[0].startswith("save_infer_model")]


def rewrite(m, rewrite_pass):
    """(count, op types before, op types after, rewritten model, graph) of one pass on model m."""
    with static_mode():
        p = PaddleGraph(*m)
        before = types(p)
        count = rewrite_pass(p)
        return count, before, types(p), p.serialize(), p


def run(m, x=X):
    with static_mode():
        p = PaddleGraph(*m)
        with paddle.static.scope_guard(p.scope):
            return p.exe.run(p.program, feed={p.feeds[0]: x}, fetch_list=p.fetches)[0]


def assert_same(m, new, tol=1e-5):
    """Both models compute the same, non-trivial output, up to float rounding."""
    expected, got = run(m), run(new)
    assert expected.shape == got.shape
    assert np.abs(expected).max() > 0.1
    assert np.abs(expected - got).max() <= tol * np.abs(expected).max()


def assert_untouched(m, rewrite_pass):
    count, before, after, new, _ = rewrite(m, rewrite_pass)
    assert count == 0 and after == before
    np.testing.assert_array_equal(run(m), run(new))


# -- strip_observers ---------------------------------------------------------------------------------

def test_strip_observers_removes_observer_pairs_and_keeps_real_quantizers():
    """An observer pair goes (its reader reads the observed tensor); a real quantizer pair stays."""
    def build(b, x):
        h = paddle.nn.functional.relu(b.qdq(b.conv(x, C, 3), 2.0, observer=True))
        return b.conv(b.qdq(h, 3.0, observer=False), 2)
    m = model(build)
    count, before, after, new, p = rewrite(m, passes.strip_observers)
    assert count == 1
    assert before == ["conv2d", "quantize_linear", "dequantize_linear", "relu",
                      "quantize_linear", "dequantize_linear", "conv2d"]
    assert after == ["conv2d", "relu", "quantize_linear", "dequantize_linear", "conv2d"]
    assert p.ops[2].input("X") == p.ops[1].output("Output")  # relu reads the conv directly
    assert_same(m, new)  # the executor runs the observer as an identity


def test_strip_observers_leaves_an_observer_it_does_not_know_alone():
    """An observer whose output is not read through a dequantize_linear stays."""
    def build(b, x):
        q = b.op("quantize_linear", {"X": [b.conv(x, C, 3)], "Scale": [b.param([2.0])],
                                     "ZeroPoint": [b.param([0], "int32")]},
                 {"quant_axis": -1, "bit_length": 8, "only_observer": True}, out="Y")
        return b.conv(paddle.nn.functional.relu(q), 2)
    assert_untouched(model(build), passes.strip_observers)


@pytest.mark.parametrize("keep", [False, True])
def test_strip_observers_keep_int8_conv_inputs_makes_that_observer_real(keep):
    """keep_int8_conv_inputs: an observer on the Input of a conv with int8 weights becomes a real
    quantizer (the program then computes what one built with a real pair does); others still go."""
    def build(b, x, observer=True):
        h = b.bias(b.conv(b.qdq(x, 2.5, observer), C, weight=b.int8_weight(C, C)))
        return b.conv(b.qdq(paddle.nn.functional.relu(h), 4.0, observer=True), 2)
    m = model(build)
    count, before, after, new, p = rewrite(m, lambda p: passes.strip_observers(p, keep_int8_conv_inputs=keep))
    assert before.count("quantize_linear") == 2 and before.count("dequantize_linear") == 3
    if not keep:
        assert count == 2
        assert after == ["dequantize_linear", "conv2d", "elementwise_add", "relu", "conv2d"]
        assert_same(m, new)
        return
    assert count == 1
    assert after == ["quantize_linear", "dequantize_linear", "dequantize_linear", "conv2d", "elementwise_add",
                     "relu", "conv2d"]
    pair = [op for op in p.ops if op.type in ("quantize_linear", "dequantize_linear") and op.attr("quant_axis") == -1]
    assert len(pair) == 2 and all(op.attr("only_observer") is False for op in pair)
    real = model(lambda b, x: build(b, x, observer=False))
    assert_same(real, new)
    assert np.abs(run(m) - run(new)).max() > 1e-4  # it really quantizes now


# -- fold_affine ------------------------------------------------------------------------------------

@pytest.mark.parametrize("weights, groups, s, t", [("float", 1, 0.8, 0.3), ("int8", C, -0.6, 0.2)])
def test_fold_affine_moves_the_affine_into_the_conv(weights, groups, s, t):
    """conv -> +bias -> *s -> +t  becomes  conv(W*s) -> +(bias*s + t); an int8 weight keeps its codes
    (negated for s < 0) and takes |s| into its scale."""
    def build(b, x):
        weight = b.int8_weight(C, C // groups, 3) if weights == "int8" else None
        y = b.affine(b.bias(b.conv(x, C, 3, groups=groups, weight=weight)), s, t)
        return paddle.nn.functional.hardswish(y)
    m = model(build)
    count, before, after, new, _ = rewrite(m, passes.fold_affine)
    conv = ["dequantize_linear"] * (weights == "int8") + ["conv2d" if groups == 1 else "depthwise_conv2d"]
    assert count == 1
    assert before == conv + ["elementwise_add", "elementwise_mul", "elementwise_add", "hard_swish"]
    assert after == conv + ["elementwise_add", "hard_swish"]
    assert_same(m, new)


@pytest.mark.parametrize("miss", ["conv read twice", "per-channel mul", "shared weight"])
def test_fold_affine_leaves_near_misses_alone(miss):
    """No fold where the conv output has a second reader, where *s is not a scalar parameter, or where
    the weight also feeds another conv."""
    def build(b, x):
        w = b.random(C, C, 3, 3)
        y = b.conv(x, C, 3, weight=w)
        h = b.bias(y)
        if miss == "per-channel mul":
            h = b.add(b.mul(h, b.param(np.full((1, C, 1, 1), 0.8))), b.param([0.3]))
        else:
            h = b.affine(h, 0.8, 0.3)
        h = paddle.nn.functional.hardswish(h)
        if miss == "conv read twice":
            h = b.add(h, y)
        if miss == "shared weight":
            h = b.add(h, b.conv(x, C, 3, weight=w))
        return h
    assert_untouched(model(build), passes.fold_affine)


# -- merge_affine -----------------------------------------------------------------------------------

def test_merge_affine_makes_one_scale_op():
    """x -> *a -> +c (scalar parameters) becomes scale(x, a, c)."""
    m = model(lambda b, x: paddle.nn.functional.relu(b.affine(paddle.nn.functional.hardswish(b.conv(x, C)), 1.3, -0.2)))
    count, before, after, new, p = rewrite(m, passes.merge_affine)
    assert count == 1
    assert before == ["conv2d", "hard_swish", "elementwise_mul", "elementwise_add", "relu"]
    assert after == ["conv2d", "hard_swish", "scale", "relu"]
    scale = p.ops[3]
    assert scale.attr("scale") == pytest.approx(1.3) and scale.attr("bias") == pytest.approx(-0.2)
    assert scale.attr("bias_after_scale") is True
    assert_same(m, new)


@pytest.mark.parametrize("operand", ["per-channel param", "tensor"])
def test_merge_affine_leaves_an_add_of_no_scalar_parameter_alone(operand):
    """x * a + y stays when y is a per-channel parameter or a tensor."""
    def build(b, x):
        h = paddle.nn.functional.hardswish(x)
        y = b.param(np.linspace(-1, 1, C).reshape(1, C, 1, 1)) if operand == "per-channel param" else x
        return paddle.nn.functional.relu(b.add(b.mul(h, b.param([1.3])), y))
    assert_untouched(model(build), passes.merge_affine)


# -- se_residual ------------------------------------------------------------------------------------

def _se(b, x, gate_shape="NC11"):
    """x + x * gate with a sigmoid gate, [N, C, 1, 1] (an SE block) or [N, C, H, W]."""
    h = b.bias(b.conv(x, C))
    pooled = paddle.nn.functional.adaptive_avg_pool2d(h, 1) if gate_shape == "NC11" else b.conv(h, C)
    gate = paddle.nn.functional.sigmoid(pooled)
    return paddle.nn.functional.relu(b.add(h, b.mul(h, gate)))


def test_se_residual_adds_one_to_the_gate():
    """x + x * gate  becomes  x * (gate + 1): a scale op on the [N, C, 1, 1] gate and no add."""
    m = model(_se)
    count, before, after, new, _ = rewrite(m, passes.se_residual)
    assert count == 1
    assert before == ["conv2d", "elementwise_add", "pool2d", "sigmoid", "elementwise_mul", "elementwise_add", "relu"]
    assert after == ["conv2d", "elementwise_add", "pool2d", "sigmoid", "scale", "elementwise_mul", "relu"]
    assert_same(m, new)


def test_se_residual_leaves_a_full_size_gate_alone():
    """The gate must be [N, C, 1, 1]: a per-pixel gate is left alone."""
    assert_untouched(model(lambda b, x: _se(b, x, gate_shape="NCHW")), passes.se_residual)


# -- deconv_pairs -----------------------------------------------------------------------------------

def _deconv(b, x, c_out, stride=2, bn=False, act=None):
    """A kernel-2 transposed conv + bias [+ batch norm] [+ activation] (the DB head's upsampling)."""
    h = b.bias(paddle.nn.functional.conv2d_transpose(x, b.random(x.shape[1], c_out, 2, 2), stride=stride))
    if bn:
        gamma, beta, mean = (b.random(c_out) for _ in range(3))
        var = b.param(b.rng.uniform(0.5, 2.0, c_out))
        h = paddle.nn.functional.batch_norm(h, mean, var, gamma, beta, training=False)
    return getattr(paddle.nn.functional, act)(h) if act else h


def test_deconv_pairs_become_pointwise_convs_and_a_pixel_shuffle():
    """Two chained k2s2 transposed convs (+bias, batch norm, relu / +bias, sigmoid) become
    1x1 conv -> 1x1 conv -> pixel_shuffle(4) with the same output."""
    m = model(lambda b, x: _deconv(b, _deconv(b, x, 3, bn=True, act="relu"), 2, act="sigmoid"))
    count, before, after, new, _ = rewrite(m, passes.deconv_pairs)
    assert count == 1
    assert before == ["conv2d_transpose", "elementwise_add", "batch_norm", "relu",
                      "conv2d_transpose", "elementwise_add", "sigmoid"]
    assert after == ["conv2d", "elementwise_add", "relu", "conv2d", "elementwise_add", "sigmoid", "pixel_shuffle"]
    assert run(new).shape == (1, 2, 32, 32)
    assert_same(m, new)


@pytest.mark.parametrize("miss", ["stride 1", "single"])
def test_deconv_pairs_leaves_other_transposed_convs_alone(miss):
    """Stride-1 transposed convs, or a k2s2 one followed by a plain conv, stay."""
    def build(b, x):
        h = _deconv(b, x, 3, stride=1 if miss == "stride 1" else 2, act="relu")
        return _deconv(b, h, 2, stride=1, act="sigmoid") if miss == "stride 1" else b.conv(h, 2)
    assert_untouched(model(build), passes.deconv_pairs)


# -- affine_into_pointwise --------------------------------------------------------------------------

def _pointwise(b, x, k=1, a=0.7, c=0.3, quant_scale=None):
    """hard_swish -> scale(a, c) -> [int8 input quantizer] -> k x k conv -> +bias."""
    h = paddle.scale(paddle.nn.functional.hardswish(x), a, c)
    if quant_scale is None:
        return b.bias(b.conv(h, C, k))
    return b.bias(b.conv(b.qdq(h, quant_scale, observer=False), C, k, weight=b.int8_weight(C, C, k)))


def test_affine_into_pointwise_folds_the_scale_into_a_1x1_conv():
    """scale(h, a, c) -> 1x1 conv -> +bias  becomes  conv(W*a) -> +(bias + c*sum(W)): exact in float."""
    m = model(_pointwise)
    count, before, after, new, _ = rewrite(m, passes.affine_into_pointwise)
    assert count == 1
    assert before == ["hard_swish", "scale", "conv2d", "elementwise_add"]
    assert after == ["hard_swish", "conv2d", "elementwise_add"]
    assert_same(m, new)


def test_affine_into_pointwise_leaves_a_3x3_conv_alone():
    """Shifting a padded 3x3 conv's input is not a bias: no fold."""
    assert_untouched(model(lambda b, x: _pointwise(b, x, k=3)), passes.affine_into_pointwise)


# h = hard_swish(X) lies in [-0.375, 2.9]: a*h + c stays within S (no clipping either way)
A, S = -0.25, 1.0
STEP = S / 127


def test_affine_into_pointwise_moves_a_small_offset_out_of_an_int8_quantizer():
    """With an int8 input quantizer the fold is made when |c| <= MAX_SHIFT steps: the quantizer reads
    h with its range divided by |a|, and each conv input moves by at most one step."""
    m = model(lambda b, x: _pointwise(b, x, a=A, c=0.4 * STEP, quant_scale=S))
    with static_mode():
        p = PaddleGraph(*m)
        conv = next(op for op in p.ops if op.type == "conv2d")
        dequant = p.producer(conv.input("Filter")[0])  # its int8 weight
        weight = p.value(dequant.input("X")[0]) * p.value(dequant.input("Scale")[0])[:, None, None, None] / 127
    count, before, after, new, p = rewrite(m, passes.affine_into_pointwise)
    assert count == 1
    assert before == ["hard_swish", "scale", "quantize_linear", "dequantize_linear", "dequantize_linear",
                      "conv2d", "elementwise_add"]
    assert after == ["hard_swish", "quantize_linear", "dequantize_linear", "dequantize_linear", "conv2d",
                     "elementwise_add"]
    quant = p.ops[2]
    assert quant.input("X") == p.ops[1].output("Out")
    assert p.value(quant.input("Scale")[0]) == pytest.approx(S / abs(A))
    bound = STEP * np.abs(weight).sum(axis=(1, 2, 3)).max() * 1.001
    expected, got = run(m), run(new)
    assert np.abs(expected).max() > 0.1 and np.abs(expected - got).max() <= bound


def test_affine_into_pointwise_keeps_a_large_offset_in_an_int8_quantizer():
    """|c| over MAX_SHIFT steps of the quantizer that follows: left alone."""
    c = (passes.MAX_SHIFT + 0.1) * STEP
    assert_untouched(model(lambda b, x: _pointwise(b, x, a=A, c=c, quant_scale=S)), passes.affine_into_pointwise)


# -- all of them -------------------------------------------------------------------------------------

def test_passes_run_in_order_and_each_reports_a_count():
    """PASSES holds the six rewrites in optimize's order; run_passes returns a count per name, and the
    affine a merge_affine makes is then moved into the 1x1 conv after it."""
    assert [name for name, _ in passes.PASSES] == ["strip_observers", "fold_affine", "merge_affine",
                                                   "deconv_pairs", "se_residual", "affine_into_pointwise"]
    assert passes.PASSES[0][1].keywords == {"keep_int8_conv_inputs": True}

    def build(b, x):
        h = paddle.nn.functional.hardswish(b.affine(b.bias(b.conv(x, C, 3)), 0.8, 0.3))
        return b.bias(b.conv(b.affine(h, 1.3, -0.2), C))
    m = model(build)
    count, _, after, new, _ = rewrite(m, passes.run_passes)
    assert count == {"strip_observers": 0, "fold_affine": 1, "merge_affine": 1, "deconv_pairs": 0,
                     "se_residual": 0, "affine_into_pointwise": 1}
    assert after == ["conv2d", "elementwise_add", "hard_swish", "conv2d", "elementwise_add"]
    assert_same(m, new)
    program, params, counts = passes.optimize(*m)
    assert counts == count
    np.testing.assert_array_equal(run((program, params)), run(new))


# -- regressions found by these tests --------------------------------------------------------------

def test_strip_observers_follows_a_chain_of_observer_pairs():
    """An observer pair that reads another pair's output: both go, the conv reads the first tensor."""
    def build(b, x):
        return b.conv(b.qdq(b.qdq(b.conv(x, C, 3), 2.0, True), 2.0, True), 2)
    m = model(build)
    count, before, after, new, _ = rewrite(m, passes.strip_observers)
    assert count == 2 and after == ["conv2d", "conv2d"], after
    assert_same(m, new)


def test_affine_into_pointwise_leaves_a_one_element_bias_alone():
    """c * sum(W) differs per output channel: a 1x1 conv whose bias is one shared value is skipped."""
    def build(b, x):
        h = paddle.scale(paddle.nn.functional.hardswish(x), 0.7, 0.3)
        return b.add(b.conv(h, C), b.param([0.5]))
    assert_untouched(model(build), passes.affine_into_pointwise)


# -- EXACT_PASSES: what OpenVINO's int8 file is exported from -------------------------------------

def test_exact_passes_keep_an_int8_program_exact(tmp_path):
    """write_exact on an int8 conv (real input quantizer, int8 weights) followed by an affine, an
    SE-style x + x * gate and an observer pair: the observers go, the affine folds (its scalar
    rescales the weight's scale), x + x * gate becomes x * (gate + 1), and the program computes the
    same up to float rounding; affine_into_pointwise is not among the passes (inexact in int8)."""
    assert [name for name, _ in passes.EXACT_PASSES] == ["strip_observers", "fold_affine", "merge_affine",
                                                         "deconv_pairs", "se_residual"]

    def build(b, x):
        q = b.qdq(x, 2.5, observer=False)
        h = b.affine(b.bias(b.conv(q, C, weight=b.int8_weight(C, C))), 0.7, 0.2)
        h = b.qdq(paddle.nn.functional.hardswish(h), 3.0, observer=True)
        gate = paddle.nn.functional.hardsigmoid(paddle.mean(h, axis=[2, 3], keepdim=True))
        return b.bias(b.add(h, b.mul(h, gate)))   # se_residual keeps a fetched output's name
    m = model(build)
    src = tmp_path / "src"
    src.mkdir()
    for name, data in zip(("inference.pdmodel", "inference.pdiparams"), m):
        (src / name).write_bytes(data)
    files, counts = passes.write_exact((str(src), "inference.pdmodel", "inference.pdiparams"), str(tmp_path / "out"))
    assert files == (str(tmp_path / "out"), "inference.pdmodel", "inference.pdiparams")
    assert counts == {"strip_observers": 1, "fold_affine": 1, "merge_affine": 0, "deconv_pairs": 0,
                      "se_residual": 1}
    new = tuple((tmp_path / "out" / name).read_bytes() for name in files[1:])
    with static_mode():
        after = types(PaddleGraph(*new))
    assert after.count("quantize_linear") == 1 and "elementwise_mul" in after
    assert_same(m, new)
