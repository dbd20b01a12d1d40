"""What every stage is handed: the resolved config, the run folder, its key and where caches live."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from keras_landmask.config import Config
from keras_landmask.data.facemask import load_mask_templates
from keras_landmask.data.occluders import occluder_catalogue
from keras_landmask.runs import RunFolder


@dataclasses.dataclass
class StageContext:
    config: Config
    run: RunFolder
    cache_dir: Path
    key: str = ""  # the stage's key (settings, data, inputs; see stages.graph): tags resumable partial work
    progress: bool = True
    force: bool = False  # redo work even where a finished result exists
    strategy: str = "default"  # tf.distribute strategy name, see keras_landmask.distribute

    @property
    def data_dir(self) -> Path:
        """The face folder (``data.folder``, an absolute path once the pipeline resolved it)."""
        return Path(self.config.data.folder)

    @property
    def masks_dir(self) -> Path:
        """The MaskTheFace templates (``occlusion.masks_dir``, resolved by the pipeline)."""
        return Path(self.config.occlusion.masks_dir)

    def occluders(self) -> dict:
        """The occluder catalogue (kind → occluder) over this run's layouts and the mask templates."""
        return occluder_catalogue(self.run.layouts(), load_mask_templates(self.masks_dir))
