"""Whatever users feed the CLIs and the Python API: one clear line, exit status 2, no traceback, nothing lost.

One test (or parametrized case) per row of docs/errors.md. CLIs run in subprocesses (``sys.executable -m ...``);
the edge rows reuse the session's ``smoke_export``. Cases already covered elsewhere are not repeated here:
test_train_cli.py (missing/empty data folder, unknown profile/stage, bad --set), test_export.py (missing and
unfinished runs, manifest sha256/keys through the Python API).
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import sqlite3
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from keras_landmask.core.images import MAX_PIXELS, ImageError, read_image
from keras_landmask.core.manifest import sha256_file

ROOT = Path(__file__).resolve().parents[1]
PERSON, OTHER = "Adrien_Brody", "Abdullah_Gul"  # LFW people with a clear frontal face in their first photos


def cases(names: str, rows: list[tuple]):
    """``pytest.mark.parametrize`` with each case named by its first value only."""
    return pytest.mark.parametrize(names, rows, ids=[str(row[0]) for row in rows])


def _run(*command: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *command], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def edge(*args: str) -> subprocess.CompletedProcess:
    return _run("-m", "edge_runtime", *map(str, args))


def train(*args: str) -> subprocess.CompletedProcess:
    return _run("-m", "keras_landmask.train", *map(str, args))


def export(*args: str) -> subprocess.CompletedProcess:
    return _run(str(ROOT / "tools" / "export_tflite.py"), *map(str, args))


def error_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def assert_one_error(result: subprocess.CompletedProcess, *words: str) -> str:
    """Exit status 2, no traceback, exactly one ``error:`` line, holding every one of ``words``."""
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = error_lines(result)
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def lfw_photo(lfw_root: Path, person: str = PERSON, index: int = 0) -> Path:
    return sorted((lfw_root / person).glob("*.jpg"))[index]


def bgr(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_COLOR)


def png_bomb(width: int, height: int) -> bytes:
    """A valid 8x8 PNG whose IHDR claims ``width x height`` pixels (CRC fixed, so decoders trust it)."""
    data = bytearray(cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    return bytes(data)


def on_grey(face: np.ndarray, size: int, frame=(480, 640), at=(200, 300)) -> np.ndarray:
    """``face`` scaled to ``size`` pixels square, pasted on a grey frame."""
    canvas = np.full((*frame, 3), 128, np.uint8)
    canvas[at[0]:at[0] + size, at[1]:at[1] + size] = cv2.resize(face, (size, size), interpolation=cv2.INTER_AREA)
    return canvas


@pytest.fixture(scope="module")
def photos(lfw_root, tmp_path_factory) -> dict[str, Path]:
    """Every kind of photo file the image rows use, by case name."""
    folder = tmp_path_factory.mktemp("bad_photos")
    face = lfw_photo(lfw_root)
    image = bgr(face)
    jpeg, png = face.read_bytes(), cv2.imencode(".png", image)[1].tobytes()
    tight = image[60:190, 60:190]  # the face itself, about 130 px
    files = {
        "good.jpg": jpeg,
        "zero.jpg": b"",
        "cut.jpg": jpeg[:len(jpeg) // 2],
        "cut.png": png[:len(png) // 2],
        "corrupt.jpg": np.random.default_rng(0).bytes(5000),
        "bomb.png": png_bomb(100_000, 100_000),
        "bomb_under_opencv_limit.png": png_bomb(30_000, 30_000),  # 0.9 gigapixel: OpenCV's own limit is 2^30
        "tiny.png": cv2.imencode(".png", image[:10, :10])[1].tobytes(),
        "grey.png": cv2.imencode(".png", np.full((200, 200, 3), 128, np.uint8))[1].tobytes(),
        "gray_face.png": cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))[1].tobytes(),
        "rgba_face.png": cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_BGR2BGRA))[1].tobytes(),
        "16bit_face.png": cv2.imencode(".png", image.astype(np.uint16) * 257)[1].tobytes(),
        "face_15px.png": cv2.imencode(".png", on_grey(tight, 15))[1].tobytes(),
        "face_12px.png": cv2.imencode(".png", on_grey(tight, 12))[1].tobytes(),
        "two_faces.jpg": cv2.imencode(".jpg", np.hstack([image, bgr(lfw_photo(lfw_root, OTHER))]))[1].tobytes(),
        "notes.txt": b"not a photo\n",
        "report.pdf": b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n",
    }
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return {name: folder / name for name in files}


def copy_export(smoke_export: Path, target: Path) -> Path:
    shutil.copytree(smoke_export, target)
    return target


def reseal(folder: Path, model: str) -> None:
    """Update ``model``'s sha256 in the manifest to its (replaced) file, so only the model itself is wrong."""
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["models"][model]["sha256"] = sha256_file(folder / manifest["models"][model]["file"])
    (folder / "manifest.json").write_text(json.dumps(manifest))


