"""The unlabelled faces for distillation: which photos they are (never the open-set unknowns or a trained
person's), the seeded cap, extra folders, and their files in the stage's key."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from keras_landmask.config import load_config
from keras_landmask.errors import LandmaskError
from keras_landmask.runs import RunFolder
from keras_landmask.stages.context import StageContext
from keras_landmask.stages.graph import STAGES, settings_of
from keras_landmask.stages.unlabelled import unlabelled_files


def make_folder(root: Path, names: list[str]) -> Path:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\xff\xd8 stand-in jpeg " + name.encode())
    return root


@pytest.fixture
def context(tmp_path):
    single = make_folder(tmp_path / "single", [f"P{i}/P{i}_0001.jpg" for i in range(6)])
    config = load_config("smoke")
    config.data.unknown_folder = str(single)
    run = RunFolder(tmp_path / "runs" / "r")
    split = run.stage_dir("prepare") / "split.csv"
    with split.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "person", "label", "split"])
        writer.writerow([single / "P2" / "P2_0001.jpg", "P2", -1, "unknown"])  # drawn as an unknown
    return StageContext(config, run, tmp_path / "cache", progress=False)


def test_the_unknown_people_are_never_distilled_on(context):
    context.config.unlabelled.max_faces = 0
    names = [path.parent.name for path in unlabelled_files(context)]
    assert names == ["P0", "P1", "P3", "P4", "P5"]


def test_extra_folders_are_searched_recursively_and_the_cap_is_seeded(context, tmp_path):
    extra = make_folder(tmp_path / "family", ["a.jpg", "trip/b.png", "notes.txt"])
    context.config.unlabelled.folders = [str(extra)]
    context.config.unlabelled.max_faces = 0
    files = unlabelled_files(context)
    assert {p.name for p in files} >= {"a.jpg", "b.png"} and "notes.txt" not in {p.name for p in files}
    context.config.unlabelled.max_faces = 3
    first, again = unlabelled_files(context), unlabelled_files(context)
    assert len(first) == 3 and first == again


def test_a_missing_folder_says_what_to_pass(context, tmp_path):
    context.config.unlabelled.folders = [str(tmp_path / "nowhere")]
    with pytest.raises(LandmaskError, match="--unlabelled DIR"):
        unlabelled_files(context)


def test_new_photos_in_a_folder_change_the_stage_settings(context, tmp_path):
    stage = next(s for s in STAGES if s.name == "unlabelled")
    extra = make_folder(tmp_path / "family", ["a.jpg"])
    context.config.unlabelled.folders = [str(extra)]
    before = settings_of(stage, context.config)
    make_folder(extra, ["b.jpg"])
    assert settings_of(stage, context.config) != before


def test_unlabelled_flag_folders_are_recorded_absolute(tmp_path, monkeypatch):
    from keras_landmask.config import resolve_folders

    monkeypatch.chdir(tmp_path)
    config = load_config("smoke", assignments=["unlabelled.folders=first"])
    resolve_folders(config, "faces", ["second"])
    assert config.unlabelled.folders == [str(tmp_path / "first"), str(tmp_path / "second")]
