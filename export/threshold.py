"""The thresholds of the runtime's two decisions, calibrated on the run's open-set split where it has one
(``openset_threshold``: people never trained on, and unknown people to reject, as a device meets them), else on
its validation split (the functions below it).

Open set (1:N): the held-out people enrolled from one photo each; the threshold is the best score exceeded by
only ``false_accept_rate`` of the *unknown* people's photos (FPIR), and the true accept rate is the share of the
held-out people's other photos whose best person is right and scores at least that (DIR).

Identification (1:N, below the threshold a face is "unknown"): validation faces against the train-split
gallery. Each probe gives a *genuine* score (its best cosine similarity to its own person's gallery faces) and
an *impostor* score (its best similarity to anyone else, which is what it would score if its person were not
enrolled). The threshold is the impostor score exceeded by only ``false_accept_rate`` of probes; the manifest
also records how many genuine probes it keeps.

Verification (1:1, ``Recognizer.verify``): every pair of validation faces, scored by the cosine of their two
embeddings; the threshold accepts ``false_accept_rate`` of the different-person pairs (FAR), and the share of
same-person pairs it accepts (TAR) is recorded.

Both have an entry per common occlusion pattern too, since the FDM moves the scores of masked faces.
"""
from __future__ import annotations

import numpy as np

from keras_landmask.core.vectors import l2_normalise
from keras_landmask.openset import best_people

OPENSET_SPLIT = ("open set: people never trained on, 1 enrolment photo each, their other photos as probes; the "
                 "unknown people's photos as impostors")


def openset_threshold(gallery: np.ndarray, gallery_labels: np.ndarray, probes: np.ndarray,
                      probe_labels: np.ndarray, unknowns: np.ndarray, false_accept_rate: float = 0.01) -> dict:
    """``gallery [G, D]`` (enrolled), ``probes [P, D]`` (enrolled people's other photos) and ``unknowns [U, D]``
    (never enrolled) → ``{threshold, false_accept_rate (of unknowns), true_accept_rate (DIR), n_probes,
    n_unknown, split}``."""
    labels, scores = best_people(gallery, gallery_labels, probes)
    _, unknown_scores = best_people(gallery, gallery_labels, unknowns)
    threshold = float(np.quantile(unknown_scores, 1.0 - false_accept_rate))
    return {
        "threshold": round(threshold, 4),
        "false_accept_rate": float((unknown_scores >= threshold).mean()),
        "true_accept_rate": float(((labels == probe_labels) & (scores >= threshold)).mean()),
        "n_probes": int(len(probes)),
        "n_unknown": int(len(unknowns)),
        "split": OPENSET_SPLIT,
    }


def openset_pattern_thresholds(features, embed, gallery_maps: np.ndarray, gallery_labels: np.ndarray,
                               probes: dict[str, np.ndarray], probe_labels: np.ndarray,
                               unknowns: dict[str, np.ndarray], min_probes: int = 30,
                               false_accept_rate: float = 0.01) -> dict[str, dict]:
    """``openset_threshold`` per occlusion pattern: ``probes`` and ``unknowns`` are the held-out probes and the
    unknown photos under synthetic occlusions (name → images), grouped by the pattern ``features`` finds; a
    pattern gets an entry when both have at least ``min_probes`` photos of it."""
    known, strangers = by_pattern(features, probes, min_probes), by_pattern(features, unknowns, min_probes)
    return {",".join(map(str, pattern)): openset_threshold(
                embed(gallery_maps, pattern), gallery_labels, embed(maps, pattern), probe_labels[index],
                embed(strangers[pattern][0], pattern), false_accept_rate)
            for pattern, (maps, index) in known.items() if pattern in strangers}


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
    thresholds = {}
    for pattern, (maps, index) in by_pattern(features, probes, min_probes).items():
        thresholds[",".join(map(str, pattern))] = calibrate_threshold(
            embed(gallery_maps, pattern), gallery_labels, embed(maps, pattern), probe_labels[index], false_accept_rate)
    return thresholds


def by_pattern(features, probes: dict[str, np.ndarray], min_probes: int) -> dict[tuple, tuple]:
    """``{pattern: (feature maps [m, h, w, C], index [m] of each probe in its array)}`` of the occluded probes
    (name → images, all in the same order) grouped by the occlusion pattern ``features`` finds, for the patterns
    at least ``min_probes`` of them have."""
    groups: dict[tuple, list] = {}
    for images in probes.values():
        maps, flags = features(images)
        for i, (feature_map, row) in enumerate(zip(maps, flags)):
            pattern = tuple(int(v > 0.5) for v in row)
            if any(pattern):
                groups.setdefault(pattern, []).append((feature_map, i))
    return {pattern: (np.stack([m for m, _ in members]), np.array([i for _, i in members]))
            for pattern, members in sorted(groups.items()) if len(members) >= min_probes}


def pair_threshold(scores: np.ndarray, same: np.ndarray, false_accept_rate: float = 0.01) -> dict:
    """Pair ``scores [N]`` (cosine) and whether each pair is one person (``same [N]`` bool) → ``{threshold,
    false_accept_rate, true_accept_rate, same_pairs, different_pairs}``: the threshold accepts
    ``false_accept_rate`` of the different-person pairs; a rate is None without pairs of its kind."""
    different = scores[~same]
    threshold = float(np.quantile(different, 1.0 - false_accept_rate)) if different.size else 1.0
    return {"threshold": round(threshold, 4),
            "false_accept_rate": float((different >= threshold).mean()) if different.size else None,
            "true_accept_rate": float((scores[same] >= threshold).mean()) if same.any() else None,
            "same_pairs": int(same.sum()), "different_pairs": int(different.size)}


def verify_thresholds(features, embed, maps: np.ndarray, labels: np.ndarray, probes: dict[str, np.ndarray],
                      regions: int, min_probes: int = 30, false_accept_rate: float = 0.01) -> dict:
    """The verification threshold (``pair_threshold``) over every pair of the clean validation faces (``maps``
    [V, h, w, C] from ``features``, ``labels`` [V]), embedded clean (none of the ``regions`` masked); and
    ``per_pattern``: for each pattern at least ``min_probes`` occluded validation faces have (``probes`` as for
    ``pattern_thresholds``), the pairs of each such face with every clean validation face but its own photo, both
    embedded under that pattern (the union of the two, as ``Recognizer.verify`` embeds them, the clean face having
    none)."""
    clean = l2_normalise(embed(maps, (0,) * regions))
    first, second = np.triu_indices(len(maps), k=1)
    result = {**pair_threshold((clean @ clean.T)[first, second], labels[first] == labels[second], false_accept_rate),
              "split": "all pairs of the val split, clean faces", "per_pattern": {}}
    for pattern, (occluded, index) in by_pattern(features, probes, min_probes).items():
        scores = l2_normalise(embed(occluded, pattern)) @ l2_normalise(embed(maps, pattern)).T  # [m, V]
        other = index[:, None] != np.arange(len(maps))[None, :]  # not the same photo, clean and occluded
        same = labels[index][:, None] == labels[None, :]
        result["per_pattern"][",".join(map(str, pattern))] = pair_threshold(scores[other], same[other],
                                                                           false_accept_rate)
    return result
