"""Deployment runtimes: Paddle Inference and onnxruntime, behind one predict().

The training Executor (model.load) is what ACT and eval.py use; it runs
fake-quant int8 models in float and is slower than FP32. A user deploys with
Paddle Inference (oneDNN on CPU, TensorRT on GPU) or onnxruntime, so bench.py
and eval.py --e2e time and score the model through these.

Every predictor is a function images (float32 NCHW) -> list of numpy outputs,
the same contract as model.predictor, so the one evaluate() scores it.
"""
import contextlib
import logging
import os
import sys

from .. import distributed
from ..errors import UserError
from ..model_check import paddle_load_errors

log = logging.getLogger("ocrslim")

# oneDNN int8 kernels only for the ops that carry quantize/dequantize pairs in our
# models, plus concat and nearest_interp_v2: Paddle gives those their consumer
# conv's input scale, which is exact (they only copy values) and lets the DB
# neck resize and concatenate int8 data. With no op set, enable_mkldnn_int8()
# also quantizes fc, matmul, pool, transpose and elementwise ops from guessed
# scales, which costs rec a lot of accuracy (see ../shared/STACK.md).
MKLDNN_INT8_OPS = {"conv2d", "depthwise_conv2d", "fused_conv2d", "concat", "nearest_interp_v2"}
ONEDNN_SHAPE_CACHE = 64
QUANT_OPS = ("quantize_linear", "fake_quantize", "fake_channel_wise_quantize")


@contextlib.contextmanager
def quiet_native_output():
    """Silence what C++ code prints straight to fd 1 and 2: Paddle's oneDNN int8
    passes print ~30 lines of per-op statistics, paddle2onnx its progress.
    Failures still raise Python exceptions with their message."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved + [devnull]:
            os.close(fd)


def _program(model_path):
    """The graph of a .pdmodel file, read without its weights."""
    from .paddle_graph import PaddleGraph
    with open(model_path, "rb") as f:
        return PaddleGraph(f.read(), source=model_path)


def paddle_ops(model_path):
    """[(op type, output names)] of a .pdmodel file."""
    g = _program(model_path)  # op handles die with the program: keep it referenced while reading
    return [(op.type, op.output_arg_names) for op in g.ops]


def paddle_input_shape(model_path):
    """The shape of the program's first feed variable (-1 where dynamic)."""
    g = _program(model_path)
    return g.shape(g.feeds[0]) if g.feeds else []


def paddle_op_types(model_path):
    return {t for t, _ in paddle_ops(model_path)}


def is_ocrslim_output(model_dir):
    """A run.py save_dir: it holds report.json and deploy/ next to the model."""
    return os.path.isfile(os.path.join(model_dir, "report.json")) and os.path.isdir(os.path.join(model_dir, "deploy"))


def paddle_is_quantized(model_path):
    return any(t.startswith(QUANT_OPS) for t in paddle_op_types(model_path))


def onnx_is_quantized(onnx_path):
    import onnx
    model = onnx.load(onnx_path, load_external_data=False)
    return any(n.op_type in ("QuantizeLinear", "QLinearConv", "QLinearMatMul") for n in model.graph.node)


def builds_int8_concat(predictor, feed_shape):
    """Whether oneDNN built this predictor's int8 concats: run once on a small input (64 for a
    free size). The DB neck's concat of resized int8 maps builds; PP-OCRv6 tiny det also
    concatenates a pooled map with a conv output (pool2d runs in float), and oneDNN could not
    create that primitive ("could not create a primitive descriptor for a concat primitive", on
    every input size): such a model runs with its concats in float."""
    import numpy as np
    shape = [1] + [d if d > 0 else 64 for d in feed_shape[1:]]
    inp = predictor.get_input_handle(predictor.get_input_names()[0])
    inp.reshape(shape)
    inp.copy_from_cpu(np.zeros(shape, "float32"))
    try:
        with quiet_native_output():
            predictor.run()
    except RuntimeError as err:
        if "concat" not in str(err):
            raise
        return False
    return True


