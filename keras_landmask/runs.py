"""A run folder ``runs/<name>/``: the one owner of its paths, its stage markers and its artifacts.

Every stage writes into its own sub-folder and closes it with a marker ``<stage>/DONE.json`` (its key, a fresh
output id, what went into the key; see ``stages.graph``). Everything a stage, the export or a benchmark reads
from a run comes from here, through one ``.keras`` loader with a clear error when a file is missing or damaged.
TensorFlow is imported only by the methods that load models.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from keras_landmask.errors import LandmaskError
from keras_landmask.io import write_json

# Stages whose folder is not named after them.
FOLDERS = {"evaluate": "eval"}


class RunFolder:
    """Paths, completion markers and artifacts of one run."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    # --- folders and markers ---------------------------------------------------------------------------------
    def folder(self, stage: str) -> Path:
        """The stage's folder (not created); ``stage`` may name a part, e.g. ``pdsn/LM2``."""
        head, _, part = stage.partition("/")
        folder = self.root / FOLDERS.get(head, head)
        return folder / part if part else folder

    def stage_dir(self, stage: str) -> Path:
        """The stage's folder, created if needed."""
        path = self.folder(stage)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def require(self, stage: str, name: str) -> Path:
        """The path of an output ``name`` of an earlier stage; a clear error when it is missing."""
        path = self.folder(stage) / name
        if not path.exists():
            raise LandmaskError(f"'{path}' not found; run the '{stage.split('/')[0]}' stage first")
        return path

    def marker(self, stage: str) -> Path:
        return self.folder(stage) / "DONE.json"

    def read_marker(self, stage: str) -> dict | None:
        """The stage's completion record, or None when it has not finished (or the marker is unreadable)."""
        try:
            record = json.loads(self.marker(stage).read_text())
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) else None

    def write_marker(self, stage: str, record: dict) -> None:
        write_json(self.marker(stage), {**record, "finished": time.time()})

    def clear(self, stage: str) -> None:
        self.marker(stage).unlink(missing_ok=True)

    # --- the run's settings ----------------------------------------------------------------------------------
    @property
    def config_file(self) -> Path:
        return self.root / "config.yaml"

    def config(self):
        """The resolved config the run was trained with (its ``config.yaml``: data and mask folders included)."""
        import yaml

        from keras_landmask.config import load_config

        if not self.config_file.is_file():
            raise LandmaskError(f"'{self.config_file}' not found; is '{self.root}' a folder written by "
                                "python -m keras_landmask.train?")
        profile = (yaml.safe_load(self.config_file.read_text()) or {}).get("profile", "fast")
        return load_config(profile, self.config_file)

    # --- artifacts, by the stage that writes them ------------------------------------------------------------
    @property
    def faces_file(self) -> Path:
        return self.folder("prepare") / "faces.npz"

    @property
    def layouts_file(self) -> Path:
        return self.folder("prepare") / "layouts.json"

    @property
    def openset_file(self) -> Path:
        return self.folder("prepare") / "openset.npz"

    @property
    def unlabelled_file(self) -> Path:
        return self.folder("unlabelled") / "faces.npz"

    @property
    def teacher_file(self) -> Path:
        return self.folder("teacher") / "embeddings.npz"

    @property
    def base_file(self) -> Path:
        return self.folder("base") / "model.keras"

    @property
    def headtune_file(self) -> Path:
        return self.folder("headtune") / "model.keras"

    def generator_file(self, layout: str, region: str) -> Path:
        return self.folder(f"pdsn/{layout}") / f"{region}.keras"

    def dictionary_file(self, layout: str) -> Path:
        return self.folder("dictionary") / f"{layout}.npz"

    @property
    def segmenter_file(self) -> Path:
        return self.folder("segmenter") / "model.keras"

    def export_cache_file(self, name: str) -> Path:
        """A file the export keeps between exports of this run (the Keras parity rows)."""
        return self.folder("export") / name

    def faces(self):
        """The prepared ``FaceSet`` (aligned crops, landmarks, labels, splits)."""
        from keras_landmask.data.faceset import FaceSet

        return FaceSet.load(self.require("prepare", self.faces_file.name))

    def openset(self):
        """The held-out ``FaceSet`` of the open-set evaluation: splits ``enrol`` and ``probe`` (people never
        trained on, labels into its own ``people``) and ``unknown`` (never enrolled, label -1)."""
        from keras_landmask.data.faceset import FaceSet

        return FaceSet.load(self.require("prepare", self.openset_file.name))

    def unlabelled(self):
        """The unlabelled ``FaceSet`` (label -1, split ``unlabelled``), or None when the stage found none."""
        from keras_landmask.data.faceset import FaceSet

        self.require("unlabelled", "summary.json")
        return FaceSet.load(self.unlabelled_file) if self.unlabelled_file.is_file() else None

    def teacher_embeddings(self) -> dict[str, np.ndarray]:
        """The teacher's clean embeddings: ``faces`` ``float32 [N, D]`` (rows of ``faces()``) and ``openset``
        ``[M, D]`` (rows of ``openset()``), ``unlabelled`` ``[U, D]`` (rows of ``unlabelled()``), unit length."""
        with np.load(self.require("teacher", self.teacher_file.name)) as data:
            return {name: data[name] for name in data.files}

    def layouts(self) -> dict:
        """Layout name → ``Layout`` of this run (built by prepare from the train split's landmarks)."""
        from keras_landmask.core.layouts import Layout

        data = json.loads(self.require("prepare", self.layouts_file.name).read_text())
        return {name: Layout.from_dict(layout) for name, layout in data.items()}

    def layout(self, name: str):
        layouts = self.layouts()
        if name not in layouts:
            raise LandmaskError(f"layout '{name}' is not in the run '{self.root}'; it has {', '.join(layouts)}")
        return layouts[name]

    def base_network(self):
        """The trained base network (``BaseNetwork``: train model, trunk, head, embedder)."""
        from keras_landmask.models.base_network import load_base_network

        return load_base_network(self.base_file)

    def recognizer(self):
        """The network the stages after ``headtune`` and the export use (``BaseNetwork``): the base network with
        the head tuned under the FDM once that stage has made one, else the base network itself."""
        from keras_landmask.models.base_network import load_base_network

        if self.read_marker("headtune") and self.headtune_file.is_file():
            return load_base_network(self.headtune_file)
        return self.base_network()

    def generators(self, layout) -> list:
        """The trained mask generator of each region of ``layout`` (a ``Layout``), in its region order."""
        from keras_landmask.models.saving import load_keras_file

        return [load_keras_file(self.generator_file(layout.name, region), "pdsn", f"mask generator ({region})")
                for region in layout.region_names]

    def dictionary(self, layout) -> np.ndarray:
        """``uint8 [R, h, w, C]`` binary masks of ``layout`` (a ``Layout``), checked against its region order."""
        path = self.dictionary_file(layout.name)
        if not path.is_file():
            raise LandmaskError(f"'{path}' not found; run the 'dictionary' stage first")
        try:
            with np.load(path) as data:
                masks, names = data["masks"], [str(n) for n in data["region_names"]]
        except Exception as error:  # not an npz, cut short, a key missing
            raise LandmaskError(f"'{path}' is not a readable mask dictionary ({type(error).__name__}: "
                                f"{str(error)[:200]}); rerun the 'dictionary' stage with --force") from None
        if names != layout.region_names or len(masks) != len(names):
            raise LandmaskError(f"'{path}' holds masks for regions {names}, but the layout {layout.name} has "
                                f"{layout.region_names}; rerun the 'dictionary' stage with --force")
        return masks

    def segmenter(self):
        """The trained occlusion segmenter (uint8 crop → occlusion probability map)."""
        from keras_landmask.models.saving import load_keras_file

        return load_keras_file(self.segmenter_file, "segmenter", "segmenter")
