"""Fuzzing the runtime's inputs with hypothesis: photos, export manifests and gallery names.

Whatever the input, the runtime answers with a value of the documented kind or its own error class (which
the CLI turns into one line and exit status 2), never another exception. The runs are derandomized (the
same examples every time, so CI is stable); set ``LANDMASK_FUZZ_EXAMPLES=2000`` for a longer, random run.
"""
from __future__ import annotations

import json
import os
import re
import struct
import time
import unicodedata
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from edge_runtime.gallery import Gallery, GalleryError, check_name, check_new_name
from edge_runtime.manifest import ManifestError, load_manifest
from keras_landmask.core.images import IMAGE_SUFFIXES, MIN_SIDE, ImageError, read_image
from keras_landmask.core.manifest import FORMAT_VERSION, MANIFEST_NAME, MODEL_KEYS, REQUIRED_KEYS, sha256_file

EXAMPLES = int(os.environ.get("LANDMASK_FUZZ_EXAMPLES", 0))


def fuzz(examples: int):
    """Settings for one fuzz test: ``examples`` by default (derandomized), or ``LANDMASK_FUZZ_EXAMPLES``."""
    return settings(max_examples=EXAMPLES or examples, derandomize=not EXAMPLES, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])


SLOW = 10.0  # seconds: one input taking longer than this counts as a hang


def label(outcome: str | Exception) -> None:
    """Counts ``outcome`` for ``--hypothesis-show-statistics`` (an error: its message without paths and
    numbers); nothing outside a hypothesis test."""
    if isinstance(outcome, Exception):
        outcome = re.sub(r"'[^']*'|\d+", "_", f"{type(outcome).__name__}: {outcome}")[:60]
    try:
        event(outcome)
    except InvalidArgument:
        pass


