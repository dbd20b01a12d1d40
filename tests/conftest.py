"""Shared fixtures: the shared LFW data (read-only, never copied) and a few real aligned faces."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

SHARED = Path(os.environ.get("LANDMASK_SHARED", Path(__file__).resolve().parents[2] / "shared"))
LFW = SHARED / "data" / "lfw"
MASKS = SHARED / "data" / "maskthefaces"
# A few people with few images each, so detection in tests stays fast.
TEST_PEOPLE = ("Abdullah_Gul", "Adrien_Brody", "Alejandro_Toledo", "Alvaro_Uribe")


def _require(path: Path) -> Path:
    if not path.exists():
        message = f"shared data not found at {path}; set LANDMASK_SHARED to the folder holding data/lfw"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def lfw_root() -> Path:
    return _require(LFW)


@pytest.fixture(scope="session")
def masks_dir() -> Path:
    return _require(MASKS)


@pytest.fixture(scope="session")
def face_detector():
    from keras_landmask.data.detect import FaceDetector

    return FaceDetector(batch_size=16)


@pytest.fixture(scope="session")
def teacher():
    """dlib's face ResNet as the teacher (skipped where dlib or its model files are not installed)."""
    pytest.importorskip("dlib")
    pytest.importorskip("face_recognition_models")
    from keras_landmask.teacher import DlibTeacher

    return DlibTeacher()


@pytest.fixture(scope="session")
def raw_faces(lfw_root, face_detector):
    """Up to 5 images of each test person: ``(images RGB uint8 list, detections list)``, all with a face."""
    from keras_landmask.data.build import read_rgb

    paths = [p for name in TEST_PEOPLE for p in sorted((lfw_root / name).glob("*.jpg"))[:5]]
    images = [read_rgb(p) for p in paths]
    detections = face_detector.detect(images)
    kept = [(image, det) for image, det in zip(images, detections) if det is not None]
    assert len(kept) >= 15, "MTCNN should find faces in nearly all LFW test images"
    return [k[0] for k in kept], [k[1] for k in kept]


@pytest.fixture(scope="session")
def aligned_faces(raw_faces):
    """Real LFW faces aligned by similarity transform: ``images uint8 [N, 128, 96, 3]``, ``landmarks float32 [N, 5, 2]``."""
    from keras_landmask.core.align import crop_similarity

    crops = [crop_similarity(image, det) for image, det in zip(*raw_faces)]
    return {
        "images": np.stack([c[0] for c in crops]),
        "landmarks": np.stack([c[1] for c in crops]).astype(np.float32),
    }


def with_stages(args: list[str], stages: str) -> list[str]:
    """The same CLI arguments with ``--stages`` replaced."""
    args = list(args)
    args[args.index("--stages") + 1] = stages
    return args


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory, lfw_root, masks_dir):
    """A smoke-profile run with the prepare stage done: ``(run folder, CLI arguments)``; the mask templates are
    found beside the data folder, as a user's are."""
    from keras_landmask.train import main

    root = tmp_path_factory.mktemp("cli")
    args = ["--data", str(lfw_root), "--run", "smoke", "--profile", "smoke", "--stages", "prepare",
            "--runs-dir", str(root / "runs"), "--cache-dir", str(root / "cache"), "--no-progress"]
    assert main(args) == 0
    return root / "runs" / "smoke", args


@pytest.fixture(scope="session")
def smoke_base(smoke_run):
    """The smoke run's base stage folder, trained (distilled from the teacher, on the unlabelled faces too)."""
    from keras_landmask.train import main

    run, args = smoke_run
    assert main(with_stages(args, "unlabelled,teacher,base")) == 0
    return run / "base"


@pytest.fixture(scope="session")
def smoke_finished(smoke_base, smoke_run):
    """The smoke run with every stage the robust models need (base, pdsn, dictionary, headtune, segmenter)."""
    from keras_landmask.train import main

    run, args = smoke_run
    assert main(with_stages(args, "pdsn,dictionary,headtune,segmenter")) == 0
    return run


@pytest.fixture(scope="session")
def smoke_export(smoke_finished, tmp_path_factory):
    """An int8 TFLite export of the smoke run (``tools/export_tflite.py``'s work): the folder, with manifest."""
    from export.exporter import export_run

    out = tmp_path_factory.mktemp("dist") / "smoke-int8"
    export_run(smoke_finished, out, "int8", calibration=40, log=lambda message: None)
    return out
