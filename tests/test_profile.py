"""python -m ocrslim.deploy.profile: the parsers on canned records, real profiles of the bundled
PP-OCRv4 det model at 64x64 on each runtime here, an int8 ONNX model (onnxruntime quantize_static
of the same model, a few seconds) for the int8 classes, and bad input. Fast: small inputs, 3 runs."""
import json
import os
import shutil

import numpy as np
import pytest

from ocrslim.config import resolve_path
from ocrslim.deploy import backends, profile, runtime
from ocrslim.errors import run_cli

from helpers import make_det_set

DET = "bundled:ch_PP-OCRv4_det_infer"
SMALL = ["--shape", "1x3x64x64", "--repeat", "3"]

# ------------------------------------------------------------------ oneDNN verbose lines

# As Paddle 2.6.2's oneDNN v3.2.1 prints them (ONEDNN_VERBOSE=1, AVX2 CPU): the PP-OCRv4 det
# FP32 model and the PP-OCRv3 det int8 model of a run.py output at 64x64. The bf16 line is one
# of them with bf16 data types and an AMX implementation (no bf16 CPU at hand to print one).
ONEDNN_LINES = """\
onednn_verbose,info,oneDNN v3.2.1 (commit 01204edbda1c2a4ff0cccd40476ed6bd2fb62d56)
onednn_verbose,info,prim_template:operation,engine,primitive,implementation,prop_kind,memory_descriptors,attributes,auxiliary,problem_desc,exec_time
onednn_verbose,exec,cpu,convolution,jit:avx2,forward_inference,src_f32:a:blocked:acdb::f0 wei_f32:a:blocked:Acdb8a::f0 bia_f32::blocked:a::f0 dst_f32::blocked:acdb::f0,,alg:convolution_direct,mb1_ic3oc16_ih64oh32kh3sh2dh0ph1_iw64ow32kw3sw2dw0pw1,0.0888672
ocrslim_profile,timed
onednn_verbose,exec,cpu,reorder,jit:uni,undef,src_f32::blocked:abcd::f0 dst_s8::blocked:abcd::f0,attr-scales:src0:0 ,,1x3x64x64,0.106934
onednn_verbose,exec,cpu,convolution,jit_uni_int8:avx2,forward_inference,src_s8:a:blocked:acdb::f0 wei_s8:ap:blocked:ABcd2b8a4b::f3:s8m1:sa0.5 bia_f32::blocked:a::f0 dst_s8::blocked:acdb::f0,attr-scales:src0:0+dst:0+wei:1 attr-post-ops:eltwise_hardswish:0.166667:0.5 ,alg:convolution_direct,mb1_ic3oc8_ih64oh32kh3sh2dh0ph1_iw64ow32kw3sw2dw0pw1,0.0830078
onednn_verbose,exec,cpu,convolution,jit_uni_int8:avx2,forward_inference,src_u8:a:blocked:acdb::f0 wei_s8:a:blocked:Abcde8a::f0 bia_f32::blocked:a::f0 dst_u8:a:blocked:acdb::f0,attr-scales:src0:0+dst:0+wei:3 attr-post-ops:eltwise_relu ,alg:convolution_direct,g8mb1_ic8oc8_ih32oh32kh3sh1dh0ph1_iw32ow32kw3sw1dw0pw1,0.0859375
onednn_verbose,exec,cpu,convolution,brgconv_1x1:avx2,forward_inference,src_f32:a:blocked:acdb::f0 wei_f32:a:blocked:Acdb16a::f0 bia_f32::blocked:a::f0 dst_f32:a:blocked:acdb::f0,,alg:convolution_direct,mb1_ic16oc32_ih32oh32kh1sh1dh0ph0_iw32ow32kw1sw1dw0pw0,0.10791
onednn_verbose,exec,cpu,convolution,brgconv_1x1:avx512_core_amx,forward_inference,src_bf16:a:blocked:acdb::f0 wei_bf16:a:blocked:AcdB16b16a2b::f0 bia_f32::blocked:a::f0 dst_bf16:a:blocked:acdb::f0,,alg:convolution_direct,mb1_ic16oc32_ih32oh32kh1sh1dh0ph0_iw32ow32kw1sw1dw0pw0,0.05
onednn_verbose,exec,cpu,binary,jit:uni,undef,src_f32::blocked:acdb::f0 src_f32::blocked:abcd::f0 dst_f32:a:blocked:acdb::f0,,alg:binary_mul,1x16x32x32:1x1x1x1,0.0749512
onednn_verbose,exec,cpu,eltwise,jit:avx2,forward_training,data_f32::blocked:acdb::f0 diff_undef::undef:::,,alg:eltwise_relu alpha:0 beta:0,1x24x32x32,0.0749512
onednn_verbose,exec,cpu,resampling,jit:avx2,forward_inference,src_s8::blocked:acdb::f0 dst_s8:a:blocked:acdb::f0,,alg:resampling_nearest,mb1ic24_ih2oh16_iw2ow16,0.065918
onednn_verbose,exec,cpu,reorder,jit:uni,undef,src_s8::blocked:acdb::f0 dst_s8::blocked:acdb::f0,,,1x8x32x32,0.0681152
""".splitlines()


