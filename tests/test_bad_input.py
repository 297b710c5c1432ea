"""Bad input, one table: every case exits 2 with one `error:` line, before step 1 and before any
model is loaded, and changes no file of the user's (every input is hashed before and after).

The world is a folder of real inputs: copies of the bundled models, small det and rec sets, the
config files. Each case builds its argv from it and may add files of its own (a damaged model,
a non-UTF-8 label file) under its own case folder; outputs go to the case folder's out/.
"""
import hashlib
import json
import logging
import os
import shutil

import pytest

from ocrslim import load_predictor
from ocrslim.config import resolve_path
from ocrslim.deploy import bench, report
from ocrslim.errors import UserError, run_cli
from ocrslim import eval_cli, run_cli as run_mod
from ocrslim.outputs import FolderLock, publish, staging_dir

from helpers import make_det_set, make_rec_set

REC_PTQ = "configs/ppocrv4/rec_mobile_ptq.yaml"
DET_PTQ = "configs/ppocrv4/det_mobile_ptq.yaml"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Real inputs for every case (read-only for the cases: hashed around each one)."""
    root = tmp_path_factory.mktemp("world")
    shutil.copytree(resolve_path("bundled:ch_PP-OCRv4_rec_infer"), root / "rec_model")
    shutil.copytree(resolve_path("bundled:ch_PP-OCRv4_det_infer"), root / "det_model")
    make_rec_set(str(root / "rec"))
    make_det_set(str(root / "det"))
    # a second det image of another size, for a Train batch that cannot stack
    from PIL import Image
    Image.open(root / "det" / "a.jpg").resize((480, 320)).save(root / "det" / "b.jpg")
    with open(root / "det" / "two.txt", "w", encoding="utf-8") as f:
        line = open(root / "det" / "eval.txt", encoding="utf-8").read()
        f.write(line + line.replace("a.jpg", "b.jpg"))
    os.makedirs(root / "configs")
    for name in ("rec_mobile.yaml", "rec_mobile_ptq.yaml"):
        shutil.copy(f"configs/ppocrv4/{name}", root / "configs" / name)
    shutil.copy(resolve_path("bundled:ppocr_keys_v1.txt"), root / "keys.txt")
    # an ocrslim bench JSON, as report --out reads
    (root / "bench.json").write_text(json.dumps({"ocrslim": "bench", "model_type": "rec", "main_indicator": "acc",
                                                 "models": [], "fastest_fp32": None}))
    return root


def hashes(root):
    out = {}
    for base, _, files in os.walk(root):
        for name in files:
            path = os.path.join(base, name)
            with open(path, "rb") as f:
                out[path] = hashlib.sha1(f.read()).hexdigest()
    return out


def rec_data(w, kind="rec"):
    d = w / kind
    return [f"Eval.dataset.data_dir={d}", f"Eval.dataset.label_file_list=[{d}/eval.txt]",
            f"Train.dataset.data_dir={d}", f"Train.dataset.label_file_list=[{d}/eval.txt]"]


def run_argv(w, case, *extra, opts=(), config=None):
    """run.py on the world's rec model and set (PTQ), out into the case folder."""
    return ["-c", config or str(w / "configs" / "rec_mobile_ptq.yaml"), "--model_dir", str(w / "rec_model"),
            "--quiet", "--no_bench", *extra, "-o", *rec_data(w), "Train.loader.batch_size_per_card=2", *opts]


def save(case):
    return ["--save_dir", str(case / "out")]


def eval_argv(w, *extra, opts=(), kind="rec"):
    config = REC_PTQ if kind == "rec" else DET_PTQ
    return ["-c", config, "--model_dir", str(w / f"{kind}_model"), "--quiet", *extra, "-o",
            f"Eval.dataset.data_dir={w / kind}", f"Eval.dataset.label_file_list=[{w / kind}/eval.txt]", *opts]


def bench_argv(w, *extra, opts=()):
    return eval_argv(w, *extra, opts=opts)


