"""A stage chain over several training seeds: Table 1, the open-set table and int8 parity as mean ± std.

    python benchmarks/seeds.py --data ../shared/data/lfw --profile fast --seeds 1 2 --also lfw --export int8

One run per seed, ``runs/<name>-seed<k>``, with ``--set train.seed=k --set segmenter.seed=k`` (the base, the
PDSN and the segmenter draw their initial weights, batches and augmentations from those); the data split
(``data.seed``) and the evaluation probes (``occlusion.seed``) stay fixed, so the spread is the training's alone.
Detections, crops and teacher embeddings come from the cache after the first seed. ``--also RUN`` counts a finished
run of the same settings (e.g. the README's ``lfw``) as one more seed, labelled by its ``train.seed``.
``--export int8`` exports each run (``dist/<run>-int8``, again only when the run changed since) and collects the
export's parity: the rank-1 drop of every Table 1 cell of the exported models against the Keras ones; the guard's
tolerances (``export.parity``) are applied to each seed, whatever ``--allow-accuracy-drop`` the export used.
``--stages`` runs part of the chain (e.g. ``prepare,unlabelled,teacher,base,openset`` for the open-set table of the
base network alone); the tables a chain does not write are left out.

Writes ``benchmarks/results/seeds-<name>.{json,md}``: per seed and as mean ± std (population std) over the seeds.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from export.parity import CLEAN_TOLERANCE, OCCLUDED_TOLERANCE
from keras_landmask.io import write_json
from keras_landmask.runs import RunFolder

OPENSET_MEASURES = ("rank1_1", "dir_1")


def run_result(run: RunFolder, export: Path | None) -> dict:
    """The tables one finished run wrote: ``table1`` ``{occlusion: {column: rank-1}}``, ``openset``
    ``{measure: {occlusion: {column: value}}}`` and, with an export, ``int8`` ``{occlusion: {column: drop in
    points}}``; a table the run's chain did not write is absent."""
    result = {}
    table1 = run.folder("evaluate") / "table1.json"
    if table1.is_file():
        result["table1"] = {occlusion: {column: cell["rank1"] for column, cell in row.items()}
                            for occlusion, row in json.loads(table1.read_text()).items()}
    openset = run.folder("openset") / "openset.json"
    if openset.is_file():
        table = json.loads(openset.read_text())["table"]
        result["openset"] = {measure: {occlusion: {column: cell[measure] for column, cell in row.items()}
                                       for occlusion, row in table.items()} for measure in OPENSET_MEASURES}
    if export is not None:
        rows = json.loads((export / "manifest.json").read_text())["parity"]["rows"]
        result["int8"] = {occlusion: {column: cell["drop_points"] for column, cell in row.items()}
                          for occlusion, row in rows.items()}
    return result


def over_tolerance(drops: dict) -> list[str]:
    """The ``occlusion/column`` cells of one export's parity rows that break the export guard's tolerances."""
    return [f"{occlusion}/{column}" for occlusion, row in drops.items() for column, drop in row.items()
            if drop > (CLEAN_TOLERANCE if occlusion == "clean" else OCCLUDED_TOLERANCE)]


def mean_std(tables: list[dict]) -> dict:
    """``{row: {column: [mean, std]}}`` over tables of the same ``{row: {column: value}}`` shape."""
    first = tables[0]
    return {row: {column: [float(np.mean(values := [t[row][column] for t in tables])), float(np.std(values))]
                  for column in first[row]} for row in first}


def summarise(per_seed: dict[int, dict]) -> dict:
    """Every table the seeds have in common, as mean ± std."""
    results = list(per_seed.values())
    summary = {}
    if all("table1" in r for r in results):
        summary["table1"] = mean_std([r["table1"] for r in results])
    if all("openset" in r for r in results):
        summary["openset"] = {m: mean_std([r["openset"][m] for r in results]) for m in OPENSET_MEASURES}
    if all("int8" in r for r in results):
        summary["int8"] = mean_std([r["int8"] for r in results])
    return summary


