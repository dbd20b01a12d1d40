"""The ``base`` stage: train the recognizer, select it by validation rank-1 (the mean of clean and occluded val
faces when it trains on occlusions), and report rank-1 / rank-5 on val and test (gallery = train split, paper
§4.3, §5.1).

``train.teacher`` "none" is the paper's recipe: CosFace on the labelled train split. "dlib" distils the teacher:
the student learns the teacher's embedding of each clean face from the augmented face, occluded with
probability ``train.occlusion_augment`` (``models/distillation.py``), on the train split *and* the unlabelled
faces, with CosFace on the labelled ones as a second term (``train.distill_weight``, ``train.cosface_weight``).

Writes to ``runs/<name>/base/``: ``model.keras`` (best on val rank-1), ``log.csv`` and ``training.png``
(per epoch), ``metrics.json``, ``per_identity.csv``, and ``backup/`` while training (resume after a crash).
"""
from __future__ import annotations

import csv
import json
import shutil
import time
from pathlib import Path

import keras
import numpy as np

from keras_landmask.callbacks import BestRankOne
from keras_landmask.core.vectors import l2_normalise
from keras_landmask.data.faceset import FaceSet
from keras_landmask.data.pipeline import embed, training_dataset
from keras_landmask.distribute import SyncMovingStatistics, is_chief, make_strategy, shard_by_data
from keras_landmask.errors import LandmaskError
from keras_landmask.evaluate import identify
from keras_landmask.io import write_json
from keras_landmask.models.base_network import build_base_network
from keras_landmask.models.distillation import TeacherDistance, distillation_model, stranger_distance
from keras_landmask.plots import plot_training_log
from keras_landmask.stages.context import StageContext


def make_optimizer(train_cfg, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """AdamW with linear warm-up to the peak rate, then cosine decay to zero over the remaining steps."""
    warmup = train_cfg.warmup_epochs * steps_per_epoch
    total = train_cfg.epochs * steps_per_epoch
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else train_cfg.learning_rate,
        decay_steps=max(1, total - warmup),
        warmup_target=train_cfg.learning_rate if warmup else None,
        warmup_steps=warmup,
    )
    return keras.optimizers.AdamW(schedule, weight_decay=train_cfg.weight_decay)


def resumable(backup: Path, context: StageContext) -> bool:
    """True when ``backup/`` holds an interrupted training of this stage's key (same settings and inputs) and
    ``--force`` is off."""
    try:
        saved = json.loads((backup / "settings.json").read_text())["digest"]
    except (OSError, ValueError, KeyError):
        return False
    return not context.force and saved == context.key


