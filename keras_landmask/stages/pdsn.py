"""The ``pdsn`` stage: train a mask generator for every region of each layout (paper §3.2, §4.2).

Writes ``runs/<name>/pdsn/<layout>/``: one ``<region>.keras`` generator per region, ``log.csv`` and a
completion marker per layout, so an interrupted stage redoes only the unfinished layouts.
"""
from __future__ import annotations

import time

import keras
import tensorflow as tf

from keras_landmask.core.layouts import Layout
from keras_landmask.data.faceset import FaceSet
from keras_landmask.models.pdsn import PDSN
from keras_landmask.stages.context import StageContext


def build_pdsn(context: StageContext, layout: Layout, generators: list[keras.Model] | None = None) -> PDSN:
    """A PDSN over the run's frozen base network and one layout's regions."""
    recognizer = context.run.base_network()
    return PDSN(recognizer.trunk, recognizer.head, recognizer.train_model.get_layer("cosface"),
                layout.pixel_masks(), layout.region_names, context.config.pdsn.difference_weight, generators)


def pair_dataset(faces: FaceSet, batch_size: int, seed: int) -> tf.data.Dataset:
    """Shuffled ``(images uint8 [B, H, W, 3], labels int32 [B])`` batches (partners are made in-graph)."""
    dataset = tf.data.Dataset.from_tensor_slices((faces.images, faces.labels.astype("int32")))
    return dataset.shuffle(len(faces), seed=seed).batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def run(context: StageContext) -> dict:
    cfg = context.config.pdsn
    train = context.run.faces().subset("train")
    layouts = context.run.layouts()
    summary = {}
    for layout_name in context.config.fdm_layouts:
        part = f"pdsn/{layout_name}"  # each layout has its own marker: an interrupted stage redoes only the rest
        out = context.run.stage_dir(part)
        if not context.force and (context.run.read_marker(part) or {}).get("key") == context.key:
            print(f"  {layout_name}: generators already trained")
            continue
        context.run.clear(part)
        keras.utils.set_random_seed(context.config.train.seed)
        pdsn = build_pdsn(context, layouts[layout_name])
        pdsn.compile(optimizer=keras.optimizers.SGD(cfg.learning_rate, momentum=cfg.momentum))
        print(f"  {layout_name}: {len(pdsn.generators)} regions ({', '.join(pdsn.region_names)})")
        start = time.perf_counter()
        history = pdsn.fit(pair_dataset(train, cfg.batch_size, context.config.train.seed), epochs=cfg.epochs,
                           shuffle=False, verbose=1 if context.progress else 2,
                           callbacks=[keras.callbacks.CSVLogger(str(out / "log.csv"))])
        for name, generator in zip(pdsn.region_names, pdsn.generators):
            generator.save(context.run.generator_file(layout_name, name))
        seconds = time.perf_counter() - start
        context.run.write_marker(part, {"key": context.key, "seconds": round(seconds, 2)})
        summary[layout_name] = {key: round(float(values[-1]), 4) for key, values in history.history.items()}
        summary[layout_name]["seconds"] = round(seconds, 1)
    return {**summary, "headline": f"mask generators for {', '.join(context.config.fdm_layouts)}"}
