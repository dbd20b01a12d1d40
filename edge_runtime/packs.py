"""Model packs: exports shipped inside the package, so the runtime works right after ``pip install``.

A pack is an export folder (``manifest.json`` and the ``.tflite`` files, as ``tools/export_tflite.py`` writes
them) plus ``pack.json``, its provenance (``tools/build_model_pack.py`` writes both into
``edge_runtime/models/<name>/``): the training command and config, the project commit, the data, Table 1, the
open-set table, int8 parity, the speed and the licences. ``--models`` (and ``Recognizer(models_dir=)``) takes a
pack's name or any export folder; without one the runtime uses ``DEFAULT_PACK``.
"""
from __future__ import annotations

import json
from pathlib import Path

from keras_landmask.core.manifest import MANIFEST_NAME

SHIPPED_DIR = Path(__file__).resolve().parent / "models"
DEFAULT_PACK = "lfw-fast-int8"
PACK_RECORD = "pack.json"
SUMMARY_ROWS = ("clean", "face_mask", "sunglasses")  # the open-set rows ``landmask models`` shows


def shipped_packs() -> list[Path]:
    """The pack folders installed with the package (each with a manifest), by name."""
    if not SHIPPED_DIR.is_dir():
        return []
    return sorted(p for p in SHIPPED_DIR.iterdir() if (p / MANIFEST_NAME).is_file())


def resolve_models(models: str | Path | None) -> Path:
    """The export folder for ``models``: None → the default pack; an existing folder → itself; the name of a
    shipped pack → that pack; anything else is returned as a path (the caller reports it missing)."""
    if models is None:
        folder = SHIPPED_DIR / DEFAULT_PACK
        if not (folder / MANIFEST_NAME).is_file():
            from edge_runtime.manifest import ManifestError

            raise ManifestError(f"the shipped model pack '{DEFAULT_PACK}' is not installed ({folder} has no "
                                f"{MANIFEST_NAME}); reinstall keras-landmask, or pass --models with a folder "
                                "written by tools/export_tflite.py")
        return folder
    path = Path(models)
    if not path.is_dir() and (SHIPPED_DIR / str(models) / MANIFEST_NAME).is_file() and path.name == str(models):
        return SHIPPED_DIR / str(models)
    return path


def pack_summary(folder: Path) -> dict:
    """What ``landmask models`` shows of one export folder: its name, size (MB), quantization, the exported
    models' Table 1 clean rank-1 (the export's parity), and, from ``pack.json`` when there is one, the open-set
    rank-1 with one enrolment photo (``SUMMARY_ROWS``) and the camera's ms per frame."""
    manifest = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8-sig"))
    size = sum(entry["bytes"] for entry in manifest["models"].values())
    clean = manifest.get("parity", {}).get("rows", {}).get("clean", {}).get("none", {}).get("tflite_rank1")
    summary = {"name": folder.name, "folder": str(folder), "megabytes": round(size / 1e6, 1),
               "quantization": manifest.get("quantization"), "table1_clean": clean,
               "shipped": folder.parent == SHIPPED_DIR, "default": folder == SHIPPED_DIR / DEFAULT_PACK}
    record = folder / PACK_RECORD
    if record.is_file():
        pack = json.loads(record.read_text())
        summary["openset_rank1"] = {row: pack["accuracy"]["openset"][row]["rank1_1"] for row in SUMMARY_ROWS}
        summary["frame_ms"] = pack.get("speed", {}).get("camera_ms")
    return summary
