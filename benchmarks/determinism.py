"""What ``--deterministic-ops`` (``tf.config.experimental.enable_op_determinism``) costs in training time, and
whether the weights differ with it.

    python benchmarks/determinism.py --data ../shared/data/lfw --profile smoke --stages base,pdsn --repeats 3

Prepares one run (``runs/determinism-<profile>``; the stages before the timed ones are reused), then retrains the
timed stages ``--repeats`` times with and without the flag, alternating so that a busy machine slows both alike;
each training is its own process (the flag cannot be undone in one). Records each stage's seconds (from its
marker) and a digest of every weight file the stages wrote. Writes ``benchmarks/results/determinism-<profile>.
{json,md}``: the median seconds per stage each way, their ratio, and whether the trainings of each way gave the
same weights (and the two ways each other's). Timings on a shared machine are noisy: read the ratio of medians, not one pair.
"""
from __future__ import annotations

import argparse
import hashlib
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np

from keras_landmask.io import write_json
from keras_landmask.runs import RunFolder
from keras_landmask.stages.graph import STAGE_NAMES


def weights_digest(run: RunFolder, stages: list[str]) -> str:
    """sha256 (16 hex digits) over the weights of every ``.keras`` file the stages wrote (not the files' bytes:
    a ``.keras`` zip records the time it was written)."""
    import keras

    import keras_landmask.models.base_network  # noqa: F401  registers the layers the files hold
    import keras_landmask.models.mask_generator  # noqa: F401

    digest = hashlib.sha256()
    for stage in stages:
        for path in sorted(run.folder(stage).rglob("*.keras")):
            if "backup" in path.parts:
                continue
            for weight in keras.saving.load_model(path, compile=False).weights:
                digest.update(np.asarray(weight).tobytes())
    return digest.hexdigest()[:16]


def summarise(trainings: list[dict], stages: list[str]) -> dict:
    """Median seconds per stage each way (``off``, ``on``), their ratio, and the distinct weight digests each way
    (one digest: the trainings of that way were bit for bit the same)."""
    ways = {"off": [t for t in trainings if not t["deterministic_ops"]], "on": [t for t in trainings if t["deterministic_ops"]]}
    medians = {way: {stage: float(np.median([t["seconds"][stage] for t in runs])) for stage in stages}
               for way, runs in ways.items()}
    return {"median_seconds": medians,
            "ratio_on_over_off": {s: round(medians["on"][s] / max(medians["off"][s], 1e-9), 3) for s in stages},
            "weight_digests": {way: sorted({t["weights"] for t in runs}) for way, runs in ways.items()}}


def markdown(result: dict) -> str:
    medians, ratio, digests = result["median_seconds"], result["ratio_on_over_off"], result["weight_digests"]
    lines = [f"# Cost of --deterministic-ops ({result['profile']}, {result['repeats']} trainings each way, "
             "alternating)", "", "| stage | median s, off | median s, on | on / off |", "|---|---|---|---|"]
    lines += [f"| {stage} | {medians['off'][stage]:.1f} | {medians['on'][stage]:.1f} | {ratio[stage]:.3f} |"
              for stage in result["stages"]]
    lines.append("")
    for way in ("off", "on"):
        same = len(digests[way]) == 1
        lines.append(f"- flag {way}: {'the same weights in every training' if same else 'weights differ between trainings'}"
                     f" ({len(digests[way])} distinct digest{'s' if len(digests[way]) > 1 else ''})")
    differ = set(digests["off"]) != set(digests["on"])
    lines += [f"- with the flag the weights are {'other than' if differ else 'the same as'} without it", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="LFW folder (one sub-folder per person)")
    parser.add_argument("--profile", default="smoke", help="smoke, fast or paper (default: smoke)")
    parser.add_argument("--stages", default="base,pdsn", help="the training stages to time (default: base,pdsn)")
    parser.add_argument("--repeats", type=int, default=3, help="trainings each way (default: 3)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config overrides for every training, e.g. train.epochs=2 (repeatable)")
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--out", default="benchmarks/results", help="folder for the JSON and Markdown results")
    args = parser.parse_args()

    timed = [s.strip() for s in args.stages.split(",") if s.strip()]
    if not timed or any(s not in STAGE_NAMES for s in timed):
        parser.error(f"--stages takes stage names from: {', '.join(STAGE_NAMES)}")
    name = f"determinism-{args.profile}"
    run = RunFolder(Path(args.runs_dir) / name)
    base = [sys.executable, "-m", "keras_landmask.train", "--data", args.data, "--profile", args.profile,
            "--run", name, "--runs-dir", args.runs_dir, "--no-progress"]
    base += [item for pair in args.set for item in ("--set", pair)]
    before = STAGE_NAMES[:STAGE_NAMES.index(timed[0])]
    subprocess.run([*base, "--stages", ",".join(before)], check=True)  # reused when finished

    trainings = []
    for repeat in range(args.repeats):
        for deterministic in (False, True):
            flag = ["--deterministic-ops"] if deterministic else []
            subprocess.run([*base, "--stages", ",".join(timed), "--force", *flag], check=True)
            seconds = {stage: run.read_marker(stage)["seconds"] for stage in timed}
            trainings.append({"deterministic_ops": deterministic, "repeat": repeat, "seconds": seconds,
                              "weights": weights_digest(run, timed)})
            print(f"repeat {repeat + 1}, deterministic ops {deterministic}: {seconds}", flush=True)

    result = {"profile": args.profile, "overrides": args.set, "stages": timed, "repeats": args.repeats,
              "machine": {"processor": platform.processor() or platform.machine(), "python": platform.python_version()},
              **summarise(trainings, timed), "trainings": trainings}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / f"{name}.json", result)
    (out / f"{name}.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
