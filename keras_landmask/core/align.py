"""Face alignment (numpy + OpenCV): the two 128x96 crop methods (``box`` and ``similarity``).

Images are RGB ``uint8 [H, W, 3]``. Landmarks are ``float32 [5, 2]`` (x, y) pixels in the order
``layouts.LANDMARK_NAMES``. Boxes are ``(x, y, w, h)`` pixels. Detection is elsewhere: MTCNN for training
(``keras_landmask.data.detect``), the exported detector on a device (``edge_runtime.detector``).
"""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np

# Canonical landmarks of a 128x96 (H x W) crop: the CosFace/SphereFace 112x96 template moved 8 px down,
# so the crop keeps some forehead and chin for the LM2 bands.
TEMPLATE_128x96 = np.array(
    [[30.2946, 59.6963], [65.5318, 59.5014], [48.0252, 79.7366], [33.5493, 100.3655], [62.7299, 100.2041]],
    dtype=np.float32,
)


@dataclasses.dataclass(frozen=True)
class Detection:
    """The chosen face of one image: box, landmarks, confidence and how many faces were found."""

    box: np.ndarray  # float32 [4] (x, y, w, h)
    landmarks: np.ndarray  # float32 [5, 2]
    confidence: float
    n_faces: int


def template_landmarks(height: int = 128, width: int = 96) -> np.ndarray:
    """The canonical 5 landmarks scaled to an ``height x width`` crop, ``float32 [5, 2]``."""
    return TEMPLATE_128x96 * np.array([width / 96.0, height / 128.0], dtype=np.float32)


def central_index(boxes, image_shape: tuple) -> int:
    """Index of the box ``(x, y, w, h)`` whose centre is nearest the centre of an image of ``image_shape``
    (the face a photo is of, when it shows several); the first on ties. ``boxes`` must not be empty."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    centres = boxes[:, :2] + boxes[:, 2:] / 2.0
    return int(np.argmin(np.hypot(*(centres - [image_shape[1] / 2.0, image_shape[0] / 2.0]).T)))


def fallback_detection(relative_boxes: np.ndarray, relative_landmarks: np.ndarray, image_shape: tuple) -> Detection:
    """A centred face for an image where MTCNN found none: the median of other images' faces.

    ``relative_boxes [M, 4]`` and ``relative_landmarks [M, 5, 2]`` are found faces divided by their image's
    width/height; with none (M = 0), a centred box of half the image with template landmarks.
    """
    height, width = image_shape[:2]
    scale = np.array([width, height], dtype=np.float32)
    if len(relative_boxes):
        box = np.median(relative_boxes, axis=0) * np.tile(scale, 2)
        marks = np.median(relative_landmarks, axis=0) * scale
    else:
        box = np.array([width / 4, height / 4, width / 2, height / 2], np.float32)
        x, y, w, h = box
        marks = template_landmarks(int(h), int(w)) + np.array([x, y], np.float32)
    return Detection(box.astype(np.float32), marks.astype(np.float32), 0.0, 0)


def crop_box(image: np.ndarray, detection: Detection, height: int = 128, width: int = 96):
    """The paper's crop: the MTCNN box widened to the crop's aspect ratio around its centre, cut out
    (background beyond it dropped, black where it leaves the image) and resized.

    Returns ``(crop uint8 [height, width, 3], landmarks float32 [5, 2] in crop pixels)``.
    """
    x, y, w, h = (float(v) for v in detection.box)
    aspect = height / width
    if h / w < aspect:
        h = w * aspect
    else:
        w = h / aspect
    cx, cy = x + detection.box[2] / 2.0, y + detection.box[3] / 2.0
    x0, y0 = cx - w / 2.0, cy - h / 2.0
    scale = width / w
    matrix = np.array([[scale, 0.0, -x0 * scale], [0.0, scale, -y0 * scale]], dtype=np.float32)
    return _warp(image, matrix, detection.landmarks, height, width)


def crop_similarity(image: np.ndarray, detection: Detection, height: int = 128, width: int = 96):
    """5-point similarity transform (rotation, uniform scale, shift; least squares) onto the template.

    Returns ``(crop uint8 [height, width, 3], landmarks float32 [5, 2] in crop pixels)``.
    """
    matrix = similarity_matrix(detection.landmarks, template_landmarks(height, width))
    return _warp(image, matrix, detection.landmarks, height, width)


def similarity_matrix(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least-squares similarity ``[2, 3]`` mapping points ``source [N, 2]`` onto ``target [N, 2]`` (Umeyama)."""
    src = source.astype(np.float64)
    dst = target.astype(np.float64)
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    covariance = dst_c.T @ src_c / len(src)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.diag([1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    rotation = u @ sign @ vt
    scale = np.trace(np.diag(singular) @ sign) / src_c.var(0).sum()
    shift = dst_mean - scale * rotation @ src_mean
    return np.hstack([scale * rotation, shift[:, None]]).astype(np.float32)


def _warp(image: np.ndarray, matrix: np.ndarray, landmarks: np.ndarray, height: int, width: int):
    crop = cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    moved = landmarks @ matrix[:, :2].T + matrix[:, 2]
    return crop, moved.astype(np.float32)


CROPPERS = {"box": crop_box, "similarity": crop_similarity}
