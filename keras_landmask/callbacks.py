"""Training callback that selects the base recognizer the paper's way: by validation rank-1."""
from __future__ import annotations

import json
import math
from pathlib import Path

import keras
import numpy as np

from keras_landmask.data.faceset import FaceSet
from keras_landmask.data.pipeline import embed
from keras_landmask.evaluate import identify
from keras_landmask.io import write_json


class BestRankOne(keras.callbacks.Callback):
    """Every ``eval_every`` epochs: rank-1 of ``probes`` against ``gallery`` with ``embedder``; saves the
    model to ``path`` when it improves and stops training after ``patience`` epochs without improvement.
    With ``occluded`` (images ``uint8 [P, H, W, 3]``, the probes occluded, in their order) the measure is the
    mean of the clean and the occluded probes' rank-1: a model trained for occlusions is chosen for them too.

    Adds ``val_rank1`` (the latest measured value, NaN before the first) to the epoch logs, so CSV logs
    show it. Its best value lives in ``<path>.best.json``, so a resumed run continues the comparison.
    """

    def __init__(self, embedder: keras.Model, gallery: FaceSet, probes: FaceSet, path: Path,
                 eval_every: int = 1, patience: int = 10, occluded: np.ndarray | None = None):
        super().__init__()
        self.embedder, self.gallery, self.probes, self.occluded = embedder, gallery, probes, occluded
        self.path, self.eval_every, self.patience = Path(path), eval_every, patience
        self.state_path = self.path.with_name(self.path.name + ".best.json")
        self.best, self.best_epoch, self.latest = -1.0, -1, math.nan
        if self.state_path.is_file():
            state = json.loads(self.state_path.read_text())
            self.best, self.best_epoch = state["rank1"], state["epoch"]

    def on_epoch_end(self, epoch, logs=None):
        last = epoch + 1 == self.params.get("epochs")
        if (epoch + 1) % self.eval_every == 0 or last:
            gallery = embed(self.embedder, self.gallery.images)
            rank1 = identify(gallery, self.gallery.labels, embed(self.embedder, self.probes.images),
                             self.probes.labels).rank1
            shown = f"{rank1:.4f}"
            if self.occluded is not None:
                occluded = identify(gallery, self.gallery.labels, embed(self.embedder, self.occluded),
                                    self.probes.labels).rank1
                shown = f"{(rank1 + occluded) / 2:.4f} (clean {rank1:.4f}, occluded {occluded:.4f})"
                rank1 = (rank1 + occluded) / 2
            self.latest = rank1
            if rank1 > self.best:
                self.best, self.best_epoch = rank1, epoch
                self.model.save(self.path)
                write_json(self.state_path, {"rank1": self.best, "epoch": epoch})
            print(f" - val rank-1 {shown} (best {self.best:.4f} at epoch {self.best_epoch + 1})")
        if logs is not None:
            logs["val_rank1"] = self.latest
        if epoch - self.best_epoch >= self.patience:
            print(f"early stop: no better validation rank-1 for {self.patience} epochs")
            self.model.stop_training = True
