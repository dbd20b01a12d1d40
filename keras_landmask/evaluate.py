"""Closed-set identification the paper's way (§4.3): gallery = train split, probes = another split,
nearest gallery embedding by cosine similarity; rank-1 / rank-5 accuracy and per-identity accuracy.

``identify`` works on embeddings. ``identify_masked`` works on feature maps: each probe's feature
discarding mask (FDM) multiplies the probe's map and every gallery map before the head, with gallery
embeddings computed once per occlusion pattern (``GalleryCache``), not once per probe.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from keras_landmask.core.vectors import l2_normalise


@dataclasses.dataclass
class IdentificationResult:
    rank1: float  # fraction 0..1 of probes whose nearest gallery image has their identity
    rank5: float  # fraction whose identity is among the 5 nearest distinct gallery identities
    per_identity: dict[int, float]  # label → rank-1 accuracy of that identity's probes
    n_probes: int

    def to_dict(self) -> dict:
        return {"rank1": self.rank1, "rank5": self.rank5, "n_probes": self.n_probes}


def ranked_people(gallery: np.ndarray, gallery_labels: np.ndarray, probes: np.ndarray) -> np.ndarray:
    """``[P, n_people]`` gallery labels, most similar first, for ``probes [P, D]`` against ``gallery [G, D]``.

    A person's score is the cosine similarity of their best-matching gallery image.
    """
    similarity = l2_normalise(probes) @ l2_normalise(gallery).T  # [P, G]
    people = np.unique(gallery_labels)
    best = np.full((len(probes), len(people)), -np.inf, dtype=similarity.dtype)
    for column, person in enumerate(people):
        best[:, column] = similarity[:, gallery_labels == person].max(axis=1)
    return people[np.argsort(-best, axis=1, kind="stable")]


def score_ranking(order: np.ndarray, probe_labels: np.ndarray) -> IdentificationResult:
    """Rank-1, rank-5 and per-identity rank-1 from ``ranked_people`` output."""
    hits = order == probe_labels[:, None]
    rank1, rank5 = (float(hits[:, :k].any(axis=1).mean()) if len(hits) else float("nan") for k in (1, 5))
    per_identity = {int(p): float(hits[probe_labels == p, 0].mean()) for p in np.unique(probe_labels)}
    return IdentificationResult(rank1, rank5, per_identity, len(probe_labels))


def identify(gallery: np.ndarray, gallery_labels: np.ndarray, probes: np.ndarray,
             probe_labels: np.ndarray) -> IdentificationResult:
    """Rank-k identification of ``probes [P, D]`` against ``gallery [G, D]`` by cosine similarity."""
    return score_ranking(ranked_people(gallery, gallery_labels, probes), probe_labels)


class GalleryCache:
    """Gallery embeddings under each occlusion pattern, computed on first use.

    ``embed(features [N, h, w, C], pattern) → [N, D]`` is the masked head: the embedding of feature maps
    under the FDM of ``pattern`` (tuple of 0/1 per region; all zeros = no mask). At most 2^R patterns exist.
    """

    def __init__(self, embed: Callable, features: np.ndarray, labels: np.ndarray):
        self.embed, self.features, self.labels = embed, features, labels
        self.cache: dict[tuple, np.ndarray] = {}

    def embeddings(self, pattern: tuple[int, ...]) -> np.ndarray:
        if pattern not in self.cache:
            self.cache[pattern] = self.embed(self.features, pattern)
        return self.cache[pattern]


def fdm_embedder(head: Callable, fdm: Callable) -> Callable:
    """``embed(features, pattern)`` for ``GalleryCache`` from a plain ``head`` (feature maps → embeddings)
    and ``fdm`` (pattern → mask ``[h, w, C]``): the head of the masked maps."""
    return lambda features, pattern: head(features * fdm(pattern)[None])


def identify_masked(cache: GalleryCache, probe_features: np.ndarray, probe_patterns: np.ndarray,
                    probe_labels: np.ndarray) -> IdentificationResult:
    """Identification where probe i's FDM (from ``probe_patterns[i]``, 0/1 per region) masks both its
    feature map ``probe_features[i]`` and the gallery's; probes are grouped by pattern."""
    order = np.zeros((len(probe_labels), len(np.unique(cache.labels))), dtype=cache.labels.dtype)
    patterns = [tuple(int(v) for v in row) for row in probe_patterns]
    for pattern in sorted(set(patterns)):
        rows = np.array([i for i, p in enumerate(patterns) if p == pattern])
        probes = cache.embed(probe_features[rows], pattern)
        order[rows] = ranked_people(cache.embeddings(pattern), cache.labels, probes)
    return score_ranking(order, probe_labels)
