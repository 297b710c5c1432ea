"""Rewrite a paddle2onnx export of a PaddleSlim int8 (onnx_format) model so onnxruntime runs it as int8.

paddle2onnx turns a QAT model into Q/DQ pairs with signed int8 activations, float weights pushed
through QuantizeLinear at run time, and a few tensors that are both quantized and read in float.
onnxruntime then leaves 14 of the 62 det convs in float, spends ~1/4 of the run in (De)QuantizeLinear
and is slower than the FP32 model (see ../shared/STACK.md). optimize_int8_onnx fixes what is in the
way (the passes in INT8_PASSES, each a function of an onnx_graph.OnnxGraph), without changing
what the QAT model computes (hmean on the demo det set: 0.8000, same as the
unmodified export):

- weights: QuantizeLinear(float constant) -> int8 initializer (real int8 storage, no run-time Q);
- activations: int8 zero point 0 -> uint8 zero point 128, the same grid; ORT's x86 int8 kernels
  (QLinearConv) want unsigned activations;
- GlobalAveragePool that reads a conv's float output (SE blocks of the det neck) is computed from
  the conv's input instead (1x1 conv: GAP(conv(x)) = conv(GAP(x)); 3x3 pad 1: per-tap sums of x),
  so the conv's only reader is its Q and ORT fuses it into QLinearConv;
- DQ -> Mul(s) becomes DQ with scale*s, and Mul(s) -> Add(b) -> Q becomes Add(b/s) -> Q with scale/s
  (PP-LCNetV3 "learnable affine blocks"): one float pass less per conv, same rounding;
- ConvTranspose -> Add(bias) -> BatchNormalization is folded into the ConvTranspose;
- the DB head's two stride-2 ConvTransposes become two 1x1 Convs and a DepthToSpace, so the final
  Sigmoid runs fused in a conv instead of alone on the full-size map (what paddle_passes does for
  Paddle Inference);
- a DQ read by several ops is split, one per op that ORT can fuse with it.

OpenVINO runs the same file with two changes (openvino_int8_onnx): signed activations (zero point
0: OpenVINO spends a float Subtract and Convert per uint8 tensor with zero point 128), and on CPUs
without VNNI 7-bit weights (its int8 kernels there saturate 16-bit pair sums).

Moving the affine *offsets* across a quantizer (into a zero point) would save two more passes per
block but shifts the quantization grid by a fraction of a step; the QAT model loses 0.02-0.04 det
hmean from that, so it is not done here.
"""
import numpy as np

from .deconv import pair_as_pointwise
from .onnx_graph import OnnxGraph, attrs, dequantized

# ops that onnxruntime may fuse with a DequantizeLinear on their input (each needs its own DQ)
_FUSABLE = {"Conv", "ConvTranspose", "Mul", "Add", "Concat", "GlobalAveragePool", "Resize", "MatMul",
            "AveragePool", "MaxPool", "Sigmoid", "LeakyRelu", "Gather", "Transpose", "Reshape", "Where", "Softmax"}


def int8_weights(g):
    """QuantizeLinear(float constant) -> DequantizeLinear  ==>  int8 constant -> DequantizeLinear.
    Returns the count."""
    readers, kept = g.readers(), []
    for n in g.nodes:
        if n.op_type != "QuantizeLinear" or n.input[0] not in g.consts:
            kept.append(n)
            continue
        # float32, as onnxruntime's QuantizeLinear divides: in float64 a quotient within float32
        # rounding of a half step rounds the other way (~1.6 weights per million)
        w = g.consts[n.input[0]].astype(np.float32)
        s = g.consts[n.input[1]].astype(np.float32)
        z = g.consts[n.input[2]].astype(np.float32)
        if s.size > 1:
            shape = [1] * w.ndim
            shape[attrs(n).get("axis", 1)] = -1
            s, z = s.reshape(shape), z.reshape(shape)
        q = np.clip(np.round(w / s) + z, -128, 127).astype(np.int8)  # np.round: half to even, as ONNX
        name = g.const(q, n.input[0] + "_int8")
        for r in readers[n.output[0]]:
            r.input[0] = name
    count = len(g.nodes) - len(kept)
    g.nodes = kept
    return count


