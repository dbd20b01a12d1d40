"""Train and evaluate the base recognizer for one profile and write its numbers as JSON + Markdown.

    python benchmarks/train_profile.py --data ../shared/data/lfw --profile fast [--occlusion-augment 0.5]

Runs ``python -m keras_landmask.train --stages prepare,base`` into ``runs/bench-<profile>[-occ<p>]``
(finished stages are reused; ``--force`` retrains) and writes ``benchmarks/results/base-<...>.json`` and
``.md`` with rank-1/rank-5 (val, test), training time, images/s and parameter count. Timings on a shared
machine are noisy: compare runs made on the same machine.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

from keras_landmask.runs import RunFolder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="LFW folder (one sub-folder per person)")
    parser.add_argument("--profile", default="fast", help="smoke, fast or paper (default: fast)")
    parser.add_argument("--occlusion-augment", type=float, default=0.0,
                        help="probability of a synthetic occlusion per training image (default: 0, off)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="extra config overrides passed to the trainer, e.g. train.epochs=12 (repeatable)")
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--run", help="run name (default: bench-<profile>[-occ<p>]); an existing finished run is reused")
    parser.add_argument("--out", default="benchmarks/results", help="folder for the JSON and Markdown results")
    parser.add_argument("--force", action="store_true", help="retrain even if the run folder has a finished model")
    args = parser.parse_args()

    name = args.run or f"bench-{args.profile}" + (f"-occ{args.occlusion_augment:g}" if args.occlusion_augment else "")
    command = [sys.executable, "-m", "keras_landmask.train", "--data", args.data, "--profile", args.profile,
               "--run", name, "--runs-dir", args.runs_dir, "--stages", "prepare,base", "--no-progress",
               "--set", f"train.occlusion_augment={args.occlusion_augment}"]
    command += [item for pair in args.set for item in ("--set", pair)] + (["--force"] if args.force else [])
    start = time.perf_counter()
    subprocess.run(command, check=True)
    wall = time.perf_counter() - start

    metrics = json.loads(RunFolder(Path(args.runs_dir) / name).require("base", "metrics.json").read_text())
    result = {
        "profile": args.profile,
        "occlusion_augment": args.occlusion_augment,
        "overrides": args.set,
        "val": metrics["val"],
        "test": metrics["test"],
        "best_epoch": metrics["best_epoch"],
        "epochs_run": metrics["epochs_run"],
        "train_seconds": metrics["train_seconds"],
        "train_images_per_second": metrics["train_images_per_second"],
        "parameters": metrics["parameters"],
        "command_wall_seconds": round(wall, 1),
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"base-{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / f"base-{name}.md").write_text(
        f"# Base recognizer, profile `{args.profile}`, occlusion augmentation {args.occlusion_augment:g}"
        + (f", overrides {', '.join(args.set)}" if args.set else "") + "\n\n"
        "| split | rank-1 | rank-5 |\n| --- | --- | --- |\n"
        + "".join(f"| {s} | {result[s]['rank1']:.2%} | {result[s]['rank5']:.2%} |\n" for s in ("val", "test"))
        + f"\nBest epoch {result['best_epoch']} of {result['epochs_run']}; training {result['train_seconds'] / 60:.1f} min "
        f"({result['train_images_per_second']} images/s); {result['parameters']:,} parameters; {result['machine']}.\n"
    )
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
