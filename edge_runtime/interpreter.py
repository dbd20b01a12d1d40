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

    Inputs whose shape differs from the model's are resized on the fly (models exported with a resizable
    dimension accept any size there). A resize reallocates every tensor, which costs about as much as running a
    small net, so interpreters can be kept, one per input shape, while the kept shapes' input elements add up to
    at most ``keep_elements`` (the least recently used are dropped first; their memory grows with their input):
    a net called with a few recurring shapes (the detector's pyramid levels of a camera's frames) then never
    reallocates. ``keep_elements=0`` keeps one interpreter, resized for each new shape (the least memory).
    Float inputs are quantized and quantized outputs dequantized with the tensors' own parameters, so callers
    always pass and get real values. ``threads``: at least 1; ``verbose``: let LiteRT's INFO lines through.
    """

    def __init__(self, path: str | Path | None = None, content: bytes | None = None, threads: int = 1,
                 verbose: bool = False, keep_elements: int = 0):
        self.name = Path(path).name if path is not None else "model"
        if not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be a whole number of at least 1, got {threads!r}")
        if not isinstance(keep_elements, int) or keep_elements < 0:
            raise ValueError(f"keep_elements must be a whole number of at least 0, got {keep_elements!r}")
        self._source = dict(model_path=None if path is None else str(path), model_content=content,
                            num_threads=threads)
        self._verbose = verbose
        self.interpreter = self._load()
        self.inputs = self.interpreter.get_input_details()
        self.outputs = self.interpreter.get_output_details()
        self.keep_elements = keep_elements
        self._by_shape = {self._shapes_of(self.interpreter): self.interpreter}  # least recently used first

    def _load(self):
        try:
            with native_info_hidden(self._verbose):
                interpreter = interpreter_class()(**self._source)
                interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            reason = (str(error).splitlines() or [type(error).__name__])[0]  # an error may have no message
            raise ModelError(f"'{self.name}' is not a loadable TFLite model ({reason})") from error
        return interpreter

    @staticmethod
    def _shapes_of(interpreter) -> tuple:
        return tuple(tuple(int(v) for v in d["shape"]) for d in interpreter.get_input_details())

    @property
    def kept_shapes(self) -> list[tuple]:
        """The input shapes that have an interpreter allocated, least recently used first."""
        return list(self._by_shape)

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
        interpreter = self._interpreter_for(tuple(array.shape for array in arrays))
        for detail, array in zip(self.inputs, arrays):
            interpreter.set_tensor(detail["index"], to_tensor(array, detail))
        interpreter.invoke()
        return [from_tensor(interpreter.get_tensor(d["index"]), d) for d in self.outputs]

    def _interpreter_for(self, shapes: tuple):
        """The interpreter allocated for input ``shapes``: a kept one; else the least recently used ones are
        dropped until ``shapes`` fits in ``keep_elements`` and the last one dropped is resized, or, when none had
        to go, a new one is loaded."""
        interpreter = self._by_shape.pop(shapes, None)
        if interpreter is None:
            needed = sum(int(np.prod(shape)) for shape in shapes)
            while self._by_shape and needed + sum(sum(int(np.prod(s)) for s in kept)
                                                  for kept in self._by_shape) > self.keep_elements:
                interpreter = self._by_shape.pop(next(iter(self._by_shape)))
            interpreter = interpreter or self._load()
            for detail, shape in zip(self.inputs, shapes):
                interpreter.resize_tensor_input(detail["index"], shape)
            interpreter.allocate_tensors()
        self._by_shape[shapes] = interpreter  # most recently used last
        return interpreter


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