# -- photos ------------------------------------------------------------------------------------------------
def seed_image() -> np.ndarray:
    """A small BGR picture with edges and noise, so every codec has real data to mangle."""
    y, x = np.mgrid[0:36, 0:44]
    image = np.stack([x * 5, y * 6, (x ^ y) * 4], axis=-1) + np.random.default_rng(0).integers(0, 40, (36, 44, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


SEEDS = {ext: cv2.imencode(ext, seed_image())[1].tobytes() for ext in (".jpg", ".png", ".bmp", ".webp", ".tiff")}


def fix_png_crcs(data: bytes) -> bytes:
    """``data`` with the CRC of every complete PNG chunk recomputed, so a mutated header reaches the decoder
    (libpng refuses a critical chunk whose CRC is wrong before looking at it)."""
    out, position = bytearray(data), 8
    while position + 12 <= len(out):
        length = struct.unpack(">I", out[position:position + 4])[0]
        end = position + 8 + length
        if end + 4 > len(out):
            break
        out[end:end + 4] = struct.pack(">I", zlib.crc32(bytes(out[position + 4:end])))
        position = end + 4
    return bytes(out)


POSITIONS = st.one_of(st.integers(0, 48), st.integers(0, 1 << 16))  # headers more often than the rest
MUTATIONS = st.lists(st.one_of(
    st.tuples(st.just("set"), POSITIONS, st.integers(0, 255)),
    st.tuples(st.just("cut"), POSITIONS),
    st.tuples(st.just("insert"), POSITIONS, st.binary(min_size=1, max_size=24)),
    st.tuples(st.just("delete"), POSITIONS, st.integers(1, 64)),
    st.tuples(st.just("u32"), POSITIONS, st.sampled_from([0, 1, 23, 24, 255, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF])),
), min_size=1, max_size=6)


def mutate(data: bytes, mutations) -> bytes:
    data = bytearray(data)
    for kind, position, *value in mutations:
        position %= len(data) + 1
        if kind == "set" and position < len(data):
            data[position] = value[0]
        elif kind == "cut":
            del data[position:]
        elif kind == "insert":
            data[position:position] = value[0]
        elif kind == "delete":
            del data[position:position + value[0]]
        elif kind == "u32":  # a width, height, length or offset field set to an extreme
            data[position:position + 4] = struct.pack(">I" if position % 2 else "<I", value[0])
        if not data:
            data = bytearray(b"\x00")
    return bytes(data)


def check_read(path: Path):
    """``read_image(path)``: an RGB ``uint8 [H, W, 3]`` of at least ``MIN_SIDE`` per side, or ``ImageError``."""
    started = time.monotonic()
    try:
        image = read_image(path)
    except ImageError as error:
        assert str(error)
        label(error)
        image = None
    assert time.monotonic() - started < SLOW, f"read_image took {time.monotonic() - started:.1f} s"
    if image is not None:
        assert isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3, image
        assert image.shape[2] == 3 and min(image.shape[:2]) >= MIN_SIDE, image.shape
        label("decoded")
    return image


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def test_seed_images_decode(scratch):
    for ext, data in SEEDS.items():
        (scratch / f"seed{ext}").write_bytes(data)
        assert check_read(scratch / f"seed{ext}").shape == (36, 44, 3), ext


@fuzz(400)
@given(data=st.one_of(st.binary(max_size=2048),
                      # arbitrary bytes behind each format's magic number, so the header parsers see them
                      st.builds(lambda magic, rest: magic + rest,
                                st.sampled_from([b"\x89PNG\r\n\x1a\n", b"\xff\xd8", b"\xff\xd8\xff\xc0", b"BM",
                                                 b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"RIFF\x10\x00\x00\x00WEBPVP8L",
                                                 b"RIFF\x00\x00\x00\x00WEBPVP8X", b"II*\x00", b"MM\x00*",
                                                 b"GIF89a", b"P6\n", b"\x00\x00\x00\x0cjP  "]),
                                st.binary(max_size=512))),
       suffix=st.sampled_from(IMAGE_SUFFIXES + (".txt", "")))
@example(data=b"RIFF\x10\x00\x00\x00WEBPVP8L", suffix=".webp")  # a WebP header cut short after the chunk id
def test_read_image_on_arbitrary_bytes(scratch, data, suffix):
    path = scratch / f"any{suffix}"
    path.write_bytes(data)
    check_read(path)


@fuzz(600)
@given(ext=st.sampled_from(sorted(SEEDS)), mutations=MUTATIONS, fix_crcs=st.booleans())
def test_read_image_on_mutated_photos(scratch, ext, mutations, fix_crcs):
    data = mutate(SEEDS[ext], mutations)
    if ext == ".png" and fix_crcs:
        data = fix_png_crcs(data)
    path = scratch / f"mutated{ext}"
    path.write_bytes(data)
    check_read(path)


# -- manifests ---------------------------------------------------------------------------------------------
MODEL_BYTES = b"TFL3 not really a model, but the manifest only hashes it"


def valid_manifest(folder: Path) -> dict:
    """A minimal manifest that ``load_manifest`` accepts, for a one-model export in ``folder``."""
    (folder / "features.tflite").write_bytes(MODEL_BYTES)
    manifest = {key: {} for key in REQUIRED_KEYS}
    manifest.update(format_version=FORMAT_VERSION, created="2024-06-01T00:00:00+00:00", quantization="int8")
    manifest["models"] = {"features": dict(zip(MODEL_KEYS, [
        "features.tflite", sha256_file(folder / "features.tflite"), len(MODEL_BYTES),
        [{"name": "image", "shape": [-1, 128, 96, 3], "dtype": "uint8"}], [], ["CONV_2D"]]))}
    return manifest


def check_load(folder: Path, verify: bool = True):
    """``load_manifest``: a checked dict (every model file a plain file inside ``folder``) or ``ManifestError``."""
    try:
        manifest = load_manifest(folder, verify=verify)
    except ManifestError as error:
        assert str(error)
        label(error)
        return None
    assert isinstance(manifest, dict) and all(key in manifest for key in REQUIRED_KEYS)
    assert manifest["format_version"] == FORMAT_VERSION and isinstance(manifest["models"], dict)
    for entry in manifest["models"].values():
        file = folder / entry["file"]
        assert file.is_file() and file.resolve().parent == folder.resolve(), entry["file"]
        if verify:
            assert entry["sha256"] == sha256_file(file)
    label("loaded")
    return manifest


@pytest.fixture(scope="module")
def export_folder(tmp_path_factory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("export")
    manifest = valid_manifest(folder)
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest))
    assert check_load(folder) == manifest
    (folder.parent / "outside.tflite").write_bytes(MODEL_BYTES)  # what a path in "file" could reach
    return folder, manifest


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12)
FILE_NAMES = st.sampled_from(["../outside.tflite", "../../etc/passwd", "/etc/passwd", "..", ".", "", "/",
                              "./features.tflite", "sub/../features.tflite", "features.tflite/", "features.tflite\x00",
                              "..\\outside.tflite", "manifest.json", "missing.tflite", " features.tflite",
                              "\ud800.tflite", "\udcff.tflite", "features.tflite" * 300])


