"""Face region layouts (LM1, LM2, grid3x3) as data: named boxes in crop pixels.

A crop is ``H x W`` pixels (128 x 96 by default); every box is ``(x0, y0, x1, y1)`` in crop
pixel coordinates, half-open (``x0 <= x < x1``), clipped to the crop. Landmarks are arrays of
shape ``[5, 2]`` (x, y) in the MTCNN order ``LANDMARK_NAMES``.
"""
from __future__ import annotations

import dataclasses

import numpy as np

LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


@dataclasses.dataclass(frozen=True)
class Region:
    """One named box of a layout, in crop pixels (floats, half-open)."""

    name: str
    x0: float
    y0: float
    x1: float
    y1: float

    def pixel_bounds(self, height: int, width: int) -> tuple[int, int, int, int]:
        """Integer ``(x0, y0, x1, y1)`` after rounding and clipping to the crop."""
        x0 = int(np.clip(round(self.x0), 0, width))
        x1 = int(np.clip(round(self.x1), 0, width))
        y0 = int(np.clip(round(self.y0), 0, height))
        y1 = int(np.clip(round(self.y1), 0, height))
        return x0, y0, x1, y1

    def pixel_mask(self, height: int, width: int) -> np.ndarray:
        """Boolean ``[height, width]`` map, True inside the box."""
        x0, y0, x1, y1 = self.pixel_bounds(height, width)
        mask = np.zeros((height, width), dtype=bool)
        mask[y0:y1, x0:x1] = True
        return mask

    def contains(self, points: np.ndarray) -> np.ndarray:
        """Whether each point ``[..., 2]`` (x, y) lies inside the box."""
        x, y = points[..., 0], points[..., 1]
        return (x >= self.x0) & (x < self.x1) & (y >= self.y0) & (y < self.y1)
