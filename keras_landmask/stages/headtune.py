"""The ``headtune`` stage: tune the head (trunk frozen) so that each occlusion pattern's FDM keeps faces in the
teacher's space (DESIGN.md, "beyond the paper").

The FDM zeroes features before the head, which was trained on whole feature maps: a masked probe and a masked
gallery face then land somewhere the head never learned, and their scores read on another scale than clean
ones (measured on the fast open set before this stage: DIR at FPIR 1 % under a face mask 36 % without an FDM,
26 % with LM2's). Here every face of the distillation set (train split + unlabelled faces) gets a fresh random
occluder each epoch (the catalogue: blocks, bands, face masks, sunglasses); its true mask flags the regions of
a random FDM layout (the same ``RegionOcclusion`` rule the device uses) and those regions' dictionary masks
form the FDM. The head then learns to give the teacher's embedding of the clean face for the occluded and the
clean face, each masked and unmasked (``models/head_tuning.py``).

Writes ``runs/<name>/headtune/``: ``model.keras`` (the base network with the tuned head: every later stage and
the export use it, see ``RunFolder.recognizer``), ``log.csv`` and ``metrics.json`` (the validation faces' mean
teacher distance, per output, before and after: 0 is the teacher's embedding, 1 a stranger's distance).
"""
from __future__ import annotations

import time

import keras
import numpy as np

from keras_landmask.data.faceset import FaceSet
from keras_landmask.io import write_json
from keras_landmask.models.distillation import TeacherDistance, stranger_distance
from keras_landmask.models.fdm import RegionOcclusion
from keras_landmask.models.head_tuning import OUTPUTS, head_tuning_model
from keras_landmask.stages.base import distillation_faces
from keras_landmask.stages.context import StageContext
from keras_landmask.stages.evaluate import load_dictionary

CHUNK = 256  # faces per trunk / FDM call


def run(context: StageContext) -> dict:
    cfg = context.config.headtune
    out = context.run.stage_dir("headtune")
    for stale in (context.run.headtune_file, out / "log.csv", out / "metrics.json"):  # outputs of other settings
        stale.unlink(missing_ok=True)
    if cfg.epochs <= 0:
        return {"headline": "head left as the base stage trained it (headtune.epochs=0)"}
    faces = context.run.faces()
    learn, targets = distillation_faces(context, faces, "headtune tunes the head towards the teacher",
                                        "--set headtune.epochs=0")
    val = faces.subset("val")
    val_targets = context.run.teacher_embeddings()["faces"][faces.splits == "val"]
    recognizer = context.run.base_network()
    seed = context.config.train.seed
    keras.utils.set_random_seed(seed)
    sampler = FdmSampler(context, recognizer.trunk)
    model = head_tuning_model(recognizer.head)
    steps = max(1, len(learn) // cfg.batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(cfg.learning_rate, cfg.epochs * steps)
    loss = TeacherDistance(stranger_distance(targets))
    model.compile(optimizer=keras.optimizers.AdamW(schedule, weight_decay=cfg.weight_decay),
                  loss={name: loss for name in OUTPUTS})

    print(f"  {len(learn)} faces ({len(learn) - int((learn.labels >= 0).sum())} unlabelled), {len(val)} val; "
          f"FDM layouts {', '.join(sampler.layout_names)}; {cfg.epochs} epochs")
    val_inputs = sampler.inputs(val, seed=[seed, 10_000])
    val_outputs = {name: val_targets for name in OUTPUTS}
    before = validation_distances(model, val_inputs, val_outputs)
    learn_clean = sampler.trunk(learn.images)
    logger = keras.callbacks.CSVLogger(str(out / "log.csv"), append=True)
    start = time.perf_counter()
    for epoch in range(cfg.epochs):
        print(f"  epoch {epoch + 1} of {cfg.epochs}: a new occlusion for every face", flush=True)
        inputs = sampler.inputs(learn, seed=[seed, epoch], clean_features=learn_clean)
        model.fit(inputs, {name: targets for name in OUTPUTS}, batch_size=cfg.batch_size, initial_epoch=epoch,
                  epochs=epoch + 1, shuffle=True, validation_data=(val_inputs, val_outputs), callbacks=[logger],
                  verbose=1 if context.progress else 2)
    seconds = time.perf_counter() - start
    after = validation_distances(model, val_inputs, val_outputs)
    recognizer.train_model.save(context.run.headtune_file)
    metrics = {"val_teacher_distance": {"before": before, "after": after}, "epochs": cfg.epochs,
               "n_faces": len(learn), "layouts": sampler.layout_names, "train_seconds": round(seconds, 1)}
    write_json(out / "metrics.json", metrics)
    headline = ("val teacher distance (0 = the teacher's, 1 = a stranger's), masked occluded / clean: "
                f"{before['masked_occluded']:.3f} -> {after['masked_occluded']:.3f} / "
                f"{before['clean']:.3f} -> {after['clean']:.3f}")
    print(f"  {headline}")
    return {**metrics, "headline": headline}


def validation_distances(model: keras.Model, inputs: list, outputs: dict) -> dict[str, float]:
    """Mean teacher distance of each output over the validation faces."""
    values = model.evaluate(inputs, outputs, batch_size=256, verbose=0, return_dict=True)
    return {name: round(float(values[f"{name}_loss"]), 4) for name in OUTPUTS}


class FdmSampler:
    """Occluded faces, their trunk feature maps and the FDM their true occlusion masks select."""

    def __init__(self, context: StageContext, trunk: keras.Model):
        layouts = context.run.layouts()
        self.layout_names = list(context.config.fdm_layouts)
        self.occluders = list(context.occluders().values())
        self.regions = [RegionOcclusion.for_layout(layouts[name]) for name in self.layout_names]
        self.dictionaries = [load_dictionary(context, layouts[name]) for name in self.layout_names]
        self.model = trunk

    def trunk(self, images: np.ndarray) -> np.ndarray:
        """``float32 [N, h, w, C]`` feature maps of ``uint8 [N, H, W, 3]`` crops."""
        return np.asarray(self.model.predict(images, batch_size=CHUNK, verbose=0), np.float32)

    def inputs(self, faces: FaceSet, seed: list[int], clean_features: np.ndarray | None = None) -> list[np.ndarray]:
        """``[occluded maps, clean maps, fdm]`` (each ``float32 [N, h, w, C]``): face ``i`` under a random
        occluder and a random layout's FDM, drawn from seed ``[*seed, i]``."""
        occluded, true_masks, layout_of = [], [], np.zeros(len(faces), int)
        for i, (image, marks) in enumerate(zip(faces.images, faces.landmarks)):
            rng = np.random.default_rng([*seed, i])
            image, mask = self.occluders[rng.integers(len(self.occluders))](image, marks, rng)
            occluded.append(image)
            true_masks.append(mask)
            layout_of[i] = rng.integers(len(self.layout_names))
        occluded_features = self.trunk(np.stack(occluded))
        clean = self.trunk(faces.images) if clean_features is None else clean_features
        true_masks = np.stack(true_masks)[..., None].astype(np.float32)
        fdm = np.ones_like(occluded_features)
        for k, (regions, dictionary) in enumerate(zip(self.regions, self.dictionaries)):
            rows = np.flatnonzero(layout_of == k)
            for chunk in np.array_split(rows, max(1, len(rows) // CHUNK)):
                if len(chunk):
                    fdm[chunk] = np.asarray(dictionary(regions(true_masks[chunk])))
        return [occluded_features, clean, fdm]
