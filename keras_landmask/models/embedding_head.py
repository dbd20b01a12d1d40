"""Embedding head: BN → dropout → flatten → dense(512) → BN (affine at inference).

Because every step is affine once training is over, ``head(M ⊙ f)`` is an affine function of the
masked feature map, which the gallery cache of the edge runtime relies on.
"""
from __future__ import annotations

import keras
from keras import layers


def embedding_head(feature_shape: tuple[int, int, int], embedding_dim: int = 512, dropout: float = 0.4,
                   name: str = "head") -> keras.Model:
    """Feature map ``[B, h, w, C]`` → embedding ``[B, embedding_dim]``."""
    features = keras.Input(feature_shape, name="features")
    x = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name="head_bn_in")(features)
    x = layers.Dropout(dropout, name="head_dropout")(x)
    x = layers.Flatten(name="head_flatten")(x)
    x = layers.Dense(embedding_dim, name="head_dense")(x)
    x = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, scale=False, name="head_bn_out")(x)
    return keras.Model(features, x, name=name)
