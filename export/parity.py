"""Accuracy of exported models beside the Keras ones, through the same evaluation code.

A ``RobustPair`` of callables stands for a recognizer, whatever runs it (Keras or LiteRT):
``features(images uint8 [N, H, W, 3]) → (feature maps [N, h, w, C], flags [N, R])`` and
``masked_head(feature maps, flags [N, R]) → embeddings [N, D]``. ``table_rows`` gives Table 1's rows for
the exported layout: rank-1/rank-5 without an FDM ("none") and with the FDM of the flags the model itself
predicts (the segmenter's), gallery = train split, probes = test split under each occlusion.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from edge_runtime.interpreter import TFLiteModel
from keras_landmask.core.vectors import l2_normalise
from keras_landmask.data.faceset import FaceSet
from keras_landmask.evaluate import GalleryCache, identify_masked
from keras_landmask.stages.openset import embed_by_pattern, measure

# How much rank-1 (points) an export may lose against the Keras models on the run's test split before the
# export refuses to finish: clean faces, and every occluded Table 1 cell.
CLEAN_TOLERANCE = 1.0
OCCLUDED_TOLERANCE = 2.0

Features = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
MaskedHead = Callable[[np.ndarray, np.ndarray], np.ndarray]


class RobustPair(NamedTuple):
    """The robust recognizer as the two callables the edge runtime runs."""

    features: Features
    masked_head: MaskedHead


def keras_pair(models, batch_size: int = 64) -> RobustPair:
    """The pair for ``RobustModels`` (Keras float32)."""
    def features(images):
        feature_map, flags = models.features.predict(images, batch_size=batch_size, verbose=0)
        return np.asarray(feature_map), np.asarray(flags)

    def masked_head(feature_map, flags):
        return np.asarray(models.masked_head.predict([feature_map, flags], batch_size=256, verbose=0))

    return RobustPair(features, masked_head)


def tflite_pair(features_model: TFLiteModel, head_model: TFLiteModel, batch_size: int = 32) -> RobustPair:
    """The pair for exported ``features.tflite`` and ``head.tflite``, run in batches."""
    def features(images):
        outputs = [features_model.run(image=images[i:i + batch_size]) for i in range(0, len(images), batch_size)]
        return (np.concatenate([o["feature_map"] for o in outputs]),
                np.concatenate([o["occluded_regions"] for o in outputs]))

    def masked_head(feature_map, flags):
        return np.concatenate([
            head_model.run(feature_map=feature_map[i:i + batch_size], occluded_regions=flags[i:i + batch_size])["embedding"]
            for i in range(0, len(feature_map), batch_size)])

    return RobustPair(features, masked_head)


def pattern_embedder(masked_head: MaskedHead) -> Callable:
    """``embed(feature maps, pattern)`` for ``GalleryCache``: every map under the same pattern's FDM."""
    return lambda feature_map, pattern: masked_head(
        feature_map, np.tile(np.asarray(pattern, np.float32), (len(feature_map), 1)))


def table_rows(pair: RobustPair, gallery_maps: np.ndarray, gallery_labels: np.ndarray,
               probes: dict[str, np.ndarray], probe_labels: np.ndarray, layout: str) -> dict:
    """``{occlusion: {"none": {rank1, rank5, n_probes}, layout: {...}, "flagged": mean regions flagged}}``
    for ``gallery_maps`` (the pair's feature maps of the gallery images)."""
    cache = GalleryCache(pattern_embedder(pair.masked_head), gallery_maps, gallery_labels)
    rows = {}
    for occlusion, images in probes.items():
        maps, flags = pair.features(images)
        rows[occlusion] = {
            "none": identify_masked(cache, maps, np.zeros_like(flags), probe_labels).to_dict(),
            layout: identify_masked(cache, maps, flags, probe_labels).to_dict(),
            "flagged": round(float(flags.sum(axis=1).mean()), 3),
        }
    return rows


