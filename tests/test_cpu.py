"""cpu: instruction sets read once; backends: the per-CPU settings and the measured runtime choice."""
import os

import pytest

from ocrslim import cpu
from ocrslim.config import resolve_path
from ocrslim.deploy import backends

AMD_AVX2 = "avx2 fma"
SPR = "avx2 fma avx512f avx512bw avx512vl avx512_vnni avx_vnni amx_int8 avx512_bf16 amx_bf16"


@pytest.fixture
def flags(monkeypatch):
    """Pretend to be another CPU (OCRSLIM_CPU_FLAGS), restored afterwards."""
    def use(text):
        monkeypatch.setenv("OCRSLIM_CPU_FLAGS", text)
        cpu.cache_clear()
    yield use
    monkeypatch.delenv("OCRSLIM_CPU_FLAGS", raising=False)
    cpu.cache_clear()


def test_reads_proc_cpuinfo(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text("processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu sse avx avx2 fma bmi2\n\n"
                    "processor\t: 1\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu sse avx avx2 fma bmi2\n")
    model, found = cpu._read_cpuinfo(str(path))
    assert "avx2" in found and "avx512f" not in found
    assert cpu._read_cpuinfo(str(tmp_path / "missing"))[1] == set()


@pytest.mark.parametrize("text, kind, measured", [
    (SPR, "amx", "amx"),
    ("avx2 fma avx512f avx512bw avx512vl avx512_vnni", "avx512_vnni", "avx512_vnni"),
    ("avx2 fma avx512f avx512bw avx512vl", "avx512", None),   # Skylake-SP: never measured
    ("avx2 fma avx_vnni", "avx_vnni", None),
    (AMD_AVX2, "avx2", "avx2"),
    ("sse4_2", "other", None),
])
def test_kind_from_flags(flags, text, kind, measured):
    flags(text)
    assert cpu.kind() == kind and cpu.measured_kind() == measured
    assert f"kind {kind}" in cpu.describe() and "OCRSLIM_CPU_FLAGS" in cpu.describe()
    assert cpu.summary()["flags"] == [f for f in cpu.FLAGS if f in text.split()]


def test_this_cpu_is_described():
    info = cpu.summary()
    # the whole suite may run as another CPU kind (OCRSLIM_CPU_FLAGS="avx2 fma" make test)
    expected = "OCRSLIM_CPU_FLAGS" if "OCRSLIM_CPU_FLAGS" in os.environ else "/proc/cpuinfo"
    assert info["source"] == expected and info["cores"] >= 1
    print(cpu.describe())


def test_the_avx512_attention_pass_is_deleted_without_avx512(flags):
    # Paddle 2.6.2's self_dp_attention kernel is AVX-512 code: SIGILL on AVX2 CPUs
    flags(AMD_AVX2)
    assert backends.PaddleBackend.cpu_settings()["delete_passes"] == ["self_attention_fuse_pass"]
    flags(SPR)
    assert backends.PaddleBackend.cpu_settings()["delete_passes"] == []


def test_auto_choice_per_cpu_kind(flags):
    flags(SPR)
    # int8 + bf16 for det; int8 rec keeps its float ops in f32 (bf16 cost it 1.8 points there)
    assert backends.choose("det", "int8")[0] == "openvino-bf16"
    assert backends.choose("rec", "int8")[0] == "openvino"
    assert backends.choose("rec", "int8")[1].startswith("measured on amx")
    # the FP32 baseline there: OpenVINO bf16 (AMX), measured FP32-accurate
    assert backends.choose("det", "fp32")[0] == backends.choose("rec", "fp32")[0] == "openvino-bf16"
    assert backends.not_offered("rec", "int8", "openvino") is None
    assert backends.not_offered("rec", "int8", "paddle") is None
    flags("avx2 fma avx512f avx512bw avx512vl avx512_vnni")   # VNNI without AMX: OpenVINO int8 not checked
    assert "never checked" in backends.not_offered("rec", "int8", "openvino")
    assert backends.choose("rec", "int8")[0] == "paddle"
    flags(AMD_AVX2)
    assert "halves int8 weights" in backends.not_offered("rec", "int8", "paddle")
    assert backends.choose("rec", "int8")[0] == "onnxruntime"
    assert backends.choose("rec", "fp32")[0] == backends.choose("det", "fp32")[0] == "openvino"
    assert "saturate" in backends.not_offered("rec", "int8", "openvino")
    assert backends.not_offered("rec", "int8", "paddle", devices="gpu") is None
    # never measured: the safe choice, said so
    flags("avx2 fma avx512f avx512bw avx512vl")
    name, why = backends.choose("rec", "int8")
    assert name == backends.SAFE[("rec", "int8")] and "never measured" in why
    assert "never measured" in backends.not_offered("rec", "int8", "paddle")
    assert backends.choose("det", "fp32", devices="gpu")[0] == "paddle"


def test_every_measured_kind_has_a_choice_for_every_model():
    kinds = set(cpu.MEASURED_AS.values())
    for kind in kinds:
        for task in ("det", "rec"):
            for precision in ("fp32", "int8"):
                name, _ = backends.CHOICE[(kind, task, precision)]
                assert name in backends.BACKENDS
                assert (kind, task, precision, name) not in backends.NOT_OFFERED
    assert {k[0] for k in backends.NOT_OFFERED} <= kinds


def test_onnxruntime_takes_uint8_weights_without_vnni(flags):
    flags(AMD_AVX2)
    assert backends.OnnxBackend.cpu_settings() == {"uint8_weights": True}
    flags("avx2 fma avx_vnni")
    assert backends.OnnxBackend.cpu_settings() == {"uint8_weights": False}
    flags(SPR)
    assert backends.OnnxBackend.cpu_settings() == {"uint8_weights": False}


def test_openvino_bf16_only_where_the_cpu_has_bf16(flags, tmp_path):
    files = (resolve_path("bundled:ch_PP-OCRv4_rec_infer"), "inference.pdmodel", "inference.pdiparams")
    flags(AMD_AVX2)
    with pytest.raises(backends.NotOffered, match="no bf16 instructions"):
        backends.predictor(files, "openvino-bf16", "rec", str(tmp_path), "m")
    flags("avx2 fma avx512f avx512bw avx512vl avx512_vnni avx512_bf16")  # Zen 4: bf16 without AMX
    assert backends.has_bf16()


def test_every_runtime_that_may_run_a_model_here(flags):
    """bench.py --backend every (run.py's step 5): each runtime not ruled out here, and why the others are."""
    flags(AMD_AVX2)
    offered, left_out = backends.every("det", "int8")
    assert offered == ["paddle", "openvino", "openvino-w8"]   # without VNNI both OpenVINO int8 files
    assert [name for name, _ in left_out] == ["onnxruntime", "openvino-bf16"]
    assert "loses boxes" in dict(left_out)["onnxruntime"] and "no bf16" in dict(left_out)["openvino-bf16"]
    assert backends.every("det", "fp32")[0] == ["paddle", "onnxruntime", "openvino"]   # no w8 for FP32
    assert backends.every("rec", "int8")[0] == ["onnxruntime"]
    assert backends.BACKENDS["openvino"].cpu_settings() == {"seven_bit_weights": True}
    assert backends.BACKENDS["openvino-w8"].cpu_settings() == {"seven_bit_weights": False}
    flags(SPR)   # with VNNI openvino runs the 8-bit weights: no second file
    assert backends.every("det", "int8")[0] == ["paddle", "onnxruntime", "openvino", "openvino-bf16"]
    assert "VNNI" in backends.not_offered("det", "int8", "openvino-w8")
    assert backends.every("det", "fp32")[0] == ["paddle", "onnxruntime", "openvino", "openvino-bf16"]
    assert backends.every("det", "fp32", devices="gpu")[0] == ["paddle"]


def _run(backend, ms, metric):
    return {"backend": backend, "median_ms": ms, "metric": metric}


def test_the_measured_pick_is_the_fastest_within_the_tolerance_of_the_most_accurate():
    # v4 det ptq on the AMD EPYC: OpenVINO's 7-bit file is as fast as the 8-bit one but 0.8 lower
    runs = [_run("paddle", 44.0, 0.3559), _run("openvino", 39.0, 0.3485), _run("openvino-w8", 39.2, 0.3567)]
    name, why = backends.pick_measured(runs, "det")
    assert name == "openvino-w8" and "0.5 point of the most accurate run's 0.3567" in why and "paddle 44.0 ms" in why
    assert backends.pick_measured(runs, "det", fp32=0.3614)[0] == "openvino-w8"   # FP32 above every run
    # v2 det: OpenVINO's 7-bit file scored 1.1 points above FP32 and Paddle; a run that lucky does
    # not rule out the runs within 0.5 point of FP32
    v2 = [_run("paddle", 30.0, 0.3338), _run("openvino", 33.6, 0.3448), _run("openvino-w8", 33.1, 0.3042)]
    assert backends.pick_measured(v2, "det")[0] == "openvino"
    name, why = backends.pick_measured(v2, "det", fp32=0.3291)
    assert name == "paddle" and "of the FP32 model's 0.3291" in why
    assert backends.pick_measured(v2, "det", fp32=float("nan"))[0] == "openvino"
    assert backends.pick_measured(runs, "rec")[0] == "openvino"   # rec's tolerance is 1.0 point
    # v5 rec --max_drop 1.0 on Sapphire Rapids: bf16 is within 1.0 of the most accurate run but 1.1
    # points below FP32, where OpenVINO f32 and onnxruntime are within it
    v5 = [_run("paddle", 14.1, 0.7285), _run("onnxruntime", 14.7, 0.7408), _run("openvino", 9.1, 0.7419),
          _run("openvino-bf16", 6.0, 0.7397)]
    name, why = backends.pick_measured(v5, "rec", fp32=0.7508)
    assert name == "openvino" and "of the FP32 model's 0.7508" in why
    assert backends.pick_measured(v5, "rec")[0] == "openvino-bf16"   # FP32 unknown: the most accurate run's
    # no number, no pick: nan is not a metric
    assert backends.pick_measured([_run("paddle", 10.0, float("nan"))], "det") is None
    assert backends.pick_measured([], "rec") is None
    assert backends.pick_measured([_run("paddle", 10.0, float("nan")), _run("openvino", 12.0, 0.5)], "det")[0] == \
        "openvino"


def _save_dir(tmp_path, task="det", precision="int8"):
    import json
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / backends.SETTINGS_FILE).write_text(json.dumps({"task": task, "precision": precision}))
    return str(tmp_path)