@fuzz(250)
@given(value=JSON, verify=st.booleans())
def test_load_manifest_on_arbitrary_json(export_folder, value, verify):
    folder, _ = export_folder
    (folder / MANIFEST_NAME).write_text(json.dumps(value))
    assert check_load(folder, verify) is None  # no required keys, so never a manifest


MANIFEST_EDITS = st.lists(st.one_of(
    st.tuples(st.just("set"), st.sampled_from(REQUIRED_KEYS + ("extra",)), JSON),
    st.tuples(st.just("drop"), st.sampled_from(REQUIRED_KEYS)),
    st.tuples(st.just("models"), JSON),
    st.tuples(st.just("model"), st.text(max_size=8), JSON),
    st.tuples(st.just("model key"), st.sampled_from(MODEL_KEYS), JSON),
    st.tuples(st.just("drop model key"), st.sampled_from(MODEL_KEYS)),
    st.tuples(st.just("file"), FILE_NAMES),
    st.tuples(st.just("format"), st.sampled_from([True, 1.0, "1", 0, 2, None, [1]])),
), min_size=1, max_size=4)


def edit(manifest: dict, edits) -> dict:
    manifest = json.loads(json.dumps(manifest))
    for kind, *args in edits:
        entry = manifest.get("models", {}).get("features") if isinstance(manifest.get("models"), dict) else None
        if kind == "set":
            manifest[args[0]] = args[1]
        elif kind == "drop":
            manifest.pop(args[0], None)
        elif kind == "models":
            manifest["models"] = args[0]
        elif kind == "model" and isinstance(manifest.get("models"), dict):
            manifest["models"][args[0]] = args[1]
        elif kind == "model key" and isinstance(entry, dict):
            entry[args[0]] = args[1]
        elif kind == "drop model key" and isinstance(entry, dict):
            entry.pop(args[0], None)
        elif kind == "file" and isinstance(entry, dict):
            entry["file"] = args[0]
        elif kind == "format":
            manifest["format_version"] = args[0]
    return manifest


@fuzz(400)
@given(edits=MANIFEST_EDITS, verify=st.booleans())
@example(edits=[("file", "../outside.tflite")], verify=False)
@example(edits=[("models", [])], verify=True)
@example(edits=[("format", True)], verify=True)
@example(edits=[("file", "features.tflite" * 300)], verify=True)  # too long a name for the file system
def test_load_manifest_on_edited_manifests(export_folder, edits, verify):
    folder, manifest = export_folder
    (folder / MANIFEST_NAME).write_text(json.dumps(edit(manifest, edits)))
    check_load(folder, verify)


