"""The robust embedder equals the manual composition of segmenter, region flags, FDM, trunk and head."""
import shutil

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from keras_landmask.data.faceset import FaceSet  # noqa: E402
from keras_landmask.errors import LandmaskError  # noqa: E402
from keras_landmask.models.robust_embedder import load_robust_models  # noqa: E402


def test_robust_embedder_equals_the_manual_composition(smoke_finished):
    run = smoke_finished
    models = load_robust_models(run, "LM2")
    faces = FaceSet.load(run / "prepare" / "faces.npz").subset("test")
    images = faces.images[:4].copy()
    images[:, 96:110] = 255  # a white mouth band, so some regions are flagged

    from keras_landmask.models.base_network import load_base_network

    recognizer = load_base_network(run / "headtune" / "model.keras")  # the smoke run's head was tuned
    segmenter = keras.saving.load_model(run / "segmenter" / "model.keras", compile=False)
    layout_masks = keras.ops.convert_to_numpy(models.features.get_layer("region_occlusion").pixel_masks)
    occlusion = segmenter.predict(images, verbose=0)[..., 0] > 0.5
    covered = (occlusion[:, None] * layout_masks[None]).sum(axis=(2, 3)) / layout_masks.sum(axis=(1, 2))
    flags = (covered > 0.5).astype(np.float32)
    with np.load(run / "dictionary" / "LM2.npz") as data:
        masks = data["masks"].astype(np.float32)
    fdm = np.stack([np.prod([m for m, f in zip(masks, row) if f] or [np.ones_like(masks[0])], axis=0) for row in flags])
    manual = recognizer.head.predict(recognizer.trunk.predict(images, verbose=0) * fdm, verbose=0)

    feature_map, predicted_flags = models.features.predict(images, verbose=0)
    np.testing.assert_array_equal(predicted_flags, flags)
    np.testing.assert_allclose(models.masked_head.predict([feature_map, predicted_flags], verbose=0), manual,
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(models.embedder.predict(images, verbose=0), manual, rtol=1e-4, atol=1e-4)


def test_missing_stage_outputs_are_a_clear_error(tmp_path, smoke_run):
    with pytest.raises(LandmaskError, match="run the 'prepare' stage first"):
        load_robust_models(tmp_path)
    shutil.copytree(smoke_run[0] / "prepare", tmp_path / "prepare")
    with pytest.raises(LandmaskError, match="run the 'dictionary' stage first"):
        load_robust_models(tmp_path)
    with pytest.raises(LandmaskError, match="layout 'grid7x7' is not in the run"):
        load_robust_models(tmp_path, "grid7x7")
