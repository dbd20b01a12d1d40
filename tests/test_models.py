"""Base network models: trunk geometry, CosFace arithmetic, shared weights, .keras round trip."""
import numpy as np
import pytest

keras = pytest.importorskip("keras")

from keras_landmask.models.cosface import CosFace  # noqa: E402
from keras_landmask.models.base_network import build_base_network, load_base_network  # noqa: E402
from keras_landmask.models.resnet import resnet_trunk  # noqa: E402
from keras_landmask.errors import LandmaskError  # noqa: E402


def test_trunk_gives_an_8x6_map_at_128x96():
    trunk = resnet_trunk(128, 96, base_width=8)
    assert trunk.output_shape == (None, 8, 6, 64)
    assert trunk.input.dtype == "uint8"
    blocks = {layer.name.split("_block")[0] for layer in trunk.layers if "_block" in layer.name}
    assert blocks == {"stage1", "stage2", "stage3", "stage4"}
    counts = [len({l.name.split("_")[1] for l in trunk.layers if l.name.startswith(f"stage{s}_block")})
              for s in range(1, 5)]
    assert counts == [3, 4, 6, 3]


def test_cosface_subtracts_the_margin_on_the_target_only_and_scales():
    layer = CosFace(4, scale=10.0, margin=0.5)
    embeddings = np.array([[1.0, 0.0], [0.0, 2.0]], np.float32)
    labels = np.array([1, 3])
    layer.build([embeddings.shape, labels.shape])
    centres = np.array([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 1.0, -1.0]], np.float32)
    layer.centres.assign(centres)
    logits = keras.ops.convert_to_numpy(layer([embeddings, labels]))
    cosine = np.array([[1.0, 0.0, 2**-0.5, 0.0], [0.0, 1.0, 2**-0.5, -1.0]])
    expected = 10.0 * (cosine - 0.5 * np.eye(4)[labels])
    np.testing.assert_allclose(logits, expected, atol=1e-5)


def test_parts_share_weights_and_save_load_gives_identical_embeddings(tmp_path):
    recognizer = build_base_network(5, base_width=8, embedding_dim=32)
    images = np.random.default_rng(0).integers(0, 256, (3, 128, 96, 3), dtype=np.uint8)
    whole = recognizer.embedder.predict(images, verbose=0)
    parts = recognizer.head.predict(recognizer.trunk.predict(images, verbose=0), verbose=0)
    np.testing.assert_allclose(whole, parts, atol=1e-5)
    assert whole.shape == (3, 32)

    recognizer.train_model.save(tmp_path / "model.keras")
    loaded = load_base_network(tmp_path / "model.keras")
    np.testing.assert_array_equal(loaded.embedder.predict(images, verbose=0), whole)
    assert loaded.train_model.get_layer("cosface").margin == pytest.approx(0.35)


def test_loading_a_wrong_file_is_a_clear_error(tmp_path):
    with pytest.raises(LandmaskError, match="not found"):
        load_base_network(tmp_path / "missing.keras")
    bogus = tmp_path / "bogus.keras"
    bogus.write_bytes(b"not a zip")
    with pytest.raises(LandmaskError, match="not a keras-landmask recognizer"):
        load_base_network(bogus)