def run(context: StageContext) -> dict:
    cfg, model_cfg, train_cfg = context.config, context.config.model, context.config.train
    out = context.run.stage_dir("base")
    faces = context.run.faces()
    train, val, test = (faces.subset(s) for s in ("train", "val", "test"))
    learn, targets = training_faces(context, faces)
    steps = len(learn) // train_cfg.batch_size
    if steps == 0:
        raise LandmaskError(f"the train split has {len(train)} images, fewer than one batch "
                            f"({train_cfg.batch_size}); lower train.batch_size")
    keras.utils.set_random_seed(train_cfg.seed)
    chief = is_chief()

    backup = out / "backup"
    if not resumable(backup, context):  # a fresh start: forget the previous attempt's backup, log and best
        if backup.exists():
            why = "(--force; run without it to resume)" if context.force else "(made with other settings or inputs)"
            print(f"  starting afresh: the interrupted training in {backup} is dropped {why}")
        shutil.rmtree(backup, ignore_errors=True)
        model = context.run.base_file
        for stale in (out / "log.csv", model, model.with_name(model.name + ".best.json")):  # see BestRankOne
            stale.unlink(missing_ok=True)
    backup.mkdir(exist_ok=True)
    write_json(backup / "settings.json", {"digest": context.key})

    strategy = make_strategy(context.strategy)
    with strategy.scope():
        recognizer = build_base_network(
            len(faces.people), cfg.data.crop_height, cfg.data.crop_width, model_cfg.base_width,
            model_cfg.embedding_dim, model_cfg.dropout, model_cfg.cosface_scale, model_cfg.cosface_margin,
            model_cfg.backbone, cfg.data.alignment,
        )
        if model_cfg.backbone == "dlib":  # a pretrained embedder: CosFace starts from each person's mean
            start_centres_at_means(recognizer, train)
        fitted = compiled_model(recognizer, train_cfg, steps, targets)
    occluders = context.occluders() if train_cfg.occlusion_augment > 0 else None
    dataset = shard_by_data(training_dataset(learn, train_cfg.batch_size, train_cfg.seed, occluders,
                                             train_cfg.occlusion_augment, targets))
    best = BestRankOne(recognizer.embedder, train, val, context.run.base_file, train_cfg.eval_every,
                       train_cfg.patience, mixed_occlusions(val, occluders, train_cfg.seed) if occluders else None)
    callbacks = [  # backup last: an epoch counts as done only once it is selected and logged
        SyncMovingStatistics(),  # first: workers select and save the same model
        best,
        keras.callbacks.CSVLogger(str(out / "log.csv"), append=True),
        keras.callbacks.BackupAndRestore(str(backup)),
    ]
    print(f"  {len(train)} train / {len(val)} val / {len(test)} test images, {len(faces.people)} people, "
          f"{len(learn) - len(train)} unlabelled, backbone '{model_cfg.backbone}', teacher '{train_cfg.teacher}', "
          f"{fitted.count_params():,} parameters, strategy '{context.strategy}'")
    start = time.perf_counter()
    history = fitted.fit(dataset, epochs=train_cfg.epochs, callbacks=callbacks, shuffle=False,
                                         verbose=1 if context.progress else 2)
    seconds = time.perf_counter() - start
    if not chief:
        return {"chief": False}
    shutil.rmtree(backup, ignore_errors=True)
    plot_training_log(list(csv.DictReader((out / "log.csv").open())), out / "training.png")

    model = context.run.base_network()
    metrics = evaluate_recognizer(model.embedder, train, {"val": val, "test": test}, out / "per_identity.csv",
                                  list(faces.people))
    metrics.update({
        "best_epoch": best.best_epoch + 1,
        "epochs_run": len(history.history.get("loss", [])),
        "train_seconds": round(seconds, 1),
        "train_images_per_second": round(len(history.history.get("loss", [])) * steps * train_cfg.batch_size
                                         / max(seconds, 1e-9), 1),
        "backbone": model_cfg.backbone,
        "teacher": train_cfg.teacher,
        "n_unlabelled": len(learn) - len(train),
        "parameters": int(model.train_model.count_params()),
    })
    write_json(out / "metrics.json", metrics)
    print(f"  rank-1 val {metrics['val']['rank1']:.2%} test {metrics['test']['rank1']:.2%}, "
          f"rank-5 test {metrics['test']['rank5']:.2%} (best epoch {metrics['best_epoch']}, {seconds / 60:.1f} min)")
    return {**metrics, "headline": f"test rank-1 {metrics['test']['rank1']:.1%}, rank-5 {metrics['test']['rank5']:.1%}"}


def training_faces(context: StageContext, faces: FaceSet) -> tuple[FaceSet, np.ndarray | None]:
    """The faces to train on and, when distilling, the teacher's embedding of each (``float32 [N, 128]``): the
    train split of the prepared ``faces``, then the unlabelled faces (distillation only)."""
    if context.config.train.teacher == "none":
        return faces.subset("train"), None
    return distillation_faces(context, faces, "train.teacher=dlib distils the teacher's embeddings",
                              "--set train.teacher=none")


