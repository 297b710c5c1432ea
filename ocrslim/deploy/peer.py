"""The peer baseline: what a user would try instead of us.

Export the FP32 Paddle model to ONNX with paddle2onnx and quantize it with
onnxruntime's post-training static quantization, calibrated on the same
train images our calibration uses. Settings are the ones onnxruntime's docs
recommend for x86 CPUs: QDQ format, uint8 activations and int8 per-channel
weights (U8S8). Signed activations (S8S8) leave convs in float on x86 and are
slower than FP32 (../shared/STACK.md); Entropy calibration gives the same
scales as MinMax in onnxruntime 1.3x (it does not pass a bin count).
"""
import logging
import os
import tempfile

from ..errors import UserError

log = logging.getLogger("ocrslim")

PEER_STRATEGY = "onnxruntime quantize_static (PTQ, QDQ U8S8, per-channel, MinMax)"


def quantize_onnx_static(fp32_onnx, out_path, feeds):
    """Quantize fp32_onnx with onnxruntime, calibrated on `feeds` (list of {input: batch})."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(feeds)

        def get_next(self):
            return next(self.items, None)

    with tempfile.TemporaryDirectory(prefix="ocrslim-peer-") as tmp:
        pre = os.path.join(tmp, "pre.onnx")
        # symbolic shape inference fails on the v4 det graph; onnx's own shape
        # inference is enough for the quantizer
        quant_pre_process(fp32_onnx, pre, skip_symbolic_shape=True)
        tmp_out = out_path + ".tmp"
        quantize_static(pre, tmp_out, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax)
    os.replace(tmp_out, out_path)
    return out_path


def calibration_feeds(config, task_name, input_name):
    """The same images our calibration reads: the Train set, same shuffle and batch count."""
    from .. import config as cfg
    from ..data import calibration_batches, config_train_reader
    try:
        cfg.require(config, "Train.dataset.data_dir", "Train.dataset.label_file_list", "Train.dataset.transforms")
    except UserError as err:
        raise UserError(f"--peer calibrates on the Train set: {err}")
    reader = config_train_reader(config, task_name, input_name)
    return calibration_batches(reader, config["Calibration"]["batch_nums"])


def predictor(config, task_name, files, work_dir, tag, devices="cpu", threads=2):
    """The peer of the FP32 model `files`: exported, quantized with onnxruntime on config's Train
    images (written into work_dir as <tag>_peer_*.onnx) and loaded; returns (predict, info) with
    info["size_mb"] the int8 ONNX file's size."""
    import time
    import onnx
    from . import runtime
    if runtime.paddle_is_quantized(os.path.join(files[0], files[1])):
        raise UserError(f"the peer quantizes an FP32 model, and {files[0]} is already quantized")
    log.info("peer: exporting %s to ONNX and quantizing it with onnxruntime", files[0])
    t = time.time()
    fp32_onnx = runtime.export_onnx(files, os.path.join(work_dir, f"{tag}_peer_fp32.onnx"))
    input_name = onnx.load(fp32_onnx, load_external_data=False).graph.input[0].name
    feeds = calibration_feeds(config, task_name, input_name)
    int8_onnx = quantize_onnx_static(fp32_onnx, os.path.join(work_dir, f"{tag}_peer_int8.onnx"), feeds)
    log.info("peer quantized on %d calibration batches in %.0fs", len(feeds), time.time() - t)
    predict, info = runtime.onnx_predictor(int8_onnx, devices, threads)
    return predict, {**info, "size_mb": os.path.getsize(int8_onnx) / 2 ** 20, "strategy": PEER_STRATEGY}
