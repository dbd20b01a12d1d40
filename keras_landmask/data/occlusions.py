"""Region occlusions: a block of one random grey inside a region's box, or a white full-width band.

Images are RGB ``uint8 [H, W, 3]`` crops; regions are boxes in crop pixels (see ``layouts.Region``).
Each function returns ``(occluded_image, true_mask)``: a new ``uint8 [H, W, 3]`` image and a
``bool [H, W]`` map that is True where the occluder is. The input image is never modified.
"""
from __future__ import annotations

import numpy as np

from keras_landmask.data.layouts import Region


def random_block(image: np.ndarray, region: Region, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Fill the region's box with one grey value drawn uniformly from 0..255 (mask-generator training)."""
    height, width = image.shape[:2]
    mask = region.pixel_mask(height, width)
    occluded = image.copy()
    occluded[mask] = rng.integers(0, 256)
    return occluded, mask


def white_band(image: np.ndarray, region: Region) -> tuple[np.ndarray, np.ndarray]:
    """Paint the region's rows white (255) over the full crop width (the paper's Table 1 occlusions)."""
    height, width = image.shape[:2]
    _, y0, _, y1 = region.pixel_bounds(height, width)
    mask = np.zeros((height, width), dtype=bool)
    mask[y0:y1] = True
    occluded = image.copy()
    occluded[mask] = 255
    return occluded, mask
