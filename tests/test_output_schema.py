"""The runtime's JSON output against its published schema (docs/output.schema.json): what ``identify --json``,
``camera --headless`` and ``verify --json`` print validates, and the schema is strict enough to catch drift."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import TEST_PEOPLE

jsonschema = pytest.importorskip("jsonschema")

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((ROOT / "docs" / "output.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def edge(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge_runtime", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def records(result: subprocess.CompletedProcess) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def assert_valid(record: dict) -> None:
    errors = sorted(VALIDATOR.iter_errors(record), key=str)
    assert not errors, [error.message for error in errors]


@pytest.fixture(scope="module")
def outputs(smoke_export, lfw_root, tmp_path_factory) -> dict[str, list[dict]]:
    """The JSON lines of each command on real photos: identify with and without a gallery of two people (one
    photo unreadable), camera on a short video, verify."""
    root = tmp_path_factory.mktemp("schema")
    photos = [sorted((lfw_root / person).glob("*.jpg"))[0] for person in TEST_PEOPLE[:2]]
    for name, photo in (("alice", photos[0]), ("carol", sorted((lfw_root / TEST_PEOPLE[2]).glob("*.jpg"))[0])):
        (root / "people" / name).mkdir(parents=True)
        shutil.copy(photo, root / "people" / name)
    gallery = root / "people.db"
    assert edge("enrol", "--models", smoke_export, "--gallery", gallery, "--folder", root / "people").returncode == 0
    broken = root / "broken.jpg"
    broken.write_bytes(photos[1].read_bytes()[:500])
    video = root / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (320, 260))
    for i in range(4):
        canvas = np.full((260, 320, 3), 110, np.uint8)
        canvas[5:255, 10 + 5 * i:260 + 5 * i] = cv2.imread(str(photos[0]))
        writer.write(canvas)
    writer.release()
    runs = {"identify": edge("identify", "--models", smoke_export, "--gallery", gallery, "--json", "--top-k", "2",
                             *photos, broken),
            "identify_without_gallery": edge("identify", "--models", smoke_export, "--json", photos[0]),
            "camera": edge("camera", "--models", smoke_export, "--gallery", gallery, "--headless", "--source", video),
            "verify": edge("verify", "--models", smoke_export, "--json", *photos)}
    for name, result in runs.items():
        assert "Traceback" not in result.stderr and result.returncode in (0, 1, 2), (name, result.stderr)
    return {name: records(result) for name, result in runs.items()}


def test_the_schema_is_a_valid_json_schema():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("command", ["identify", "identify_without_gallery", "camera", "verify"])
def test_cli_output_validates_against_the_schema(outputs, command):
    lines = outputs[command]
    assert lines
    for record in lines:
        assert_valid(record)
        assert record["schema_version"] == 1


def test_identify_lines_cover_faces_with_and_without_a_match_and_an_error(outputs):
    photo_a, photo_b, broken = outputs["identify"]
    assert any(face["matched"] for face in photo_a["faces"]) and photo_a["error"] is None
    assert broken["faces"] == [] and broken["error"].startswith(f"'{broken['image']}' is ")  # why it is unreadable
    assert all(len(face["top"]) == 2 for face in photo_a["faces"] + photo_b["faces"])
    (alone,) = outputs["identify_without_gallery"]
    assert all(face["score"] is None and face["nearest"] is None and face["top"] == [] for face in alone["faces"])


def test_camera_and_verify_lines_carry_their_own_fields(outputs):
    frames = outputs["camera"]
    assert [f["frame"] for f in frames] == list(range(4)) and {f["type"] for f in frames} == {"frame"}
    (verification,) = outputs["verify"]
    assert verification["type"] == "verification" and len(verification["faces"]) == 2
    assert verification["same_person"] == (verification["score"] >= verification["threshold"])


@pytest.mark.parametrize("change", ["extra key", "box of 3", "score above 1", "no schema_version", "wrong version",
                                    "verify face with a name"])
def test_the_schema_catches_drift(outputs, change):
    photo = json.loads(json.dumps(outputs["identify"][0]))
    verification = json.loads(json.dumps(outputs["verify"][0]))
    face = photo["faces"][0]
    record = photo
    if change == "extra key":
        face["age"] = 30
    elif change == "box of 3":
        face["box"] = face["box"][:3]
    elif change == "score above 1":
        face["score"] = 1.5
    elif change == "no schema_version":
        del photo["schema_version"]
    elif change == "wrong version":
        photo["schema_version"] = 2
    else:
        verification["faces"][0]["name"] = "Alice"
        record = verification
    assert not VALIDATOR.is_valid(record)
