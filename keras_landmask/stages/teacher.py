"""The ``teacher`` stage: the teacher's (dlib's face ResNet, ``keras_landmask.teacher``) embedding of every
prepared face, clean: the anchor of the open-set evaluation and, later, the target of distillation.

Embeds every face of ``prepare/faces.npz`` (all splits), and, when they exist, ``prepare/openset.npz`` and the
unlabelled stage's faces (distillation targets).
The embeddings of a set of crops are cached in the cache folder, keyed by a digest of the crops' bytes, the
teacher's settings and its version, so a rerun on the same crops (``--force``, or a changed setting of another
section) reads them back in seconds. The closed-set rank-1 / rank-5 of the teacher itself (test split against
the train gallery) is the yardstick beside the base network's.

Writes ``runs/<name>/teacher/``: ``embeddings.npz`` (``faces float32 [N, 128]``, rows of ``faces.npz``;
``openset float32 [M, 128]``, rows of ``openset.npz``; ``unlabelled float32 [U, 128]``, rows of
``unlabelled/faces.npz``; ``[0, 128]`` without them; unit length) and
``summary.json``.
"""
from __future__ import annotations

import time

import numpy as np

from keras_landmask.evaluate import identify
from keras_landmask.io import write_json, write_npz
from keras_landmask.stages.context import StageContext
from keras_landmask.teacher import DIM, DlibTeacher, cached_embeddings


def run(context: StageContext) -> dict:
    cfg = context.config.teacher
    out = context.run.stage_dir("teacher")
    teacher = DlibTeacher.from_config(cfg)
    start = time.perf_counter()
    faces = context.run.faces()
    sets = {"faces": faces.images}
    openset = context.run.openset() if context.run.openset_file.is_file() else None
    if openset is not None:
        sets["openset"] = openset.images
    unlabelled = context.run.unlabelled() if context.run.read_marker("unlabelled") else None
    if unlabelled is not None:
        sets["unlabelled"] = unlabelled.images
    results = {name: cached_embeddings(teacher, images, context.cache_dir, context.progress, f"teacher ({name})")
               for name, images in sets.items()}
    arrays = {name: result["embeddings"] for name, result in results.items()}
    for name in ("openset", "unlabelled"):
        arrays.setdefault(name, np.zeros((0, DIM), np.float32))
    write_npz(context.run.teacher_file, **arrays)
    seconds = time.perf_counter() - start

    reused = [name for name, result in results.items() if result["reused"]]
    n_faces = sum(len(images) for images in sets.values())
    compute_seconds = sum(result["seconds"] for result in results.values())
    found = np.concatenate([result["found"] for result in results.values()])
    summary = {
        "model": cfg.model,
        "settings": teacher.settings,
        "n_faces": int(len(faces)),
        "n_openset": int(len(arrays["openset"])),
        "n_unlabelled": int(len(arrays["unlabelled"])),
        "reused_cache": reused,  # the sets whose embeddings came from the cache
        "seconds": round(seconds, 2),
        "faces_per_second": round(n_faces / compute_seconds, 1) if compute_seconds > 0 else None,
        "detected_fraction": round(float(found.mean()), 4) if len(found) else None,  # HOG found it, else fixed box
        "test": closed_set(faces, arrays["faces"]),
    }
    write_json(out / "summary.json", summary)
    print_summary(summary)
    test = summary["test"]
    headline = (f"{summary['n_faces']} faces + {summary['n_openset']} open-set + {summary['n_unlabelled']} unlabelled, "
                f"{summary['faces_per_second']} faces/s"
                f"{' (cached)' if len(reused) == len(results) else ''}")
    if test:
        headline = f"test rank-1 {test['rank1']:.1%}, rank-5 {test['rank5']:.1%} (closed set); " + headline
    return {**summary, "headline": headline}


def closed_set(faces, embeddings: np.ndarray) -> dict | None:
    """The teacher's rank-1 / rank-5 of the test split against the train gallery (None without both)."""
    train, test = faces.splits == "train", faces.splits == "test"
    if not (train.any() and test.any()):
        return None
    result = identify(embeddings[train], faces.labels[train], embeddings[test], faces.labels[test])
    return {"rank1": round(result.rank1, 4), "rank5": round(result.rank5, 4), "n_probes": result.n_probes}


def print_summary(summary: dict) -> None:
    if summary["reused_cache"]:
        print(f"  reused cached teacher embeddings of {', '.join(summary['reused_cache'])} "
              f"({summary['seconds']:.1f} s)")
    print(f"  {summary['n_faces']} faces, {summary['n_openset']} open-set and {summary['n_unlabelled']} unlabelled, "
          f"{summary['faces_per_second']} faces/s when computed; HOG detector found "
          f"{summary['detected_fraction']:.1%} (the others: the fixed face box)")
    if summary["test"]:
        test = summary["test"]
        print(f"  teacher closed-set test rank-1 {test['rank1']:.2%}, rank-5 {test['rank5']:.2%} "
              f"({test['n_probes']} probes vs the train gallery)")
    print("  written: embeddings.npz, summary.json")
