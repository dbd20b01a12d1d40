"""The ``segmenter`` stage: train the occlusion segmenter (paper §4.1, §4.2, §5.2) and measure it on the test split.

Each epoch, every train crop gets a new random occlusion (face mask, sunglasses, white band or random block,
from the occluder catalogue, and with ``segmenter.appearance`` "varied" (the default) in any colour or fabric
print, mask and sunglasses together, then grayscale / near-infrared looks, blur, noise, JPEG:
``data.appearance``) or stays clean (``segmenter.clean_fraction``, empty target). The target is the
paper's label (|clean − occluded| → threshold → opening, closing) or the true occlusion mask
(``segmenter.labels``). The model with the lowest validation loss is kept. Test crops get every kind in turn, in the catalogue's own looks (comparable across settings).

Writes ``runs/<name>/segmenter/``: ``model.keras``, ``log.csv`` (per epoch), ``metrics.json`` (per kind:
pixel accuracy and IoU against the true mask, how often the regions flagged by the > 50 % rule match those of
the true mask; the false-occlusion rate of clean crops per layout) and ``examples.png``.
"""
from __future__ import annotations

import itertools
import time

import keras
import numpy as np
import tensorflow as tf

from keras_landmask.core.layouts import Layout
from keras_landmask.data.appearance import finish, load_textures, varied_occluders
from keras_landmask.data.facemask import load_mask_templates
from keras_landmask.data.faceset import FaceSet
from keras_landmask.data.occluders import clean, occlude_each
from keras_landmask.data.seglabels import mask_iou, segmentation_label
from keras_landmask.errors import LandmaskError
from keras_landmask.io import write_json
from keras_landmask.models.fdm import RegionOcclusion
from keras_landmask.models.unet import unet_vgg16
from keras_landmask.plots import contact_sheet
from keras_landmask.stages.context import StageContext

KINDS = ("face_mask", "sunglasses", "band", "block", "clean")  # the test rows; "clean" leaves the crop as it is
EXAMPLE_FACES = 4


def occlude(image: np.ndarray, landmarks: np.ndarray, kind: str, occluders: dict, rng: np.random.Generator):
    """``(occluded uint8 [H, W, 3], true mask bool [H, W])`` of one crop under one occlusion kind."""
    return (clean if kind == "clean" else occluders[kind])(image, landmarks, rng)


def random_kinds(count: int, clean_fraction: float, occluders: dict, rng: np.random.Generator) -> list[str]:
    """A kind per crop: ``clean`` with probability ``clean_fraction``, else one occluder kind uniformly."""
    kinds = list(occluders)
    return ["clean" if rng.random() < clean_fraction else kinds[rng.integers(len(kinds))] for _ in range(count)]


def training_pair(faces: FaceSet, index: int, kind: str, occluders: dict, cfg, rng: np.random.Generator):
    """One training pair: ``(occluded uint8 [H, W, 3], target float32 [H, W, 1])``, the target per
    ``cfg.labels``; with ``cfg.appearance`` "varied" the crop then gets a camera look and artefacts."""
    image = faces.images[index]
    occluded, truth = occlude(image, faces.landmarks[index], kind, occluders, rng)
    target = segmentation_label(image, occluded) if cfg.labels == "paper" else truth
    if cfg.appearance == "varied":
        occluded = finish(occluded, rng)
    return occluded, target[..., None].astype(np.float32)


def training_occluders(context: StageContext) -> dict:
    """The occluders the segmenter learns from: the catalogue's, varied in look per ``segmenter.appearance``."""
    appearance = context.config.segmenter.appearance
    if appearance not in ("varied", "plain"):
        raise LandmaskError(f"segmenter.appearance must be 'varied' or 'plain', got {appearance!r}")
    catalogue = context.occluders()
    if appearance == "plain":
        return catalogue
    return varied_occluders(catalogue, load_mask_templates(context.masks_dir), load_textures(context.masks_dir))


