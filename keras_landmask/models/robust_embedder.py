"""The occlusion-robust embedder: segmenter → region flags → FDM, trunk → feature map, masked map → head.

As one graph (``embedder``: uint8 image → embedding) and split the way the edge runtime runs it:
``features`` (image → feature map ``[B, h, w, C]`` and per-region occluded flags ``[B, R]``) and
``masked_head`` (feature map, flags → embedding, the mask dictionary inside). Gallery feature maps are
stored once; a probe's flags select the FDM applied to its map and to the gallery's.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import keras
import numpy as np

from keras_landmask.core.layouts import DEFAULT_LAYOUT, Layout
from keras_landmask.models.fdm import MaskDictionary, RegionOcclusion
from keras_landmask.runs import RunFolder


@dataclasses.dataclass
class RobustModels:
    features: keras.Model  # image uint8 [B, H, W, 3] → [feature map [B, h, w, C], flags [B, R]]
    masked_head: keras.Model  # [feature map, flags] → embedding [B, D]
    embedder: keras.Model  # image → embedding, the two above composed


def build_robust_models(trunk: keras.Model, head: keras.Model, segmenter: keras.Model, masks: np.ndarray,
                        layout: Layout) -> RobustModels:
    """Compose trained parts; ``masks`` is the layout's binary dictionary ``[R, h, w, C]``."""
    image = keras.Input(trunk.input_shape[1:], dtype="uint8", name="image")
    flags = RegionOcclusion.for_layout(layout, name="region_occlusion")(segmenter(image))
    features = keras.Model(image, [trunk(image), flags], name="features")

    feature_map = keras.Input(trunk.output_shape[1:], name="feature_map")
    occluded = keras.Input((len(layout.regions),), name="occluded_regions")
    fdm = MaskDictionary(layout.region_names, masks.shape[1:], masks, name="mask_dictionary")(occluded)
    masked = keras.layers.Multiply(name="apply_fdm")([feature_map, fdm])
    masked_head = keras.Model([feature_map, occluded], head(masked), name="masked_head")

    embedder = keras.Model(image, masked_head(features(image)), name="robust_embedder")
    return RobustModels(features, masked_head, embedder)


def load_robust_models(run: RunFolder | str | Path, layout_name: str = DEFAULT_LAYOUT) -> RobustModels:
    """The robust models of a finished run (base, dictionary and segmenter stages) for one layout."""
    run = run if isinstance(run, RunFolder) else RunFolder(run)
    layout = run.layout(layout_name)
    masks = run.dictionary(layout)
    segmenter = run.segmenter()
    base = run.recognizer()
    return build_robust_models(base.trunk, base.head, segmenter, masks, layout)
