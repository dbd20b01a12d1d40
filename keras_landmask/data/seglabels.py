"""Segmentation labels as in the paper (§4.1): |clean - occluded| > threshold, then opening and closing.

Images are RGB ``uint8 [H, W, 3]``; labels are ``bool [H, W]``, True where the face is occluded.
"""
from __future__ import annotations

import cv2
import numpy as np

THRESHOLD = 15  # grey levels (0..255) of the largest per-channel difference
KERNEL_SIZE = 3  # pixels, elliptical structuring element


def segmentation_label(
    clean: np.ndarray, occluded: np.ndarray, threshold: int = THRESHOLD, kernel_size: int = KERNEL_SIZE
) -> np.ndarray:
    """Bool [H, W]: max over channels of |clean - occluded| > threshold, then morphological opening, then closing."""
    if clean.shape != occluded.shape:
        raise ValueError(f"clean {clean.shape} and occluded {occluded.shape} images differ in shape")
    difference = np.abs(clean.astype(np.int16) - occluded.astype(np.int16)).max(axis=-1)
    label = (difference > threshold).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (kernel_size, kernel_size))
    label = cv2.morphologyEx(label, cv2.MORPH_OPEN, kernel)
    return cv2.morphologyEx(label, cv2.MORPH_CLOSE, kernel).astype(bool)


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two bool maps of the same shape; 1.0 when both are empty."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0