def training_dataset(faces: FaceSet, occluders: dict, cfg) -> tf.data.Dataset:
    """Batches of ``(occluded uint8 [B, H, W, 3], target float32 [B, H, W, 1])`` in a new random order with
    new occlusions each time it is iterated (each epoch); epoch ``e`` is drawn from seed ``[cfg.seed, 1 + e]``."""
    epochs = itertools.count(1)

    def examples():
        rng = np.random.default_rng([cfg.seed, next(epochs)])
        order = rng.permutation(len(faces))
        for index, kind in zip(order, random_kinds(len(faces), cfg.clean_fraction, occluders, rng)):
            yield training_pair(faces, index, kind, occluders, cfg, rng)

    height, width = faces.images.shape[1:3]
    dataset = tf.data.Dataset.from_generator(examples, output_signature=(
        tf.TensorSpec((height, width, 3), tf.uint8), tf.TensorSpec((height, width, 1), tf.float32)))
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(len(faces)))
    return dataset.batch(cfg.batch_size).prefetch(tf.data.AUTOTUNE)


def validation_arrays(faces: FaceSet, occluders: dict, cfg) -> tuple[np.ndarray, np.ndarray]:
    """One fixed draw of the training distribution over ``faces`` (seed ``[cfg.seed, 0]``)."""
    rng = np.random.default_rng([cfg.seed, 0])
    kinds = random_kinds(len(faces), cfg.clean_fraction, occluders, rng)
    pairs = [training_pair(faces, i, kind, occluders, cfg, rng) for i, kind in enumerate(kinds)]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def occluded_test_crops(faces: FaceSet, occluders: dict, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Kind → ``(occluded uint8 [N, H, W, 3], true masks bool [N, H, W])``: every face under every kind,
    face ``i`` drawn from seed ``[seed, i]`` (as the evaluate stage draws its probes)."""
    sets = {}
    for kind in KINDS:
        sets[kind] = occlude_each(faces.images, faces.landmarks,
                                  lambda image, marks, rng, kind=kind: occlude(image, marks, kind, occluders, rng), seed)
    return sets


def score(predicted: np.ndarray, truth: np.ndarray, layouts: dict[str, Layout]) -> dict:
    """Metrics of ``predicted`` probabilities against the true masks ``truth`` (both ``[N, H, W]``): pixel
    accuracy and mean per-crop IoU at 0.5 (on clean crops: the fraction with no pixel flagged), the true occluded
    fraction (1 − it is the accuracy of predicting nothing), and per layout the fraction of crops whose flagged
    regions (> 50 % covered) are exactly those of the true mask and the fraction with any region flagged."""
    occluded = predicted > 0.5
    result = {
        "pixel_accuracy": round(float(np.mean(occluded == truth)), 4),
        "iou": round(float(np.mean([mask_iou(p, t) for p, t in zip(occluded, truth)])), 4),
        "occluded_fraction": round(float(truth.mean()), 4),
        "regions_match": {},
        "any_region_flagged": {},
    }
    for name, layout in layouts.items():
        regions = RegionOcclusion.for_layout(layout)
        flags = keras.ops.convert_to_numpy(regions(predicted[..., None]))
        true_flags = keras.ops.convert_to_numpy(regions(truth[..., None].astype(np.float32)))
        result["regions_match"][name] = round(float(np.all(flags == true_flags, axis=1).mean()), 4)
        result["any_region_flagged"][name] = round(float(flags.any(axis=1).mean()), 4)
    return result


def run(context: StageContext) -> dict:
    cfg, data_cfg = context.config.segmenter, context.config.data
    out = context.run.stage_dir("segmenter")
    faces = context.run.faces()
    train, val, test = (faces.subset(s) for s in ("train", "val", "test"))
    if not (len(train) and len(val) and len(test)):
        raise LandmaskError(f"the segmenter needs train, val and test crops, got {len(train)} / {len(val)} / "
                            f"{len(test)}; raise data.val_fraction and data.test_fraction")
    layouts = context.run.layouts()
    occluders, test_occluders = training_occluders(context), context.occluders()
    keras.utils.set_random_seed(cfg.seed)

    model = unet_vgg16(data_cfg.crop_height, data_cfg.crop_width, cfg.width_multiplier)
    model.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate), loss=keras.losses.BinaryCrossentropy(),
                  metrics=[keras.metrics.BinaryAccuracy(name="accuracy"),
                           keras.metrics.BinaryIoU(target_class_ids=[1], name="iou")])
    callbacks = [
        keras.callbacks.ModelCheckpoint(str(context.run.segmenter_file), monitor="val_loss", save_best_only=True),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg.patience),
        keras.callbacks.CSVLogger(str(out / "log.csv")),
    ]
    print(f"  {len(train)} train / {len(val)} val / {len(test)} test crops, width x{cfg.width_multiplier:g}, "
          f"{model.count_params():,} parameters, '{cfg.labels}' labels")
    start = time.perf_counter()
    history = model.fit(training_dataset(train, occluders, cfg), epochs=cfg.epochs,
                        validation_data=validation_arrays(val, occluders, cfg), validation_batch_size=cfg.batch_size,
                        callbacks=callbacks, shuffle=False, verbose=1 if context.progress else 2)
    seconds = time.perf_counter() - start

    model = context.run.segmenter()
    sets = occluded_test_crops(test, test_occluders, context.config.occlusion.seed)
    predicted = {kind: model.predict(images, batch_size=64, verbose=0)[..., 0] for kind, (images, _) in sets.items()}
    per_kind = {kind: score(predicted[kind], truth, layouts) for kind, (_, truth) in sets.items()}
    val_losses = history.history["val_loss"]
    metrics = {
        "test": per_kind,
        "pixel_accuracy": round(float(np.mean([m["pixel_accuracy"] for m in per_kind.values()])), 4),  # kinds' mean
        "false_occlusion_rate": per_kind["clean"]["any_region_flagged"],
        "labels": cfg.labels,
        "best_epoch": int(np.argmin(val_losses)) + 1,
        "epochs_run": len(val_losses),
        "train_seconds": round(seconds, 1),
        "parameters": int(model.count_params()),
    }
    write_json(out / "metrics.json", metrics)
    draw_examples(sets, predicted, out / "examples.png")
    print_summary(metrics)
    rates = ", ".join(f"{k} {v:.1%}" for k, v in metrics["false_occlusion_rate"].items())
    return {**metrics, "headline": f"pixel accuracy {metrics['pixel_accuracy']:.1%}, false occlusion {rates}"}


def draw_examples(sets: dict, predicted: dict, path) -> None:
    """Per kind, the occluded crop, its true mask and the predicted probability, for the first test faces."""
    rows = [[picture for kind, (images, truth) in sets.items()
             for picture in (images[i], truth[i], predicted[kind][i])]
            for i in range(min(EXAMPLE_FACES, len(next(iter(predicted.values())))))]
    titles = [f"{kind}\n{part}" for kind in sets for part in ("occluded", "true mask", "prediction")]
    contact_sheet(rows, titles, path)


def print_summary(metrics: dict) -> None:
    print("  test pixel accuracy / IoU vs true mask: " + ", ".join(
        f"{kind} {m['pixel_accuracy']:.1%} / {m['iou']:.3f}" for kind, m in metrics["test"].items()))
    print(f"  mean pixel accuracy {metrics['pixel_accuracy']:.2%} (the paper: 90.49 % against its labels)")
    print("  false-occlusion rate (clean crops with a region flagged): " + ", ".join(
        f"{layout} {rate:.1%}" for layout, rate in metrics["false_occlusion_rate"].items()))
    print(f"  best epoch {metrics['best_epoch']} of {metrics['epochs_run']}, {metrics['train_seconds'] / 60:.1f} min; "
          "written: model.keras, log.csv, metrics.json, examples.png")
