"""Many cards, many machines: every decision run.py takes, tested on the CPU (no GPU, no ACT run).

What this cannot show: that fleet training on real GPUs synchronises, or that a card is
really used; `make gpu-check` is the prepared check for that, and it has not run here."""
import itertools
import os
import subprocess
import sys

import pytest

from ocrslim import distributed
from ocrslim.compress import act_compat, qat
from ocrslim.distributed import card, parse_devices, plan, rank_world
from ocrslim.errors import UserError, run_cli
from ocrslim.run_cli import main, parse_args

from helpers import make_rec_set

REC = "configs/ppocrv4/rec_mobile.yaml"
# what paddle.distributed.launch sets for the second of two processes (controllers/collective.py)
LAUNCH_RANK1 = {"PADDLE_TRAINER_ID": "1", "PADDLE_TRAINERS_NUM": "2",
                "PADDLE_TRAINER_ENDPOINTS": "10.0.0.1:6170,10.0.0.2:6170", "PADDLE_CURRENT_ENDPOINT": "10.0.0.2:6170",
                "FLAGS_selected_gpus": "1"}


def test_devices_values():
    assert parse_devices("cpu") == ("cpu", None)
    assert parse_devices("gpu") == ("gpu", 0)
    assert parse_devices("gpu:1") == ("gpu", 1) and parse_devices("gpu:12") == ("gpu", 12)
    for bad in ("gpu:", "gpu:x", "gpu:-1", "cuda", "GPU", "cpu:0", "gpu:1,2", "", None):
        with pytest.raises(UserError) as err:
            parse_devices(bad)
        assert "\n" not in str(err.value) and "use cpu, gpu (card 0) or gpu:N (card N)" in str(err.value)


# (world size, visible GPUs, devices, FLAGS_selected_gpus) -> (fleet, card), or the refusal
CASES = [
    ((1, 0, "cpu", None), (False, None)),
    ((1, 4, "cpu", None), (False, None)),          # CPU on a GPU machine
    ((2, 0, "cpu", None), "launched as 2 processes on CPU"),
    ((4, 4, "cpu", None), "launched as 4 processes on CPU"),
    ((1, 1, "gpu", None), (False, 0)),
    ((1, 4, "gpu", None), (False, 0)),             # ACT 2.6 alone turns fleet on here (4 visible)
    ((1, 4, "gpu:2", None), (False, 2)),           # one card of many, nothing exported
    ((1, 4, "gpu", "0"), (False, 0)),              # launch --gpus 0: one process
    ((1, 4, "gpu", "3"), (False, 3)),              # launch --gpus 3: launch's card
    ((2, 4, "gpu", "1"), (True, 1)),
    ((2, 4, "gpu:0", "1"), (True, 1)),             # under launch its card wins over gpu:N
    ((4, 4, "gpu", "3"), (True, 3)),
    ((8, 4, "gpu", "2"), (True, 2)),               # two machines of 4 cards: rank 6 sees card 2
    ((1, 0, "gpu", None), "paddle sees no GPU"),
    ((1, 4, "gpu:4", None), "there is no card 4, paddle sees 4 GPU"),
    ((1, 1, "gpu:1", None), "there is no card 1, paddle sees 1 GPU"),
]


@pytest.mark.parametrize("given,expected", CASES)
def test_fleet_and_card(given, expected):
    world, visible, devices, selected = given
    env = {} if selected is None else {"FLAGS_selected_gpus": selected}
    if isinstance(expected, str):
        with pytest.raises(UserError, match=expected):
            plan(world, visible, devices, env)
    else:
        assert plan(world, visible, devices, env) == {"fleet": expected[0], "card": expected[1]}


def test_fleet_only_when_launched_on_gpus_for_every_combination():
    """Fleet is on exactly when several processes train on GPUs: never from the visible count alone."""
    for world, visible, devices, selected in itertools.product(
            (1, 2, 4, 8), (0, 1, 2, 4, 8), ("cpu", "gpu", "gpu:1", "gpu:3"), (None, "0", "3")):
        env = {} if selected is None else {"FLAGS_selected_gpus": selected}
        try:
            got = plan(world, visible, devices, env)
        except UserError:
            gpu = card(devices, env)
            assert (devices == "cpu" and world > 1) or visible == 0 or gpu >= visible
            continue
        assert got["fleet"] == (world > 1 and devices != "cpu")
        expected_card = None if devices == "cpu" else int(selected) if selected else parse_devices(devices)[1]
        assert got["card"] == expected_card


