"""Keras model → TFLite flatbuffer, with post-training quantization and a builtin-ops check.

Quantization modes (TFLite converter, post-training):
- ``float32``: no quantization;
- ``float16``: weights stored as float16, computed in float32 (or float16 on GPU delegates);
- ``dynamic``: int8 weights, activations quantized on the fly;
- ``int8``: full-integer, weights and activations int8, calibrated on a representative set of real inputs.
  Interfaces stay what the Keras model has (uint8 image in, float32 feature maps / flags / embeddings),
  with quantize/dequantize ops at the edges, so every quantization is fed and read the same way.

Every model is restricted to builtin ops and checked after conversion (``check_builtin_ops``), so it runs on
Android's stock LiteRT and its delegates without the Flex (TensorFlow ops) library.
"""
from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Callable, Iterator

from keras_landmask.errors import LandmaskError

QUANTIZATIONS = ("float32", "float16", "dynamic", "int8")
# A representative dataset yields one ``{input name: array [1, ...]}`` per calibration sample.
Representative = Callable[[], Iterator[dict]]


def save_serving(model, output_names: list[str], path: Path) -> Path:
    """Write ``model`` as a SavedModel whose ``serve`` signature names inputs as the model does and outputs
    as ``output_names`` (the names an app sees), with a resizable batch dimension."""
    import keras
    import tensorflow as tf

    specs = [tf.TensorSpec(tensor.shape, tensor.dtype, name=tensor.name) for tensor in model.inputs]

    def serve(*inputs):
        outputs = model(list(inputs) if len(inputs) > 1 else inputs[0], training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        return dict(zip(output_names, outputs))

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serve", serve, input_signature=specs)
    archive.write_out(str(path), verbose=False)
    return path


def to_tflite(model, output_names: list[str], quantize: str, representative: Representative | None = None) -> bytes:
    """Convert ``model`` (Keras, inputs named) with the given quantization; ``representative`` is required
    for ``int8``. Raises ``LandmaskError`` if the model needs a non-builtin op."""
    with converter_for(model, output_names, quantize, representative) as converter:
        try:
            content = converter.convert()
        except Exception as error:  # the converter raises several unrelated types, all with a useful last line
            raise LandmaskError(f"TFLite conversion of '{model.name}' ({quantize}) failed: "
                                f"{str(error).strip().splitlines()[-1]}") from error
    check_builtin_ops(content, model.name)
    return content


@contextlib.contextmanager
def converter_for(model, output_names: list[str], quantize: str, representative: Representative | None = None):
    """A ``tf.lite.TFLiteConverter`` for ``model`` set up for ``quantize`` (builtin ops only), valid inside the
    ``with`` block (its SavedModel lives in a temporary folder until then)."""
    import tensorflow as tf

    if quantize not in QUANTIZATIONS:
        raise LandmaskError(f"unknown quantization '{quantize}'; choose one of {', '.join(QUANTIZATIONS)}")
    if quantize == "int8" and representative is None:
        raise ValueError("int8 quantization needs a representative dataset")
    with tempfile.TemporaryDirectory() as folder:
        saved = save_serving(model, output_names, Path(folder) / "saved_model")
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved), signature_keys=["serve"])
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if quantize != "float32":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantize == "float16":
            converter.target_spec.supported_types = [tf.float16]
        if quantize == "int8":
            converter.representative_dataset = representative
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        yield converter


def operator_names(content: bytes) -> list[str]:
    """Names of the operator kinds a TFLite flatbuffer uses: builtin names (``CONV_2D``), or
    ``CUSTOM:<code>`` for custom ops (TensorFlow Flex ops are custom ops named ``Flex…``)."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.python import schema_util

    builtin_names = {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    model = schema.Model.GetRootAsModel(content, 0)
    names = []
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        builtin = schema_util.get_builtin_code_from_operator_code(code)
        if builtin == schema.BuiltinOperator.CUSTOM:
            names.append(f"CUSTOM:{(code.CustomCode() or b'?').decode()}")
        else:
            names.append(builtin_names.get(builtin, f"BUILTIN_{builtin}"))
    return sorted(set(names))


def check_builtin_ops(content: bytes, name: str) -> list[str]:
    """The builtin op names of a model; ``LandmaskError`` if it has any custom or Flex op."""
    names = operator_names(content)
    custom = [n for n in names if n.startswith("CUSTOM:")]
    if custom:
        raise LandmaskError(f"'{name}' needs non-builtin ops {', '.join(custom)}, which stock LiteRT on Android "
                            "cannot run; replace the layer that produces them")
    return names
