"""The ``prepare`` stage: LFW → held-out people and split → aligned 128x96 crops → layouts → occlusion checks.

``data.openset_people`` people are held out of every training stage for the open-set evaluation (their photos
split ``enrol``/``probe``), with ``data.unknown_people`` never-enrolled people from ``data.unknown_folder``.
Writes to ``runs/<name>/prepare/``: ``split.csv``, ``faces.npz`` (a FaceSet of the trained people),
``openset.npz`` (a FaceSet of the held-out and unknown people), ``layouts.json``, ``summary.json``, and the
pictures ``layouts.png``, ``occlusions.png``, ``seg_labels.png``.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np

from keras_landmask.core.layouts import LandmarkStats, Layout, build_layouts, coverage
from keras_landmask.data.build import build_faceset
from keras_landmask.data.facemask import load_mask_templates
from keras_landmask.data.faceset import FaceSet
from keras_landmask.data.lfw import (discover_people, hold_out_people, openset_samples, split_people, unknown_samples,
                                     write_split)
from keras_landmask.data.occluders import occluder_catalogue, occlusion_columns
from keras_landmask.data.seglabels import mask_iou, segmentation_label
from keras_landmask.io import write_json
from keras_landmask.plots import contact_sheet, plot_layouts
from keras_landmask.stages.context import StageContext


def run(context: StageContext) -> dict:
    """Prepare the data of one run; returns the summary also written to ``summary.json``."""
    cfg = context.config.data
    out = context.run.stage_dir("prepare")
    start = time.perf_counter()
    everyone = discover_people(context.data_dir, cfg.min_images, cfg.max_people)
    people, held_out = hold_out_people(everyone, cfg.openset_people, cfg.seed)
    templates = load_mask_templates(context.masks_dir)  # before the slow work, so a bad folder fails fast
    samples = split_people(people, cfg.val_fraction, cfg.test_fraction, cfg.seed, cfg.max_images_per_person)
    openset = openset_samples(held_out, cfg.openset_enrol, cfg.seed, cfg.max_images_per_person)
    if openset and cfg.unknown_people:
        openset += unknown_samples(cfg.unknown_folder, cfg.unknown_people, cfg.seed, set(everyone))
    write_split(samples + openset, out / "split.csv")

    def make_detector():
        from keras_landmask.data.detect import FaceDetector

        return FaceDetector(cfg.detect_batch)

    def aligned(chosen: list, names: list[str], target: Path, required_split: str):
        faces, unreadable, cached = build_faceset(
            chosen, names, cfg.alignment, cfg.crop_height, cfg.crop_width, context.cache_dir, make_detector,
            cfg.detect_batch, context.progress, required_split)
        for path in unreadable:
            print(f"  skipped unreadable image: {path}")
        _link_or_copy(cached, target)
        return faces, unreadable

    faces, unreadable = aligned(samples, list(people), context.run.faces_file, "train")
    context.run.openset_file.unlink(missing_ok=True)
    heldout_faces, heldout_unreadable = (aligned(openset, sorted(held_out), context.run.openset_file, "enrol")
                                         if openset else (None, []))
    align_seconds = time.perf_counter() - start

    train = faces.subset("train")
    stats = LandmarkStats.from_landmarks(train.landmarks)
    layouts = build_layouts(stats, cfg.crop_height, cfg.crop_width, context.config.layout)
    write_json(context.run.layouts_file, {name: layout.to_dict() for name, layout in layouts.items()})

    occluders = occluder_catalogue(layouts, templates)
    seg_iou = seg_label_iou(train, occluders, context.config.occlusion.label_samples, context.config.occlusion.seed)
    draw_pictures(train, layouts, occlusion_columns(layouts, templates), context.config.occlusion.seed, out)

    summary = {
        "alignment": cfg.alignment,
        "n_people": len(people),
        "n_images": int(len(faces)),
        "n_no_face": int(faces.no_face.sum()),
        "n_multi_face": int(faces.multi_face.sum()),
        "n_unreadable": len(unreadable) + len(heldout_unreadable),
        "unreadable": unreadable + heldout_unreadable,
        "openset": openset_counts(heldout_faces),
        "split": {split: int((faces.splits == split).sum()) for split in ("train", "val", "test")},
        "coverage": {name: found for name, layout in layouts.items() if (found := coverage(layout, train.landmarks))},
        "seg_label_iou": seg_iou,
        "seconds_align": round(align_seconds, 2),
    }
    write_json(out / "summary.json", summary)
    print_summary(summary)
    return {**summary, "headline": f"{summary['n_people']} people, {summary['n_images']} images, "
                                   f"LM2 landmark coverage {summary['coverage']['LM2']['all']:.1%}"}


def openset_counts(faces: FaceSet | None) -> dict:
    """People and photos of the open-set evaluation (held-out people's enrol/probe photos, unknown people)."""
    if faces is None:
        return {"people": 0, "enrol": 0, "probe": 0, "unknown": 0}
    return {"people": int(len(faces.people)),
            **{split: int((faces.splits == split).sum()) for split in ("enrol", "probe", "unknown")}}


def _link_or_copy(source: Path, target: Path) -> None:
    """Put the cached FaceSet into the run folder without rewriting it (hard link, else copy)."""
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def seg_label_iou(faces: FaceSet, occluders: dict, samples: int, seed: int) -> dict[str, float]:
    """Mean IoU between the paper's segmentation labels (|clean − occluded| → threshold → opening, closing)
    and the true occlusion masks, per occlusion kind, over up to ``samples`` faces."""
    rng = np.random.default_rng(seed)
    chosen = rng.permutation(len(faces))[:samples]
    result = {}
    for kind, occlude in occluders.items():
        scores = []
        for i in chosen:
            occluded, truth = occlude(faces.images[i], faces.landmarks[i], rng)
            scores.append(mask_iou(segmentation_label(faces.images[i], occluded), truth))
        result[kind] = round(float(np.mean(scores)), 4) if scores else float("nan")
    return result


def draw_pictures(train: FaceSet, layouts: dict[str, Layout], columns: list, seed: int, out: Path) -> None:
    """``layouts.png`` (layouts over the mean face and samples), ``occlusions.png`` (every occlusion of
    ``columns`` on several faces) and ``seg_labels.png`` (occluded face, true mask, segmentation label)."""
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(train), size=min(4, len(train)), replace=False)
    mean_face = train.images.astype(np.float32).mean(axis=0)
    plot_layouts(mean_face, train.images[picks], train.landmarks[picks], layouts, out / "layouts.png")

    first_of_kind: dict[str, str] = {}  # kind -> title of its first column, in column order
    for title, _ in columns:
        first_of_kind.setdefault(title.split("\n")[0], title)
    grid, seg_rows = [], []
    for i in picks:
        image, marks = train.images[i], train.landmarks[i]
        row, seg_row = [image], []
        for title, occlude in columns:
            occluded, truth = occlude(image, marks, np.random.default_rng([seed, int(i)]))
            row.append(occluded)
            if title in first_of_kind.values():
                seg_row += [occluded, truth, segmentation_label(image, occluded)]
        grid.append(row)
        seg_rows.append(seg_row)
    contact_sheet(grid, ["clean"] + [title for title, _ in columns], out / "occlusions.png")
    seg_titles = [f"{kind}\n{part}" for kind in first_of_kind for part in ("occluded", "true mask", "seg label")]
    contact_sheet(seg_rows, seg_titles, out / "seg_labels.png")


def print_summary(summary: dict) -> None:
    print(
        f"  {summary['n_people']} people, {summary['n_images']} images "
        f"(train {summary['split']['train']} / val {summary['split']['val']} / test {summary['split']['test']}), "
        f"alignment '{summary['alignment']}'"
    )
    print(
        f"  no face found: {summary['n_no_face']} (centred fallback crop), several faces: {summary['n_multi_face']} "
        f"(nearest the centre kept), unreadable: {summary['n_unreadable']}"
    )
    held = summary["openset"]
    if held["people"]:
        print(f"  open-set evaluation (never trained on): {held['people']} people, {held['enrol']} enrolment and "
              f"{held['probe']} probe photos; {held['unknown']} unknown people to reject")
    for layout, regions in summary["coverage"].items():
        print(f"  {layout} landmark coverage: " + ", ".join(f"{k} {v:.1%}" for k, v in regions.items()))
    print("  seg-label IoU vs true mask: " + ", ".join(f"{k} {v:.3f}" for k, v in summary["seg_label_iou"].items()))
    print("  written: split.csv, faces.npz, openset.npz, layouts.json, summary.json, layouts.png, occlusions.png, "
          "seg_labels.png")
