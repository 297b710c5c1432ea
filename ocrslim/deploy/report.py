"""report.md and report.png from bench results, in the shape of the SlimOCR model zoo tables,
with pictures of what int8 changed (examples.py: det boxes, rec texts) where the bench kept
the two models' predictions.

bench.py --report and run.py write one for a det or rec model; to combine a
det and a rec bench (which adds the det+rec pair size):
  python -m ocrslim.deploy.report --out output/demo/report output/demo/bench_det.json output/demo/bench_rec.json
  python -m ocrslim.deploy.report --out r --det_examples 5 --rec_examples 20 bench_det.json bench_rec.json
"""
import argparse
import json
import os

from .. import cpu, stats
from . import examples
from ..config import display_path
from ..errors import ArgumentParser, UserError
from ..outputs import REPORT_FILES, add_to_manifest, check_report_dir, write_json, write_text


def _fmt(value, pattern):
    return "" if value is None else pattern.format(value)  # None: no FP32 model in the bench


def e2e_table(runs):
    """eval.py --e2e results: the 'overall time' view of the SlimOCR tables."""
    if not runs:
        return []
    lines = ["### Whole pipeline (det -> crop -> rec), eval.py --e2e", "",
             f"CPU: {cpu.line(runs[0].get('cpu'))}", "",
             "| det model | rec model | precision | P | R | F | F drop [95% CI] | time per image median / mean (ms) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in runs:
        m, b = r["metrics"], r["backend"]
        lines.append(f"| {display_path(r['det_model_dir'])} | {display_path(r['rec_model_dir'])} | {b['det']['precision']} + "
                     f"{b['rec']['precision']} ({_backends(b)}{_peer(r)}) | "
                     f"{m['precision']:.4f} | {m['recall']:.4f} | "
                     f"{m['hmean']:.4f} | {stats.format_drop(e2e_drop(runs, r))} | "
                     f"{r['latency_ms']['median']:.1f} / {r['latency_ms']['mean']:.1f} |")
    return lines + ["", "F drop: against the FP32 pair on the same images, on the same runtime where there is "
                    f"one (paired bootstrap over {runs[0]['images']} images).", ""]


def e2e_drop(runs, run):
    """F drop of an int8 pair against the FP32 pair run on the same runtime and the same images, or None."""
    b = run["backend"]
    if b["det"]["precision"] == b["rec"]["precision"] == "fp32" or "per_image" not in run:
        return None
    fp32 = [base for base in runs if base["backend"]["det"]["precision"] == base["backend"]["rec"]["precision"]
            == "fp32" and len(base.get("per_image", [])) == len(run["per_image"])]
    # the FP32 pair on the same runtime first (the peer's own runtime has no FP32 run of its own)
    fp32.sort(key=lambda base: _backends(base["backend"]) != _backends(b))
    return stats.paired_drop(fp32[0]["per_image"], run["per_image"], "e2e") if fp32 else None


def _peer(run):
    """' <name> PTQ peer' for a peer's e2e run (True in runs from before there were several peers)."""
    peer = run.get("peer")
    return "" if not peer else f" {'onnxruntime' if peer is True else peer} PTQ peer"


def _backends(b):
    if b["det"]["backend"] == b["rec"]["backend"]:
        return b["det"]["backend"]
    return f"det {b['det']['backend']}, rec {b['rec']['backend']}"


def markdown(benches, e2e_runs=(), pictures=None):
    """The report's text; pictures: per bench, the markdown lines of its picture of what int8 changed."""
    lines = []
    for b, picture in zip(benches, pictures or [[]] * len(benches)):
        key = b["main_indicator"]
        lines += [f"### {b['model_type']}: {key} on {b['images']} eval images; latency per image at batch 1, "
                  f"{b['threads']} thread(s), {b['devices']}",
                  "", f"CPU: {cpu.line(b.get('cpu'))}", "",
                  f"| model | strategy | runtime | {key} | drop [95% CI] | latency median / p90 (ms) | speed-up | "
                  "size (MB) | compression |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in b["models"]:
            lat = r["latency_ms"]
            lines.append(f"| {r['name']} | {r['strategy']} | {r['backend']} {r['engine']} {r['precision']} | "
                         f"{r['metrics'][key]:.4f} | {stats.format_drop(r.get('drop'))} | "
                         f"{lat['median']:.1f} / {lat['p90']:.1f} | "
                         f"{_fmt(r['speedup'], '{:.2f}x')} | {r['size_mb']:.2f} | {_fmt(r['size_ratio'], '{:.0%}')} |")
        n = len(b["models"][0].get("per_item", [])) if b["models"] else 0
        why = b.get("baseline_why") or "the fastest FP32 runtime"
        lines += ["", f"Speed-up and drop are against the baseline {b['fastest_fp32']}, {why}; drop: paired "
                  f"bootstrap over the same {n} {'images' if b['model_type'] == 'det' else 'crops'}; "
                  "compression is size on disk against the FP32 Paddle model.", ""]
        from .bench import honest_note
        note = honest_note(b["models"], b["fastest_fp32"])
        lines += [f"- **{note[len('note: '):]}**"] if note else []
        lines += [f"- {r['name']}: auto chose {r['backend']}: {r['choice']}" for r in b["models"]
                  if r.get("choice", "asked for") != "asked for"]
        lines += [f"- {s['name']}: not run: {s['reason']}" for s in b.get("not_offered", [])]
        if b.get("measured_choice"):
            from .bench import measured_line
            lines += [f"- {measured_line(b['measured_choice'])}"]
        lines += [""] if lines[-1] != "" else []
        lines += picture
    lines += pair_sizes(benches)
    lines += e2e_table(list(e2e_runs))
    return "\n".join(lines)


def _size(bench, pick):
    rows = [r for r in bench["models"] if pick(r)]
    return rows[0]["size_mb"] if rows else None


def pair_sizes(benches):
    """det+rec size on disk: FP32 Paddle pair vs our int8 pair vs the peer pair."""
    by_task = {b["model_type"]: b for b in benches}
    if set(by_task) != {"det", "rec"}:
        return []
    picks = {"FP32 (Paddle)": lambda r: r["precision"] == "fp32" and r["backend"] == "paddle",
             "ocrslim int8 (Paddle)": lambda r: r["precision"] == "int8" and r["backend"] == "paddle"
             and "peer" not in r["strategy"],
             "onnxruntime PTQ peer": lambda r: "peer: onnxruntime" in r["strategy"],
             "NNCF PTQ peer": lambda r: "peer: NNCF" in r["strategy"]}
    sizes = {name: [_size(by_task[t], pick) for t in ("det", "rec")] for name, pick in picks.items()}
    base = sum(sizes["FP32 (Paddle)"]) if None not in sizes["FP32 (Paddle)"] else None
    lines = ["### det + rec pair, size on disk", "", "| pair | det MB | rec MB | total MB | vs FP32 |",
             "|---|---|---|---|---|"]
    for name, (det, rec) in sizes.items():
        if det is None or rec is None:
            continue
        ratio = f"{(det + rec) / base:.0%}" if base else ""
        lines.append(f"| {name} | {det:.2f} | {rec:.2f} | {det + rec:.2f} | {ratio} |")
    return lines + [""]


def plot(benches, path):
    """Metric against latency and against size, one panel pair per task."""
    import matplotlib
    matplotlib.use("Agg")  # no display on servers
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(len(benches), 2, figsize=(10, 3.6 * len(benches)), squeeze=False)
    for row, b in zip(axes, benches):
        key = b["main_indicator"]
        for ax, (field, label) in zip(row, (("latency", "median latency per image (ms)"), ("size", "size (MB)"))):
            for r in b["models"]:
                x = r["latency_ms"]["median"] if field == "latency" else r["size_mb"]
                marker = "o" if r["precision"] == "fp32" else ("s" if "peer" in r["strategy"] else "*")
                ax.scatter(x, r["metrics"][key], s=90, marker=marker, label=r["name"])
                ax.annotate(r["backend"], (x, r["metrics"][key]), fontsize=7, xytext=(4, 4),
                            textcoords="offset points")
            ax.set_xlabel(label)
            ax.set_ylabel(key)
            ax.set_title(f"{b['model_type']}: {key} vs {field}")
            ax.grid(alpha=0.3)
        row[1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def write_report(report_dir, benches, e2e_runs=(), det_examples=examples.Det.default,
                 rec_examples=examples.Rec.default):
    """report.md, report.png, bench.json and the pictures of what int8 changed in report_dir (each
    written atomically), recorded in the folder's manifest as the tool's own
    (outputs.check_report_dir checked the folder). Returns report.md's text."""
    os.makedirs(report_dir, exist_ok=True)
    pictures = draw_examples(report_dir, benches, {"det": det_examples, "rec": rec_examples})
    plot_line = "![each model's metric against its latency and its size](report.png)\n\n" if benches else ""
    text = "# ocrslim benchmark\n\n" + plot_line + markdown(benches, e2e_runs, pictures)
    write_text(os.path.join(report_dir, "report.md"), text)
    if benches:
        plot(benches, os.path.join(report_dir, "report.png"))
        write_json(os.path.join(report_dir, "bench.json"), benches if len(benches) > 1 else benches[0])
    add_to_manifest(report_dir, REPORT_FILES, "report")
    return text


def draw_examples(report_dir, benches, counts):
    """Each task's first bench gets its picture (examples.write); a picture of an earlier report
    that is not drawn again is removed, so report_dir never shows one report.md does not embed."""
    out, drawn = [], set()
    for b in benches:
        task = b["model_type"]
        if examples.KINDS[task].picture in drawn:
            out.append([f"- {task}: a picture of what int8 changed is drawn for the first {task} bench only", ""])
            continue
        lines, name = examples.write(report_dir, b, counts[task])
        out.append(lines)
        drawn |= {name} if name else set()
    for name in set(examples.PICTURES) - drawn:
        if os.path.exists(os.path.join(report_dir, name)):
            os.remove(os.path.join(report_dir, name))
    return out


def main(argv=None):
    p = ArgumentParser(prog="python -m ocrslim.deploy.report", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="folder for report.md, report.png, bench.json and the pictures of "
                   "what int8 changed")
    p.add_argument("bench_json", nargs="+", help="bench.py --json files (or run.py's bench.json), "
                   "and eval.py --e2e --json files")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier report in --out")
    p.add_argument("--det_examples", type=int, default=examples.Det.default, metavar="N",
                   help="det: draw the N eval images where the FP32 and the int8 model's boxes differ most, side "
                        f"by side (default {examples.Det.default}; 0: no picture)")
    p.add_argument("--rec_examples", type=int, default=examples.Rec.default, metavar="N",
                   help="rec: draw the first N crops the FP32 and the int8 model read differently "
                        f"(default {examples.Rec.default}; 0: no picture)")
    args = p.parse_args(argv)
    if args.det_examples < 0 or args.rec_examples < 0:
        raise UserError("--det_examples and --rec_examples must be 0 or more")
    check_report_dir(args.out, [("bench JSON", path) for path in args.bench_json], args.overwrite, flag="--out")
    benches, e2e_runs = [], []
    for path in args.bench_json:
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError) as err:
            raise UserError(f"cannot read bench JSON {path}: {err}")
        for item in data if isinstance(data, list) else [data]:
            if not isinstance(item, dict) or not ({"models", "det_model_dir"} & set(item)):
                raise UserError(f"{path} is not a bench.py or eval.py --e2e JSON result")
            (e2e_runs if "det_model_dir" in item else benches).append(item)
    if not benches and not e2e_runs:
        raise UserError("no results to report")
    print(write_report(args.out, benches, e2e_runs, args.det_examples, args.rec_examples))


if __name__ == "__main__":
    from ..errors import run_cli
    run_cli(main)