def uint8_activations(g):
    """int8 zero point 0 -> uint8 zero point 128 on activations: the same 256 values. Returns the
    count of (de)quantizers changed."""
    count = 0
    for n in g.nodes:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear") and n.input[0] not in g.consts:
            z = g.consts[n.input[2]]
            if z.dtype == np.int8 and z.size == 1 and int(z.ravel()[0]) == 0:
                n.input[2] = g.const(np.array(128, np.uint8).reshape(z.shape), "zp_u8")
                count += 1
    return count


def gap_from_conv_input(g):
    """GAP(conv(x)) computed from x, so that the conv's only reader is its QuantizeLinear.
    Returns the count."""
    from onnx import helper
    producers, added, dropped = g.producers(), [], set()
    for gap in g.nodes:
        conv = producers.get(gap.input[0]) if gap.op_type == "GlobalAveragePool" else None
        if conv is None or conv.op_type != "Conv":
            continue
        a = attrs(conv)
        if a.get("group", 1) != 1 or a.get("strides", [1, 1]) != [1, 1] or a.get("dilations", [1, 1]) != [1, 1]:
            continue
        if producers.get(conv.input[1]) is None or producers[conv.input[1]].op_type != "DequantizeLinear":
            continue
        w = dequantized(g, producers[conv.input[1]]).astype(np.float32)
        bias = conv.input[2] if len(conv.input) > 2 and conv.input[2] else None
        if bias is None:
            b = np.zeros(w.shape[0], np.float32)
        elif bias in g.consts:  # a float bias (apply_quantizers leaves them so)
            b = g.consts[bias].astype(np.float32).ravel()
        elif producers.get(bias) is not None and producers[bias].op_type == "DequantizeLinear":
            b = dequantized(g, producers[bias]).astype(np.float32).ravel()
        else:
            continue
        x, y, t = conv.input[0], gap.output[0], gap.output[0] + "__gap"
        kernel, pads = tuple(a["kernel_shape"]), list(a.get("pads", [0, 0, 0, 0]))
        ints = lambda v: g.const(np.array(v, np.int64), "i")
        nodes = []
        if kernel == (1, 1) and pads == [0, 0, 0, 0]:
            nodes.append(helper.make_node("GlobalAveragePool", [x], [t + "x"]))
            mean = t + "x"
        elif kernel == (3, 3) and pads == [1, 1, 1, 1]:
            # Tap (ky, kx) of a 3x3 pad-1 conv sees all of x except one edge row/column: ky=0 reads
            # x[i-1] and never the last row, ky=2 never the first row (same for columns). So the sum of
            # the conv output is sum_k W_k * (S - row_k - col_k + corner_k).
            def edge(name, starts, ends, axes):
                nodes.append(helper.make_node("Slice", [x, ints(starts), ints(ends), ints(axes)], [name]))
            last = np.iinfo(np.int64).max
            nodes.append(helper.make_node("ReduceSum", [x, ints([2, 3])], [t + "S"], keepdims=1))
            for nm, st, en, ax in (("r0", [0], [1], [2]), ("rL", [-1], [last], [2]),
                                   ("c0", [0], [1], [3]), ("cL", [-1], [last], [3])):
                edge(t + nm, st, en, ax)
                nodes.append(helper.make_node("ReduceSum", [t + nm, ints([2, 3])], [t + nm + "s"], keepdims=1))
            for nm, st, en in (("k00", [0, 0], [1, 1]), ("k0L", [0, -1], [1, last]),
                               ("kL0", [-1, 0], [last, 1]), ("kLL", [-1, -1], [last, last])):
                edge(t + nm, st, en, [2, 3])
            zero = t + "z"
            nodes += [
                helper.make_node("Sub", [t + "S", t + "S"], [zero]),
                helper.make_node("Concat", [t + "rLs", zero, t + "r0s"], [t + "R"], axis=2),
                helper.make_node("Concat", [t + "cLs", zero, t + "c0s"], [t + "C"], axis=3),
                helper.make_node("Concat", [t + "kLL", zero, t + "kL0"], [t + "K0"], axis=3),
                helper.make_node("Concat", [zero, zero, zero], [t + "K1"], axis=3),
                helper.make_node("Concat", [t + "k0L", zero, t + "k00"], [t + "K2"], axis=3),
                helper.make_node("Concat", [t + "K0", t + "K1", t + "K2"], [t + "K"], axis=2),
                helper.make_node("Sub", [t + "S", t + "R"], [t + "T1"]),
                helper.make_node("Sub", [t + "T1", t + "C"], [t + "T2"]),
                helper.make_node("Add", [t + "T2", t + "K"], [t + "T"]),
                # divide by H*W (stride 1, pad 1: the conv output is as large as x)
                helper.make_node("Shape", [x], [t + "shape"]),
                helper.make_node("Slice", [t + "shape", ints([2]), ints([4]), ints([0])], [t + "hw"]),
                helper.make_node("ReduceProd", [t + "hw"], [t + "n"], keepdims=1),
                helper.make_node("Cast", [t + "n"], [t + "nf"], to=1),
                helper.make_node("Div", [t + "T", t + "nf"], [t + "mean"]),
            ]
            mean = t + "mean"
        else:
            continue
        nodes.append(helper.make_node("Conv", [mean, g.const(w, "gap_w"), g.const(b, "gap_b")], [y]))
        added += nodes
        dropped.add(id(gap))
    g.nodes = [n for n in g.nodes if id(n) not in dropped] + added
    return len(dropped)


