"""Closed-set identification the paper's way (§4.3): gallery = train split, probes = another split,
nearest gallery embedding by cosine similarity; rank-1 / rank-5 accuracy and per-identity accuracy.

Works on embeddings directly, or on feature maps through a head with an optional feature discarding
mask (``[h, w, C]`` or one per probe) applied to probe and gallery maps alike.
"""
from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass
class IdentificationResult:
    rank1: float  # fraction 0..1 of probes whose nearest gallery image has their identity
    rank5: float  # fraction whose identity is among the 5 nearest distinct gallery identities
    per_identity: dict[int, float]  # label → rank-1 accuracy of that identity's probes
    n_probes: int

    def to_dict(self) -> dict:
        return {"rank1": self.rank1, "rank5": self.rank5, "n_probes": self.n_probes}


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


def identify(gallery: np.ndarray, gallery_labels: np.ndarray, probes: np.ndarray, probe_labels: np.ndarray,
             ranks: tuple[int, ...] = (1, 5)) -> IdentificationResult:
    """Rank-k identification of ``probes [P, D]`` against ``gallery [G, D]`` by cosine similarity.

    A person's score is their best-matching gallery image; rank-k asks whether the true person is among
    the k best-scoring people.
    """
    similarity = l2_normalise(probes) @ l2_normalise(gallery).T  # [P, G]
    people = np.unique(gallery_labels)
    best = np.full((len(probes), len(people)), -np.inf, dtype=similarity.dtype)
    for column, person in enumerate(people):
        best[:, column] = similarity[:, gallery_labels == person].max(axis=1)
    order = people[np.argsort(-best, axis=1)]  # [P, n_people], most similar person first
    hits = order == probe_labels[:, None]
    rank = {k: float(hits[:, :k].any(axis=1).mean()) if len(probes) else float("nan") for k in ranks}
    per_identity = {int(p): float(hits[probe_labels == p, 0].mean()) for p in np.unique(probe_labels)}
    return IdentificationResult(rank[1], rank[5], per_identity, len(probes))
