"""Open-set measures: people never trained on, enrolled from a few photos, with unknown people to reject.

Embeddings are compared by cosine similarity (any scale: they are L2-normalised here). A person's score for a
probe is the similarity of their best-matching enrolment photo.

- **rank-1**: the fraction of known probes whose best-scoring enrolled person is right (no threshold).
- **DIR at FPIR** (detection and identification rate at a false-positive identification rate): the threshold
  is set so that a fraction ``fpir`` of the *unknown* probes score above it; DIR is the fraction of known
  probes whose best person is right *and* scores above it.
- **TAR at FAR**: 1:1 verification over pairs of photos; the threshold accepts a fraction ``far`` of the
  impostor pairs (different people, unknowns included); TAR is the fraction of genuine pairs above it.
"""
from __future__ import annotations

import numpy as np

from keras_landmask.core.vectors import l2_normalise


def best_people(gallery: np.ndarray, gallery_labels: np.ndarray, probes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(labels [P], scores [P])``: each probe's best-matching person in the gallery and that person's score,
    for ``gallery [G, D]`` with ``gallery_labels [G]`` and ``probes [P, D]``."""
    similarity = l2_normalise(probes) @ l2_normalise(gallery).T  # [P, G]
    people = np.unique(gallery_labels)
    per_person = np.stack([similarity[:, gallery_labels == person].max(axis=1) for person in people], axis=1)
    best = per_person.argmax(axis=1)
    return people[best], per_person[np.arange(len(probes)), best]


def threshold_at(impostor_scores: np.ndarray, rate: float) -> float:
    """The score above which at most a fraction ``rate`` of ``impostor_scores`` lie (accept ``score > t``)."""
    ordered = np.sort(np.asarray(impostor_scores, np.float64))[::-1]
    allowed = int(np.floor(rate * len(ordered)))
    return float(ordered[allowed]) if allowed < len(ordered) else float("-inf")


def identification(best_labels: np.ndarray, best_scores: np.ndarray, probe_labels: np.ndarray,
                   unknown_scores: np.ndarray, fpir: float = 0.01) -> dict:
    """Rank-1 and DIR at ``fpir`` from ``best_people`` of the known probes (``best_labels``, ``best_scores``
    against their true ``probe_labels``) and the best scores of the unknown probes."""
    right = best_labels == probe_labels
    threshold = threshold_at(unknown_scores, fpir) if len(unknown_scores) else float("nan")
    return {"rank1": float(right.mean()), "dir": float((right & (best_scores > threshold)).mean()),
            "fpir": fpir, "threshold": threshold, "n_probes": int(len(probe_labels)),
            "n_unknown": int(len(unknown_scores))}


def verification(similarity: np.ndarray, genuine: np.ndarray, valid: np.ndarray, far: float = 1e-3) -> dict:
    """TAR at ``far`` over the pairs where ``valid`` (``bool [N, M]``): ``similarity [N, M]`` of each pair,
    ``genuine [N, M]`` True for same-person pairs (the rest of the valid pairs are impostors)."""
    impostor = similarity[valid & ~genuine]
    matched = similarity[valid & genuine]
    threshold = threshold_at(impostor, far)
    return {"tar": float((matched > threshold).mean()) if len(matched) else float("nan"), "far": far,
            "threshold": threshold, "n_genuine": int(len(matched)), "n_impostor": int(len(impostor))}