def test_auto_takes_what_was_measured_for_the_model_on_this_cpu_kind(flags, tmp_path):
    import json
    save = _save_dir(tmp_path)
    flags(AMD_AVX2)
    runs = [_run("paddle", 44.0, 0.3559), _run("openvino", 39.0, 0.3485), _run("openvino-w8", 39.2, 0.3567)]
    assert backends.record_measured(save, runs, "det")[0] == "openvino-w8"
    flags(SPR)
    assert backends.record_measured(save, [_run("paddle", 20.0, 0.35)], "det")[0] == "paddle"
    settings = json.loads((tmp_path / "deploy" / backends.SETTINGS_FILE).read_text())
    assert set(settings["measured"]) == {"avx2", "amx"}, "one CPU kind's record leaves the others"
    assert settings["measured"]["avx2"]["runs"]["openvino"] == {"metric": 0.3485, "median_ms": 39.0}
    flags(AMD_AVX2)
    name, why = backends.choose("det", "int8", model_dir=save)
    assert name == "openvino-w8" and why.startswith("measured for this model on avx2")
    assert backends.resolve("auto", "det", "int8", model_dir=save)[0] == "openvino-w8"
    # save_dir/deploy itself as the model folder reads the same record
    assert backends.choose("det", "int8", model_dir=os.path.join(save, "deploy"))[0] == "openvino-w8"
    # a kind without a record, another task or precision, no folder of ours: the per-kind table
    flags("avx2 fma avx512f avx512bw avx512vl avx512_vnni")
    assert backends.choose("det", "int8", model_dir=save) == backends.choose("det", "int8")
    flags(AMD_AVX2)
    assert backends.choose("rec", "int8", model_dir=save)[0] == "onnxruntime"
    assert backends.choose("det", "int8", model_dir=str(tmp_path / "nowhere"))[0] == "paddle"
    assert backends.choose("det", "int8", devices="gpu", model_dir=save)[0] == "paddle"


