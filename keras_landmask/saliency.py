"""Saliency maps (paper Figs. 2, 8, 9): |∂ score / ∂ input| of the target identity's cosine score."""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf


def saliency_maps(trunk: keras.Model, head: keras.Model, cosface, images: np.ndarray, labels: np.ndarray,
                  fdm: np.ndarray | None = None) -> np.ndarray:
    """``float32 [N, H, W]`` in 0..1 (each map scaled by its maximum): the largest absolute gradient over
    colour channels of the cosine between the embedding and the true class centre, optionally with the
    feature discarding mask ``fdm [N, h, w, C]`` applied between trunk and head.

    The gradient is taken w.r.t. the output of the trunk's first layer, the pixels as floats (scaled, for
    ResNet34: pixels / 127.5 − 1), so it is proportional to the gradient w.r.t. the pixels.
    """
    first = trunk.layers[1]  # the layer after the uint8 input: the cast to float (and scaling)
    scaled_trunk = keras.Model(first.output, trunk.output)

    # A tf.function prunes the unused weight gradients: eager backprop also computes filter gradients,
    # which crash oneDNN on some CPUs (Conv2DBackpropFilter, seen with TF 2.21).
    @tf.function
    def gradient(scaled, labels, fdm):
        with tf.GradientTape() as tape:
            tape.watch(scaled)
            features = scaled_trunk(scaled, training=False) * fdm
            cosine = cosface.cosine(head(features, training=False))
            score = tf.reduce_sum(tf.gather(cosine, labels, batch_dims=1))
        return tf.reduce_max(tf.abs(tape.gradient(score, scaled)), axis=-1)

    if fdm is None:
        fdm = np.ones((len(images), *trunk.output_shape[1:]), np.float32)
    maps = gradient(tf.constant(np.asarray(first(images), np.float32)), tf.constant(labels, tf.int32),
                    tf.constant(fdm, tf.float32)).numpy()
    return maps / np.maximum(maps.max(axis=(1, 2), keepdims=True), 1e-12)