def distillation_faces(context: StageContext, faces: FaceSet, why: str, instead: str) -> tuple[FaceSet, np.ndarray]:
    """The train split of the prepared ``faces``, then the unlabelled faces, and the teacher's clean embedding of
    each (``float32 [N, D]``); ``why`` and ``instead`` word the error when the teacher stage has not run."""
    if not context.run.read_marker("teacher"):
        raise LandmaskError(f"{why}: run the 'teacher' stage first (leave --stages out to run the whole "
                            f"pipeline), or {instead}")
    teacher = context.run.teacher_embeddings()
    parts, targets = [faces.subset("train")], [teacher["faces"][faces.splits == "train"]]
    unlabelled = context.run.unlabelled() if context.run.read_marker("unlabelled") else None
    if unlabelled is not None and len(unlabelled):
        if len(teacher["unlabelled"]) != len(unlabelled):
            raise LandmaskError("the teacher's embeddings do not match the unlabelled faces: rerun the 'teacher' "
                                "stage (leave --stages out to run the whole pipeline)")
        parts.append(unlabelled)
        targets.append(teacher["unlabelled"])
    return FaceSet.concatenate(parts), np.concatenate(targets)


def mixed_occlusions(faces: FaceSet, occluders: dict, seed: int) -> np.ndarray:
    """``uint8 [N, H, W, 3]``: face ``i`` under the ``i % K``-th of the ``K`` occluder kinds (drawn from seed
    ``[seed, i]``): the occluded validation probes of model selection."""
    kinds = list(occluders.values())
    return np.stack([kinds[i % len(kinds)](image, marks, np.random.default_rng([seed, i]))[0]
                     for i, (image, marks) in enumerate(zip(faces.images, faces.landmarks))])


def start_centres_at_means(recognizer, train: FaceSet) -> None:
    """Set the CosFace class centres to each person's mean unit embedding of the train split, so a classifier
    on a pretrained embedder starts trained (at a fine-tune's learning rate random centres barely move)."""
    embeddings = l2_normalise(embed(recognizer.embedder, train.images))
    cosface = recognizer.train_model.get_layer("cosface")
    centres = np.zeros(tuple(cosface.centres.shape), np.float32)  # [D, n_classes]
    for label in np.unique(train.labels):
        centres[:, label] = embeddings[train.labels == label].mean(axis=0)
    cosface.centres.assign(centres)


def compiled_model(recognizer, train_cfg, steps: int, targets: np.ndarray | None) -> keras.Model:
    """The model ``fit`` trains: the CosFace recognizer, or (with ``targets``) the distillation model with its
    two weighted losses; both share the recognizer's layers."""
    optimizer = make_optimizer(train_cfg, steps)
    cosface_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    accuracy = keras.metrics.SparseCategoricalAccuracy(name="acc")
    if targets is None:
        recognizer.train_model.compile(optimizer=optimizer, loss=cosface_loss, metrics=[accuracy])
        return recognizer.train_model
    model = distillation_model(recognizer, targets.shape[1])
    model.compile(optimizer=optimizer,
                  loss={"cosface": cosface_loss, "teacher": TeacherDistance(stranger_distance(targets))},
                  loss_weights={"cosface": train_cfg.cosface_weight, "teacher": train_cfg.distill_weight},
                  weighted_metrics={"cosface": [accuracy]})
    return model


def evaluate_recognizer(embedder: keras.Model, gallery: FaceSet, probe_sets: dict[str, FaceSet], per_identity_path,
                        people: list[str]) -> dict:
    """Rank-1 / rank-5 of each probe set against the gallery; per-identity test accuracy to a CSV."""
    gallery_embeddings = embed(embedder, gallery.images)
    metrics, results = {}, {}
    for name, probes in probe_sets.items():
        results[name] = identify(gallery_embeddings, gallery.labels, embed(embedder, probes.images), probes.labels)
        metrics[name] = results[name].to_dict()
    with per_identity_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["person", "split", "n_probes", "rank1"])
        for name, probes in probe_sets.items():
            for label, accuracy in sorted(results[name].per_identity.items()):
                writer.writerow([people[label], name, int(np.sum(probes.labels == label)), f"{accuracy:.4f}"])
    return metrics
