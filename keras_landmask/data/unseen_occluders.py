"""Occluders that training never sees: a second, independent generator, drawn only in evaluation.

The training occluders (``data.occluders``: MaskTheFace templates warped onto the face, sunglasses with
superellipse lenses, white bands, grey blocks) teach the segmenter what an occlusion looks like. These check
that it learnt *occlusion* and not those drawings: different shapes (straight-edged polygons from the 5
landmarks, wavy-topped scarves), different fills (any colour over the whole hue range, stripes, checks, dots,
drawn here, not the MaskTheFace textures), different edges (hard or feathered) and different lenses (flat
polygons, tinted or mirrored). Also clean faces as a grayscale or near-infrared camera gives them, which must
not be flagged. Only ``stages.robustness`` imports this module (a test checks it), so no training stage can
learn from it.

Every occluder is ``f(image uint8 [H, W, 3], landmarks float32 [5, 2], rng) -> (occluded, true_mask bool [H, W])``
like ``data.occluders``; landmarks are MTCNN's (left eye, right eye, nose, left and right mouth corner), in
crop pixels (x, y).
"""
from __future__ import annotations

import cv2
import numpy as np

PATTERNS = ("flat", "stripes", "checks", "dots")


def face_axes(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """``(eye centre [2], across unit [2], down unit [2], eye distance, eye-to-mouth distance)`` in pixels."""
    left_eye, right_eye, _, mouth_left, mouth_right = np.asarray(landmarks, np.float64)
    eyes, mouth = (left_eye + right_eye) / 2, (mouth_left + mouth_right) / 2
    across = right_eye - left_eye
    eye_distance = max(float(np.linalg.norm(across)), 1.0)
    across /= eye_distance
    down = np.array([-across[1], across[0]])
    if np.dot(down, mouth - eyes) < 0:
        down = -down
    return eyes, across, down, eye_distance, max(float(np.dot(mouth - eyes, down)), 1.0)


def random_colour(rng: np.random.Generator) -> np.ndarray:
    """An RGB colour anywhere in hue, saturation and brightness (reds, pinks and blacks included)."""
    hsv = np.uint8([[[rng.integers(0, 180), rng.integers(0, 256), rng.integers(10, 256)]]])
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def fill(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A float32 ``[H, W, 3]`` fill: one colour, or stripes, checks or dots of two colours at a random angle."""
    height, width = shape
    first, second = random_colour(rng), random_colour(rng)
    pattern = PATTERNS[rng.integers(len(PATTERNS))]
    if pattern == "flat":
        return np.broadcast_to(first, (height, width, 3)).copy()
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    angle, period = rng.uniform(0, np.pi), rng.uniform(4, 14)
    u = xs * np.cos(angle) + ys * np.sin(angle)
    v = -xs * np.sin(angle) + ys * np.cos(angle)
    if pattern == "stripes":
        second_here = (u // (period / 2)) % 2 == 1
    elif pattern == "checks":
        second_here = ((u // period) + (v // period)) % 2 == 1
    else:
        second_here = ((u % period - period / 2) ** 2 + (v % period - period / 2) ** 2) < (period / 4) ** 2
    return np.where(second_here[..., None], second, first).astype(np.float32)


def paint(image: np.ndarray, polygons: list[np.ndarray], colours: np.ndarray, rng: np.random.Generator,
          opacity: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """``image`` with ``colours`` (float ``[H, W, 3]``) inside ``polygons`` (pixel points ``[K, 2]`` each), edges
    hard or feathered at random; the true mask is where the cover is at least half opaque."""
    height, width = image.shape[:2]
    cover = np.zeros((height, width), np.float32)
    cv2.fillPoly(cover, [np.round(p).astype(np.int32) for p in polygons], 1.0,
                 lineType=cv2.LINE_8 if rng.random() < 0.5 else cv2.LINE_AA)
    if rng.random() < 0.5:
        cover = cv2.GaussianBlur(cover, (0, 0), rng.uniform(0.8, 2.0))
    alpha = (cover * opacity)[..., None]
    occluded = image.astype(np.float32) * (1 - alpha) + colours * alpha
    return np.clip(np.round(occluded), 0, 255).astype(np.uint8), alpha[..., 0] >= 0.5


def polygon_mask(image: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator):
    """A straight-edged mask over nose, mouth and chin: a jittered hexagon from the landmarks, sometimes with
    ear loops drawn as lines to the crop's sides."""
    eyes, across, down, eye_distance, eye_mouth = face_axes(landmarks)
    jitter = lambda: rng.uniform(-0.08, 0.08) * eye_distance  # noqa: E731
    top = eyes + down * eye_mouth * rng.uniform(0.35, 0.55)
    middle = eyes + down * eye_mouth * rng.uniform(0.95, 1.15)
    chin = eyes + down * eye_mouth * rng.uniform(1.55, 1.8)
    wide, chin_wide = eye_distance * rng.uniform(0.95, 1.2), eye_distance * rng.uniform(0.35, 0.6)
    hexagon = np.array([top - across * wide * 0.8, top + across * wide * 0.8, middle + across * wide,
                        chin + across * chin_wide, chin - across * chin_wide, middle - across * wide])
    hexagon += np.array([[jitter(), jitter()] for _ in hexagon])
    occluded, mask = paint(image, [hexagon], fill(image.shape[:2], rng), rng)
    if rng.random() < 0.5:  # ear loops: thin lines, too thin to count as occlusion
        colour = tuple(float(c) for c in random_colour(rng))
        for corner, side in ((hexagon[0], -1), (hexagon[1], 1)):
            end = corner + across * side * eye_distance * 1.5
            cv2.line(occluded, tuple(np.round(corner).astype(int)), tuple(np.round(end).astype(int)), colour, 1)
    return occluded, mask


def polygon_glasses(image: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator):
    """Flat polygonal lenses (5 to 8 corners) over both eyes and a bridge: dark and tinted, or mirrored in a
    bright colour."""
    eyes, across, down, eye_distance, _ = face_axes(landmarks)
    half_width, half_height = eye_distance * rng.uniform(0.36, 0.48), eye_distance * rng.uniform(0.22, 0.36)
    corners = int(rng.integers(5, 9))
    step = 2 * np.pi / corners
    angles = rng.uniform(0, step) + step * np.arange(corners) + rng.uniform(-0.25, 0.25, corners) * step
    lenses = []
    for eye in np.asarray(landmarks[:2], np.float64):
        centre = eye + down * eye_distance * rng.uniform(-0.02, 0.08)
        lenses.append(np.array([centre + across * half_width * np.cos(a) + down * half_height * np.sin(a)
                                for a in angles]))
    bridge_half = eye_distance * 0.05
    inner = [lenses[0][np.argmax(lenses[0] @ across)], lenses[1][np.argmin(lenses[1] @ across)]]  # facing corners
    bridge = np.array([inner[0] - down * bridge_half, inner[1] - down * bridge_half,
                       inner[1] + down * bridge_half, inner[0] + down * bridge_half])
    mirrored = rng.random() < 0.3
    colour = random_colour(rng) if mirrored else np.float32(rng.integers(5, 70, 3))
    opacity = 1.0 if mirrored else rng.uniform(0.8, 0.97)
    return paint(image, lenses + [bridge], np.broadcast_to(colour, image.shape).astype(np.float32), rng, opacity)


def scarf(image: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator):
    """A scarf pulled up over mouth and chin: from a wavy top edge between the nose and the mouth down to the
    crop's bottom, patterned."""
    eyes, across, down, eye_distance, eye_mouth = face_axes(landmarks)
    height, width = image.shape[:2]
    top = eyes + down * eye_mouth * rng.uniform(0.6, 0.85)
    wave, waves, phase = eye_distance * rng.uniform(0.03, 0.12), rng.uniform(1, 3), rng.uniform(0, 2 * np.pi)
    offsets = np.linspace(-2.5, 2.5, 40) * eye_distance
    edge = [top + across * t + down * wave * np.sin(waves * t / eye_distance + phase) for t in offsets]
    bottom = [edge[-1] + down * 2 * height, edge[0] + down * 2 * height]
    polygon = np.clip(np.array(edge + bottom), -width, 3 * max(height, width))
    return paint(image, [polygon], fill(image.shape[:2], rng), rng)


def grayscale(image: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator):
    """The clean face as a monochrome camera sees it (luma in all three channels); nothing occluded."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return np.repeat(gray[..., None], 3, axis=2), np.zeros(image.shape[:2], bool)


def infrared(image: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator):
    """The clean face as a near-infrared camera (Pi NoIR, IR illuminator) gives it: bright, flat skin (the red
    channel carries most of the near-IR look), a gamma lift, a faint magenta or green cast, sensor noise;
    nothing occluded."""
    red = image[..., 0].astype(np.float32) / 255
    luma = np.power(np.clip(0.7 * red + 0.3 * image.mean(axis=2) / 255, 0, 1), rng.uniform(0.6, 0.85))
    cast = np.array([1.0, 1.0, 1.0]) + rng.uniform(-0.06, 0.06) * np.array([1.0, -1.0, 1.0])
    frame = luma[..., None] * 255 * cast + rng.normal(0, 3, image.shape)
    return np.clip(np.round(frame), 0, 255).astype(np.uint8), np.zeros(image.shape[:2], bool)


UNSEEN_OCCLUDERS = {"polygon_mask": polygon_mask, "scarf": scarf, "polygon_glasses": polygon_glasses}
CLEAN_VARIANTS = {"grayscale": grayscale, "infrared": infrared}
# The training kind each unseen occluder stands beside in the report.
TRAINING_COUNTERPART = {"polygon_mask": "face_mask", "scarf": "face_mask", "polygon_glasses": "sunglasses",
                        "grayscale": "clean", "infrared": "clean"}