def fold_scalar_muls(g):
    """Scalar Mul next to a quantizer goes into the quantizer's scale (exact: same rounding).
    Returns the count.
    DQ(v, q) -> Mul s -> Add b       ==>  DQ(v, q*s) -> Add b
    Mul s -> Add b -> Q(q)           ==>  Add b/s -> Q(q/s)"""
    producers, readers, dropped = g.producers(), g.readers(), set()
    for mul in g.nodes:
        if mul.op_type != "Mul":
            continue
        h = [i for i in mul.input if i not in g.consts]
        if len(h) != 1:
            continue
        h = h[0]
        s = g.scalar(mul.input[1] if mul.input[0] == h else mul.input[0])
        after = readers[mul.output[0]]
        if s is None or s <= 0 or len(after) != 1 or after[0] is None or after[0].op_type != "Add":
            continue
        add = after[0]
        b_name = add.input[1] if add.input[0] == mul.output[0] else add.input[0]
        b = g.scalar(b_name)
        if b is None:
            continue
        src = producers.get(h)
        if src is not None and src.op_type == "DequantizeLinear" and len(readers[h]) == 1 and g.consts[src.input[1]].size == 1:
            src.input[1] = g.const(np.array(float(g.consts[src.input[1]].ravel()[0]) * s, np.float32), "dq_scale")
            add.input[:] = [h, b_name]
            dropped.add(id(mul))
            continue
        nxt = readers[add.output[0]]
        if len(nxt) == 1 and nxt[0] is not None and nxt[0].op_type == "QuantizeLinear" and g.consts[nxt[0].input[1]].size == 1:
            q = nxt[0]
            q.input[1] = g.const(np.array(float(g.consts[q.input[1]].ravel()[0]) / s, np.float32), "q_scale")
            add.input[:] = [h, g.const(np.array([b / s], np.float32), "offset")]
            dropped.add(id(mul))
    g.nodes = [n for n in g.nodes if id(n) not in dropped]
    return len(dropped)


def fold_convtranspose_bn(g):
    """ConvTranspose -> Add(per-channel bias) -> BatchNormalization: one ConvTranspose with bias.
    Returns the count."""
    readers, dropped = g.readers(), set()
    for ct in g.nodes:
        if ct.op_type != "ConvTranspose" or len(ct.input) > 2 or ct.input[1] not in g.consts:
            continue
        add = readers[ct.output[0]]
        if len(add) != 1 or add[0] is None or add[0].op_type != "Add" or add[0].input[1] not in g.consts:
            continue
        add = add[0]
        bn = readers[add.output[0]]
        if len(bn) != 1 or bn[0] is None or bn[0].op_type != "BatchNormalization":
            continue
        bn = bn[0]
        w = g.consts[ct.input[1]].astype(np.float64)  # [C_in, C_out/group, kh, kw]
        if attrs(ct).get("group", 1) != 1:
            continue
        b0 = np.broadcast_to(g.consts[add.input[1]].astype(np.float64).ravel(), (w.shape[1],))
        gamma, beta, mean, var = (g.consts[i].astype(np.float64) for i in bn.input[1:5])
        f = gamma / np.sqrt(var + attrs(bn).get("epsilon", 1e-5))
        ct.input[1] = g.const((w * f.reshape(1, -1, 1, 1)).astype(np.float32), "ct_w")
        ct.input.append(g.const(((b0 - mean) * f + beta).astype(np.float32), "ct_b"))
        ct.output[0] = bn.output[0]
        dropped |= {id(add), id(bn)}
    g.nodes = [n for n in g.nodes if id(n) not in dropped]
    return len(dropped) // 2


