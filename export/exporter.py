"""Export a finished run folder to TFLite: ``features``, ``head``, the MTCNN nets and ``manifest.json``.

``export_run`` converts the run's robust models for one layout (``DEFAULT_LAYOUT``, LM2) with one quantization,
checks every model has only builtin ops, measures Table 1 parity of the exported models against the Keras
ones on the run's own test split and refuses an export that loses more than the tolerance (``parity.guard``),
calibrates the open-set (1:N) and verification (1:1, on pairs) thresholds on its validation split, and writes
everything. The files are made in a staging folder beside ``--out`` and moved in only when the export is
complete and within the tolerance (models first, manifest last, so a folder with a manifest is complete); a
refused or interrupted export leaves ``--out`` as it was.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import time
from pathlib import Path

import numpy as np

from edge_runtime.interpreter import TFLiteModel
from export.convert import QUANTIZATIONS, check_builtin_ops, to_tflite
from export.detector import APPLIED_QUANTIZATION, DETECTOR_SPEC, export_mtcnn
from export.manifest import manifest_header, model_entry
from export.parity import agreement, compare, guard, keras_pair, pattern_embedder, table_rows, tflite_pair
from export.threshold import (calibrate_threshold, openset_pattern_thresholds, openset_threshold,
                              pattern_thresholds, verify_thresholds)
from keras_landmask.core.align import TEMPLATE_128x96
from keras_landmask.core.layouts import DEFAULT_LAYOUT, Layout
from keras_landmask.core.manifest import MANIFEST_NAME
from keras_landmask.data.facemask import load_mask_templates
from keras_landmask.data.faceset import FaceSet
from keras_landmask.data.occluders import occluder_catalogue, occlude_each, table1_probes
from keras_landmask.errors import LandmaskError
from keras_landmask.io import atomic_write, write_json
from keras_landmask.models.robust_embedder import load_robust_models
from keras_landmask.runs import RunFolder

FEATURES_OUTPUTS = ["feature_map", "occluded_regions"]
HEAD_OUTPUTS = ["embedding"]


class AccuracyDropError(LandmaskError):
    """The exported models lose more rank-1 against the Keras ones than the tolerance allows."""


def export_run(run_dir: str | Path, out_dir: str | Path, quantize: str = "int8", layout: str = DEFAULT_LAYOUT,
               masks_dir: str | Path | None = None, calibration: int = 200, threads: int = 2,
               allow_accuracy_drop: float | None = None, log=print) -> dict:
    """Export ``run_dir`` into ``out_dir``; returns the manifest. ``calibration`` = representative crops for
    int8 (half clean, half with synthetic occlusions); ``masks_dir`` = MaskTheFace templates (default: the
    folder the run was trained with, recorded in its ``config.yaml``); ``allow_accuracy_drop``: points of
    rank-1 any Table 1 cell may lose (default: ``parity.guard``'s tolerance). ``AccuracyDropError`` when the
    export loses more; ``out_dir`` is then left as it was."""
    if quantize not in QUANTIZATIONS:
        raise LandmaskError(f"unknown quantization '{quantize}'; choose one of {', '.join(QUANTIZATIONS)}")
    for option, value in (("calibration", calibration), ("threads", threads)):
        if not isinstance(value, int) or value < 1:
            raise LandmaskError(f"--{option} must be a whole number of at least 1, got {value!r}")
    if allow_accuracy_drop is not None and not (isinstance(allow_accuracy_drop, (int, float))
                                                and math.isfinite(allow_accuracy_drop) and allow_accuracy_drop >= 0):
        raise LandmaskError(f"--allow-accuracy-drop is a number of points from 0 to 100, got {allow_accuracy_drop!r}")
    run = RunFolder(run_dir)
    if not run.root.is_dir():
        raise LandmaskError(f"run folder '{run.root}' not found; train one with python -m keras_landmask.train")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise LandmaskError(f"--out '{out}' is a file; give a folder for the exported models")
    config = run.config()
    faces = run.faces()
    layouts = run.layouts()
    models = load_robust_models(run, layout)
    masks_dir = masks_dir or config.occlusion.masks_dir
    if not masks_dir:
        raise LandmaskError("the run records no MaskTheFace templates folder (trained by an older version); pass "
                            "--masks DIR (e.g. ../shared/data/maskthefaces)")
    templates = load_mask_templates(masks_dir)
    occluders = occluder_catalogue(layouts, templates)
    staging = out.parent / f".{out.name}.export-partial"
    try:
        shutil.rmtree(staging, ignore_errors=True)  # an earlier export that was killed
        staging.mkdir(parents=True)
    except OSError as error:
        raise LandmaskError(f"cannot create the output folder '{out}' ({error.strerror or error}); choose a "
                            "writable --out") from None
    try:
        manifest = _export(run, config, faces, layouts, models, templates, occluders, staging, quantize, layout,
                           calibration, threads, allow_accuracy_drop, log)
        publish(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def _export(run: RunFolder, config, faces: FaceSet, layouts: dict, models, templates, occluders, out: Path,
            quantize: str, layout: str, calibration: int, threads: int, allow_accuracy_drop: float | None,
            log) -> dict:
    """``export_run``'s work, writing into the staging folder ``out``."""
    train, val, test = (faces.subset(s) for s in ("train", "val", "test"))
    start = time.perf_counter()
    log(f"converting features and head ({quantize})")
    images = calibration_images(train, occluders, calibration, config.occlusion.seed)
    keras = keras_pair(models)
    maps, flags = keras.features(images)
    files = {
        "features": write_model(out / "features.tflite", to_tflite(
            models.features, FEATURES_OUTPUTS, quantize, lambda: ({"image": im[None]} for im in images))),
        "head": write_model(out / "head.tflite", to_tflite(
            models.masked_head, HEAD_OUTPUTS, quantize,
            lambda: ({"feature_map": m[None], "occluded_regions": f[None]} for m, f in zip(maps, varied(flags))))),
    }
    log("converting the MTCNN detector")
    files.update(export_mtcnn(out, quantize))
    entries = {name: model_entry(path, check_builtin_ops(path.read_bytes(), name)) for name, path in files.items()}

    log("measuring parity against the Keras models on the test split")
    exported = tflite_pair(TFLiteModel(files["features"], threads=threads), TFLiteModel(files["head"], threads=threads))
    probes = {name: images
              for name, (images, _) in table1_probes(test, layouts, templates, config.occlusion.seed).items()}
    keras_rows = keras_reference(run, layout, lambda: table_rows(keras, keras.features(train.images)[0], train.labels,
                                                                 probes, test.labels, layout))
    gallery_maps = exported.features(train.images)[0]
    exported_rows = table_rows(exported, gallery_maps, train.labels, probes, test.labels, layout)
    comparison = compare(keras_rows, exported_rows, layout)
    verdict = guard(comparison, len(test), allow_accuracy_drop)
    log(f"parity: largest drop {comparison['max_drop_points']:.2f} points; {verdict['note']}")
    if not verdict["passed"]:
        raise AccuracyDropError(
            f"the {quantize} models lose more rank-1 against the Keras ones than the tolerance allows "
            f"({'; '.join(verdict['over'])}; tolerance in points: {verdict['tolerance_points']['clean']:g} clean, "
            f"{verdict['tolerance_points']['occluded']:g} occluded), so nothing was exported; try --quantize "
            "dynamic or float16, or accept the loss with --allow-accuracy-drop POINTS")
    parity = {**comparison, **agreement(keras, exported, probes["clean"][:64]), "guard": verdict}
    embed = pattern_embedder(exported.masked_head)
    threshold = calibrate(run, exported, embed, (train, gallery_maps), val, layouts, templates, config.occlusion.seed,
                          len(layouts[layout].regions), log)

    manifest = {
        **manifest_header(quantize),
        "models": entries,
        "crop": {"height": int(faces.images.shape[1]), "width": int(faces.images.shape[2]), "channels": "RGB",
                 "dtype": "uint8", "alignment": config.data.alignment,
                 "template_landmarks_128x96": TEMPLATE_128x96.tolist()},
        "layout": models_layout(layouts[layout], models),
        "detector": {**DETECTOR_SPEC, "quantization": APPLIED_QUANTIZATION[quantize]},
        "threshold": threshold,
        "parity": {"layout": layout, "test_probes": int(len(test)), "gallery": int(len(train)),
                   "keras": keras_rows, "tflite": exported_rows, **parity},
        "run": {"folder": str(run.root), "profile": config.profile, "export_seconds": round(time.perf_counter() - start, 1)},
    }
    write_json(out / MANIFEST_NAME, manifest)
    return manifest


def publish(staging: Path, out: Path) -> None:
    """Move the finished export from ``staging`` into ``out``: the old manifest out first, the new one in last,
    so ``out`` never holds a manifest that does not describe its files."""
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST_NAME).unlink(missing_ok=True)
    for path in sorted(staging.iterdir(), key=lambda p: p.name == MANIFEST_NAME):
        os.replace(path, out / path.name)