def test_a_recorded_runtime_ruled_out_here_is_not_taken(flags, tmp_path):
    """A record can never bring back a runtime measured to lose accuracy on this CPU kind."""
    save = _save_dir(tmp_path, task="rec")
    flags(AMD_AVX2)
    backends.record_measured(save, [_run("paddle", 5.0, 0.8)], "rec")
    assert backends.choose("rec", "int8", model_dir=save)[0] == "onnxruntime"
    # damaged records are no records
    (tmp_path / "deploy" / backends.SETTINGS_FILE).write_text("{not json")
    assert backends.choose("rec", "int8", model_dir=save)[0] == "onnxruntime"
    assert backends.record_measured(str(tmp_path / "nowhere"), [_run("paddle", 5.0, 0.8)], "rec") is None


def test_seven_bit_model_is_offered_on_openvino_without_vnni(flags, tmp_path):
    """A model whose int8 weights fit 7 bits (QuantAware.weight_bits 7, deploy/settings.json says so)
    does not saturate OpenVINO's int8 kernels without VNNI: openvino is offered for it there, and
    only for it; openvino-w8 stays out (the same file), and nothing changes with VNNI."""
    import json
    for name, bits in (("w7", 7), ("w8", 8)):
        os.makedirs(tmp_path / name / "deploy")
        (tmp_path / name / "deploy" / "settings.json").write_text(json.dumps({"task": "rec", "weight_bits": bits}))
    flags(AMD_AVX2)
    assert backends.weight_bits(str(tmp_path / "w7")) == 7 and backends.weight_bits(str(tmp_path / "none")) == 8
    assert backends.not_offered("rec", "int8", "openvino", model_dir=str(tmp_path / "w7")) is None
    assert "saturate" in backends.not_offered("rec", "int8", "openvino", model_dir=str(tmp_path / "w8"))
    assert "saturate" in backends.not_offered("rec", "int8", "openvino-w8", model_dir=str(tmp_path / "w7"))
    offered, _ = backends.every("rec", "int8", "cpu", str(tmp_path / "w7"))
    assert "openvino" in offered and "openvino-w8" not in offered
    assert backends.resolve("openvino", "rec", "int8", model_dir=str(tmp_path / "w7"))[0] == "openvino"
    with pytest.raises(backends.NotOffered):
        backends.resolve("openvino", "rec", "int8", model_dir=str(tmp_path / "w8"))