def test_onednn_lines_parse_into_classes():
    records = profile.onednn_records(ONEDNN_LINES)
    # the warm-up conv before the mark and the info lines are not records
    got = [(r["type"], r["class"], r["ms"]) for r in records]
    assert got == [("reorder", "convert", 0.106934), ("convolution", "int8", 0.0830078),
                   ("convolution", "int8", 0.0859375), ("convolution", "f32", 0.10791),
                   ("convolution", "bf16", 0.05), ("binary_mul", "f32", 0.0749512),
                   ("eltwise_relu", "f32", 0.0749512), ("resampling_nearest", "int8", 0.065918),
                   ("reorder", "convert", 0.0681152)]
    assert records[0]["exec"] == "jit:uni f32->s8"          # a quantize: f32 in, s8 out
    assert records[2]["exec"] == "jit_uni_int8:avx2 u8:s8->u8"
    assert records[2]["name"] == "g8mb1_ic8oc8_ih32oh32kh3sh1dh0ph1_iw32ow32kw3sw1dw0pw1"
    assert records[6]["exec"] == "jit:avx2 f32->f32"         # eltwise names its tensor data_
    assert profile.parse_onednn("onednn_verbose,info,cpu,isa:Intel AVX2") is None
    # oneDNN 2.x's prefix, and 3.3's 'primitive,exec' with a timestamp, parse the same
    line = ONEDNN_LINES[5]
    assert profile.parse_onednn(line.replace("onednn_verbose", "dnnl_verbose"))["class"] == "int8"
    assert profile.parse_onednn(line.replace("onednn_verbose,exec", "onednn_verbose,1733.5,primitive,exec"))["ms"] \
        == pytest.approx(0.0830078)


def test_summary_of_canned_records():
    # two timed runs of the same primitives; figures are kept to 6 decimals of a millisecond
    records = profile.onednn_records(ONEDNN_LINES) * 2
    s = profile.summarize(records, wall=[1.0, 1.0], runtime_ms=None, repeat=2)
    assert s["total_ms"] == 1.0 and s["total_is"] == "wall_ms"
    assert s["nodes_ms"] == pytest.approx(0.7177249, abs=1e-6)  # the nine timed lines
    assert s["outside_nodes_ms"] == pytest.approx(1.0 - 0.7177249, abs=1e-6)
    assert s["convs"]["int8"] == 2 and s["convs"]["float"] == 2
    assert s["convs"]["by_class"] == {"int8": 2, "bf16": 1, "f32": 1}
    assert {n["exec"] for n in s["convs"]["float_nodes"]} == {
        "brgconv_1x1:avx2 f32:f32->f32", "brgconv_1x1:avx512_core_amx bf16:bf16->bf16"}
    assert s["converts"]["calls"] == 2 and s["converts"]["ms"] == pytest.approx(0.106934 + 0.0681152, abs=1e-6)
    assert s["by_class"]["int8"]["ms"] == pytest.approx(0.0830078 + 0.0859375 + 0.065918, abs=1e-6)
    assert s["by_class"]["int8"]["share"] == pytest.approx(0.2348633, abs=1e-6)
    assert all(n["calls"] == 1 for n in s["nodes"])  # each primitive once per inference
    assert [n["ms"] for n in s["nodes"]] == sorted((n["ms"] for n in s["nodes"]), reverse=True)


