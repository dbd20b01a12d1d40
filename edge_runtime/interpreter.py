"""A TFLite model behind a small call interface, on whichever LiteRT runtime is installed.

Runtimes tried in order: ``ai_edge_litert`` (LiteRT, ``pip install ai-edge-litert``), ``tflite_runtime``,
then ``tensorflow.lite`` (only if TensorFlow happens to be installed). LiteRT's C++ ``INFO:`` lines (e.g.
"Created TensorFlow Lite XNNPACK delegate for CPU.", written to file descriptor 2 when a model is loaded) are
dropped unless ``verbose``; anything else it writes there is passed on.
"""
from __future__ import annotations

import contextlib
import importlib
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

RUNTIMES = ("ai_edge_litert.interpreter", "tflite_runtime.interpreter", "tensorflow.lite")


class RuntimeMissing(RuntimeError):
    """No TFLite interpreter package is installed."""


class ModelError(RuntimeError):
    """A model file that cannot be loaded or run."""


def interpreter_class():
    """The ``Interpreter`` class of the first installed runtime in ``RUNTIMES``."""
    for module_name in RUNTIMES:
        try:
            return importlib.import_module(module_name).Interpreter
        except ImportError:
            continue
    raise RuntimeMissing("no TFLite runtime found; install one with: pip install ai-edge-litert")


@contextlib.contextmanager
def native_info_hidden(verbose: bool = False):
    """Within the block, lines starting ``INFO: `` that native code writes to file descriptor 2 are dropped (the
    rest are written to stderr afterwards); ``verbose``, or no usable descriptor 2: nothing is changed."""
    try:
        saved = None if verbose else os.dup(2)
    except OSError:
        saved = None
    if saved is None:
        yield
        return
    with tempfile.TemporaryFile() as captured:
        sys.stderr.flush()
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().decode(errors="replace").splitlines(keepends=True)
                    if not line.startswith("INFO: ")]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


class TFLiteModel:
    """One ``.tflite`` model: ``model.run(name=array, ...)`` → ``{output name: array}`` through the model's
    signature, or ``model(*arrays)`` → list of output arrays in the interpreter's tensor order.

    Inputs whose batch size differs from the model's are resized on the fly (models exported with a
    resizable batch dimension accept any batch). Float inputs are quantized and quantized outputs
    dequantized with the tensors' own parameters, so callers always pass and get real values.
    ``threads``: at least 1; ``verbose``: let LiteRT's INFO lines through.
    """

    def __init__(self, path: str | Path | None = None, content: bytes | None = None, threads: int = 1,
                 verbose: bool = False):
        self.name = Path(path).name if path is not None else "model"
        if not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be a whole number of at least 1, got {threads!r}")
        try:
            with native_info_hidden(verbose):
                self.interpreter = interpreter_class()(model_path=None if path is None else str(path),
                                                       model_content=content, num_threads=threads)
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            reason = (str(error).splitlines() or [type(error).__name__])[0]  # an error may have no message
            raise ModelError(f"'{self.name}' is not a loadable TFLite model ({reason})") from error
        self.inputs = self.interpreter.get_input_details()
        self.outputs = self.interpreter.get_output_details()

    def run(self, **arrays: np.ndarray) -> dict[str, np.ndarray]:
        """Invoke the model's (only) signature with named inputs; names are in ``signature_inputs``."""
        runner = self.interpreter.get_signature_runner()
        details = runner.get_input_details()
        if set(arrays) != set(details):
            raise ModelError(f"'{self.name}' takes inputs {sorted(details)}, got {sorted(arrays)}")
        outputs = runner(**{name: to_tensor(array, details[name]) for name, array in arrays.items()})
        output_details = runner.get_output_details()
        return {name: from_tensor(tensor, output_details[name]) for name, tensor in outputs.items()}

    def __call__(self, *arrays: np.ndarray) -> list[np.ndarray]:
        if len(arrays) != len(self.inputs):
            raise ModelError(f"'{self.name}' takes {len(self.inputs)} inputs, got {len(arrays)}")
        for detail, array in zip(self.inputs, arrays):
            if tuple(detail["shape"]) != array.shape:
                self.interpreter.resize_tensor_input(detail["index"], array.shape)
                self.interpreter.allocate_tensors()
                self.inputs = self.interpreter.get_input_details()
                self.outputs = self.interpreter.get_output_details()
        for detail, array in zip(self.inputs, arrays):
            self.interpreter.set_tensor(detail["index"], to_tensor(array, detail))
        self.interpreter.invoke()
        return [from_tensor(self.interpreter.get_tensor(d["index"]), d) for d in self.outputs]


def to_tensor(array: np.ndarray, detail: dict) -> np.ndarray:
    """``array`` as the input tensor's dtype, quantized with its scale and zero point where it has them."""
    dtype = detail["dtype"]
    scale, zero_point = detail["quantization"]
    if scale and np.issubdtype(dtype, np.integer) and not np.issubdtype(array.dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.round(array / scale + zero_point), info.min, info.max).astype(dtype)
    return array.astype(dtype, copy=False)


def from_tensor(tensor: np.ndarray, detail: dict) -> np.ndarray:
    """A copy of an output tensor as real values (dequantized when it is quantized)."""
    scale, zero_point = detail["quantization"]
    if scale and np.issubdtype(tensor.dtype, np.integer):
        return (tensor.astype(np.float32) - zero_point) * scale
    return tensor.copy()
