"""The contract between an export and a device: ``manifest.json`` beside the ``.tflite`` files.

``export`` writes it and ``edge_runtime.manifest.load_manifest`` reads it; both take the keys and the digest
from here, so the two cannot drift (docs/android.md says what each key holds).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1
# Top-level keys every manifest has (see docs/android.md for what each holds).
REQUIRED_KEYS = ("format_version", "created", "software", "quantization", "models", "crop", "layout",
                 "detector", "threshold", "parity")
MODEL_KEYS = ("file", "sha256", "bytes", "inputs", "outputs", "ops")


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of the file at ``path``, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