def paddle_predictor(files, devices="cpu", threads=2, precision="fp32", shapes=None, delete_passes=None):
    """Paddle Inference predictor for model files (model_dir, model_file, params_file).

    CPU: oneDNN; a quantized model runs oneDNN int8 kernels for its convs.
    GPU: TensorRT when paddle was built with it (precision fp32/fp16, int8 for
    quantized models), else plain CUDA kernels. `shapes` (min, opt, max input
    shapes) sets TensorRT's dynamic shape range. `delete_passes`: analysis passes
    to skip; None: this CPU's (backends.PaddleBackend.cpu_settings: without them
    Paddle 2.6.2 dies with SIGILL on AVX2 CPUs).
    Returns (predict, info).
    """
    from paddle import inference
    model_dir, model_file, params_file = files
    model_path = os.path.join(model_dir, model_file)
    quantized = paddle_is_quantized(model_path)
    program = None
    if quantized or is_ocrslim_output(model_dir):
        # what ACT saved is a training-shaped program: paddle_passes.optimize makes it
        # the one oneDNN runs fast, with the same function up to int8 rounding
        # (see paddle_passes.py). A pruned FP32 model of run.py gets the same rewrites
        # (exact in FP32), as load_predictor runs it from save_dir/deploy; a FP32 model
        # from elsewhere runs as Paddle Inference runs it.
        from .paddle_passes import optimize
        with open(model_path, "rb") as f, open(os.path.join(model_dir, params_file), "rb") as g:
            program, params, _ = optimize(f.read(), g.read(), source=model_dir)
    full_images = paddle_input_shape(model_path)[2:] == [-1, -1]
    if devices == "cpu" and delete_passes is None:
        from .backends import PaddleBackend
        delete_passes = PaddleBackend.cpu_settings()["delete_passes"]

    def create(int8_ops):
        config = inference.Config(model_path, os.path.join(model_dir, params_file))
        if program is not None:
            config.set_model_buffer(program, len(program), params, len(params))
        config.disable_glog_info()
        if not (quantized and devices == "cpu" and full_images):
            # Buffer reuse made oneDNN int8 det ~15% slower (its f32->s8 reorders
            # took 1.3 ms more per image at 544x768); without it det peak memory
            # at 960x960 goes from 556 to 810 MB. On 48-pixel rec crops reuse
            # helps int8 (6.6 vs 7.2 ms) and FP32 speed does not change.
            config.enable_memory_optim()
        if devices == "cpu":
            config.disable_gpu()
            config.enable_mkldnn()
            # oneDNN keeps kernels for this many input shapes; Paddle's default
            # (10) is fewer than a det eval set has (demo: 12), so kernels were
            # rebuilt on most calls (FP32 det: 35 ms on some images, 75 on others)
            config.set_mkldnn_cache_capacity(ONEDNN_SHAPE_CACHE)
            config.set_cpu_math_library_num_threads(threads)
            for name in delete_passes:
                config.delete_pass(name)
            if quantized:
                config.enable_mkldnn_int8(int8_ops)
            info = {"backend": "paddle", "engine": "oneDNN", "precision": "int8" if quantized else "fp32"}
        else:
            import paddle
            gpu = distributed.card(devices)  # one-line error for anything but cpu, gpu, gpu:N
            if not paddle.is_compiled_with_cuda():
                raise UserError(f"--devices {devices} needs paddlepaddle-gpu (see docs/install.md); "
                                "this paddle is CPU-only")
            config.enable_use_gpu(256, gpu)
            if inference.get_trt_compile_version() == (0, 0, 0):
                log.warning("this paddle has no TensorRT: running plain CUDA kernels")
                info = {"backend": "paddle", "engine": "CUDA", "precision": "fp32"}
            else:
                mode = "int8" if quantized else precision
                prec = {"fp32": inference.PrecisionType.Float32, "fp16": inference.PrecisionType.Half,
                        "int8": inference.PrecisionType.Int8}[mode]
                # use_calib_mode=False: a quantized model carries its own scales
                config.enable_tensorrt_engine(workspace_size=1 << 30, max_batch_size=1, min_subgraph_size=3,
                                              precision_mode=prec, use_static=False, use_calib_mode=False)
                if shapes:
                    name = [outs[0] for t, outs in paddle_ops(model_path) if t == "feed"][0]
                    config.set_trt_dynamic_shape_info({name: shapes[0]}, {name: shapes[2]}, {name: shapes[1]})
                info = {"backend": "paddle", "engine": "TensorRT", "precision": mode}
        with quiet_native_output(), paddle_load_errors(model_dir):
            return inference.create_predictor(config), info

    int8_ops = set(MKLDNN_INT8_OPS)
    predictor, info = create(int8_ops)
    if quantized and devices == "cpu" and not builds_int8_concat(predictor, paddle_input_shape(model_path)):
        int8_ops.discard("concat")
        log.info("oneDNN cannot build an int8 concat of this program's inputs: concat runs in float")
        predictor, info = create(int8_ops)
    if quantized and devices == "cpu":
        info["int8_ops"] = sorted(int8_ops)
    inp = predictor.get_input_handle(predictor.get_input_names()[0])
    outs = [predictor.get_output_handle(n) for n in predictor.get_output_names()]

    def predict(images):
        inp.reshape(images.shape)
        inp.copy_from_cpu(images)
        predictor.run()
        return [o.copy_to_cpu() for o in outs]
    return predict, {**info, "device": devices, "threads": threads}


