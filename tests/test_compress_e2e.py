"""End-to-end compression of the real bundled models on tiny generated data (slow).

Small inputs and a handful of steps keep each run to a few minutes on 2 CPU
cores. The bound on the metric is loose (tiny eval sets move in big steps) but
it fails if quantization breaks the model, which is what broke upstream runs
(PACT zeroing det, uncalibrated QAT collapsing rec to ~0).
"""
import json
import os

import numpy as np
import pytest


pytestmark = pytest.mark.slow

# int8 metric must stay within this of FP32 on the same tiny set
BOUND = {"det": 0.10, "rec": 0.10}


def _check_output(save_dir, kind, image_shape):
    import paddle
    paddle.enable_static()
    assert {"config_used.yaml", "inference.pdiparams", "inference.pdmodel", "report.json"} <= set(os.listdir(save_dir))
    exe = paddle.static.Executor(paddle.CPUPlace())
    program, feeds, fetches = paddle.static.load_inference_model(os.path.join(save_dir, "inference"), exe)
    types = {op.type for op in program.global_block().ops}
    assert "quantize_linear" in types and "dequantize_linear" in types
    out = exe.run(program, feed={feeds[0]: np.random.rand(1, *image_shape).astype("float32")}, fetch_list=fetches)
    assert np.isfinite(out[0]).all()
    report = json.load(open(os.path.join(save_dir, "report.json")))
    assert set(report) >= {"baseline", "compressed", "size_mb", "seconds", "strategy", "deploy_rewrites"}
    # save_dir/deploy: the rewritten program; bench.py rewriting it again finds nothing left to do
    from ocrslim.deploy import paddle_passes as deploy
    deploy_dir = os.path.join(save_dir, "deploy")
    assert sorted(os.listdir(deploy_dir)) == ["inference.pdiparams", "inference.pdmodel", "model.bin", "model.onnx",
                                              "model.u8u8.onnx", "model.w7.bin", "model.w7.xml", "model.xml",
                                              "settings.json"]
    assert report["deploy_rewrites"]["fold_affine"] > 0, report["deploy_rewrites"]
    with open(os.path.join(deploy_dir, "inference.pdmodel"), "rb") as f, \
            open(os.path.join(deploy_dir, "inference.pdiparams"), "rb") as g:
        assert set(deploy.optimize(f.read(), g.read())[2].values()) == {0}
    assert report["size_mb"]["compressed"] < report["size_mb"]["baseline"]
    return report


def test_compress_det(compressed_det):
    save, report = compressed_det
    _check_output(save, "det", (3, 320, 320))
    fp32, int8 = report["baseline"]["hmean"], report["compressed"]["hmean"]
    assert fp32 > 0.3, "FP32 det should find text on the tiny set"
    assert int8 >= fp32 - BOUND["det"], (fp32, int8)
    # do no harm: both int8 candidates were measured on Eval in training and the better one was saved
    cands = report["candidates"]
    assert set(cands) == {"calibrated", "trained"} and report["chosen"] in cands
    # step 0 is a real model (its weight scales were set before any training step wrote them)
    assert cands["calibrated"]["hmean"] >= fp32 - BOUND["det"], cands
    assert cands[report["chosen"]]["hmean"] == max(c["hmean"] for c in cands.values())
    # the saved model, loaded back, gives what it gave in training (up to the int8 weight conversion)
    assert abs(report["compressed"]["hmean"] - cands[report["chosen"]]["hmean"]) <= 0.02, report
    # the Test section is reported for FP32 and the kept model (8 train images here)
    assert set(report["test"]) == {"images", "baseline", "compressed"} and report["test"]["images"] == 8
    assert all("hmean" in report["test"][k] for k in ("baseline", "compressed"))
    # step 5: the deployment report sits next to the model
    assert {"report.md", "report.png", "bench.json"} <= set(os.listdir(save))
    # step 5 ran FP32 and ours on every runtime that may run them here, and the peers
    from ocrslim import cpu
    from ocrslim.deploy import backends
    models = report["bench"]["models"]
    names = [m["name"] for m in models]
    assert names[-2].endswith("[onnxruntime PTQ]") and names[-1].endswith("[NNCF PTQ]"), names
    fp32 = [m for m in models if m["strategy"] == "FP32 baseline"]
    ours = [m for m in models if m["strategy"].startswith("int8 ocrslim: ")]
    assert sorted(m["backend"] for m in fp32) == sorted(backends.every("det", "fp32")[0])
    assert sorted(m["backend"] for m in ours) == sorted(backends.every("det", "int8")[0])
    assert len(models) == len(fp32) + len(ours) + 2
    assert all(save in m["name"] for m in ours), "the report names the published folder, not the staging one"
    assert all(m["drop"]["items"] == 6 for m in ours), ours
    left_out = [s["name"] for s in report["bench"]["not_offered"]]
    assert len(left_out) == len(backends.every("det", "int8")[1]) + len(backends.every("det", "fp32")[1])
    # ours: the fastest runtime within 0.5 point of its most accurate one is auto's pick for it here,
    # recorded in deploy/settings.json, and what load_predictor then runs
    best = max(m["metrics"]["hmean"] for m in ours)
    fastest = min((m for m in ours if m["metrics"]["hmean"] >= best - 0.005), key=lambda m: m["latency_ms"]["median"])
    measured = report["bench"]["measured_choice"]
    assert measured["backend"] == fastest["backend"] and measured["model_dir"] == save, measured
    with open(os.path.join(save, "deploy", "settings.json")) as f:
        record = json.load(f)["measured"][cpu.kind()]
    assert record["backend"] == fastest["backend"] and set(record["runs"]) == {m["backend"] for m in ours}
    import ocrslim
    predict = ocrslim.load_predictor(save)
    assert predict.info["backend"] == fastest["backend"] and predict.info["choice"].startswith("measured for this model")
    assert "from now on: " + fastest["backend"] in open(os.path.join(save, "report.md")).read()
    # every report names the CPU it was measured on
    assert report["cpu"]["kind"] == report["bench"]["cpu"]["kind"] == cpu.kind()
    assert f"CPU: {cpu.line(cpu.summary())}" in open(os.path.join(save, "report.md")).read()


