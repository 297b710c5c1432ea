"""Pictures of what int8 changed, for report.md.

They are drawn from the predictions the bench's metric used: while it scores each model, bench
keeps what the task saw (tasks.*.update), and `keep` stores the FP32 and the int8 model's in the
bench JSON ("predictions"); the report draws from them and never runs a model again.

  det: the images where the two models' boxes differ most, FP32 and int8 side by side;
  rec: the crops the two models read differently, one row each (crop, FP32, int8, label).

The pair is the one the report's drop column compares: the FP32 model on the baseline runtime
(its fastest FP32-accurate run) against our int8 model on the runtime `auto` picks for it here.
"""
import functools
import os

from ..metrics import greedy_pairs, to_geometry

IOU = 0.5  # the metric's threshold (metrics.match_image): a box "is" another's above it


def pair(rows, baseline, task, devices):
    """(FP32 row, int8 row, why this int8 row), or (None, None, why there is no pair)."""
    base = next((r for r in rows if r["name"] == baseline), None)
    if base is None:
        return None, None, "no FP32 model in this benchmark"
    ours = [r for r in rows if r["precision"] == "int8" and "peer" not in r["strategy"]]
    if not ours:
        return None, None, "no int8 model of ours in this benchmark"
    ours.sort(key=lambda r: not r["strategy"].startswith("int8 ocrslim"))  # run.py's models first
    from . import backends
    auto = backends.choose(task, "int8", devices, ours[0].get("model_dir"))[0]
    picked = next((r for r in ours if r["backend"] == auto), None)
    if picked:
        return base, picked, f"the runtime auto picks for int8 {task} here"
    return base, ours[0], f"auto's pick for int8 {task} here ({auto}) was not benched"


def keep(rows, records, baseline, task, devices):
    """The bench JSON's "predictions": the pair's per-item predictions, or {"missing": why}.
    records: row name -> what the task returned per item in the scored pass."""
    base, int8, why = pair(rows, baseline, task, devices)
    if int8 is None:
        return {"missing": why}
    a, b = records[base["name"]], records[int8["name"]]
    # every model scores the same loaded images in the same order (bench.run_bench)
    if [x["image"] for x in a] != [y["image"] for y in b]:
        return {"missing": "the two models were scored on different items"}
    return {"fp32": base["name"], "int8": int8["name"], "int8_why": why,
            "items": [KINDS[task].pack(x, y) for x, y in zip(a, b)]}


# --------------------------------------------------------------------------
# det: boxes
# --------------------------------------------------------------------------

def box_text(points):
    """[[x, y], ...] -> 'x,y x,y ...': one JSON line per box (indented JSON gives every number a line)."""
    return " ".join(f"{x},{y}" for x, y in points)


def box_points(text):
    return [[int(v) for v in p.split(",")] for p in text.split()]


def matched(a, b):
    """Indices of boxes in a and in b that have a counterpart in the other list: one-to-one,
    greedy in order, IoU above IOU, as the metric matches predictions to ground truth."""
    pairs = greedy_pairs([to_geometry(p) for p in a], [to_geometry(p) for p in b], IOU)
    return {i for i, _ in pairs}, {j for _, j in pairs}


