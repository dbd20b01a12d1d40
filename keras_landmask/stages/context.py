"""What every stage is handed: the resolved config, the run folder and where the data lives."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from keras_landmask.config import Config
from keras_landmask.runs import RunFolder


@dataclasses.dataclass
class StageContext:
    config: Config
    run: RunFolder
    data_dir: Path
    cache_dir: Path
    progress: bool = True
    force: bool = False  # redo work even where a finished result exists
    strategy: str = "default"  # tf.distribute strategy name, see keras_landmask.distribute

    @property
    def masks_dir(self) -> Path:
        """MaskTheFace templates: the configured folder, or ``maskthefaces`` beside the data folder."""
        configured = self.config.occlusion.masks_dir
        return Path(configured) if configured else self.data_dir.parent / "maskthefaces"
