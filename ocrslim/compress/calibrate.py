"""Post-training calibration with Paddle's PostTrainingQuantization (what PaddleSlim's PTQ runs).

Both strategies start here: `ptq` saves the calibrated model as it is, `qat`
takes its activation thresholds as the starting scales of training.
"""
import logging

import numpy as np

from . import act_compat

log = logging.getLogger("ocrslim")

# which ops get int8 inputs and how weights are quantized, when QuantAware does not say
DEFAULT_QUANTIZE_OP_TYPES = ["conv2d", "matmul_v2"]
DEFAULT_WEIGHT_QUANTIZE_TYPE = "channel_wise_abs_max"
ALGOS = ("hist", "KL", "abs_max", "avg", "mse", "emd")


class _ArrayDataset:
    def __init__(self, arrays):
        self.arrays = arrays

    def __getitem__(self, i):
        return self.arrays[i]

    def __len__(self):
        return len(self.arrays)


def settings(config):
    """What calibration needs from a config: Calibration's keys and QuantAware's op types."""
    calib, quant = config["Calibration"], config.get("QuantAware") or {}
    return {"algo": calib["algo"], "batch_nums": calib["batch_nums"], "hist_percent": calib["hist_percent"],
            "keep_float": list(calib["keep_float"] or []),
            "quantize_op_types": list(quant.get("quantize_op_types") or DEFAULT_QUANTIZE_OP_TYPES),
            "weight_quantize_type": quant.get("weight_quantize_type") or DEFAULT_WEIGHT_QUANTIZE_TYPE}


def calibrate(model_files, feeds, calib, place, save_dir=None, thresholds=None):
    """Post-training calibration over `feeds`: {tensor name: threshold} (a weight's: per channel).

    calib: settings(config). With save_dir, the calibrated int8 model is also written there as
    inference.pdmodel / inference.pdiparams (Q/DQ ops, ONNX format, as ACT saves its models).
    Runs in its own scope so nothing leaks into ACT's programs.

    thresholds: what an earlier calibration of the same model on the same feeds returned, with
    the same or fewer layers kept float (--max_drop's attempts differ only in keep_float, and a
    tensor's threshold does not depend on which other layers are quantized). They are reused:
    without save_dir nothing runs; with it, PTQ only rebuilds the model from them (one batch,
    abs_max sampling that scale_dict then overrides, no histograms): seconds instead of minutes.
    """
    import paddle
    from paddle.static.quantization import PostTrainingQuantization
    if thresholds is not None and not save_dir:
        return dict(thresholds)
    algo = {"algo": calib["algo"], "hist_percent": calib["hist_percent"]}
    if thresholds is not None:
        feeds, algo = feeds[:1], {"algo": "abs_max", "scale_dict": dict(thresholds)}
    name = next(iter(feeds[0]))
    images = [img for feed in feeds for img in feed[name]]
    bs = len(feeds[0][name])
    prog = paddle.static.Program()
    with paddle.static.program_guard(prog):
        var = paddle.static.data(name=name, shape=[-1] + list(images[0].shape), dtype="float32")
    loader = paddle.io.DataLoader(_ArrayDataset(images), feed_list=[var], batch_size=bs,
                                  return_list=False, places=place, shuffle=False)
    scope = paddle.static.Scope()
    with paddle.static.scope_guard(scope), act_compat.histogram_sampler(histogram_uniform):
        ptq = PostTrainingQuantization(
            executor=paddle.static.Executor(place), model_dir=model_files[0],
            model_filename=model_files[1], params_filename=model_files[2],
            data_loader=loader, batch_nums=len(feeds), **algo, quantizable_op_type=calib["quantize_op_types"],
            weight_quantize_type=calib["weight_quantize_type"], onnx_format=True,
            skip_tensor_list=calib["keep_float"], scope=scope)
        ptq.quantize()
        if save_dir:
            ptq.save_quantized_model(save_dir, model_filename="inference.pdmodel",
                                     params_filename="inference.pdiparams")
        # an activation has one threshold; a weight one per channel (PTQ writes them all into the
        # model, so a reuse must give them back as they are)
        scales = {k: float(np.max(v)) if np.size(v) == 1 else [float(x) for x in np.ravel(v)]
                  for k, v in act_compat.ptq_thresholds(ptq).items()}
    act_compat.require_scales(len(scales), 1, "calibration")
    return scales


def histogram_uniform(values, edges):
    """np.histogram(values, bins=edges) for evenly spaced edges, the same counts, without a sort.

    Given an edge array, numpy sorts the data in blocks to place it (the general path); given a
    bin count and a range it computes each bin from the value and then corrects it against the
    same edges, so the counts are equal. PaddleSlim's hist calibration passes the edge array:
    in a profile of rec calibration 34 s of 130 were np.sort, and without AVX-512 numpy 1.26
    sorts with scalar code (AVX-512 machines get its SIMD sort), which fits hist calibration
    taking ~15 min on the AVX2 CPU against ~150 s on the AVX-512 one. Rec calibration on 2
    batches with numpy's AVX-512 dispatch off: 263 s with the edge array, 83 s with this.
    """
    return np.histogram(values, bins=len(edges) - 1, range=(float(edges[0]), float(edges[-1])))