def test_compress_rec_keeps_the_model_when_the_benchmark_crashes(compressed_rec):
    """The fixture's step 5 child aborts (OCRSLIM_BENCH_ABORT): run.py raised, and save_dir is complete."""
    save, report, error = compressed_rec
    _check_output(save, "rec", (3, 48, 320))
    assert "died with SIGABRT" in error and f"the compressed model in {save} is complete" in error
    assert "Retry the benchmark with: python bench.py -c configs/ppocrv4/rec_mobile.yaml" in error
    assert "report.md" not in os.listdir(save) and "bench" not in report
    assert not [p for p in os.listdir(os.path.dirname(save)) if ".partial" in p]
    fp32, int8 = report["baseline"]["acc"], report["compressed"]["acc"]
    assert fp32 > 0.3
    assert int8 >= fp32 - BOUND["rec"], (fp32, int8)
    # the calibrated-only step 0 was measured on a working model (untouched weight scales gave 0.0)
    assert report["candidates"]["calibrated"]["acc"] >= fp32 - BOUND["rec"], report["candidates"]


def test_ptq_rec_is_calibration_only(ptq_rec):
    """--strategy ptq: no training, the calibrated model saved, loadable, quantized, in bound."""
    save, report = ptq_rec
    _check_output(save, "rec", (3, 48, 320))
    assert report["strategy"]["name"] == "ptq" and report["chosen"] == "calibrated"
    assert report["strategy"]["label"] == "ocrslim: PTQ (calibration only)"
    assert set(report["strategy"]["settings"]) == {"Calibration"} and report["candidates"] == {}
    assert report["strategy"]["settings"]["Calibration"]["batch_nums"] == 1
    # the figure that counts is as deployed: the kept attempt's, which --max_drop 5 held
    kept = report["target"]["attempts"][report["target"]["chosen"]]
    fp32 = report["baseline"]["acc"]
    # the drops are against the FP32 model itself (step 1), not FP32 on auto's FP32 runtime (bf16
    # on AMX, a point off FP32 on v5 rec)
    assert report["target"]["fp32"] == fp32
    for a in report["target"]["attempts"]:
        assert a["drop"] == pytest.approx(fp32 - a["acc"]), a
    assert fp32 > 0.3 and kept["acc"] >= fp32 - BOUND["rec"], (fp32, kept)
    # the executor's figure of the saved model is reported too; it is fake-quant in float, and on
    # 40 crops it differed from the deployed one by up to 3 crops (AMD EPYC, int8 on Paddle Inference)
    assert abs(report["compressed"]["acc"] - kept["acc"]) <= 0.1, (report["compressed"], kept)
    # the Test section: the kept model as deployed, never chosen by (and in executor figures, step 3)
    test = report["target"]["test"]
    assert set(test) == {"fp32", "int8", "backend", "drop_ci"} and 0 <= test["int8"] <= 1
    assert test["fp32"] == report["test"]["baseline"]["acc"]
    assert report["test"]["images"] == 64


