"""dlib's face ResNet rebuilt in Keras: the same descriptor as dlib on its own face chips, dlib's padded sum,
the chip box, and a clear error for a wrong file. Skipped where dlib is not installed."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from keras_landmask.errors import LandmaskError
from keras_landmask.models.dlib_resnet import CHIP, PadAdd, chip_pixels, read_dlib_weights


@pytest.fixture(scope="module")
def weights(teacher):
    return read_dlib_weights(teacher.paths["descriptor"])


def test_keras_port_gives_dlibs_descriptor_on_its_chips(teacher, weights, aligned_faces):
    from keras_landmask.models.dlib_resnet import dlib_head, dlib_trunk

    chips = np.stack([teacher.chip(crop)[0] for crop in aligned_faces["images"][:6]])
    reference = np.array([np.array(v) for v in teacher.descriptor.compute_face_descriptor(list(chips), 0)])
    trunk = dlib_trunk(weights, CHIP, CHIP, box=None)
    ours = np.asarray(dlib_head(weights, trunk.output_shape[1:])(trunk(chips)))
    cosine = np.sum(ours * reference, axis=1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(reference, axis=1)
    assert cosine.min() > 0.9999
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), np.linalg.norm(reference, axis=1), rtol=1e-3)


def test_weights_have_dlibs_shapes(weights):
    assert len(weights.convs) == 29
    assert weights.convs[0][0].shape == (7, 7, 3, 32) and weights.convs[0][2:] == (2, 0)
    assert weights.dense.shape == (256, 128)
    np.testing.assert_allclose(weights.mean_rgb, [122.782, 117.001, 104.298], atol=1e-3)


def test_trunk_of_a_crop_gives_the_8x8_map(weights):
    from keras_landmask.models.dlib_resnet import dlib_trunk

    trunk = dlib_trunk(weights, 128, 96)
    assert trunk.output_shape == (None, 8, 8, 128)
    assert trunk.input.dtype == "uint8"


def test_chip_box_is_square_and_reaches_outside_the_crop():
    left, top, right, bottom = chip_pixels(128, 96)
    assert right - left == bottom - top
    assert left < 0 and right > 96 and 0 < top < bottom


def test_pad_add_takes_the_larger_size_and_pads_with_zeros():
    a = np.ones((1, 3, 3, 4), np.float32)
    b = np.full((1, 4, 4, 2), 2.0, np.float32)
    out = np.asarray(PadAdd()([a, b]))
    assert out.shape == (1, 4, 4, 4)
    assert out[0, 0, 0, 0] == 3 and out[0, 0, 0, 3] == 1  # both, then only a's channel
    assert out[0, 3, 3, 0] == 2 and out[0, 3, 3, 3] == 0  # only b, then neither


def test_a_wrong_file_is_refused(tmp_path):
    path = tmp_path / "model.dat"
    path.write_bytes(b"\x01\x05hello" * 10)
    with pytest.raises(LandmaskError, match="not dlib's face recognition ResNet"):
        read_dlib_weights(path)
    with pytest.raises(LandmaskError, match="not found"):
        read_dlib_weights(tmp_path / "missing.dat")


def test_int8_tflite_of_the_network_uses_builtin_ops_and_keeps_the_embedding(weights, aligned_faces, tmp_path):
    """The whole network (chip box, resize, dlib's padded sums) converts to int8 with builtin ops only (as the
    edge runtime needs) and its embeddings stay close to the Keras ones."""
    import keras

    from edge_runtime.interpreter import TFLiteModel
    from export.convert import to_tflite
    from keras_landmask.models.dlib_resnet import dlib_head, dlib_trunk

    trunk = dlib_trunk(weights, 128, 96)
    image = keras.Input((128, 96, 3), dtype="uint8", name="image")
    model = keras.Model(image, dlib_head(weights, trunk.output_shape[1:])(trunk(image)), name="dlib")
    crops = aligned_faces["images"]
    content = to_tflite(model, ["embedding"], "int8", lambda: ({"image": crop[None]} for crop in crops))
    path = tmp_path / "dlib.tflite"
    path.write_bytes(content)
    lite = TFLiteModel(path)
    ours = np.concatenate([lite(crop[None])[0] for crop in crops])
    reference = np.asarray(model(crops))
    cosine = np.sum(ours * reference, axis=1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(reference, axis=1)
    assert cosine.min() > 0.95
