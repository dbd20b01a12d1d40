"""Does occlusion-aware training help on occluded faces? Rank-1 per Table 1 occlusion, no FDM, per base model.

    python benchmarks/occlusion_robustness.py --masks ../shared/data/maskthefaces \\
        --runs runs/fast runs/bench-fast-occ0.5 runs/bench-paper runs/bench-paper-occ0.5

For each run folder (a finished ``base`` stage): the test split under every Table 1 occlusion (clean, the
five LM2 white bands, a face mask, sunglasses; the evaluate stage's own probes and seed) against the train
split as gallery, plain embeddings (the "none" column of Table 1). Writes
``benchmarks/results/occlusion-robustness.{json,md}``: rank-1 per occlusion and run, and the mean over the
occluded rows.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from keras_landmask.data.facemask import load_mask_templates
from keras_landmask.data.occluders import table1_probes
from keras_landmask.data.pipeline import embed
from keras_landmask.evaluate import identify
from keras_landmask.runs import RunFolder


def rank1_per_occlusion(run: Path, templates: dict) -> dict[str, float]:
    """Occlusion name → test rank-1 (fraction) of the run's base model, no FDM."""
    folder = RunFolder(run)
    faces, layouts, seed = folder.faces(), folder.layouts(), folder.config().occlusion.seed
    gallery, test = faces.subset("train"), faces.subset("test")
    embedder = folder.base_network().embedder
    gallery_embeddings = embed(embedder, gallery.images)
    return {occlusion: identify(gallery_embeddings, gallery.labels, embed(embedder, images), test.labels).rank1
            for occlusion, (images, _) in table1_probes(test, layouts, templates, seed).items()}


def markdown(results: dict[str, dict[str, float]]) -> str:
    runs = list(results)
    occlusions = list(next(iter(results.values())))
    lines = ["# Occlusion-aware training: test rank-1 per occlusion, no FDM", "",
             "| occlusion | " + " | ".join(f"`{r}`" for r in runs) + " |", "|---|" + "---|" * len(runs)]
    lines += [f"| {o} | " + " | ".join(f"{results[r][o]:.1%}" for r in runs) + " |" for o in occlusions]
    means = {r: np.mean([v for o, v in results[r].items() if o != "clean"]) for r in runs}
    lines.append("| **mean of the occluded rows** | " + " | ".join(f"**{means[r]:.1%}**" for r in runs) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", required=True, help="run folders with a finished base stage")
    parser.add_argument("--masks", required=True, help="MaskTheFace templates (../shared/data/maskthefaces)")
    parser.add_argument("--out", default="benchmarks/results", help="folder for the JSON and Markdown results")
    args = parser.parse_args()

    templates = load_mask_templates(args.masks)
    results = {Path(run).name: rank1_per_occlusion(Path(run), templates) for run in args.runs}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "occlusion-robustness.json").write_text(json.dumps(results, indent=2) + "\n")
    text = markdown(results)
    (out / "occlusion-robustness.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
