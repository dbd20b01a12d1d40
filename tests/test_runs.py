"""RunFolder: the one owner of a run's paths, markers and artifacts, with errors that say which stage to rerun."""
import numpy as np
import pytest

from keras_landmask.core.layouts import Layout, Region
from keras_landmask.errors import LandmaskError
from keras_landmask.io import write_npz
from keras_landmask.runs import RunFolder

LAYOUT = Layout("LM2", 128, 96, (Region("eyes", 0, 0, 96, 64), Region("mouth", 0, 64, 96, 128)))


def test_stage_folders_parts_and_markers(tmp_path):
    run = RunFolder(tmp_path)
    assert run.folder("evaluate") == tmp_path / "eval"
    assert run.folder("pdsn/LM2") == tmp_path / "pdsn" / "LM2"
    assert run.generator_file("LM2", "eyes") == tmp_path / "pdsn" / "LM2" / "eyes.keras"
    assert run.read_marker("base") is None
    run.write_marker("base", {"key": "k", "output": "o"})
    assert run.read_marker("base")["output"] == "o" and "finished" in run.read_marker("base")
    run.marker("prepare").parent.mkdir()
    run.marker("prepare").write_text("{not json")
    assert run.read_marker("prepare") is None  # a damaged marker is an unfinished stage
    run.clear("base")
    assert run.read_marker("base") is None


def test_a_dictionary_is_checked_against_its_layout(tmp_path):
    run = RunFolder(tmp_path)
    with pytest.raises(LandmaskError, match="run the 'dictionary' stage first"):
        run.dictionary(LAYOUT)
    masks = np.ones((2, 8, 6, 4), np.uint8)
    write_npz(run.dictionary_file("LM2"), masks=masks, region_names=np.array(["eyes", "mouth"]))
    assert run.dictionary(LAYOUT).shape == (2, 8, 6, 4)
    write_npz(run.dictionary_file("LM2"), masks=masks, region_names=np.array(["mouth", "eyes"]))
    with pytest.raises(LandmaskError, match=r"regions \['mouth', 'eyes'\], but the layout LM2 has \['eyes', 'mouth'\]"):
        run.dictionary(LAYOUT)
    run.dictionary_file("LM2").write_bytes(b"not an npz")
    with pytest.raises(LandmaskError, match="not a readable mask dictionary.*--force"):
        run.dictionary(LAYOUT)


def test_missing_run_files_name_the_stage_to_run(tmp_path):
    run = RunFolder(tmp_path)
    with pytest.raises(LandmaskError, match="run the 'prepare' stage first"):
        run.layouts()
    with pytest.raises(LandmaskError, match="is '.*' a folder written by python -m keras_landmask.train"):
        run.config()
