"""PDSN mask generators, the binary mask dictionary and the feature discarding mask."""
import numpy as np
import pytest

keras = pytest.importorskip("keras")

from keras_landmask.data.faceset import FaceSet  # noqa: E402
from keras_landmask.data.layouts import grid_layout  # noqa: E402
from keras_landmask.models.mask_dictionary import MaskDictionary, RegionOcclusion  # noqa: E402
from keras_landmask.models.pdsn import PDSN  # noqa: E402
from keras_landmask.models.recognizer import load_recognizer  # noqa: E402
from keras_landmask.stages.dictionary import binarise  # noqa: E402
from keras_landmask.train import main  # noqa: E402
from tests.conftest import with_stages  # noqa: E402


def test_pdsn_train_step_lowers_both_loss_terms(smoke_base, smoke_run):
    recognizer = load_recognizer(smoke_base / "model.keras")
    faces = FaceSet.load(smoke_run[0] / "prepare" / "faces.npz").subset("train")
    layout = grid_layout(128, 96, 2, 2)
    keras.utils.set_random_seed(0)
    pdsn = PDSN(recognizer.trunk, recognizer.head, recognizer.train_model.get_layer("cosface"),
                layout.pixel_masks(), layout.region_names)
    pdsn.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    images, labels = faces.images[:16], faces.labels[:16].astype("int32")
    trunk_before = [w.copy() for w in recognizer.trunk.get_weights()]
    history = [pdsn.train_on_batch(images, labels, return_dict=True) for _ in range(12)]
    first, last = history[0], history[-1]
    assert last["ce"] < first["ce"]
    assert last["difference"] < first["difference"]
    for before, after in zip(trunk_before, recognizer.trunk.get_weights()):
        np.testing.assert_array_equal(before, after)  # the trunk is frozen


def test_pdsn_partners_are_occluded_exactly_on_their_region():
    layout = grid_layout(128, 96, 3, 3)
    pdsn = PDSN.__new__(PDSN)  # only the occlusion helper is needed, no networks
    import tensorflow as tf

    pdsn.region_masks = tf.constant(layout.pixel_masks()[:, None, :, :, None])
    pdsn.generators = [None] * 9
    images = np.full((2, 128, 96, 3), 7, np.uint8)
    occluded = pdsn.occlude(images).numpy()
    assert occluded.shape == (9, 2, 128, 96, 3)
    for r, region in enumerate(layout.regions):
        changed = np.any(occluded[r] != 7, axis=-1)
        inside = region.pixel_mask(128, 96)
        assert not changed[:, ~inside].any()
        assert len(np.unique(occluded[r, 0][inside])) == 1  # one uniform grey per partner


def test_binarised_masks_drop_the_percentile_fraction():
    mean_masks = np.random.default_rng(0).random((3, 8, 6, 16)).astype(np.float32)
    masks = binarise(mean_masks, 30.0)
    assert masks.dtype == np.uint8 and set(np.unique(masks)) == {0, 1}
    np.testing.assert_allclose(1 - masks.reshape(3, -1).mean(axis=1), 0.30, atol=0.01)
    assert np.all(mean_masks[masks == 0].max() <= mean_masks[masks == 1].min() + 0.5)


def test_fdm_of_no_region_is_ones_and_of_two_regions_the_product():
    rng = np.random.default_rng(1)
    masks = (rng.random((3, 8, 6, 4)) > 0.3).astype(np.uint8)
    layer = MaskDictionary(masks, ["a", "b", "c"])
    flags = np.array([[0, 0, 0], [1, 0, 1], [0, 1, 0]], np.float32)
    fdm = keras.ops.convert_to_numpy(layer(flags))
    assert fdm.shape == (3, 8, 6, 4)
    np.testing.assert_array_equal(fdm[0], 1)
    np.testing.assert_array_equal(fdm[1], masks[0] * masks[2])
    np.testing.assert_array_equal(fdm[2], masks[1])
    restored = MaskDictionary.from_config(layer.get_config())
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(restored(flags)), fdm)


def test_a_region_counts_as_occluded_above_half_covered():
    layout = grid_layout(12, 12, 2, 2)  # four 6x6 cells
    layer = RegionOcclusion(layout.pixel_masks())
    occlusion = np.zeros((3, 12, 12, 1), np.float32)
    occlusion[0, :6, :4] = 1.0  # 24 of 36 pixels of the top-left cell: occluded
    occlusion[1, :3, :6] = 1.0  # exactly half of the top-left cell: not occluded
    occlusion[2, 6:, :] = 0.9  # the whole bottom row, as probabilities above 0.5
    flags = keras.ops.convert_to_numpy(layer(occlusion))
    np.testing.assert_array_equal(flags, [[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 1]])


def test_pdsn_and_dictionary_stages_write_generators_and_masks(smoke_base, smoke_run):
    run, args = smoke_run
    assert main(with_stages(args, "pdsn,dictionary")) == 0
    for layout, regions in (("LM1", 4), ("LM2", 5), ("grid3x3", 9)):
        assert len(list((run / "pdsn" / layout).glob("*.keras"))) == regions
        with np.load(run / "dictionary" / f"{layout}.npz") as data:
            assert data["masks"].shape == (regions, 8, 6, 64)
            assert list(data["region_names"])[:1] and data["masks"].max() == 1
        assert (run / "dictionary" / f"{layout}.png").stat().st_size > 5_000


def test_fdm_graph_converts_to_builtin_tflite_ops_and_runs_the_same():
    tf = pytest.importorskip("tensorflow")
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    layout = grid_layout(16, 12, 3, 3)
    masks = (np.random.default_rng(2).random((9, 2, 2, 4)) > 0.25).astype(np.uint8)
    occlusion = keras.Input((16, 12, 1), name="occlusion")
    fdm = MaskDictionary(masks, layout.region_names)(RegionOcclusion(layout.pixel_masks())(occlusion))
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
