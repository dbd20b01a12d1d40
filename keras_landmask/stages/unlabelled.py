"""The ``unlabelled`` stage: faces without names, detected and aligned as the prepared ones, for distillation
(the teacher gives them targets; they need no labels).

They are the people of ``data.unknown_folder`` (LFW's single-photo people) that prepare did not draw as the
open-set unknowns (so the faces to reject stay unseen), when ``unlabelled.from_unknown_folder``, and every image
under ``unlabelled.folders`` (``--unlabelled DIR``, searched recursively), at most ``unlabelled.max_faces``
(seeded). Writes ``runs/<name>/unlabelled/faces.npz`` (a FaceSet: label -1, split ``unlabelled``; faces where
the detector found none are dropped) and ``summary.json``.
"""
from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np

from keras_landmask.data.build import build_faceset
from keras_landmask.data.lfw import Sample, images_under
from keras_landmask.errors import LandmaskError
from keras_landmask.io import write_json
from keras_landmask.stages.context import StageContext

SPLIT = "unlabelled"


def image_files(folder: str | Path) -> list[Path]:
    """Every image under ``folder`` (recursively), sorted; ``LandmaskError`` when it is not a folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise LandmaskError(f"unlabelled-faces folder '{folder}' not found; pass --unlabelled DIR with a folder of "
                            "face photos, or drop it from unlabelled.folders")
    return images_under(folder)


def unlabelled_files(context: StageContext) -> list[Path]:
    """The photos to use: the unknown folder's minus the open-set unknowns and the trained people's, then the
    extra folders', seeded sample of ``max_faces`` (0: all)."""
    cfg, data = context.config.unlabelled, context.config.data
    with context.run.require("prepare", "split.csv").open() as handle:
        used = {Path(row["path"]).resolve() for row in csv.DictReader(handle)}
    files = image_files(data.unknown_folder) if cfg.from_unknown_folder else []
    for folder in cfg.folders:
        files += image_files(folder)
    files = sorted({path.resolve() for path in files} - used)
    if cfg.max_faces and len(files) > cfg.max_faces:
        keep = np.random.default_rng([data.seed, 0x0DD]).choice(len(files), size=cfg.max_faces, replace=False)
        files = [files[i] for i in sorted(keep)]
    return files


def run(context: StageContext) -> dict:
    data = context.config.data
    out = context.run.stage_dir("unlabelled")
    start = time.perf_counter()
    files = unlabelled_files(context)
    context.run.unlabelled_file.unlink(missing_ok=True)
    if not files:
        summary = {"n_faces": 0, "n_files": 0, "n_no_face": 0, "n_unreadable": 0, "seconds": 0.0}
        write_json(out / "summary.json", summary)
        print("  no unlabelled faces (unlabelled.from_unknown_folder is off and no --unlabelled folder given)")
        return {**summary, "headline": "none"}
    samples = [Sample(path, f"unlabelled-{i}", -1, SPLIT) for i, path in enumerate(files)]

    def make_detector():
        from keras_landmask.data.detect import FaceDetector

        return FaceDetector(data.detect_batch)

    faces, unreadable, _ = build_faceset(samples, [], data.alignment, data.crop_height, data.crop_width,
                                         context.cache_dir, make_detector, data.detect_batch, context.progress,
                                         required_split=None)
    keep = ~faces.no_face
    faces = faces.select(keep)
    faces.save(context.run.unlabelled_file)
    summary = {"n_files": len(files), "n_faces": int(len(faces)), "n_no_face": int((~keep).sum()),
               "n_unreadable": len(unreadable), "seconds": round(time.perf_counter() - start, 1)}
    write_json(out / "summary.json", summary)
    print(f"  {summary['n_faces']} unlabelled faces from {len(files)} photos ({summary['n_no_face']} without a "
          f"face found, {summary['n_unreadable']} unreadable: skipped)")
    return {**summary, "headline": f"{summary['n_faces']} faces"}
