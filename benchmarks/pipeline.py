"""Time the whole method, one command, and write per-stage seconds and key numbers as JSON + Markdown.

    python benchmarks/pipeline.py --data ../shared/data/lfw --profile fast [--cold]

Runs ``python -m keras_landmask.train --profile P`` (every stage, ``--force``) into ``runs/bench-pipeline-<P>``
and writes ``benchmarks/results/pipeline-<P>.json`` and ``.md``: wall time of the command, each stage's
seconds, CPU time, the load average before and after (other jobs on the machine inflate every time), base
rank-1/rank-5, segmenter pixel accuracy / IoU / false occlusion, and the run's Table 1. ``--cold`` uses an
empty detection cache, so ``prepare`` runs MTCNN over every image as on a fresh machine.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from keras_landmask.runs import RunFolder
from keras_landmask.stages.graph import STAGE_NAMES

def key_numbers(run: Path) -> dict:
    """Base accuracy, segmenter quality and Table 1 of a finished run."""
    folder = RunFolder(run)
    base = json.loads(folder.require("base", "metrics.json").read_text())
    segmenter = json.loads(folder.require("segmenter", "metrics.json").read_text())
    return {
        "base_test": base["test"],
        "base_val": base["val"],
        "segmenter": {
            "pixel_accuracy": segmenter["pixel_accuracy"],
            "iou": {kind: row["iou"] for kind, row in segmenter["test"].items() if kind != "clean"},
            "false_occlusion_rate": segmenter["false_occlusion_rate"],
        },
        "table1": json.loads(folder.require("evaluate", "table1.json").read_text()),
    }


def markdown(result: dict, table1_md: str) -> str:
    stages = "\n".join(f"| {name} | {seconds:.1f} |" for name, seconds in result["stage_seconds"].items())
    numbers = result["numbers"]
    iou = ", ".join(f"{kind} {value:.3f}" for kind, value in numbers["segmenter"]["iou"].items())
    false = ", ".join(f"{layout} {rate:.1%}" for layout, rate in numbers["segmenter"]["false_occlusion_rate"].items())
    return (
        f"# The whole method, one command, profile `{result['profile']}`\n\n"
        f"`{result['command']}`{' (EMPTY: a new detection cache, so prepare ran MTCNN on every image)' if result['cold'] else ''}"
        f"\n\n**{result['wall_seconds'] / 60:.1f} min** wall, {result['cpu_seconds'] / 60:.1f} min CPU (user + sys); "
        f"load average before {result['load_before']:.2f}, after {result['load_after']:.2f} "
        f"(1-minute; {result['cpus']} CPUs); {result['machine']}.\n\n"
        f"| stage | seconds |\n|---|---|\n{stages}\n\n"
        f"Base recognizer: test rank-1 {numbers['base_test']['rank1']:.1%}, rank-5 {numbers['base_test']['rank5']:.1%} "
        f"(val {numbers['base_val']['rank1']:.1%} / {numbers['base_val']['rank5']:.1%}).\n"
        f"Segmenter: pixel accuracy {numbers['segmenter']['pixel_accuracy']:.1%}; IoU {iou}; "
        f"false occlusion on clean crops {false}.\n\n{table1_md}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="LFW folder (one sub-folder per person)")
    parser.add_argument("--profile", default="fast", help="smoke, fast or paper (default: fast)")
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--run", help="run name (default: bench-pipeline-<profile>)")
    parser.add_argument("--cold", action="store_true", help="start from an empty detection cache")
    parser.add_argument("--out", default="benchmarks/results", help="folder for the JSON and Markdown results")
    args = parser.parse_args()

    name = args.run or f"bench-pipeline-{args.profile}"
    run = Path(args.runs_dir) / name
    command = [sys.executable, "-m", "keras_landmask.train", "--data", args.data, "--profile", args.profile,
               "--run", name, "--runs-dir", args.runs_dir, "--no-progress", "--force"]
    shown = " ".join(["python", *command[1:]]) + (" --cache-dir EMPTY" if args.cold else "")
    with tempfile.TemporaryDirectory(prefix="landmask-cache-") as empty_cache:
        if args.cold:
            command += ["--cache-dir", empty_cache]
        load_before = os.getloadavg()[0]
        start = time.perf_counter()
        subprocess.run(command, check=True)
        wall = time.perf_counter() - start
        load_after = os.getloadavg()[0]
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)

    stage_seconds = {stage: RunFolder(run).read_marker(stage)["seconds"] for stage in STAGE_NAMES}
    result = {
        "profile": args.profile,
        "command": shown,
        "cold": args.cold,
        "wall_seconds": round(wall, 1),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
        "stage_seconds": stage_seconds,
        "load_before": load_before,
        "load_after": load_after,
        "cpus": os.cpu_count(),
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
        "numbers": key_numbers(run),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"pipeline-{args.profile}.json").write_text(json.dumps(result, indent=2) + "\n")
    text = markdown(result, RunFolder(run).require("evaluate", "table1.md").read_text())
    (out / f"pipeline-{args.profile}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
