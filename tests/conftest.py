import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.chdir(ROOT)  # configs use paths relative to the repo root

import ocrslim  # noqa: E402,F401  (binds zlib before any test imports paddle)

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """Small generated det and rec sets (train and eval) for the slow end-to-end tests."""
    from ocr_data import synth
    out = str(tmp_path_factory.mktemp("data") / "tiny")
    synth.main(["--out", out, "--seed", "3", "--det_train", "8", "--det_eval", "6",
                "--rec_train", "64", "--rec_eval", "40", "--det_size", "320", "--quiet"])
    return out


@pytest.fixture(scope="session")
def compressed_det(tiny_data, tmp_path_factory):
    """run.py on det with a few steps, including step 5 (bench + report), from a config in the
    upstream example's layout (epochs: 1 is 4 steps here) plus a Test section (the tiny train
    images: reported, never chosen by); (save_dir, report)."""
    import yaml
    from helpers import upstream_det_config
    from ocrslim.config import resolve_path
    from ocrslim.run_cli import main
    tmp = tmp_path_factory.mktemp("int8")
    save = str(tmp / "det")
    config = upstream_det_config(tiny_data, resolve_path("bundled:ch_PP-OCRv4_det_infer"))
    config["Test"] = {"dataset": {"data_dir": f"{tiny_data}/det", "label_file_list": [f"{tiny_data}/det/train.txt"]}}
    with open(tmp / "det_upstream_layout.yaml", "w", encoding="utf-8") as f:
        yaml.safe_dump(config, f)
    report = main(["--save_dir", save, "--config_path", str(tmp / "det_upstream_layout.yaml"), "--quiet"])
    return save, report


@pytest.fixture(scope="session")
def compressed_rec(tiny_data, tmp_path_factory):
    """run.py on rec with a few steps, whose step 5 child is made to abort (OCRSLIM_BENCH_ABORT):
    (save_dir, report.json as published, the error run.py raised)."""
    import json
    from helpers import data_overrides
    from ocrslim.errors import StepFailed
    from ocrslim.run_cli import main
    save = str(tmp_path_factory.mktemp("int8") / "rec")
    os.environ["OCRSLIM_BENCH_ABORT"] = "1"
    try:
        with pytest.raises(StepFailed) as err:
            main(["-c", "configs/ppocrv4/rec_mobile.yaml", "--save_dir", save, "--quiet", "-o",
                  *data_overrides(tiny_data, "rec"), "Train.loader.batch_size_per_card=8",
                  "Calibration.batch_nums=2", "TrainConfig.train_iter=3", "TrainConfig.eval_iter=3"])
    finally:
        del os.environ["OCRSLIM_BENCH_ABORT"]
    with open(os.path.join(save, "report.json"), encoding="utf-8") as f:
        return save, json.load(f), str(err.value)


# PP-OCRv4 rec with its depthwise convs quantized too: they are the layers that hurt (a few
# crops of 40 on the tiny set), so the sensitivity ranking and --max_drop have something to find
REC_WITH_DEPTHWISE = ["QuantAware.quantize_op_types=[conv2d, depthwise_conv2d, matmul_v2]",
                      "Train.loader.batch_size_per_card=8", "Calibration.batch_nums=1"]


@pytest.fixture(scope="session")
def rec_sensitivity(tiny_data, tmp_path_factory):
    """run.py --analyze quant on rec, 8 crops per configuration: (save_dir, table)."""
    from helpers import data_overrides
    from ocrslim.run_cli import main
    save = str(tmp_path_factory.mktemp("sens") / "rec")
    table = main(["--analyze", "quant", "-c", "configs/ppocrv4/rec_mobile.yaml", "--save_dir", save, "--quiet",
                  "-o", *data_overrides(tiny_data, "rec"), *REC_WITH_DEPTHWISE, "Sensitivity.images=8",
                  ])
    return save, table


@pytest.fixture(scope="session")
def ptq_rec(tiny_data, rec_sensitivity, tmp_path_factory):
    """run.py --strategy ptq --max_drop 5 on rec (depthwise quantized, so the first attempt loses
    crops), ranked by the rec_sensitivity table, no step 5, the 64 train crops as a Test section:
    (save_dir, report)."""
    from helpers import data_overrides
    from ocrslim.run_cli import main
    save = str(tmp_path_factory.mktemp("int8") / "rec_ptq")
    report = main(["-c", "configs/ppocrv4/rec_mobile.yaml", "--save_dir", save, "--quiet", "--no_bench",
                   "--strategy", "ptq", "--max_drop", "5", "--sensitivity",
                   os.path.join(rec_sensitivity[0], "sensitivity.json"),
                   "-o", *data_overrides(tiny_data, "rec"), *REC_WITH_DEPTHWISE,
                   f"Test={{dataset: {{data_dir: {tiny_data}/rec, label_file_list: [{tiny_data}/rec/train.txt]}}}}"])
    return save, report


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: end-to-end runs on real models (minutes)")


# The ACT runs' fixtures, by the group of tests that share one (a run that needs another joins its
# group); `make test` runs two pytest-xdist workers, as a test process is mostly one busy core. Each
# group runs on one worker, so its run is made once; the groups go first, longest first, and every
# other test goes with the rest of its file, so a file's module fixtures are also made once.
ACT_GROUPS = {"compressed_det": "det", "pruned_qat": "prune", "prune_table": "prune", "ptq_rec": "rec_ptq",
              "rec_sensitivity": "rec_ptq", "compressed_rec": "rec"}
LONGEST_FIRST = ["det", "prune", "rec_ptq", "rec"]


def _group(item):
    """(rank, name): an ACT run's group, else the test's file (after them)."""
    for fixture, group in ACT_GROUPS.items():
        if fixture in item.fixturenames:
            return LONGEST_FIRST.index(group), group
    return len(LONGEST_FIRST), item.nodeid.split("::")[0]


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook reads the xdist_group marks
def pytest_collection_modifyitems(config, items):
    groups = {item.nodeid: _group(item) for item in items}
    items.sort(key=lambda item: groups[item.nodeid][0])  # a stable sort: files keep their order
    for item in items:
        item.add_marker(pytest.mark.xdist_group(groups[item.nodeid][1]))