# ops between the two transposed convs of a DB head that act on each value alone, with scalar
# parameters: they give the same values whether the tensor is laid out as pixels or channel groups
_PER_VALUE = {"Relu", "Sigmoid", "QuantizeLinear", "DequantizeLinear"}


def _k2s2(g, node):
    """The weight [C_in, C_out, 2, 2] (float64) of a kernel-2 stride-2 ConvTranspose without padding,
    or None when node is not one."""
    if node is None or node.op_type != "ConvTranspose" or node.input[1] not in g.consts:
        return None
    a = attrs(node)
    w = g.consts[node.input[1]]
    if (a.get("group", 1) != 1 or list(a.get("strides", [1, 1])) != [2, 2] or any(a.get("pads", []))
            or any(d != 1 for d in a.get("dilations", [])) or any(a.get("output_padding", []))
            or a.get("output_shape") or a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET")
            or w.ndim != 4 or w.shape[2:] != (2, 2)):
        return None
    return w.astype(np.float64)


def _with_bias(g, node, c_out, readers):
    """(bias [c_out] float64, the tensor after it, the Add node folded or None) of a ConvTranspose:
    its own bias input, or the constant Add that is its only reader; None if the bias is not constant."""
    if len(node.input) > 2 and node.input[2]:
        b = g.consts.get(node.input[2])
        return None if b is None or b.size != c_out else (b.astype(np.float64).ravel(), node.output[0], None)
    add = readers[node.output[0]]
    if len(add) == 1 and add[0] is not None and add[0].op_type == "Add":
        other = [i for i in add[0].input if i != node.output[0]]
        b = g.consts.get(other[0]) if len(other) == 1 else None
        if b is not None and b.size == c_out:
            return b.astype(np.float64).ravel(), add[0].output[0], add[0]
    return np.zeros(c_out), node.output[0], None


def deconv_pairs(g):
    """Two chained kernel-2 stride-2 ConvTransposes (the DB head) become 1x1 Conv -> 1x1 Conv ->
    DepthToSpace(4): each input pixel owns its own 4x4 output block, so nothing overlaps. Returns
    the count.

    The same rewrite as paddle_passes.deconv_pairs, for the runtimes that read the ONNX file: the
    final Sigmoid runs fused into the second conv, on 1/16 as many pixels in channel groups, instead
    of alone on the full-size map (OpenVINO f32: 5.4 ms per 544x960 image on 2 AVX2 cores, the
    transposed convs another 4). What sits between the two (Relu, per-tensor Q/DQ) acts on each value
    alone, so it runs on the channel groups unchanged. The weights stay float: exact up to float
    rounding (the int8 model quantizes nothing here that it did not before).
    """
    from onnx import helper
    count, readers, dropped = 0, g.readers(), set()
    for first in list(g.nodes):
        w_a = _k2s2(g, first) if id(first) not in dropped else None
        if w_a is None:
            continue
        bias_a = _with_bias(g, first, w_a.shape[1], readers)
        if bias_a is None:
            continue
        b_a, t, add_a = bias_a
        chain = []  # the per-value ops between the two, kept as they are
        while True:
            nxt = readers[t]
            if len(nxt) != 1 or nxt[0] is None:
                break
            r = nxt[0]
            if r.op_type in _PER_VALUE and r.input[0] == t and all(
                    i in g.consts and g.consts[i].size == 1 for i in r.input[1:] if i):
                chain.append(r)
                t = r.output[0]
                continue
            break
        second = readers[t][0] if len(readers[t]) == 1 else None
        w_b = _k2s2(g, second)
        if w_b is None or second.input[0] != t or w_b.shape[0] != w_a.shape[1]:
            continue
        bias_b = _with_bias(g, second, w_b.shape[1], readers)
        if bias_b is None:
            continue
        b_b, out, add_b = bias_b
        act = readers[out][0] if len(readers[out]) == 1 else None
        if act is not None and act.op_type in ("Sigmoid", "Relu"):
            out = act.output[0]
        else:
            act = None
        w1, b1, w2, b2 = pair_as_pointwise(w_a, b_a, w_b, b_b)
        head = chain[0].input[0] if chain else t  # the first conv writes what the chain reads
        conv = dict(kernel_shape=[1, 1], strides=[1, 1], pads=[0, 0, 0, 0])
        new = [helper.make_node("Conv", [first.input[0], g.const(w1.astype(np.float32), "dc_w1"),
                                         g.const(b1.astype(np.float32), "dc_b1")], [head], **conv)]
        y = out + "__dc"
        new.append(helper.make_node("Conv", [t, g.const(w2.astype(np.float32), "dc_w2"),
                                             g.const(b2.astype(np.float32), "dc_b2")], [y], **conv))
        if act is not None:
            new.append(helper.make_node(act.op_type, [y], [y + "_act"]))
            y += "_act"
        new.append(helper.make_node("DepthToSpace", [y], [out], blocksize=4, mode="CRD"))
        dropped |= {id(n) for n in (first, add_a, second, add_b, act) if n is not None}
        g.nodes = [n for n in g.nodes if id(n) not in dropped] + new
        readers = g.readers()
        count += 1
    return count