def export_onnx(files, onnx_path, opset=13):
    """Export a Paddle inference model with paddle2onnx (1.3.x); returns onnx_path."""
    import paddle2onnx
    model_dir, model_file, params_file = files
    # absolute before the chdir below: relative paths would point into the export folder
    model_path, params_path = (os.path.abspath(os.path.join(model_dir, f)) for f in (model_file, params_file))
    onnx_path = os.path.abspath(onnx_path)
    tmp = onnx_path + ".tmp"
    try:
        # paddle2onnx writes a max_range.txt into the current directory for some
        # quantized models: let that land next to the export, not in the user's cwd
        with quiet_native_output(), contextlib.chdir(os.path.dirname(onnx_path)):
            paddle2onnx.export(model_path, params_path, save_file=tmp, opset_version=opset,
                               auto_upgrade_opset=True, verbose=False, enable_onnx_checker=True,
                               deploy_backend="onnxruntime")
    except Exception as err:
        raise UserError(f"paddle2onnx could not export {model_dir}: {err}")
    free_image_size(tmp)
    os.replace(tmp, onnx_path)
    return onnx_path


def free_image_size(onnx_path):
    """Make a fixed image height and width of the input free again, in place.

    Some PaddleOCR exports declare one size (PP-OCRv2 det: [-1, 3, 960, 960]); Paddle
    Inference ignores it and PaddleOCR feeds any size, but onnxruntime refuses every other size
    and paddle2onnx copies the declared one. Only an input whose height and width are both
    fixed is touched (a rec model's fixed height of 48 is real); the recorded intermediate
    shapes go too, as they were inferred from that size."""
    import onnx
    model = onnx.load(onnx_path)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    if len(dims) != 4 or not (dims[2].HasField("dim_value") and dims[3].HasField("dim_value")):
        return
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    del model.graph.value_info[:]
    for out in model.graph.output:
        for i, dim in enumerate(out.type.tensor_type.shape.dim):
            if i >= 2 and dim.HasField("dim_value"):
                dim.dim_param = f"{out.name}_{i}"
    onnx.save(model, onnx_path)


QUANTIZED_TYPES = {"conv2d": (("Input", "Filter"), "Output"), "depthwise_conv2d": (("Input", "Filter"), "Output"),
                   "matmul_v2": (("X", "Y"), "Out")}


