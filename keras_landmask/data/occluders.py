"""The catalogue of synthetic occlusions by kind, with a uniform call signature.

Every occluder is ``f(image uint8 [H, W, 3], landmarks float32 [5, 2], rng) -> (occluded, true_mask bool [H, W])``.
Kinds: ``block`` (uniform random intensity on a random region of any layout; mask-generator training),
``band`` (white full-width band on a random LM2 band; the paper's Table 1 rows), ``face_mask``
(MaskTheFace template) and ``sunglasses``.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from keras_landmask.data.facemask import MaskTemplate, face_mask, mask_kinds
from keras_landmask.data.layouts import Layout
from keras_landmask.data.occlusions import random_block, white_band
from keras_landmask.data.sunglasses import STYLES, sunglasses

Occluder = Callable[[np.ndarray, np.ndarray, np.random.Generator], tuple[np.ndarray, np.ndarray]]


def occluder_catalogue(layouts: dict[str, Layout], templates: dict[str, MaskTemplate]) -> dict[str, Occluder]:
    """One occluder per kind; ``layouts`` must include LM2 (its bands are the Table 1 rows),
    ``templates`` come from ``facemask.load_mask_templates``."""
    regions = [region for layout in layouts.values() for region in layout.regions]
    bands = layouts["LM2"].regions

    def block(image, landmarks, rng):
        return random_block(image, regions[rng.integers(len(regions))], rng)

    def band(image, landmarks, rng):
        return white_band(image, bands[rng.integers(len(bands))])

    def mask(image, landmarks, rng):
        return face_mask(image, landmarks, templates, rng)

    def glasses(image, landmarks, rng):
        return sunglasses(image, landmarks, rng)

    return {"block": block, "band": band, "face_mask": mask, "sunglasses": glasses}


def occlude_each(images: np.ndarray, landmarks: np.ndarray, occlude: Occluder, seed: int):
    """Every face under one occluder, face ``i`` drawn from seed ``[seed, i]`` (so stages draw the same probes):
    ``(occluded uint8 [N, H, W, 3], true masks bool [N, H, W])``."""
    pairs = [occlude(image, marks, np.random.default_rng([seed, i]))
             for i, (image, marks) in enumerate(zip(images, landmarks))]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def occlusion_columns(layouts: dict[str, Layout], templates: dict[str, MaskTemplate]) -> list[tuple[str, Occluder]]:
    """Every variant by title ("kind\\nvariant"), for contact sheets: each LM2 band, a block on two LM1 boxes
    and on the central grid cell, each face mask type, each sunglasses style."""
    columns: list[tuple[str, Occluder]] = []
    for band in layouts["LM2"].regions:
        columns.append((f"band\n{band.name}", lambda image, marks, rng, band=band: white_band(image, band)))
    for layout, index in (("LM1", 0), ("LM1", 3), ("grid3x3", 4)):
        region = layouts[layout].regions[index]
        title = f"block\n{layout} {region.name}"
        columns.append((title, lambda image, marks, rng, region=region: random_block(image, region, rng)))
    for kind in mask_kinds(templates):
        columns.append((f"face mask\n{kind}", lambda image, marks, rng, kind=kind: face_mask(image, marks, templates, rng, kind)))
    for style in STYLES:
        columns.append((f"sunglasses\n{style}", lambda image, marks, rng, style=style: sunglasses(image, marks, rng, style)))
    return columns