def gallery_people(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return dict(db.execute("SELECT p.name, count(f.id) FROM people p LEFT JOIN faces f ON f.person_id = p.id "
                               "GROUP BY p.id").fetchall())


# --- images: read_image (the Python API) -----------------------------------------------------------------

@cases("case, message", [
    ("zero.jpg", "is empty (0 bytes)"),
    ("cut.jpg", "is cut short (a JPEG without its end marker"),
    ("cut.png", "is cut short (a PNG without its end chunk"),
    ("corrupt.jpg", "is not a readable image (damaged, or not JPEG/PNG/BMP/WebP/TIFF/GIF)"),
    ("tiny.png", "is 10x10 pixels; faces need at least 24 pixels per side"),
    ("notes.txt", "is not a readable image"),
    ("missing.jpg", "not found"),
])
def test_read_image_refuses_unusable_files_with_the_reason(photos, case, message):
    path = photos.get(case, photos["good.jpg"].parent / case)
    with pytest.raises(ImageError) as caught:
        read_image(path)
    assert str(caught.value).startswith(f"'{path}' {message}")


def test_read_image_refuses_folders_and_huge_files_without_reading_them(tmp_path):
    with pytest.raises(ImageError, match=f"^'{tmp_path}' is a folder, not a photo$"):
        read_image(tmp_path)
    huge = tmp_path / "disk.jpg"
    with huge.open("wb") as handle:  # sparse: 300 MiB claimed, nothing written
        handle.truncate(300 << 20)
    with pytest.raises(ImageError, match=r"is 300 MiB, too large for a photo \(limit 256 MiB\)"):
        read_image(huge)


@cases("case, claimed", [("bomb.png", "100000x100000"),
                                           ("bomb_under_opencv_limit.png", "30000x30000")])
def test_decompression_bomb_is_refused_from_its_header_without_allocating(photos, case, claimed):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    start = time.perf_counter()
    with pytest.raises(ImageError, match=f"claims {claimed} pixels, more than the {MAX_PIXELS // 10**6}-megapixel"):
        read_image(photos[case])
    assert time.perf_counter() - start < 1.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100 * 1024  # far below 2.7+ GB


@pytest.mark.parametrize("case", ["gray_face.png", "rgba_face.png", "16bit_face.png"])
def test_grayscale_rgba_and_16_bit_photos_become_rgb_uint8(photos, case):
    image = read_image(photos[case])
    reference = read_image(photos["good.jpg"])
    assert image.dtype == np.uint8 and image.shape == reference.shape
    if case == "gray_face.png":
        assert (image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all()
    else:  # same pixels up to JPEG → PNG round trip (exact) and 16 → 8 bit (exact for x * 257)
        assert np.abs(image.astype(int) - reference.astype(int)).max() <= 1


# --- edge runtime CLI: identify ------------------------------------------------------------------------------

IDENTIFY_CASES = ["good.jpg", "zero.jpg", "cut.jpg", "cut.png", "corrupt.jpg", "bomb.png", "tiny.png", "grey.png",
                  "gray_face.png", "rgba_face.png", "16bit_face.png", "face_15px.png", "face_12px.png",
                  "two_faces.jpg", "missing.jpg"]


@pytest.fixture(scope="module")
def identified(smoke_export, photos):
    """One ``identify`` (no gallery) over every case (the runtime goes on after a bad photo): (result, {case: its
    lines}, {case: path})."""
    paths = {c: photos.get(c, photos["good.jpg"].parent / c) for c in IDENTIFY_CASES}
    result = edge("identify", "--models", smoke_export, *paths.values())
    lines = {c: [line for line in (result.stdout + "\n" + result.stderr).splitlines() if str(p) in line]
             for c, p in paths.items()}
    return result, lines, paths


def test_identify_reports_every_readable_photo_and_exits_2_if_any_was_not(identified):
    result, lines, _ = identified
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(error_lines(result)) == 7  # one per unreadable photo, nothing else
    assert lines["good.jpg"] and not any(line.startswith("error:") for line in lines["good.jpg"])


@cases("case, message", [
    ("zero.jpg", "is empty (0 bytes)"),
    ("cut.jpg", "is cut short (a JPEG"),
    ("cut.png", "is cut short (a PNG"),
    ("corrupt.jpg", "is not a readable image"),
    ("bomb.png", "claims 100000x100000 pixels"),
    ("tiny.png", "is 10x10 pixels"),
    ("missing.jpg", "not found"),
])
def test_identify_gives_one_error_line_per_unusable_photo(identified, case, message):
    _, lines, _ = identified
    assert len(lines[case]) == 1 and lines[case][0].startswith("error: '") and message in lines[case][0]


@cases("case, faces", [
    ("gray_face.png", 1), ("rgba_face.png", 1), ("16bit_face.png", 1),  # converted, the face found
    ("grey.png", 0),  # no face: said so, not an error
    ("two_faces.jpg", 2),  # every face reported
    ("face_15px.png", 1),  # MTCNN still finds a face ~15 px across ...
    ("face_12px.png", 0),  # ... but not one 12 px across
])
def test_identify_finds_the_faces_there_are(identified, case, faces):
    _, lines, paths = identified
    if faces == 0:
        assert lines[case] == [f"{paths[case]}: no face found"]
    else:
        assert len(lines[case]) == faces and all(": unknown (nobody enrolled" in line for line in lines[case]), \
            lines[case]


# --- edge runtime CLI: enrol ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def enrolled_mixed(smoke_export, photos, tmp_path_factory):
    """``enrol --folder`` over one person with 2 good photos and every kind of bad file, a person folder with
    only documents and an empty person folder: (result, gallery)."""
    root = tmp_path_factory.mktemp("enrol_mixed")
    person = root / "photos" / PERSON
    person.mkdir(parents=True)
    for case in ("zero.jpg", "cut.jpg", "cut.png", "corrupt.jpg", "tiny.png", "grey.png", "face_15px.png",
                 "notes.txt", "report.pdf"):
        shutil.copy(photos[case], person / case)
    shutil.copy(photos["good.jpg"], person / "good_1.jpg")
    shutil.copy(photos["gray_face.png"], person / "good_2.png")
    (root / "photos" / "Docs_Only").mkdir()
    for case in ("notes.txt", "report.pdf"):
        shutil.copy(photos[case], root / "photos" / "Docs_Only" / case)
    (root / "photos" / "Empty_Person").mkdir()
    (person / ".DS_Store").write_bytes(b"\0")  # hidden: ignored without a line
    gallery = root / "people.db"
    return edge("enrol", "--models", smoke_export, "--gallery", gallery, "--folder", root / "photos"), gallery


def test_enrol_skips_what_it_cannot_use_and_keeps_the_rest(enrolled_mixed):
    result, gallery = enrolled_mixed
    assert result.returncode == 0 and "Traceback" not in result.stderr and not error_lines(result)
    assert f"{PERSON}: 2 face(s) enrolled" in result.stdout
    assert "1 people, 2 faces; 11 photo(s) skipped" in result.stdout
    assert gallery_people(gallery) == {PERSON: 2}
    assert ".DS_Store" not in result.stderr


@cases("file, message", [
    ("notes.txt", "is not a photo (only .jpg, .jpeg, .png"),
    ("report.pdf", "is not a photo"),
    ("zero.jpg", "is empty (0 bytes)"),
    ("cut.jpg", "is cut short (a JPEG"),
    ("cut.png", "is cut short (a PNG"),
    ("corrupt.jpg", "is not a readable image"),
    ("tiny.png", "is 10x10 pixels"),
    ("grey.png", "no face found in"),
    ("face_15px.png", "px tall, too small to enrol (at least 40 px: use a closer or larger photo)"),
])
def test_enrol_says_why_each_file_was_skipped(enrolled_mixed, file, message):
    result, _ = enrolled_mixed
    lines = [line for line in result.stderr.splitlines() if f"{PERSON}/{file}'" in line]
    assert len(lines) == 1 and lines[0].startswith("  skipped: ") and message in lines[0], result.stderr


@pytest.mark.parametrize("person", ["Docs_Only", "Empty_Person"])
def test_enrol_says_a_person_folder_without_photos_is_skipped(enrolled_mixed, person):
    result, _ = enrolled_mixed
    assert f"  skipped: '{person}' has no photos" in result.stderr


def test_enrol_with_no_usable_photo_at_all_is_an_error(smoke_export, photos, tmp_path):
    folder = tmp_path / "photos" / "Docs_Only"
    folder.mkdir(parents=True)
    for case in ("notes.txt", "grey.png", "cut.jpg"):
        shutil.copy(photos[case], folder / case)
    result = edge("enrol", "--models", smoke_export, "--gallery", tmp_path / "people.db",
                  "--folder", tmp_path / "photos")
    assert_one_error(result, "error: no face enrolled: none of the 3 file(s) given held a usable face")
    assert result.stderr.count("  skipped: ") == 3
    assert gallery_people(tmp_path / "people.db") == {}


@cases("setup, message", [
    ("missing", "folder '{folder}' not found"),
    ("empty", "'{folder}' has no photos and no sub-folders; make one sub-folder per person, named after them, or "
              "name each photo after its person"),
    ("documents_only", "'{folder}' has no photos and no sub-folders"),
])
def test_enrol_folder_missing_or_without_people(smoke_export, photos, tmp_path, setup, message):
    folder = tmp_path / "photos"
    if setup != "missing":
        folder.mkdir()
    if setup == "documents_only":
        shutil.copy(photos["notes.txt"], folder / "notes.txt")
    result = edge("enrol", "--models", smoke_export, "--gallery", tmp_path / "people.db", "--folder", folder)
    assert_one_error(result, message.format(folder=folder))


def test_enrol_checks_every_folder_name_before_enrolling_anyone(smoke_export, photos, tmp_path):
    for name in (PERSON, "AC\\DC"):
        (tmp_path / "photos" / name).mkdir(parents=True)
        shutil.copy(photos["good.jpg"], tmp_path / "photos" / name / "a.jpg")
    result = edge("enrol", "--models", smoke_export, "--gallery", tmp_path / "people.db",
                  "--folder", tmp_path / "photos")
    assert_one_error(result, "AC\\DC", "cannot contain path separators", "(rename the folder)")
    assert gallery_people(tmp_path / "people.db") == {}  # all or nothing: no half-enrolled folder


def test_enrol_takes_the_central_face_of_a_group_photo(smoke_export, lfw_root, tmp_path):
    # [other | person | grey]: the person's face is the one at the centre of the photo.
    grey = np.full((250, 250, 3), 128, np.uint8)
    group = np.hstack([bgr(lfw_photo(lfw_root, OTHER)), bgr(lfw_photo(lfw_root)), grey])
    path = tmp_path / "group.png"
    cv2.imwrite(str(path), group)
    gallery = tmp_path / "people.db"
    assert edge("enrol", "--models", smoke_export, "--gallery", gallery, "--name", "Central", path).returncode == 0
    result = edge("identify", "--models", smoke_export, "--gallery", gallery, "--json", "--threshold", "0.9999", path)
    assert result.returncode == 0, result.stderr
    faces = json.loads(result.stdout)["faces"]
    assert len(faces) == 2
    central = min(faces, key=lambda f: abs(f["box"][0] + f["box"][2] / 2 - group.shape[1] / 2))
    side = next(f for f in faces if f is not central)
    assert central["name"] == "Central" and central["score"] > 0.9999  # the very crop that was enrolled
    assert side["name"] == "unknown" and side["score"] < central["score"]


# --- names through enrol --name -----------------------------------------------------------------------------

@cases("name, message", [
    ("team/alice", "a name cannot contain path separators '/' or '\\' (found '/')"),
    ("..\\alice", "a name cannot contain path separators"),
    ("   ", "a name cannot be empty"),
    ("\u200b\u200d", "a name needs at least one visible letter, digit or symbol"),
])
def test_enrol_refuses_names_it_cannot_store_safely(smoke_export, photos, tmp_path, name, message):
    gallery = tmp_path / "people.db"
    assert_one_error(edge("enrol", "--models", smoke_export, "--gallery", gallery, "--name", name, photos["good.jpg"]),
                     message)
    assert gallery_people(gallery) == {}


@pytest.mark.parametrize("name", ["Zoë Ångström-李小龍 ☃", "Robert'); DROP TABLE people;--",
                                  "O'Brien \"Bob\" %_*"])
def test_enrol_stores_unicode_and_sql_names_verbatim(smoke_export, photos, tmp_path, name):
    gallery = tmp_path / "people.db"
    result = edge("enrol", "--models", smoke_export, "--gallery", gallery, "--name", name, photos["good.jpg"])
    assert result.returncode == 0, result.stderr
    assert gallery_people(gallery) == {name: 1}
    listed = edge("gallery", "--models", smoke_export, "--gallery", gallery, "list")
    assert f"{name}\t1" in listed.stdout.splitlines()


# --- models folder -----------------------------------------------------------------------------------------

def test_missing_models_folder(tmp_path, photos):
    assert_one_error(edge("identify", "--models", tmp_path / "nowhere", "--gallery", tmp_path / "people.db",
                          photos["good.jpg"]), f"models folder '{tmp_path / 'nowhere'}' not found")


@cases("damage, message", [
    ("random_features", "'features.tflite' is not a loadable TFLite model"),
    ("pnet_as_head", "'head.tflite' is not the model its manifest describes (inputs ['inputs'], expected "
                     "['feature_map', 'occluded_regions'])"),
    ("rnet_as_onet", "'onet.tflite' is not the model its manifest describes (input 'inputs' is [-1, 24, 24, 3]"),
    ("sha_mismatch", "does not match its sha256 in the manifest"),
    ("missing_key", "lacks threshold; export the models again"),
    ("not_json", "is not valid JSON"),
    ("missing_model_file", "is missing; copy the whole export folder"),
])
def test_damaged_or_wrong_models_fail_at_load_with_one_line(smoke_export, photos, tmp_path, damage, message):
    folder = copy_export(smoke_export, tmp_path / "models")
    manifest = folder / "manifest.json"
    if damage == "random_features":
        (folder / "features.tflite").write_bytes(np.random.default_rng(1).bytes(50_000))
        reseal(folder, "features")
    elif damage == "pnet_as_head":
        shutil.copy(folder / "pnet.tflite", folder / "head.tflite")
        reseal(folder, "head")
    elif damage == "rnet_as_onet":
        shutil.copy(folder / "rnet.tflite", folder / "onet.tflite")
        reseal(folder, "onet")
    elif damage == "sha_mismatch":
        content = bytearray((folder / "head.tflite").read_bytes())
        content[-1] ^= 0xFF
        (folder / "head.tflite").write_bytes(bytes(content))
    elif damage == "missing_key":
        manifest.write_text(json.dumps({k: v for k, v in json.loads(manifest.read_text()).items() if k != "threshold"}))
    elif damage == "not_json":
        manifest.write_text(manifest.read_text()[:100])
    else:
        (folder / "rnet.tflite").unlink()
    assert_one_error(edge("identify", "--models", folder, "--gallery", tmp_path / "people.db", photos["good.jpg"]),
                     message)


# --- gallery file -------------------------------------------------------------------------------------------

@cases("content, message", [
    ("random", "is not a gallery or is damaged (file is not a database); move it away and enrol again"),
    ("newer", "was written by a newer keras-landmask (schema 7); update keras-landmask"),
    ("other_sqlite", "is an SQLite file but not a gallery; pass another path"),
])
def test_corrupt_or_foreign_gallery_is_refused_and_left_untouched(smoke_export, tmp_path, content, message):
    gallery = tmp_path / "people.db"
    if content == "random":
        gallery.write_bytes(np.random.default_rng(2).bytes(20_000))
    else:
        with sqlite3.connect(gallery) as db:
            db.execute("CREATE TABLE notes (text TEXT)")
            db.execute("INSERT INTO notes VALUES ('keep me')")
            if content == "newer":
                db.execute("PRAGMA user_version = 7")
        db.close()
    before = gallery.read_bytes()
    assert_one_error(edge("gallery", "--models", smoke_export, "--gallery", gallery, "list"), message)
    if content == "other_sqlite":  # the file is switched to WAL before it is found not to be a gallery
        with sqlite3.connect(gallery) as db:
            assert db.execute("SELECT text FROM notes").fetchall() == [("keep me",)]
        db.close()
    else:
        assert gallery.read_bytes() == before  # nothing lost, not a byte changed


def test_disk_full_during_enrolment_keeps_earlier_people(smoke_export, lfw_root, tmp_path, monkeypatch, capsys):
    """SQLite's own SQLITE_FULL ("database or disk is full"), raised by capping the file at its current size
    (``PRAGMA max_page_count``) when the second person is written."""
    from edge_runtime import cli
    from edge_runtime.gallery import Gallery

    for name in (OTHER, PERSON, "Alvaro_Uribe"):  # enrolled in this (sorted) order
        (tmp_path / "photos" / name).mkdir(parents=True)
        for path in sorted((lfw_root / name).glob("*.jpg"))[:2]:
            shutil.copy(path, tmp_path / "photos" / name)
    original, calls = Gallery.enrol, []

    def enrol_until_full(self, *args, **kwargs):
        calls.append(args[0])
        if len(calls) == 2:
            pages = self._connection.execute("PRAGMA page_count").fetchone()[0]
            self._connection.execute(f"PRAGMA max_page_count = {pages}")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Gallery, "enrol", enrol_until_full)
    gallery = tmp_path / "people.db"
    code = cli.main(["enrol", "--models", str(smoke_export), "--gallery", str(gallery),
                     "--folder", str(tmp_path / "photos")])
    out, err = capsys.readouterr()
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in err
    assert errors[0].startswith(f"error: '{PERSON}' was not enrolled: could not write gallery '{gallery}' "
                                "(database or disk is full); nothing of this change was saved: free disk space")
    assert f"{OTHER}: 2 face(s) enrolled" in out  # acknowledged ...
    assert gallery_people(gallery) == {OTHER: 2}  # ... and still there, the file intact


# --- training CLI -------------------------------------------------------------------------------------------

def _people_folder(root: Path, make_file) -> Path:
    for person in ("A_One", "B_Two", "C_Three", "D_Four", "E_Five", "F_Six"):  # the smoke profile asks for 6
        (root / person).mkdir(parents=True)
        for i in range(10):
            make_file(root / person, i)
    return root


def test_train_on_person_folders_of_documents_says_so(tmp_path, masks_dir):
    data = _people_folder(tmp_path / "data", lambda folder, i: (folder / f"scan_{i}.pdf").write_bytes(b"%PDF-1.4\n"))
    result = train("--data", data, "--runs-dir", tmp_path / "runs", "--cache-dir", tmp_path / "cache", "--profile",
                   "smoke", "--stages", "prepare", "--set", f"occlusion.masks_dir={masks_dir}")
    assert_one_error(result, f"data folder '{data}' holds no person folders with images (6 sub-folder(s) hold only "
                             "files that are not JPEG/PNG/BMP/WebP/TIFF/GIF images)")


def test_train_on_unreadable_jpegs_fails_clearly_before_loading_a_model(tmp_path, masks_dir):
    data = _people_folder(tmp_path / "data",
                          lambda folder, i: (folder / f"{folder.name}_{i:04d}.jpg").write_bytes(os.urandom(3000)))
    result = train("--data", data, "--runs-dir", tmp_path / "runs", "--cache-dir", tmp_path / "cache", "--profile",
                   "smoke", "--stages", "prepare", "--no-progress", "--set", f"occlusion.masks_dir={masks_dir}",
                   "--set", "data.unknown_people=0")  # no single-photo folder beside this data
    assert_one_error(result, "only 0 of 40 images could be read (40 damaged or not JPEG/PNG, e.g. '",
                     "leaving 0 people with images in the train split; recognition needs at least 2: replace or "
                     "remove")


def test_prepare_skips_and_lists_unreadable_images(lfw_root, photos, tmp_path):
    """``build_faceset`` (the prepare stage's reader) keeps readable photos and returns the others, which the
    stage prints and counts in summary.json (``n_unreadable``, ``unreadable``)."""
    from keras_landmask.core.align import Detection
    from keras_landmask.data.build import build_faceset
    from keras_landmask.data.lfw import Sample

    samples = []
    for label, person in enumerate((PERSON, OTHER)):
        for i in range(3):
            samples.append(Sample(lfw_photo(lfw_root, person, i), person, label, "train"))
    bad = [photos[c] for c in ("zero.jpg", "cut.jpg", "cut.png", "corrupt.jpg", "bomb.png", "notes.txt")]
    samples += [Sample(path, PERSON, 0, "train") for path in bad]

    class FixedFace:  # a face box in the middle of each 250x250 LFW photo
        def detect(self, images):
            marks = np.array([[100, 110], [150, 110], [125, 140], [105, 165], [145, 165]], np.float32)
            return [Detection(np.array([70, 70, 110, 130], np.float32), marks, 0.99, 1) for _ in images]

    faces, unreadable, _ = build_faceset(samples, [PERSON, OTHER], "similarity", 128, 96, tmp_path, FixedFace,
                                         progress=False)
    assert len(faces) == 6 and sorted(unreadable) == sorted(map(str, bad))


# --- export CLI ---------------------------------------------------------------------------------------------

@pytest.fixture
def run_copy(smoke_finished, tmp_path):
    """The files export reads from a finished run, copied so one can be damaged."""
    run = tmp_path / "run"
    for name in ("config.yaml", "prepare/faces.npz", "prepare/layouts.json", "base/model.keras",
                 "segmenter/model.keras", "dictionary/LM2.npz"):
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(smoke_finished / name, run / name)
    return run


@cases("damaged, message", [
    ("base/model.keras", "is not a keras-landmask recognizer: not a readable model (damaged, or not a .keras "
                         "file); retrain it: rerun the 'base' stage with --force"),
    ("segmenter/model.keras", "is not a keras-landmask segmenter: not a readable model (damaged, or not a .keras "
                              "file); retrain it: rerun the 'segmenter' stage with --force"),
    ("dictionary/LM2.npz", "is not a readable mask dictionary"),
])
def test_export_of_a_damaged_model_file_says_to_retrain(run_copy, tmp_path, damaged, message):
    pytest.importorskip("tensorflow")
    (run_copy / damaged).write_bytes(np.random.default_rng(3).bytes(4000))
    result = export("--run", run_copy, "--out", tmp_path / "out")
    assert_one_error(result, f"'{run_copy / damaged}' {message}")
    assert not (tmp_path / "out").exists()  # nothing written before the inputs are known good


def test_export_to_a_file_instead_of_a_folder(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "out").write_text("my notes")
    assert_one_error(export("--run", tmp_path / "run", "--out", tmp_path / "out"),
                     f"--out '{tmp_path / 'out'}' is a file; give a folder")
    assert (tmp_path / "out").read_text() == "my notes"


# --- issue #16: defects of the edge runtime and export CLIs -------------------------------------------------

@pytest.fixture(scope="module")
def gallery_of_one(smoke_export, lfw_root, tmp_path_factory) -> Path:
    """A gallery with PERSON enrolled from one photo, through the API; no embedding cached yet."""
    from edge_runtime import Recognizer

    path = tmp_path_factory.mktemp("gallery_of_one") / "people.db"
    with Recognizer(smoke_export, gallery=path, create_gallery=True) as recognizer:
        assert recognizer.enrol(PERSON, [lfw_photo(lfw_root)]).added == 1
    return path


@pytest.mark.parametrize("command", ["identify", "camera", "gallery list"])
def test_a_mistyped_gallery_is_an_error_and_no_file_is_made(smoke_export, photos, tmp_path, command):
    typo = tmp_path / "peple.db"
    tail = {"identify": [photos["good.jpg"]], "camera": ["--headless", "--source", photos["good.jpg"]],
            "gallery list": []}[command]
    result = edge(*command.split(), "--models", smoke_export, "--gallery", typo, *tail)
    assert_one_error(result, f"gallery '{typo}' not found; check the path, or enrol people first")
    assert result.stdout == "" and not typo.exists()


def test_a_mistyped_gallery_in_the_api_is_an_error_and_no_file_is_made(smoke_export, tmp_path):
    from edge_runtime import Recognizer
    from edge_runtime.gallery import GalleryError

    with pytest.raises(GalleryError, match="not found; check the path"):
        Recognizer(smoke_export, gallery=tmp_path / "peple.db")
    assert not (tmp_path / "peple.db").exists()


def test_a_read_only_gallery_still_identifies_and_says_so_once(smoke_export, gallery_of_one, lfw_root, tmp_path,
                                                              monkeypatch, capsys):
    """SQLite opens a file it may not write read-only; ``mode=ro`` does the same for root, whom permissions do
    not stop."""
    from edge_runtime import cli

    gallery = tmp_path / "read-only.db"
    shutil.copy(gallery_of_one, gallery)
    before = gallery.read_bytes()
    connect = sqlite3.connect
    monkeypatch.setattr(sqlite3, "connect", lambda path, **options: connect(f"file:{path}?mode=ro", uri=True,
                                                                             **options))
    probes = [lfw_photo(lfw_root, PERSON, 1), lfw_photo(lfw_root, OTHER), photos_with_a_mouth_band(lfw_root, tmp_path)]
    code = cli.main(["identify", "--models", str(smoke_export), "--gallery", str(gallery), *map(str, probes)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert all(f"{probe}: " in out for probe in probes) and "(score " in out
    notes = [line for line in err.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and f"gallery '{gallery}' is read-only" in notes[0] and not error_lines_of(err)
    assert gallery.read_bytes() == before


def photos_with_a_mouth_band(lfw_root: Path, folder: Path) -> Path:
    """An LFW photo with a white band over the mouth (another occlusion pattern for the segmenter, as likely)."""
    image = bgr(lfw_photo(lfw_root, PERSON, 2))
    image[150:185] = 255
    path = folder / "mouth_band.png"
    cv2.imwrite(str(path), image)
    return path


def error_lines_of(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error:")]


@pytest.mark.parametrize("value", ["5", "-5", "nan", "inf", "1.01"])
def test_threshold_outside_minus_one_to_one_is_refused(photos, value):
    result = edge("identify", "--models", "unused", "--threshold", value, photos["good.jpg"])
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "error: argument --threshold: a threshold is a cosine similarity, from -1 to 1" in result.stderr


def test_threshold_in_the_api_is_range_checked(smoke_export):
    from edge_runtime import Recognizer

    for value in (5, float("nan"), "x"):
        with pytest.raises(ValueError, match="threshold is a"):
            Recognizer(smoke_export, threshold=value)
    assert Recognizer(smoke_export, threshold=-1).threshold == -1.0  # the ends are fine


@pytest.mark.parametrize("option", ["threads", "top_k"])
def test_recognizer_counts_below_one_are_value_errors(smoke_export, option):
    from edge_runtime import Recognizer

    with pytest.raises(ValueError, match=f"{option} must be a whole number of at least 1, got 0"):
        Recognizer(smoke_export, **{option: 0})


@cases("where, name, message", [
    ("--name", "unknown", "'unknown' is what the runtime answers for a face it does not know, so nobody can be "
                          "called that"),
    ("--name", "UNKNOWN", "'UNKNOWN' is what the runtime answers"),
    ("folder", "unknown", "(rename the folder)"),
    ("photo", "Unknown", "photo '{folder}/Unknown.jpg': 'Unknown' is what the runtime answers"),
    ("rename", "Unknown", "'Unknown' is what the runtime answers"),
])
def test_reserved_name_unknown_is_refused(smoke_export, gallery_of_one, photos, tmp_path, where, name, message):
    gallery, folder = tmp_path / "people.db", tmp_path / "photos"
    shutil.copy(gallery_of_one, gallery)
    common = ["--models", smoke_export, "--gallery", gallery]
    if where == "--name":
        result = edge("enrol", *common, "--name", name, photos["good.jpg"])
    elif where == "rename":
        result = edge("gallery", *common, "rename", PERSON, name)
    else:
        target = folder / name / "a.jpg" if where == "folder" else folder / f"{name}.jpg"
        target.parent.mkdir(parents=True)
        shutil.copy(photos["good.jpg"], target)
        result = edge("enrol", *common, "--folder", folder)
    assert_one_error(result, message.format(folder=folder))
    assert gallery_people(gallery) == {PERSON: 1}


@cases("args, message", [
    (["--calibration", "0"], "argument --calibration: must be at least 1, got 0"),
    (["--calibration", "-5"], "argument --calibration: must be at least 1, got -5"),
    (["--threads", "0"], "argument --threads: must be at least 1, got 0"),
    (["--allow-accuracy-drop", "-1"], "argument --allow-accuracy-drop: a number of points from 0 to 100, got -1.0"),
    (["--allow-accuracy-drop", "nan"], "argument --allow-accuracy-drop: a number of points from 0 to 100, got nan"),
])
def test_export_numbers_below_one_are_refused_before_anything_is_written(tmp_path, args, message):
    result = export("--run", tmp_path, "--out", tmp_path / "out", *args)
    assert result.returncode == 2 and "Traceback" not in result.stderr and message in result.stderr
    assert not (tmp_path / "out").exists()


def test_export_run_checks_its_numbers_first(tmp_path):
    pytest.importorskip("tensorflow")
    from export.exporter import export_run
    from keras_landmask.errors import LandmaskError

    with pytest.raises(LandmaskError, match="--calibration must be a whole number of at least 1, got 0"):
        export_run(tmp_path, tmp_path / "out", calibration=0)
    assert not (tmp_path / "out").exists()


def test_edge_threads_below_one_blames_the_option(smoke_export, photos):
    result = edge("identify", "--models", smoke_export, "--threads", "0", photos["good.jpg"])
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "error: argument --threads: must be a whole number of at least 1, got '0'" in result.stderr
    assert "features.tflite" not in result.stderr


@cases("value, message", [
    ("5", "the smallest face to look for must be at least 12 pixels, got 5"),
    ("nan", "the smallest face to look for must be at least 12 pixels, got nan"),
    ("big", "the smallest face is a number of pixels, not 'big'"),
])
def test_edge_min_face_size_below_the_detector_window_is_refused(smoke_export, photos, value, message):
    result = edge("identify", "--models", smoke_export, "--min-face-size", value, photos["good.jpg"])
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"error: argument --min-face-size: {message}" in result.stderr


def test_recognizer_min_face_size_below_the_detector_window_is_a_value_error(smoke_export):
    from edge_runtime import Recognizer

    with pytest.raises(ValueError, match="the smallest face to look for must be at least 12 pixels, got 5"):
        Recognizer(smoke_export, min_face_size=5)


def test_gallery_options_may_follow_the_action(smoke_export, gallery_of_one):
    listed = edge("gallery", "list", "--models", smoke_export, "--gallery", gallery_of_one)
    assert listed.returncode == 0, listed.stderr
    assert f"{PERSON}\t1" in listed.stdout.splitlines()
    missing = edge("gallery", "list", "--models", smoke_export)
    assert missing.returncode == 2 and "the following arguments are required: --gallery" in missing.stderr


def test_camera_on_a_text_file_named_jpg_is_an_error(smoke_export, photos, tmp_path):
    text = tmp_path / "text.jpg"
    shutil.copy(photos["notes.txt"], text)
    result = edge("camera", "--models", smoke_export, "--headless", "--source", text)
    assert_one_error(result, f"cannot read '{text}' as a video: it gave no frame")
    assert result.stdout == ""


@cases("kind, message", [
    ("float 0..1", "an image array must be uint8 (0..255), not float64; convert it (floats 0..1: "
                   "(image * 255).round().astype(np.uint8))"),
    ("float 0..255", "(floats 0..255: image.round().astype(np.uint8))"),
    ("uint16", "an image array must be uint8 (0..255), not uint16"),
    ("list", "an image must be a file path or a numpy array (RGB uint8 [H, W, 3]), not list"),
    ("two channels", "an image array must be [H, W, 3] (RGB), [H, W] (gray) or [H, W, 4] (RGBA), not shape "
                     "[250, 250, 2]"),
    ("batch", "not shape [1, 250, 250, 3]"),
    ("10x10", "an image of 10x10 pixels is too small"),
])
def test_recognize_refuses_what_it_cannot_read_with_a_clear_value_error(smoke_export, lfw_root, kind, message):
    from edge_runtime import Recognizer

    rgb = read_image(lfw_photo(lfw_root))
    image = {"float 0..1": rgb / 255.0, "float 0..255": rgb.astype(np.float32), "uint16": rgb.astype(np.uint16),
             "list": rgb.tolist(), "two channels": rgb[..., :2], "batch": rgb[None], "10x10": rgb[:10, :10]}[kind]
    with Recognizer(smoke_export) as recognizer, pytest.raises(ValueError) as caught:
        recognizer.recognize(image)
    assert message in str(caught.value)


def test_recognize_takes_a_path_gray_and_rgba(smoke_export, lfw_root):
    from edge_runtime import Recognizer

    path = lfw_photo(lfw_root)
    rgb = read_image(path)
    with Recognizer(smoke_export) as recognizer:
        reference = [face.box.tolist() for face in recognizer.recognize(rgb)]
        assert reference
        assert [f.box.tolist() for f in recognizer.recognize(str(path))] == reference
        assert [f.box.tolist() for f in recognizer.recognize(cv2.cvtColor(rgb, cv2.COLOR_RGB2RGBA))] == reference
        gray = recognizer.recognize(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))  # [H, W]: converted, a face found
        assert gray and gray[0].box.shape == (4,)


def test_recognizer_is_importable_from_the_package_and_a_context_manager(smoke_export, gallery_of_one):
    from edge_runtime import Recognizer

    with Recognizer(smoke_export, gallery=gallery_of_one) as recognizer:
        assert len(recognizer.gallery) == 1
    assert recognizer.gallery._connection is None  # closed on leaving the block


def test_gif_is_a_photo_for_identify_and_enrol_alike(smoke_export, lfw_root, tmp_path):
    person = tmp_path / "photos" / PERSON
    person.mkdir(parents=True)
    gif = person / "face.gif"
    gif.write_bytes(cv2.imencode(".gif", bgr(lfw_photo(lfw_root)))[1].tobytes())
    gallery = tmp_path / "people.db"
    enrolled = edge("enrol", "--models", smoke_export, "--gallery", gallery, "--folder", tmp_path / "photos")
    assert enrolled.returncode == 0 and "not a photo" not in enrolled.stderr, enrolled.stderr
    assert gallery_people(gallery) == {PERSON: 1}
    found = edge("identify", "--models", smoke_export, "--gallery", gallery, "--json", tmp_path / "photos")
    faces = json.loads(found.stdout.splitlines()[0])["faces"]
    assert found.returncode == 0 and max(face["score"] for face in faces) > 0.9999  # the enrolled photo itself


def test_gif_header_claiming_too_many_pixels_is_refused(tmp_path):
    data = bytearray(cv2.imencode(".gif", np.zeros((30, 30, 3), np.uint8))[1].tobytes())
    data[6:10] = struct.pack("<HH", 60000, 60000)
    path = tmp_path / "bomb.gif"
    path.write_bytes(bytes(data))
    with pytest.raises(ImageError, match="claims 60000x60000 pixels"):
        read_image(path)


@cases("setup, message", [
    ("no_face", "no face found in '{path}'; use a photo showing the person's face"),
    ("unreadable", "'{path}' is cut short (a JPEG"),
])
def test_verify_without_a_usable_face_is_one_error_line(smoke_export, photos, lfw_root, setup, message):
    path = photos["grey.png" if setup == "no_face" else "cut.jpg"]
    result = edge("verify", "--models", smoke_export, lfw_photo(lfw_root), path)
    assert_one_error(result, message.format(path=path))


@cases("option, message", [
    ("--save-dir", "--save-dir '{path}' cannot be made"),
    ("--csv", "--csv '{path}' cannot be written"),
])
def test_identify_outputs_that_cannot_be_written(smoke_export, photos, tmp_path, option, message):
    path = tmp_path / "taken"
    if option == "--save-dir":
        path.write_text("a file, not a folder")
    else:
        path.mkdir()
    result = edge("identify", "--models", smoke_export, option, path, photos["good.jpg"])
    assert_one_error(result, message.format(path=path))


def test_identify_an_empty_folder_says_so(smoke_export, tmp_path):
    assert_one_error(edge("identify", "--models", smoke_export, tmp_path), "no photos (.jpg, .jpeg")


def test_camera_output_of_an_unknown_kind_is_refused(smoke_export, photos, tmp_path):
    assert_one_error(edge("camera", "--models", smoke_export, "--source", photos["good.jpg"], "--output",
                          tmp_path / "out.txt"), "--output '" + str(tmp_path / "out.txt") + "': give a video file")
