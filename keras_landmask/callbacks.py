"""Training callback that selects the base recognizer the paper's way: by validation rank-1."""
from __future__ import annotations

import json
import math
from pathlib import Path

import keras

from keras_landmask.data.faceset import FaceSet
from keras_landmask.data.pipeline import embed
from keras_landmask.evaluate import identify
from keras_landmask.io import write_json


class BestRankOne(keras.callbacks.Callback):
    """Every ``eval_every`` epochs: rank-1 of ``probes`` against ``gallery`` with ``embedder``; saves the
    model to ``path`` when it improves and stops training after ``patience`` epochs without improvement.

    Adds ``val_rank1`` (the latest measured value, NaN before the first) to the epoch logs, so CSV logs
    show it. Its best value lives in ``<path>.best.json``, so a resumed run continues the comparison.
    """

    def __init__(self, embedder: keras.Model, gallery: FaceSet, probes: FaceSet, path: Path,
                 eval_every: int = 1, patience: int = 10):
        super().__init__()
        self.embedder, self.gallery, self.probes = embedder, gallery, probes
        self.path, self.eval_every, self.patience = Path(path), eval_every, patience
        self.state_path = self.path.with_name(self.path.name + ".best.json")
        self.best, self.best_epoch, self.latest = -1.0, -1, math.nan
        if self.state_path.is_file():
            state = json.loads(self.state_path.read_text())
            self.best, self.best_epoch = state["rank1"], state["epoch"]

    def on_epoch_end(self, epoch, logs=None):
        last = epoch + 1 == self.params.get("epochs")
        if (epoch + 1) % self.eval_every == 0 or last:
            result = identify(embed(self.embedder, self.gallery.images), self.gallery.labels,
                              embed(self.embedder, self.probes.images), self.probes.labels)
            self.latest = result.rank1
            if result.rank1 > self.best:
                self.best, self.best_epoch = result.rank1, epoch
                self.model.save(self.path)
                write_json(self.state_path, {"rank1": self.best, "epoch": epoch})
            print(f" - val rank-1 {result.rank1:.4f} (best {self.best:.4f} at epoch {self.best_epoch + 1})")
        if logs is not None:
            logs["val_rank1"] = self.latest
        if epoch - self.best_epoch >= self.patience:
            print(f"early stop: no better validation rank-1 for {self.patience} epochs")
            self.model.stop_training = True
