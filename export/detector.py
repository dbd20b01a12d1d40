"""The mtcnn package's P-, R- and O-nets (its own weights) as TFLite files for ``edge_runtime.detector``.

Each net keeps exactly the package's input: RGB float32 ``(x - 127.5) / 128``, NHWC, no transposes
(mtcnn 1.0.0 ``normalize_images``). Shapes: ``pnet [1, H, W, 3]`` with H, W resizable (one
pyramid level per call, default 12x12), ``rnet [N, 24, 24, 3]`` and ``onet [N, 48, 48, 3]`` with a resizable
batch. Outputs, in no guaranteed order, are told apart by their last dimension: 4 box offsets, 2 softmax
(face last), 10 landmarks (O-net). Only builtin TFLite ops are allowed.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from edge_runtime.detector import CELL, NET_FILES, NORMALISATION, STRIDE, Settings

# quantize mode asked → what the detector nets get (int8: see export_mtcnn)
APPLIED_QUANTIZATION = {"float32": "float32", "float16": "float16", "dynamic": "dynamic", "int8": "dynamic"}

INPUT_SHAPES = {"pnet": [1, None, None, 3], "rnet": [None, 24, 24, 3], "onet": [None, 48, 48, 3]}

DETECTOR_SPEC = {
    "source": "mtcnn 1.0.0 (pip), weights mtcnn/assets/weights/{pnet,rnet,onet}.lz4",
    "files": list(NET_FILES),
    "input": "RGB float32 NHWC, (pixel - 127.5) / 128",
    "normalisation": {"offset": NORMALISATION[0], "divisor": NORMALISATION[1]},
    "input_shapes": INPUT_SHAPES,
    "outputs_by_last_dim": {"4": "box offsets", "2": "softmax [not face, face]", "10": "landmarks x1..x5, y1..y5"},
    "min_size": CELL,  # P-net window and smallest pyramid level, pixels
    "pnet_stride": STRIDE,
    "pyramid_resize": "area, level side = floor(side * scale)",
    "patch_resize": "bilinear, tf.image.crop_and_resize semantics, 0 outside the image",
    **dataclasses.asdict(Settings()),
}


def export_mtcnn(out_dir: Path, quantize: str = "float32") -> dict[str, Path]:
    """Write ``pnet.tflite``, ``rnet.tflite``, ``onet.tflite`` into ``out_dir``; returns ``{net name: path}``.

    ``quantize``: ``float32``; ``float16`` (float16 weights); ``dynamic`` (int8 weights, float activations);
    ``int8`` gives the detector dynamic-range quantization too. Full-integer nets (calibrated on 40 LFW
    train images) were measured against the mtcnn package on 100 LFW test images
    (``benchmarks/detector_parity.py``): detection agreement 1.0 for both, but central-box IoU mean 0.94 with
    87% >= 0.9 and landmark error mean 1.2 px / max 6.1 px, against 0.97, 95% and 0.7 px / 8.1 px for
    dynamic range (float32: 0.99, 100%, 0.4 px / 0.7 px, all from the package's whole-pixel rounding), and
    about 3x slower on x86 CPU. Full integer would also need calibration images here; it is not worth it.
    """
    import tensorflow as tf
    from mtcnn.stages import StageONet, StagePNet, StageRNet

    if quantize not in APPLIED_QUANTIZATION:
        raise ValueError(f"quantize must be one of {tuple(APPLIED_QUANTIZATION)}, got {quantize!r}")
    applied = APPLIED_QUANTIZATION[quantize]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stages = {"pnet": StagePNet, "rnet": StageRNet, "onet": StageONet}
    paths = {}
    for name, stage in stages.items():
        model = stage().model  # built and loaded with the package's weights, as MTCNN() does
        function = tf.function(model.call, input_signature=[tf.TensorSpec(INPUT_SHAPES[name], tf.float32)])
        converter = tf.lite.TFLiteConverter.from_concrete_functions([function.get_concrete_function()], model)
        converter.experimental_lower_to_saved_model = False  # freeze weights (else uninitialised variables)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if applied != "float32":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if applied == "float16":
            converter.target_spec.supported_types = [tf.float16]
        content = converter.convert()
        if name == "pnet":
            content = with_input_shape(content, [1, CELL, CELL, 3])
        paths[name] = out_dir / f"{name}.tflite"
        paths[name].write_bytes(content)
    return paths


def with_input_shape(content: bytes, shape: list[int]) -> bytes:
    """The TFLite model with its first input's default shape set to ``shape`` (signature kept resizable).

    The converter stores 1 for each resizable dimension; a 1x1 P-net input cannot be allocated, so the
    default becomes the smallest pyramid level, 12x12.
    """
    import flatbuffers
    import numpy as np
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(content, 0))
    graph = model.subgraphs[0]
    graph.tensors[graph.inputs[0]].shape = np.asarray(shape, np.int32)
    builder = flatbuffers.Builder(len(content) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