# ------------------------------------------------------------------ OpenVINO and onnxruntime records

@pytest.mark.parametrize("node_type, exec_type, cls", [
    ("Convolution", "jit_avx2_1x1_I8", "int8"), ("GroupConvolution", "jit_avx2_I8", "int8"),
    ("Convolution", "brgconv_avx512_amx_I8", "int8"), ("Convolution", "brgconv_avx2_f32", "f32"),
    ("ConvolutionBackpropData", "brgconv_avx2_f32", "f32"), ("Subgraph", "jit_avx512_BF16", "bf16"),
    ("Add", "jit_avx2_I8", "int8"), ("Reorder", "jit_uni_I8", "convert"), ("Convert", "ref_I8", "convert"),
    ("FakeQuantize", "jit_avx2_f32", "convert"), ("ShapeOf", "ref_i32", "other"), ("Parameter", "undef", "other")])
def test_openvino_classes(node_type, exec_type, cls):
    assert profile.openvino_class(node_type, exec_type) == cls


def test_openvino_window_undoes_the_means_since_compilation():
    # OpenVINO reports each node's mean since compilation: 100 us over 3 warm-up runs (a slow
    # first one), 60 us after 10 more, so the 10 timed runs took 60 * 13 - 100 * 3 = 480 us
    before = {"conv": ("Convolution", "jit_avx2_I8", 100), "cvt": ("Convert", "ref_I8", 5)}
    after = {"conv": ("Convolution", "jit_avx2_I8", 60), "cvt": ("Convert", "ref_I8", 5),
             "late": ("Subgraph", "jit_avx2_f32", 2)}  # first run after the warm-up
    records = {r["name"]: r for r in profile.openvino_window(before, after, 3, 13)}
    assert records["conv"]["ms"] == pytest.approx(0.48) and records["conv"]["calls"] == 10
    assert records["conv"]["class"] == "int8" and records["cvt"]["class"] == "convert"
    assert records["cvt"]["ms"] == pytest.approx(0.05) and records["late"]["ms"] == pytest.approx(0.026)
    s = profile.summarize(list(records.values()), wall=[1.0] * 10, runtime_ms=None, repeat=10)
    assert [(n["name"], n["calls"], n["ms"]) for n in s["nodes"]] == [("conv", 1, 0.048), ("cvt", 1, 0.005),
                                                                       ("late", 1, 0.0026)]


def _event(name, op, ts, dur, types=("float",)):
    return {"cat": "Node", "name": f"{name}_kernel_time", "ts": ts, "dur": dur,
            "args": {"op_name": op, "provider": "CPUExecutionProvider",
                     "input_type_shape": [{t: [1, 3, 8, 8]} for t in types]}}


def test_onnxruntime_records_are_those_of_the_last_runs():
    events = [{"cat": "Session", "name": "model_run", "ts": 0, "dur": 100},         # warm-up
              _event("conv_warm", "Conv", 10, 50),
              {"cat": "Session", "name": "model_run", "ts": 1000, "dur": 400},
              _event("q", "QuantizeLinear", 1010, 20), _event("conv", "QLinearConv", 1040, 300, ("uint8", "float")),
              _event("pool", "MaxPool", 1350, 10, ("uint8",)), _event("ro", "ReorderOutput", 1370, 5),
              _event("shape", "Shape", 1380, 1, ("int64",)), _event("dq", "DequantizeLinear", 1390, 2)]
    records, runs = profile.onnxruntime_records(events, repeat=1)
    assert runs == [0.4]
    assert [(r["name"], r["class"]) for r in records] == [
        ("q", "convert"), ("conv", "int8"), ("pool", "int8"), ("ro", "convert"), ("shape", "other"), ("dq", "convert")]
    assert records[1]["exec"] == "CPU uint8" and records[1]["ms"] == 0.3
    assert profile.onnxruntime_class("Conv", ["float"]) == "f32"
    assert profile.onnxruntime_class("Conv", ["float16"]) == "f16"
    assert profile.onnxruntime_class("MatMulInteger", ["uint8"]) == "int8"