class Det:
    unit, picture, default = "images", "report_det_examples.jpg", 3

    @staticmethod
    def pack(fp32, int8):
        return {"image": os.path.abspath(fp32["image"]), "gt": [box_text(p) for p in fp32["gt"]],
                "fp32": [box_text(p) for p in fp32["boxes"]], "int8": [box_text(p) for p in int8["boxes"]]}

    @staticmethod
    def differing(items, count):
        """The `count` items whose boxes differ most. How much two images' boxes differ: the boxes
        of either model with no counterpart among the other's (matched); ties keep set order."""
        scores = []
        for i, item in enumerate(items):
            a, b = [box_points(t) for t in item["fp32"]], [box_points(t) for t in item["int8"]]
            ma, mb = matched(a, b)
            scores.append((len(a) - len(ma) + len(b) - len(mb), i))
        differ = sorted((s for s in scores if s[0] > 0), key=lambda s: -s[0])
        return [i for _, i in differ[:count]], len(differ)

    @staticmethod
    def draw(items, chosen, per_item, path):
        """FP32 (left) and int8 (right) boxes on each chosen image; red: no counterpart in the
        other model's boxes; thin green: the cared ground truth. per_item: "fp32"/"int8" -> the
        metric's per_item [gt, predicted, matched] per image, for the titles."""
        from matplotlib.patches import Polygon
        plt = _pyplot()
        images = [_image(items[i]["image"], 640) for i in chosen]
        heights = [5 * image.shape[0] / image.shape[1] + 0.4 for image, _ in images]  # 5 in wide, and a title
        fig, axes = plt.subplots(len(chosen), 2, figsize=(10, sum(heights)), squeeze=False,
                                 gridspec_kw={"height_ratios": heights})
        for row, i, (image, scale) in zip(axes, chosen, images):
            item = items[i]
            boxes = [[box_points(t) for t in item[k]] for k in ("fp32", "int8")]
            kept = matched(*boxes)
            for ax, name, found, ok in zip(row, ("fp32", "int8"), boxes, kept):
                ax.imshow(image)
                for g in item["gt"]:
                    ax.add_patch(Polygon(_scaled(box_points(g), scale), fill=False, ec="lime", lw=0.6))
                for j, box in enumerate(found):
                    ax.add_patch(Polygon(_scaled(box, scale), fill=False, lw=1.2 if j in ok else 1.8,
                                         ec="dodgerblue" if j in ok else "red"))
                found_gt = f", found {per_item[name][i][2]} of {per_item[name][i][0]} GT" if name in per_item else ""
                ax.set_title(f"{os.path.basename(item['image'])}: {'FP32' if name == 'fp32' else name}, "
                             f"{len(found)} box{'es' if len(found) != 1 else ''}{found_gt}, "
                             f"{len(found) - len(ok)} not in the other's", fontsize=8)
                ax.axis("off")
        _save(fig, path)
        return [items[i]["image"] for i in chosen]

    @staticmethod
    def caption(pred, shown, differ, total):
        return (f"Left: FP32 model {pred['fp32']} (the drop column's baseline); right: int8 {pred['int8']} "
                f"({pred['int8_why']}); of the {total} images, the {shown} where their boxes differ most ({differ} "
                f"differ at all), from the predictions the metric used. Red: a box with no box of the other model "
                f"at IoU > {IOU}; thin green: ground truth")


# --------------------------------------------------------------------------
# rec: text
# --------------------------------------------------------------------------

class Rec:
    unit, picture, default = "crops", "report_rec_examples.png", 12

    @staticmethod
    def pack(fp32, int8):
        return {"image": os.path.abspath(fp32["image"]), "label": fp32["label"], "fp32": fp32["text"],
                "int8": int8["text"]}

    @staticmethod
    def differing(items, count):
        """The first `count` crops the two models read differently (the raw text: a difference
        the metric ignores, spaces say, still shows what int8 changed)."""
        differ = [i for i, item in enumerate(items) if item["fp32"] != item["int8"]]
        return differ[:count], len(differ)

    @staticmethod
    def draw(items, chosen, per_item, path):
        """One row per chosen crop: the crop, FP32 text, int8 text, label; a text is green where
        the metric counted it right, red where wrong (per_item: "fp32"/"int8" -> the metric's 1/0 per crop)."""
        plt = _pyplot()
        fig, axes = plt.subplots(len(chosen) + 1, 4, figsize=(10, 0.5 * len(chosen) + 0.5), squeeze=False,
                                 gridspec_kw={"width_ratios": [2, 1.5, 1.5, 1.5]})
        for ax, head in zip(axes[0], ("crop", "FP32", "int8", "label")):
            ax.text(0, 0.3, head, fontsize=10, weight="bold")
        for row, i in zip(axes[1:], chosen):
            item = items[i]
            row[0].imshow(_image(item["image"], 320)[0])
            for ax, key in zip(row[1:], ("fp32", "int8", "label")):
                ok = per_item.get(key)  # the label has none: black
                color = "black" if ok is None else ("green" if ok[i] else "red")
                ax.text(0, 0.5, item[key] or "(nothing)", va="center", fontsize=10, color=color,
                        family=list(_families()))
        for ax in axes.flat:
            ax.axis("off")
        _save(fig, path)
        return [items[i]["image"] for i in chosen]

    @staticmethod
    def caption(pred, shown, differ, total):
        first = f"The first {shown} of the" if shown < differ else "The"
        return (f"{first} {differ} crops (of {total}) that FP32 model {pred['fp32']} (the drop column's baseline) and "
                f"int8 {pred['int8']} ({pred['int8_why']}) read differently, from the predictions the metric "
                "used (green: right, red: wrong)")