def markdown_table(table: dict, percent: bool) -> list[str]:
    """A ``{row: {column: [mean, std]}}`` table as Markdown lines (percent: values are fractions)."""
    columns = list(dict.fromkeys(c for row in table.values() for c in row))
    scale = 100 if percent else 1
    lines = ["| occlusion | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for row, cells in table.items():
        lines.append(f"| {row} | " + " | ".join(
            f"{cells[c][0] * scale:.1f} ± {cells[c][1] * scale:.1f}" if c in cells else "–"
            for c in columns) + " |")
    return lines


def write_markdown(title: str, per_seed: dict, summary: dict, seconds: dict, path: Path) -> None:
    lines = [f"# {title}", "", f"Seeds: {', '.join(map(str, per_seed))}. Mean ± std (population std) over the seeds.",
             ""]
    if "table1" in summary:
        lines += ["## Table 1: closed-set test rank-1 (%)", ""] + markdown_table(summary["table1"], True) + [""]
    for measure, heading in (("rank1_1", "rank-1"), ("dir_1", "DIR @ FPIR 1 %")):
        if "openset" in summary:
            lines += [f"## Open set, 1 enrolment photo: {heading} (%)", ""]
            lines += markdown_table(summary["openset"][measure], True) + [""]
    if "int8" in summary:
        lines += ["## int8 export: rank-1 drop against Keras (points; negative = the export is better)", ""]
        lines += markdown_table(summary["int8"], False) + [""]
        lines += [f"Guard tolerance: {CLEAN_TOLERANCE} point clean, {OCCLUDED_TOLERANCE} occluded.", "",
                  "| seed | largest drop | cells over the tolerance |", "|---|---|---|"]
        for seed, result in per_seed.items():
            drops = [d for row in result["int8"].values() for d in row.values()]
            lines.append(f"| {seed} | {max(drops):.2f} | {', '.join(over_tolerance(result['int8'])) or 'none'} |")
        lines.append("")
    if seconds:
        lines += ["Training wall time (s): " + ", ".join(f"seed {s}: {t}" for s, t in seconds.items()), ""]
    path.write_text("\n".join(lines))


EXPORT_READS = ("prepare", "base", "dictionary", "headtune", "segmenter", "openset")  # the stages an export's files depend on


def export_run(run: Path, out: Path, quantize: str) -> Path:
    """Export ``run`` into ``out`` unless an export there is newer than every finished stage the export reads."""
    manifest = out / "manifest.json"
    newest_stage = max(marker.stat().st_mtime for stage in EXPORT_READS
                       if (marker := RunFolder(run).marker(stage)).is_file())
    if manifest.is_file() and manifest.stat().st_mtime > newest_stage:
        print(f"reusing the export {out} (newer than every stage of {run})", flush=True)
        return out
    subprocess.run([sys.executable, "tools/export_tflite.py", "--run", str(run), "--out", str(out),
                    "--quantize", quantize, "--allow-accuracy-drop", "100"], check=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="LFW folder (one sub-folder per person)")
    parser.add_argument("--profile", default="fast", help="smoke, fast or paper (default: fast)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="seeds to train (default: 1 2 3)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config overrides for every seed, e.g. train.teacher=none (repeatable)")
    parser.add_argument("--stages", help="the trainer's --stages for every seed (default: all)")
    parser.add_argument("--export", choices=["float32", "float16", "dynamic", "int8"],
                        help="also export every run with this quantization and collect its parity")
    parser.add_argument("--name", help="run-name prefix (default: the profile)")
    parser.add_argument("--also", action="append", default=[], metavar="RUN",
                        help="a finished run of the same profile and overrides (e.g. lfw) to count as one more seed "
                        "(repeatable)")
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--dist-dir", default="dist", help="folder for the exports (default: dist)")
    parser.add_argument("--out", default="benchmarks/results", help="folder for the JSON and Markdown results")
    args = parser.parse_args()

    name = args.name or args.profile
    per_seed, seconds = {}, {}
    runs = [(seed, f"{name}-seed{seed}") for seed in args.seeds]
    runs += [(RunFolder(Path(args.runs_dir) / run).config().train.seed, run) for run in args.also]
    for seed, run_name in runs:
        run = Path(args.runs_dir) / run_name
        if run_name not in args.also:
            start = time.perf_counter()
            command = [sys.executable, "-m", "keras_landmask.train", "--data", args.data, "--profile", args.profile,
                       "--run", run_name, "--runs-dir", args.runs_dir, "--no-progress",
                       "--set", f"train.seed={seed}", "--set", f"segmenter.seed={seed}"]
            command += ["--stages", args.stages] if args.stages else []
            command += [item for pair in args.set for item in ("--set", pair)]
            subprocess.run(command, check=True)
            seconds[seed] = round(time.perf_counter() - start, 1)
        export = export_run(run, Path(args.dist_dir) / f"{run_name}-{args.export}", args.export) if args.export else None
        per_seed[seed] = run_result(RunFolder(run), export)
        print(f"seed {seed} ({run_name}) done", flush=True)

    summary = summarise(per_seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    title = (f"{len(per_seed)} seeds of `{args.profile}` (runs {name}-seed*"
             f"{', ' + ', '.join(args.also) if args.also else ''}; overrides: {', '.join(args.set) or 'none'})")
    write_json(out / f"seeds-{name}.json", {"profile": args.profile, "overrides": args.set, "stages": args.stages,
                                            "export": args.export, "per_seed": per_seed, "mean_std": summary,
                                            "command_seconds": seconds})
    write_markdown(title, per_seed, summary, seconds, out / f"seeds-{name}.md")
    print((out / f"seeds-{name}.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