def user_folder(case):
    d = case / "mine"
    d.mkdir()
    (d / "notes.txt").write_text("the user's own")
    return d


# (id, script, argv(world, case) -> list, expected message)
CASES = [
    # ---- outputs that are or hold an input: nothing may be lost, even with --overwrite ----
    ("save_dir holds the model dir", "run", lambda w, c: run_argv(w, c, "--save_dir", str(w), "--overwrite"),
     "holds the (model dir|config file|dictionary|Eval data dir)"),
    ("save_dir is the data dir", "run", lambda w, c: run_argv(w, c, "--save_dir", str(w / "rec"), "--overwrite"),
     "is the Eval data dir"),
    ("save_dir holds the config", "run", lambda w, c: run_argv(w, c, "--save_dir", str(w / "configs"), "--overwrite"),
     "holds the config file"),
    ("save_dir inside the model dir", "run", lambda w, c: run_argv(w, c, "--save_dir", str(w / "rec_model" / "o")),
     "inside the model dir"),
    ("save_dir is a user's folder, --overwrite", "run",
     lambda w, c: run_argv(w, c, "--save_dir", str(user_folder(c)), "--overwrite"), "holds files ocrslim did not write"),
    ("save_dir is a file", "run", lambda w, c: run_argv(w, c, "--save_dir", str(w / "keys.txt")), "dictionary|is a file"),
    ("save_dir's parent is a file", "run",
     lambda w, c: run_argv(w, c, "--save_dir", str(c / "f" / "out")) if (c / "f").write_text("x") else None,
     "is a file, so no folder can be made"),
    ("save_dir's parent cannot take files", "run", lambda w, c: run_argv(w, c, "--save_dir", "/proc/ocrslim-out"),
     "cannot write in /proc"),
    ("save_dir locked by a live run", "run", lambda w, c: run_argv(w, c, *save(c)), "being written by another run"),
    ("--analyze into a user's folder", "run",
     lambda w, c: run_argv(w, c, "--analyze", "quant", "--save_dir", str(user_folder(c)), "--overwrite"),
     "holds files ocrslim did not write"),
    ("eval --json onto the model file", "eval", lambda w, c: eval_argv(w, "--json", str(w / "rec_model" / "inference.pdmodel")),
     "inside the model dir"),
    ("bench --json onto the params file", "bench",
     lambda w, c: bench_argv(w, "--json", str(w / "rec_model" / "inference.pdiparams")), "inside the model dir"),
    ("eval --json onto the label file", "eval", lambda w, c: eval_argv(w, "--json", str(w / "rec" / "eval.txt")),
     "is the Eval label file"),
    ("eval --json onto a user's file", "eval", lambda w, c: eval_argv(w, "--json", str(user_folder(c) / "notes.txt")),
     "exists and is not an ocrslim result"),
    ("eval --json onto a folder", "eval", lambda w, c: eval_argv(w, "--json", str(user_folder(c))), "is a folder"),
    ("e2e --json onto the config", "eval",
     lambda w, c: ["--e2e", "-c", DET_PTQ, "--rec_config", str(w / "configs" / "rec_mobile.yaml"), "--json",
                   str(w / "configs" / "rec_mobile.yaml")], "is the config file"),
    ("bench --report into a user's folder", "bench", lambda w, c: bench_argv(w, "--report", str(user_folder(c))),
     "holds files ocrslim did not write"),
    ("bench --report into the data dir", "bench", lambda w, c: bench_argv(w, "--report", str(w / "rec")),
     "is the Eval data dir"),
    ("report --out holding its input", "report", lambda w, c: ["--out", str(w), str(w / "bench.json")],
     "holds the bench JSON"),
    # ---- numbers that are not numbers, out of range, or flags missing the flag they need ----
    ("--max_drop nan", "run", lambda w, c: run_argv(w, c, *save(c), "--max_drop", "nan"), "must be a number >= 0"),
    ("--max_drop inf", "run", lambda w, c: run_argv(w, c, *save(c), "--max_drop", "inf"), "must be a number >= 0"),
    ("--max_drop -1", "run", lambda w, c: run_argv(w, c, *save(c), "--max_drop=-1"), "must be a number >= 0"),
    ("--max_drop text", "run", lambda w, c: run_argv(w, c, *save(c), "--max_drop", "one"), "invalid float value"),
    ("--max_float without --max_drop", "run", lambda w, c: run_argv(w, c, *save(c), "--max_float", "3"),
     "--max_float only applies with --max_drop"),
    ("--sensitivity without --max_drop", "run",
     lambda w, c: run_argv(w, c, *save(c), "--sensitivity", str(w / "bench.json")), "--sensitivity only applies"),
    ("--target_backend without --max_drop", "run",
     lambda w, c: run_argv(w, c, *save(c), "--target_backend", "onnxruntime"),
     "--target_backend only applies with --max_drop"),
    ("--max_float -1", "run", lambda w, c: run_argv(w, c, *save(c), "--max_drop", "1", "--max_float=-1"),
     "must be >= 0"),
    ("--threads 0", "run", lambda w, c: run_argv(w, c, *save(c), "--threads", "0"), "--threads must be at least 1"),
    ("--analyze with --max_drop", "run", lambda w, c: run_argv(w, c, *save(c), "--analyze", "quant", "--max_drop", "1"),
     "compresses nothing"),
    ("train_iter -5", "run", lambda w, c: run_argv(w, c, *save(c), config=str(w / "configs" / "rec_mobile.yaml"),
                                                  opts=["TrainConfig.train_iter=-5"]),
     "TrainConfig.train_iter must be a whole number >= 1, not -5"),
    ("eval_iter 0", "run", lambda w, c: run_argv(w, c, *save(c), config=str(w / "configs" / "rec_mobile.yaml"),
                                                opts=["TrainConfig.eval_iter=0"]), "TrainConfig.eval_iter must be"),
    ("learning_rate .nan", "run", lambda w, c: run_argv(w, c, *save(c), config=str(w / "configs" / "rec_mobile.yaml"),
                                                       opts=["TrainConfig.learning_rate=.nan"]),
     "TrainConfig.learning_rate is nan"),
    ("learning_rate -1", "run", lambda w, c: run_argv(w, c, *save(c), config=str(w / "configs" / "rec_mobile.yaml"),
                                                     opts=["TrainConfig.learning_rate=-1.0"]), "must be > 0"),
    ("batch_nums 0", "run", lambda w, c: run_argv(w, c, *save(c), opts=["Calibration.batch_nums=0"]),
     "Calibration.batch_nums must be a whole number >= 1"),
    ("hist_percent 1.5", "run", lambda w, c: run_argv(w, c, *save(c), opts=["Calibration.hist_percent=1.5"]),
     r"hist_percent must be in \(0, 1\]"),
    ("train batch 0", "run", lambda w, c: run_argv(w, c, *save(c), opts=["Train.loader.batch_size_per_card=0"]),
     "Train.loader.batch_size_per_card must be a whole number >= 1"),
    ("Sensitivity.images 0", "run", lambda w, c: run_argv(w, c, *save(c), opts=["Sensitivity.images=0"]),
     "Sensitivity.images must be"),
    ("Sensitivity.images above Eval", "run",
     lambda w, c: run_argv(w, c, *save(c), "--max_drop", "1", opts=["Sensitivity.images=64"]), "too few for 1 subset"),
    ("flops_ratio 1.5", "run", lambda w, c: run_argv(w, c, *save(c), opts=["Prune.flops_ratio=1.5"]),
     r"Prune.flops_ratio must be in \(0, 1\)"),
    ("max_unreadable 1", "run", lambda w, c: run_argv(w, c, *save(c), opts=["Global.max_unreadable=1"]),
     r"Global.max_unreadable must be in \[0, 1\)"),
    ("seed -1", "run", lambda w, c: run_argv(w, c, *save(c), opts=["Global.seed=-1"]), "Global.seed must be"),
    ("eval batch 0", "eval", lambda w, c: eval_argv(w, opts=["Eval.loader.batch_size_per_card=0"]),
     "Eval.loader.batch_size_per_card must be a whole number >= 1"),
    ("det eval batch 2", "eval", lambda w, c: eval_argv(w, opts=["Eval.loader.batch_size_per_card=2"], kind="det"),
     "det evaluation runs one image at a time"),
    ("bench --repeat 0", "bench", lambda w, c: bench_argv(w, "--repeat", "0"), "at least 1"),
    ("bench --max_images 0", "bench", lambda w, c: bench_argv(w, "--max_images", "0"), "at least 1"),
    ("e2e --threads 0", "eval",
     lambda w, c: ["--e2e", "-c", DET_PTQ, "--rec_config", REC_PTQ, "--threads", "0"], "--threads must be at least 1"),
    ("unknown strategy", "run", lambda w, c: run_argv(w, c, *save(c), "--strategy", "magic"), "invalid choice"),
    # ---- data that gives no metric, or only one over what was left ----
    ("every Eval image missing", "eval",
     lambda w, c: eval_argv(w, opts=[f"Eval.dataset.data_dir={w / 'det'}"]), "2 of 2 Eval images could not be loaded"),
    ("every Train image missing", "run",
     lambda w, c: run_argv(w, c, *save(c), opts=[f"Train.dataset.data_dir={w / 'det'}"]),
     "2 of 2 Train images could not be loaded"),
    ("Eval data_dir not a folder", "eval", lambda w, c: eval_argv(w, opts=["Eval.dataset.data_dir=/no/such"]),
     "Eval.dataset.data_dir '/no/such' is not a folder"),
    ("Train label file missing", "run",
     lambda w, c: run_argv(w, c, *save(c), opts=["Train.dataset.label_file_list=[/no/train.txt]"]),
     r"Train label file not found: /no/train.txt .*fix Train.dataset.label_file_list"),
    ("Test label file missing", "run",
     lambda w, c: run_argv(w, c, *save(c), opts=[f"Test={{dataset: {{data_dir: {w / 'rec'}, label_file_list: [/no/t.txt]}}}}"]),
     "Test label file not found"),
    ("Train transform unknown", "run",
     lambda w, c: run_argv(w, c, *save(c), opts=["Train.dataset.transforms=[{NoSuchOp: {}}]"]),
     "Train.dataset.transforms"),
    ("det labels with no box to find", "eval",
     lambda w, c: eval_argv(w, opts=[f"Eval.dataset.label_file_list=[{dont_care_labels(w, c)}]"], kind="det"),
     "no box to find"),
    # ---- files that are not what they claim ----
    ("non-UTF-8 label file", "eval",
     lambda w, c: eval_argv(w, opts=[f"Eval.dataset.label_file_list=[{latin1(c, 'labels.txt', '0.jpg' + chr(9) + 'Caf' + chr(233))}]"]),
     r"labels.txt:1 is not UTF-8 text"),
    ("non-UTF-8 config", "eval", lambda w, c: ["-c", latin1(c, "c.yaml", "# caf" + chr(233) + "\nGlobal: {}")],
     "is not UTF-8 text"),
    ("non-UTF-8 dictionary", "eval",
     lambda w, c: eval_argv(w, opts=[f"Global.character_dict_path={latin1(c, 'keys.txt', 'a' + chr(10) + chr(233))}"]),
     "keys.txt:2 is not UTF-8 text"),
    ("missing dictionary", "eval", lambda w, c: eval_argv(w, opts=["Global.character_dict_path=/no/keys.txt"]),
     "Global.character_dict_path '/no/keys.txt': no such file"),
    ("load_predictor on a plain model dir", "load", lambda w, c: [str(w / "rec_model")], "is not a run.py output folder"),
    ("load_predictor threads 0", "load", lambda w, c: [str(w), "auto", 0], "threads must be a whole number >= 1"),
    ("load_predictor damaged settings", "load", lambda w, c: [fake_output(c, {"task": "rec"})],
     r"settings.json is damaged \(no 'precision'\)"),
    ("truncated .pdiparams", "run",
     lambda w, c: run_argv(w, c, *save(c), "--model_dir", damaged(w, c, "inference.pdiparams", cut=1)),
     "inference.pdiparams is truncated"),
    ("garbage .pdmodel", "bench",
     lambda w, c: bench_argv(w, "--model_dir", damaged(w, c, "inference.pdmodel", data=os.urandom(4000))),
     "inference.pdmodel is not a Paddle program"),
    ("the det weights with the rec program", "eval",
     lambda w, c: eval_argv(w, "--model_dir", damaged(w, c, "inference.pdiparams",
                                                      data=(w / "det_model" / "inference.pdiparams").read_bytes())),
     "does not hold this program's weights"),
    # ---- configs and transforms that do not fit the model ----
    ("keep_float names no tensor", "run", lambda w, c: run_argv(w, c, *save(c), opts=["Calibration.keep_float=[nope]"]),
     "tensor 'nope' is not in the model"),
    ("Distillation.node names no tensor", "run",
     lambda w, c: run_argv(w, c, *save(c), config=str(w / "configs" / "rec_mobile.yaml"),
                           opts=["Distillation.node=[nope]"]), "tensor 'nope' is not in the model"),
    ("Distillation.node a string", "run",
     lambda w, c: run_argv(w, c, *save(c), config=str(w / "configs" / "rec_mobile.yaml"),
                           opts=["Distillation.node=linear_170.tmp_1"]), "Distillation.node expects list"),
    ("4-bit weights", "run", lambda w, c: run_argv(w, c, *save(c), config=str(w / "configs" / "rec_mobile.yaml"),
                                                  opts=["QuantAware.weight_bits=4"]),
     "unknown config key 'QuantAware.weight_bits'"),
    ("rec transforms without a resize", "eval",
     lambda w, c: eval_argv(w, opts=["Eval.dataset.transforms=[{DecodeImage: {img_mode: BGR, channel_first: false}}]"]),
     "not the channels-first"),
    ("det Train images of many sizes in a batch", "run",
     lambda w, c: ["-c", DET_PTQ, "--model_dir", str(w / "det_model"), "--quiet", "--no_bench", *save(c), "-o",
                   f"Eval.dataset.data_dir={w / 'det'}", f"Eval.dataset.label_file_list=[{w / 'det'}/eval.txt]",
                   f"Train.dataset.data_dir={w / 'det'}", f"Train.dataset.label_file_list=[{w / 'det'}/two.txt]",
                   "Train.dataset.transforms.1={DetResizeForTest: {limit_side_len: 960, limit_type: max}}",
                   "Train.loader.batch_size_per_card=2"], "different sizes"),
    ("unknown model_type", "eval", lambda w, c: eval_argv(w, opts=["Global.model_type=cls"]), "unknown Global.model_type"),
    ("unknown device", "eval", lambda w, c: eval_argv(w, "--devices", "tpu"), "tpu"),
    ("config is a folder", "eval", lambda w, c: ["-c", str(w)], "config file not found"),
    ("no arguments", "run", lambda w, c: [], "the following arguments are required"),
]


