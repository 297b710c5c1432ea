"""Configs in the upstream example's layout (PaddleSlim's example/auto_compression/ocr and
PaddleOCR's deploy/slim/auto_compression/configs): what they spell differently from ours.

Our layout is theirs with fewer keys, so most of such a file is taken as it is. `adapt`
translates what keeps its meaning (logging one line each) and collects one `error:` line,
with our spelling, for each key whose meaning we cannot keep. Called on the raw YAML
before defaults are filled in, so our own configs pass through untouched.
TrainConfig.epochs needs no translation here: the qat strategy converts it to steps
(qat.act_config), as it knows the Train set's size after `-o` overrides.
"""
import copy
import logging
import os

from .errors import UserError

log = logging.getLogger("ocrslim")

# model families the tasks run (their post-processing and metric are what upstream names here)
ALGORITHMS = {"det": {"DB", "DB++"}, "rec": {"SVTR", "SVTR_LCNet", "SVTR_HGNet", "CRNN"}}
METRICS = {"det": "DetMetric", "rec": "RecMetric"}
# loader keys with no effect here: Train is always shuffled and drops its ragged last batch,
# Eval runs in order over every image, and reading is in-process
LOADER_KEYS = ("shuffle", "drop_last", "num_workers", "use_shared_memory")


def _dataset(data, section, errors, notes):
    part = data.get(section)
    if not isinstance(part, dict):
        return
    ds = part.get("dataset") or {}
    name = ds.pop("name", "SimpleDataSet")
    if name != "SimpleDataSet":
        errors.append(f"{section}.dataset.name {name}: only SimpleDataSet label files are read (set "
                      "name: SimpleDataSet; multi-scale batches are not supported, use RecResizeImg)")
    ratios = ds.pop("ratio_list", None)
    if ratios is not None and any(float(r) != 1.0 for r in ratios):
        errors.append(f"{section}.dataset.ratio_list {ratios}: sampling part of a label file is not "
                      "supported; list the files to use in label_file_list (ratio 1.0 each)")
    ds.pop("ds_width", None)
    if "ext_op_transform_idx" in ds or any("RecConAug" in (t or {}) for t in ds.get("transforms") or []):
        errors.append(f"{section}.dataset.transforms: RecConAug (and ext_op_transform_idx) mixes in "
                      "samples through PaddleOCR's dataset class, which is not used here; remove both")
    if part.pop("sampler", None) is not None:
        errors.append(f"{section}.sampler: samplers are not supported; remove it (batches come from "
                      "loader.batch_size_per_card)")
    loader = part.get("loader") or {}
    dropped = [k for k in LOADER_KEYS if loader.pop(k, None) is not None]
    if dropped:
        notes.append(f"{section}.loader.{'/'.join(dropped)} ignored (Train is shuffled, Eval read in order)")


def _distillation(data, errors):
    dist = data.get("Distillation")
    if not isinstance(dist, dict):
        return
    node = dist.get("node")
    if isinstance(node, list):
        flat = [n for item in node for n in (item if isinstance(item, list) else [item])]
        if len(set(flat)) > 1:
            errors.append(f"Distillation.node {node}: one node is distilled; give one tensor name, or "
                          "none (the model's logits are found)")
        dist["node"] = flat[:1]
    for key in ("loss", "alpha"):
        value = dist.get(key)
        if isinstance(value, list):
            if len(value) > 1:
                errors.append(f"Distillation.{key} {value}: one loss on one node is trained; give a single "
                              f"value (ours: loss l2, alpha 1.0)")
            dist[key] = value[0] if value else None


def adapt(data, path):
    """`data` (a config file's mapping) in our layout; raises one `error:` line per key that
    cannot be taken."""
    data = copy.deepcopy(data)
    errors, notes = [], []
    glob = data.get("Global") if isinstance(data.get("Global"), dict) else {}
    model_type = glob.get("model_type")
    algorithm = glob.pop("algorithm", None)
    if algorithm is not None and model_type in ALGORITHMS and algorithm not in ALGORITHMS[model_type]:
        errors.append(f"Global.algorithm {algorithm}: {model_type} models of the "
                      f"{'/'.join(sorted(ALGORITHMS[model_type]))} family are supported")
    for key, why in (("input_name", "the input is read from the model"),
                     ("max_text_length", "labels are compared as text")):
        if glob.pop(key, None) is not None:
            notes.append(f"Global.{key} ignored ({why})")
    metric = data.get("Metric") if isinstance(data.get("Metric"), dict) else {}
    name = metric.pop("name", None)
    if name is not None and model_type in METRICS and name != METRICS[model_type]:
        errors.append(f"Metric.name {name}: a {model_type} model is scored with {METRICS[model_type]}")
    if "Quantization" in data:
        if "QuantAware" in data:
            errors.append("Quantization: our spelling is QuantAware, and this file has both; keep one")
        else:
            data["QuantAware"] = data.pop("Quantization")
            notes.append("section Quantization read as QuantAware (PaddleSlim >= 2.3 spelling)")
    for section in ("Train", "Eval", "Test"):
        _dataset(data, section, errors, notes)
    _distillation(data, errors)
    if errors:
        raise UserError(f"config {path} (upstream layout): " + "\nerror: ".join(errors))
    for note in notes:
        log.info("config %s (upstream layout): %s", os.path.basename(path), note)
    return data
