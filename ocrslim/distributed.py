"""Where a run runs: the device the user names, the card each process uses, and whether ACT
trains in fleet (collective, data-parallel) mode.

The decisions are plain functions of the launch environment and the visible GPU count, so
every combination is tested without a GPU; run.py applies them (through act_compat for ACT).
ACT 2.6 decides fleet by itself from the *visible* GPU count (`device_count() > 1`): a single
`python run.py --devices gpu` on a 4-GPU machine entered fleet mode with a world of one, and
its executor ignored the card number. Here fleet follows paddle.distributed.launch's world size.
"""
import os
import re

from .errors import UserError

DEVICES = "cpu, gpu (card 0) or gpu:N (card N)"


def parse_devices(devices):
    """'cpu' -> ('cpu', None), 'gpu' -> ('gpu', 0), 'gpu:N' -> ('gpu', N); else a one-line UserError."""
    match = re.fullmatch(r"cpu|gpu(?::(\d+))?", str(devices))
    if not match:
        raise UserError(f"unknown device {devices!r} (--devices or Global.devices): use {DEVICES}")
    if devices == "cpu":
        return "cpu", None
    return "gpu", int(match.group(1) or 0)


def rank_world(env=None):
    """(rank, world size) from paddle.distributed.launch's environment; (0, 1) without it."""
    env = os.environ if env is None else env
    return int(env.get("PADDLE_TRAINER_ID", 0)), int(env.get("PADDLE_TRAINERS_NUM", 1))


def card(devices, env=None):
    """The GPU this process uses, or None on CPU. Under paddle.distributed.launch each process
    must take the card launch gave it (FLAGS_selected_gpus), whatever gpu:N says."""
    kind, number = parse_devices(devices)
    if kind == "cpu":
        return None
    selected = (os.environ if env is None else env).get("FLAGS_selected_gpus", "").strip()
    return int(selected.split(",")[0]) if selected else number


def cpu_launch_refusal(world):
    """Why several processes on CPU are refused, and what to do instead (two lines)."""
    return (f"run.py was launched as {world} processes on CPU: ACT trains data-parallel only on GPUs (Paddle "
            f"2.6's collective communicator does not start on CPU), so the {world} processes would train "
            "unsynchronised copies; run one process instead (python run.py ..., without "
            "paddle.distributed.launch): Paddle's CPU kernels use the cores through threads within it\n"
            "  several CPU machines are not supported either: ACT 2.6 trains in collective mode only "
            "(it has no parameter-server mode); compress on one machine")


def plan(world, visible, devices, env=None):
    """{'fleet', 'card'}: whether ACT trains in fleet mode, and the GPU of this process (None on CPU).

    fleet only when launched with more than one process on GPUs, however many GPUs are
    visible; several processes on CPU are refused (see cpu_launch_refusal).
    """
    kind, _ = parse_devices(devices)
    if kind == "cpu":
        if world > 1:
            raise UserError(cpu_launch_refusal(world))
        return {"fleet": False, "card": None}
    gpu = card(devices, env)
    if visible < 1:
        raise UserError(f"--devices {devices}: paddle sees no GPU (a CPU-only paddlepaddle, or CUDA_VISIBLE_DEVICES "
                        "hides them); install paddlepaddle-gpu (see docs/install.md) or use --devices cpu")
    if gpu >= visible:
        raise UserError(f"--devices {devices}: there is no card {gpu}, paddle sees {visible} GPU(s): cards 0 to "
                        f"{visible - 1} (numbered within CUDA_VISIBLE_DEVICES when it is set)")
    return {"fleet": world > 1, "card": gpu}


def visible_gpus():
    """How many GPUs paddle sees (0 with a CPU-only paddle)."""
    import paddle
    return paddle.device.cuda.device_count()


def check_fleet():
    """Fleet training in Paddle 2.6 reads every DistributedStrategy field through
    FieldDescriptor.label, which protobuf 7 no longer has: ACT would fail at its first
    distributed optimizer, minutes in. Fail here instead, with the fix."""
    import google.protobuf
    from paddle.distributed import fleet
    try:
        fleet.DistributedStrategy().sharding_configs
    except AttributeError as err:
        raise UserError(f"training on several cards needs protobuf<7: Paddle 2.6's DistributedStrategy fails with "
                        f"protobuf {google.protobuf.__version__} ({err}); pip install 'protobuf<7'")
