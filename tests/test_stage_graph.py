"""The stage graph: a stage reruns when its settings, its data or a stage it reads changed, and only then.

Stages are replaced by fakes that record that they ran, so these tests walk the real CLI and run folder in
a fraction of a second; the FaceSet cache test builds real crops with a stand-in detector.
"""
import importlib
from pathlib import Path

import numpy as np
import pytest

from keras_landmask.stages.graph import STAGE_NAMES
from keras_landmask.train import main

ALL = ",".join(STAGE_NAMES)


@pytest.fixture
def ran(monkeypatch):
    """Stage names in the order their (fake) ``run`` was called."""
    calls = []
    for name in STAGE_NAMES:
        def fake(context, name=name):
            calls.append(name)
            (context.run.stage_dir(name) / "output.txt").write_text(context.key)
            return {"headline": f"fake {name}"}

        monkeypatch.setattr(importlib.import_module(f"keras_landmask.stages.{name}"), "run", fake)
    return calls


def fake_data(folder: Path, people: int = 3, images: int = 4) -> Path:
    """A face folder layout (the fakes never decode the files; the graph only lists them)."""
    for p in range(people):
        person = folder / f"Person_{p}"
        person.mkdir(parents=True)
        for i in range(images):
            (person / f"Person_{p}_{i:04d}.jpg").write_bytes(b"\xff\xd8" + bytes([p, i]) * 10)
    return folder


@pytest.fixture
def cli(tmp_path):
    """``cli(stages, *extra)`` runs the pipeline CLI on one run folder; returns the exit code."""
    data = fake_data(tmp_path / "faces")

    def call(stages=ALL, *extra, data=data):
        return main(["--data", str(data), "--runs-dir", str(tmp_path / "runs"), "--run", "r", "--profile", "smoke",
                     "--no-progress", "--stages", stages, *extra])

    return call


def test_evaluate_reruns_once_the_segmenter_has_finished(cli, ran):
    """The README's order: without a segmenter, then the segmenter, then the whole command again."""
    assert cli("prepare,unlabelled,teacher,base") == 0
    assert cli("pdsn,dictionary,evaluate") == 0
    assert cli("segmenter") == 0
    ran.clear()
    assert cli() == 0
    assert ran == ["headtune", "evaluate", "openset", "robustness"]


def test_a_forced_base_reruns_everything_that_reads_it(cli, ran, capsys):
    assert cli() == 0
    ran.clear()
    assert cli("base", "--force") == 0
    assert ran == ["base"]
    assert "out of date now: pdsn (base changed since)" in capsys.readouterr().out
    ran.clear()
    assert cli() == 0
    assert ran == ["pdsn", "dictionary", "headtune", "evaluate", "openset"]
    ran.clear()
    assert cli() == 0
    assert ran == []


def test_another_data_folder_or_a_changed_file_reruns_every_stage(cli, ran, tmp_path):
    assert cli() == 0
    ran.clear()
    other = fake_data(tmp_path / "other", people=4)
    assert cli(ALL, data=other) == 0
    assert ran == list(STAGE_NAMES)
    ran.clear()
    (other / "Person_0" / "Person_0_0000.jpg").write_bytes(b"\xff\xd8 a different photo")
    assert cli(ALL, data=other) == 0
    assert ran == list(STAGE_NAMES)


def test_a_changed_setting_reruns_its_stage_and_those_downstream_only(cli, ran, capsys):
    assert cli() == 0
    ran.clear()
    assert cli(ALL, "--set", "segmenter.epochs=3") == 0
    assert ran == ["segmenter", "evaluate", "openset", "robustness"]
    assert "segmenter.epochs 8 -> 3" in capsys.readouterr().out


def test_plan_says_what_would_run_and_why_without_running(cli, ran, capsys):
    assert cli() == 0
    ran.clear()
    capsys.readouterr()
    assert cli(ALL, "--plan", "--set", "train.epochs=3") == 0
    out = capsys.readouterr().out
    assert ran == []
    assert "prepare    reused" in out and "segmenter  reused" in out
    assert "base       will run: train.epochs 6 -> 3" in out
    assert "pdsn       will run: base runs first" in out


def test_a_stage_whose_input_is_out_of_date_is_refused_before_anything_runs(cli, ran, capsys):
    assert cli() == 0
    ran.clear()
    assert cli("evaluate", "--set", "model.base_width=4") == 2
    error = capsys.readouterr().err
    assert ran == []
    assert "'evaluate' reads the 'base' stage, which is out of date (model.base_width 8 -> 4)" in error


def test_the_faceset_cache_follows_the_split_fractions(lfw_root, tmp_path):
    from keras_landmask.core.align import Detection
    from keras_landmask.data.build import build_faceset
    from keras_landmask.data.lfw import discover_people, split_people

    class CentreDetector:
        def detect(self, images):
            return [Detection(np.array([w / 4, h / 4, w / 2, h / 2], np.float32),
                              np.array([[.4 * w, .4 * h], [.6 * w, .4 * h], [.5 * w, .5 * h], [.42 * w, .6 * h],
                                        [.58 * w, .6 * h]], np.float32), 0.99, 1)
                    for h, w in (image.shape[:2] for image in images)]

    people = discover_people(lfw_root, 10, 2)
    splits = {}
    for fraction in (0.15, 0.3):
        samples = split_people(people, fraction, fraction, 1234, 10)
        faces, _, _ = build_faceset(samples, list(people), "box", 128, 96, tmp_path, CentreDetector, progress=False)
        splits[fraction] = faces.splits
        assert (faces.splits == "val").sum() == sum(s.split == "val" for s in samples)
    assert (splits[0.15] == "val").sum() < (splits[0.3] == "val").sum()


def test_deterministic_ops_are_turned_on_before_any_stage_runs(cli, ran, monkeypatch):
    import tensorflow as tf

    calls = []
    monkeypatch.setattr(tf.config.experimental, "enable_op_determinism", lambda: calls.append(list(ran)))
    assert cli("prepare") == 0
    assert calls == []
    assert cli("prepare", "--deterministic-ops", "--force") == 0
    assert calls == [["prepare"]] and ran == ["prepare", "prepare"]  # called before the second run's stage
