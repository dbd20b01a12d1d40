"""PDSN mask generators and the pdsn and dictionary stages (the FDM itself: test_fdm.py)."""
import numpy as np
import pytest

keras = pytest.importorskip("keras")

from keras_landmask.core.layouts import grid_layout  # noqa: E402
from keras_landmask.data.faceset import FaceSet  # noqa: E402
from keras_landmask.models.base_network import load_base_network  # noqa: E402
from keras_landmask.models.pdsn import PDSN  # noqa: E402
from keras_landmask.runs import RunFolder  # noqa: E402
from keras_landmask.train import main  # noqa: E402
from tests.conftest import with_stages  # noqa: E402


def test_pdsn_train_step_lowers_both_loss_terms(smoke_base, smoke_run):
    recognizer = load_base_network(smoke_base / "model.keras")
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


def test_pdsn_and_dictionary_stages_write_generators_and_masks(smoke_base, smoke_run):
    run, args = smoke_run
    assert main(with_stages(args, "pdsn,dictionary")) == 0
    feature_shape = tuple(RunFolder(run).base_network().trunk.output_shape[1:])  # 8x8x128: dlib's network
    for layout, regions in (("LM1", 4), ("LM2", 5), ("grid3x3", 9)):
        assert len(list((run / "pdsn" / layout).glob("*.keras"))) == regions
        with np.load(run / "dictionary" / f"{layout}.npz") as data:
            assert data["masks"].shape == (regions, *feature_shape)
            assert list(data["region_names"])[:1] and data["masks"].max() == 1
        assert (run / "dictionary" / f"{layout}.png").stat().st_size > 5_000
