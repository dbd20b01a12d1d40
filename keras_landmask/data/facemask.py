"""Face masks (surgical, N95, cloth, ...) from MaskTheFace templates, placed from the 5 landmarks.

MaskTheFace marks six anchor points on each RGBA template: a / c = left / right face contour at
nose-tip height, b = middle of the nose bridge, d / f = left / right jaw at bottom-lip height,
e = chin bottom. We derive those six face points from the 5 MTCNN landmarks (eye line for roll,
inter-ocular and eye-to-mouth distances for scale, nose offset for head turn), fit a homography
template -> face, warp the template and alpha-composite it. Templates drawn for a turned head
(``NAME_left`` / ``NAME_right``) are used when the nose is clearly left / right of the eye midpoint.
"""
from __future__ import annotations

import configparser
import dataclasses
from pathlib import Path

import cv2
import numpy as np

from keras_landmask.errors import LandmaskError

ANCHOR_NAMES = ("a", "b", "c", "d", "e", "f")
TURN_SUFFIXES = ("_left", "_right")

# Face shape, horizontally in inter-ocular distances (iod) along the eye line, vertically in eye-to-mouth
# distances below the mouth. A turned head shifts the face's axis opposite to the nose (less than a
# cylinder would: heads are flatter), and the contour never comes closer to the nose or mouth corners
# than CONTOUR_MARGIN, which keeps the far side of a turned face covered.
CHEEK_HALF_WIDTH = 1.05  # a, c: face contour at nose-tip height, from the face's axis
JAW_HALF_WIDTH = 0.9  # d, f: jaw at bottom-lip height
AXIS_SHIFT = 0.75  # axis offset per unit of head_turn
CONTOUR_MARGIN = 0.3  # iod
BOTTOM_LIP_DROP = 0.15  # d, f
CHIN_DROP = 0.6  # e
TURN_THRESHOLD = 0.15  # |head_turn| above which the turned template is used (roughly 15 degrees of yaw)


@dataclasses.dataclass(frozen=True, eq=False)
class MaskTemplate:
    """One MaskTheFace template: ``rgba`` uint8 [h, w, 4] (RGBA), ``anchors`` float32 [6, 2] (x, y) a..f."""

    name: str
    rgba: np.ndarray
    anchors: np.ndarray


def load_mask_templates(folder: str | Path) -> dict[str, MaskTemplate]:
    """Read ``<folder>/masks.cfg`` and ``<folder>/templates/*.png``; keys are section names (e.g. ``cloth_left``)."""
    folder = Path(folder)
    if not (folder / "masks.cfg").is_file():
        raise LandmaskError(
            f"no masks.cfg in {folder}: pass the MaskTheFace templates folder (e.g. ../shared/data/maskthefaces)"
        )
    config = configparser.ConfigParser(strict=False)
    config.read(folder / "masks.cfg")
    templates = {}
    for name in config.sections():
        section = config[name]
        if "template" not in section:  # MaskTheFace's "empty" and "inpaint" modes have no image
            continue
        path = folder / "templates" / Path(section["template"]).name
        bgra = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if bgra is None or bgra.ndim != 3 or bgra.shape[2] != 4:
            raise LandmaskError(f"cannot read the RGBA mask template {path}: restore the MaskTheFace templates folder")
        anchors = [[float(v) for v in section[f"mask_{k}"].split(",")] for k in ANCHOR_NAMES]
        templates[name] = MaskTemplate(name, cv2.cvtColor(bgra, cv2.COLOR_BGRA2RGBA), np.array(anchors, np.float32))
    return templates


def mask_kinds(templates: dict[str, MaskTemplate]) -> list[str]:
    """The base mask types (template names without a turn suffix), sorted."""
    return sorted(name for name in templates if not name.endswith(TURN_SUFFIXES))


def head_turn(landmarks: np.ndarray) -> float:
    """Nose offset from the eye midpoint along the eye line, in inter-ocular distances (< 0: nose toward image left)."""
    left_eye, right_eye, nose = np.asarray(landmarks, np.float64)[:3]
    eye_line = right_eye - left_eye
    return float((nose - (left_eye + right_eye) / 2) @ eye_line / (eye_line @ eye_line))