def openset_rows(pair: RobustPair, held: FaceSet, probes: dict[str, np.ndarray]) -> dict:
    """The open-set stage's measures (``stages.openset.measure``) of the pair as a device runs it: the held-out
    people's clean photos and each occlusion's probes (``{occlusion: images}``, every open-set photo) through
    ``features``, each probe's own flags choosing the FDM of it and of the clean photos.
    ``{occlusion: {rank1_1, dir_1, rank1_5, dir_5, tar, ...}}``."""
    clean_maps, _ = pair.features(held.images)
    cache = GalleryCache(pattern_embedder(pair.masked_head), clean_maps, held.labels)
    rows = {}
    for occlusion, images in probes.items():
        maps, flags = pair.features(images)
        rows[occlusion] = measure(embed_by_pattern(cache, maps, flags), held, occlusion == "clean")
    return rows


def agreement(reference: RobustPair, exported: RobustPair, images: np.ndarray) -> dict:
    """How closely ``exported`` follows ``reference`` on ``images``, end to end: cosine between the two
    embeddings (min, mean), the fraction of region flags that agree, and the feature maps' mean absolute error
    relative to their scale."""
    maps, flags = reference.features(images)
    exported_maps, exported_flags = exported.features(images)
    cosine = np.sum(l2_normalise(reference.masked_head(maps, flags))
                    * l2_normalise(exported.masked_head(exported_maps, exported_flags)), axis=1)
    return {
        "embedding_cosine_min": float(cosine.min()),
        "embedding_cosine_mean": float(cosine.mean()),
        "flag_agreement": float((flags == exported_flags).mean()),
        "feature_map_relative_error": float(np.abs(maps - exported_maps).mean() / max(np.abs(maps).mean(), 1e-12)),
    }


def compare(keras_rows: dict, exported_rows: dict, layout: str) -> dict:
    """Per row and column, rank-1 of Keras and of the export and the drop in points (Keras − export)."""
    table, worst = {}, 0.0
    for occlusion, row in keras_rows.items():
        table[occlusion] = {}
        for column in ("none", layout):
            ours, theirs = row[column]["rank1"], exported_rows[occlusion][column]["rank1"]
            drop = round(100 * (ours - theirs), 2)
            worst = max(worst, drop)
            table[occlusion][column] = {"keras_rank1": ours, "tflite_rank1": theirs, "drop_points": drop}
    return {"rows": table, "max_drop_points": worst}


def guard(comparison: dict, probes: int, allowed: float | None = None) -> dict:
    """Whether ``compare``'s drops stay within the tolerance: ``CLEAN_TOLERANCE`` points on clean faces and
    ``OCCLUDED_TOLERANCE`` on every occluded cell, or ``allowed`` points on every cell (the user's
    ``--allow-accuracy-drop``). A test split of ``probes`` faces measures rank-1 in steps of 100 / ``probes``
    points; when one step is larger than the smallest tolerance (a smoke run's handful of faces), the drops
    cannot be judged and nothing is checked.

    Returns ``{"tolerance_points": {"clean", "occluded"}, "allowed_points", "checked", "over": [cells over
    the tolerance, e.g. "face_mask / LM2: 3.10 points"], "passed", "note"}``."""
    tolerance = {"clean": CLEAN_TOLERANCE, "occluded": OCCLUDED_TOLERANCE} if allowed is None else \
        {"clean": float(allowed), "occluded": float(allowed)}
    step = 100.0 / max(probes, 1)
    checked = step <= min(tolerance.values())
    over = [f"{occlusion} / {column}: {cell['drop_points']:.2f} points"
            for occlusion, row in comparison["rows"].items() for column, cell in row.items()
            if cell["drop_points"] > tolerance["clean" if occlusion == "clean" else "occluded"]]
    if not checked:
        note = (f"not checked: {probes} test faces measure rank-1 in steps of {step:.1f} points, coarser than the "
                f"{min(tolerance.values()):g}-point tolerance")
    elif over:
        note = f"over the tolerance: {'; '.join(over)}"
    else:
        note = "within the tolerance"
    return {"tolerance_points": tolerance, "allowed_points": allowed, "checked": checked, "over": over,
            "passed": not (checked and over), "note": note}
