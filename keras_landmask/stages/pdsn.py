"""The ``pdsn`` stage: train a mask generator for every region of each layout (paper §3.2, §4.2).

Writes ``runs/<name>/pdsn/<layout>/``: one ``<region>.keras`` generator per region, ``log.csv`` and a
completion marker per layout, so an interrupted stage redoes only the unfinished layouts.
"""
from __future__ import annotations

import time

import keras
import tensorflow as tf

from keras_landmask.data.faceset import FaceSet
from keras_landmask.models.pdsn import PDSN
from keras_landmask.models.recognizer import load_recognizer
from keras_landmask.stages.context import StageContext
from keras_landmask.stages.prepare import prepared_faces, prepared_layouts


def build_pdsn(context: StageContext, layout_name: str, generators: list[keras.Model] | None = None) -> PDSN:
    """A PDSN over the run's frozen base recognizer and one layout's regions."""
    recognizer = load_recognizer(context.run.root / "base" / "model.keras")
    layout = prepared_layouts(context)[layout_name]
    return PDSN(recognizer.trunk, recognizer.head, recognizer.train_model.get_layer("cosface"),
                layout.pixel_masks(), layout.region_names, context.config.pdsn.difference_weight, generators)


def pair_dataset(faces: FaceSet, batch_size: int, seed: int) -> tf.data.Dataset:
    """Shuffled ``(images uint8 [B, H, W, 3], labels int32 [B])`` batches (partners are made in-graph)."""
    dataset = tf.data.Dataset.from_tensor_slices((faces.images, faces.labels.astype("int32")))
    return dataset.shuffle(len(faces), seed=seed).batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def run(context: StageContext) -> dict:
    cfg = context.config.pdsn
    train = prepared_faces(context).subset("train")
    digest = context.config.section_digest("data", "layout", "model", "train", "pdsn")
    summary = {}
    for layout_name in cfg.layouts:
        stage = f"pdsn/{layout_name}"
        out = context.run.stage_dir(stage)
        if not context.force and context.run.is_done(stage, digest):
            print(f"  {layout_name}: generators already trained")
            continue
        keras.utils.set_random_seed(context.config.train.seed)
        pdsn = build_pdsn(context, layout_name)
        pdsn.compile(optimizer=keras.optimizers.SGD(cfg.learning_rate, momentum=cfg.momentum))
        print(f"  {layout_name}: {len(pdsn.generators)} regions ({', '.join(pdsn.region_names)})")
        start = time.perf_counter()
        history = pdsn.fit(pair_dataset(train, cfg.batch_size, context.config.train.seed), epochs=cfg.epochs,
                           shuffle=False, verbose=1 if context.progress else 2,
                           callbacks=[keras.callbacks.CSVLogger(str(out / "log.csv"))])
        for name, generator in zip(pdsn.region_names, pdsn.generators):
            generator.save(out / f"{name}.keras")
        seconds = time.perf_counter() - start
        context.run.mark_done(stage, digest, seconds)
        summary[layout_name] = {key: round(float(values[-1]), 4) for key, values in history.history.items()}
        summary[layout_name]["seconds"] = round(seconds, 1)
    return {**summary, "headline": f"mask generators for {', '.join(cfg.layouts)}"}