def executor_quantizers(files):
    """What the training executor really quantizes, per conv2d/depthwise_conv2d/matmul_v2 of a
    PaddleSlim int8 model, keyed by the op's output name (paddle2onnx keeps it on the ONNX node).

    {out: {"inputs": {slot index: ("act", scale) | ("weight", int values, per-channel scales, axis, bits)},
           "after": [(step, observer scale)], "reads_feed": bool}}
    Only inputs fed by a dequantize_linear whose quantize_linear is real (not only_observer) count:
    the executor runs observer pairs as identities. "after" follows the op's output through
    observer pairs, a per-channel bias add and a batch_norm (ops paddle2onnx may fold into the
    ONNX Conv), with the observer scale recorded on each tensor ("out", "bias", "batch_norm").
    """
    import numpy as np
    from .paddle_graph import PaddleGraph, is_observer, qmax, static_mode
    with static_mode(), quiet_native_output():
        g = PaddleGraph.from_files(files)

    def observer_scale(name):
        for r in g.readers(name):
            if is_observer(r):
                return float(g.value(r.input("Scale")[0]).ravel()[0]) / qmax(r)
        return None

    def float_readers(name):  # readers of a tensor, looking through its observer pair
        out = [r for r in g.readers(name) if r.type != "quantize_linear"]
        for r in g.readers(name):
            if is_observer(r):
                for dq in g.readers(r.output("Y")[0]):
                    out += g.readers(dq.output("Y")[0])
        return out

    result = {}
    for op in g.ops:
        if op.type not in QUANTIZED_TYPES:
            continue
        slots, out_slot = QUANTIZED_TYPES[op.type]
        inputs, reads_feed = {}, False
        for idx, slot in enumerate(slots):
            dq = g.producer(op.input(slot)[0])
            if dq is None or dq.type != "dequantize_linear":
                continue
            q = g.producer(dq.input("X")[0])
            if q is not None and is_observer(q):
                continue
            scale = g.value(dq.input("Scale")[0]).astype(np.float64) / qmax(dq)
            if q is not None and q.type == "quantize_linear":
                inputs[idx] = ("act", float(scale.ravel()[0]))
                reads_feed |= q.input("X")[0] in g.feeds
            else:  # weights are stored quantized and only dequantized
                inputs[idx] = ("weight", g.value(dq.input("X")[0]), scale.ravel(), dq.attr("quant_axis"),
                               dq.attr("bit_length"))
        if not inputs:
            continue
        name = op.output(out_slot)[0]
        after, tensor = [("out", observer_scale(name))], name
        while True:
            nxt = float_readers(tensor)
            if len(nxt) != 1:
                break
            r = nxt[0]
            if r.type == "batch_norm":
                tensor, step = r.output("Y")[0], "batch_norm"
            elif r.type == "elementwise_add" and g.is_param(r.input("Y")[0]):
                tensor, step = r.output("Out")[0], "bias"
            else:
                break
            after.append((step, observer_scale(tensor)))
        result[name] = {"inputs": inputs, "after": after, "reads_feed": reads_feed}
    return result


