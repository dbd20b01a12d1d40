"""Train the base recognizer on this machine as one process and as several ``multiworker`` processes,
and write wall time, images/s and the final metrics of both as JSON + Markdown.

    python benchmarks/distributed_localhost.py --data ../shared/data/lfw [--profile smoke] [--workers 2]

Each configuration runs ``python -m keras_landmask.train --stages prepare,base --force`` into
``<runs-dir>/bench-dist-<profile>-<n>proc``: one process with the default strategy, then ``--workers``
processes with ``--strategy multiworker`` and ``TF_CONFIG`` on free localhost ports, each limited to its
share of the CPU cores. A prepare run first fills the detection cache, so both time the same work.
Writes ``<out>/distributed-<profile>.json`` and ``.md``. Workers on one machine share its cores, so
this measures the overhead of synchronous multi-worker training, not a speed-up; timings are noisy.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from keras_landmask.runs import RunFolder


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


def train_command(args, run: str, *extra: str) -> list[str]:
    sets = [item for value in args.set for item in ("--set", value)]
    cache = ["--cache-dir", args.cache_dir] if args.cache_dir else []
    return [sys.executable, "-m", "keras_landmask.train", "--data", args.data, "--profile", args.profile,
            "--runs-dir", args.runs_dir, "--run", run, "--no-progress", *cache, *sets, *extra]


def run_workers(args, run: str, workers: int) -> float:
    """Train with ``workers`` processes (1: default strategy); returns the wall time in seconds."""
    command = train_command(args, run, "--stages", "prepare,base", "--force")
    if workers == 1:
        start = time.perf_counter()
        subprocess.run(command, check=True, timeout=args.timeout)
        return time.perf_counter() - start
    cluster = {"worker": [f"localhost:{free_port()}" for _ in range(workers)]}
    threads = str(max(1, (os.cpu_count() or 1) // workers))
    with tempfile.TemporaryDirectory() as temp:  # the non-chief workers' private run folders
        start = time.perf_counter()
        processes = [
            subprocess.Popen(command + ["--strategy", "multiworker"], env=dict(
                os.environ, TMPDIR=temp, TF_NUM_INTRAOP_THREADS=threads, TF_NUM_INTEROP_THREADS=threads,
                TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})))
            for index in range(workers)
        ]
        try:
            codes = [process.wait(timeout=args.timeout) for process in processes]
        finally:
            for process in processes:
                process.kill()
        wall = time.perf_counter() - start
    if any(codes):
        raise SystemExit(f"multi-worker training failed: exit codes {codes}")
    return wall


def summary(args, run: str, workers: int, wall: float) -> dict:
    metrics = json.loads(RunFolder(Path(args.runs_dir) / run).require("base", "metrics.json").read_text())
    return {
        "workers": workers,
        "strategy": "multiworker" if workers > 1 else "default",
        "wall_seconds": round(wall, 1),
        "train_seconds": metrics["train_seconds"],
        "train_images_per_second": metrics["train_images_per_second"],
        "epochs_run": metrics["epochs_run"],
        "best_epoch": metrics["best_epoch"],
        "val": metrics["val"],
        "test": metrics["test"],
    }


def markdown(result: dict) -> str:
    rows = "".join(
        f"| {r['workers']} ({r['strategy']}) | {r['wall_seconds']} | {r['train_seconds']} | "
        f"{r['train_images_per_second']} | {r['epochs_run']} | {r['val']['rank1']:.2%} | {r['test']['rank1']:.2%} |\n"
        for r in result["runs"]
    )
    return (
        f"# Multi-worker training on localhost, profile `{result['profile']}`\n\n"
        "| processes | wall s | train s | images/s | epochs | val rank-1 | test rank-1 |\n"
        "| --- | --- | --- | --- | --- | --- | --- |\n" + rows +
        f"\nWall time is the whole command (prepare from cache + base); train s and images/s cover `fit` only. "
        f"{result['cpu_count']} CPU cores shared by all processes; {result['machine']}.\n"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=os.environ.get("LANDMASK_DATA"),
                        help="LFW folder (default: $LANDMASK_DATA)")
    parser.add_argument("--profile", default="smoke", help="smoke, fast or paper (default: smoke)")
    parser.add_argument("--workers", type=int, default=2, help="multi-worker processes (default: 2)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override passed to every run, e.g. train.epochs=5 (repeatable)")
    parser.add_argument("--runs-dir", default="runs", help="folder holding the runs (default: runs)")
    parser.add_argument("--cache-dir", help="detection/crop cache (default: the training CLI's default)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds allowed per run (default: 3600)")
    parser.add_argument("--out", default="benchmarks/results", help="folder for the JSON and Markdown results")
    args = parser.parse_args()
    if not args.data:
        parser.error("no data folder: pass --data DIR or set LANDMASK_DATA")
    if args.workers < 2:
        parser.error("--workers must be at least 2")

    runs = {n: f"bench-dist-{args.profile}-{n}proc" for n in (1, args.workers)}
    subprocess.run(train_command(args, runs[1], "--stages", "prepare"), check=True, timeout=args.timeout)
    result = {
        "profile": args.profile,
        "overrides": args.set,
        "cpu_count": os.cpu_count(),
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
        "runs": [summary(args, run, n, run_workers(args, run, n)) for n, run in runs.items()],
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"distributed-{args.profile}.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / f"distributed-{args.profile}.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
