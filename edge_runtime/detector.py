"""MTCNN face detection in numpy + OpenCV over three TFLite nets (``pnet``, ``rnet``, ``onet``), no TensorFlow.

A re-implementation of the ``mtcnn`` package (v1.0.0, ``detect_faces`` with its defaults) step by step:

* input: RGB ``uint8 [H, W, 3]`` → float32 ``(x - 127.5) / 128``, NHWC, no transposes;
* P-net on a pyramid of scales ``0.6 * 0.709**k`` (``12 / min_face_size``), each level resized with area
  averaging (``cv2.INTER_AREA``, the package's ``tf.image.resize(..., AREA)``) to ``floor(side * scale)``
  (for video, ``derive_levels`` resizes the levels after the first from the first: faster, not exact);
* R-net (24x24) and O-net (48x48) on patches cut and bilinearly resized like ``tf.image.crop_and_resize``
  (sample grid scaled by ``(side - 1) / side``, zeros outside the image), done here in numpy because
  ``cv2.remap`` quantizes its bilinear weights to 1/32;
* the package's NMS rule (a box is dropped when any higher-scored box overlaps it too much, even one that
  was itself dropped), thresholds and box arithmetic, boxes clipped to the image, landmarks not.

Net outputs are told apart by their channel count: 4 box offsets, 2 softmax (face probability last),
10 landmarks (x1..x5, y1..y5 relative to the box).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from edge_runtime.interpreter import TFLiteModel
from keras_landmask.core.align import central_index

NORMALISATION = (127.5, 128.0)  # net input = (rgb - 127.5) / 128
CELL = 12  # P-net window (pixels of a pyramid level) and smallest level side
STRIDE = 2  # P-net output step (pixels of a pyramid level)
NET_FILES = ("pnet.tflite", "rnet.tflite", "onet.tflite")
# Interpreters are kept per net input shape (P-net's pyramid levels, R/O-net batch sizes) up to this many input
# elements in all: every level of a 1280x720 frame down to 20 px faces (about 120 MB of P-net tensors); a
# 12-megapixel photo's levels would take 1.6 GB, so larger images reuse interpreters instead.
NET_KEEP_ELEMENTS = 2_000_000
PROPOSAL_GROWTH = 1.1  # a proposal box (a face a frame ago) grows by this to cover the face's motion


@dataclasses.dataclass(frozen=True)
class Settings:
    """The mtcnn package's ``detect_faces`` defaults (pixels, probabilities, IoU thresholds)."""

    min_face_size: float = 20.0
    scale_factor: float = 0.709
    threshold_pnet: float = 0.6
    threshold_rnet: float = 0.7
    threshold_onet: float = 0.8
    nms_pnet1: float = 0.5  # per pyramid level, IoU over union
    nms_pnet2: float = 0.7  # across levels, IoU over union
    nms_rnet: float = 0.7  # IoU over union
    nms_onet: float = 0.7  # intersection over the smaller box


@dataclasses.dataclass(frozen=True)
class Face:
    """One detection: ``box`` float32 [4] (x, y, w, h) pixels, ``landmarks`` float32 [5, 2] (x, y) pixels
    in the order left_eye, right_eye, nose, mouth_left, mouth_right, ``confidence`` O-net face probability."""

    box: np.ndarray
    landmarks: np.ndarray
    confidence: float


Net = Callable[..., list]


