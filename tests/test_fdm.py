"""The mask dictionary's construction (normalise, average, binarise) and the FDM layers."""
import json
import zipfile

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from keras_landmask.core.layouts import grid_layout  # noqa: E402
from keras_landmask.models.fdm import (MaskDictionary, RegionOcclusion, binarise, mean_normalised_masks,  # noqa: E402
                                       normalise_masks)


def test_each_generator_mask_is_min_max_normalised_on_its_own():
    rng = np.random.default_rng(0)
    masks = rng.random((2, 3, 4, 3, 5)).astype(np.float32) * 7 + 2  # [R, B, h, w, C]
    masks[1, 2] = 0.25  # a constant mask stays finite (0)
    normalised = normalise_masks(masks)
    assert normalised.shape == masks.shape
    np.testing.assert_allclose(normalised[:, :2].min(axis=(2, 3, 4)), 0, atol=1e-6)
    np.testing.assert_allclose(normalised[:, :2].max(axis=(2, 3, 4)), 1, atol=1e-6)
    np.testing.assert_array_equal(normalised[1, 2], 0)


def test_the_mean_is_over_samples_whatever_the_batches():
    masks = np.random.default_rng(1).random((3, 10, 2, 2, 4)).astype(np.float32)
    whole = mean_normalised_masks([masks])
    assert whole.shape == (3, 2, 2, 4) and whole.dtype == np.float32
    np.testing.assert_allclose(whole, normalise_masks(masks).mean(axis=1), rtol=1e-6)
    np.testing.assert_allclose(mean_normalised_masks([masks[:, :4], masks[:, 4:]]), whole, rtol=1e-6)
    with pytest.raises(ValueError, match="no generator masks"):
        mean_normalised_masks([])


def test_binarised_masks_drop_the_percentile_fraction():
    mean_masks = np.random.default_rng(0).random((3, 8, 6, 16)).astype(np.float32)
    masks = binarise(mean_masks, 30.0)
    assert masks.dtype == np.uint8 and set(np.unique(masks)) == {0, 1}
    np.testing.assert_allclose(1 - masks.reshape(3, -1).mean(axis=1), 0.30, atol=0.01)
    assert np.all(mean_masks[masks == 0].max() <= mean_masks[masks == 1].min() + 0.5)


def test_fdm_of_no_region_is_ones_and_of_two_regions_the_product():
    rng = np.random.default_rng(1)
    masks = (rng.random((3, 8, 6, 4)) > 0.3).astype(np.uint8)
    layer = MaskDictionary(["a", "b", "c"], (8, 6, 4), masks)
    flags = np.array([[0, 0, 0], [1, 0, 1], [0, 1, 0]], np.float32)
    fdm = keras.ops.convert_to_numpy(layer(flags))
    assert fdm.shape == (3, 8, 6, 4)
    np.testing.assert_array_equal(fdm[0], 1)
    np.testing.assert_array_equal(fdm[1], masks[0] * masks[2])
    np.testing.assert_array_equal(fdm[2], masks[1])
    assert not layer.trainable_weights and len(layer.non_trainable_weights) == 1


def test_masks_of_the_wrong_shape_are_refused():
    with pytest.raises(ValueError, match="expected"):
        MaskDictionary(["a", "b"], (8, 6, 4), np.ones((3, 8, 6, 4)))


def test_a_region_counts_as_occluded_above_half_covered():
    layout = grid_layout(12, 12, 2, 2)  # four 6x6 cells
    layer = RegionOcclusion.for_layout(layout)
    occlusion = np.zeros((3, 12, 12, 1), np.float32)
    occlusion[0, :6, :4] = 1.0  # 24 of 36 pixels of the top-left cell: occluded
    occlusion[1, :3, :6] = 1.0  # exactly half of the top-left cell: not occluded
    occlusion[2, 6:, :] = 0.9  # the whole bottom row, as probabilities above 0.5
    flags = keras.ops.convert_to_numpy(layer(occlusion))
    np.testing.assert_array_equal(flags, [[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 1]])


def test_fdm_layers_keep_their_masks_as_weights_through_a_keras_file(tmp_path):
    layout = grid_layout(128, 96, 3, 3)
    masks = (np.random.default_rng(3).random((9, 8, 6, 512)) > 0.25).astype(np.uint8)  # the paper's map
    occlusion = keras.Input((128, 96, 1), name="occlusion")
    flags = RegionOcclusion.for_layout(layout, 0.4, name="region_occlusion")(occlusion)
    model = keras.Model(occlusion, MaskDictionary(layout.region_names, (8, 6, 512), masks, name="fdm")(flags))
    model.save(tmp_path / "fdm.keras")
    with zipfile.ZipFile(tmp_path / "fdm.keras") as archive:
        config = archive.read("config.json")
    assert len(config) < 10_000  # shapes and names only, no mask values
    loaded = keras.saving.load_model(tmp_path / "fdm.keras")
    assert loaded.get_layer("fdm").region_names == layout.region_names
    assert loaded.get_layer("region_occlusion").threshold == pytest.approx(0.4)
    assert json.loads(config)["config"]["layers"]  # a functional model, rebuilt from its config
    example = np.zeros((4, 128, 96, 1), np.float32)
    example[1, :50], example[2, 40:90, 30:70], example[3] = 1.0, 0.8, 1.0
    np.testing.assert_array_equal(loaded.predict(example, verbose=0), model.predict(example, verbose=0))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded.get_layer("fdm").masks), masks)


def test_fdm_graph_converts_to_builtin_tflite_ops_and_runs_the_same():
    tf = pytest.importorskip("tensorflow")
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    layout = grid_layout(16, 12, 3, 3)
    masks = (np.random.default_rng(2).random((9, 2, 2, 4)) > 0.25).astype(np.uint8)
    occlusion = keras.Input((16, 12, 1), name="occlusion")
    fdm = MaskDictionary(layout.region_names, (2, 2, 4), masks)(RegionOcclusion.for_layout(layout)(occlusion))
    model = keras.Model(occlusion, fdm)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]  # fails on any non-builtin op
    interpreter = litert.Interpreter(model_content=converter.convert())
    interpreter.allocate_tensors()
    example = np.zeros((1, 16, 12, 1), np.float32)
    example[0, :11, :] = 1.0  # top two grid rows (more than half of row two) occluded
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], example)
    interpreter.invoke()
    result = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_array_equal(result, model.predict(example, verbose=0))
    np.testing.assert_array_equal(result[0], np.prod(masks[:6], axis=0))