def face_points(landmarks: np.ndarray) -> np.ndarray:
    """The six MaskTheFace face points a..f, float32 [6, 2] (x, y) in crop pixels, from landmarks [5, 2]."""
    landmarks = np.asarray(landmarks, np.float64)
    left_eye, right_eye = landmarks[:2]
    eye_mid = (left_eye + right_eye) / 2
    iod = np.linalg.norm(right_eye - left_eye)
    across = (right_eye - left_eye) / iod  # along the eye line: roll
    down = np.array([-across[1], across[0]])  # toward the mouth
    x, y = np.stack([across, down]) @ (landmarks - eye_mid).T / iod  # face frame, in iod
    nose_x, nose_y = x[2], y[2]
    mouth_x, mouth_y = x[3:].mean(), y[3:].mean()

    axis = -AXIS_SHIFT * nose_x
    inner_left, inner_right = x[2:].min() - CONTOUR_MARGIN, x[2:].max() + CONTOUR_MARGIN
    cheek_left, cheek_right = min(axis - CHEEK_HALF_WIDTH, inner_left), max(axis + CHEEK_HALF_WIDTH, inner_right)
    jaw_left, jaw_right = min(axis - JAW_HALF_WIDTH, inner_left), max(axis + JAW_HALF_WIDTH, inner_right)
    lip_y, chin_y = mouth_y * (1 + BOTTOM_LIP_DROP), mouth_y * (1 + CHIN_DROP)
    offsets = np.array([
        [cheek_left, nose_y],  # a
        [nose_x / 2, nose_y / 2],  # b
        [cheek_right, nose_y],  # c
        [jaw_left, lip_y],  # d
        [mouth_x, chin_y],  # e
        [jaw_right, lip_y],  # f
    ])
    return (eye_mid + iod * (offsets[:, :1] * across + offsets[:, 1:] * down)).astype(np.float32)


def template_name(kind: str, turn: float, templates: dict[str, MaskTemplate]) -> str:
    """``kind`` or its turned variant ``kind_left`` / ``kind_right`` for a head turn (see ``head_turn``)."""
    suffix = "_left" if turn < -TURN_THRESHOLD else "_right" if turn > TURN_THRESHOLD else ""
    return kind + suffix if kind + suffix in templates else kind


def face_mask(
    image: np.ndarray,
    landmarks: np.ndarray,
    templates: dict[str, MaskTemplate],
    rng: np.random.Generator,
    kind: str | None = None,
    colour=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Put a face mask on an RGB uint8 [H, W, 3] face with landmarks float32 [5, 2] (x, y) in crop pixels.

    ``kind`` is a base type from ``mask_kinds(templates)``, or None for a random one. ``colour``: None keeps the
    template's colours, else ``colour(rgb float [h, w, 3] in 0..1, alpha [h, w], rng) -> rgb`` repaints the
    template (``appearance.recolour``).
    Returns ``(occluded uint8 [H, W, 3], true_mask bool [H, W])``, the mask where the warped alpha > 0.5.
    """
    kinds = mask_kinds(templates)
    if kind is None:
        kind = kinds[rng.integers(len(kinds))]
    elif kind not in kinds:
        raise LandmaskError(f"unknown face mask kind {kind!r}: use one of {', '.join(kinds)}")
    template = templates[template_name(kind, head_turn(landmarks), templates)]
    points = face_points(landmarks)

    # Shrink the template to about its size on the face first, so the warp does not alias.
    scale = min(1.0, np.linalg.norm(points[2] - points[0]) / np.linalg.norm(template.anchors[2] - template.anchors[0]))
    rgba = cv2.resize(template.rgba, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    if colour is not None:
        rgba = np.concatenate([colour(rgba[..., :3], rgba[..., 3], rng), rgba[..., 3:]], axis=-1)
    order = [0, 1, 2, 5, 4, 3]  # MaskTheFace fits a, b, c, f, e, d
    homography, _ = cv2.findHomography(template.anchors[order] * scale, points[order])

    premultiplied = np.concatenate([rgba[..., :3] * rgba[..., 3:], rgba[..., 3:]], axis=-1)
    height, width = image.shape[:2]
    warped = cv2.warpPerspective(premultiplied, homography, (width, height), flags=cv2.INTER_LINEAR)
    alpha = warped[..., 3:]
    occluded = warped[..., :3] * 255 + (1 - alpha) * image
    return np.clip(np.rint(occluded), 0, 255).astype(np.uint8), alpha[..., 0] > 0.5
