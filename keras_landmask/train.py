"""``python -m keras_landmask.train``: the training pipeline, stage by stage, into ``runs/<name>/``.

Each stage writes its outputs and a completion marker; a rerun skips finished stages unless
``--force`` is given or their settings changed.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from pathlib import Path

from keras_landmask.config import PROFILES, load_config, save_config
from keras_landmask.errors import LandmaskError
from keras_landmask.runs import RunFolder
from keras_landmask.stages.context import StageContext

# Stage name (module keras_landmask.stages.<name>, with a ``run(context) -> dict``) -> the config sections
# whose change invalidates its result; in pipeline order. Modules load only when their stage runs, so
# --help and argument errors answer without importing TensorFlow.
STAGES: dict[str, tuple[str, ...]] = {
    "prepare": ("data", "occlusion", "layout"),
    "base": ("data", "occlusion", "layout", "model", "train"),
    "pdsn": ("data", "occlusion", "layout", "model", "train", "pdsn"),
    "dictionary": ("data", "occlusion", "layout", "model", "train", "pdsn", "dictionary"),
    "segmenter": ("data", "occlusion", "layout", "segmenter"),
    "evaluate": ("data", "occlusion", "layout", "model", "train", "pdsn", "dictionary", "segmenter"),
}


def default_cache_dir() -> Path:
    return Path(os.environ.get("LANDMASK_CACHE", Path.home() / ".cache" / "keras-landmask"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m keras_landmask.train",
        description=(
            "Train the occlusion-robust recognizer of Johnston & Ngxande on a folder of faces (LFW layout: "
            "one sub-folder of JPEGs per person). Results go to runs/NAME/, one sub-folder per stage; "
            "finished stages are skipped on a rerun."
        ),
        epilog="example: python -m keras_landmask.train --data ../shared/data/lfw --run lfw --stages prepare",
    )
    parser.add_argument(
        "--data",
        default=os.environ.get("LANDMASK_DATA"),
        help="face folder, <DATA>/<Name>/<Name>_NNNN.jpg (default: $LANDMASK_DATA)",
    )
    parser.add_argument("--run", default="default", help="run name; outputs go to <runs-dir>/NAME/ (default: default)")
    parser.add_argument("--runs-dir", default="runs", help="folder holding the runs (default: runs)")
    parser.add_argument(
        "--profile",
        default="fast",
        help=f"size/schedule preset: {', '.join(PROFILES)} (smoke: ~1 min for tests; fast: < 1 h on 2 cores; "
        "paper: the paper's setup). Default: fast",
    )
    parser.add_argument(
        "--stages",
        default=",".join(STAGES),
        help=f"comma-separated stages to run, in pipeline order; available: {', '.join(STAGES)} (default: all)",
    )
    parser.add_argument("--config", help="YAML file overriding profile values, e.g. {data: {alignment: box}}")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one value, e.g. --set data.alignment=box (repeatable; after --config)",
    )
    parser.add_argument("--force", action="store_true", help="redo the chosen stages even if finished")
    parser.add_argument(
        "--cache-dir",
        default=None,
        help="where slow intermediate results (face detections, crops) are cached "
        "(default: $LANDMASK_CACHE or ~/.cache/keras-landmask)",
    )
    parser.add_argument(
        "--strategy",
        default="default",
        choices=("default", "mirrored", "multiworker"),
        help="tf.distribute strategy for training: default (one device), mirrored (all local GPUs), "
        "multiworker (several machines; set TF_CONFIG on each and run the same command)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars (e.g. in logs)")
    return parser


def parse_stages(text: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in names if s not in STAGES]
    if unknown or not names:
        raise LandmaskError(f"unknown stage(s) {', '.join(unknown) or '(none given)'}; available: {', '.join(STAGES)}")
    return [s for s in STAGES if s in names]


def run_pipeline(args: argparse.Namespace) -> dict[str, dict]:
    """Run the chosen stages; returns each stage's summary (``{"skipped": True}`` for finished ones)."""
    stages = parse_stages(args.stages)
    config = load_config(args.profile, args.config, args.set)
    if not args.data:
        raise LandmaskError("no data folder given; pass --data DIR (e.g. ../shared/data/lfw) or set LANDMASK_DATA")
    runs_dir = Path(args.runs_dir)
    if args.strategy == "multiworker":
        from keras_landmask.distribute import make_strategy, worker_runs_dir

        make_strategy(args.strategy)  # before any stage runs a TensorFlow op: collectives are set up at startup
        runs_dir = worker_runs_dir(runs_dir)  # only the chief writes to --runs-dir
    run = RunFolder(runs_dir / args.run)
    run.root.mkdir(parents=True, exist_ok=True)
    save_config(config, run.root / "config.yaml")
    context = StageContext(
        config=config,
        run=run,
        data_dir=Path(args.data),
        cache_dir=Path(args.cache_dir) if args.cache_dir else default_cache_dir(),
        progress=not args.no_progress,
        strategy=args.strategy,
        force=args.force,
    )
    summaries, seconds = {}, {}
    for name in stages:
        digest = config.section_digest(*STAGES[name])
        if not args.force and run.is_done(name, digest):
            print(f"[{name}] already finished in {run.folder(name)} (use --force to redo)")
            summaries[name] = {"skipped": True}
            continue
        run.clear(name)
        print(f"[{name}] running (profile {config.profile}) -> {run.folder(name)}")
        start = time.perf_counter()
        summaries[name] = importlib.import_module(f"keras_landmask.stages.{name}").run(context)
        seconds[name] = time.perf_counter() - start
        run.mark_done(name, digest, seconds[name])
        print(f"[{name}] done in {seconds[name]:.1f} s")
    print_run_summary(run, summaries, seconds)
    return summaries


def print_run_summary(run: RunFolder, summaries: dict[str, dict], seconds: dict[str, float]) -> None:
    """Per stage: its time and its headline (a short line, or a small table, the stage put in its summary)."""
    print(f"\nSummary of {run.root}:")
    for name, summary in summaries.items():
        took = f"{seconds[name]:8.1f} s" if name in seconds else "  finished before"
        headline = summary.get("headline", "")
        print(f"  {name:<10} {took}  {headline}".rstrip())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run_pipeline(args)
    except LandmaskError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished stages are kept, rerun the same command to continue", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
