"""run.py: validation, refusals and distillation-node discovery (fast, no training)."""
import os
import shutil

import numpy as np
import pytest

from ocrslim.compress import calibrate, qat, strategies
from ocrslim import model as mdl
from ocrslim.config import resolve_path
from ocrslim.errors import UserError
from ocrslim.outputs import check_save_dir, publish, staging_dir
from ocrslim.run_cli import main

from helpers import data_overrides, make_rec_set

DET = "configs/ppocrv4/det_mobile.yaml"
REC = "configs/ppocrv4/rec_mobile.yaml"


def _program(name):
    exe, program, feeds, fetches = mdl.load({"model_dir": resolve_path(f"bundled:{name}")})
    return program, fetches[0].name


def test_distill_node_is_input_of_final_activation():
    program, fetch = _program("ch_PP-OCRv4_rec_infer")
    assert qat.find_distill_node(program, fetch) == "linear_170.tmp_1"  # pre-softmax logits
    program, fetch = _program("ch_PP-OCRv4_det_infer")
    node = qat.find_distill_node(program, fetch)
    producer = [op for op in program.global_block().ops if node in op.input_arg_names]
    assert producer[-1].type == "sigmoid"


def test_missing_node_lists_candidates():
    program, _ = _program("ch_PP-OCRv4_rec_infer")
    with pytest.raises(UserError, match="'no_such_tensor' is not in the model; candidates.*linear_170.tmp_1"):
        qat.check_nodes(program, ["no_such_tensor"])


def test_act_config_scales_lr_and_steps_with_cards():
    config = {"QuantAware": {}, "Distillation": {"loss": "l2"},
              "TrainConfig": {"train_iter": 100, "eval_iter": 50,
                              "learning_rate": {"type": "CosineAnnealingDecay", "learning_rate": 1e-5, "T_max": 100}}}
    one = qat.act_config(config, "n", world=1)
    four = qat.act_config(config, "n", world=4)
    assert one["TrainConfig"]["train_iter"] == 100 and four["TrainConfig"]["train_iter"] == 25
    assert four["TrainConfig"]["learning_rate"]["learning_rate"] == pytest.approx(4e-5)
    assert four["TrainConfig"]["learning_rate"]["T_max"] == 25 and four["TrainConfig"]["eval_iter"] == 12
    assert four["Distillation"]["node"] == ["n"]
    assert config["TrainConfig"]["train_iter"] == 100  # caller's config untouched


