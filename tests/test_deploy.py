"""deploy.optimize rewrites a program for Paddle Inference without changing what it computes."""
import os

import numpy as np
import pytest

from ocrslim.deploy import paddle_passes as deploy
from ocrslim.deploy import runtime
from ocrslim.config import load_config, resolve_path

DET = "configs/ppocrv4/det_mobile.yaml"
REC = "configs/ppocrv4/rec_mobile.yaml"


def _images(config_path, root, n):
    from ocrslim.data import Samples
    config = load_config(config_path)
    task = "det" if "det" in config_path else "rec"
    samples = Samples(root, [f"{root}/eval.txt"], config["Eval"]["dataset"]["transforms"], task)
    return [samples.load(i)["image"][None].astype("float32") for i in range(n)]


def _read(model_dir):
    with open(os.path.join(model_dir, "inference.pdmodel"), "rb") as f, \
            open(os.path.join(model_dir, "inference.pdiparams"), "rb") as g:
        return f.read(), g.read()


def _write(model_dir, program, params):
    os.makedirs(model_dir)
    for name, data in (("inference.pdmodel", program), ("inference.pdiparams", params)):
        with open(os.path.join(model_dir, name), "wb") as f:
            f.write(data)


@pytest.mark.parametrize("config_path, bundled, expected", [
    # PP-OCRv4 det: 28 conv affines fold, 24 post-activation affines merge, 10 of them then move
    # into the 1x1 conv they feed (in float every one qualifies), the neck's 8 residual SE blocks
    # lose their add, the DB head's pair of transposed convs becomes 1x1 convs + pixel_shuffle;
    # rec has the same backbone blocks and SE blocks without the residual
    (DET, "bundled:ch_PP-OCRv4_det_infer", {"fold_affine": 28, "merge_affine": 24, "deconv_pairs": 1,
                                            "se_residual": 8, "affine_into_pointwise": 10}),
    (REC, "bundled:ch_PP-OCRv4_rec_infer", {"deconv_pairs": 0, "se_residual": 0, "affine_into_pointwise": 12}),
])
def test_rewrites_keep_the_fp32_outputs(config_path, bundled, expected, tiny_data, tmp_path):
    """On the FP32 model there is no quantization noise, so the rewritten program must give the
    original outputs up to float rounding."""
    model_dir = resolve_path(bundled)
    program, params, counts = deploy.optimize(*_read(model_dir))
    for key, value in expected.items():
        assert counts[key] == value, counts
    assert counts["fold_affine"] > 0 and counts["merge_affine"] > 0 and counts["strip_observers"] == 0
    _write(tmp_path / "opt", program, params)
    task = "det" if config_path == DET else "rec"
    images = _images(config_path, f"{tiny_data}/{task}", 3)
    before = runtime.paddle_predictor((model_dir, "inference.pdmodel", "inference.pdiparams"))[0]
    after = runtime.paddle_predictor((str(tmp_path / "opt"), "inference.pdmodel", "inference.pdiparams"))[0]
    for x in images:
        a, b = before(x)[0], after(x)[0]
        assert a.shape == b.shape
        assert a.max() > 0.5  # real text in the image: a map of zeros would prove nothing
        assert np.abs(a - b).max() < 1e-4, np.abs(a - b).max()


def test_model_files_are_not_touched_and_bad_patterns_are_left_alone(tmp_path):
    """optimize works on bytes; a program without the patterns comes back with zero counts."""
    import paddle
    paddle.enable_static()
    main, startup = paddle.static.Program(), paddle.static.Program()
    with paddle.static.program_guard(main, startup):
        x = paddle.static.data("x", [1, 3, 8, 8], "float32")
        y = paddle.nn.functional.relu(paddle.static.nn.conv2d(x, 4, 3))
        z = y * 2.0 + 1.0  # `scale` ops already, not scalar parameters
    exe = paddle.static.Executor(paddle.CPUPlace())
    exe.run(startup)
    paddle.static.save_inference_model(str(tmp_path / "m" / "inference"), [x], [z], exe, program=main)
    before = _read(tmp_path / "m")
    program, params, counts = deploy.optimize(*before)
    assert set(counts.values()) == {0}, counts
    assert _read(tmp_path / "m") == before
    paddle.disable_static()


def test_cli_writes_a_model_paddle_inference_loads_and_refuses_unsafe_dirs(tiny_data, tmp_path):
    from ocrslim.errors import UserError
    model_dir = resolve_path("bundled:ch_PP-OCRv4_det_infer")
    before = _read(model_dir)
    out = tmp_path / "deploy"
    counts = deploy.main([model_dir, str(out)])
    assert counts["deconv_pairs"] == 1 and sorted(os.listdir(out)) == [".ocrslim.json", "inference.pdiparams", "inference.pdmodel"]
    assert _read(model_dir) == before
    x = _images(DET, f"{tiny_data}/det", 1)[0]
    expected = runtime.paddle_predictor((model_dir, "inference.pdmodel", "inference.pdiparams"))[0](x)[0]
    got = runtime.paddle_predictor((str(out), "inference.pdmodel", "inference.pdiparams"))[0](x)[0]
    assert np.abs(expected - got).max() < 1e-4
    # bench.py and eval.py apply the rewrites again to a model written here: nothing is left to do
    again = deploy.optimize(*_read(out))[2]
    assert set(again.values()) == {0}, again
    for argv, message in (([model_dir, str(out)], "--overwrite"),
                          ([model_dir, os.path.join(model_dir, "sub")], "inside the model dir"),
                          ([str(tmp_path / "nothing"), str(tmp_path / "o2")], "not found")):
        with pytest.raises(UserError, match=message):
            deploy.main(argv)
    assert deploy.main([model_dir, str(out), "--overwrite"]) == counts
