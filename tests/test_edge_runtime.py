"""The edge runtime end to end on the smoke export: enrol, identify (one photo or a batch), verify and the gallery
commands through ``python -m edge_runtime`` with TensorFlow, Keras, yaml, tqdm, matplotlib and mtcnn blocked;
the Python API; the console scripts."""
import configparser
import csv
import importlib
import io
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
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
    assert set(central) == {"box", "landmarks", "confidence", "occluded", "name", "matched", "score", "threshold",
                            "nearest", "top"}
    assert central["matched"] and central["threshold"] == 0.9999 and central["nearest"] == TEST_PEOPLE[1]
    stranger_face = unknown["faces"][0]
    assert not stranger_face["matched"] and stranger_face["nearest"] in TEST_PEOPLE[:3]  # the best even if unknown
    assert [t["score"] for t in stranger_face["top"]] == sorted((t["score"] for t in stranger_face["top"]),
                                                                reverse=True)
    assert len(stranger_face["top"]) == 3 and stranger_face["top"][0]["name"] == stranger_face["nearest"]


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


def faces_in(gallery: Path) -> dict[str, int]:
    with sqlite3.connect(gallery) as db:
        counts = dict(db.execute("SELECT p.name, count(f.id) FROM people p JOIN faces f ON f.person_id = p.id "
                                 "GROUP BY p.id").fetchall())
    db.close()
    return counts


# --- verify -------------------------------------------------------------------------------------------------

def test_verify_same_photo_is_the_same_person_and_strangers_are_not(enrolled, lfw_root):
    models, _, photos = enrolled
    photo = sorted((photos / TEST_PEOPLE[0]).glob("*.jpg"))[0]
    other = sorted((lfw_root / TEST_PEOPLE[3]).glob("*.jpg"))[0]
    same = edge("verify", "--models", str(models), str(photo), str(photo))
    assert same.returncode == 0, same.stderr
    assert same.stdout.startswith("same person (score 1.000, threshold ") and "verify)" in same.stdout
    different = edge("verify", "--models", str(models), "--threshold", "0.9999", str(photo), str(other))
    assert different.returncode == 1, different.stderr
    assert different.stdout.startswith("different people (score ") and "threshold 1.000, given)" in different.stdout
    assert different.stdout.count("occluded: ") == 2  # each face's regions


def test_verify_help_says_both_faces_are_embedded_under_the_union():
    result = edge("verify", "--help")
    assert result.returncode == 0 and "union of both faces' occluded regions" in " ".join(result.stdout.split())


def test_verify_embeds_both_faces_under_the_union_of_their_patterns(smoke_export, lfw_root):
    """The second face's features model is made to flag the mouth: both embeddings then drop the mouth."""
    from edge_runtime import Recognizer

    photo_a, photo_b = (sorted((lfw_root / person).glob("*.jpg"))[0] for person in TEST_PEOPLE[:2])
    with Recognizer(smoke_export) as recognizer:
        mouth = recognizer.regions.index("mouth")
        describe, calls = recognizer.describe, []

        def second_has_a_mouth_covered(crops):
            maps, flags = describe(crops)
            flags = np.zeros_like(flags)
            if calls:
                flags[:, mouth] = 1.0
            calls.append(len(crops))
            return maps, flags

        recognizer.describe = second_has_a_mouth_covered
        result = recognizer.verify(str(photo_a), str(photo_b))
        union = tuple(int(i == mouth) for i in range(len(recognizer.regions)))
        maps = [describe(recognizer.aligned(image, [recognizer.detect(image)[0]]))[0][0]
                for image in (cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in (photo_a, photo_b))]
        a, b = recognizer.embed(np.stack(maps), union)
        clean_a, clean_b = recognizer.embed(np.stack(maps), (0,) * len(union))
    cosine = lambda x, y: float(x @ y / np.linalg.norm(x) / np.linalg.norm(y))  # noqa: E731
    assert (result.faces[0].occluded, result.faces[1].occluded, result.occluded) == ([], ["mouth"], ["mouth"])
    assert result.score == pytest.approx(cosine(a, b), abs=1e-5)
    assert result.score != pytest.approx(cosine(clean_a, clean_b), abs=1e-4)  # the mask did change the score
    assert result.same_person == (result.score >= result.threshold)


