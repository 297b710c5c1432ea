"""make gpu-check: its no-GPU path, and its commands checked against our own CLIs (no GPU here).

What this cannot show: that the checks pass on a GPU, or fit their time limits there."""
import json
import os
import subprocess
import sys

import pytest

from ocrslim import distributed, gpu_check
from ocrslim.config import load_config, COMPRESS_DEFAULTS


def _fake_nvidia_smi(folder, script):
    folder.mkdir()
    path = folder / "nvidia-smi"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)
    return str(folder)


def _gpu_check(tmp_path, path, *extra):
    """python -S (no site-packages: the standard library only, as before the venv exists)."""
    env = dict(os.environ, PATH=path)
    return subprocess.run([sys.executable, "-S", "-m", "ocrslim.gpu_check", "--out", str(tmp_path / "out"),
                           "--venv", str(tmp_path / "venv"), *extra], cwd=gpu_check.ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("smi", [None, "echo 'NVIDIA-SMI has failed' >&2; exit 9", "echo 'No devices were found'; exit 6",
                                 "exit 0"])
def test_no_gpu_prints_it_and_does_nothing(tmp_path, smi):
    path = str(tmp_path / "empty") if smi is None else _fake_nvidia_smi(tmp_path / "bin", smi)
    out = _gpu_check(tmp_path, path)
    assert out.returncode == 0 and out.stdout == "no GPU\n", out.stderr
    assert sorted(os.listdir(tmp_path)) == ([] if smi is None else ["bin"])


def test_gpus_listed_by_nvidia_smi(tmp_path, monkeypatch):
    listing = "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-1)\nGPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-2)\n"
    monkeypatch.setenv("PATH", _fake_nvidia_smi(tmp_path / "bin", f"printf '{listing}'"))
    assert gpu_check.nvidia_gpus() == listing.strip().split("\n")


def test_dry_run_prints_the_plan_within_the_budget_and_writes_nothing(tmp_path):
    out = _gpu_check(tmp_path, str(tmp_path / "empty"), "--dry_run")
    assert out.returncode == 0 and os.listdir(tmp_path) == []
    lines = out.stdout.splitlines()
    assert [line.split("] ")[1].split(":")[0] for line in lines[:-1]] == [c["name"] for c in gpu_check.checks("p", "o")]
    assert lines[-1].startswith("total limit 480 s")
    assert sum(c["limit"] for c in gpu_check.checks("p", "o")) <= 8 * 60


def test_gpu_requirements_swap_paddle_only():
    with open(os.path.join(gpu_check.ROOT, "requirements.txt"), encoding="utf-8") as f:
        cpu = f.read()
    gpu = gpu_check.gpu_requirements(cpu).splitlines()
    assert "paddlepaddle-gpu==2.6.2" in gpu and "paddlepaddle==2.6.2" not in gpu and "protobuf<7" in gpu
    assert [line for line in gpu if line not in ("paddlepaddle-gpu==2.6.2", "protobuf<7") and "protobuf" not in line] \
        == [line for line in cpu.splitlines() if line != "paddlepaddle==2.6.2"]
    with pytest.raises(SystemExit, match="no line 'paddlepaddle==2.6.2'"):
        gpu_check.gpu_requirements("paddlepaddle==3.0.0\n")


def _validate(argv, tmp_path, monkeypatch):
    """Check one command line with the CLI it calls, up to where the work would start."""
    from ocrslim import eval_cli, run_cli
    from ocrslim.deploy import bench
    script, args = argv[0], argv[1:]
    if script == "run.py":
        monkeypatch.setattr(distributed, "visible_gpus", lambda: 1)  # card 0 of one GPU
        run = run_cli.Run(run_cli.parse_args(args))  # config, overrides, data, strategy, save_dir
        assert run.device == {"fleet": False, "card": 0}
    elif script == "eval.py":
        parsed = eval_cli.parse_args(args)
        eval_cli.prepare(load_config(parsed.config, parsed.opt))
    elif script == "bench.py":
        parsed = bench.parse_args(args)
        eval_cli.prepare(load_config(parsed.config, parsed.opt, defaults=COMPRESS_DEFAULTS))
        distributed.parse_devices(parsed.devices)
    else:
        raise AssertionError(f"unexpected command {argv}")


def test_every_command_is_valid_for_our_clis(tiny_data, tmp_path, monkeypatch):
    """The plan with the tests' tiny data (the same synth arguments): every run.py, eval.py and
    bench.py line passes our own argument, config and data checks; launch wraps run.py; what a
    check reads was made by a check before it."""
    from ocr_data.synth.cli import parse_args as synth_args
    plan = gpu_check.checks("python", str(tmp_path / "out"), data=tiny_data)
    names, validated = [c["name"] for c in plan], []
    for i, check in enumerate(plan):
        argv = check["argv"]
        assert argv[0] == "python" and all(n in names[:i] for n in check["needs"])
        if argv[1:3] == ["-m", "ocr_data.synth"]:
            synth_args(argv[3:])
            assert argv[argv.index("--out") + 1] == tiny_data
        elif argv[1:3] == ["-m", "paddle.distributed.launch"]:
            assert argv[3:5] == ["--gpus", "0"] and argv[7] == "run.py"
            monkeypatch.setenv("FLAGS_selected_gpus", "0")
            _validate(argv[7:], tmp_path, monkeypatch)
            monkeypatch.delenv("FLAGS_selected_gpus")
            validated.append("launch run.py")
        elif argv[1] != "-c":
            _validate(argv[1:], tmp_path, monkeypatch)
            validated.append(argv[1])
    assert validated == ["run.py", "run.py", "eval.py", "bench.py", "bench.py", "launch run.py"]
    # the same set as tests/conftest.py's tiny_data, which stood in for the data check above
    assert gpu_check.DATA_ARGS[:12] == ["--seed", "3", "--det_train", "8", "--det_eval", "6", "--rec_train", "64",
                                        "--rec_eval", "40", "--det_size", "320"]


def test_key_figures_from_what_the_checks_write(tmp_path):
    report = {"main_indicator": "acc", "baseline": {"acc": 0.5}, "compressed": {"acc": 0.45}, "chosen": "trained"}
    (tmp_path / "report.json").write_text(json.dumps(report))
    assert gpu_check.figure(("report", str(tmp_path)), "") == "acc FP32 0.5000 -> int8 0.4500 (kept trained)"
    rows = [{"name": "fp32", "engine": "TensorRT", "precision": "fp16", "latency_ms": {"median": 1.5},
             "metrics": {"hmean": 0.8}}]
    (tmp_path / "b.json").write_text(json.dumps({"main_indicator": "hmean", "models": rows}))
    assert gpu_check.figure(("bench", str(tmp_path / "b.json")), "") == "fp32: TensorRT fp16 1.5 ms, hmean 0.8000"
    assert gpu_check.figure(("stdout",), "x\nmatmul 16777216.0 gpus 1\n") == "matmul 16777216.0 gpus 1"


def test_a_check_that_fails_or_is_not_reached_says_so(tmp_path):
    log_dir = str(tmp_path)
    failed = gpu_check.run_check(gpu_check._check("boom", [sys.executable, "-c", "raise SystemExit('bad card')"], 30),
                                 log_dir, {})
    assert failed["status"] == "failed" and "bad card" in failed["error_tail"] and os.path.isfile(failed["log"])
    slow = gpu_check.run_check(gpu_check._check("slow", [sys.executable, "-c", "import time; time.sleep(5)"], 1),
                               log_dir, {})
    assert slow["status"] == "timeout"
    skipped = gpu_check.run_check(gpu_check._check("later", ["true"], 30, ["boom"]), log_dir, {"boom": "failed"})
    assert skipped["status"] == "skipped" and skipped["why"] == "needs boom"
