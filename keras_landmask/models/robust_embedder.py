"""The occlusion-robust embedder: segmenter → region flags → FDM, trunk → feature map, masked map → head.

As one graph (``embedder``: uint8 image → embedding) and split the way the edge runtime runs it:
``features`` (image → feature map ``[B, h, w, C]`` and per-region occluded flags ``[B, R]``) and
``masked_head`` (feature map, flags → embedding, the mask dictionary inside). Gallery feature maps are
stored once; a probe's flags select the FDM applied to its map and to the gallery's.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import keras
import numpy as np

from keras_landmask.data.layouts import Layout
from keras_landmask.errors import LandmaskError
from keras_landmask.models.mask_dictionary import MaskDictionary, RegionOcclusion
from keras_landmask.models.recognizer import load_keras_file, load_recognizer


@dataclasses.dataclass
class RobustModels:
    features: keras.Model  # image uint8 [B, H, W, 3] → [feature map [B, h, w, C], flags [B, R]]
    masked_head: keras.Model  # [feature map, flags] → embedding [B, D]
    embedder: keras.Model  # image → embedding, the two above composed


def build_robust_models(trunk: keras.Model, head: keras.Model, segmenter: keras.Model, masks: np.ndarray,
                        layout: Layout) -> RobustModels:
    """Compose trained parts; ``masks`` is the layout's binary dictionary ``[R, h, w, C]``."""
    image = keras.Input(trunk.input_shape[1:], dtype="uint8", name="image")
    flags = RegionOcclusion(layout.pixel_masks(), name="region_occlusion")(segmenter(image))
    features = keras.Model(image, [trunk(image), flags], name="features")

    feature_map = keras.Input(trunk.output_shape[1:], name="feature_map")
    occluded = keras.Input((len(layout.regions),), name="occluded_regions")
    fdm = MaskDictionary(masks, layout.region_names, name="mask_dictionary")(occluded)
    masked = keras.layers.Multiply(name="apply_fdm")([feature_map, fdm])
    masked_head = keras.Model([feature_map, occluded], head(masked), name="masked_head")

    embedder = keras.Model(image, masked_head(features(image)), name="robust_embedder")
    return RobustModels(features, masked_head, embedder)


def load_robust_models(run_root: str | Path, layout_name: str = "LM2") -> RobustModels:
    """The robust models of a finished run (base, dictionary and segmenter stages) for one layout."""
    root = Path(run_root)
    paths = {"segmenter": root / "segmenter" / "model.keras", "dictionary": root / "dictionary" / f"{layout_name}.npz",
             "prepare": root / "prepare" / "layouts.json"}
    for stage, path in paths.items():
        if not path.is_file():
            raise LandmaskError(f"'{path}' not found; run the '{stage}' stage of {root} first")
    layout = Layout.from_dict(json.loads(paths["prepare"].read_text())[layout_name])
    recognizer = load_recognizer(root / "base" / "model.keras")
    try:
        with np.load(paths["dictionary"]) as data:
            masks = data["masks"]
    except Exception as error:  # not an npz, cut short, no "masks"
        raise LandmaskError(f"'{paths['dictionary']}' is not a readable mask dictionary ({type(error).__name__}: "
                            f"{str(error)[:200]}); rerun the 'dictionary' stage with --force") from None
    segmenter = load_keras_file(paths["segmenter"], "segmenter", "segmenter")
    return build_robust_models(recognizer.trunk, recognizer.head, segmenter, masks, layout)
