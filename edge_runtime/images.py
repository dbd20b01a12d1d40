"""Reading photos for the runtime: any file OpenCV decodes, as RGB ``uint8 [H, W, 3]``, or a clear error.

Grayscale, RGBA and 16-bit images are converted (OpenCV's ``IMREAD_COLOR``); images above OpenCV's pixel limit
(``CV_IO_MAX_IMAGE_PIXELS``, 2^30 by default — a decompression bomb) are refused by the decoder.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
MIN_SIDE = 24  # pixels: smaller images cannot hold a face MTCNN finds


class ImageError(ValueError):
    """A file that is not a usable photo."""


def read_image(path: str | Path) -> np.ndarray:
    """The image at ``path`` as RGB ``uint8 [H, W, 3]``; ``ImageError`` saying why it cannot be used."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"'{path}' not found")
    if path.stat().st_size == 0:
        raise ImageError(f"'{path}' is empty (0 bytes)")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ImageError(f"'{path}' is not a readable image (damaged, or not JPEG/PNG/BMP/WebP/TIFF)")
    if min(image.shape[:2]) < MIN_SIDE:
        raise ImageError(f"'{path}' is {image.shape[1]}x{image.shape[0]} pixels; faces need at least "
                         f"{MIN_SIDE} pixels per side")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def image_files(folder: str | Path) -> list[Path]:
    """Image files directly inside ``folder`` (by suffix), sorted."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
