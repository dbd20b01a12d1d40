"""The open-set measures of the base recognizer over several training seeds, as mean ± std.

    python benchmarks/openset_seeds.py --data ../shared/data/lfw --profile fast --seeds 1 2 3 [--set KEY=VALUE]

One run per seed, ``runs/<name>-seed<k>`` with ``--set train.seed=k``, through the trainer's stages
``prepare,unlabelled,teacher,base,openset`` (the data split stays fixed: only the training draws change;
detections, crops and teacher embeddings come from the cache after the first); ``--also RUN`` counts a finished
run of the same settings (e.g. the whole pipeline's) as one more seed. Without the PDSN and dictionary
stages the open-set table has the base network's column (no FDM) and the teacher's. Writes
``benchmarks/results/openset-seeds-<name>.{json,md}``: per seed and as mean ± std over the seeds, rank-1 and DIR
at FPIR 1 % with 1 enrolment photo for the clean, face mask and sunglasses probes, TAR at FAR 0.1 % (clean), and
the closed-set test rank-1 (Table 1's clean cell without an FDM).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from keras_landmask.io import write_json
from keras_landmask.runs import RunFolder

ROWS = ("clean", "face_mask", "sunglasses")


def seed_result(run: RunFolder) -> dict:
    """``{"base": {measure: value}, "teacher": {...}}`` of one finished run."""
    table = json.loads(run.require("openset", "openset.json").read_text())["table"]
    test = json.loads(run.require("base", "metrics.json").read_text())["test"]
    result = {}
    for column in ("none", "teacher"):
        values = {f"{row} {key}": table[row][column][key] for row in ROWS if column in table[row]
                  for key in ("rank1_1", "dir_1")}
        values["clean tar"] = table["clean"][column]["tar"]
        result["base" if column == "none" else column] = values
    result["base"]["table1 clean"] = test["rank1"]
    return result


def summarise(per_seed: dict[int, dict]) -> dict:
    """``{column: {measure: [mean, std]}}`` over the seeds."""
    first = next(iter(per_seed.values()))
    return {column: {measure: [float(np.mean(v := [r[column][measure] for r in per_seed.values()])),
                               float(np.std(v))] for measure in first[column]} for column in first}


def write_markdown(name: str, per_seed: dict, summary: dict, overrides: list[str], path: Path) -> None:
    measures = list(summary["base"])
    lines = [f"# Open-set measures over {len(per_seed)} seeds ({name}; overrides: {', '.join(overrides) or 'none'})",
             "", "1 enrolment photo per person; DIR at FPIR 1 %; TAR at FAR 0.1 %; `table1 clean`: closed-set test "
             "rank-1. Mean ± std over the seeds (population std), then each seed.", "",
             "| measure | base | teacher |", "|---|---|---|"]
    for measure in measures:
        cells = [f"{summary[c][measure][0]:.1%} ± {summary[c][measure][1]:.1%}" if measure in summary[c] else "–"
                 for c in ("base", "teacher")]
        lines.append(f"| {measure} | " + " | ".join(cells) + " |")
    lines += ["", "| seed | " + " | ".join(measures) + " |", "|---" * (len(measures) + 1) + "|"]
    lines += [f"| {seed} | " + " | ".join(f"{r['base'][m]:.1%}" for m in measures) + " |"
              for seed, r in per_seed.items()]
    path.write_text("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="LFW folder (one sub-folder per person)")
    parser.add_argument("--profile", default="fast", help="smoke, fast or paper (default: fast)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="train.seed values (default: 1 2 3)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config overrides for every seed, e.g. train.teacher=none (repeatable)")
    parser.add_argument("--name", help="run-name prefix (default: seeds-<profile>)")
    parser.add_argument("--also", action="append", default=[], metavar="RUN",
                        help="a finished run of the same profile and overrides (e.g. lfw) to count as one more seed, "
                        "its train.seed (repeatable)")
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--out", default="benchmarks/results", help="folder for the JSON and Markdown results")
    args = parser.parse_args()

    name = args.name or f"seeds-{args.profile}"
    per_seed, seconds = {}, {}
    for seed in args.seeds:
        run = f"{name}-seed{seed}"
        command = [sys.executable, "-m", "keras_landmask.train", "--data", args.data, "--profile", args.profile,
                   "--run", run, "--runs-dir", args.runs_dir, "--stages", "prepare,unlabelled,teacher,base,openset",
                   "--no-progress", "--set", f"train.seed={seed}"]
        command += [item for pair in args.set for item in ("--set", pair)]
        start = time.perf_counter()
        subprocess.run(command, check=True)
        seconds[seed] = round(time.perf_counter() - start, 1)
        per_seed[seed] = seed_result(RunFolder(Path(args.runs_dir) / run))
        print(f"seed {seed}: " + ", ".join(f"{k} {v:.1%}" for k, v in per_seed[seed]["base"].items()), flush=True)

    for run_name in args.also:
        run = RunFolder(Path(args.runs_dir) / run_name)
        per_seed[run.config().train.seed] = seed_result(run)
    summary = summarise(per_seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / f"openset-seeds-{name}.json", {"profile": args.profile, "overrides": args.set,
                                                    "per_seed": per_seed, "mean_std": summary,
                                                    "command_seconds": seconds})
    write_markdown(name, per_seed, summary, args.set, out / f"openset-seeds-{name}.md")
    print((out / f"openset-seeds-{name}.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
