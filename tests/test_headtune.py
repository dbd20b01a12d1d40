"""Head tuning under the FDM: the four-output model (known answers), the stage on the smoke run (a tuned head,
an untouched trunk, the later stages and the export reading it) and the recipe switch."""
from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from keras_landmask.config import load_config
from keras_landmask.models.head_tuning import OUTPUTS, head_tuning_model
from keras_landmask.runs import RunFolder
from keras_landmask.train import main
from tests.conftest import with_stages


def small_head() -> keras.Model:
    features = keras.Input((2, 2, 3))
    return keras.Model(features, keras.layers.Dense(4)(keras.layers.Flatten()(features)), name="head")


def test_the_four_outputs_are_the_head_of_each_map_masked_and_unmasked():
    head = small_head()
    model = head_tuning_model(head)
    rng = np.random.default_rng(0)
    occluded, clean = rng.normal(size=(2, 5, 2, 2, 3)).astype(np.float32)
    fdm = (rng.random((5, 2, 2, 3)) > 0.5).astype(np.float32)
    outputs = {name: np.asarray(value) for name, value in model([occluded, clean, fdm]).items()}
    assert set(outputs) == set(OUTPUTS)
    expected = {"masked_occluded": occluded * fdm, "masked_clean": clean * fdm, "occluded": occluded, "clean": clean}
    for name, maps in expected.items():
        np.testing.assert_allclose(outputs[name], np.asarray(head(maps)), rtol=1e-5, atol=1e-6)
    assert not np.allclose(outputs["masked_occluded"], outputs["occluded"])


def test_the_model_shares_the_heads_weights():
    head = small_head()
    model = head_tuning_model(head)
    assert {id(w) for w in model.trainable_weights} == {id(w) for w in head.trainable_weights}


def test_only_the_paper_profile_leaves_the_head_untuned():
    assert load_config("fast").headtune.epochs > 0
    assert load_config("smoke").headtune.epochs > 0
    assert load_config("paper").headtune.epochs == 0


def test_the_stage_tunes_the_head_and_leaves_the_trunk(smoke_finished):
    run = RunFolder(smoke_finished)
    base, tuned = run.base_network(), run.recognizer()
    for before, after in zip(base.trunk.weights, tuned.trunk.weights):
        np.testing.assert_array_equal(np.asarray(before), np.asarray(after))
    changes = [np.abs(np.asarray(a) - np.asarray(b)).max() for a, b in zip(base.head.weights, tuned.head.weights)]
    assert max(changes) > 0
    metrics = json.loads((smoke_finished / "headtune" / "metrics.json").read_text())
    before, after = metrics["val_teacher_distance"]["before"], metrics["val_teacher_distance"]["after"]
    assert set(before) == set(OUTPUTS)
    assert after["masked_occluded"] < before["masked_occluded"]  # what the stage is for
    assert len((smoke_finished / "headtune" / "log.csv").read_text().splitlines()) == 1 + metrics["epochs"]


def test_the_open_set_shows_the_tuned_and_the_untuned_head(smoke_finished, smoke_run):
    run, args = smoke_run
    assert main(with_stages(args, "openset")) == 0
    table = json.loads((run / "openset" / "openset.json").read_text())["table"]
    columns = set(table["face_mask"])
    assert {"none", "LM2", "none untuned", "LM2 untuned"} <= columns
    assert table["clean"]["none"] != table["clean"]["none untuned"] or \
        table["face_mask"]["LM2"] != table["face_mask"]["LM2 untuned"]


def test_zero_epochs_keeps_the_base_networks_head(smoke_finished, smoke_run, tmp_path):
    """A copy of the finished smoke run with headtune.epochs=0: no tuned model, the recognizer is the base."""
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(smoke_finished, run)
    _, args = smoke_run
    args = with_stages(args, "headtune")
    args[args.index("--run") + 1] = str(run)
    assert main([*args, "--set", "headtune.epochs=0"]) == 0
    folder = RunFolder(run)
    assert not folder.headtune_file.exists()
    for a, b in zip(folder.recognizer().head.weights, folder.base_network().head.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_head_tuning_with_a_base_of_another_embedding_is_refused_at_once():
    from keras_landmask.errors import LandmaskError

    with pytest.raises(LandmaskError, match="headtune.epochs=0"):
        load_config("fast", assignments=["model.backbone=resnet34"])
    assert load_config("fast", assignments=["model.backbone=resnet34", "headtune.epochs=0"]).headtune.epochs == 0


def test_without_the_teacher_the_stage_says_what_to_do(smoke_finished, tmp_path):
    import shutil

    from keras_landmask.errors import LandmaskError
    from keras_landmask.stages import headtune
    from keras_landmask.stages.context import StageContext

    shutil.copytree(smoke_finished, tmp_path / "copy")
    run = RunFolder(tmp_path / "copy")
    run.clear("teacher")
    context = StageContext(config=run.config(), run=run, cache_dir=tmp_path, progress=False)
    with pytest.raises(LandmaskError, match="run the 'teacher' stage first.*headtune.epochs=0"):
        headtune.run(context)
