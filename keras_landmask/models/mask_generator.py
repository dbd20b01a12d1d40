"""Mask generator (paper §3.2, PDSN): conv 3x3 (C → C) → PReLU → BN → sigmoid.

Input is the absolute difference ``|f(x) − f(x_occ)|`` of the frozen trunk's feature maps
``[B, h, w, C]``; output a soft mask of the same shape in (0, 1), low where the occlusion of its
region corrupts a feature.
"""
from __future__ import annotations

import keras
from keras import layers


def mask_generator(feature_shape: tuple[int, int, int], name: str = "mask_generator") -> keras.Model:
    """``[B, h, w, C]`` feature difference → ``[B, h, w, C]`` soft mask."""
    difference = keras.Input(feature_shape, name="difference")
    x = layers.Conv2D(feature_shape[-1], 3, padding="same", name="conv")(difference)
    x = layers.PReLU(shared_axes=[1, 2], name="prelu")(x)
    x = layers.BatchNormalization(name="bn")(x)
    mask = layers.Activation("sigmoid", name="sigmoid")(x)
    return keras.Model(difference, mask, name=name)