def test_rank_world_and_card_from_the_launch_environment(monkeypatch):
    for name in LAUNCH_RANK1:
        monkeypatch.delenv(name, raising=False)
    assert rank_world() == (0, 1) and card("gpu") == 0 and card("gpu:3") == 3 and card("cpu") is None
    for name, value in LAUNCH_RANK1.items():
        monkeypatch.setenv(name, value)
    assert rank_world() == (1, 2)
    assert card("gpu") == 1 and card("gpu:3") == 1 and card("cpu") is None


def _argv(tmp_path, *extra):
    root = str(tmp_path / "rec")
    label = make_rec_set(root)
    data = [f"Eval.dataset.data_dir={root}", f"Eval.dataset.label_file_list=[{label}]",
            f"Train.dataset.data_dir={root}", f"Train.dataset.label_file_list=[{label}]"]
    return ["-c", REC, "--save_dir", str(tmp_path / "out"), "--quiet", "-o", *data, *extra]


def test_launch_on_cpu_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PADDLE_TRAINER_ID", "0")
    monkeypatch.setenv("PADDLE_TRAINERS_NUM", "2")
    # a label file that does not exist: the refusal comes before anything is read
    argv = _argv(tmp_path) + ["Eval.dataset.label_file_list=[no/such/eval.txt]"]
    with pytest.raises(SystemExit) as exit_:
        run_cli(main, argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    first, second = err.rstrip("\n").split("\n")
    assert first.startswith("error: run.py was launched as 2 processes on CPU: ACT trains data-parallel only "
                            "on GPUs") and "run one process instead (python run.py" in first and "threads" in first
    assert second.startswith("  several CPU machines are not supported")
    assert not (tmp_path / "out").exists()


def test_devices_flag_takes_a_card_and_bad_values_fail_in_one_line(tmp_path):
    from ocrslim import eval_cli
    from ocrslim.deploy import bench
    from ocrslim.run_cli import load_config
    args = parse_args(["-c", REC, "--save_dir", "x", "--devices", "gpu:1"])
    assert args.devices == "gpu:1" and load_config(args)["Global"]["devices"] == "gpu:1"
    assert eval_cli.parse_args(["-c", REC, "--devices", "gpu:1"]).devices == "gpu:1"
    for run in (lambda: main(_argv(tmp_path, "--devices", "gpu:x")),
                lambda: main(_argv(tmp_path, "Global.devices=tpu")),
                lambda: eval_cli.main(["-c", REC, "--devices", "cuda:0"]),
                lambda: bench.main(["-c", REC, "--devices", "gpu0"])):
        with pytest.raises(UserError, match="use cpu, gpu \\(card 0\\) or gpu:N") as err:
            run()
        assert "\n" not in str(err.value)
    # this machine's paddle is CPU-only: a card is refused before any work, in one line
    with pytest.raises(UserError, match="--devices gpu:1: paddle sees no GPU") as err:
        main(_argv(tmp_path) + ["--devices", "gpu:1"])
    assert "\n" not in str(err.value) and not (tmp_path / "out").exists()


def test_act_decides_fleet_and_place_from_our_plan():
    """act_hooks replaces ACT's _prepare_envs (visible GPUs > 1 means fleet) with our decision and place."""
    import paddle
    import paddleslim.auto_compression.compressor as act
    original = act.AutoCompression._prepare_envs
    for fleet in (False, True):
        with qat.act_hooks(set(), {}, 0.9, paddle.CPUPlace(), fleet=fleet):
            exe, place, got = act.AutoCompression._prepare_envs(None)
        assert isinstance(exe, paddle.static.Executor) and isinstance(place, paddle.CPUPlace) and got is fleet
    assert act.AutoCompression._prepare_envs is original
    assert ("paddleslim.auto_compression.compressor", "AutoCompression._prepare_envs", ("self",)) in act_compat.SIGNATURES


def test_a_changed_act_source_line_is_refused_at_start_up():
    module = "paddleslim.auto_compression.compressor"
    with pytest.raises(UserError, match="AutoCompression.__init__ no longer holds 'self.fleet = True'"):
        act_compat.check((), ((module, "AutoCompression.__init__", "self.fleet = True"),))


def test_rank1_act_hook_writes_no_snapshot(tmp_path):
    """On rank 1, step 0's calibrated snapshot is not written (only rank 0 evaluates and saves);
    scales are still injected and ACT's own training still runs."""
    import paddle
    import paddleslim.auto_compression.compressor as act
    calls = []

    class FakeACT:
        tmp_dir = str(tmp_path)
        _exe = None

        def eval_function(self, *args):
            return -1.0  # strategies.act_eval on rank != 0

    info = type("Info", (), {"program": paddle.static.Program(), "feed_target_names": [], "fetch_targets": []})()
    original = act.AutoCompression._start_train
    act.AutoCompression._start_train = lambda self, *args: calls.append(args) or args[1]
    try:
        with qat.act_hooks(set(), {}, 0.9, paddle.CPUPlace(), rank=1) as choice:
            act.AutoCompression._start_train(FakeACT(), info, info, {}, None)
    finally:
        act.AutoCompression._start_train = original
    assert len(calls) == 1 and choice == {} and os.listdir(tmp_path) == []


def test_nonzero_rank_of_a_gpu_launch_writes_nothing(tiny_data, tmp_path, monkeypatch):
    """Rank 1 of `launch --gpus 0,1` (its environment, a faked second GPU, the model on the CPU):
    fleet on, card 1, and ACT's save_dir a private throwaway folder outside save_dir's parent,
    gone afterwards. Step 2 is replaced by one that writes into the folder it is given, as ACT
    does (its temp dir and best_model land there): what is tested is where run.py lets a rank
    write, not ACT's own training."""
    import paddle
    from ocrslim import model as mdl
    from ocrslim.compress import strategies
    from helpers import data_overrides
    seen = []

    def act_like(self, run):
        seen.append((run.staging, dict(run.device)))
        os.makedirs(os.path.join(run.staging, "tmp_act"))
        open(os.path.join(run.staging, "tmp_act", "best_model.pdparams"), "w").close()
        return {}
    for name, value in LAUNCH_RANK1.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(strategies.Qat, "compress", act_like)
    monkeypatch.setattr(distributed, "visible_gpus", lambda: 2)
    monkeypatch.setattr(distributed, "check_fleet", lambda: None)
    monkeypatch.setattr(mdl, "place", lambda devices: paddle.CPUPlace())
    save = tmp_path / "rec"
    report = main(["-c", REC, "--save_dir", str(save), "--quiet", "--no_bench", "--devices", "gpu", "-o",
                   *data_overrides(tiny_data, "rec")])
    (staging, device), = seen
    assert report == {} and device == {"fleet": True, "card": 1}
    assert "ocrslim-rank1-" in staging and not staging.startswith(str(tmp_path)) and not os.path.exists(staging)
    assert os.listdir(tmp_path) == []  # no save_dir, no .rec.partial-* staging folder


def test_check_fleet_names_the_protobuf_fix():
    """Paddle 2.6's fleet reads FieldDescriptor.label, which protobuf 7 lacks: refused in one line."""
    import google.protobuf
    if int(google.protobuf.__version__.split(".")[0]) >= 7:
        with pytest.raises(UserError, match=r"needs protobuf<7.*pip install 'protobuf<7'") as err:
            distributed.check_fleet()
        assert "\n" not in str(err.value)
    else:
        distributed.check_fleet()


PROBE = """
import paddle
from paddle.distributed import fleet
paddle.enable_static()
for collective in (False, True):
    fleet.init(is_collective=True) if collective else fleet.init()
    role = fleet.fleet._role_maker
    print(collective, role._is_non_distributed(), role._worker_num())
"""


def test_upstream_fleet_init_change_would_lose_the_second_worker():
    """Why act_compat keeps ACT 2.6's fleet.init(is_collective=True) (PaddleSlim#1848 made it
    fleet.init()): under launch's environment for 2 processes, fleet.init() makes a
    non-distributed world of 1 worker (no all-reduce would be inserted), the collective role 2."""
    env = {**os.environ, **LAUNCH_RANK1, "PADDLE_TRAINER_ID": "0", "PADDLE_CURRENT_ENDPOINT": "10.0.0.1:6170",
           "FLAGS_selected_gpus": "0", "GLOG_minloglevel": "2"}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=300)
    lines = [line for line in out.stdout.splitlines() if line.startswith(("False ", "True "))]
    assert lines == ["False True 1", "True False 2"], out.stdout + out.stderr