def calibrate(run: RunFolder, exported, embed, gallery: tuple, val: FaceSet, layouts: dict, templates, seed: int,
              regions: int, log) -> dict:
    """The manifest's ``threshold``: identification (clean, and ``per_pattern``) and ``verify`` thresholds, on
    the run's open-set split when it has one (held-out people and unknowns), else on the validation split
    against the train gallery (``gallery``: the train FaceSet and its exported feature maps)."""
    clean = (0,) * regions
    held = run.openset() if run.openset_file.is_file() else None
    if held is not None and (held.splits == "unknown").any() and (held.splits == "probe").any():
        log("calibrating identification and verification thresholds on the open-set split (people never trained "
            "on, unknown people; clean, and per occlusion pattern)")
        enrol = held.subset("enrol")
        first = np.unique(enrol.labels, return_index=True)[1]  # one enrolment photo per person
        probe, unknown = held.subset("probe"), held.subset("unknown")
        enrol_maps, probe_maps, unknown_maps = (exported.features(f.images[rows])[0] for f, rows in
                                                ((enrol, first), (probe, slice(None)), (unknown, slice(None))))
        threshold = openset_threshold(embed(enrol_maps, clean), enrol.labels[first], embed(probe_maps, clean),
                                      probe.labels, embed(unknown_maps, clean))
        occluded = {name: occluded_probes(f, layouts, templates, seed) for name, f in (("probe", probe),
                                                                                          ("unknown", unknown))}
        threshold["per_pattern"] = openset_pattern_thresholds(
            exported.features, embed, enrol_maps, enrol.labels[first], occluded["probe"], probe.labels,
            occluded["unknown"])
        pairs = np.concatenate([probe_maps, unknown_maps])
        pair_labels = np.concatenate([probe.labels, -1 - np.arange(len(unknown))])  # every unknown a person of one
        pair_probes = {name: np.concatenate([occluded["probe"][name], occluded["unknown"][name]])
                       for name in occluded["probe"]}
        threshold["verify"] = verify_thresholds(exported.features, embed, pairs, pair_labels, pair_probes, regions)
        threshold["verify"]["split"] = ("all pairs of the open-set probes and unknown people's photos (people never "
                                        "trained on), clean faces")
        return threshold
    log("calibrating identification and verification thresholds on the validation split (the run has no open-set "
        "split; clean, and per occlusion pattern)")
    train, gallery_maps = gallery
    val_maps = exported.features(val.images)[0]
    threshold = calibrate_threshold(embed(gallery_maps, clean), train.labels, embed(val_maps, clean), val.labels)
    val_probes = occluded_probes(val, layouts, templates, seed)
    threshold["per_pattern"] = pattern_thresholds(exported.features, embed, gallery_maps, train.labels, val_probes,
                                                  val.labels)
    threshold["verify"] = verify_thresholds(exported.features, embed, val_maps, val.labels, val_probes, regions)
    return threshold


