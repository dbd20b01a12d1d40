"""dlib's face ResNet (``dlib_face_recognition_resnet_model_v1``) rebuilt in Keras, its weights read from dlib's
file: a pretrained, public-domain starting point for the base network.

The network (dlib's ``dnn_face_recognition_ex.cpp``): conv 7x7/2 (32) → max-pool 3/2 → 3 residual blocks of 32,
4 of 64, 3 of 128, 3 of 256, 1 of 256 (the first of each level after the first downsamples: its first conv has
stride 2 and no padding, its shortcut is a 2x2/2 average pool) → global average pool → dense 128, no bias. A
block is conv 3x3 → affine → ReLU → conv 3x3 → affine, plus the shortcut, then ReLU. Two things follow dlib
exactly: a stride-2 conv or pool has no padding (dlib's default), and the sum of two maps of different sizes
(``add_prev``) has the larger size along every axis, the missing values taken as 0 (``PadAdd``). The affine
layers (batch norm frozen at training's end) are folded into the conv before them.

The Keras model takes the project's uint8 crop, cuts the square chip box of its alignment (``CHIP_BOXES``) out of
it (zero outside the crop, as dlib's chip is), resizes that to dlib's 150x150 chip, subtracts dlib's mean RGB and divides by 256, as
dlib's ``input_rgb_image_sized`` does. ``dlib_trunk`` ends after the 128-channel level (``[B, 8, 8, 128]``,
covering the chip box); ``dlib_head`` is the rest (feature map → 128-d embedding). On the held-out people of
the ``fast`` run (40 people, 1 enrolment photo each, 500 unknowns) the unchanged network reaches rank-1 / DIR
at FPIR 1 % of 99.5 / 93.1 % on ``similarity`` crops through their chip box, 93.6 / 64.5 % on ``box`` crops
(whose chip box varies more), 60.8 / 21.4 % when a whole box crop is resized to 150x112; dlib's own pipeline
(its detector, landmarks and chip on the upscaled crop) reaches 99.0 / 91.7 %.

Known answer: on dlib's own 150x150 face chips the Keras network gives dlib's descriptor
(``tests/test_dlib_resnet.py``, cosine > 0.9999).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import keras
import numpy as np
from keras import layers, ops

from keras_landmask.errors import LandmaskError

# (filters, blocks, first block downsamples) of dlib's five levels, input side first
LEVELS = ((32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True))
CHIP = 150  # dlib's face chip, pixels
# Where dlib's 150x150 face chip (5-point landmarks, padding 0.25) lies in a crop of each alignment, as fractions
# (left, top, right, bottom) of the crop's width and height: the median over 300 train crops of the LFW fast run.
# Std over those crops, horizontally / vertically: box 0.09 / 0.04 of the width / height, similarity 0.03 / 0.02.
# Outside the crop is black.
CHIP_BOXES = {"box": (-0.104, 0.114, 1.140, 1.029), "similarity": (0.001, 0.242, 1.018, 1.005)}
TRUNK_LEVELS = 3  # levels in the trunk; the head holds the last two, the pooling and the dense layer
EMBEDDING_DIM = 128


@dataclasses.dataclass
class DlibWeights:
    """The parameters of dlib's face ResNet, input side first.

    convs: ``(kernel float32 [kh, kw, in, out] with the affine folded in, bias [out], stride, padding)``;
    dense ``float32 [256, 128]``; mean_rgb ``float32 [3]`` (subtracted before dividing by 256).
    """

    convs: list
    dense: np.ndarray
    mean_rgb: np.ndarray


class _Reader:
    """dlib's serialisation: integers as a length byte (bit 7: negative) then little-endian bytes, strings as a
    length then bytes, floats as mantissa and exponent integers, tensors as a version, 4 dims, raw float32."""

    def __init__(self, data: bytes, position: int):
        self.data, self.position = data, position

    def integer(self) -> int:
        head = self.data[self.position]
        size = head & 0x0F
        value = int.from_bytes(self.data[self.position + 1:self.position + 1 + size], "little")
        self.position += 1 + size
        return -value if head & 0x80 else value

    def string(self) -> str:
        size = self.integer()
        text = self.data[self.position:self.position + size].decode("latin-1")
        self.position += size
        return text

    def floating(self) -> float:
        mantissa = self.integer()
        return float(mantissa) * 2.0 ** self.integer()

    def tensor(self) -> np.ndarray:
        self.integer()  # version
        count = int(np.prod([self.integer() for _ in range(4)]))
        values = np.frombuffer(self.data, "<f4", count, self.position)
        self.position += 4 * count
        return values.astype(np.float32)


def _layer_positions(data: bytes, name: str) -> list[int]:
    tag = bytes([1, len(name)]) + name.encode()
    positions, start = [], data.find(tag)
    while start >= 0:
        positions.append(start)
        start = data.find(tag, start + 1)
    return positions


def read_dlib_weights(path: str | Path) -> DlibWeights:
    """The weights of dlib's ``dlib_face_recognition_resnet_model_v1.dat`` at ``path``."""
    path = Path(path)
    if not path.is_file():
        raise LandmaskError(f"dlib model file '{path}' not found; install the teacher: pip install -e \".[teacher]\"")
    data = path.read_bytes()
    convs_at, affines_at = _layer_positions(data, "con_4"), _layer_positions(data, "affine_")
    fc_at, input_at = _layer_positions(data, "fc_2"), _layer_positions(data, "input_rgb_image_sized")
    expected = 1 + 2 * sum(blocks for _, blocks, _ in LEVELS)
    if len(convs_at) != expected or len(affines_at) != expected or len(fc_at) != 1 or len(input_at) != 1:
        raise LandmaskError(f"'{path}' is not dlib's face recognition ResNet v1 (found {len(convs_at)} conv and "
                            f"{len(fc_at)} dense layers, expected {expected} and 1)")
    convs = []
    for conv_at, affine_at in zip(convs_at, affines_at):
        reader = _Reader(data, conv_at)
        reader.string()
        params = reader.tensor()
        filters, rows, cols, stride, _, padding, _ = (reader.integer() for _ in range(7))
        kernel = params[:-filters].reshape(filters, -1, rows, cols).transpose(2, 3, 1, 0)  # → [kh, kw, in, out]
        bias = params[-filters:]
        reader = _Reader(data, affine_at)
        reader.string()
        gamma, beta = np.split(reader.tensor(), 2)
        convs.append((kernel * gamma, bias * gamma + beta, stride, padding))
    reader = _Reader(data, fc_at[0])
    reader.string()
    outputs, inputs = reader.integer(), reader.integer()
    dense = reader.tensor().reshape(inputs, outputs)
    reader = _Reader(data, input_at[0])
    reader.string()
    mean_rgb = np.array([reader.floating() for _ in range(3)], np.float32)
    return DlibWeights(convs, dense, mean_rgb)