def one_dq_per_reader(g):
    """ORT fuses a DQ into a QLinear op only when that op is its sole reader: give each fusable
    reader its own. Returns the count of copies made."""
    from onnx import helper
    readers, out = g.readers(), []
    for n in g.nodes:
        out.append(n)
        rs = readers[n.output[0]] if n.op_type == "DequantizeLinear" else []
        if len(rs) <= 1 or None in rs:
            continue
        own = [r for r in rs if r.op_type in _FUSABLE]
        shared = [r for r in rs if r.op_type not in _FUSABLE]
        for k, r in enumerate(own if shared else own[1:], 1):
            copy = helper.make_node("DequantizeLinear", list(n.input), [f"{n.output[0]}__r{k}"],
                                    name=f"{n.name or n.output[0]}__r{k}")
            copy.attribute.extend(n.attribute)
            out.append(copy)
            r.input[:] = [copy.output[0] if i == n.output[0] else i for i in r.input]
    count = len(out) - len(g.nodes)
    g.nodes = out
    return count


_QUANTIZABLE = ("Conv", "ConvTranspose", "MatMul", "Gemm")


def _activation_dq(g, name, producers):
    """The DequantizeLinear(QuantizeLinear(activation)) that makes `name`, or None."""
    dq = producers.get(name)
    if dq is None or dq.op_type != "DequantizeLinear":
        return None
    q = producers.get(dq.input[0])
    if q is None or q.op_type != "QuantizeLinear" or q.input[0] in g.consts:
        return None
    return dq


def quantized_nodes(model):
    """Output names of the conv/matmul nodes that read a quantized activation."""
    g = OnnxGraph(model)
    producers = g.producers()
    return {n.output[0] for n in g.nodes
            if n.op_type in _QUANTIZABLE and any(_activation_dq(g, i, producers) for i in n.input)}


def _float_graph(g):
    """Drop every Q/DQ: activation Q->DQ pairs become identities, DQ(constant) a float constant."""
    producers, rename = g.producers(), {}
    for n in g.nodes:
        if n.op_type != "DequantizeLinear":
            continue
        if n.input[0] in g.consts:
            g.consts[n.output[0]] = dequantized(g, n).astype(np.float32)
        else:
            q = producers.get(n.input[0])
            if q is None or q.op_type != "QuantizeLinear":
                raise ValueError(f"DequantizeLinear {n.output[0]} of a non-quantized tensor")
            rename[n.output[0]] = q.input[0]
    g.nodes = [n for n in g.nodes if n.op_type not in ("QuantizeLinear", "DequantizeLinear")]
    for n in g.nodes:
        n.input[:] = [rename.get(i, i) for i in n.input]


def has_gelu(g):
    """Whether the model computes GELU (exported with Erf): the PP-OCRv6 family."""
    return any(n.op_type == "Erf" for n in g.nodes)


