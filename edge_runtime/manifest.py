"""Reading the contract between an export and a device: ``manifest.json`` beside the ``.tflite`` files.

The keys and the digest are ``keras_landmask.core.manifest``'s, which ``export`` writes with, so the two cannot
drift. ``load_manifest`` checks every key, that every model file exists (a plain file name inside the folder),
and its sha256.
"""
from __future__ import annotations

import json
from pathlib import Path, PurePath

from keras_landmask.core.manifest import FORMAT_VERSION, MANIFEST_NAME, MODEL_KEYS, REQUIRED_KEYS, sha256_file


class ManifestError(ValueError):
    """A models folder whose manifest is missing, malformed or does not match its files."""


def load_manifest(models_dir: str | Path, verify: bool = True) -> dict:
    """The manifest of an export folder, checked: every required key, every model file present and, when
    ``verify``, matching its sha256. Raises ``ManifestError`` with what to do."""
    folder = Path(models_dir)
    path = folder / MANIFEST_NAME
    if not _is_file(path):
        raise ManifestError(f"'{path}' not found; point to a folder written by tools/export_tflite.py")
    try:
        text = path.read_text(encoding="utf-8-sig")  # a BOM from a Windows editor is fine
    except OSError as error:
        raise ManifestError(f"'{path}' cannot be read ({error.strerror or error}); check its permissions") from None
    except UnicodeDecodeError as error:
        raise ManifestError(f"'{path}' is not valid JSON ({error}); export the models again") from None
    try:
        manifest = json.loads(text)
    except (ValueError, RecursionError) as error:  # JSONDecodeError, over-long integers, absurd nesting
        raise ManifestError(f"'{path}' is not valid JSON ({error}); export the models again") from None
    if not isinstance(manifest, dict):
        raise ManifestError(f"'{path}' is not a manifest (expected a JSON object); export the models again")
    missing = [key for key in REQUIRED_KEYS if key not in manifest]
    if missing:
        raise ManifestError(f"'{path}' lacks {', '.join(missing)}; export the models again")
    if type(manifest["format_version"]) is not int or manifest["format_version"] != FORMAT_VERSION:  # not True
        raise ManifestError(f"'{path}' has format {manifest['format_version']!r}, this runtime reads "
                            f"{FORMAT_VERSION}; export again or update keras-landmask")
    if not isinstance(manifest["models"], dict) or not manifest["models"]:
        raise ManifestError(f"'{path}': 'models' must name each model and its file; export the models again")
    for name, entry in manifest["models"].items():
        lacking = [key for key in MODEL_KEYS if key not in entry] if isinstance(entry, dict) else MODEL_KEYS
        if lacking:
            raise ManifestError(f"'{path}': model '{name}' lacks {', '.join(lacking)}; export the models again")
        if not is_file_name(entry["file"]):  # a path would let a manifest point anywhere (../../etc/passwd)
            raise ManifestError(f"'{path}': model '{name}' file {entry['file']!r} is not a file name in the export "
                                "folder; export the models again")
        file = folder / entry["file"]
        if not _is_file(file):
            raise ManifestError(f"model file '{file}' is missing; copy the whole export folder")
        if verify:
            try:
                digest = sha256_file(file)
            except OSError as error:
                raise ManifestError(f"'{file}' cannot be read ({error.strerror or error}); check its "
                                    "permissions") from None
            if digest != entry["sha256"]:
                raise ManifestError(f"'{file}' does not match its sha256 in the manifest (damaged or replaced); "
                                    "copy the export folder again")
    return manifest


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # e.g. a name too long for the file system
        return False


def is_file_name(name) -> bool:
    """``name`` is a plain file name (what the export writes): text without folders, ``..``, or NUL."""
    return (isinstance(name, str) and name not in ("", ".", "..") and not any(c in name for c in "/\\\0")
            and PurePath(name).name == name)
