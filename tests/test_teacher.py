"""The teacher (dlib's face ResNet) and its stage: an embedding for every crop, the right model files, the
stage's file and cache. Skipped where dlib is not installed (``pip install -e ".[teacher]"``)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from keras_landmask.errors import LandmaskError
from tests.conftest import with_stages


@pytest.fixture(scope="module")
def box_crops(raw_faces):
    """Real LFW faces with the project's default (``box``) alignment: ``uint8 [N, 128, 96, 3]``."""
    from keras_landmask.core.align import crop_box

    return np.stack([crop_box(image, detection)[0] for image, detection in zip(*raw_faces)])


def test_importing_the_module_needs_no_dlib():
    code = "import sys, keras_landmask.teacher, keras_landmask.stages.teacher; assert 'dlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_dlib_says_how_to_install(monkeypatch):
    from keras_landmask.teacher import DlibTeacher

    monkeypatch.setitem(sys.modules, "dlib", None)  # import dlib raises ImportError
    with pytest.raises(LandmaskError, match=r'pip install -e "\.\[teacher\]"'):
        DlibTeacher()


def test_every_crop_gets_a_unit_128d_embedding_even_occluded_or_blank(teacher, box_crops):
    occluded = box_crops[:4].copy()
    occluded[:, 60:100] = 255  # a white band over nose and mouth
    sunglasses = box_crops[4:8].copy()
    sunglasses[:, 35:60] = 0
    blank = np.stack([np.full((128, 96, 3), 255, np.uint8), np.zeros((128, 96, 3), np.uint8),
                      np.random.default_rng(0).integers(0, 256, (128, 96, 3), dtype=np.uint8)])
    crops = np.concatenate([box_crops[:6], occluded, sunglasses, blank])
    embeddings, found = teacher.embed_with_flags(crops)
    assert embeddings.shape == (len(crops), 128) and embeddings.dtype == np.float32
    assert np.isfinite(embeddings).all()
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    assert found[:6].mean() >= 0.5  # the HOG detector finds most clean faces; the rest get the fixed box
    assert not found[-3:].any()  # no face in a blank crop: the fixed box, still an embedding
    np.testing.assert_allclose(teacher.embed(crops[:3]), embeddings[:3], atol=1e-6)  # same crop, same embedding


def test_same_person_is_closer_than_different_people(teacher, smoke_run):
    from keras_landmask.runs import RunFolder

    faces = RunFolder(smoke_run[0]).faces()
    keep = np.concatenate([np.flatnonzero(faces.labels == label)[:4] for label in np.unique(faces.labels)[:4]])
    embeddings, labels = teacher.embed(faces.images[keep]), faces.labels[keep]
    distance = np.sqrt(np.maximum(2 - 2 * embeddings @ embeddings.T, 0))
    same = labels[:, None] == labels[None, :]
    off_diagonal = ~np.eye(len(labels), dtype=bool)
    # dlib's unit vectors share a large common part (strangers are at cosine ~0.84): compare distances.
    assert distance[same & off_diagonal].mean() < 0.75 * distance[~same].mean()
    nearest = np.where(off_diagonal, distance, np.inf).argmin(axis=1)
    assert (labels[nearest] == labels).mean() >= 0.9


def test_loads_only_the_public_domain_models(monkeypatch):
    dlib = pytest.importorskip("dlib")
    pytest.importorskip("face_recognition_models")
    from keras_landmask.teacher import DlibTeacher

    loaded = []
    for name in ("shape_predictor", "face_recognition_model_v1", "cnn_face_detection_model_v1"):
        if hasattr(dlib, name):
            real = getattr(dlib, name)
            monkeypatch.setattr(dlib, name, lambda path, real=real: loaded.append(path) or real(path))
    teacher = DlibTeacher()
    names = sorted(path.name for path in teacher.paths.values())
    assert names == ["dlib_face_recognition_resnet_model_v1.dat", "shape_predictor_5_face_landmarks.dat"]
    assert sorted(str(path) for path in teacher.paths.values()) == sorted(loaded)
    assert not any("68" in path or "mmod" in path for path in loaded)


def test_unknown_teacher_model_is_a_clear_error():
    from keras_landmask.config import TeacherConfig
    from keras_landmask.teacher import DlibTeacher

    with pytest.raises(LandmaskError, match="teacher.model 'arcface' is not known"):
        DlibTeacher.from_config(TeacherConfig(model="arcface"))


def test_stage_writes_one_row_per_prepared_face_and_a_rerun_reuses_the_cache(teacher, smoke_run, capsys):
    from keras_landmask.runs import RunFolder
    from keras_landmask.stages import teacher as stage
    from keras_landmask.stages.context import StageContext
    from keras_landmask.train import main

    root, args = smoke_run
    assert main(with_stages(args, "teacher")) == 0
    run = RunFolder(root)
    embeddings = run.teacher_embeddings()
    assert embeddings["faces"].shape == (len(run.faces()), 128)
    n_openset = len(run.openset()) if run.openset_file.is_file() else 0
    assert embeddings["openset"].shape == (n_openset, 128)
    for rows in embeddings.values():
        np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)
    summary = (run.folder("teacher") / "summary.json").read_text()
    assert '"rank1"' in summary and '"faces_per_second"' in summary
    capsys.readouterr()

    # The rerun (here the stage itself, so the run's markers stay as they are) reads the cache back.
    cache_dir = args[args.index("--cache-dir") + 1]
    context = StageContext(config=run.config(), run=run, cache_dir=Path(cache_dir), progress=False)
    result = stage.run(context)
    assert "reused cached teacher embeddings" in capsys.readouterr().out
    unlabelled = run.unlabelled() if run.read_marker("unlabelled") else None  # when another test ran that stage
    assert embeddings["unlabelled"].shape == (len(unlabelled) if unlabelled is not None else 0, 128)
    assert sorted(result["reused_cache"]) == sorted(["faces"] + (["openset"] if n_openset else [])
                                                    + (["unlabelled"] if unlabelled is not None else []))
    assert result["seconds"] < 10 and "rank-1" in result["headline"]
    again = run.teacher_embeddings()
    for name, rows in embeddings.items():
        np.testing.assert_array_equal(again[name], rows)