def onnx_model(files, out_dir, name, openvino=False):
    """The ONNX model onnxruntime (openvino=True: OpenVINO) should run for a Paddle model, written
    into out_dir.

    FP32: the plain paddle2onnx export. Quantized: the export rewritten by
    onnx_passes.optimize_int8_onnx (int8 weights, uint8 activations, QLinearConv);
    as exported, onnxruntime runs it slower than FP32.

    paddle2onnx 1.3 builds its Q/DQ from every quantize_linear it sees, PaddleSlim's observer
    pairs included (see paddle_passes.strip_observers), and keeps a quantized op only where it finds scales
    on both its inputs and its output. For det that gives exactly the convs the executor
    quantizes; for PP-OCRv4 rec it dropped the real quantizers of all 13 SVTR matmuls and
    quantized two convs the recipe keeps float (onnxruntime accuracy 0.733 against the
    executor's 0.773). So the export is checked against the executor's own quantizers
    (executor_quantizers): where they differ on any conv/matmul, the model is exported again
    without its observers (plain float) and onnx_passes.apply_quantizers puts back exactly the
    executor's Q/DQ, plus a Q on each quantized conv's output so onnxruntime can run it as
    QLinearConv (see apply_quantizers for what that costs and why the first conv is left out).
    OpenVINO runs int8 convs without that output Q, and is more accurate without it (faster on v4
    det and rec, 4% slower on v2 det prune_qat: docs/performance.md): its file always gets exactly
    the executor's quantizers (openvino=True), on the program with the exact Paddle rewrites
    (paddle_passes.EXACT_PASSES), which OpenVINO does not do itself around int8 convs.
    """
    import onnx
    from .paddle_graph import PaddleGraph, static_mode
    from .paddle_passes import strip_observers
    from .onnx_passes import apply_quantizers, optimize_int8_onnx, quantized_nodes
    quantized = paddle_is_quantized(os.path.join(files[0], files[1]))
    if quantized and openvino:
        # OpenVINO leaves the SE blocks' x + x * gate and PP-LCNetV3's affine ops unfused around
        # int8 convs: the exact Paddle rewrites first (paddle_passes.EXACT_PASSES)
        from .paddle_passes import write_exact
        files, counts = write_exact(files, os.path.join(out_dir, name + ".exact"))
        log.info("OpenVINO's int8 program: %s", ", ".join(f"{k} {v}" for k, v in counts.items()))
    path = export_onnx(files, os.path.join(out_dir, name + ".onnx"))
    if not quantized:
        return path
    quantizers = executor_quantizers(files)
    if openvino:  # write_exact stripped the observers already: its export takes the executor's Q/DQ
        path = apply_quantizers(path, os.path.join(out_dir, name + ".qdq.onnx"), quantizers, conv_output_q=False)
        return optimize_int8_onnx(path, os.path.join(out_dir, name + ".int8.onnx"))
    # compared on the op types the executor quantizes; paddle2onnx also quantizes det's two
    # conv2d_transpose ops (observer scales only), which measured harmless there (hmean 0.8000)
    candidates = {outs[0] for t, outs in paddle_ops(os.path.join(files[0], files[1])) if t in QUANTIZED_TYPES}
    exported = quantized_nodes(onnx.load(path, load_external_data=False)) & candidates
    # paddle2onnx 1.3 dequantizes every weight as if it had 8 bits (scale / 127): a model trained
    # with QuantAware.weight_bits 7 exports with weights at 63/127 of their value (0.0 accuracy
    # on v4 rec), so its Q/DQ are always rebuilt, where apply_quantizers knows the bits
    narrow = any(q[0] == "weight" and q[4] != 8 for spec in quantizers.values() for q in spec["inputs"].values())
    if exported != set(quantizers) or narrow:
        log.info("paddle2onnx quantized other ops than the executor does (%d missing, %d extra)%s: "
                 "rebuilding the Q/DQ from the executor's quantizers",
                 len(set(quantizers) - exported), len(exported - set(quantizers)),
                 ", or weights of fewer than 8 bits" if narrow else "")
        stripped = os.path.join(out_dir, name + ".noobs")
        os.makedirs(stripped, exist_ok=True)
        # the program alone, its weights untouched: serialize_program would also prune the
        # dead quantizers stripping leaves, and paddle2onnx then folds one more rec batch norm
        # into a conv than the export measured in docs/deploy.md (a different output Q/DQ)
        with static_mode(), open(os.path.join(files[0], files[1]), "rb") as f:
            g = PaddleGraph(f.read(), source=files[0])
            strip_observers(g)
            program = g.serialize()[0]
        with open(os.path.join(stripped, files[1]), "wb") as f:
            f.write(program)
        params = os.path.join(stripped, files[2])
        if os.path.lexists(params):
            os.remove(params)
        os.symlink(os.path.abspath(os.path.join(files[0], files[2])), params)
        path = export_onnx((stripped, files[1], files[2]), os.path.join(out_dir, name + ".noobs.onnx"))
        path = apply_quantizers(path, os.path.join(out_dir, name + ".qdq.onnx"), quantizers, conv_output_q=True)
    return optimize_int8_onnx(path, os.path.join(out_dir, name + ".int8.onnx"))