# ------------------------------------------------------------------ real profiles

def available_backends():
    return [b for b in backends.BACKENDS if not (getattr(backends.BACKENDS[b], "unavailable", None)
                                                 and backends.BACKENDS[b].unavailable())]


@pytest.fixture(scope="module")
def onnx_models(tmp_path_factory):
    """The bundled det model exported to ONNX (FP32), and quantized by onnxruntime (QDQ, convs
    only) from two random inputs: int8 kernels, not accuracy. Symmetric int8 activations: with
    uint8 ones (zero point 128, or asymmetric) OpenVINO 2026.4 ran all 64 convs in f32 on the AVX2
    CPU; with int8 ones it ran 62 int8 and onnxruntime 48."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    tmp = tmp_path_factory.mktemp("profile")
    det = resolve_path(DET)
    fp32 = runtime.export_onnx((det, "inference.pdmodel", "inference.pdiparams"), str(tmp / "det.onnx"))

    class Reader(CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(0)
            self.items = iter([{"x": rng.uniform(-1, 1, (1, 3, 64, 64)).astype("float32")} for _ in range(2)])

        def get_next(self):
            return next(self.items, None)
    int8 = str(tmp / "det.int8.onnx")
    quantize_static(fp32, int8, Reader(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8, op_types_to_quantize=["Conv"],
                    extra_options={"ActivationSymmetric": True})
    return fp32, int8


# The least share of the total the nodes make up at 64x64. onnxruntime reports its own time per
# run (model_run), which holds little besides the nodes. OpenVINO's total is the wall time of the
# call, which at this size holds a large share of Python and request overhead. Paddle's nodes are
# only its oneDNN primitives: at 64x64 and one thread Paddle spent about 7 of 9.8 ms per call
# outside them (its own op dispatch; 1.2 ms of it oneDNN's printing), 39% at 1x3x320x320. The
# wall time also holds whatever else shares the cores (a run at 64x64 under load measured Paddle's
# nodes at 9% of it): the floors for the wall-time runtimes only say the nodes were counted.
FLOOR = {"onnxruntime": 0.5, "openvino": 0.05, "openvino-bf16": 0.05, "paddle": 0.02}


def check_profile(out, backend):
    """What every profile holds, with its sums checked."""
    for key in ("model", "kind", "file", "backend", "engine", "precision", "task", "input", "threads", "repeat",
                "warmup", "cpu", "wall_ms", "runtime_ms", "total_ms", "total_is", "nodes_ms", "outside_nodes_ms",
                "by_class", "convs", "converts", "nodes"):
        assert key in out, key
    assert out["backend"] == backend and out["input"]["shape"] == [1, 3, 64, 64] and out["repeat"] == 3
    nodes = out["nodes"]
    assert nodes and all(n["ms"] >= 0 for n in nodes)  # onnxruntime counts whole microseconds: a Reshape may be 0
    # every conv takes time in all; one conv may read 0 at 64x64: OpenVINO's counters are whole
    # microseconds averaged since compile, and the difference of two such readings can round to 0
    assert sum(n["ms"] for n in nodes if profile.is_conv(n["type"])) > 0
    assert set(nodes[0]) == {"name", "type", "exec", "class", "calls", "ms", "share"}
    assert set(out["input"]) == {"shape", "source"} and set(out["wall_ms"]) == {"mean", "median"}
    assert set(out["by_class"]) <= set(profile.CLASSES)
    assert all(set(c) == {"ms", "share", "calls"} for c in out["by_class"].values())
    assert set(out["convs"]) == {"int8", "float", "by_class", "float_nodes"}
    assert set(out["converts"]) == {"calls", "ms", "share", "by_type"}
    assert out["total_ms"] == pytest.approx(out[out["total_is"]]["mean"], abs=1e-3)
    assert out["total_is"] == ("runtime_ms" if backend == "onnxruntime" else "wall_ms")
    assert out["nodes_ms"] == pytest.approx(sum(n["ms"] for n in nodes), rel=1e-4)
    # the nodes run inside the total the runtime reports (onnxruntime: model_run; else the wall
    # time of the call)
    assert FLOOR[backend] * out["total_ms"] < out["nodes_ms"] <= 1.02 * out["total_ms"], (out["nodes_ms"],
                                                                                         out["total_ms"])
    assert out["nodes_ms"] + out["outside_nodes_ms"] == pytest.approx(out["total_ms"], abs=1e-5)
    assert sum(c["share"] for c in out["by_class"].values()) == pytest.approx(out["nodes_ms"] / out["total_ms"],
                                                                             abs=1e-4)
    assert out["convs"]["int8"] + out["convs"]["float"] == pytest.approx(
        sum(n["calls"] for n in nodes if profile.is_conv(n["type"])))


@pytest.mark.parametrize("backend", ["paddle", "onnxruntime", "openvino", "openvino-bf16"])
def test_fp32_det_on_each_runtime(backend, tmp_path, capsys):
    if backend not in available_backends():
        pytest.skip(f"{backend} cannot run on this CPU")
    out = profile.main([DET, "--backend", backend, *SMALL, "--top", "4", "--threads", "1",
                        "--json", str(tmp_path / "p.json")])
    check_profile(out, backend)
    assert out["kind"] == "paddle" and out["task"] == "det" and out["threads"] == 1
    assert out["precision"] in ("fp32", "bf16")
    assert out["convs"]["int8"] == 0 and out["convs"]["float"] >= 60  # PP-OCRv4 det: 64 convs, all float
    if backend == "onnxruntime":
        assert out["total_is"] == "runtime_ms" and out["runtime_ms"]["mean"] <= out["wall_ms"]["mean"] * 1.02
    if backend == "paddle":
        assert out["file"].endswith("ch_PP-OCRv4_det_infer/inference.pdmodel")
    text = capsys.readouterr().out
    assert "top 4 nodes by time" in text and "time by precision class" in text and "convs per inference:" in text
    top = text.split("top 4 nodes by time", 1)[1].split("\n\n", 1)[0].splitlines()
    assert len(top) == 1 + 2 + 4  # title rest, header, rule, --top rows
    with open(tmp_path / "p.json", encoding="utf-8") as f:
        written = json.load(f)
    assert written["ocrslim"] == "profile" and written["nodes"] == out["nodes"]


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_int8_onnx_runs_int8_convs(onnx_models, backend):
    out = profile.main([onnx_models[1], "--backend", backend, *SMALL])
    check_profile(out, backend)
    assert out["kind"] == "onnx" and out["file"] == onnx_models[1] and out["precision"] == "int8"
    assert out["convs"]["int8"] >= 40, out["convs"]  # most of the 64 convs run int8 kernels
    assert out["converts"]["calls"] > 0 and "int8" in out["by_class"]
    assert out["converts"]["ms"] == pytest.approx(out["by_class"]["convert"]["ms"], rel=1e-4)


def test_fp32_onnx_file_runs_as_it_is(onnx_models):
    out = profile.main([onnx_models[0], "--backend", "openvino", *SMALL])
    check_profile(out, "openvino")
    assert out["file"] == onnx_models[0] and out["convs"]["int8"] == 0


def test_config_profiles_the_first_eval_image(tmp_path, capsys):
    label = make_det_set(str(tmp_path / "det"))
    out = profile.main([DET, "--backend", "onnxruntime", "--repeat", "2", "-c", "configs/ppocrv4/det_mobile.yaml",
                        "-o", f"Eval.dataset.data_dir={tmp_path / 'det'}", f"Eval.dataset.label_file_list=[{label}]"])
    # the 640x320 image after DetResizeForTest (sides to multiples of 32) and NormalizeImage
    assert out["input"]["shape"] == [1, 3, 320, 640]
    assert out["input"]["source"].endswith("a.jpg") and "det_mobile.yaml" in out["input"]["source"]
    assert out["repeat"] == 2 and all(n["calls"] == 1 for n in out["nodes"])


def test_run_py_output_folder_runs_its_deploy_files(tmp_path, onnx_models):
    """A save_dir's deploy/ files, as load_predictor picks them (backends.deploy_file)."""
    deploy = tmp_path / "save" / "deploy"
    shutil.copytree(resolve_path(DET), deploy)
    shutil.copy(onnx_models[0], deploy / "model.onnx")
    (deploy / "settings.json").write_text(json.dumps({"task": "det", "precision": "fp32",
                                                      "onnxruntime": {"file": "model.onnx"}}))
    model = profile.Model(str(tmp_path / "save"))
    assert model.kind == "output" and model.guess_task() == "det"
    assert model.file_to_run("paddle", str(tmp_path)) == (str(deploy), "inference.pdmodel", "inference.pdiparams")
    assert model.file_to_run("openvino", str(tmp_path)) == str(deploy / "model.onnx")  # no IR in this folder
    out = profile.main([str(tmp_path / "save"), "--backend", "onnxruntime", *SMALL])
    assert out["file"] == str(deploy / "model.onnx") and out["kind"] == "output"