def apply_quantizers(src_onnx, dst_onnx, quantizers, conv_output_q=True):
    """Give a float export exactly the executor's quantizers; returns dst_onnx.

    quantizers: runtime.executor_quantizers(), keyed by the output name of the ONNX Conv/MatMul.
    - activations: QuantizeLinear/DequantizeLinear with the executor's scale (int8, zero point 0;
      optimize_int8_onnx moves them to uint8);
    - weights: the executor's int values (8 or fewer bits) with a per-channel DequantizeLinear. paddle2onnx may have
      folded a batch norm into the float weights it exported: the exported weight is then
      int8 * (scale * f) per output channel, so the scale becomes that per-channel factor (sign
      moved into the int8 values) and the file still holds the executor's int8 weights, exactly.
    - conv outputs: the executor keeps them float, which onnxruntime can only run as a float conv
      (no QLinearConv without a Q on the output; ConvInteger + rescale measured 2.8x slower than
      FP32). A Q/DQ with the observer scale of what the ONNX Conv computes (its output after the
      bias add and batch norm paddle2onnx folded into it) lets onnxruntime fuse QLinearConv.
      Measured on the demo rec model: all convs 0.743 at 4.0 ms; without the one on the first conv
      (the one reading the image: 16 post-BN channels of very different ranges share one int8 grid)
      0.783 at 4.1 ms; executor 0.773, no output Q at all 0.773 at FP32 speed. The first conv's
      output is left float. MatMuls get no output Q: onnxruntime runs DQ->MatMul as
      MatMulIntegerToFloat, int8 and exact.
      A model with GELU (Erf in the graph: PP-OCRv6) gets no conv output Q at all: on PP-OCRv6
      tiny rec they cost 7.3 points on 895 real crops (onnxruntime 0.6559 against the executor's
      0.7285), and leaving out only those before a GELU, or also those before the SE gates
      (HardSigmoid), still gave 0.6536 / 0.6592; without any, 0.7285, the executor's figure, at
      7.8 against 7.3 ms (AMD EPYC avx2, another job sharing the cores).
      conv_output_q=False leaves them all out: the file OpenVINO runs, which fuses the int8 conv
      without them (v4 rec trained with 7-bit weights, 895 real crops: 0.7978 against 0.7508 with
      them, and 1.25x against 1.20x over FP32; docs/performance.md).
    """
    from onnx import helper
    g = OnnxGraph.load(src_onnx)
    _float_graph(g)
    gelu = has_gelu(g)
    by_out = {n.output[0]: n for n in g.nodes}
    missing = set(quantizers) - set(by_out)
    if missing:
        raise ValueError(f"no ONNX node computes {sorted(missing)[:3]}")
    readers, added, made = g.readers(), [], {}

    def qdq(x, scale, out=None):
        key = (x, scale)
        if out is None and key in made:
            return made[key]
        s = g.const(np.array(scale, np.float32), "exec_s")
        z = g.const(np.array(0, np.int8), "exec_z")
        y = out or x + "__exec_dq"
        if out is None:
            y = f"{y}{len(made)}"
            made[key] = y
        added.extend([helper.make_node("QuantizeLinear", [x, s, z], [y + "__q"], name=y + "__Q"),
                      helper.make_node("DequantizeLinear", [y + "__q", s, z], [y], name=y + "__DQ")])
        return y

    for out, spec in quantizers.items():
        node = by_out[out]
        for idx, q in spec["inputs"].items():
            if q[0] == "act":
                node.input[idx] = qdq(node.input[idx], q[1])
                continue
            _, qw, scale, axis, bits = q
            w = g.consts[node.input[idx]].astype(np.float64)
            if w.shape != qw.shape:
                raise ValueError(f"{out}: exported weight {w.shape} is not the executor's {qw.shape}")
            wm = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)
            qm = np.moveaxis(qw.astype(np.float64), axis, 0).reshape(w.shape[axis], -1)
            f = (wm * qm).sum(1) / np.maximum((qm * qm).sum(1), 1e-30)  # least squares per channel
            if np.abs(wm - qm * f[:, None]).max() > 1e-5 * max(np.abs(wm).max(), 1e-30):
                raise ValueError(f"{out}: exported weight is not the executor's int8 weight times a per-channel factor")
            # paddle2onnx 1.3 dequantized with 127 whatever the bits (QuantAware.weight_bits 7: 63)
            f = f * 127 / (2 ** (bits - 1) - 1)
            shape = [1] * w.ndim
            shape[axis] = -1
            qi = qw.astype(np.int16) * np.where(f < 0, -1, 1).reshape(shape)
            if qi.min() < -128 or qi.max() > 127:  # -(-128): keep the sign in the scale instead
                raise ValueError(f"{out}: int8 weight out of range after moving a negative scale")
            s = np.where(f == 0, 1.0, np.abs(f)).astype(np.float32)
            wq = g.const(qi.astype(np.int8), node.input[idx] + "_int8")
            y = node.input[idx] + "__exec_w"
            added.append(helper.make_node("DequantizeLinear", [wq, g.const(s, "exec_ws"),
                                                             g.const(np.zeros(s.size, np.int8), "exec_wz")],
                                          [y], name=y, axis=axis))
            node.input[idx] = y
        if node.op_type != "Conv" or spec["reads_feed"] or gelu or not conv_output_q:
            continue
        onnx_readers = {r.op_type for r in readers[out] if r is not None}
        scale = None
        for step, s in spec["after"]:
            if step == "bias" and not (len(node.input) > 2 and node.input[2]):
                break  # paddle2onnx did not fold this bias into the Conv
            if step == "batch_norm" and "BatchNormalization" in onnx_readers:
                break
            scale = s
        if scale:
            node.output[0] = out + "__conv"
            qdq(node.output[0], scale, out=out)
    g.nodes += added
    g.save(dst_onnx)
    return dst_onnx


