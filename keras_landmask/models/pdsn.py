"""Pairwise differential Siamese network (PDSN, Song et al. ICCV 2019; paper §3.2).

Trains one mask generator per region of a layout. For a batch of clean crops, each region gets an
occluded partner (the region's box filled with one uniform random intensity, paper §4.2); the frozen
trunk runs once on the clean batch and once on all partners. For region r with mask
``M = G_r(|f(x) − f(x_r)|)`` the loss is ``½·CE(M⊙f(x)) + ½·CE(M⊙f(x_r)) + λ·mean|M⊙f(x) − M⊙f(x_r)|``,
CE through the frozen head and CosFace classifier. Only the generators learn.
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from keras_landmask.models.mask_generator import mask_generator


class PDSN(keras.Model):
    """Custom ``train_step`` over ``(images uint8 [B, H, W, 3], labels int [B])`` batches.

    ``region_masks`` ``float32 [R, H, W]`` are the layout's pixel boxes; ``generators[r]`` is the
    functional mask generator of region r (new ones unless ``generators`` are given, e.g. trained ones
    loaded to build the mask dictionary). ``call(differences [R, B, h, w, C])`` → masks, same shape.
    """

    def __init__(self, trunk: keras.Model, head: keras.Model, cosface: keras.layers.Layer,
                 region_masks: np.ndarray, region_names: list[str], difference_weight: float = 10.0,
                 generators: list[keras.Model] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.trunk, self.head, self.cosface = trunk, head, cosface
        for frozen in (trunk, head, cosface):
            frozen.trainable = False
        feature_shape = tuple(trunk.output_shape[1:])
        self.region_names = list(region_names)
        self.generators = generators or [mask_generator(feature_shape, name=f"generator_{n}") for n in region_names]
        self.region_masks = tf.constant(region_masks[:, None, :, :, None], tf.float32)  # [R, 1, H, W, 1]
        self.difference_weight = difference_weight
        self.cross_entropy = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in ("loss", "ce", "difference")}
        self.trackers["occluded_acc"] = keras.metrics.SparseCategoricalAccuracy(name="occluded_acc")

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, differences, training=False):
        return tf.stack([g(differences[r], training=training) for r, g in enumerate(self.generators)])

    def occlude(self, images):
        """``uint8 [B, H, W, 3]`` → ``uint8 [R, B, H, W, 3]``: each region's box filled with a random grey."""
        clean = tf.cast(images, tf.float32)[None]
        shape = tf.stack([len(self.generators), tf.shape(images)[0], 1, 1, 1])
        grey = tf.random.uniform(shape, 0.0, 255.0)
        occluded = clean * (1.0 - self.region_masks) + grey * self.region_masks
        return tf.cast(tf.round(occluded), tf.uint8)

    def pair_features(self, images):
        """Clean features ``[B, h, w, C]`` and occluded partners' ``[R, B, h, w, C]`` (frozen trunk)."""
        occluded = self.occlude(images)
        n_regions, batch = len(self.generators), tf.shape(images)[0]
        flat = tf.reshape(occluded, tf.concat([[n_regions * batch], tf.shape(images)[1:]], 0))
        features = self.trunk(images, training=False)
        partners = self.trunk(flat, training=False)
        return features, tf.reshape(partners, tf.concat([[n_regions, batch], tf.shape(features)[1:]], 0))

    def train_step(self, data):
        images, labels, _ = keras.utils.unpack_x_y_sample_weight(data)
        features, partners = self.pair_features(images)
        differences = tf.abs(features[None] - partners)
        with tf.GradientTape() as tape:
            masks = self(differences, training=True)
            total = ce_sum = difference_sum = 0.0
            for r in range(len(self.generators)):
                masked_clean, masked_occluded = masks[r] * features, masks[r] * partners[r]
                clean_embedding = self.head(masked_clean, training=False)
                occluded_embedding = self.head(masked_occluded, training=False)
                ce = 0.5 * (self.cross_entropy(labels, self.cosface([clean_embedding, labels]))
                            + self.cross_entropy(labels, self.cosface([occluded_embedding, labels])))
                difference = tf.reduce_mean(tf.abs(masked_clean - masked_occluded))
                total += ce + self.difference_weight * difference
                ce_sum += ce
                difference_sum += difference
                self.trackers["occluded_acc"].update_state(labels, self.cosface.cosine(occluded_embedding))
        variables = [v for g in self.generators for v in g.trainable_variables]
        self.optimizer.apply(tape.gradient(total, variables), variables)
        n = float(len(self.generators))
        for name, value in (("loss", total / n), ("ce", ce_sum / n), ("difference", difference_sum / n)):
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}
