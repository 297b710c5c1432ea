"""run.py stopped half-way (kill -9, Ctrl-C, SIGTERM) and run twice at once, in real processes:
the earlier result in save_dir survives, nothing half-written looks finished, the next run says
what was left and cleans it up (slow: each run.py process imports Paddle and runs a tiny PTQ)."""
import json
import os
import signal
import subprocess
import sys

import pytest

from ocrslim.outputs import publish, staging_dir

from helpers import make_rec_set, snapshot

pytestmark = pytest.mark.slow
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def rec_set(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("rec") / "rec")
    make_rec_set(root)
    return root


def argv(rec_set, save_dir, *extra):
    data = [f"Eval.dataset.data_dir={rec_set}", f"Eval.dataset.label_file_list=[{rec_set}/eval.txt]",
            f"Train.dataset.data_dir={rec_set}", f"Train.dataset.label_file_list=[{rec_set}/eval.txt]"]
    return [sys.executable, "run.py", "-c", "configs/ppocrv4/rec_mobile_ptq.yaml", "--save_dir", str(save_dir),
            "--no_bench", "--quiet", *extra, "-o", *data, "Train.loader.batch_size_per_card=2", "Calibration.batch_nums=1"]


def start(cmd):
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(proc, text):
    """Read the process's log until a line holds `text`; returns the lines read."""
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if text in line:
            return lines
    raise AssertionError(f"{text!r} never came: {''.join(lines)}")


def earlier_result(save_dir):
    """An earlier run.py result in save_dir (its manifest marks it as ocrslim's own)."""
    staging = staging_dir(str(save_dir))
    with open(os.path.join(staging, "report.json"), "w") as f:
        json.dump({"model_type": "rec", "baseline": {}, "compressed": {}}, f)
    publish(staging, str(save_dir), kind="run")
    return snapshot(str(save_dir))


def partials(save_dir):
    parent = os.path.dirname(str(save_dir))
    return [n for n in os.listdir(parent) if n.startswith(f".{os.path.basename(str(save_dir))}.partial-")]


def test_kill_9_keeps_the_earlier_result_and_the_next_run_takes_over(rec_set, tmp_path):
    save = tmp_path / "out"
    before = earlier_result(save)
    proc = start(argv(rec_set, save, "--overwrite"))
    wait_for(proc, "[2/5]")  # the staging folder exists from here on
    lock = json.loads((tmp_path / ".out.lock").read_text())
    assert lock["pid"] == proc.pid
    proc.kill()
    proc.communicate()
    assert snapshot(str(save)) == before  # the earlier result, untouched
    assert len(partials(save)) == 1 and (tmp_path / ".out.lock").exists()
    # the next run names the dead run's lock and folder, and --overwrite removes the folder
    done = subprocess.run(argv(rec_set, save, "--overwrite"), cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"a run that wrote {save} is gone without finishing (pid {proc.pid}" in done.stderr
    assert "removed 1 folder(s) left by interrupted runs" in done.stderr
    assert partials(save) == [] and not (tmp_path / ".out.lock").exists()
    with open(save / "report.json", encoding="utf-8") as f:
        assert json.load(f)["strategy"]["name"] == "ptq"


@pytest.mark.parametrize("sig, code, line", [(signal.SIGINT, 130, "error: interrupted"),
                                            (signal.SIGTERM, 143, "error: terminated")])
def test_ctrl_c_and_sigterm_clean_up_and_keep_the_earlier_result(rec_set, tmp_path, sig, code, line):
    save = tmp_path / "out"
    before = earlier_result(save)
    proc = start(argv(rec_set, save, "--overwrite"))
    wait_for(proc, "[1/5]")
    # a second run into the same save_dir while the first writes it is refused at once
    second = subprocess.run(argv(rec_set, save, "--overwrite"), cwd=ROOT, capture_output=True, text=True)
    assert second.returncode == 2
    assert f"is being written by another run (pid {proc.pid}" in second.stderr.strip().splitlines()[-1]
    wait_for(proc, "[2/5]")
    proc.send_signal(sig)
    _, err = proc.communicate()
    assert proc.returncode == code and err.strip().splitlines()[-1] == line, err
    assert snapshot(str(save)) == before
    assert partials(save) == [] and not (tmp_path / ".out.lock").exists()