def _int8_weight_dqs(g):
    """(DequantizeLinear, int8 values, zero point) of every int8 weight with zero point 0 that only
    convs and matmuls read."""
    readers, found = g.readers(), []
    for n in g.nodes:
        if n.op_type != "DequantizeLinear" or n.input[0] not in g.consts:
            continue
        w = g.consts[n.input[0]]
        zero = g.consts.get(n.input[2]) if len(n.input) > 2 and n.input[2] else np.zeros([], np.int8)
        weight = all(r is not None and r.op_type in ("Conv", "MatMul", "ConvTranspose") for r in readers[n.output[0]])
        if w.dtype == np.int8 and zero.dtype == np.int8 and not np.any(zero != 0) and weight:
            found.append((n, w, zero))
    return found


def uint8_weights(src_onnx, dst_onnx):
    """Re-encode every int8 weight (a constant read by a DequantizeLinear that feeds Conv/MatMul)
    as uint8 with zero point 128: the same values, exactly. Returns (dst_onnx, count).

    For CPUs without VNNI. onnxruntime's U8S8 int8 kernels there sum pairs of u8 x s8 products
    in 16 bits with saturation (vpmaddubsw); its U8U8 kernels widen first and do not saturate.
    Measured on emulated AVX2 (qemu -cpu Haswell), demo int8 rec on 32 real crops: U8S8 changed
    the text of 6 crops against the VNNI CPU; U8U8 gave bit-identical outputs. On a VNNI CPU
    U8U8 costs 37-62% (rec 9.0 -> 12.4 ms, det 63 -> 102 ms), so it is only used without VNNI.
    """
    g = OnnxGraph.load(src_onnx)
    count = 0
    for n, w, zero in _int8_weight_dqs(g):
        n.input[0] = g.const((w.astype(np.int16) + 128).astype(np.uint8), n.input[0] + "_u8")
        zero_u8 = g.const(np.full(zero.shape, 128, np.uint8), n.input[0] + "_zp")
        n.input[:] = list(n.input[:2]) + [zero_u8]
        count += 1
    g.save(dst_onnx)
    return dst_onnx, count


def signed_activations(g):
    """uint8 zero point 128 -> int8 zero point 0 on activations (uint8_activations undone): the same
    256 values. Returns the count of quantizers changed (a Q with its DQs counts once).

    For OpenVINO: it runs a uint8 activation with zero point 128 as int8 data plus a float Subtract
    and Convert per tensor (v3 det on 2 AVX2 cores: 64 Subtracts, 92 Converts, 48 ms against 32 ms
    with int8 zero point 0, same function). Left as uint8: a quantizer of a Concat output (the DB
    neck's). With that one signed, OpenVINO 2026.4 computed a wrong probability map on AVX2 (v3 det:
    23 of 3,839 pixels above the threshold; uint8 there: all of them, the rest signed).
    """
    readers, producers, count = g.readers(), g.producers(), 0
    for q in g.nodes:
        if q.op_type != "QuantizeLinear" or q.input[0] in g.consts:
            continue
        z = g.consts.get(q.input[2]) if len(q.input) > 2 else None
        source = producers.get(q.input[0])
        if z is None or z.dtype != np.uint8 or z.size != 1 or int(z.ravel()[0]) != 128 or (
                source is not None and source.op_type == "Concat"):
            continue
        dqs = [r for r in readers[q.output[0]] if r is not None]
        if not all(r.op_type == "DequantizeLinear" and r.input[0] == q.output[0] for r in dqs):
            continue
        zero = g.const(np.zeros(z.shape, np.int8), "zp_s8")
        for n in [q] + dqs:
            n.input[2] = zero
        count += 1
    return count


