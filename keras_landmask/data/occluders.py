"""Synthetic occlusions: region blocks and white bands, the catalogue by kind, and Table 1's probes.

Every occluder is ``f(image uint8 [H, W, 3], landmarks float32 [5, 2], rng) -> (occluded, true_mask bool [H, W])``:
the input image is never modified, the mask is True where the occluder is. Regions are boxes in crop pixels
(``core.layouts.Region``). Kinds: ``block`` (uniform random intensity on a random region of any layout;
mask-generator training), ``band`` (white full-width band on a random LM2 band; the paper's Table 1 rows),
``face_mask`` (MaskTheFace template) and ``sunglasses``; ``clean`` is the pseudo-occluder that leaves a face as it is.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from keras_landmask.core.layouts import TABLE1_BANDS, Layout, Region
from keras_landmask.data.facemask import MaskTemplate, face_mask, mask_kinds
from keras_landmask.data.faceset import FaceSet
from keras_landmask.data.sunglasses import STYLES, sunglasses

Occluder = Callable[[np.ndarray, np.ndarray, np.random.Generator], tuple[np.ndarray, np.ndarray]]


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


def clean(image: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """No occlusion: the image itself and an all-False mask."""
    return image, np.zeros(image.shape[:2], bool)


def _band_occluder(region: Region) -> Occluder:
    return lambda image, landmarks, rng: white_band(image, region)


def occluder_catalogue(layouts: dict[str, Layout], templates: dict[str, MaskTemplate]) -> dict[str, Occluder]:
    """One occluder per kind; ``layouts`` must include ``TABLE1_BANDS`` (LM2: its bands are the Table 1 rows),
    ``templates`` come from ``facemask.load_mask_templates``."""
    regions = [region for layout in layouts.values() for region in layout.regions]
    bands = layouts[TABLE1_BANDS].regions

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
    """Every variant by title ("kind\\nvariant"), for contact sheets: each LM2 band, a block on the middle region
    of every other layout, each face mask type, each sunglasses style."""
    columns: list[tuple[str, Occluder]] = []
    for band in layouts[TABLE1_BANDS].regions:
        columns.append((f"band\n{band.name}", _band_occluder(band)))
    for layout in (layout for name, layout in layouts.items() if name != TABLE1_BANDS):
        region = layout.regions[len(layout.regions) // 2]
        title = f"block\n{layout.name} {region.name}"
        columns.append((title, lambda image, marks, rng, region=region: random_block(image, region, rng)))
    for kind in mask_kinds(templates):
        columns.append((f"face mask\n{kind}", lambda image, marks, rng, kind=kind: face_mask(image, marks, templates, rng, kind)))
    for style in STYLES:
        columns.append((f"sunglasses\n{style}", lambda image, marks, rng, style=style: sunglasses(image, marks, rng, style)))
    return columns


def table1_probes(faces: FaceSet, layouts: dict[str, Layout], templates: dict[str, MaskTemplate],
                  seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Table 1's rows, occlusion name (``clean``, each LM2 band, ``face_mask``, ``sunglasses``) →
    ``(images uint8 [N, H, W, 3], true masks bool [N, H, W])``, face ``i`` drawn from seed ``[seed, i]``."""
    kinds = occluder_catalogue(layouts, templates)
    occluders = {"clean": clean, **{band.name: _band_occluder(band) for band in layouts[TABLE1_BANDS].regions},
                 "face_mask": kinds["face_mask"], "sunglasses": kinds["sunglasses"]}
    return {name: occlude_each(faces.images, faces.landmarks, occlude, seed) for name, occlude in occluders.items()}
