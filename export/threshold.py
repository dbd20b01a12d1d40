"""The open-set threshold: below it a face is "unknown".

Calibrated on validation faces against the train-split gallery. Each probe gives a *genuine* score (its best
cosine similarity to its own person's gallery faces) and an *impostor* score (its best similarity to anyone
else, which is what it would score if its person were not enrolled). The threshold is the impostor score
exceeded by only ``false_accept_rate`` of probes; the manifest also records how many genuine probes it keeps.
"""
from __future__ import annotations

import numpy as np

from keras_landmask.core.vectors import l2_normalise


def calibrate_threshold(gallery: np.ndarray, gallery_labels: np.ndarray, probes: np.ndarray,
                        probe_labels: np.ndarray, false_accept_rate: float = 0.01) -> dict:
    """``gallery [G, D]`` and ``probes [P, D]`` embeddings → ``{threshold, false_accept_rate,
    true_accept_rate, n_probes}``; true accept = the nearest person is right and scores ≥ threshold."""
    similarity = l2_normalise(probes) @ l2_normalise(gallery).T  # [P, G]
    same = probe_labels[:, None] == gallery_labels[None, :]
    genuine = np.where(same, similarity, -np.inf).max(axis=1)
    impostor = np.where(same, -np.inf, similarity).max(axis=1)
    threshold = float(np.quantile(impostor, 1.0 - false_accept_rate))
    accepted = (genuine >= threshold) & (genuine > impostor)
    return {
        "threshold": round(threshold, 4),
        "false_accept_rate": float((impostor >= threshold).mean()),
        "true_accept_rate": float(accepted.mean()),
        "n_probes": int(len(probes)),
        "split": "val probes against the train gallery, clean faces",
    }


def pattern_thresholds(features, embed, gallery_maps: np.ndarray, gallery_labels: np.ndarray,
                       probes: dict[str, np.ndarray], probe_labels: np.ndarray, min_probes: int = 30,
                       false_accept_rate: float = 0.01) -> dict[str, dict]:
    """Thresholds per occlusion pattern, as ``calibrate_threshold`` does for clean faces.

    A masked face scores differently: the FDM drops features from probe and gallery alike, so wrong people
    come closer. ``probes`` are the validation images under synthetic occlusions (name → ``uint8 [P, H, W, 3]``,
    every array in ``probe_labels`` order); ``features(images) → (maps, flags)`` and ``embed(maps, pattern)``
    are the exported models. Patterns the segmenter gives at least ``min_probes`` probes get their own entry,
    keyed like the gallery's cache (``"0,0,0,1,1"``); the runtime falls back to the clean threshold otherwise.
    """
    groups: dict[tuple, list] = {}
    for images in probes.values():
        maps, flags = features(images)
        for feature_map, row, label in zip(maps, flags, probe_labels):
            pattern = tuple(int(v > 0.5) for v in row)
            if any(pattern):
                groups.setdefault(pattern, []).append((feature_map, label))
    thresholds = {}
    for pattern, members in sorted(groups.items()):
        if len(members) >= min_probes:
            maps = np.stack([m for m, _ in members])
            labels = np.array([label for _, label in members])
            thresholds[",".join(map(str, pattern))] = calibrate_threshold(
                embed(gallery_maps, pattern), gallery_labels, embed(maps, pattern), labels, false_accept_rate)
    return thresholds