def _fits_seven_bits(q):
    """True for int8 weights within [-64, 64]: a pair of u8 x s8 products fits 16 bits."""
    return np.abs(q.astype(np.int16)).max() <= 64


def seven_bit_weights(g):
    """int8 weights of convs and matmuls rounded to 7 bits (q -> round(q / 2) in [-64, 64], scale x 2).
    Returns the count. This changes the model (one bit less per weight), so it is only what
    OpenVINO runs on CPUs without VNNI, where its int8 kernels add pairs of u8 x s8 products in 16
    bits with saturation (vpmaddubsw): 2 x 255 x 64 fits, 2 x 255 x 127 does not. Measured in
    docs/performance.md: v2 and v3 det keep their accuracy, v4 det loses 1.3 points, v4 rec 12.
    Weights that fit already (a model trained with QuantAware.weight_bits 7) are left exact."""
    count = 0
    for n, q, _ in _int8_weight_dqs(g):
        if _fits_seven_bits(q):
            continue
        # np.round: half to even, as QuantizeLinear rounds
        n.input[0] = g.const(np.clip(np.round(q.astype(np.float32) / 2), -64, 64).astype(np.int8), n.input[0] + "_7bit")
        n.input[1] = g.const((g.consts[n.input[1]].astype(np.float32) * 2), n.input[1] + "_7bit")
        count += 1
    return count


def int8_weight_bits(onnx_path):
    """7 when every int8 weight of convs and matmuls fits [-64, 64] (a model trained with
    QuantAware.weight_bits 7: seven_bit_weights leaves it exact), else 8."""
    dqs = _int8_weight_dqs(OnnxGraph.load(onnx_path))
    return 7 if dqs and all(_fits_seven_bits(q) for _, q, _ in dqs) else 8


def openvino_int8_onnx(src_onnx, dst_onnx, seven_bit=False):
    """The int8 ONNX file OpenVINO runs, from the one onnxruntime runs (optimize_int8_onnx's):
    signed activations, and with seven_bit the 7-bit weights of CPUs without VNNI. Returns
    (dst_onnx, {pass name: count})."""
    g = OnnxGraph.load(src_onnx)
    counts = {"signed_activations": signed_activations(g)}
    if seven_bit:
        counts["seven_bit_weights"] = seven_bit_weights(g)
    g.save(dst_onnx)
    return dst_onnx, counts


# The rewrites of an int8 export for onnxruntime, in order: real int8 weights and uint8
# activations first (what the patterns below match on), the float rewrites around the
# quantizers next, and the DQ copies last, once every reader is final.
INT8_PASSES = (
    ("int8_weights", int8_weights),
    ("uint8_activations", uint8_activations),
    ("gap_from_conv_input", gap_from_conv_input),
    ("fold_scalar_muls", fold_scalar_muls),
    ("fold_convtranspose_bn", fold_convtranspose_bn),
    ("deconv_pairs", deconv_pairs),
    ("one_dq_per_reader", one_dq_per_reader),
)


def run_passes(g, passes=INT8_PASSES):
    """Apply passes to the graph g in order; returns {pass name: how many rewrites it made}."""
    return {name: fn(g) for name, fn in passes}


def optimize_int8_onnx(src_onnx, dst_onnx):
    """Rewrite a paddle2onnx int8 (Q/DQ) export for onnxruntime's CPU int8 kernels; returns dst_onnx.
    The result computes what the QAT model computes (see the module docstring), stores int8 weights,
    and runs its convs as QLinearConv."""
    g = OnnxGraph.load(src_onnx)
    run_passes(g)
    g.save(dst_onnx)
    return dst_onnx
