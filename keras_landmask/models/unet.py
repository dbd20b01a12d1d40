"""The occlusion segmenter: a U-Net with a VGG16 encoder (paper §4.2), 128x96 crop → occlusion probability.

Encoder: VGG16's 13 3x3 convolutions in 5 blocks (2, 2, 3, 3, 3 convs of 64, 128, 256, 512, 512 filters,
times ``width_multiplier``), each followed by batch norm (it trains from scratch here) and ReLU, with a 2x2
max-pool between blocks: 4 poolings, so a 128x96 crop reaches an 8x6 bottleneck. Decoder: per level a 2x2
stride-2 transposed convolution, concatenation with the encoder block of that resolution, two 3x3
convolutions. Only builtin TFLite ops. Input is the uint8 RGB crop; scaling to [-1, 1] happens inside.
"""
from __future__ import annotations

import keras
from keras import layers

from keras_landmask.models.resnet import conv_bn

VGG16_BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))  # (filters, convolutions) per block


def unet_vgg16(height: int = 128, width: int = 96, width_multiplier: float = 1.0,
               name: str = "segmenter") -> keras.Model:
    """uint8 ``[B, height, width, 3]`` → float ``[B, height, width, 1]``, the probability that a pixel is occluded.

    ``height`` and ``width`` must be multiples of 16; ``width_multiplier`` 1.0 is VGG16's widths.
    """
    if height % 16 or width % 16:
        raise ValueError(f"the U-Net pools 4 times, so {height}x{width} must be multiples of 16")
    filters = [max(1, round(f * width_multiplier)) for f, _ in VGG16_BLOCKS]
    image = keras.Input((height, width, 3), dtype="uint8", name="image")
    x = layers.Rescaling(1 / 127.5, offset=-1.0, name="scale")(image)
    skips = []
    for block, ((_, convs), count) in enumerate(zip(VGG16_BLOCKS, filters), start=1):
        if block > 1:
            x = layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
        for conv in range(1, convs + 1):
            x = conv_bn(x, count, 3, 1, 1, f"block{block}_conv{conv}")
        skips.append(x)
    for level in range(len(skips) - 2, -1, -1):  # back up through blocks 4, 3, 2, 1
        x = layers.Conv2DTranspose(filters[level], 2, strides=2, name=f"up{level + 1}_deconv")(x)
        x = layers.Concatenate(name=f"up{level + 1}_concat")([x, skips[level]])
        x = conv_bn(x, filters[level], 3, 1, 1, f"up{level + 1}_conv1")
        x = conv_bn(x, filters[level], 3, 1, 1, f"up{level + 1}_conv2")
    occlusion = layers.Conv2D(1, 1, activation="sigmoid", name="occlusion")(x)
    return keras.Model(image, occlusion, name=name)
