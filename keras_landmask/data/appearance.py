"""Appearance variety for the segmenter's training occluders: any colour, fabric prints, combined occluders, and
camera looks and artefacts, so it learns occlusion rather than the look of a few drawings.

Trained on MaskTheFace's own template colours (mostly light-blue and white masks) and three dark lens tints, the
segmenter missed occluders of other colours and shapes (the ``robustness`` stage: polygon masks flagged on 66 % of
faces against 99 % for the training masks). ``varied_occluders`` wraps the catalogue's kinds:

- ``face_mask``: the template recoloured (``recolour``) with a colour from the whole hue, saturation and brightness
  range (reds, pinks, blacks) or a MaskTheFace fabric texture (checks, flowers, fruit, prints), keeping the
  template's own shading (folds, pleats) as a brightness modulation; the template's colours on the rest;
- ``sunglasses``: any dark lens tint or a mirrored lens of any colour, any frame colour;
- ``mask_and_sunglasses``: both on one face (their masks' union);
- ``band`` and ``block``: as in the catalogue, the block in a random colour.

``finish`` then gives any crop (clean or occluded, the target unchanged) a camera's look: grayscale or
near-infrared (``camera_look``; clean faces so must never be flagged), blur, sensor noise or JPEG artefacts.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from keras_landmask.data.facemask import MaskTemplate, face_mask
from keras_landmask.data.sunglasses import sunglasses

TEXTURE_SUFFIXES = (".png", ".jpg", ".jpeg")
RECOLOUR_RATE = 0.8  # varied face masks and lenses; the rest keep the templates' and the catalogue's colours
CAMERA_LOOK_RATE = 0.2  # crops shown as a grayscale or near-infrared camera gives them
ARTEFACT_RATE = 0.3  # each of blur, noise and JPEG, independently


def load_textures(masks_dir: str | Path, size: int = 256) -> list[np.ndarray]:
    """MaskTheFace's fabric textures (``<masks_dir>/textures/*/*``) as RGB float32 ``[size, size, 3]`` in 0..1;
    empty when the folder has none."""
    textures = []
    for path in sorted(Path(masks_dir, "textures").glob("*/*")):
        if path.suffix.lower() not in TEXTURE_SUFFIXES:
            continue
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is not None:
            textures.append(cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), (size, size),
                                       interpolation=cv2.INTER_AREA).astype(np.float32) / 255)
    return textures


def any_colour(rng: np.random.Generator, value: tuple[int, int] = (8, 256)) -> np.ndarray:
    """An RGB float32 colour in 0..1 from any hue and saturation and a brightness in ``value`` (of 0..255)."""
    hsv = np.uint8([[[rng.integers(0, 180), rng.integers(0, 256), rng.integers(*value)]]])
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32) / 255


def fabric(shape: tuple[int, int], textures: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """A float32 ``[h, w, 3]`` fill in 0..1: a random crop of a texture (any quarter turn, recoloured half the time)
    or, half the time or without textures, one colour."""
    height, width = shape
    if not textures or rng.random() < 0.5:
        return np.broadcast_to(any_colour(rng), (height, width, 3)).copy()
    texture = np.rot90(textures[rng.integers(len(textures))], rng.integers(4))
    side = int(rng.integers(max(height, width) // 2 + 1, texture.shape[0] + 1))
    y, x = rng.integers(0, texture.shape[0] - side + 1), rng.integers(0, texture.shape[1] - side + 1)
    tile = cv2.resize(np.ascontiguousarray(texture[y:y + side, x:x + side]), (width, height))
    if rng.random() < 0.5:  # the same print in other colours
        tile = np.clip(tile[..., rng.permutation(3)] * rng.uniform(0.6, 1.3), 0, 1)
    return tile


def recolour(textures: list[np.ndarray]) -> Callable:
    """``colour(rgb float [h, w, 3] in 0..1, alpha [h, w], rng) -> rgb``: a new fill, shaded like the template
    (its luminance over its mean, clipped, as the folds and pleats)."""
    def colour(rgb: np.ndarray, alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        luminance = rgb.mean(axis=2)
        inside = alpha > 0.5
        shading = np.clip(luminance / max(float(luminance[inside].mean()) if inside.any() else 1.0, 1e-3), 0.4, 1.4)
        return np.clip(fabric(rgb.shape[:2], textures, rng) * shading[..., None], 0, 1)
    return colour


def camera_look(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The crop as a grayscale camera (luma) or a near-infrared one (bright skin: a random channel mix weighted to
    red, a contrast stretch) gives it, in all three channels; uint8 ``[H, W, 3]``."""
    if rng.random() < 0.5:
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    else:
        weights = np.array([rng.uniform(0.5, 0.9), rng.uniform(0.05, 0.3), rng.uniform(0.0, 0.2)], np.float32)
        gray = image.astype(np.float32) @ (weights / weights.sum())
        low, high = np.percentile(gray, (1, 99))
        gray = (gray - low) / max(high - low, 1.0) * 255 * rng.uniform(0.8, 1.0) + rng.uniform(0, 30)
    return np.repeat(np.clip(np.round(gray), 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def artefacts(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Blur, sensor noise and JPEG compression, each with probability ``ARTEFACT_RATE``; uint8 ``[H, W, 3]``."""
    if rng.random() < ARTEFACT_RATE:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.5, 1.3))
    if rng.random() < ARTEFACT_RATE:
        image = np.clip(image + rng.normal(0, rng.uniform(2, 8), image.shape), 0, 255).astype(np.uint8)
    if rng.random() < ARTEFACT_RATE:
        _, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(25, 90))])
        image = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)
    return image


def finish(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A training crop's last step: a camera look (``CAMERA_LOOK_RATE``), then ``artefacts``."""
    if rng.random() < CAMERA_LOOK_RATE:
        image = camera_look(image, rng)
    return artefacts(image, rng)


def varied_occluders(catalogue: dict, templates: dict[str, MaskTemplate], textures: list[np.ndarray]) -> dict:
    """The catalogue's kinds with varied looks, and ``mask_and_sunglasses`` (see the module docstring)."""
    colour = recolour(textures)

    def mask(image, landmarks, rng):
        return face_mask(image, landmarks, templates, rng, colour=colour if rng.random() < RECOLOUR_RATE else None)

    def glasses(image, landmarks, rng):
        if rng.random() >= RECOLOUR_RATE:
            return sunglasses(image, landmarks, rng)
        mirrored = rng.random() < 0.25
        tint = any_colour(rng, (120, 256) if mirrored else (8, 90)) * 255
        return sunglasses(image, landmarks, rng, tint=tint, frame_colour=any_colour(rng) * 255,
                          opacity=1.0 if mirrored else None)

    def both(image, landmarks, rng):
        masked, mask_cover = mask(image, landmarks, rng)
        occluded, glasses_cover = glasses(masked, landmarks, rng)
        return occluded, mask_cover | glasses_cover

    def block(image, landmarks, rng):
        occluded, cover = catalogue["block"](image, landmarks, rng)
        occluded = occluded.copy()
        occluded[cover] = np.round(any_colour(rng, (0, 256)) * 255).astype(np.uint8)
        return occluded, cover

    return {"face_mask": mask, "sunglasses": glasses, "mask_and_sunglasses": both, "band": catalogue["band"],
            "block": block}
