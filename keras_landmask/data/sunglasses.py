"""Sunglasses drawn with OpenCV from the eye landmarks: tinted lenses, frame, bridge and temple arms.

Lenses are centred on the eyes, sized in inter-ocular distances (iod) and rotated with the eye line.
Lens outlines are superellipses, widened at the top (wayfarer) or deepened at the lower inner corner
(aviator teardrop). Lenses are semi-transparent (darker at the top), the frame is opaque.
"""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from keras_landmask.errors import LandmaskError

SHIFT = 4  # fractional bits of the point coordinates given to OpenCV's drawing functions
OUTLINE_POINTS = 72
LENS_DROP = 0.05  # lens centre below the eye, in iod
TEMPLE_LENGTH = 0.4  # temple arm beyond the lens, in iod
LENS_TINTS = ((28, 28, 30), (58, 40, 26), (30, 46, 32))  # RGB: dark grey, brown, green
FRAME_COLOURS = ((12, 12, 12), (60, 38, 22), (110, 110, 115), (150, 120, 60))  # black, brown, gunmetal, gold


@dataclasses.dataclass(frozen=True)
class Style:
    """Lens shape and frame, lengths in iod."""

    half_width: float
    half_height: float
    squareness: float  # superellipse exponent: 2 = ellipse, larger = squarer
    flare: float  # extra half-width at the top edge, as a fraction of half_width
    droop: float  # extra depth at the lower inner corner, as a fraction of half_height
    frame: float  # frame line thickness


STYLES = {
    "round": Style(half_width=0.37, half_height=0.35, squareness=2.0, flare=0.0, droop=0.0, frame=0.04),
    "wayfarer": Style(half_width=0.41, half_height=0.28, squareness=4.0, flare=0.12, droop=0.0, frame=0.07),
    "aviator": Style(half_width=0.44, half_height=0.3, squareness=2.4, flare=0.05, droop=0.35, frame=0.03),
}


def lens_outline(style: Style) -> np.ndarray:
    """Lens outline float [OUTLINE_POINTS, 2] as (outward, down) in iod from the lens centre; outward = to the temple."""
    angle = np.linspace(0, 2 * np.pi, OUTLINE_POINTS, endpoint=False)
    power = 2 / style.squareness
    x = np.sign(np.cos(angle)) * np.abs(np.cos(angle)) ** power
    y = np.sign(np.sin(angle)) * np.abs(np.sin(angle)) ** power
    x = x * (1 + style.flare * np.clip(-y, 0, 1))
    y = np.where(y > 0, y * (1 + style.droop * (1 - x) / 2), y)
    return np.stack([x * style.half_width, y * style.half_height], axis=-1)


def sunglasses(
    image: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator, style: str | None = None,
    tint: np.ndarray | None = None, frame_colour: np.ndarray | None = None, opacity: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw sunglasses on an RGB uint8 [H, W, 3] face with landmarks float [5, 2] (x, y) in crop pixels.

    ``style`` is one of ``STYLES`` or None for a random one. ``tint`` and ``frame_colour`` (RGB, 0..255) replace
    a draw from ``LENS_TINTS`` and ``FRAME_COLOURS``; ``opacity`` (0..1) makes the lenses uniformly that opaque
    (a mirrored lens) instead of darker at the top.
    Returns ``(occluded uint8 [H, W, 3], true_mask bool [H, W])``, the mask covering lenses, frame, bridge and arms.
    """
    if style is None:
        style = list(STYLES)[rng.integers(len(STYLES))]
    elif style not in STYLES:
        raise LandmaskError(f"unknown sunglasses style {style!r}: use one of {', '.join(STYLES)}")
    shape = STYLES[style]
    left_eye, right_eye = np.asarray(landmarks, np.float64)[:2]
    iod = np.linalg.norm(right_eye - left_eye)
    across = (right_eye - left_eye) / iod
    down = np.array([-across[1], across[0]])

    outline = lens_outline(shape)
    lenses = []
    for eye, outward in ((left_eye, -across), (right_eye, across)):
        centre = eye + LENS_DROP * iod * down
        lenses.append(centre + iod * (outline[:, :1] * outward + outline[:, 1:] * down))
    inner = [lens[np.argmin(lens @ across * sign)] for lens, sign in zip(lenses, (-1, 1))]
    outer = [lens[np.argmax(lens @ across * sign)] for lens, sign in zip(lenses, (-1, 1))]
    lift = -0.25 * shape.half_height * iod * down  # bridge and arms sit above the lens middle
    bridge = [inner[0] + lift, (inner[0] + inner[1]) / 2 + 2 * lift, inner[1] + lift]
    temples = [[end + lift, end + lift + sign * TEMPLE_LENGTH * iod * across] for end, sign in zip(outer, (-1, 1))]

    height, width = image.shape[:2]
    thickness = max(1, round(shape.frame * iod))
    lens_cover = np.zeros((height, width), np.uint8)
    cv2.fillPoly(lens_cover, _fixed(lenses), 255, cv2.LINE_AA, SHIFT)
    frame_cover = np.zeros((height, width), np.uint8)
    cv2.polylines(frame_cover, _fixed(lenses), True, 255, thickness, cv2.LINE_AA, SHIFT)
    cv2.polylines(frame_cover, _fixed([bridge, *temples]), False, 255, thickness, cv2.LINE_AA, SHIFT)
    lens_cover, frame_cover = lens_cover / np.float32(255), frame_cover / np.float32(255)

    # Lens opacity falls linearly from the top to the bottom of the lens.
    alpha_top = rng.uniform(0.82, 0.92)
    alpha_bottom = rng.uniform(0.72, alpha_top)
    rows, cols = np.indices((height, width))
    depth = (np.stack([cols, rows], axis=-1) - (left_eye + right_eye) / 2) @ down / iod
    fraction = np.clip((depth - LENS_DROP + shape.half_height) / (2 * shape.half_height), 0, 1)
    lens_alpha = lens_cover * (alpha_top + (alpha_bottom - alpha_top) * fraction if opacity is None else opacity)

    if tint is None:
        tint = np.array(LENS_TINTS[rng.integers(len(LENS_TINTS))], np.float32)
    if frame_colour is None:
        frame_colour = np.array(FRAME_COLOURS[rng.integers(len(FRAME_COLOURS))], np.float32)
    occluded = image * (1 - lens_alpha[..., None]) + tint * lens_alpha[..., None]
    occluded = occluded * (1 - frame_cover[..., None]) + frame_colour * frame_cover[..., None]
    mask = (lens_cover > 0.5) | (frame_cover > 0.5)
    return np.clip(np.rint(occluded), 0, 255).astype(np.uint8), mask


def _fixed(polylines) -> list[np.ndarray]:
    """Float (x, y) polylines -> int32 fixed-point arrays for OpenCV drawing with ``SHIFT`` fractional bits."""
    return [np.rint(np.asarray(line) * (1 << SHIFT)).astype(np.int32) for line in polylines]

