"""Export a finished run folder to TFLite: ``features``, ``head``, the MTCNN nets and ``manifest.json``.

``export_run`` converts the run's robust models for one layout (LM2 by default) with one quantization,
checks every model has only builtin ops, measures Table 1 parity of the exported models against the Keras
ones on the run's own test split, calibrates the open-set threshold on its validation split, and writes
everything (models first, manifest last, so a folder with a manifest is complete).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import yaml

from edge_runtime.interpreter import TFLiteModel
from edge_runtime.manifest import MANIFEST_NAME
from export.convert import QUANTIZATIONS, check_builtin_ops, to_tflite
from export.detector import APPLIED_QUANTIZATION, DETECTOR_SPEC, export_mtcnn
from export.manifest import manifest_header, model_entry
from export.parity import agreement, compare, keras_pair, pattern_embedder, table_rows, tflite_pair
from export.threshold import calibrate_threshold, pattern_thresholds
from keras_landmask.config import load_config
from keras_landmask.data.align import TEMPLATE_128x96
from keras_landmask.data.facemask import load_mask_templates
from keras_landmask.data.faceset import FaceSet
from keras_landmask.data.layouts import Layout
from keras_landmask.data.occluders import occluder_catalogue, occlude_each
from keras_landmask.errors import LandmaskError
from keras_landmask.io import atomic_write, write_json
from keras_landmask.models.robust_embedder import load_robust_models
from keras_landmask.runs import RunFolder
from keras_landmask.stages.evaluate import occluded_probes

FEATURES_OUTPUTS = ["feature_map", "occluded_regions"]
HEAD_OUTPUTS = ["embedding"]


def export_run(run_dir: str | Path, out_dir: str | Path, quantize: str = "int8", layout: str = "LM2",
               masks_dir: str | Path | None = None, calibration: int = 200, threads: int = 2,
               log=print) -> dict:
    """Export ``run_dir`` into ``out_dir``; returns the manifest. ``calibration`` = representative crops for
    int8 (half clean, half with synthetic occlusions); ``masks_dir`` = MaskTheFace templates (default: the
    run's config, else ``$LANDMASK_DATA/../maskthefaces``)."""
    if quantize not in QUANTIZATIONS:
        raise LandmaskError(f"unknown quantization '{quantize}'; choose one of {', '.join(QUANTIZATIONS)}")
    run = RunFolder(run_dir)
    if not run.root.is_dir():
        raise LandmaskError(f"run folder '{run.root}' not found; train one with python -m keras_landmask.train")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise LandmaskError(f"--out '{out}' is a file; give a folder for the exported models")
    config = run_config(run)
    faces = FaceSet.load(run.require("prepare", "faces.npz"))
    layouts = {name: Layout.from_dict(d) for name, d in json.loads(run.require("prepare", "layouts.json").read_text()).items()}
    if layout not in layouts:
        raise LandmaskError(f"layout '{layout}' not in this run; choose one of {', '.join(layouts)}")
    models = load_robust_models(run.root, layout)
    templates = load_mask_templates(find_masks_dir(masks_dir, config))
    occluders = occluder_catalogue(layouts, templates)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise LandmaskError(f"cannot create the output folder '{out}' ({error.strerror or error}); choose a "
                            "writable --out") from None
    (out / MANIFEST_NAME).unlink(missing_ok=True)  # no manifest until the folder is complete again

    train, val, test = (faces.subset(s) for s in ("train", "val", "test"))
    start = time.perf_counter()
    log(f"converting features and head ({quantize})")
    images = calibration_images(train, occluders, calibration, config.occlusion.seed)
    keras = keras_pair(models)
    maps, flags = keras[0](images)
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
    probes = {name: images for name, (images, _) in occluded_probes(test, layouts, templates, config.occlusion.seed).items()}
    keras_rows = keras_reference(run, layout, lambda: table_rows(keras, keras[0](train.images)[0], train.labels,
                                                                 probes, test.labels, layout))
    gallery_maps = exported[0](train.images)[0]
    exported_rows = table_rows(exported, gallery_maps, train.labels, probes, test.labels, layout)
    parity = {**compare(keras_rows, exported_rows, layout), **agreement(keras, exported, probes["clean"][:64]),
              "target_max_drop_points": 1.0}
    log("calibrating open-set thresholds on the validation split (clean, and per occlusion pattern)")
    embed = pattern_embedder(exported[1])
    clean = (0,) * len(layouts[layout].regions)
    threshold = calibrate_threshold(embed(gallery_maps, clean), train.labels,
                                    embed(exported[0](val.images)[0], clean), val.labels)
    val_probes = occluded_probes(val, layouts, templates, config.occlusion.seed)
    threshold["per_pattern"] = pattern_thresholds(
        exported[0], embed, gallery_maps, train.labels,
        {name: images for name, (images, _) in val_probes.items() if name != "clean"}, val.labels)

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


def keras_reference(run: RunFolder, layout: str, compute) -> dict:
    """The Keras models' parity rows, kept in ``<run>/export/`` (they are the same for every quantization)
    and recomputed when the models are newer than the file."""
    path = run.folder("export") / f"keras_rows_{layout}.json"
    sources = [run.folder(stage) / name for stage, name in
               (("base", "model.keras"), ("segmenter", "model.keras"), ("dictionary", f"{layout}.npz"))]
    if path.is_file() and all(path.stat().st_mtime > source.stat().st_mtime for source in sources):
        return json.loads(path.read_text())
    rows = compute()
    write_json(run.stage_dir("export") / path.name, rows)
    return rows


def run_config(run: RunFolder):
    """The resolved config the run was trained with (its ``config.yaml``)."""
    path = run.root / "config.yaml"
    if not path.is_file():
        raise LandmaskError(f"'{path}' not found; is '{run.root}' a folder written by keras_landmask.train?")
    profile = (yaml.safe_load(path.read_text()) or {}).get("profile", "fast")
    return load_config(profile, path)


def find_masks_dir(masks_dir, config) -> Path:
    if masks_dir:
        return Path(masks_dir)
    if config.occlusion.masks_dir:
        return Path(config.occlusion.masks_dir)
    if os.environ.get("LANDMASK_DATA"):
        return Path(os.environ["LANDMASK_DATA"]).parent / "maskthefaces"
    raise LandmaskError("MaskTheFace templates not found; pass --masks DIR (e.g. ../shared/data/maskthefaces)")


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
