"""Vector helpers shared by evaluation, export and the gallery."""
from __future__ import annotations

import numpy as np


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """``vectors [..., D]`` scaled to unit length along the last axis (all-zero rows stay zero)."""
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)
