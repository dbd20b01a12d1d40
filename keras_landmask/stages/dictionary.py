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
from keras_landmask.models.fdm import binarise, mean_normalised_masks
from keras_landmask.models.pdsn import PDSN
from keras_landmask.plots import plot_mask_dictionary
from keras_landmask.stages.context import StageContext
from keras_landmask.stages.pdsn import build_pdsn


def mean_generator_masks(pdsn: PDSN, faces: FaceSet, samples: int, batch_size: int, seed: int) -> np.ndarray:
    """``float32 [R, h, w, C]``: per region, the mean over ``samples`` faces of min-max normalised masks."""
    keras.utils.set_random_seed(seed)
    chosen = np.random.default_rng(seed).permutation(len(faces))[:samples]

    def batches():
        for start in range(0, len(chosen), batch_size):
            features, partners = pdsn.pair_features(faces.images[chosen[start:start + batch_size]])
            yield keras.ops.convert_to_numpy(pdsn(np.abs(features.numpy()[None] - partners.numpy())))  # [R, B, ...]

    return mean_normalised_masks(batches())


def run(context: StageContext) -> dict:
    cfg = context.config.dictionary
    train = context.run.faces().subset("train")
    layouts = context.run.layouts()
    out = context.run.stage_dir("dictionary")
    summary = {}
    for layout_name in context.config.fdm_layouts:
        layout = layouts[layout_name]
        percentile = cfg.percentile(layout.family)
        pdsn = build_pdsn(context, layout, context.run.generators(layout))
        mean_masks = mean_generator_masks(pdsn, train, cfg.samples, context.config.pdsn.batch_size,
                                          context.config.train.seed)
        masks = binarise(mean_masks, percentile)
        write_npz(context.run.dictionary_file(layout_name), masks=masks, region_names=np.array(pdsn.region_names),
                  percentile=np.float32(percentile))
        plot_mask_dictionary(masks, layout, out / f"{layout_name}.png")
        discarded = {name: round(float(1 - m.mean()), 4) for name, m in zip(pdsn.region_names, masks)}
        summary[layout_name] = discarded
        print(f"  {layout_name} (δ = {percentile:g}th percentile): discarded fraction "
              + ", ".join(f"{k} {v:.0%}" for k, v in discarded.items()))
    return {**summary, "headline": f"binary masks for {', '.join(context.config.fdm_layouts)}"}