def test_rec_models_get_the_rec_shape():
    assert profile.Model("bundled:ch_PP-OCRv4_rec_infer").guess_task() == "rec"
    assert profile.Model(DET).guess_task() == "det"
    assert profile.DEFAULT_SHAPES == {"det": (1, 3, 544, 960), "rec": (1, 3, 48, 320)}


def test_help_shows_the_usage_lines():
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-m", "ocrslim.deploy.profile", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "python -m ocrslim.deploy.profile output/demo/det --backend paddle" in out.stdout


# ------------------------------------------------------------------ bad input

@pytest.fixture
def no_model_loads(monkeypatch):
    def loaded(*args, **kwargs):
        raise AssertionError("a model was loaded before the bad input was refused")
    for name in ("paddle_predictor", "onnx_predictor", "openvino_predictor", "export_onnx"):
        monkeypatch.setattr(runtime, name, loaded)
    monkeypatch.setattr(profile.subprocess, "run", loaded)


BAD = [
    (["--backend", "nope"], "invalid choice: 'nope'"),
    (["--backend", "paddle", "--shape", "1x3x64"], "--shape 1x3x64: give four whole numbers"),
    (["--backend", "paddle", "--shape", "1x3x0x64"], "give four whole numbers >= 1"),
    (["--backend", "paddle", "--threads", "0"], "--threads must be at least 1"),
    (["--backend", "paddle", "--repeat", "0"], "--repeat must be at least 1"),
    (["--backend", "paddle", "--top", "0"], "--top must be at least 1"),
    (["--backend", "paddle", "-o", "Global.devices=cpu"], "-o overrides a config: pass -c CONFIG too"),
    (["--backend", "paddle", "--shape", "1x3x64x64", "-c", "configs/ppocrv4/det_mobile.yaml"], "exclude each other"),
    (["--backend", "paddle", "--bogus"], "unrecognized arguments: --bogus"),
]