def test_save_dir_refusals(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    inputs = [("model dir", str(model))]
    with pytest.raises(UserError, match="inside the model dir"):
        check_save_dir(str(model / "out"), inputs)
    with pytest.raises(UserError, match="is the model dir"):
        check_save_dir(str(model), inputs)
    with pytest.raises(UserError, match="holds the model dir"):
        check_save_dir(str(tmp_path), inputs, overwrite=True)
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("user data")
    for overwrite in (False, True):  # never the user's own folder, even with --overwrite
        with pytest.raises(UserError, match="holds files ocrslim did not write"):
            check_save_dir(str(full), inputs, overwrite)
    ours = tmp_path / "ours"
    staging = staging_dir(str(ours))
    open(os.path.join(staging, "report.json"), "w").close()
    publish(staging, str(ours), kind="run")
    with pytest.raises(UserError, match="earlier ocrslim result.*--overwrite"):
        check_save_dir(str(ours), inputs)
    check_save_dir(str(ours), inputs, overwrite=True)
    (ours / "notes.txt").write_text("mine")  # added later by the user: --overwrite would lose it
    with pytest.raises(UserError, match="notes.txt in it was not written by ocrslim"):
        check_save_dir(str(ours), inputs, overwrite=True)
    check_save_dir(str(tmp_path / "new"), inputs)


def test_publish_replaces_only_when_complete(tmp_path):
    save = tmp_path / "out"
    save.mkdir()
    (save / "old.txt").write_text("old")
    staging = staging_dir(str(save))
    assert os.path.dirname(staging) == str(tmp_path) and os.path.basename(staging).startswith(".out.partial-")
    open(os.path.join(staging, "inference.pdmodel"), "w").close()
    publish(staging, str(save), kind="run")
    assert sorted(os.listdir(save)) == [".ocrslim.json", "inference.pdmodel"] and not os.path.exists(staging)


def _argv(tmp_path, save_dir, *extra):
    root = str(tmp_path / "rec")
    label = make_rec_set(root)
    data = [f"Eval.dataset.data_dir={root}", f"Eval.dataset.label_file_list=[{label}]",
            f"Train.dataset.data_dir={root}", f"Train.dataset.label_file_list=[{label}]"]
    return ["-c", REC, "--save_dir", str(save_dir), "--quiet", "-o", *data, *extra]


def test_run_refuses_before_heavy_work(tmp_path):
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("x")
    with pytest.raises(UserError, match="holds files ocrslim did not write"):
        main(_argv(tmp_path, full))
    model = tmp_path / "model"
    shutil.copytree(resolve_path("bundled:ch_PP-OCRv4_rec_infer"), model)
    with pytest.raises(UserError, match="inside the model dir"):
        main(["--model_dir", str(model)] + _argv(tmp_path, model / "int8"))
    with pytest.raises(UserError, match="QuantAware.use_pcat"):
        main(_argv(tmp_path, tmp_path / "o1", "QuantAware.use_pcat=false"))
    with pytest.raises(UserError, match="'nope' is not in the model"):
        main(_argv(tmp_path, tmp_path / "o2", "Distillation.node=[nope]", "TrainConfig.train_iter=1"))
    assert not os.path.exists(tmp_path / "o1") and not os.path.exists(tmp_path / "o2")


def test_unknown_act_key_in_yaml_is_refused(tmp_path):
    import yaml
    config = yaml.safe_load(open(REC))
    config["TrainConfig"]["epoch"] = 3  # ACT's key is 'epochs'
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    argv = _argv(tmp_path, tmp_path / "o")
    argv[1] = str(path)
    with pytest.raises(UserError, match="unknown key TrainConfig.epoch;.*epochs"):
        main(argv)


def test_bad_hist_percent_is_refused(tmp_path):
    argv = _argv(tmp_path, tmp_path / "o") + ["-o", "Calibration.hist_percent=1.5"]
    with pytest.raises(UserError, match=r"Calibration.hist_percent must be in \(0, 1\]"):
        main(argv)


def test_every_compression_config_has_valid_act_keys():
    import glob
    from ocrslim import config as cfg
    for path in glob.glob("configs/**/*.yaml", recursive=True):
        config = cfg.load_config(path, defaults=cfg.COMPRESS_DEFAULTS)
        if config["TrainConfig"]:
            strategy = strategies.get_strategy(config)
            strategy.check(config)
            if strategy.name != "prune":  # every strategy that quantizes: PACT zeroes v4 det
                assert config["QuantAware"].get("use_pact") is False, path
            assert config["Train"]["dataset"]["label_file_list"][0].split("/")[-2] == config["Global"]["model_type"], path


def test_uniform_histogram_counts_equal_numpys_edge_histogram():
    """hist calibration's histogram without np.sort gives numpy's own counts, edges included."""
    import numpy as np
    rng = np.random.RandomState(0)
    for values in (np.abs(rng.randn(100000).astype("float32")) * 3, np.abs(rng.standard_cauchy(50000)),
                   np.zeros(1000, "float32")):
        _, edges = np.histogram(values, bins=2048, range=(0.0, float(values.max()) or 1.0))
        values = np.concatenate([values, edges[::97].astype(values.dtype)])  # values exactly on edges
        expected, _ = np.histogram(values, bins=edges)
        got, got_edges = calibrate.histogram_uniform(values, edges)
        assert (got == expected).all() and np.allclose(got_edges, edges)


def test_choose_keeps_calibration_when_training_made_it_worse():
    from ocrslim.tasks import TASKS
    rec = TASKS["rec"]

    def choose(cal, trained):
        _, chosen, why = strategies.Qat().choose(rec, {"calibrated": {"metrics": {"acc": cal}},
                                                       "trained": {"metrics": {"acc": trained}}}, None)
        return chosen, why
    worse = choose(0.80, 0.79)
    assert worse[0] == "calibrated" and "0.8000" in worse[1] and "domain gap" in worse[1]
    assert choose(0.80, 0.80)[0] == "trained"
    assert choose(0.70, 0.80)[0] == "trained"


def test_run_reports_both_candidates_and_why_calibration_was_kept(tiny_data, tmp_path, monkeypatch, capsys):
    """Step 2 is replaced by one that saves a model and says that training ended below its
    calibrated start (as qat.act_hooks reports it): run.py must say so and why, report both
    candidates with their drops, and evaluate what was saved, with no ACT run."""
    fp32 = resolve_path("bundled:ch_PP-OCRv4_rec_infer")

    def result(acc):
        correct = round(acc * 40)
        return {"metrics": {"acc": acc}, "per_item": [1] * correct + [0] * (40 - correct), "seconds": 1.0,
                "images": 40}

    def fake_step2(self, run):
        for name in ("inference.pdmodel", "inference.pdiparams"):
            shutil.copy(os.path.join(fp32, name), os.path.join(run.staging, name))
        return {"calibrated": result(0.9), "trained": result(0.5), "kept": "calibrated"}
    monkeypatch.setattr(strategies.Qat, "compress", fake_step2)
    save = tmp_path / "rec"
    report = main(["-c", "configs/ppocrv4/rec_mobile.yaml", "--save_dir", str(save), "--quiet", "--no_bench",
                   "-o", *data_overrides(tiny_data, "rec")])
    assert report["candidates"] == {"calibrated": {"acc": 0.9}, "trained": {"acc": 0.5}}
    assert report["chosen"] == "calibrated" and "domain gap" in report["chosen_why"]
    assert report["drop"]["trained"]["drop"] == round(report["baseline"]["acc"] - 0.5, 4)
    assert report["compressed"]["acc"] == report["baseline"]["acc"]  # what was saved is what step 3 measured
    out = capsys.readouterr().out
    assert "int8 calibrated (in training)" in out and "int8 trained (in training)" in out and "int8 saved" in out


def test_act_hook_saves_the_calibrated_state_when_training_ends_below_it(tmp_path):
    """qat.act_hooks measures step 0 and, when ACT's best trained metric is lower, puts the
    step-0 weights where ACT's _save_model loads its best model from."""
    import paddle
    import paddleslim.auto_compression.compressor as act
    from ocrslim.deploy.paddle_graph import static_mode

    class FakeACT:
        tmp_dir = str(tmp_path)
        _exe = None

        def __init__(self, metrics):
            self.metrics = iter(metrics)

        def eval_function(self, *args):
            return next(self.metrics)

    def set_weights(value):
        for var in prog.list_vars():
            if var.persistable:
                paddle.static.global_scope().var(var.name).get_tensor().set(np.full(var.shape, value, "float32"),
                                                                             paddle.CPUPlace())

    def fake_start_train(self, train_info, test_info, strategy, train_config):
        set_weights(2.0)  # training moved the weights
        self.final_metric = self.eval_function()
        paddle.static.save(test_info.program, os.path.join(self.tmp_dir, "best_model"))
        return test_info

    with static_mode():
        prog = paddle.static.Program()
        with paddle.static.program_guard(prog, paddle.static.Program()):
            paddle.static.nn.fc(paddle.static.data("x", [1, 2], "float32"), 2)
        info = type("Info", (), {"program": prog, "feed_target_names": ["x"], "fetch_targets": []})()
        original = act.AutoCompression._start_train
        act.AutoCompression._start_train = fake_start_train
        try:
            scope = paddle.static.Scope()
            with paddle.static.scope_guard(scope):
                for metrics, kept in (([0.9, 0.5], "calibrated"), ([0.5, 0.5], "trained"), ([0.5, 0.7], "trained")):
                    set_weights(1.0)  # the calibrated start
                    with qat.act_hooks(set(), {}, 0.9, paddle.CPUPlace()) as choice:
                        fake = FakeACT(metrics)
                        act.AutoCompression._start_train(fake, info, info, {}, None)
                    assert choice == {"calibrated": metrics[0], "trained": metrics[1], "kept": kept}
                    assert fake.final_metric == max(metrics)
                    # what ACT's _save_model will load: the calibrated start, or the trained weights
                    paddle.static.load(prog, os.path.join(tmp_path, "best_model"))
                    weight = [v for v in prog.list_vars() if v.persistable][0].name
                    got = np.array(scope.find_var(weight).get_tensor())
                    assert (got == (1.0 if kept == "calibrated" else 2.0)).all(), (metrics, got)
                    assert not [p for p in os.listdir(tmp_path) if p.startswith("ocrslim_calibrated")]
                    for p in os.listdir(tmp_path):
                        os.remove(os.path.join(tmp_path, p))
        finally:
            act.AutoCompression._start_train = original
    assert act.AutoCompression._start_train is original


def test_training_keeps_batch_norm_running_statistics():
    """QAT runs BN in training mode; with momentum 1 its running mean and variance stay the
    model's (they drifted 4-30x on real det images and took dev hmean from 0.356 to 0.144)."""
    import numpy as np
    import paddle
    from ocrslim.deploy.paddle_graph import static_mode
    with static_mode():
        main_prog, start = paddle.static.Program(), paddle.static.Program()
        with paddle.static.program_guard(main_prog, start):
            x = paddle.static.data("x", [4, 3, 8, 8], "float32")
            y = paddle.static.nn.batch_norm(paddle.static.nn.conv2d(x, 4, 3), is_test=False)
            loss = paddle.mean(y * y)
            paddle.optimizer.Adam(1e-3).minimize(loss)
        qat._prepare_student(main_prog, keep_float=[])
        bn = [op for op in main_prog.global_block().ops if op.type == "batch_norm"][0]
        assert bn.attr("momentum") == 1.0
        scope = paddle.static.Scope()
        with paddle.static.scope_guard(scope):
            exe = paddle.static.Executor(paddle.CPUPlace())
            exe.run(start)
            stats = [np.array(scope.find_var(bn.input(k)[0]).get_tensor()).copy() for k in ("Mean", "Variance")]
            for _ in range(3):
                out, = exe.run(main_prog, feed={"x": np.random.rand(4, 3, 8, 8).astype("float32") * 5},
                               fetch_list=[loss])
            assert np.isfinite(out)
            for k, before in zip(("Mean", "Variance"), stats):
                assert np.array_equal(np.array(scope.find_var(bn.input(k)[0]).get_tensor()), before), k