@contextlib.contextmanager
def onnx_load_errors(onnx_path):
    """onnxruntime's errors on loading a model (a damaged or unreadable file, a graph it cannot
    build) become one UserError line naming the file."""
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors
    try:
        yield
    except (ort_errors.Fail, ort_errors.InvalidArgument, ort_errors.InvalidProtobuf, ort_errors.NoSuchFile,
            ort_errors.InvalidGraph, ort_errors.NotImplemented) as err:
        raise UserError(f"onnxruntime could not load {onnx_path}: {str(err).strip().splitlines()[0]}") from err


def onnx_predictor(onnx_path, devices="cpu", threads=2, profile_prefix=None):
    """onnxruntime session for an ONNX file; returns (predict, info). profile_prefix: write
    onnxruntime's JSON profile of every run there (profile.py; predict.session.end_profiling()
    closes it and returns its path)."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    if profile_prefix:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    gpu = distributed.card(devices)
    if gpu is not None:
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise UserError(f"--devices {devices} with onnxruntime needs the onnxruntime-gpu package")
        providers = ["CUDAExecutionProvider"]
    else:
        providers = ["CPUExecutionProvider"]
    options_per_provider = [{"device_id": gpu}] if gpu is not None else None
    with onnx_load_errors(onnx_path):
        session = ort.InferenceSession(onnx_path, options, providers=providers, provider_options=options_per_provider)
    name = session.get_inputs()[0].name

    def predict(images):
        return session.run(None, {name: images})
    predict.session = session
    info = {"backend": "onnxruntime", "engine": providers[0].replace("ExecutionProvider", ""),
            "precision": "int8" if onnx_is_quantized(onnx_path) else "fp32"}
    return predict, {**info, "device": devices, "threads": threads}


def openvino_model_quantized(model):
    """Whether an OpenVINO model (read from ONNX or IR) holds quantizers (FakeQuantize, or the
    ONNX Q/DQ pairs its reader keeps until compilation)."""
    return any(op.get_type_name() in ("FakeQuantize", "QuantizeLinear", "DequantizeLinear")
               or (op.get_type_name() == "Convert" and op.get_input_element_type(0).get_type_name() in ("i8", "u8"))
               for op in model.get_ops())


def openvino_predictor(model_path, threads=2, hint="f32", perf_count=False):
    """OpenVINO (CPU plugin) on an ONNX file or an IR (.xml); hint: the precision it may run the
    float parts in ("f32", or "bf16" on CPUs with AMX or AVX512_BF16). perf_count: keep per-node
    performance counters (profile.py reads them from predict.request). Returns (predict, info)."""
    import openvino as ov
    core = ov.Core()
    try:
        model = core.read_model(model_path)
        compiled = core.compile_model(model, "CPU", {
            "INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": threads,
            # batch 1 as a service runs it: one stream, latency first
            "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1, "PERF_COUNT": perf_count})
    except RuntimeError as err:
        raise UserError(f"OpenVINO could not load {model_path}: {str(err).strip().splitlines()[0]}") from err
    request = compiled.create_infer_request()
    outputs = compiled.outputs

    def predict(images):
        result = request.infer({0: images})
        return [result[o] for o in outputs]
    predict.request = request
    quantized = openvino_model_quantized(model)
    info = {"backend": "openvino", "engine": f"OpenVINO {ov.__version__.split('-')[0]} {hint}",
            "precision": "int8" if quantized else ("bf16" if hint == "bf16" else "fp32")}
    return predict, {**info, "device": "cpu", "threads": threads}