def damaged(w, case, name, cut=0, data=None):
    """A copy of the world's rec model with one file cut short or replaced."""
    model = case / "model"
    shutil.copytree(w / "rec_model", model)
    path = model / name
    data = path.read_bytes()[:-cut] if data is None else data
    path.write_bytes(data)
    return str(model)


def fake_output(case, settings):
    os.makedirs(case / "saved" / "deploy")
    (case / "saved" / "deploy" / "settings.json").write_text(json.dumps(settings))
    return str(case / "saved")


def dont_care_labels(w, case):
    path = case / "dontcare.txt"
    with open(w / "det" / "eval.txt", encoding="utf-8") as f:
        name, label = f.readline().rstrip("\n").split("\t")
    boxes = [dict(b, transcription="###") for b in json.loads(label)]
    path.write_text(f"{name}\t{json.dumps(boxes)}\n", encoding="utf-8")
    return str(path)


def latin1(case, name, text):
    (case / name).write_bytes(text.encode("latin-1"))
    return str(case / name)


MAINS = {"run": run_mod.main, "eval": eval_cli.main, "bench": bench.main, "report": report.main,
         "load": lambda argv: load_predictor(*argv)}


class Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@pytest.fixture
def no_model_loads(monkeypatch):
    """Every way a model gets loaded fails the test: the refusals must come first."""
    def loaded(*args, **kwargs):
        raise AssertionError("a model was loaded before the bad input was refused")
    from ocrslim import model
    from ocrslim.deploy import runtime
    for module, name in ((model, "load"), (runtime, "paddle_predictor"), (runtime, "onnx_predictor"),
                         (runtime, "export_onnx")):
        monkeypatch.setattr(module, name, loaded)