@keras.saving.register_keras_serializable(package="keras_landmask")
class PadAdd(layers.Layer):
    """dlib's ``add_prev``: ``a + b`` of two ``[B, h, w, c]`` maps; the output has the larger size along every
    axis and each input is zero-padded at the end (bottom, right, last channels) to it."""

    def call(self, inputs):
        a, b = inputs
        target = [max(x, y) for x, y in zip(a.shape[1:], b.shape[1:])]

        def grow(x):
            pads = [[0, 0]] + [[0, t - s] for s, t in zip(x.shape[1:], target)]
            return ops.pad(x, pads) if any(p[1] for p in pads) else x

        return grow(a) + grow(b)

    def compute_output_shape(self, input_shapes):
        a, b = input_shapes
        return (a[0],) + tuple(max(x, y) for x, y in zip(a[1:], b[1:]))


def _conv(x, weights: tuple, name: str, relu: bool):
    kernel, bias, stride, padding = weights
    rows = kernel.shape[0]
    if padding not in (0, rows // 2) or (padding and stride != 1):
        raise LandmaskError(f"dlib conv {name}: padding {padding} with stride {stride} is not supported")
    conv = layers.Conv2D(kernel.shape[-1], rows, strides=stride, padding="same" if padding else "valid",
                         activation="relu" if relu else None, name=name)
    x = conv(x)
    conv.set_weights([kernel, bias])
    return x


def _block(x, convs: list, stride: int, name: str):
    y = _conv(x, convs.pop(0), f"{name}_a", relu=True)
    y = _conv(y, convs.pop(0), f"{name}_b", relu=False)
    shortcut = layers.AveragePooling2D(2, 2, padding="valid", name=f"{name}_pool")(x) if stride == 2 else x
    return layers.ReLU(name=f"{name}_out")(PadAdd(name=f"{name}_add")([y, shortcut]))


def _levels(x, convs: list, levels, first: int):
    for offset, (_, blocks, downsample) in enumerate(levels):
        for block in range(blocks):
            stride = 2 if downsample and block == 0 else 1
            x = _block(x, convs, stride, f"level{first + offset}_block{block + 1}")
    return x


def chip_pixels(height: int, width: int, box=CHIP_BOXES["box"]) -> tuple[int, int, int, int]:
    """``box`` (fractions) in whole pixels of a ``height x width`` crop, square: ``(left, top, right, bottom)``."""
    left, top = round(box[0] * width), round(box[1] * height)
    side = round(((box[2] - box[0]) * width + (box[3] - box[1]) * height) / 2)
    return left, top, left + side, top + side


def dlib_trunk(weights: DlibWeights, height: int = 128, width: int = 96, box=CHIP_BOXES["box"],
               name: str = "trunk") -> keras.Model:
    """uint8 ``[B, height, width, 3]`` RGB crop → float feature map after dlib's first three levels
    (``[B, 8, 8, 128]``); ``box``: the chip's place in the crop (fractions; None: the crop is the chip)."""
    convs = list(weights.convs)
    image = keras.Input((height, width, 3), dtype="uint8", name="image")
    x = layers.Rescaling(1.0, name="as_float")(image)
    if box is not None:
        left, top, right, bottom = chip_pixels(height, width, box)
        x = layers.ZeroPadding2D(((max(-top, 0), max(bottom - height, 0)), (max(-left, 0), max(right - width, 0))),
                                 name="chip_pad")(x)
        x = layers.Cropping2D(((max(top, 0), max(height - bottom, 0)), (max(left, 0), max(width - right, 0))),
                              name="chip_crop")(x)
    if (x.shape[1], x.shape[2]) != (CHIP, CHIP):
        x = layers.Resizing(CHIP, CHIP, interpolation="bilinear", name="chip_resize")(x)
    x = layers.Normalization(mean=weights.mean_rgb.tolist(), variance=[256.0 ** 2] * 3, name="scale")(x)
    x = _conv(x, convs.pop(0), "stem", relu=True)
    x = layers.MaxPooling2D(3, 2, padding="valid", name="stem_pool")(x)
    x = _levels(x, convs, LEVELS[:TRUNK_LEVELS], 1)
    return keras.Model(image, x, name=name)


def dlib_head(weights: DlibWeights, feature_shape: tuple[int, int, int], name: str = "head") -> keras.Model:
    """Feature map ``[B, h, w, 128]`` (``dlib_trunk``'s) → embedding ``[B, 128]`` (dlib's descriptor scale)."""
    skip = 1 + 2 * sum(blocks for _, blocks, _ in LEVELS[:TRUNK_LEVELS])
    convs = list(weights.convs[skip:])
    features = keras.Input(feature_shape, name="features")
    x = _levels(features, convs, LEVELS[TRUNK_LEVELS:], TRUNK_LEVELS + 1)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    dense = layers.Dense(EMBEDDING_DIM, use_bias=False, name="head_dense")
    x = dense(x)
    dense.set_weights([weights.dense])
    return keras.Model(features, x, name=name)
