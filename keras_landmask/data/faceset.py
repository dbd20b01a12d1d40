"""FaceSet: aligned crops with landmarks, labels and split, saved as one ``.npz``."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from keras_landmask.errors import LandmaskError
from keras_landmask.io import write_npz


@dataclasses.dataclass
class FaceSet:
    """Aligned faces of one dataset; all arrays share the first axis ``N``.

    images ``uint8 [N, H, W, 3]`` RGB; landmarks ``float32 [N, 5, 2]`` (x, y) crop pixels;
    labels ``int32 [N]`` person index into ``people`` (-1: an unknown person); splits ``str [N]``: train/val/test
    for the trained people, enrol/probe/unknown for the open-set evaluation's;
    paths ``str [N]`` source files; no_face / multi_face ``bool [N]`` detector flags
    (no_face: a centred fallback crop was used).
    """

    images: np.ndarray
    landmarks: np.ndarray
    labels: np.ndarray
    splits: np.ndarray
    paths: np.ndarray
    no_face: np.ndarray
    multi_face: np.ndarray
    people: np.ndarray  # str [P], person names by label

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, split: str) -> "FaceSet":
        """The faces of one split (e.g. ``train`` or ``probe``); ``people`` is kept whole."""
        return self.select(self.splits == split)

    def select(self, keep: np.ndarray) -> "FaceSet":
        """The faces where ``keep`` (``bool [N]``) is True; ``people`` is kept whole."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return FaceSet(**{k: (v if k == "people" else v[keep]) for k, v in fields.items()})

    @classmethod
    def concatenate(cls, parts: list["FaceSet"]) -> "FaceSet":
        """The faces of ``parts`` in order, with the first part's ``people`` (the others' labels must index it or
        be -1)."""
        fields = [f.name for f in dataclasses.fields(cls)]
        return cls(**{k: (parts[0].people if k == "people" else np.concatenate([getattr(p, k) for p in parts]))
                      for k in fields})

    def save(self, path: str | Path) -> Path:
        return write_npz(path, **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)})

    @classmethod
    def load(cls, path: str | Path) -> "FaceSet":
        path = Path(path)
        if not path.is_file():
            raise LandmaskError(f"prepared faces '{path}' not found; run the 'prepare' stage first")
        try:
            with np.load(path, allow_pickle=False) as data:
                return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls)})
        except (OSError, ValueError, KeyError) as error:
            raise LandmaskError(f"'{path}' is not a readable prepared-faces file ({error}); rerun prepare with --force")