@pytest.mark.parametrize("name, script, build, message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_error_line_before_any_work(world, tmp_path, capsys, no_model_loads, name, script, build,
                                                     message):
    case = tmp_path / "case"
    case.mkdir()
    argv = build(world, case)
    before = hashes(world)
    records = Records()
    logging.getLogger("ocrslim").addHandler(records)
    lock = FolderLock(str(case / "out")).acquire() if name == "save_dir locked by a live run" else None
    try:
        with pytest.raises(SystemExit) as exit_:
            run_cli(MAINS[script], argv)
    finally:
        logging.getLogger("ocrslim").removeHandler(records)
        if lock:
            lock.release()
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert exit_.value.code == 2, err
    assert len(errors) == 1 and "Traceback" not in err, err
    import re
    assert re.search(message, errors[0]), errors[0]
    assert not any(line.startswith("[1/5]") for line in records.lines), records.lines
    assert hashes(world) == before
    assert not os.path.exists(case / "out")


def test_a_target_backend_that_loses_int8_accuracy_here_is_refused_before_step_1(world, tmp_path, capsys,
                                                                                   no_model_loads, monkeypatch):
    """--max_drop --target_backend NAME: NAME must be offered for int8 on this CPU kind (here an AVX2
    CPU, where Paddle int8 rec loses accuracy), checked before the FP32 model is evaluated."""
    from ocrslim import cpu
    monkeypatch.setenv("OCRSLIM_CPU_FLAGS", "avx2 fma")
    cpu.cache_clear()
    records = Records()
    logging.getLogger("ocrslim").addHandler(records)
    try:
        with pytest.raises(SystemExit) as exit_:
            run_cli(MAINS["run"], run_argv(world, tmp_path, *save(tmp_path), "--max_drop", "1", "--target_backend",
                                           "paddle"))
    finally:
        logging.getLogger("ocrslim").removeHandler(records)
        cpu.cache_clear()
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert exit_.value.code == 2 and len(errors) == 1, errors
    assert "paddle is not offered for int8 rec on this CPU (avx2)" in errors[0], errors[0]
    assert not any(line.startswith("[1/5]") for line in records.lines), records.lines
    assert not os.path.exists(tmp_path / "out")