def test_max_drop_gives_layers_back_until_the_target_holds(ptq_rec, rec_sensitivity):
    """The first PTQ model (depthwise convs quantized) misses --max_drop 5 as deployed; the
    layers the sensitivity table ranks first go back to float until it holds."""
    save, report = ptq_rec
    target = report["target"]
    attempts, kept = target["attempts"], target["attempts"][target["chosen"]]
    if attempts[0]["meets"]:
        pytest.skip(f"the first attempt already met the target on this CPU (drop {attempts[0]['drop']:+.3f})")
    assert len(attempts) >= 2 and kept["meets"] and 100 * kept["drop"] <= 5
    ranked = [r["layer"] for r in sorted(rec_sensitivity[1]["rows"], key=lambda r: -r["only_error"])]
    assert kept["keep_float"] == ["conv2d_146.w_0"] + [n for n in ranked if n != "conv2d_146.w_0"][:kept["extra_float"]]
    # the fewest layers that met it among those tried
    assert kept["extra_float"] == min(a["extra_float"] for a in attempts if a["meets"])
    # what was saved is the kept attempt
    import yaml
    used = yaml.safe_load(open(os.path.join(save, "config_used.yaml")))
    assert used["Calibration"]["keep_float"] == kept["keep_float"]
    assert {"sensitivity.csv", "sensitivity.json"} <= set(os.listdir(save)) or rec_sensitivity


def test_max_drop_that_cannot_be_met_ends_non_zero(tiny_data, rec_sensitivity, tmp_path):
    from helpers import data_overrides
    from ocrslim.compress.target import TargetMissed
    from ocrslim.run_cli import main
    from conftest import REC_WITH_DEPTHWISE
    save = tmp_path / "rec"
    try:
        main(["-c", "configs/ppocrv4/rec_mobile_ptq.yaml", "--save_dir", str(save), "--quiet", "--no_bench",
              "--max_drop", "0", "--max_float", "0",
              "--sensitivity", os.path.join(rec_sensitivity[0], "sensitivity.json"),
              "-o", *data_overrides(tiny_data, "rec"), *REC_WITH_DEPTHWISE])
    except TargetMissed as err:
        assert err.exit_code == 4 and "--max_drop 0.0 points is not met" in str(err) and "--max_float" in str(err)
        assert len(err.attempts) == 1 and not err.attempts[0]["meets"]
        assert not save.exists() and not [p for p in os.listdir(tmp_path) if ".partial" in p]
    else:
        pytest.skip("the first attempt met a zero drop on this CPU")


def test_readme_load_predictor_example_runs(compressed_det):
    """save_dir carries what each runtime needs: the README's five lines give a ready predictor."""
    save = compressed_det[0]
    from helpers import readme_example
    code = readme_example()
    assert len(code.strip().splitlines()) <= 5 and "output/demo/det" in code
    scope = {}
    exec(code.replace("output/demo/det", save), scope)
    assert scope["maps"].shape == (1, 1, 320, 320)
    info = scope["predict"].info
    from ocrslim.deploy import backends
    # auto: what step 5 measured for this model on this CPU kind
    assert info["backend"] == backends.choose("det", "int8", model_dir=save)[0] and info["precision"] == "int8"
    # every runtime offered on this CPU loads from save_dir/deploy alone
    x = np.random.RandomState(0).rand(1, 3, 320, 320).astype("float32")
    outs = [ocrslim_load(save, b)(x)[0] for b in backends.BACKENDS if not backends.not_offered("det", "int8", b)]
    assert all(o.shape == (1, 1, 320, 320) for o in outs)
    with pytest.raises(Exception, match="not a run.py output folder"):
        ocrslim_load(os.path.dirname(save), "auto")


def test_openvino_ir_is_the_onnx_model(compressed_det, tmp_path):
    """deploy/model.xml and model.w7.xml (what load_predictor gives OpenVINO with and without VNNI)
    compute what OpenVINO's int8 files made from the model's OpenVINO ONNX do (runtime.onnx_model
    with openvino=True, then onnx_passes.openvino_int8_onnx), and that ONNX has no conv-output Q."""
    import onnx
    from ocrslim.deploy import runtime
    from ocrslim.deploy.onnx_passes import openvino_int8_onnx
    save = compressed_det[0]
    deploy_dir = os.path.join(save, "deploy")
    source = runtime.onnx_model((save, "inference.pdmodel", "inference.pdiparams"), str(tmp_path), "ov", openvino=True)
    assert not [n for n in onnx.load(source).graph.node if n.op_type == "QuantizeLinear" and n.input[0].endswith("__conv")]
    x = np.random.RandomState(1).rand(1, 3, 320, 320).astype("float32")
    for xml, seven in (("model.xml", False), ("model.w7.xml", True)):
        from_ir = runtime.openvino_predictor(os.path.join(deploy_dir, xml))[0](x)[0]
        onnx_path = openvino_int8_onnx(source, str(tmp_path / f"{seven}.onnx"), seven)[0]
        assert np.array_equal(from_ir, runtime.openvino_predictor(onnx_path)[0](x)[0]), xml


def ocrslim_load(save_dir, backend):
    import ocrslim
    return ocrslim.load_predictor(save_dir, backend)