def test_verify_falls_back_with_a_note_for_an_export_without_its_threshold(smoke_export, lfw_root, tmp_path):
    models = tmp_path / "older"
    shutil.copytree(smoke_export, models)
    manifest = json.loads((models / "manifest.json").read_text())
    del manifest["threshold"]["verify"]
    (models / "manifest.json").write_text(json.dumps(manifest))
    photo = sorted((lfw_root / TEST_PEOPLE[0]).glob("*.jpg"))[0]
    result = edge("verify", "--models", str(models), "--json", str(photo), str(photo))
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["threshold_source"] == "identification" and record["threshold"] == manifest["threshold"]["threshold"]
    notes = [line for line in result.stderr.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "has no verification threshold" in notes[0] and "export the models again" in notes[0]


# --- batch identify ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def batch(enrolled, lfw_root, tmp_path_factory):
    """``identify`` over a folder tree (photos two levels deep, a hidden folder), a loose photo and a missing one,
    with --csv, --json and --save-dir: (result, csv rows, json lines, save dir, folder, loose, missing)."""
    models, gallery, _ = enrolled
    root = tmp_path_factory.mktemp("batch")
    folder = root / "album"
    for sub, person in (("2019", TEST_PEOPLE[0]), ("2019/summer", TEST_PEOPLE[1]), (".thumbnails", TEST_PEOPLE[2])):
        (folder / sub).mkdir(parents=True)
        shutil.copy(sorted((lfw_root / person).glob("*.jpg"))[4], folder / sub / f"{person}.jpg")
    loose = sorted((lfw_root / TEST_PEOPLE[3]).glob("*.jpg"))[0]
    missing = root / "missing.jpg"
    result = edge("identify", "--models", str(models), "--gallery", str(gallery), "--json", "--csv",
                  str(root / "faces.csv"), "--save-dir", str(root / "annotated"), str(folder), str(loose),
                  str(missing))
    rows = list(csv.DictReader((root / "faces.csv").open(encoding="utf-8")))
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    return result, rows, lines, root / "annotated", folder, loose, missing


def test_batch_identify_reads_folders_recursively_and_goes_on_after_an_unreadable_file(batch):
    result, _, lines, _, folder, loose, missing = batch
    assert result.returncode == 2 and "Traceback" not in result.stderr  # one photo could not be read
    expected = [folder / "2019" / f"{TEST_PEOPLE[0]}.jpg", folder / "2019" / "summer" / f"{TEST_PEOPLE[1]}.jpg",
                loose, missing]  # sorted, the hidden folder passed over
    assert [line["image"] for line in lines] == [str(p) for p in expected]
    assert [bool(line["faces"]) for line in lines] == [True, True, True, False]
    assert lines[-1]["error"] == f"'{missing}' not found" and lines[0]["error"] is None
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: '{missing}' not found"]
    assert "\r" not in result.stderr  # no progress bar into a pipe
    assert "4 photos: " in result.stderr and "; 1 could not be read" in result.stderr


def test_batch_identify_writes_one_csv_row_per_face(batch):
    _, rows, lines, _, _, _, missing = batch
    faces = [(line["image"], i, face) for line in lines for i, face in enumerate(line["faces"])]
    assert len(rows) == len(faces) + 1  # and one error row
    for row, (image, index, face) in zip(rows, faces):
        assert (row["file"], int(row["face"]), row["name"], row["matched"]) == (
            image, index, face["name"], "true" if face["matched"] else "false")
        assert [float(row[k]) for k in ("x", "y", "w", "h")] == face["box"]
        assert float(row["score"]) == face["score"] and row["occluded"] == ";".join(face["occluded"])
    assert rows[-1]["file"] == str(missing) and rows[-1]["face"] == "" and "not found" in rows[-1]["error"]


def test_batch_identify_saves_every_readable_photo_annotated(batch):
    _, _, _, saved, folder, loose, _ = batch
    written = sorted(p.relative_to(saved) for p in saved.rglob("*") if p.is_file())
    assert written == sorted([Path(folder.name, "2019", f"{TEST_PEOPLE[0]}.jpg"),
                              Path(folder.name, "2019", "summer", f"{TEST_PEOPLE[1]}.jpg"), Path(loose.name)])
    original = cv2.imread(str(loose))
    annotated = cv2.imread(str(saved / loose.name))
    assert annotated.shape == original.shape and np.abs(annotated.astype(int) - original.astype(int)).mean() > 1


def test_progress_bar_only_on_a_terminal(capsys):
    from edge_runtime.progress import Progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal, pipe = Terminal(), io.StringIO()
    for stream in (terminal, pipe):
        with Progress(3, "identify", stream=stream) as bar:
            for i in range(3):
                bar.echo(f"photo {i}")
                bar.advance()
    assert "\r" in terminal.getvalue() and "3/3 photos" in terminal.getvalue()
    assert pipe.getvalue() == ""
    assert capsys.readouterr().out == "".join(f"photo {i}\n" for i in range(3)) * 2  # the lines, either way


# --- enrolment ----------------------------------------------------------------------------------------------

def test_enrolling_the_same_photos_again_adds_nothing(enrolled, tmp_path):
    models, original, photos = enrolled
    gallery = tmp_path / "people.db"
    shutil.copy(original, gallery)
    again = edge("enrol", "--models", str(models), "--gallery", str(gallery), "--folder", str(photos))
    assert again.returncode == 0, again.stderr
    assert f"{TEST_PEOPLE[0]}: 0 face(s) enrolled, 3 already in the gallery, 3 in all" in again.stdout
    assert faces_in(gallery) == {name: 3 for name in TEST_PEOPLE[:3]}
    copied = tmp_path / "copy of a photo.png"  # the same pixels in another file and format: the same photo
    cv2.imwrite(str(copied), cv2.imread(str(sorted((photos / TEST_PEOPLE[0]).glob("*.jpg"))[0])))
    other = edge("enrol", "--models", str(models), "--gallery", str(gallery), "--name", "Someone Else", str(copied))
    assert other.returncode == 2 and f"'{copied}' is already enrolled as '{TEST_PEOPLE[0]}' (face " in other.stderr
    assert faces_in(gallery) == {name: 3 for name in TEST_PEOPLE[:3]}


def test_an_interrupted_enrolment_resumes_where_it_stopped(smoke_export, enrolled, tmp_path, monkeypatch, capsys):
    from edge_runtime import cli
    from edge_runtime.recognizer import Recognizer

    _, _, photos = enrolled
    gallery = tmp_path / "people.db"
    monkeypatch.setattr(cli, "ENROL_BATCH", 1)  # a transaction per photo
    enrol, calls = Recognizer.enrol, []

    def interrupted_at_the_fifth_photo(self, *args, **kwargs):
        calls.append(args[0])
        if len(calls) == 5:
            raise KeyboardInterrupt
        return enrol(self, *args, **kwargs)

    command = ["enrol", "--models", str(smoke_export), "--gallery", str(gallery), "--folder", str(photos)]
    monkeypatch.setattr(Recognizer, "enrol", interrupted_at_the_fifth_photo)
    assert cli.main(command) == 130
    assert faces_in(gallery) == {TEST_PEOPLE[0]: 3, TEST_PEOPLE[1]: 1}
    monkeypatch.setattr(Recognizer, "enrol", enrol)
    capsys.readouterr()
    assert cli.main(command) == 0
    out = capsys.readouterr().out
    assert f"{TEST_PEOPLE[0]}: 0 face(s) enrolled, 3 already in the gallery" in out
    assert f"{TEST_PEOPLE[1]}: 2 face(s) enrolled, 1 already in the gallery, 3 in all" in out
    assert faces_in(gallery) == {name: 3 for name in TEST_PEOPLE[:3]}


def test_enrol_folder_takes_photos_named_after_people_beside_person_folders(smoke_export, lfw_root, tmp_path):
    known = tmp_path / "known_people"
    (known / TEST_PEOPLE[0]).mkdir(parents=True)
    shutil.copy(sorted((lfw_root / TEST_PEOPLE[0]).glob("*.jpg"))[0], known / TEST_PEOPLE[0])
    shutil.copy(sorted((lfw_root / TEST_PEOPLE[0]).glob("*.jpg"))[1], known / f"{TEST_PEOPLE[0]}.jpg")  # the same
    shutil.copy(sorted((lfw_root / TEST_PEOPLE[1]).glob("*.jpg"))[0], known / "Ada Lovelace.png")
    (known / "README.txt").write_text("who is who")
    gallery = tmp_path / "people.db"
    result = edge("enrol", "--models", str(smoke_export), "--gallery", str(gallery), "--folder", str(known))
    assert result.returncode == 0, result.stderr
    assert faces_in(gallery) == {TEST_PEOPLE[0]: 2, "Ada Lovelace": 1}
    assert f"  skipped: '{known / 'README.txt'}' is not a photo" in result.stderr


def test_gallery_faces_lists_sources_and_remove_face_drops_one(enrolled, tmp_path):
    models, original, photos = enrolled
    gallery = tmp_path / "people.db"
    shutil.copy(original, gallery)
    common = ["--models", str(models), "--gallery", str(gallery)]
    listed = edge("gallery", *common, "faces", TEST_PEOPLE[0])
    assert listed.returncode == 0, listed.stderr
    rows = [line.split("\t") for line in listed.stdout.splitlines() if "\t" in line]
    assert [Path(source) for _, source, _ in rows] == sorted((photos / TEST_PEOPLE[0]).glob("*.jpg"))
    first = rows[0][0]
    removed = edge("gallery", *common, "remove-face", first)
    assert removed.returncode == 0 and f"removed face {first} of '{TEST_PEOPLE[0]}' (2 left)" in removed.stdout
    assert faces_in(gallery)[TEST_PEOPLE[0]] == 2
    for face_id, _, _ in rows[1:]:
        assert edge("gallery", *common, "remove-face", face_id).returncode == 0
    assert TEST_PEOPLE[0] not in edge("gallery", *common, "list").stdout  # no faces left: no longer enrolled
    gone = edge("gallery", *common, "remove-face", first)
    assert gone.returncode == 2 and f"error: there is no face {first}" in gone.stderr


# --- the API, the console scripts, LiteRT's log line --------------------------------------------------------

def test_recognizer_api_names_and_verifies(enrolled, lfw_root):
    from edge_runtime import Recognizer

    models, gallery, photos = enrolled
    photo = sorted((photos / TEST_PEOPLE[1]).glob("*.jpg"))[0]
    with Recognizer(models, gallery=gallery, threshold=0.9999, top_k=2) as recognizer:
        best = max(recognizer.recognize(str(photo)), key=lambda face: face.score)
        same = recognizer.verify(str(photo), cv2.cvtColor(cv2.imread(str(photo)), cv2.COLOR_BGR2RGB))
    assert (best.name, best.matched, best.nearest, len(best.top)) == (TEST_PEOPLE[1], True, TEST_PEOPLE[1], 2)
    assert same.same_person and same.threshold_source == "given" and same.score > 0.9999


def test_console_scripts_point_at_the_three_clis():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    scripts = dict(line.split(" = ") for line in config["options.entry_points"]["console_scripts"].split("\n") if line)
    assert set(scripts) == {"landmask", "landmask-train", "landmask-export"}
    for target in scripts.values():
        module, function = target.split(":")
        assert callable(getattr(importlib.import_module(module), function)), target
    installed = shutil.which("landmask", path=str(Path(sys.executable).parent))
    if installed:  # after pip install -e .: the script runs the edge CLI
        result = subprocess.run([installed, "verify", "--help"], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0 and "usage: landmask verify" in result.stdout


def test_litert_info_line_is_hidden_unless_verbose(enrolled, lfw_root):
    models, gallery, _ = enrolled
    photo = str(sorted((lfw_root / TEST_PEOPLE[0]).glob("*.jpg"))[0])
    quiet = edge("identify", "--models", str(models), "--gallery", str(gallery), photo)
    verbose = edge("identify", "--models", str(models), "--gallery", str(gallery), "--verbose", photo)
    assert quiet.returncode == verbose.returncode == 0
    assert "XNNPACK" not in quiet.stderr and "INFO:" not in quiet.stderr
    assert "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." in verbose.stderr