def test_the_attempts_are_measured_on_the_target_backend(world, tmp_path):
    """--max_drop --target_backend NAME: what run.py measures as deployed runs on NAME, not on
    auto's pick (checked on the FP32 model: the same call measures each attempt)."""
    from ocrslim.run_cli import Run, parse_args
    run = Run(parse_args(run_argv(world, tmp_path, *save(tmp_path), "--max_drop", "1", "--target_backend",
                                  "onnxruntime", opts=["Sensitivity.images=2"])))
    try:
        result, info = run.deployed(run.model_files, "fp32")
    finally:
        run.release()
    assert info["backend"] == "onnxruntime" and info["choice"] == "asked for", info
    assert result["images"] == len(run.samples) > 0 and 0 <= result["metrics"]["acc"] <= 1


# ---- what is not an error: warnings, locks, leftovers, file modes ----------------------------------

def test_a_stale_lock_is_named_and_taken_over(tmp_path, caplog_ocrslim):
    out = tmp_path / "out"
    lock_file = tmp_path / ".out.lock"
    lock_file.write_text(json.dumps({"pid": 999999, "host": "h", "since": "2026-01-01T00:00:00"}))
    lock = FolderLock(str(out)).acquire()
    try:
        assert any("is gone without finishing (pid 999999 on h" in line for line in caplog_ocrslim.lines)
        assert json.loads(lock_file.read_text())["pid"] == os.getpid()
        with pytest.raises(UserError, match=rf"being written by another run \(pid {os.getpid()}"):
            FolderLock(str(out)).acquire()
    finally:
        lock.release()
    assert not lock_file.exists()  # a clean exit leaves nothing behind
    FolderLock(str(out)).acquire().release()