KINDS = {"det": Det, "rec": Rec}
PICTURES = tuple(k.picture for k in KINDS.values())


# --------------------------------------------------------------------------
# the report's part
# --------------------------------------------------------------------------

def write(report_dir, bench, count):
    """Draw bench's picture into report_dir; returns (markdown lines, picture name or None)."""
    kind, task = KINDS[bench["model_type"]], bench["model_type"]
    pred = bench.get("predictions")
    head = f"- {task}: no picture of what int8 changed: "
    if count == 0:
        return [], None
    if pred is None:
        return [head + "this bench JSON holds no per-item predictions (bench.py from before they were kept: "
                "run it again)", ""], None
    if "missing" in pred:
        return [head + pred["missing"], ""], None
    items = pred["items"]
    chosen, differ = kind.differing(items, count)
    if not chosen:
        return [f"- {task}: FP32 and int8 agree on every one of the {len(items)} {kind.unit} "
                "(no picture of what int8 changed)", ""], None
    missing = [items[i]["image"] for i in chosen if not os.path.isfile(items[i]["image"])]
    if missing:
        return [head + f"{missing[0]} is missing" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""),
                ""], None
    rows = {r["name"]: r.get("per_item") for r in bench["models"]}
    per_item = {k: rows.get(pred[k]) for k in ("fp32", "int8") if len(rows.get(pred[k]) or ()) == len(items)}
    try:
        kind.draw(items, chosen, per_item, os.path.join(report_dir, kind.picture))
    except OSError as err:  # an image replaced by one PIL cannot read since the bench
        return [head + f"cannot read an image: {err}", ""], None
    return [f"![{task}: what int8 changed]({kind.picture})", "",
            f"*{kind.caption(pred, len(chosen), differ, len(items))}.*", ""], kind.picture


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")  # no display on servers
    import matplotlib.pyplot as plt
    return plt


def _image(path, longest):
    """The image as an RGB array at most `longest` pixels on its longer side (small files), and the scale."""
    import numpy as np
    from PIL import Image
    with Image.open(path) as img:
        img = img.convert("RGB")
        scale = min(1.0, longest / max(img.size))
        if scale < 1:
            img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))))
        return np.asarray(img), scale


def _scaled(points, scale):
    return [[x * scale, y * scale] for x, y in points]


@functools.lru_cache(maxsize=None)
def _families():
    """DejaVu Sans, then a CJK font for Chinese labels where one is at hand: the Source Han Sans
    that trdg (a requirement, for the synthetic data) ships; found without importing trdg."""
    import importlib.util
    from matplotlib import font_manager
    spec = importlib.util.find_spec("trdg")
    families = ["DejaVu Sans"]
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(folder, "fonts", "cn", "SourceHanSans-Normal.ttf")
        if os.path.isfile(path):
            font_manager.fontManager.addfont(path)
            families.append(font_manager.FontProperties(fname=path).get_name())
            break
    return tuple(families)


def _save(fig, path):
    """Saved via a temporary file and a rename, as every output; jpg for photos (small files)."""
    import warnings
    plt = _pyplot()
    stem, ext = os.path.splitext(path)
    tmp = stem + ".tmp" + ext
    fig.tight_layout()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing")  # a character no font has: drawn as a box
        fig.savefig(tmp, dpi=90, **({"pil_kwargs": {"quality": 80}} if ext == ".jpg" else {}))
    plt.close(fig)
    os.replace(tmp, path)
