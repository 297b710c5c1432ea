"""The peers: what a user would try instead of us, a registry keyed by name (PEERS).

Each exports the FP32 Paddle model to ONNX with paddle2onnx and quantizes it
after training, calibrated on the same train images our calibration uses:

- onnxruntime: onnxruntime's post-training static quantization, with the
  settings its docs recommend for x86 CPUs: QDQ format, uint8 activations and
  int8 per-channel weights (U8S8). Signed activations (S8S8) leave convs in
  float on x86 and are slower than FP32 (../shared/STACK.md); Entropy
  calibration gives the same scales as MinMax in onnxruntime 1.3x (it does
  not pass a bin count). Runs on onnxruntime.
- nncf: OpenVINO's NNCF post-training quantization (`nncf.quantize`, its
  defaults: symmetric 8-bit, per-channel weights, min-max ranges with its bias
  correction), on the calibration images one by one. Runs on OpenVINO (f32
  for what stays float).
"""
import logging
import os
import tempfile

from ..errors import UserError

log = logging.getLogger("ocrslim")

PEER_STRATEGY = "onnxruntime quantize_static (PTQ, QDQ U8S8, per-channel, MinMax)"
NNCF_STRATEGY = "NNCF quantize (PTQ, OpenVINO, default preset)"


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


def _export(files, work_dir, tag, name):
    from . import runtime
    if runtime.paddle_is_quantized(os.path.join(files[0], files[1])):
        raise UserError(f"the {name} peer quantizes an FP32 model, and {files[0]} is already quantized")
    log.info("peer: exporting %s to ONNX and quantizing it with %s", files[0], name)
    return runtime.export_onnx(files, os.path.join(work_dir, f"{tag}_{name}_peer_fp32.onnx"))


def _input_name(onnx_path):
    import onnx
    return onnx.load(onnx_path, load_external_data=False).graph.input[0].name


def onnxruntime_peer(config, task_name, files, work_dir, tag, devices="cpu", threads=2):
    """onnxruntime quantize_static of the FP32 model `files` on config's Train images (written into
    work_dir as <tag>_onnxruntime_peer_*.onnx), loaded in onnxruntime; returns (predict, info) with
    info["size_mb"] the int8 ONNX file's size."""
    import time
    from . import runtime
    t = time.time()
    fp32_onnx = _export(files, work_dir, tag, "onnxruntime")
    feeds = calibration_feeds(config, task_name, _input_name(fp32_onnx))
    int8_onnx = quantize_onnx_static(fp32_onnx, os.path.join(work_dir, f"{tag}_onnxruntime_peer_int8.onnx"), feeds)
    log.info("peer quantized on %d calibration batches in %.0fs", len(feeds), time.time() - t)
    predict, info = runtime.onnx_predictor(int8_onnx, devices, threads)
    return predict, {**info, "size_mb": os.path.getsize(int8_onnx) / 2 ** 20, "strategy": PEER_STRATEGY}


def nncf_peer(config, task_name, files, work_dir, tag, devices="cpu", threads=2):
    """NNCF post-training quantization of the FP32 model `files` on config's Train images (the same
    images as ours, one per calibration item), saved as an OpenVINO IR in work_dir and run by
    OpenVINO; returns (predict, info) with info["size_mb"] the IR's size."""
    import time
    from . import runtime
    if devices != "cpu":
        raise UserError("the nncf peer runs on OpenVINO's CPU plugin: run it with --devices cpu")
    import nncf
    import openvino as ov
    t = time.time()
    fp32_onnx = _export(files, work_dir, tag, "nncf")
    feeds = calibration_feeds(config, task_name, _input_name(fp32_onnx))
    images = [batch[i:i + 1] for feed in feeds for batch in feed.values() for i in range(len(batch))]
    quantized = nncf.quantize(ov.Core().read_model(fp32_onnx), nncf.Dataset(images), subset_size=len(images))
    xml = os.path.join(work_dir, f"{tag}_nncf_peer_int8.xml")
    ov.save_model(quantized, xml, compress_to_fp16=False)  # fp16 storage would change the float weights
    log.info("peer quantized by NNCF on %d calibration images in %.0fs", len(images), time.time() - t)
    predict, info = runtime.openvino_predictor(xml, threads, "f32")
    size = sum(os.path.getsize(xml[:-4] + ext) for ext in (".xml", ".bin"))
    return predict, {**info, "size_mb": size / 2 ** 20, "strategy": NNCF_STRATEGY}


# name -> (make a predictor, the runtime it runs on)
PEERS = {"onnxruntime": (onnxruntime_peer, "onnxruntime PTQ"), "nncf": (nncf_peer, "NNCF PTQ")}


def predictor(config, task_name, files, work_dir, tag, devices="cpu", threads=2, name="onnxruntime"):
    """The peer `name` of the FP32 model `files` (see PEERS)."""
    make, _ = PEERS[name]
    return make(config, task_name, files, work_dir, tag, devices, threads)
