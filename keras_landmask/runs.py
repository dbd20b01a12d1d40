"""A run folder ``runs/<name>/``: one sub-folder per stage, each closed by a completion marker.

The marker ``<stage>/DONE.json`` records the digest of the config the stage ran with; a rerun skips
a stage whose marker matches, and redoes it when forced or when its settings changed.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from keras_landmask.errors import LandmaskError
from keras_landmask.io import write_json


# Stages whose folder is not named after them.
FOLDERS = {"evaluate": "eval"}


class RunFolder:
    """Paths and completion markers of one run."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def folder(self, stage: str) -> Path:
        """The stage's folder (not created)."""
        return self.root / FOLDERS.get(stage, stage)

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

    def is_done(self, stage: str, digest: str) -> bool:
        """True when the stage finished with settings of this digest."""
        path = self.marker(stage)
        if not path.is_file():
            return False
        try:
            return json.loads(path.read_text()).get("digest") == digest
        except (OSError, ValueError):
            return False

    def mark_done(self, stage: str, digest: str, seconds: float) -> None:
        write_json(self.marker(stage), {"digest": digest, "seconds": round(seconds, 2), "finished": time.time()})

    def clear(self, stage: str) -> None:
        self.marker(stage).unlink(missing_ok=True)
