"""The independent, evaluation-only occluders (``data.unseen_occluders``) and the ``robustness`` stage."""
import ast
import json
from pathlib import Path

import numpy as np
import pytest

from keras_landmask.data.unseen_occluders import CLEAN_VARIANTS, UNSEEN_OCCLUDERS
from tests.conftest import with_stages

ROOT = Path(__file__).resolve().parents[1]


def covered(mask: np.ndarray, point: np.ndarray) -> bool:
    x, y = np.round(point).astype(int)
    return bool(mask[y, x])


@pytest.mark.parametrize("seed", range(5))
def test_unseen_occluders_cover_what_they_claim(aligned_faces, seed):
    image, landmarks = aligned_faces["images"][0], aligned_faces["landmarks"][0]
    left_eye, right_eye, _, mouth_left, mouth_right = landmarks
    mouth = (mouth_left + mouth_right) / 2
    for name in ("polygon_mask", "scarf"):
        occluded, mask = UNSEEN_OCCLUDERS[name](image, landmarks, np.random.default_rng(seed))
        assert covered(mask, mouth) and not covered(mask, left_eye) and not covered(mask, right_eye), name
        assert np.any(occluded[mask] != image[mask]), name
    outside = ~near(mask)  # the scarf's: it draws nothing else (the polygon mask may add thin ear loops)
    assert np.array_equal(occluded[outside], image[outside])
    occluded, mask = UNSEEN_OCCLUDERS["polygon_glasses"](image, landmarks, np.random.default_rng(seed))
    assert covered(mask, left_eye) and covered(mask, right_eye) and not covered(mask, mouth)


def near(mask: np.ndarray) -> np.ndarray:
    """Pixels within 8 px of the mask (feathered edges, blurred with sigma up to 2 px, change them a little)."""
    import cv2

    return cv2.dilate(mask.astype(np.uint8), np.ones((17, 17), np.uint8)).astype(bool)


def test_clean_variants_change_the_colours_not_the_occlusion(aligned_faces):
    image, landmarks = aligned_faces["images"][0], aligned_faces["landmarks"][0]
    for name, variant in CLEAN_VARIANTS.items():
        changed, mask = variant(image, landmarks, np.random.default_rng(0))
        assert not mask.any() and changed.shape == image.shape and changed.dtype == np.uint8
        assert np.abs(changed[..., 0].astype(int) - changed[..., 2]).mean() < 12, name  # near-gray
        assert np.corrcoef(changed[..., 1].ravel(), image.mean(axis=2).ravel())[0, 1] > 0.8, name  # same face
    again, _ = CLEAN_VARIANTS["infrared"](image, landmarks, np.random.default_rng(0))
    assert np.array_equal(again, CLEAN_VARIANTS["infrared"](image, landmarks, np.random.default_rng(0))[0])


def test_no_training_code_imports_the_unseen_occluders():
    importers = []
    for path in [*ROOT.glob("keras_landmask/**/*.py"), *ROOT.glob("export/*.py"), *ROOT.glob("edge_runtime/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if any("unseen_occluders" in name for name in names):
                importers.append(path.relative_to(ROOT).as_posix())
    assert importers == ["keras_landmask/stages/robustness.py"]


def test_robustness_stage_reports_flag_rates(smoke_finished, smoke_run):
    from keras_landmask.train import main

    assert main(with_stages(smoke_run[1], "robustness")) == 0
    metrics = json.loads((smoke_finished / "robustness" / "metrics.json").read_text())
    assert set(metrics["kinds"]) == {"face_mask", "sunglasses", *UNSEEN_OCCLUDERS, *CLEAN_VARIANTS}
    for kind, scores in metrics["kinds"].items():
        assert 0 <= scores["any_region_flagged"]["LM2"] <= 1
        assert set(scores["region_flag_rate"]["LM2"]) == {"forehead", "eyes", "nose", "mouth", "chin"}
    expected = metrics["kinds"]["scarf"]["any_region_flagged"]["LM2"] - metrics["kinds"]["face_mask"]["any_region_flagged"]["LM2"]
    assert metrics["versus_training"]["scarf"]["LM2"] == pytest.approx(expected, abs=1e-4)
    assert (smoke_finished / "robustness" / "examples.png").stat().st_size > 0
