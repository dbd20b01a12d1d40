"""The ``dictionary`` stage: binary masks from the trained generators (paper §3.3).

For each region, the generator's outputs over many occluded train pairs are each min-max normalised,
averaged, and thresholded at the layout's percentile δ: features below it are discarded (0), the rest
kept (1). Writes ``runs/<name>/dictionary/<layout>.npz`` (``masks uint8 [R, h, w, C]``, ``region_names``,
``percentile``) and ``<layout>.png`` (per region, where the discarded features sit).
"""
from __future__ import annotations

import keras
import numpy as np

from keras_landmask.data.faceset import FaceSet
from keras_landmask.io import write_npz
from keras_landmask.models.pdsn import PDSN
from keras_landmask.plots import plot_mask_dictionary
from keras_landmask.stages.context import StageContext
from keras_landmask.stages.pdsn import build_pdsn
from keras_landmask.stages.prepare import prepared_faces, prepared_layouts


def mean_generator_masks(pdsn: PDSN, faces: FaceSet, samples: int, batch_size: int, seed: int) -> np.ndarray:
    """``float32 [R, h, w, C]``: per region, the mean over ``samples`` faces of min-max normalised masks."""
    keras.utils.set_random_seed(seed)
    chosen = np.random.default_rng(seed).permutation(len(faces))[:samples]
    total = None
    for start in range(0, len(chosen), batch_size):
        images = faces.images[chosen[start:start + batch_size]]
        features, partners = pdsn.pair_features(images)
        masks = keras.ops.convert_to_numpy(pdsn(np.abs(features.numpy()[None] - partners.numpy())))  # [R, B, ...]
        low = masks.min(axis=(2, 3, 4), keepdims=True)
        high = masks.max(axis=(2, 3, 4), keepdims=True)
        normalised = (masks - low) / np.maximum(high - low, 1e-12)
        batch_sum = normalised.sum(axis=1)
        total = batch_sum if total is None else total + batch_sum
    return (total / len(chosen)).astype(np.float32)


def binarise(mean_masks: np.ndarray, percentile: float) -> np.ndarray:
    """``uint8`` masks of the same shape: 0 for values below each region's ``percentile``-th percentile."""
    thresholds = np.percentile(mean_masks.reshape(len(mean_masks), -1), percentile, axis=1)
    return (mean_masks >= thresholds[:, None, None, None]).astype(np.uint8)


def run(context: StageContext) -> dict:
    cfg = context.config.dictionary
    train = prepared_faces(context).subset("train")
    layouts = prepared_layouts(context)
    out = context.run.stage_dir("dictionary")
    summary = {}
    for layout_name in context.config.pdsn.layouts:
        generators = [keras.saving.load_model(context.run.require(f"pdsn/{layout_name}", f"{region}.keras"))
                      for region in layouts[layout_name].region_names]
        pdsn = build_pdsn(context, layout_name, generators)
        mean_masks = mean_generator_masks(pdsn, train, cfg.samples, context.config.pdsn.batch_size,
                                          context.config.train.seed)
        masks = binarise(mean_masks, cfg.percentile(layout_name))
        write_npz(out / f"{layout_name}.npz", masks=masks, region_names=np.array(pdsn.region_names),
                  percentile=np.float32(cfg.percentile(layout_name)))
        plot_mask_dictionary(masks, layouts[layout_name], out / f"{layout_name}.png")
        discarded = {name: round(float(1 - m.mean()), 4) for name, m in zip(pdsn.region_names, masks)}
        summary[layout_name] = discarded
        print(f"  {layout_name} (δ = {cfg.percentile(layout_name):g}th percentile): discarded fraction "
              + ", ".join(f"{k} {v:.0%}" for k, v in discarded.items()))
    return {**summary, "headline": f"binary masks for {', '.join(context.config.pdsn.layouts)}"}