@pytest.mark.parametrize("argv, message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_flags_are_one_error_line(argv, message, capsys, no_model_loads):
    with pytest.raises(SystemExit) as exit_:
        run_cli(profile.main, [DET, *argv])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert exit_.value.code == 2 and len(errors) == 1 and "Traceback" not in err, err
    assert message in errors[0], errors[0]


def test_bad_model_and_outputs_are_refused_before_loading(tmp_path, capsys, no_model_loads, monkeypatch):
    det = str(tmp_path / "det")
    shutil.copytree(resolve_path(DET), det)
    cases = [([str(tmp_path / "none"), "--backend", "paddle"], "not found"),
             ([det, "--backend", "onnxruntime", "--json", os.path.join(det, "p.json")], "inside the model dir"),
             ([str(tmp_path), "--backend", "paddle"], "has no inference.pdmodel")]
    monkeypatch.setattr(backends, "has_bf16", lambda: False)
    cases.append(([det, "--backend", "openvino-bf16"], "no bf16 instructions"))
    for argv, message in cases:
        with pytest.raises(SystemExit):
            run_cli(profile.main, argv)
        err = capsys.readouterr().err
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and message in errors[0], err
    assert sorted(os.listdir(det)) == sorted(os.listdir(resolve_path(DET)))


def test_every_runtime_of_the_registry_can_be_profiled():
    from ocrslim.deploy import backends
    assert set(profile.PROFILERS) == set(backends.BACKENDS)
