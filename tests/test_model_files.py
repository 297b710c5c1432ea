"""Damaged model files give one line naming the file and the cause, wherever a model is loaded:
model_check's structural check (every command, via model.model_files), Paddle's and onnxruntime's
own load errors, and load_predictor's deploy/ folder."""
import ctypes
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from ocrslim import eval_cli, model as mdl
from ocrslim.config import resolve_path
from ocrslim.errors import UserError, run_cli
from ocrslim.model_check import check_model_files

from helpers import data_args, make_rec_set

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REC = "configs/ppocrv4/rec_mobile.yaml"
FILES = ("inference.pdmodel", "inference.pdiparams")


def bundled(name):
    return resolve_path(f"bundled:ch_PP-OCRv4_{name}_infer")


def copy_model(name, dest):
    os.makedirs(dest, exist_ok=True)
    for f in FILES:
        shutil.copyfile(os.path.join(bundled(name), f), os.path.join(dest, f))
    return str(dest)


@pytest.fixture(scope="module")
def rec_set(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("rec"))
    return root, make_rec_set(root)


def truncate(n):
    """Cut n bytes off the weights (0: half of them)."""
    def damage(model_dir):
        path = os.path.join(model_dir, FILES[1])
        size = os.path.getsize(path)
        os.truncate(path, size - n if n else size // 2)
    return damage


def write(name, data):
    def damage(model_dir):
        with open(os.path.join(model_dir, name), "wb") as f:
            f.write(data)
    return damage


def det_weights(model_dir):
    shutil.copyfile(os.path.join(bundled("det"), FILES[1]), os.path.join(model_dir, FILES[1]))


def extra_bytes(model_dir):
    with open(os.path.join(model_dir, FILES[1]), "ab") as f:
        f.write(b"\0" * 8)


REC_PARAMS_BYTES = 10766823  # the bundled rec model's .pdiparams, walked to its last byte
DAMAGE = {
    "truncated by 1 byte": (truncate(1), FILES[1], f"is truncated: {REC_PARAMS_BYTES - 1} bytes, the program's "
                                                   f"weights need at least {REC_PARAMS_BYTES}; copy the file again"),
    "truncated by half": (truncate(0), FILES[1], f"is truncated: {REC_PARAMS_BYTES // 2} bytes, the program's "
                                                 "weights need at least"),
    "random bytes as program": (write(FILES[0], np.random.RandomState(0).bytes(5000)), FILES[0],
                                "is not a Paddle program (its 5000 bytes do not parse as one): point --model_dir"),
    "text file as program": (write(FILES[0], b"Global:\n  model_dir: ./model\n" * 20), FILES[0],
                             "is not a Paddle program"),
    "empty program": (write(FILES[0], b""), FILES[0], "is not a Paddle program (no program blocks in its 0 bytes)"),
    "det weights": (det_weights, FILES[1], "does not hold this program's weights (tensor 1 of 234 "
                                           "(batch_norm2d_148.b_0) has dims [16], the program says [60]): use the "
                                           ".pdiparams saved with inference.pdmodel"),
    "extra bytes": (extra_bytes, FILES[1], "does not hold this program's weights (8 bytes left after the "
                                           "program's 234 tensors)"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_damaged_model_is_one_error_line_from_eval(case, rec_set, tmp_path, capsys):
    """Through eval.py's entry point: exit 2 and exactly one `error:` line naming the file."""
    damage, name, expected = DAMAGE[case]
    model = copy_model("rec", tmp_path / "model")
    damage(model)
    with pytest.raises(SystemExit) as exit_info:
        run_cli(eval_cli.main, ["-c", REC, "--quiet", "--model_dir", model] + data_args(*rec_set))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert f"{os.path.join(model, name)} {expected}" in err, err


def test_bundled_models_pass_in_milliseconds():
    for name in ("rec", "det"):
        seconds = []
        for _ in range(3):
            start = time.perf_counter()
            check_model_files(bundled(name), *FILES)
            seconds.append(time.perf_counter() - start)
        print(f"check_model_files {name}: {min(seconds) * 1000:.1f} ms")
        assert min(seconds) < 0.1, (name, seconds)


def _drop_file_permission_bypass():
    """In the child, before exec: take CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH out of the
    capability bounding set, so root (as the tests run) obeys file modes after exec."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def test_unreadable_weights_are_named_as_unreadable(rec_set, tmp_path):
    """Paddle calls an unreadable .pdiparams 'complete or damaged'. As root, a chmod 000 file is
    still readable, so eval.py runs without the capabilities that bypass file modes. (Dropping
    to another uid cannot run this Python: it lives under /root, mode 700.)"""
    model = copy_model("rec", tmp_path / "model")
    params = os.path.join(model, FILES[1])
    os.chmod(params, 0)
    preexec = _drop_file_permission_bypass if os.geteuid() == 0 else None
    try:
        out = subprocess.run([sys.executable, "eval.py", "-c", REC, "--quiet", "--model_dir", model,
                              *data_args(*rec_set)], cwd=ROOT, capture_output=True, text=True,
                             preexec_fn=preexec, timeout=120)
    except subprocess.SubprocessError as err:
        pytest.skip(f"cannot run eval.py without the permission bypass here: {err}")
    finally:
        os.chmod(params, 0o644)
    assert out.returncode == 2, out.stderr
    assert out.stderr == f"error: cannot read {params}: permission denied (check the file's permissions)\n"


def _tiny_model(out_dir):
    """A conv + matmul program saved as an inference model (seconds to calibrate)."""
    import paddle
    from ocrslim.deploy.paddle_graph import static_mode
    with static_mode():
        main, startup = paddle.static.Program(), paddle.static.Program()
        with paddle.static.program_guard(main, startup):
            x = paddle.static.data("x", [-1, 3, 8, 8], "float32")
            y = paddle.nn.functional.relu(paddle.static.nn.conv2d(x, 4, 3))
            w = paddle.static.create_parameter([36, 5], "float32")
            z = paddle.matmul(paddle.reshape(y, [-1, 4, 36]), w)
        exe = paddle.static.Executor(paddle.CPUPlace())
        exe.run(startup)
        paddle.static.save_inference_model(os.path.join(out_dir, "inference"), [x], [z], exe, program=main)
    return out_dir


QUANTIZE = {"quantize_op_types": ["conv2d", "matmul_v2"], "weight_quantize_type": "channel_wise_abs_max"}
TINY_FEED = np.random.RandomState(0).rand(2, 3, 8, 8).astype("float32")


def _ptq_int8(fp32, out_dir):
    """The tiny model calibrated and saved as run.py's ptq strategy and QAT's start do."""
    import paddle
    from ocrslim.compress.calibrate import calibrate
    from ocrslim.deploy.paddle_graph import static_mode
    settings = {"algo": "abs_max", "hist_percent": 0.999, "keep_float": [], **QUANTIZE}
    with static_mode():  # as run.py calibrates (alone, this test ran in dynamic mode and failed)
        calibrate((fp32, *FILES), [{"x": TINY_FEED}], settings, paddle.CPUPlace(), save_dir=out_dir)


def _qat_int8(fp32, out_dir):
    """The tiny model saved as ACT saves a QAT result (AutoCompression._save_model): the
    quant_aware test program, converted, through save_inference_model."""
    import paddle
    from paddleslim.quant import convert, quant_aware
    from ocrslim.deploy.paddle_graph import static_mode
    config = {**QUANTIZE, "onnx_format": True, "activation_quantize_type": "moving_average_abs_max"}
    place, scope = paddle.CPUPlace(), paddle.static.Scope()
    with static_mode(), paddle.static.scope_guard(scope):
        exe = paddle.static.Executor(place)
        program, feeds, fetches = paddle.static.load_inference_model(os.path.join(fp32, "inference"), exe)
        program = quant_aware(program, place, config, scope=scope, for_test=True)
        exe.run(program, feed={feeds[0]: TINY_FEED}, fetch_list=fetches)
        program = convert(program, place, config, scope=scope)
        paddle.static.save_inference_model(os.path.join(out_dir, "inference"), [program.global_block().var(feeds[0])],
                                           fetches, exe, program=program, clip_extra=False)


@pytest.mark.parametrize("quantize", [_ptq_int8, _qat_int8])
def test_int8_model_and_its_deploy_rewrite_pass(quantize, tmp_path):
    """PaddleSlim's int8 outputs have quantize_linear ops, scale and zero-point variables and
    int8 weights under float32 variables; paddle_passes.write_model's deploy/ copy
    is written by another serializer. All pass, and Paddle loads what passed."""
    from ocrslim import model_check
    from ocrslim.deploy import paddle_passes
    from ocrslim.deploy.runtime import paddle_is_quantized
    fp32, int8 = _tiny_model(str(tmp_path / "fp32")), str(tmp_path / "int8")
    quantize(fp32, int8)
    assert paddle_is_quantized(os.path.join(int8, FILES[0]))
    paddle_passes.write_model(int8, os.path.join(int8, "deploy"))
    for model_dir in (fp32, int8, os.path.join(int8, "deploy")):
        check_model_files(model_dir, *FILES)
        mdl.load({"model_dir": model_dir})
    # what makes the int8 file differ from its program: the check must walk it by the file's own headers
    with open(os.path.join(int8, FILES[0]), "rb") as f:
        variables = model_check.saved_variables(model_check.read_program(f.read(), int8))
    with open(os.path.join(int8, FILES[1]), "rb") as f:
        size, saved_types = os.fstat(f.fileno()).st_size, []
        for i, (_, want) in enumerate(variables):
            desc, data_bytes = model_check.read_tensor_header(f, int8, size, variables[i:], FILES[0])
            saved_types.append((desc.data_type, want.data_type))
            f.seek(data_bytes, os.SEEK_CUR)
    int8_type, fp32_type = 21, 5  # framework_pb2.VarType.INT8, FP32
    assert len(variables) > 4 and (int8_type, fp32_type) in saved_types
    truncate(1)(int8)
    with pytest.raises(UserError, match="is truncated"):
        check_model_files(int8, *FILES)


def test_paddle_load_errors_past_the_check_are_one_line(tmp_path, monkeypatch):
    """Belt and braces: what Paddle raises when it loads a damaged model itself."""
    from ocrslim.deploy.paddle_graph import PaddleGraph
    model = copy_model("rec", tmp_path / "model")
    truncate(0)(model)
    monkeypatch.setattr(mdl, "check_model_files", lambda *args: None)
    with pytest.raises(UserError) as err:
        mdl.load({"model_dir": model})
    assert str(err.value) == (f"Paddle could not load {model}: UnavailableError: An error occurred while loading "
                              "model parameters. Please check whether the model file is complete or damaged.")
    with pytest.raises(UserError, match=r"^Paddle could not load x\.pdmodel: \(InvalidArgument\) Failed to parse"):
        PaddleGraph(b"not a program", source="x.pdmodel")


def _tiny_onnx(path):
    import onnx
    from onnx import TensorProto, helper
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 48, 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 48, 64])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), path)


@pytest.fixture
def deploy_folder(tmp_path):
    """A minimal save_dir/deploy as backends.write_deploy lays it out: the bundled rec model, a
    tiny ONNX model, settings.json."""
    from ocrslim.deploy import backends
    deploy = copy_model("rec", tmp_path / "save" / "deploy")
    _tiny_onnx(os.path.join(deploy, backends.ONNX_FILE))
    with open(os.path.join(deploy, backends.SETTINGS_FILE), "w", encoding="utf-8") as f:
        json.dump({"task": "rec", "precision": "fp32", "paddle": {"files": list(FILES)},
                   "onnxruntime": {"file": backends.ONNX_FILE, "file_without_vnni": backends.ONNX_FILE}}, f)
    return str(tmp_path / "save"), deploy


@pytest.mark.parametrize("backend,name,damage,expected", [
    ("paddle", FILES[1], truncate(0), "is truncated"),
    ("paddle", FILES[0], write(FILES[0], b"hello"), "is not a Paddle program"),
    ("onnxruntime", "model.onnx", None, "is not a complete ONNX model"),  # truncated by 1 byte
    ("onnxruntime", "model.onnx", write("model.onnx", b"ir_version: 8\n"), "is not a complete ONNX model"),
])
def test_load_predictor_names_the_damaged_deploy_file(deploy_folder, backend, name, damage, expected):
    import ocrslim
    save, deploy = deploy_folder
    if damage is None:
        path = os.path.join(deploy, name)
        os.truncate(path, os.path.getsize(path) - 1)
    else:
        damage(deploy)
    with pytest.raises(UserError) as err:
        ocrslim.load_predictor(save, backend=backend)
    message = str(err.value)
    assert message.startswith(f"{os.path.join(deploy, name)} {expected}") and "\n" not in message, message
    assert f"load_predictor needs {deploy} as run.py wrote it" in message or "copy the file again" in message


def test_intact_onnx_deploy_loads_and_onnxruntime_errors_are_one_line(deploy_folder):
    import ocrslim
    from ocrslim.deploy.runtime import onnx_predictor
    save, deploy = deploy_folder
    predict = ocrslim.load_predictor(save, backend="onnxruntime")
    images = -np.ones((1, 3, 48, 64), "float32")
    assert (predict(images)[0] == 0).all() and predict.info["backend"] == "onnxruntime"
    text = os.path.join(deploy, "notes.onnx")
    with open(text, "w") as f:
        f.write("not a model\n")
    with pytest.raises(UserError, match=rf"^onnxruntime could not load {text}: .*INVALID_PROTOBUF"):
        onnx_predictor(text)


def test_deploy_cli_checks_its_model_dir(tmp_path):
    from ocrslim.deploy.paddle_passes import main
    model = copy_model("rec", tmp_path / "model")
    truncate(1)(model)
    with pytest.raises(UserError, match="inference.pdiparams is truncated"):
        main([model, str(tmp_path / "out")])
    assert not os.path.exists(tmp_path / "out")


def test_deploy_cli_takes_bundled_names(tmp_path):
    """python -m ocrslim.deploy bundled:NAME OUT: the FP32 model with the exact rewrites (the stricter
    FP32 baseline of docs/performance.md), named as the configs name it."""
    from ocrslim.deploy.paddle_passes import main
    counts = main(["bundled:ch_PP-OCRv4_det_infer", str(tmp_path / "out")])
    assert counts["deconv_pairs"] == 1 and counts["fold_affine"] > 0
    assert {"inference.pdiparams", "inference.pdmodel"} <= set(os.listdir(tmp_path / "out"))
