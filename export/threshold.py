"""The open-set threshold: below it a face is "unknown".

Calibrated on validation faces against the train-split gallery. Each probe gives a *genuine* score (its best
cosine similarity to its own person's gallery faces) and an *impostor* score (its best similarity to anyone
else, which is what it would score if its person were not enrolled). The threshold is the impostor score
exceeded by only ``false_accept_rate`` of probes; the manifest also records how many genuine probes it keeps.
"""
from __future__ import annotations

import numpy as np

from keras_landmask.evaluate import l2_normalise


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
