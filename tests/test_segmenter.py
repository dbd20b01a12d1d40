"""The occlusion segmenter: U-Net geometry, learning a white band on real faces, the segmenter stage."""
import json

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from keras_landmask.config import load_config  # noqa: E402
from keras_landmask.core.layouts import grid_layout  # noqa: E402
from keras_landmask.data.occluders import white_band  # noqa: E402
from keras_landmask.data.seglabels import mask_iou  # noqa: E402
from keras_landmask.errors import LandmaskError  # noqa: E402
from keras_landmask.models.unet import unet_vgg16  # noqa: E402
from keras_landmask.stages.segmenter import KINDS  # noqa: E402
from keras_landmask.train import main  # noqa: E402
from tests.conftest import with_stages  # noqa: E402


def test_unet_maps_a_uint8_crop_to_probabilities_of_the_same_size():
    model = unet_vgg16(width_multiplier=0.0625)
    images = np.random.default_rng(0).integers(0, 256, (2, 128, 96, 3), dtype=np.uint8)
    output = model.predict(images, verbose=0)
    assert model.input.dtype == "uint8"
    assert output.shape == (2, 128, 96, 1)
    assert output.min() > 0 and output.max() < 1


def test_encoder_is_vgg16_and_the_width_multiplier_scales_it():
    model = unet_vgg16(width_multiplier=0.125)
    convs = [layer for layer in model.layers if layer.name.startswith("block") and layer.name.endswith("_conv")]
    per_block = [sum(layer.name.startswith(f"block{b}_") for layer in convs) for b in range(1, 6)]
    assert len(convs) == 13 and per_block == [2, 2, 3, 3, 3]
    assert [model.get_layer(f"block{b}_conv1_conv").filters for b in range(1, 6)] == [8, 16, 32, 64, 64]
    assert model.get_layer("block5_conv3_conv").output.shape[1:3] == (8, 6)  # 4 poolings: 128x96 → 8x6
    assert unet_vgg16(width_multiplier=0.25).count_params() > 3 * model.count_params()


def test_a_tiny_unet_learns_a_white_band_on_real_faces(aligned_faces):
    images = aligned_faces["images"][:16]
    bands = grid_layout(128, 96, 4, 1).regions  # four full-width bands, each a quarter of the crop
    rng = np.random.default_rng(0)

    def batch():
        pairs = [white_band(image, bands[rng.integers(len(bands))]) for image in images]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])[..., None].astype("float32")

    keras.utils.set_random_seed(0)
    model = unet_vgg16(width_multiplier=0.0625)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="binary_crossentropy")
    losses = [model.train_on_batch(*batch()) for _ in range(30)]
    occluded, truth = batch()
    predicted = model.predict(occluded, verbose=0) > 0.5
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    assert np.mean([mask_iou(p, t > 0.5) for p, t in zip(predicted, truth)]) > 0.6  # flagging all gives 0.25


def test_segmenter_stage_writes_model_metrics_and_examples(smoke_run):
    run, args = smoke_run
    assert main(with_stages(args, "segmenter")) == 0
    out = run / "segmenter"
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["test"]) == set(KINDS)
    for kind in KINDS:
        assert 0 <= metrics["test"][kind]["pixel_accuracy"] <= 1 and 0 <= metrics["test"][kind]["iou"] <= 1
    assert set(metrics["false_occlusion_rate"]) == {"LM1", "LM2", "grid3x3"}
    assert metrics["test"]["clean"]["occluded_fraction"] == 0 < metrics["test"]["face_mask"]["occluded_fraction"]
    model = keras.saving.load_model(out / "model.keras")
    assert model.output_shape == (None, 128, 96, 1)
    assert (out / "log.csv").read_text().count("\n") == 1 + metrics["epochs_run"]
    assert (out / "examples.png").stat().st_size > 5_000


def test_segmenter_converts_to_builtin_tflite_ops():
    tf = pytest.importorskip("tensorflow")
    converter = tf.lite.TFLiteConverter.from_keras_model(unet_vgg16(width_multiplier=0.0625))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]  # fails on any non-builtin op
    assert len(converter.convert()) > 10_000


@pytest.mark.parametrize("assignment, message", [("segmenter.labels=noisy", "'paper' or 'true'"),
                                                 ("segmenter.clean_fraction=1.5", "must lie in 0..1")])
def test_bad_segmenter_settings_are_clear_errors(assignment, message):
    with pytest.raises(LandmaskError, match=message):
        load_config("smoke", assignments=[assignment])


def test_labels_default_to_true_masks_and_the_paper_labels_can_be_chosen():
    assert load_config("smoke").segmenter.labels == "true"
    assert load_config("smoke", assignments=["segmenter.labels=paper"]).segmenter.labels == "paper"
    assert load_config("smoke", assignments=["segmenter.labels=true"]).segmenter.labels == "true"