@fuzz(250)
@given(mutations=MUTATIONS)
@example(mutations=[("insert", 0, b"[" * 24)])
def test_load_manifest_on_mutated_bytes(export_folder, mutations):
    folder, manifest = export_folder
    (folder / MANIFEST_NAME).write_bytes(mutate(json.dumps(manifest).encode(), mutations))
    check_load(folder)


@pytest.mark.parametrize("data", [b"[" * 100_000, b'{"format_version": ' + b"1" * 5000 + b"}", b"\xff\xfe{\x00}\x00",
                                  b'"\xed\xa0\x80"', b'{"format_version": 1e999}', b"\xef\xbb\xbf{}"])
def test_load_manifest_on_pathological_json(export_folder, data):
    folder, _ = export_folder
    (folder / MANIFEST_NAME).write_bytes(data)
    with pytest.raises(ManifestError, match="valid JSON|lacks|not a manifest"):
        load_manifest(folder)


def test_load_manifest_refuses_files_outside_the_folder(export_folder):
    folder, manifest = export_folder
    for name in ["../outside.tflite", str(folder.parent / "outside.tflite"), "sub/../features.tflite"]:
        (folder / MANIFEST_NAME).write_text(json.dumps(edit(manifest, [("file", name)])))
        with pytest.raises(ManifestError, match="not a file name in the export folder"):
            load_manifest(folder, verify=False)


# -- gallery names -----------------------------------------------------------------------------------------
SHAPE = (1, 1, 2)
NAMES = (st.text(alphabet=st.characters(exclude_categories=()), max_size=120)
         | st.text(max_size=8).map(lambda s: f"  {s}\u0065\u0301 ")  # whitespace to strip, a decomposed é
         | st.sampled_from(["unknown", " Unknown ", "UNKNOWN"]))  # valid names, but reserved: enrol refuses them


def test_check_name_on_arbitrary_text():
    @fuzz(1000)
    @given(name=NAMES | st.binary(max_size=8) | st.integers() | st.none())
    def run(name):
        try:
            checked = check_name(name)
        except GalleryError as error:
            assert str(error)
            return
        assert isinstance(checked, str) and 0 < len(checked) <= 100
        assert any(unicodedata.category(char)[0] in "LNPS" for char in checked)  # something visible
        assert check_name(checked) == checked  # idempotent: what is stored is a valid name
        checked.encode("utf-8")  # storable in SQLite

    run()


def test_accepted_names_round_trip(tmp_path):
    accepted: dict[str, int] = {}
    path = tmp_path / "names.db"
    with Gallery(path, "m", SHAPE) as gallery:
        @fuzz(150)
        @given(name=NAMES)
        def run(name):
            try:
                checked = check_new_name(name)  # what enrol takes: check_name, and not a reserved name
            except GalleryError:
                with pytest.raises(GalleryError):
                    gallery.enrol(name, np.ones((1, *SHAPE), np.float32))
                return
            count = gallery.enrol(name, np.ones((1, *SHAPE), np.float32), [name])
            accepted[checked] = accepted.get(checked, 0) + 1
            assert count == accepted[checked] and name in gallery and checked in gallery
            assert gallery.people() == sorted(accepted.items())

        run()
    assert accepted
    with Gallery(path, "m", SHAPE) as gallery:  # and read back by a new connection, exactly
        assert gallery.people() == sorted(accepted.items())
        names = gallery.embeddings((0,), lambda maps, pattern: maps.reshape(len(maps), -1))[1]
        assert sorted(set(names)) == sorted(accepted)


@pytest.mark.parametrize("name", ["x" * 5000 + ".db", "file.txt/g.db", "missing/g.db", "."])
def test_unusable_gallery_paths_are_gallery_errors(tmp_path, name):
    (tmp_path / "file.txt").write_text("not a folder")
    with pytest.raises(GalleryError, match="choose another gallery path|is a folder|does not exist"):
        Gallery(tmp_path / name, "m", SHAPE)
