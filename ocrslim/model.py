"""Loading Paddle inference models (FP32 or quantized) into a static Executor."""
import glob
import logging
import os

from . import distributed
from .config import resolve_path
from .errors import UserError
from .model_check import check_model_files, paddle_load_errors

log = logging.getLogger("ocrslim")


def model_files(global_cfg):
    """Resolve and check Global.model_dir and its two files (model_check); return
    (model_dir, model_filename, params_filename) of a Paddle 2.x program. A PaddleOCR 3.x
    (inference.json) or ONNX model is converted first (formats/, once per process): the
    files returned are then the conversion's, in a private work folder."""
    model_dir = resolve_path(global_cfg.get("model_dir"))
    if not model_dir:
        raise UserError("no model given: set Global.model_dir or pass --model_dir DIR")
    if not os.path.exists(model_dir):
        raise UserError(f"model dir not found: {model_dir}")
    from . import formats
    if formats.FORMATS["pir_json"].detect(model_dir) or formats.FORMATS["onnx"].detect(model_dir):
        if not formats.FORMATS["pdmodel"].detect(model_dir):
            model_dir = formats.as_pdmodel(model_dir)
            global_cfg = {}  # a conversion is always written as inference.pdmodel + .pdiparams
    if not os.path.isdir(model_dir):
        raise UserError(f"model dir not found: {model_dir}")
    model_file = global_cfg.get("model_filename") or "inference.pdmodel"
    params_file = global_cfg.get("params_filename") or "inference.pdiparams"
    for name in (model_file, params_file):
        if not os.path.isfile(os.path.join(model_dir, name)):
            found = sorted(os.path.basename(p) for p in glob.glob(os.path.join(model_dir, "*.pd*")))
            raise UserError(f"{model_dir} has no {name} (found: {', '.join(found) or 'no *.pdmodel/*.pdiparams'}); "
                            "point --model_dir at a Paddle inference model folder (or a PaddleOCR 3.x folder with "
                            "inference.json, or an .onnx file) or set Global.model_filename / Global.params_filename")
    # milliseconds here save a C++ traceback (or a crash) from Paddle at the first load
    check_model_files(model_dir, model_file, params_file)
    return model_dir, model_file, params_file


def model_size_mb(model_dir, model_file="inference.pdmodel", params_file="inference.pdiparams"):
    total = sum(os.path.getsize(os.path.join(model_dir, n)) for n in (model_file, params_file))
    return total / 2 ** 20


def place(devices):
    """The paddle place for 'cpu', 'gpu' or 'gpu:N', also set as paddle's global device
    (what Paddle's helpers default to; ACT's executor gets this place through qat.act_hooks)."""
    import paddle
    gpu = distributed.card(devices)  # one-line error for anything but cpu, gpu, gpu:N
    if gpu is None:
        paddle.set_device("cpu")
        return paddle.CPUPlace()
    if not paddle.is_compiled_with_cuda():
        raise UserError(f"--devices {devices} needs paddlepaddle-gpu (see docs/install.md); this paddle is CPU-only")
    # gpu:N, or under paddle.distributed.launch the card it gave this process (FLAGS_selected_gpus)
    paddle.set_device(f"gpu:{gpu}")
    return paddle.CUDAPlace(gpu)


def load(global_cfg):
    """Load the inference model; return (exe, program, feed_names, fetch_vars).

    Reading only: nothing is ever written into the model dir.
    """
    import paddle
    paddle.enable_static()
    model_dir, model_file, params_file = model_files(global_cfg)
    exe = paddle.static.Executor(place(global_cfg.get("devices", "cpu")))
    scope = paddle.static.global_scope()
    stem = model_file[: -len(".pdmodel")]
    with paddle.static.scope_guard(scope), paddle_load_errors(model_dir):
        if model_file.endswith(".pdmodel") and params_file == stem + ".pdiparams":
            found = paddle.static.load_inference_model(os.path.join(model_dir, stem), exe)
        else:  # odd file names need the older call form
            found = paddle.static.load_inference_model(
                model_dir, exe, model_filename=model_file, params_filename=params_file)
    program, feed_names, fetch_vars = found
    return exe, program, feed_names, fetch_vars


def predictor(exe, program, feed_names, fetch_vars):
    """A function images(np.float32 NCHW) -> list of numpy outputs."""
    def predict(images):
        return exe.run(program, feed={feed_names[0]: images}, fetch_list=fetch_vars)
    return predict
