"""The teacher: dlib's face ResNet (``dlib_face_recognition_resnet_model_v1``), a 128-d embedder for open-set
identities, run on the project's aligned 128x96 crops.

Licence: Davis King released both model files this module loads into the public domain; the
``face_recognition_models`` package that ships them is MIT. Only ``shape_predictor_5_face_landmarks.dat`` and
``dlib_face_recognition_resnet_model_v1.dat`` are loaded. The package also ships the 68-point predictor, whose
training data (iBUG 300-W) forbids commercial use: it is never loaded, and nor is anything built on it.

Per crop: upscale (``TeacherConfig.upscale``, cubic), find the face rectangle (dlib's HOG frontal detector, built
into dlib, no model file; a fixed rectangle when it finds none, which happens on occluded crops), the 5-point
shape predictor inside it, the 150x150 face chip (``get_face_chip``, ``padding``), the ResNet on a batch of
chips, then L2 normalisation. Every crop gets an embedding, including a blank one.

Chosen by measurement on the prepared LFW crops (``box`` alignment, 158 people; test split, 665 probes, against
the train gallery, 2994 photos, or against its first photo per person; occluded probes from the run's occluders):

| variant                          | rank-1 | 1-photo | face mask | sunglasses | white band |
|----------------------------------|--------|---------|-----------|------------|------------|
| no upscale, fixed box            | 98.95 %|    -    |  60.3 %   |   81.8 %   |   78.2 %   |
| upscale 2, fixed box             | 99.40 %| 96.84 % |  60.6 %   |   83.9 %   |   79.2 %   |
| upscale 2, HOG box (the default) | 99.55 %| 97.44 % |  60.9 %   |   83.0 %   |   78.6 %   |

(rank-5 99.7-100 %; occluded columns: rank-1 against the full gallery.) The HOG detector finds 96 % of the clean
crops, 14 % / 82 % / 45 % of the masked / sunglasses / banded ones. About 10.5 faces/s on one core, all variants
(the ResNet is ~90 ms a face; detection ~6 ms).

The unit vectors share a large common part (their mean has norm ~0.92): strangers sit at cosine ~0.84, the same
person at ~0.95 (Euclidean 0.57 vs 0.31). Rankings do not care, but a cosine loss or threshold on them should be
read on that scale (centred on the gallery mean, strangers are at ~0.0 and the same person at ~0.65).
``FIXED_BOX`` was measured on ``box`` crops; on ``similarity`` crops only the undetected ones would feel it.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from keras_landmask.errors import LandmaskError
from keras_landmask.io import write_npz

VERSION = "dlib-teacher-1"  # bump when the preprocessing changes: cached embeddings are keyed by it
DIM = 128
CHIP = 150  # the ResNet's input size (dlib's face chip)
# The only model files loaded, by role (public domain; never the 68-point predictor).
MODEL_FILES = {"shape_predictor": "shape_predictor_5_face_landmarks.dat",
               "descriptor": "dlib_face_recognition_resnet_model_v1.dat"}
# Where dlib's HOG detector puts the face in a box-aligned crop, as fractions (left, top, right, bottom) of the
# crop's width and height: the median of its boxes over the train split of the LFW fast run. The rectangle the
# shape predictor is given when the detector finds no face (or ``detect`` is off).
FIXED_BOX = (-0.055, 0.209, 0.987, 0.916)
INSTALL = 'pip install -e ".[teacher]"'


def _import_dlib():
    try:
        import dlib
    except ImportError as error:
        raise LandmaskError(f"the teacher needs dlib ({error}); install it with {INSTALL}") from None
    return dlib


def model_paths() -> dict[str, Path]:
    """Role → path of the two model files, in the ``face_recognition_models`` package (found without importing
    it: its ``__init__`` needs ``pkg_resources``)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise LandmaskError(f"the teacher needs the face_recognition_models package; install it with {INSTALL}")
    folder = Path(list(spec.submodule_search_locations)[0]) / "models"
    paths = {role: folder / name for role, name in MODEL_FILES.items()}
    for path in paths.values():
        if not path.is_file():
            raise LandmaskError(f"teacher model file '{path}' not found; reinstall with {INSTALL}")
    return paths


