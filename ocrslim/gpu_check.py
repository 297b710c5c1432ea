"""`make gpu-check`: a prepared check of the GPU paths, for a machine with an NVIDIA GPU.

This project has never run it: the machines it was built on have no GPU. Without a GPU
(no nvidia-smi, or it lists none) it prints "no GPU" and exits 0, having run and written
nothing. With one, it makes its own venv (.venv-gpu: requirements.txt with
paddlepaddle-gpu==2.6.2 in place of paddlepaddle==2.6.2, and protobuf<7, which Paddle
2.6's fleet needs; a one-time install, not counted in the budget), generates tiny data
and runs each check below as a child process with its own time limit, 480 s in all, on
one GPU (card 0): a matmul on the GPU, a tiny single-GPU det and rec compression (ACT
QAT), eval on GPU, bench.py --devices gpu (TensorRT FP32 and int8 with dynamic shapes,
then FP16, when the paddle build has TensorRT; plain CUDA otherwise) and run.py under
`paddle.distributed.launch --gpus 0` (one process, strategy ptq). It writes
OUT/summary.json: for every check ok / failed / timeout / skipped, seconds, a key figure
and the tail of its output. Exit code 0 when every check passed, 1 otherwise.

Only the standard library here: it runs before the venv exists.

usage:
  make gpu-check
  python -m ocrslim.gpu_check [--out output/gpu_check] [--venv .venv-gpu]
  python -m ocrslim.gpu_check --dry_run      # print the commands, run nothing
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DET, REC = "configs/ppocrv4/det_mobile.yaml", "configs/ppocrv4/rec_mobile.yaml"
PADDLE_CPU, PADDLE_GPU = "paddlepaddle==2.6.2", "paddlepaddle-gpu==2.6.2"
INSTALL_LIMIT = 1800  # seconds; pip fetches ~1 GB of wheels once
# the tests' tiny set (tests/conftest.py: tiny_data): 8 + 6 det images, 64 + 40 rec crops
DATA_ARGS = ["--seed", "3", "--det_train", "8", "--det_eval", "6", "--rec_train", "64", "--rec_eval", "40",
             "--det_size", "320", "--overwrite", "--quiet"]
# a matmul on card 0 (256**3 = 16777216.0), the GPUs paddle sees and the TensorRT it was built with
PADDLE_PROBE = ("import paddle; from paddle import inference; paddle.set_device('gpu:0'); x = paddle.ones([256, 256]); "
                "print('matmul', float((x @ x).sum()), 'gpus', paddle.device.cuda.device_count(), "
                "'tensorrt', inference.get_trt_compile_version())")


def nvidia_gpus():
    """The GPUs `nvidia-smi -L` lists; none when it is missing, fails or lists none."""
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    if out.returncode != 0:
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.startswith("GPU ")]


def gpu_requirements(text):
    """requirements.txt for the GPU venv: paddlepaddle-gpu in place of paddlepaddle, plus protobuf<7."""
    lines = text.splitlines()
    if PADDLE_CPU not in lines:
        raise SystemExit(f"error: requirements.txt has no line {PADDLE_CPU!r} to replace with {PADDLE_GPU!r}")
    lines = [PADDLE_GPU if line == PADDLE_CPU else line for line in lines]
    lines += ["# Paddle 2.6's fleet (several cards) fails on protobuf 7 (ocrslim/distributed.py: check_fleet)",
              "protobuf<7"]
    return "\n".join(lines) + "\n"


def _data(data, kind):
    return [f"Eval.dataset.data_dir={data}/{kind}", f"Eval.dataset.label_file_list=[{data}/{kind}/eval.txt]",
            f"Train.dataset.data_dir={data}/{kind}", f"Train.dataset.label_file_list=[{data}/{kind}/train.txt]"]


def _run_py(py, config, save_dir, data, kind, *extra):
    return [py, "run.py", "-c", config, "--save_dir", save_dir, "--quiet", "--no_bench", "--overwrite",
            *extra, "-o", *_data(data, kind), "Calibration.batch_nums=2"]


def _check(name, argv, limit, needs=(), figure=None):
    return {"name": name, "argv": argv, "limit": limit, "needs": list(needs), "figure": figure}


def checks(py, out, data=None):
    """Every check, in order: name, command (run from the repo root), time limit (s), the checks
    whose output it reads, and where its key figure is."""
    data = data or os.path.join(out, "data")
    det, rec, launched = (os.path.join(out, n) for n in ("det", "rec", "rec_launch"))
    bench = [py, "bench.py", "-c", DET, "--devices", "gpu", "--repeat", "1", "--quiet"]
    return [
        _check("data", [py, "-m", "ocr_data.synth", "--out", data, *DATA_ARGS], 20),
        _check("paddle_gpu", [py, "-c", PADDLE_PROBE], 30, figure=("stdout",)),
        _check("det_compress", _run_py(py, DET, det, data, "det", "--devices", "gpu:0") + [
            "Train.loader.batch_size_per_card=2", "TrainConfig.train_iter=4", "TrainConfig.eval_iter=4"],
            150, ["data"], ("report", det)),
        _check("rec_compress", _run_py(py, REC, rec, data, "rec", "--devices", "gpu") + [
            "Train.loader.batch_size_per_card=8", "TrainConfig.train_iter=3", "TrainConfig.eval_iter=3"],
            100, ["data"], ("report", rec)),
        _check("eval_gpu", [py, "eval.py", "-c", REC, "--model_dir", rec, "--devices", "gpu", "--quiet", "--json",
                            os.path.join(out, "eval_rec.json"), "-o", *_data(data, "rec")[:2]],
               20, ["rec_compress"], ("eval", os.path.join(out, "eval_rec.json"))),
        # TensorRT FP32 for the FP32 model and int8 for ours, dynamic shapes from the eval set
        _check("bench_trt_fp32_int8", bench + ["--model_dir", "bundled:ch_PP-OCRv4_det_infer", "--model_dir", det,
                                               "--json", os.path.join(out, "bench_det.json"),
                                               "-o", *_data(data, "det")[:2]],
               80, ["det_compress"], ("bench", os.path.join(out, "bench_det.json"))),
        _check("bench_trt_fp16", bench + ["--precision", "fp16", "--json", os.path.join(out, "bench_det_fp16.json"),
                                          "-o", *_data(data, "det")[:2]],
               35, ["data"], ("bench", os.path.join(out, "bench_det_fp16.json"))),
        # one process under launch (its environment, its card): calibration only, to fit the budget;
        # with one process fleet is off, so ACT runs as in rec_compress
        _check("launch_one_process", [py, "-m", "paddle.distributed.launch", "--gpus", "0", "--log_dir",
                                      os.path.join(out, "launch_log")]
               + _run_py(py, REC, launched, data, "rec", "--devices", "gpu", "--strategy", "ptq")[1:],
               45, ["data"], ("report", launched)),
    ]


def figure(where, stdout):
    """The key figure of a finished check, as one short line."""
    kind, path = where[0], where[-1]
    if kind == "stdout":
        return stdout.strip().splitlines()[-1]
    with open(os.path.join(path, "report.json") if kind == "report" else path, encoding="utf-8") as f:
        out = json.load(f)
    if kind == "report":
        key = out["main_indicator"]
        return f"{key} FP32 {out['baseline'][key]:.4f} -> int8 {out['compressed'][key]:.4f} (kept {out['chosen']})"
    if kind == "eval":
        return ", ".join(f"{k} {v:.4f}" for k, v in out["metrics"].items() if isinstance(v, float))
    key = out["main_indicator"]
    return "; ".join(f"{r['name']}: {r.get('engine')} {r['precision']} {r['latency_ms']['median']} ms, "
                     f"{key} {r['metrics'][key]:.4f}" for r in out["models"])


def run_check(check, log_dir, done):
    """Run one check (or skip it when a check it reads did not pass): its summary entry."""
    entry = {"name": check["name"], "command": " ".join(check["argv"]), "limit_s": check["limit"]}
    missing = [n for n in check["needs"] if done.get(n) != "ok"]
    if missing:
        return {**entry, "status": "skipped", "seconds": 0, "why": f"needs {', '.join(missing)}"}
    start, log = time.time(), os.path.join(log_dir, check["name"] + ".log")
    try:
        proc = subprocess.run(check["argv"], cwd=ROOT, capture_output=True, text=True, timeout=check["limit"])
        status, stdout, stderr = ("ok" if proc.returncode == 0 else "failed"), proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as err:
        status, stdout, stderr = "timeout", _text(err.stdout), _text(err.stderr)
    entry.update(status=status, seconds=round(time.time() - start, 1), log=log)
    with open(log, "w", encoding="utf-8") as f:
        f.write(stdout + stderr)
    if status != "ok":
        return {**entry, "error_tail": (stdout + stderr)[-2000:]}
    if check["figure"]:
        try:
            entry["figure"] = figure(check["figure"], stdout)
        except (OSError, KeyError, ValueError, TypeError, IndexError) as err:
            entry["figure"] = f"no figure: {err!r}"
    return entry


def _text(value):
    return value.decode(errors="replace") if isinstance(value, bytes) else (value or "")


def install(venv, log_dir):
    """The GPU venv, made once (again when requirements.txt changes): its python and the summary entry."""
    py = os.path.join(venv, "bin", "python")
    with open(os.path.join(ROOT, "requirements.txt"), encoding="utf-8") as f:
        wanted = gpu_requirements(f.read())
    marker = os.path.join(venv, "ocrslim-requirements.txt")
    if os.path.isfile(marker):
        with open(marker, encoding="utf-8") as f:
            if f.read() == wanted:
                return py, {"name": "install", "status": "ok", "seconds": 0, "figure": f"reused {venv}"}
    wanted_file = os.path.join(log_dir, "requirements-gpu.txt")
    with open(wanted_file, "w", encoding="utf-8") as f:
        f.write(wanted)
    for argv in ([sys.executable, "-m", "venv", venv],
                 [py, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r", wanted_file]):
        entry = run_check(_check("install", argv, INSTALL_LIMIT), log_dir, {})
        if entry["status"] != "ok":
            return py, entry
    with open(marker, "w", encoding="utf-8") as f:
        f.write(wanted)
    return py, {**entry, "figure": f"installed {venv} ({PADDLE_GPU}, protobuf<7)"}


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m ocrslim.gpu_check", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=os.path.join(ROOT, "output", "gpu_check"), help="data, models, logs, summary")
    p.add_argument("--venv", default=os.path.join(ROOT, ".venv-gpu"), help="the GPU virtualenv (made once)")
    p.add_argument("--dry_run", action="store_true", help="print the commands and their limits; run nothing")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    out, venv = os.path.abspath(args.out), os.path.abspath(args.venv)
    plan = checks(os.path.join(venv, "bin", "python"), out)
    if args.dry_run:
        for check in plan:
            print(f"[{check['limit']:>3} s] {check['name']}: {' '.join(check['argv'])}")
        print(f"total limit {sum(c['limit'] for c in plan)} s, from {ROOT}")
        return 0
    gpus = nvidia_gpus()
    if not gpus:
        print("no GPU")
        return 0
    return run_all(plan, out, venv, gpus)


def run_all(plan, out, venv, gpus):
    """Install, then every check in order; summary.json and one line per check."""
    start, log_dir = time.time(), os.path.join(out, "logs")
    os.makedirs(log_dir, exist_ok=True)
    _, entry = install(venv, log_dir)
    results = [entry]
    done = {"install": entry["status"]}
    for check in plan:
        if entry["status"] != "ok":
            break
        results.append(run_check(check, log_dir, done))
        done[check["name"]] = results[-1]["status"]
    summary = {"gpus": gpus, "budget_s": sum(c["limit"] for c in plan), "seconds": round(time.time() - start, 1),
               "passed": sum(r["status"] == "ok" for r in results[1:]), "checks": results,
               "note": "every check on one GPU (card 0); install time is not part of the budget"}
    with open(os.path.join(out, "summary.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
    for r in results:
        print(f"{r['name']:<20} {r['status']:<8} {r['seconds']:>6} s  {r.get('figure') or r.get('why') or ''}")
    print(f"wrote {os.path.join(out, 'summary.json')}")
    return 0 if all(r["status"] == "ok" for r in results) and len(results) == len(plan) + 1 else 1


if __name__ == "__main__":
    sys.exit(main())
