"""What ``manifest.json`` says about each exported model: file, sha256, size, ops, and the I/O contract.

The keys live in ``keras_landmask.core.manifest`` and the reader in ``edge_runtime.manifest``; this module fills
them in.
"""
from __future__ import annotations

import datetime
import platform
from importlib import metadata
from pathlib import Path

import numpy as np

from edge_runtime.interpreter import TFLiteModel
from keras_landmask.core.manifest import FORMAT_VERSION, MODEL_KEYS, sha256_file


def tensor_spec(detail: dict, name: str) -> dict:
    """One input/output: name, shape (-1 = resizable), dtype and (scale, zero point); scale 0 = not quantized."""
    scale, zero_point = detail["quantization"]
    return {"name": name, "shape": [int(v) for v in detail["shape_signature"]],
            "dtype": np.dtype(detail["dtype"]).name, "quantization": {"scale": float(scale), "zero_point": int(zero_point)}}


def model_entry(path: Path, ops: list[str]) -> dict:
    """The manifest entry of one ``.tflite`` file. Inputs/outputs are the signature's (by name) when the
    model has one, else the interpreter's tensors in order."""
    interpreter = TFLiteModel(path).interpreter
    if interpreter.get_signature_list():
        runner = interpreter.get_signature_runner()
        inputs = [tensor_spec(d, n) for n, d in runner.get_input_details().items()]
        outputs = [tensor_spec(d, n) for n, d in runner.get_output_details().items()]
    else:
        inputs = [tensor_spec(d, d["name"]) for d in interpreter.get_input_details()]
        outputs = [tensor_spec(d, d["name"]) for d in interpreter.get_output_details()]
    entry = {"file": path.name, "sha256": sha256_file(path), "bytes": path.stat().st_size,
             "inputs": inputs, "outputs": outputs, "ops": ops}
    assert tuple(entry) == MODEL_KEYS
    return entry


def software_versions() -> dict:
    import keras
    import tensorflow as tf

    import keras_landmask

    versions = {"keras_landmask": keras_landmask.__version__, "tensorflow": tf.__version__,
                "keras": keras.__version__, "python": platform.python_version()}
    try:
        versions["ai_edge_litert"] = metadata.version("ai-edge-litert")
    except metadata.PackageNotFoundError:  # the export then ran its checks with tensorflow.lite
        versions["ai_edge_litert"] = None
    return versions


def manifest_header(quantization: str) -> dict:
    return {"format_version": FORMAT_VERSION,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "software": software_versions(), "quantization": quantization}
