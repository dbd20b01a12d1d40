"""Turn split samples into a FaceSet: read, detect (MTCNN), crop; both steps cached on disk.

The detection cache is keyed by the files (relative path and size) and the detector; the crop cache
additionally by alignment, crop size and each image's label and split. A second run with the same data and
settings loads in seconds.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm import tqdm

from keras_landmask.core.align import CROPPERS, Detection, fallback_detection
from keras_landmask.core.images import ImageError, read_image
from keras_landmask.data.faceset import FaceSet
from keras_landmask.data.lfw import Sample
from keras_landmask.errors import LandmaskError
from keras_landmask.io import write_npz

DETECTOR_VERSION = "mtcnn-1.0.0/central-face/v2"


def read_rgb(path: Path) -> np.ndarray | None:
    """RGB ``uint8 [H, W, 3]`` of any size, or None where ``core.images.read_image`` refuses the file (unreadable,
    not decodable, cut short, a decompression bomb, over ``MAX_FILE_BYTES``)."""
    try:
        return read_image(path, min_side=1)
    except (ImageError, OSError):  # OSError: a path the file system refuses (e.g. a name too long)
        return None


def check_readable(samples: list[Sample], readable: np.ndarray, split: str | None = "train") -> None:
    """``LandmaskError`` unless at least 2 people keep a readable image in ``split`` (unreadable files are
    skipped and counted, but a folder of them cannot be trained on, or enrolled from); None: no check."""
    if split is None:
        return
    people = {s.person for s, ok in zip(samples, readable) if ok and s.split == split}
    if len(people) >= 2:
        return
    bad = [str(s.path) for s, ok in zip(samples, readable) if not ok]
    example = f", e.g. '{bad[0]}'" if bad else ""
    raise LandmaskError(
        f"only {int(np.sum(readable))} of {len(samples)} images could be read ({len(bad)} damaged or not "
        f"JPEG/PNG{example}), leaving {len(people)} people with images in the {split} split; recognition needs "
        "at least 2: replace or remove the damaged files"
    )


def files_key(samples: list[Sample], *settings: object) -> str:
    """Stable digest of the sample files (name and size) and any settings."""
    digest = hashlib.sha256(json.dumps([str(s) for s in settings]).encode())
    for s in samples:
        digest.update(f"{s.person}/{s.path.name}:{s.path.stat().st_size};".encode())
    return digest.hexdigest()[:20]


def detect_all(samples: list[Sample], make_detector: Callable, cache_dir: Path, batch: int, progress: bool = True):
    """MTCNN on every file, cached. Returns arrays: readable, found, size [N, 2] (w, h), box [N, 4],
    landmarks [N, 5, 2], confidence, n_faces."""
    path = cache_dir / f"detections-{files_key(samples, DETECTOR_VERSION)}.npz"
    if path.is_file():
        with np.load(path) as data:
            return {k: data[k] for k in data.files}
    n = len(samples)
    out = {
        "readable": np.zeros(n, bool),
        "found": np.zeros(n, bool),
        "size": np.zeros((n, 2), np.float32),
        "box": np.zeros((n, 4), np.float32),
        "landmarks": np.zeros((n, 5, 2), np.float32),
        "confidence": np.zeros(n, np.float32),
        "n_faces": np.zeros(n, np.int32),
    }
    detector = None  # made at the first readable image: no model is loaded for a folder of unreadable files
    with tqdm(total=n, desc="detect faces (MTCNN)", unit="img", disable=not progress) as bar:
        for start in range(0, n, batch):
            indices = range(start, min(n, start + batch))
            images = {i: read_rgb(samples[i].path) for i in indices}
            readable = [i for i, image in images.items() if image is not None]
            if readable and detector is None:
                detector = make_detector()
            for i, det in zip(readable, detector.detect([images[i] for i in readable]) if readable else []):
                out["readable"][i] = True
                out["size"][i] = images[i].shape[1], images[i].shape[0]
                if det is not None:
                    out["found"][i] = True
                    out["box"][i], out["landmarks"][i] = det.box, det.landmarks
                    out["confidence"][i], out["n_faces"][i] = det.confidence, det.n_faces
            bar.update(len(indices))
    write_npz(path, **out)
    return out


def build_faceset(
    samples: list[Sample],
    people: list[str],
    alignment: str,
    height: int,
    width: int,
    cache_dir: Path,
    make_detector: Callable,
    detect_batch: int = 32,
    progress: bool = True,
    required_split: str | None = "train",
) -> tuple[FaceSet, list[str], Path]:
    """Aligned crops of all readable samples, the paths of the unreadable ones (skipped), and the
    cache file holding the FaceSet; at least 2 people must keep a readable image in ``required_split``."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    labels_and_splits = [f"{s.label}:{s.split}" for s in samples]  # the FaceSet holds them: a new split is a new file
    path = cache_dir / f"faces-{files_key(samples, DETECTOR_VERSION, alignment, height, width, labels_and_splits)}.npz"
    if path.is_file():
        faces = FaceSet.load(path)
        unreadable = sorted(set(str(s.path) for s in samples) - set(faces.paths.tolist()))
        return faces, unreadable, path
    det = detect_all(samples, make_detector, cache_dir, detect_batch, progress)
    check_readable(samples, det["readable"], required_split)
    found = det["found"]
    relative_boxes = det["box"][found] / np.tile(det["size"][found], 2)
    relative_marks = det["landmarks"][found] / det["size"][found][:, None, :]
    crop = CROPPERS[alignment]
    kept, images, marks = [], [], []
    for i in tqdm(range(len(samples)), desc=f"align ({alignment})", unit="img", disable=not progress):
        image = read_rgb(samples[i].path) if det["readable"][i] else None
        if image is None:
            continue
        if det["found"][i]:
            detection = Detection(det["box"][i], det["landmarks"][i], float(det["confidence"][i]), 1)
        else:
            detection = fallback_detection(relative_boxes, relative_marks, image.shape)
        image, landmarks = crop(image, detection, height, width)
        kept.append(i)
        images.append(image)
        marks.append(landmarks)
    faces = FaceSet(
        images=np.stack(images) if images else np.zeros((0, height, width, 3), np.uint8),
        landmarks=np.stack(marks) if marks else np.zeros((0, 5, 2), np.float32),
        labels=np.array([samples[i].label for i in kept], np.int32),
        splits=np.array([samples[i].split for i in kept]),
        paths=np.array([str(samples[i].path) for i in kept]),
        no_face=~det["found"][kept],
        multi_face=det["n_faces"][kept] > 1,
        people=np.array(people),
    )
    faces.save(path)
    unreadable = [str(samples[i].path) for i in range(len(samples)) if not det["readable"][i]]
    return faces, unreadable, path
