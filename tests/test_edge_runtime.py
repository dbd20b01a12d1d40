"""The edge runtime end to end on the smoke export: enrol and identify through ``python -m edge_runtime`` with
TensorFlow, Keras, yaml, tqdm, matplotlib and mtcnn blocked."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TEST_PEOPLE
from tests.test_core_package import BLOCK_TRAINING_SIDE

ROOT = Path(__file__).resolve().parents[1]
# Runs ``python -m edge_runtime ARGS`` in a fresh interpreter where importing any training-side package fails.
NO_TENSORFLOW = BLOCK_TRAINING_SIDE + ("import runpy; "
                                       "runpy.run_module('edge_runtime', run_name='__main__', alter_sys=True)")


def edge(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", NO_TENSORFLOW, *args], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)


@pytest.fixture(scope="module")
def enrolled(smoke_export, lfw_root, tmp_path_factory):
    """Three people enrolled from 3 photos each (a folder per person) by a TensorFlow-free process."""
    photos = tmp_path_factory.mktemp("photos")
    for name in TEST_PEOPLE[:3]:
        (photos / name).mkdir()
        for path in sorted((lfw_root / name).glob("*.jpg"))[:3]:
            shutil.copy(path, photos / name / path.name)
    gallery = photos.parent / "people.db"
    result = edge("enrol", "--models", str(smoke_export), "--gallery", str(gallery), "--folder", str(photos))
    assert result.returncode == 0, result.stderr
    return smoke_export, gallery, photos


def test_enrolment_is_stored_and_survives_the_process(enrolled):
    models, gallery, _ = enrolled
    result = edge("gallery", "--models", str(models), "--gallery", str(gallery), "list")
    assert result.returncode == 0, result.stderr
    listed = dict(line.split("\t") for line in result.stdout.splitlines() if "\t" in line)
    assert listed == {name: "3" for name in TEST_PEOPLE[:3]}
    assert gallery.stat().st_mode & 0o777 == 0o600


def test_an_enrolled_photo_is_named_and_a_stranger_is_unknown(enrolled, lfw_root):
    models, gallery, photos = enrolled
    enrolled_photo = sorted((photos / TEST_PEOPLE[1]).glob("*.jpg"))[0]
    stranger = sorted((lfw_root / TEST_PEOPLE[3]).glob("*.jpg"))[0]
    result = edge("identify", "--models", str(models), "--gallery", str(gallery), "--json", "--threshold", "0.9999",
                  str(enrolled_photo), str(stranger))
    assert result.returncode == 0, result.stderr
    known, unknown = (json.loads(line) for line in result.stdout.splitlines())
    central = max(known["faces"], key=lambda face: face["score"])
    assert central["name"] == TEST_PEOPLE[1] and central["score"] > 0.9999  # the same photo, the same embedding
    assert unknown["faces"] and all(face["name"] == "unknown" for face in unknown["faces"])
    assert set(central) == {"box", "landmarks", "confidence", "name", "score", "occluded"}


def test_erase_removes_a_person_and_errors_are_one_line(enrolled, tmp_path):
    models, gallery, _ = enrolled
    copy = tmp_path / "copy.db"
    shutil.copy(gallery, copy)
    assert edge("gallery", "--models", str(models), "--gallery", str(copy), "erase", TEST_PEOPLE[0]).returncode == 0
    listed = edge("gallery", "--models", str(models), "--gallery", str(copy), "list").stdout
    assert TEST_PEOPLE[0] not in listed and TEST_PEOPLE[1] in listed
    missing = edge("gallery", "--models", str(models), "--gallery", str(copy), "erase", "Nobody")
    bad_models = edge("identify", "--models", str(tmp_path), "--gallery", str(copy), "x.jpg")
    for result, words in ((missing, "not enrolled"), (bad_models, "manifest.json")):
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert len(errors) == 1 and words in errors[0]
