"""ResNet34 trunk (basic blocks [3, 4, 6, 3]) with output stride 16: a 128x96 crop gives an 8x6xC map.

The stem (conv 7x7 / 2 + max-pool / 2) and stages 1–3 (strides 1, 2, 2) reach stride 16; stage 4 keeps
stride 1 and dilates its convolutions by 2 instead, so the receptive field still grows (as PDSN and
DeepLab do). Input is the uint8 RGB crop; scaling to [-1, 1] happens inside the model.
"""
from __future__ import annotations

import keras
from keras import layers

RESNET34_BLOCKS = (3, 4, 6, 3)


def conv_bn(x, filters: int, kernel: int, stride: int, dilation: int, name: str, relu: bool = True):
    x = layers.Conv2D(filters, kernel, strides=stride, padding="same", dilation_rate=dilation, use_bias=False,
                      kernel_initializer="he_normal", name=f"{name}_conv")(x)
    x = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x) if relu else x


def basic_block(x, filters: int, stride: int, dilation: int, name: str):
    """Two 3x3 convolutions with an identity (or 1x1 projection) shortcut."""
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = conv_bn(x, filters, 1, stride, 1, f"{name}_proj", relu=False)
    y = conv_bn(x, filters, 3, stride, 1 if stride > 1 else dilation, f"{name}_a")
    y = conv_bn(y, filters, 3, 1, dilation, f"{name}_b", relu=False)
    return layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([shortcut, y]))


def resnet_trunk(
    height: int = 128, width: int = 96, base_width: int = 64, blocks: tuple[int, ...] = RESNET34_BLOCKS,
    name: str = "trunk",
) -> keras.Model:
    """uint8 ``[B, height, width, 3]`` → float feature map ``[B, height/16, width/16, 8·base_width]``.

    ``base_width`` 64 is the paper's ResNet34; smaller widths make edge/fast variants.
    """
    image = keras.Input((height, width, 3), dtype="uint8", name="image")
    x = layers.Rescaling(1 / 127.5, offset=-1.0, name="scale")(image)
    x = conv_bn(x, base_width, 7, 2, 1, "stem")
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    strides, dilations = (1, 2, 2, 1), (1, 1, 1, 2)
    for stage, count in enumerate(blocks):
        filters = base_width * 2**stage
        for block in range(count):
            stride = strides[stage] if block == 0 else 1
            x = basic_block(x, filters, stride, dilations[stage], f"stage{stage + 1}_block{block + 1}")
    return keras.Model(image, x, name=name)