class DlibTeacher:
    """``embed(crops uint8 [N, H, W, 3] RGB) -> float32 [N, 128]`` unit-length embeddings.

    ``upscale``: the crop is resized by this factor before detection and landmarks (the HOG detector finds
    faces of about 80 pixels and up); ``detect``: run the HOG detector (else always ``FIXED_BOX``);
    ``padding``: the face chip's padding around the landmarks (dlib's default 0.25); ``jitters``: dlib's
    test-time jitter count (0 = none; each jitter is one more ResNet pass).
    """

    def __init__(self, upscale: float = 2.0, detect: bool = True, padding: float = 0.25, jitters: int = 0,
                 batch: int = 32):
        dlib = _import_dlib()
        self.dlib = dlib
        self.upscale, self.detect, self.padding, self.jitters, self.batch = upscale, detect, padding, jitters, batch
        self.paths = model_paths()
        self.shape_predictor = dlib.shape_predictor(str(self.paths["shape_predictor"]))
        self.descriptor = dlib.face_recognition_model_v1(str(self.paths["descriptor"]))
        self.detector = dlib.get_frontal_face_detector() if detect else None

    @classmethod
    def from_config(cls, cfg) -> "DlibTeacher":
        """The teacher of a ``TeacherConfig``."""
        if cfg.model != "dlib":
            raise LandmaskError(f"teacher.model '{cfg.model}' is not known; the one teacher is 'dlib'")
        return cls(upscale=cfg.upscale, detect=cfg.detect, padding=cfg.padding, jitters=cfg.jitters)

    @property
    def settings(self) -> dict:
        """What the embeddings depend on (with ``VERSION``): the cache key's settings."""
        return {"version": VERSION, "upscale": self.upscale, "detect": self.detect, "padding": self.padding,
                "jitters": self.jitters, "fixed_box": FIXED_BOX,
                "models": {role: path.name for role, path in self.paths.items()}}

    def face_rectangle(self, image: np.ndarray):
        """The ``dlib.rectangle`` of the face in an upscaled crop: the HOG detector's largest box, else
        ``FIXED_BOX``; also whether the detector found it."""
        height, width = image.shape[:2]
        if self.detector is not None:
            boxes = self.detector(image, 0)
            if len(boxes):
                return max(boxes, key=lambda box: box.area()), True
        left, top, right, bottom = FIXED_BOX
        return self.dlib.rectangle(round(left * width), round(top * height), round(right * width),
                                   round(bottom * height)), False

    def chip(self, crop: np.ndarray) -> tuple[np.ndarray, bool]:
        """``(uint8 [150, 150, 3] face chip, detector found the face)`` of one RGB crop."""
        import cv2

        crop = np.ascontiguousarray(crop, dtype=np.uint8)
        if self.upscale != 1:
            crop = cv2.resize(crop, None, fx=self.upscale, fy=self.upscale, interpolation=cv2.INTER_CUBIC)
        rectangle, found = self.face_rectangle(crop)
        shape = self.shape_predictor(crop, rectangle)
        return self.dlib.get_face_chip(crop, shape, size=CHIP, padding=self.padding), found

    def embed(self, crops: np.ndarray, progress: bool = False, desc: str = "teacher (dlib)") -> np.ndarray:
        """``float32 [N, 128]`` unit-length embeddings of ``crops uint8 [N, H, W, 3]`` RGB, in order."""
        embeddings, _ = self.embed_with_flags(crops, progress, desc)
        return embeddings

    def embed_with_flags(self, crops: np.ndarray, progress: bool = False,
                         desc: str = "teacher (dlib)") -> tuple[np.ndarray, np.ndarray]:
        """``embed``'s embeddings and ``bool [N]``: whether the HOG detector found the face (else ``FIXED_BOX``)."""
        crops = np.asarray(crops)
        if crops.ndim != 4 or crops.shape[-1] != 3:
            raise LandmaskError(f"the teacher embeds RGB crops [N, H, W, 3], got shape {crops.shape}")
        out = np.zeros((len(crops), DIM), np.float32)
        found = np.zeros(len(crops), bool)
        with tqdm(total=len(crops), desc=desc, unit="face", disable=not progress) as bar:
            for start in range(0, len(crops), self.batch):
                chips = []
                for i in range(start, min(start + self.batch, len(crops))):
                    chip, found[i] = self.chip(crops[i])
                    chips.append(chip)
                vectors = self.descriptor.compute_face_descriptor(chips, self.jitters)
                out[start:start + len(chips)] = np.array([np.array(v) for v in vectors], np.float32)
                bar.update(len(chips))
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12), found


def digest(crops: np.ndarray, settings: dict) -> str:
    """16 hex digits over the crops' shape and bytes and the teacher's settings: the cache key of their
    embeddings."""
    crops = np.ascontiguousarray(crops)
    h = hashlib.sha256(json.dumps({"shape": crops.shape, "dtype": str(crops.dtype), **settings},
                                  sort_keys=True).encode())
    h.update(memoryview(crops.reshape(-1)).cast("B") if crops.size else b"")
    return h.hexdigest()[:16]


def cached_embeddings(teacher: DlibTeacher, images: np.ndarray, cache_dir: Path, progress: bool,
                      desc: str) -> dict:
    """``{"embeddings": float32 [N, 128], "found": bool [N], "seconds": float, "reused": bool}`` of ``images``,
    read from the cache when it holds them (``seconds`` is then the time they took when computed)."""
    path = cache_dir / f"teacher-{digest(images, teacher.settings)}.npz"
    if path.is_file():
        try:
            with np.load(path) as data:
                cached = {"embeddings": data["embeddings"], "found": data["found"],
                          "seconds": float(data["seconds"]), "reused": True}
            if cached["embeddings"].shape == (len(images), DIM):
                return cached
        except Exception:  # a damaged cache file: compute again and overwrite it
            pass
    start = time.perf_counter()
    embeddings, found = teacher.embed_with_flags(images, progress=progress, desc=desc)
    seconds = time.perf_counter() - start
    cache_dir.mkdir(parents=True, exist_ok=True)
    write_npz(path, embeddings=embeddings, found=found, seconds=np.float64(seconds))
    return {"embeddings": embeddings, "found": found, "seconds": seconds, "reused": False}
