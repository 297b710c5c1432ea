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

from .errors import UserError
from .model import model_size_mb

log = logging.getLogger("ocrslim")

BACKENDS = ("paddle", "onnxruntime")
# oneDNN int8 kernels only for the ops that carry quantize/dequantize pairs in our
# models. With no op set, enable_mkldnn_int8() also quantizes fc, matmul, pool,
# concat, transpose and elementwise ops from guessed scales, which costs rec a
# lot of accuracy (see ../shared/STACK.md).
MKLDNN_INT8_OPS = {"conv2d", "depthwise_conv2d", "fused_conv2d"}
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


def paddle_ops(model_path):
    """[(op type, output names)] of a .pdmodel file, read without loading the weights."""
    from paddle.base import core
    with open(model_path, "rb") as f:
        desc = core.ProgramDesc(f.read())
    block = desc.block(0)  # op handles die with desc: copy out what we need here
    return [(op.type(), op.output_arg_names()) for op in (block.op(i) for i in range(block.op_size()))]


def paddle_op_types(model_path):
    return {t for t, _ in paddle_ops(model_path)}


def paddle_is_quantized(model_path):
    return any(t.startswith(QUANT_OPS) for t in paddle_op_types(model_path))


def onnx_is_quantized(onnx_path):
    import onnx
    model = onnx.load(onnx_path, load_external_data=False)
    return any(n.op_type in ("QuantizeLinear", "QLinearConv", "QLinearMatMul") for n in model.graph.node)


def _gpu_id():
    return int(os.environ.get("FLAGS_selected_gpus", "0").split(",")[0])


def paddle_predictor(files, devices="cpu", threads=2, precision="fp32", shapes=None):
    """Paddle Inference predictor for model files (model_dir, model_file, params_file).

    CPU: oneDNN; a quantized model runs oneDNN int8 kernels for its convs.
    GPU: TensorRT when paddle was built with it (precision fp32/fp16, int8 for
    quantized models), else plain CUDA kernels. `shapes` (min, opt, max input
    shapes) sets TensorRT's dynamic shape range.
    Returns (predict, info).
    """
    from paddle import inference
    model_dir, model_file, params_file = files
    model_path = os.path.join(model_dir, model_file)
    quantized = paddle_is_quantized(model_path)
    config = inference.Config(model_path, os.path.join(model_dir, params_file))
    if quantized:
        # what ACT saved is a training-shaped program: deploy.optimize makes it
        # the one oneDNN runs fast, with the same function (see deploy.py)
        from .deploy import optimize
        with open(model_path, "rb") as f, open(os.path.join(model_dir, params_file), "rb") as g:
            program, params, _ = optimize(f.read(), g.read())
        config.set_model_buffer(program, len(program), params, len(params))
    config.disable_glog_info()
    config.enable_memory_optim()
    if devices == "cpu":
        config.disable_gpu()
        config.enable_mkldnn()
        config.set_cpu_math_library_num_threads(threads)
        if quantized:
            config.enable_mkldnn_int8(MKLDNN_INT8_OPS)
        info = {"backend": "paddle", "engine": "oneDNN", "precision": "int8" if quantized else "fp32"}
    elif devices == "gpu":
        import paddle
        if not paddle.is_compiled_with_cuda():
            raise UserError("--devices gpu needs paddlepaddle-gpu (see README); this paddle is CPU-only")
        config.enable_use_gpu(256, _gpu_id())
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
    else:
        raise UserError(f"unknown device {devices!r}: use cpu or gpu")
    with quiet_native_output():
        predictor = inference.create_predictor(config)
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
    os.replace(tmp, onnx_path)
    return onnx_path


def onnx_model(files, out_dir, name):
    """The ONNX model onnxruntime should run for a Paddle model, written into out_dir.

    FP32: the plain paddle2onnx export. Quantized: the export rewritten by
    fastpath.optimize_int8_onnx (int8 weights, uint8 activations, QLinearConv);
    as exported, onnxruntime runs it slower than FP32.
    """
    path = export_onnx(files, os.path.join(out_dir, name + ".onnx"))
    if paddle_is_quantized(os.path.join(files[0], files[1])):
        from .fastpath import optimize_int8_onnx
        path = optimize_int8_onnx(path, os.path.join(out_dir, name + ".int8.onnx"))
    return path


def onnx_predictor(onnx_path, devices="cpu", threads=2):
    """onnxruntime session for an ONNX file; returns (predict, info)."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if devices == "gpu":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise UserError("--devices gpu with onnxruntime needs the onnxruntime-gpu package")
        providers = ["CUDAExecutionProvider"]
    else:
        providers = ["CPUExecutionProvider"]
    session = ort.InferenceSession(onnx_path, options, providers=providers)
    name = session.get_inputs()[0].name

    def predict(images):
        return session.run(None, {name: images})
    info = {"backend": "onnxruntime", "engine": providers[0].replace("ExecutionProvider", ""),
            "precision": "int8" if onnx_is_quantized(onnx_path) else "fp32"}
    return predict, {**info, "device": devices, "threads": threads}


def predictor(files, backend, work_dir, name, devices="cpu", threads=2, precision="fp32", shapes=None):
    """A predictor for Paddle model files on `backend`; returns (predict, info).

    onnxruntime runs the ONNX model made by onnx_model in work_dir (name: its
    file stem there). info carries size_mb, the size on disk of what runs.
    """
    if backend == "onnxruntime":
        path = onnx_model(files, work_dir, name)
        predict, info = onnx_predictor(path, devices, threads)
        size_mb = os.path.getsize(path) / 2 ** 20
    else:
        predict, info = paddle_predictor(files, devices, threads, precision, shapes)
        size_mb = model_size_mb(*files)
    return predict, {**info, "size_mb": size_mb}
