"""tf.data input pipelines for the recognizer: augmented training batches and plain inference batches.

Images stay ``uint8 [B, H, W, 3]`` (the models scale them); labels are ``int32 [B]``. Training
inputs are ``((image, label), label)`` because CosFace needs the label inside the model.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf
import keras

from keras_landmask.data.faceset import FaceSet


def photometric_geometric_augmenter(seed: int) -> keras.Sequential:
    """Horizontal flip, ±8 % scale, ±5 % shift, ±20 % brightness and contrast; float in, float out (0..255)."""
    return keras.Sequential(
        [
            keras.layers.RandomFlip("horizontal", seed=seed),
            keras.layers.RandomZoom(0.08, fill_mode="constant", seed=seed + 1),
            keras.layers.RandomTranslation(0.05, 0.05, fill_mode="constant", seed=seed + 2),
            keras.layers.RandomBrightness(0.2, value_range=(0, 255), seed=seed + 3),
            keras.layers.RandomContrast(0.2, seed=seed + 4),
        ],
        name="augment",
    )


def occlusion_function(occluders: dict, probability: float, seed: int):
    """A numpy function ``(image, landmarks) -> image`` that, with ``probability``, applies one occluder
    chosen at random from ``occluders`` (kind → ``f(image, landmarks, rng)``)."""
    rng = np.random.default_rng(seed)
    kinds = list(occluders)

    def occlude(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        if rng.random() >= probability:
            return image
        return occluders[kinds[rng.integers(len(kinds))]](image, landmarks, rng)[0]

    return occlude


def training_dataset(faces: FaceSet, batch_size: int, seed: int, occluders: dict | None = None,
                     occlusion_probability: float = 0.0, targets: np.ndarray | None = None) -> tf.data.Dataset:
    """Shuffled, augmented, repeated-per-epoch batches, the same for the same ``seed`` (every random draw
    comes from it, in a fixed order).

    Without ``targets``: ``((image, label), label)``. With ``targets float32 [N, D]`` (the teacher's embedding of
    each clean face): ``((image, label), {"cosface": label, "teacher": target}, {"cosface": w, "teacher": 1})``,
    ``w`` 1 for a labelled face and 0 for an unlabelled one (label -1, given 0 so CosFace can run on it).
    The occlusion and augmentation apply to the image only: the target stays the clean face's.
    """
    labels = faces.labels.astype(np.int32)
    columns = (faces.images, faces.landmarks, np.maximum(labels, 0))
    if targets is not None:
        columns += (np.asarray(targets, np.float32), (labels >= 0).astype(np.float32))
    dataset = tf.data.Dataset.from_tensor_slices(columns)
    dataset = dataset.shuffle(len(faces), seed=seed, reshuffle_each_iteration=True)
    if occluders and occlusion_probability > 0:
        occlude = occlusion_function(occluders, occlusion_probability, seed)
        shape = faces.images.shape[1:]

        def add_occlusion(image, landmarks, *rest):
            image = tf.numpy_function(occlude, [image, landmarks], tf.uint8, stateful=True)
            return (tf.ensure_shape(image, shape), landmarks, *rest)

        dataset = dataset.map(add_occlusion, num_parallel_calls=1)
    augmenter = photometric_geometric_augmenter(seed)

    def augment(images, landmarks, labels, *rest):
        images = augmenter(tf.cast(images, tf.float32), training=True)
        images = tf.cast(tf.clip_by_value(tf.round(images), 0, 255), tf.uint8)
        if not rest:
            return (images, labels), labels
        teacher, labelled = rest
        return ((images, labels), {"cosface": labels, "teacher": teacher},
                {"cosface": labelled, "teacher": tf.ones_like(labelled)})

    # One batch at a time: the random layers draw from a seed state that parallel calls would advance in
    # whatever order their threads run, so the same seed gave other weights (measured: 39 ms a batch of 32
    # serially vs 18-21 ms in parallel, hidden behind a ~470 ms fast training step by the prefetch).
    dataset = dataset.batch(batch_size, drop_remainder=True).map(augment, num_parallel_calls=1)
    return dataset.prefetch(tf.data.AUTOTUNE)


def embed(embedder: keras.Model, images: np.ndarray, batch_size: int = 128) -> np.ndarray:
    """Embeddings ``float32 [N, D]`` of ``images uint8 [N, H, W, 3]`` (inference mode)."""
    dataset = tf.data.Dataset.from_tensor_slices(images).batch(batch_size).prefetch(tf.data.AUTOTUNE)
    return np.asarray(embedder.predict(dataset, verbose=0), dtype=np.float32)
