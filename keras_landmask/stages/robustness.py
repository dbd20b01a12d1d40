"""The ``robustness`` stage: does the segmenter flag occlusions it was never trained on, and leave alone clean
faces from other cameras?

The test split's faces under the training occluders' face mask and sunglasses (for reference), under the
independent occluders of ``data.unseen_occluders`` (polygon masks, scarves, polygon glasses: drawn only
here), and clean as a grayscale and a near-infrared camera gives them. For each, through the trained segmenter:
the segmentation scores of ``stages.segmenter.score`` (pixel accuracy, IoU, regions matching the true mask's,
any region flagged, per layout) and how often each region is flagged. Face ``i`` is drawn from seed
``[occlusion.seed, i]``.

Writes ``runs/<name>/robustness/``: ``metrics.json`` (``{"kinds": {kind: scores}, "versus_training": {unseen
kind: its any-region-flagged rate minus its training counterpart's, per layout}}``) and ``examples.png`` (a
contact sheet: each kind, its true mask, the prediction).
"""
from __future__ import annotations

import keras
import numpy as np

from keras_landmask.core.layouts import DEFAULT_LAYOUT
from keras_landmask.data.occluders import occlude_each
from keras_landmask.data.unseen_occluders import CLEAN_VARIANTS, TRAINING_COUNTERPART, UNSEEN_OCCLUDERS
from keras_landmask.io import write_json
from keras_landmask.models.fdm import RegionOcclusion
from keras_landmask.stages.context import StageContext
from keras_landmask.stages.segmenter import draw_examples, score

TRAINING_KINDS = ("face_mask", "sunglasses")  # the training occluders the unseen ones stand beside


def region_rates(predicted: np.ndarray, layouts: dict) -> dict:
    """``{layout: {region: fraction of crops with that region flagged}}`` for probabilities ``[N, H, W]``."""
    rates = {}
    for name, layout in layouts.items():
        flags = keras.ops.convert_to_numpy(RegionOcclusion.for_layout(layout)(predicted[..., None]))
        rates[name] = {region: round(float(flags[:, i].mean()), 4) for i, region in enumerate(layout.region_names)}
    return rates


def run(context: StageContext) -> dict:
    out = context.run.stage_dir("robustness")
    test = context.run.faces().subset("test")
    layouts = context.run.layouts()
    segmenter = context.run.segmenter()
    training = context.occluders()
    seed = context.config.occlusion.seed
    generators = {**{kind: training[kind] for kind in TRAINING_KINDS}, **UNSEEN_OCCLUDERS, **CLEAN_VARIANTS}
    sets = {kind: occlude_each(test.images, test.landmarks, occlude, seed) for kind, occlude in generators.items()}
    predicted = {kind: np.asarray(segmenter.predict(images, batch_size=64, verbose=0))[..., 0]
                 for kind, (images, _) in sets.items()}
    kinds = {kind: {**score(predicted[kind], truth, layouts), "region_flag_rate": region_rates(predicted[kind], layouts)}
             for kind, (_, truth) in sets.items()}
    versus = {kind: {layout: round(kinds[kind]["any_region_flagged"][layout]
                                   - kinds[counterpart]["any_region_flagged"][layout], 4) for layout in layouts}
              for kind, counterpart in TRAINING_COUNTERPART.items() if counterpart in kinds}
    write_json(out / "metrics.json", {"faces": len(test), "kinds": kinds, "versus_training": versus})
    draw_examples(sets, predicted, out / "examples.png")
    layout = DEFAULT_LAYOUT if DEFAULT_LAYOUT in layouts else next(iter(layouts))
    flagged = {kind: m["any_region_flagged"][layout] for kind, m in kinds.items()}
    print(f"  {len(test)} test faces; any {layout} region flagged: "
          + ", ".join(f"{kind} {rate:.1%}" for kind, rate in flagged.items()))
    print("  written: metrics.json, examples.png")
    headline = (f"unseen occluders flagged ({layout}): " + ", ".join(
        f"{kind} {flagged[kind]:.1%} (training {TRAINING_COUNTERPART[kind]} {flagged[TRAINING_COUNTERPART[kind]]:.1%})"
        for kind in UNSEEN_OCCLUDERS) + "; clean faces flagged: " + ", ".join(
        f"{kind} {flagged[kind]:.1%}" for kind in CLEAN_VARIANTS))
    return {"flagged": flagged, "versus_training": versus, "headline": headline}