def test_leftover_staging_folders_are_named_and_removed_by_overwrite(tmp_path, caplog_ocrslim):
    from ocrslim.outputs import handle_leftovers
    out = tmp_path / "out"
    left = [staging_dir(str(out)) for _ in range(2)]
    other = staging_dir(str(tmp_path / "out2"))  # another save_dir's: not touched
    handle_leftovers(str(out), remove=False)
    assert all(os.path.isdir(p) for p in left)
    assert any("2 folder(s) left by interrupted runs" in line and "--overwrite removes them" in line
               for line in caplog_ocrslim.lines)
    handle_leftovers(str(out), remove=True)
    assert not any(os.path.exists(p) for p in left) and os.path.isdir(other)


def test_published_folders_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        staging = staging_dir(str(tmp_path / "out"))
        os.makedirs(os.path.join(staging, "deploy"))
        open(os.path.join(staging, "deploy", "model.onnx"), "w").close()
        publish(staging, str(tmp_path / "out"), kind="run")
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "out").st_mode & 0o777 == 0o755
    assert os.stat(tmp_path / "out" / "deploy").st_mode & 0o777 == 0o755
    assert os.stat(tmp_path / "out" / "deploy" / "model.onnx").st_mode & 0o777 == 0o644


def test_rec_dictionary_in_another_order_is_warned_about(world, tmp_path, caplog_ocrslim):
    import random
    keys = open(world / "keys.txt", encoding="utf-8").read().splitlines()
    random.Random(0).shuffle(keys)
    (tmp_path / "shuffled.txt").write_text("\n".join(keys) + "\n", encoding="utf-8")
    out = eval_cli.main(eval_argv(world, opts=[f"Global.character_dict_path={tmp_path / 'shuffled.txt'}"]))
    assert out["metrics"]["acc"] == 0.0
    assert any("the dictionary covers 100% of the labels" in line and "same order?" in line
               for line in caplog_ocrslim.lines), caplog_ocrslim.lines


def test_labels_the_dictionary_cannot_read_are_warned_about(world, tmp_path, caplog_ocrslim):
    (tmp_path / "eval.txt").write_text("0.jpg\tHello\n1.jpg\tWorld42\u00a9\u2603\n", encoding="utf-8")
    eval_cli.main(eval_argv(world, opts=[f"Eval.dataset.label_file_list=[{tmp_path / 'eval.txt'}]"]))
    assert any("50% of the Eval labels hold characters the dictionary" in line and "'☃'" in line
               for line in caplog_ocrslim.lines), caplog_ocrslim.lines


@pytest.fixture
def caplog_ocrslim():
    records = Records()
    log = logging.getLogger("ocrslim")
    log.addHandler(records)
    old = log.level
    log.setLevel(logging.INFO)
    yield records
    log.removeHandler(records)
    log.setLevel(old)