def occluded_probes(faces: FaceSet, layouts: dict, templates, seed: int) -> dict[str, np.ndarray]:
    """Name → ``uint8 [N, H, W, 3]``: ``faces`` under each Table 1 occlusion (clean left out)."""
    return {name: images for name, (images, _) in table1_probes(faces, layouts, templates, seed).items()
            if name != "clean"}


def keras_reference(run: RunFolder, layout: str, compute) -> dict:
    """The Keras models' parity rows, kept in the run (they are the same for every quantization) and
    recomputed when a stage they come from (base, dictionary, headtune, segmenter) has finished again since."""
    path = run.export_cache_file(f"keras_rows_{layout}.json")
    inputs = {stage: (run.read_marker(stage) or {}).get("output") for stage in ("base", "dictionary", "headtune", "segmenter")}
    try:
        cached = json.loads(path.read_text())
        if cached.get("inputs") == inputs:
            return cached["rows"]
    except (OSError, ValueError, AttributeError, KeyError):
        pass
    rows = compute()
    write_json(path, {"inputs": inputs, "rows": rows})
    return rows


def calibration_images(train: FaceSet, occluders: dict, count: int, seed: int) -> np.ndarray:
    """``count`` real train crops ``uint8 [count, H, W, 3]``: the first half clean, the rest occluded by each
    occluder kind in turn, so int8 ranges cover what the segmenter and trunk see on a device."""
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(train), size=min(count, len(train)), replace=False)
    images, landmarks = train.images[chosen], train.landmarks[chosen]
    kinds = list(occluders.values())
    occluded = [occlude_each(images[i:i + 1], landmarks[i:i + 1], kinds[i % len(kinds)], seed + i)[0][0]
                for i in range(len(chosen) // 2, len(chosen))]
    return np.concatenate([images[:len(chosen) // 2], np.stack(occluded)]) if occluded else images


def varied(flags: np.ndarray) -> np.ndarray:
    """Calibration flags for the head: the predicted ones for the first half, single random regions for the
    rest, so the FDM's effect on activations is in the calibration set."""
    rng = np.random.default_rng(0)
    flags = flags.copy()
    half = len(flags) // 2
    flags[half:] = 0
    flags[np.arange(half, len(flags)), rng.integers(0, flags.shape[1], len(flags) - half)] = 1
    return flags


def models_layout(layout: Layout, models) -> dict:
    """The layout in the manifest: its regions as boxes and the region each flag index stands for."""
    return {**layout.to_dict(), "flag_order": [str(n) for n in models.masked_head.get_layer("mask_dictionary").region_names],
            "occluded_when_covered_above": float(models.features.get_layer("region_occlusion").threshold)}


def write_model(path: Path, content: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(content))