class Detector:
    """MTCNN over three nets, each ``net(array) -> list of output arrays`` (``TFLiteModel``).

    ``derive_levels``: resize the pyramid's levels after the first from the first level rather than from the
    image, as the package does. Each resize reads its whole source, so this reads a 640x480 frame once instead of
    once a level (3 ms less at 60 px faces); area averaging twice is not quite area averaging once, and the
    landmarks move by 0.4 px on average (at most 3.5 px; 100 LFW photos on a 640x480 frame, 60 px faces). For
    video, where the next frame's landmarks differ more than that anyway.
    """

    def __init__(self, pnet: Net, rnet: Net, onet: Net, settings: Settings = Settings(), derive_levels: bool = False):
        self.pnet, self.rnet, self.onet = pnet, rnet, onet
        self.settings = settings
        self.derive_levels = derive_levels

    @classmethod
    def from_dir(cls, models_dir: str | Path, threads: int = 1, settings: Settings = Settings(),
                 derive_levels: bool = False) -> "Detector":
        """The detector over ``models_dir/{pnet,rnet,onet}.tflite``."""
        return cls(*(TFLiteModel(Path(models_dir) / name, threads=threads, keep_elements=NET_KEEP_ELEMENTS)
                     for name in NET_FILES), settings=settings, derive_levels=derive_levels)

    def detect(self, image: np.ndarray, proposals: np.ndarray | None = None) -> list[Face]:
        """Faces in an RGB ``uint8 [H, W, 3]`` image, highest confidence first.

        ``proposals``: boxes ``[N, 4]`` (x, y, w, h) pixels where faces were a moment ago (a video's previous
        frame); P-net's scan of the whole image is skipped and R-net and O-net look only there (each box
        squared and grown by ``PROPOSAL_GROWTH``), which finds those faces again but no new ones.
        """
        pixels = image.astype(np.float32)
        boxes = self._propose(pixels) if proposals is None else proposal_boxes(proposals)
        if len(boxes):
            boxes = self._refine(pixels, boxes)
        if not len(boxes):
            return []
        boxes, landmarks = self._output(pixels, boxes)
        height, width = image.shape[:2]
        boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, width - 1)
        boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, height - 1)
        return [
            Face(np.array([x1, y1, x2 - x1, y2 - y1], np.float32), marks.astype(np.float32), float(score))
            for (x1, y1, x2, y2, score), marks in zip(boxes, landmarks)
        ]

    def _propose(self, image: np.ndarray) -> np.ndarray:
        """P-net over the pyramid of ``image`` (float32 pixels 0..255): square candidate boxes ``[N, 5]`` (x1, y1,
        x2, y2, score)."""
        s = self.settings
        levels, source = [], image
        for scale in pyramid_scales(image.shape[:2], s.min_face_size, s.scale_factor):
            height, width = (np.asarray(image.shape[:2]) * scale).astype(int)
            if min(height, width) < CELL:
                continue
            level = cv2.resize(source, (int(width), int(height)), interpolation=cv2.INTER_AREA)
            if self.derive_levels and source is image:
                source = level
            out = by_channels(self.pnet(normalise(level)[None]))
            boxes = grid_boxes(out[4][0], out[2][0, :, :, 1], s.threshold_pnet)
            boxes[:, :4] /= scale
            levels.append(boxes[keep_after_nms(boxes, s.nms_pnet1)])
        if not levels:
            return np.empty((0, 5))
        boxes = by_score(np.concatenate(levels))
        return to_square(boxes[keep_after_nms(boxes, s.nms_pnet2)])

    def _refine(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """R-net on 24x24 patches: the boxes moved, filtered, NMS-ed and squared again."""
        s = self.settings
        out = by_channels(run_batch(self.rnet, net_patches(image, boxes, 24)))
        boxes = shift_boxes(boxes, out[4], out[2][:, 1])
        boxes = by_score(boxes[boxes[:, 4] > s.threshold_rnet])
        return to_square(boxes[keep_after_nms(boxes, s.nms_rnet)])

    def _output(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """O-net on 48x48 patches: final boxes ``[M, 5]`` and landmarks ``[M, 5, 2]``."""
        s = self.settings
        out = by_channels(run_batch(self.onet, net_patches(image, boxes, 48)))
        size = boxes[:, 2:4] - boxes[:, 0:2] + 1
        landmarks = size[:, None, :] * out[10].reshape(-1, 2, 5).transpose(0, 2, 1) + boxes[:, None, 0:2] - 1
        boxes = shift_boxes(boxes, out[4], out[2][:, 1])
        kept = boxes[:, 4] > s.threshold_onet
        order = np.argsort(boxes[kept, 4])[::-1]
        boxes, landmarks = boxes[kept][order], landmarks[kept][order]
        keep = keep_after_nms(boxes, s.nms_onet, over="min")
        return boxes[keep], landmarks[keep]


def normalise(pixels: np.ndarray) -> np.ndarray:
    """Net input ``float32`` from pixels 0..255: ``(pixels - 127.5) / 128``."""
    return (pixels - NORMALISATION[0]) * np.float32(1.0 / NORMALISATION[1])


def net_patches(pixels: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """R-net or O-net input ``float32 [N, size, size, 3]``: the boxes' patches of ``pixels`` (float32 0..255),
    normalised, 0 outside the image (as the package crops its normalised image)."""
    return normalise(crop_patches(pixels, boxes, size, fill=NORMALISATION[0]))


def run_batch(net: Net, batch: np.ndarray) -> list[np.ndarray]:
    """``net`` on a batch zero-padded to the next power of two, outputs cut back to the batch: a few batch
    sizes recur, so a net that keeps an interpreter per input shape (``NET_KEEP_ELEMENTS``) seldom reallocates."""
    count = len(batch)
    padded = 1 << max(count - 1, 0).bit_length()
    if padded > count:
        batch = np.concatenate([batch, np.zeros((padded - count, *batch.shape[1:]), batch.dtype)])
    return [out[:count] for out in net(batch)]


def proposal_boxes(proposals: np.ndarray) -> np.ndarray:
    """Boxes (x, y, w, h) ``[N, 4]`` as R-net candidates ``[N, 5]`` (x1, y1, x2, y2, score 1): squares around
    the same centres, ``PROPOSAL_GROWTH`` times the longer side."""
    proposals = np.asarray(proposals, np.float64).reshape(-1, 4)
    centre = proposals[:, :2] + proposals[:, 2:] / 2
    half = proposals[:, 2:].max(axis=1, keepdims=True) * PROPOSAL_GROWTH / 2
    return np.concatenate([centre - half, centre + half, np.ones((len(proposals), 1))], axis=1)


def central_face(faces: list[Face], image_shape: tuple) -> Face | None:
    """The face whose box centre is nearest the image centre (None for an empty list)."""
    return faces[central_index([f.box for f in faces], image_shape)] if faces else None


def pyramid_scales(shape: tuple, min_face_size: float, scale_factor: float) -> np.ndarray:
    """Pyramid scales ``[K]`` for an image of ``shape`` (H, W): ``(12 / min_face_size) * scale_factor**k``."""
    count = round(-(np.log(min(shape) / CELL) / np.log(scale_factor) + 1))
    return CELL / min_face_size * scale_factor ** np.arange(count)


def by_channels(outputs: list[np.ndarray]) -> dict[int, np.ndarray]:
    """Net outputs keyed by their last dimension (4 box offsets, 2 class probabilities, 10 landmarks)."""
    return {out.shape[-1]: out for out in outputs}


def grid_boxes(offsets: np.ndarray, probability: np.ndarray, threshold: float) -> np.ndarray:
    """P-net cells with face probability above ``threshold`` as boxes ``[N, 5]`` in level pixels, best first.

    ``offsets [h, w, 4]`` move the cell's window (``2 * cell + 1`` to ``2 * cell + 12``) by fractions of 11 px.
    """
    rows, cols = np.where(probability > threshold)
    corners = np.stack([cols, rows, cols, rows], axis=1) * STRIDE + np.array([1, 1, CELL, CELL])
    boxes = np.concatenate([corners + offsets[rows, cols] * (CELL - 1), probability[rows, cols, None]], axis=1)
    return by_score(boxes)


def by_score(boxes: np.ndarray) -> np.ndarray:
    """Rows ``[N, 5]`` sorted by score (column 4), highest first (ties as the package breaks them)."""
    return boxes[np.argsort(boxes[:, 4])[::-1]]


def keep_after_nms(boxes: np.ndarray, threshold: float, over: str = "union") -> np.ndarray:
    """Mask ``bool [N]`` of the boxes (sorted best first) that no better box overlaps by more than ``threshold``.

    Overlap is intersection over union (``over="union"``) or over the smaller box (``"min"``).
    """
    x1, y1, x2, y2 = boxes[:, :4].T
    area = (x2 - x1) * (y2 - y1)
    width = np.maximum(0, np.minimum(x2[:, None], x2[None]) - np.maximum(x1[:, None], x1[None]))
    height = np.maximum(0, np.minimum(y2[:, None], y2[None]) - np.maximum(y1[:, None], y1[None]))
    inter = width * height
    base = area[:, None] + area[None] - inter if over == "union" else np.minimum(area[:, None], area[None])
    with np.errstate(divide="ignore", invalid="ignore"):
        overlapping = inter / base > threshold
    return ~np.triu(overlapping, k=1).any(axis=0)


def to_square(boxes: np.ndarray) -> np.ndarray:
    """Boxes ``[N, 5]`` grown to squares of their longer side around the same centre."""
    boxes = boxes.copy()
    size = boxes[:, 2:4] - boxes[:, 0:2]
    side = size.max(axis=1, keepdims=True)
    boxes[:, 0:2] += (size - side) / 2
    boxes[:, 2:4] = boxes[:, 0:2] + side
    return boxes


def shift_boxes(boxes: np.ndarray, offsets: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Boxes ``[N, 5]`` moved by ``offsets [N, 4]`` (fractions of width + 1, height + 1), with new scores."""
    size = boxes[:, 2:4] - boxes[:, 0:2] + 1
    return np.concatenate([boxes[:, :4] + offsets * np.tile(size, 2), scores[:, None]], axis=1)


def crop_patches(image: np.ndarray, boxes: np.ndarray, size: int, fill: float = 0.0) -> np.ndarray:
    """Patches ``float32 [N, size, size, 3]`` of ``image [H, W, 3]`` under boxes (x1, y1, x2, y2, ...) pixels.

    Bilinear samples as ``tf.image.crop_and_resize`` with boxes divided by (W, H): a ``size`` grid from
    corner to corner, scaled by ``(side - 1) / side``; samples outside the image are ``fill``.
    """
    height, width = image.shape[:2]
    steps = np.arange(size) / (size - 1)
    ys = (boxes[:, 1:2] + steps * (boxes[:, 3:4] - boxes[:, 1:2])) * ((height - 1) / height)
    xs = (boxes[:, 0:1] + steps * (boxes[:, 2:3] - boxes[:, 0:1])) * ((width - 1) / width)
    top, bottom, fy = _bilinear_axis(ys, height)
    left, right, fx = _bilinear_axis(xs, width)
    fy, fx = fy[:, :, None, None], fx[:, None, :, None]

    def pick(rows, cols):
        return image[rows[:, :, None], cols[:, None, :]]

    upper = pick(top, left) + (pick(top, right) - pick(top, left)) * fx
    lower = pick(bottom, left) + (pick(bottom, right) - pick(bottom, left)) * fx
    inside = ((ys >= 0) & (ys <= height - 1))[:, :, None] & ((xs >= 0) & (xs <= width - 1))[:, None, :]
    return np.where(inside[..., None], upper + (lower - upper) * fy, fill).astype(np.float32)


def _bilinear_axis(coords: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lower and upper sample indices (clipped into ``[0, length)``) and the fraction between them."""
    floor = np.floor(coords)
    lower, upper = (np.clip(c, 0, length - 1).astype(int) for c in (floor, np.ceil(coords)))
    return lower, upper, coords - floor
