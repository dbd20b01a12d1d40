"""``python -m keras_landmask.train``: the training pipeline, stage by stage, into ``runs/<name>/``.

This module parses arguments and walks the stage graph (``stages.graph``): a stage runs when it is chosen and
its settings, its data or a stage it reads changed since it finished (or with ``--force``); otherwise its
result is reused, and the end summary says which were.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from keras_landmask.config import PROFILES, load_config, resolve_folders, save_config
from keras_landmask.data.lfw import folder_digest
from keras_landmask.errors import LandmaskError
from keras_landmask.runs import RunFolder
from keras_landmask.stages.context import StageContext
from keras_landmask.stages.graph import (STAGE_NAMES, check_plan, current_inputs, describe_graph, format_plan,
                                         marker_record, plan, stage_key)


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
        epilog="stages, in pipeline order (a stage reruns when its settings, its data or a stage it reads "
        "changed):\n" + describe_graph() + "\n\nexample: python -m keras_landmask.train --data ../shared/data/lfw "
        "--run lfw --stages prepare",
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
        default=",".join(STAGE_NAMES),
        help=f"comma-separated stages to run, in pipeline order; available: {', '.join(STAGE_NAMES)} (default: all)",
    )
    parser.add_argument("--unlabelled", action="append", default=[], metavar="DIR",
                        help="a folder of face photos without names to distil on as well (repeatable; searched "
                        "recursively; sets unlabelled.folders)")
    parser.add_argument("--plan", action="store_true",
                        help="say what would run and why (which setting or upstream stage changed), then stop")
    parser.add_argument("--config", help="YAML file overriding profile values, e.g. {data: {alignment: box}}")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one value, e.g. --set data.alignment=box (repeatable; after --config)",
    )
    parser.add_argument("--force", action="store_true",
                        help="redo the chosen stages even if finished (the stages that read them rerun too)")
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
    parser.add_argument("--deterministic-ops", action="store_true",
                        help="make every TensorFlow op deterministic (tf.config.experimental.enable_op_determinism): "
                        "the same weights for the same seed on a GPU too (on a CPU training is bit for bit the same "
                        "without it; its cost there: benchmarks/results/determinism-smoke.md)")
    parser.add_argument("--no-progress", action="store_true",
                        help="hide progress bars on a terminal too (output into a file or a pipe never has them: "
                             "training logs one line per epoch there)")
    return parser


def show_progress(args: argparse.Namespace) -> bool:
    """Progress bars only on a terminal (stderr), unless ``--no-progress``: a log file gets no bars."""
    return not args.no_progress and sys.stderr.isatty()


def parse_stages(text: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in names if s not in STAGE_NAMES]
    if unknown or not names:
        raise LandmaskError(f"unknown stage(s) {', '.join(unknown) or '(none given)'}; available: "
                            f"{', '.join(STAGE_NAMES)}")
    return [s for s in STAGE_NAMES if s in names]


def run_pipeline(args: argparse.Namespace) -> dict[str, dict]:
    """Run the chosen stages that are not up to date; returns each stage's summary (``{"skipped": True}`` for
    the reused ones)."""
    chosen = parse_stages(args.stages)
    config = load_config(args.profile, args.config, args.set)
    resolve_folders(config, args.data, args.unlabelled)
    runs_dir = Path(args.runs_dir)
    if args.strategy == "multiworker" and not args.plan:
        from keras_landmask.distribute import make_strategy, worker_runs_dir

        make_strategy(args.strategy)  # before any stage runs a TensorFlow op: collectives are set up at startup
        runs_dir = worker_runs_dir(runs_dir)  # only the chief writes to --runs-dir
    run = RunFolder(runs_dir / args.run)
    data_files = folder_digest(config.data.folder)
    decisions = plan(run, config, data_files, chosen, args.force)
    print(f"Plan for {run.root} (profile {config.profile}):\n{format_plan(decisions)}")
    if args.plan:
        return {}
    check_plan(decisions)
    if args.deterministic_ops:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    run.root.mkdir(parents=True, exist_ok=True)
    save_config(config, run.config_file)
    summaries, seconds = {}, {}
    for decision in decisions:
        stage, name = decision.stage, decision.stage.name
        if name not in chosen:
            continue
        if decision.action == "done":
            print(f"[{name}] already finished in {run.folder(name)}, settings and inputs unchanged (use --force "
                  "to redo)")
            summaries[name] = {"skipped": True}
            continue
        inputs = current_inputs(stage, run)
        run.clear(name)
        print(f"[{name}] running ({'; '.join(decision.reasons)}) -> {run.folder(name)}")
        context = StageContext(config=config, run=run, cache_dir=Path(args.cache_dir or default_cache_dir()),
                               key=stage_key(stage, config, data_files, inputs), progress=show_progress(args),
                               force=args.force, strategy=args.strategy)
        start = time.perf_counter()
        summaries[name] = stage.run(context)
        seconds[name] = time.perf_counter() - start
        run.write_marker(name, marker_record(stage, config, data_files, inputs, seconds[name]))
        print(f"[{name}] done in {seconds[name]:.1f} s")
    print_run_summary(run, summaries, seconds)
    print_left_out_of_date(run, config, data_files)
    return summaries


def print_run_summary(run: RunFolder, summaries: dict[str, dict], seconds: dict[str, float]) -> None:
    """Per stage: its time (or that it was reused) and its headline (a line, or a small table, from its summary)."""
    print(f"\nSummary of {run.root}:")
    for name, summary in summaries.items():
        took = f"{seconds[name]:8.1f} s" if name in seconds else "  reused  "
        headline = summary.get("headline", "")
        print(f"  {name:<10} {took}  {headline}".rstrip())


def print_left_out_of_date(run: RunFolder, config, data_files: str) -> None:
    """Name the finished stages this command left out of date (they read a stage that just ran again)."""
    stale = [d for d in plan(run, config, data_files, [], False) if d.action == "stale"]
    if stale:
        names = ",".join(d.stage.name for d in stale)
        print(f"\nout of date now: {', '.join(f'{d.stage.name} ({d.reasons[0]})' for d in stale)}; "
              f"run them with --stages {names}, or leave --stages out")


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
