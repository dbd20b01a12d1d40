"""Distillation from the teacher: the student's embedding of a (maybe occluded) face should be the teacher's
embedding of the clean face, as unit vectors, so the student's cosine scores read on the teacher's scale.

dlib's unit vectors share a large common part (their mean ``c`` has norm ~0.92: strangers sit at cosine ~0.84),
so the squared distance ``‖normalise(s) − t‖²`` between unit vectors is small for everyone. ``TeacherDistance``
divides it by the teacher's own mean squared distance between two faces, ``2 (1 − ‖c‖²)`` (~0.32 for dlib):
0 is the teacher's embedding, 1 as far as a stranger. Matching the full unit vector (not only its direction
after removing ``c``) keeps every face's scores on one scale, which a threshold for unknown people needs:
matching only the centred direction cost DIR at FPIR 1 % (54 % after fine-tuning vs 65 % before, on the fast
open-set split with box crops; this loss: 72 %).
"""
from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from keras_landmask.models.base_network import BaseNetwork


def stranger_distance(teacher: np.ndarray) -> float:
    """``2 (1 − ‖mean‖²)``: the mean squared distance between two of the unit vectors ``teacher [N, D]``."""
    mean = np.asarray(teacher, np.float64).mean(axis=0)
    return float(2.0 * (1.0 - mean @ mean))


@keras.saving.register_keras_serializable(package="keras_landmask")
class TeacherDistance(keras.losses.Loss):
    """``‖normalise(y_pred) − y_true‖² / scale`` per sample, for ``y_pred [B, D]`` (any scale) and ``y_true
    [B, D]`` unit teacher embeddings; ``scale`` = ``stranger_distance`` of the training targets."""

    def __init__(self, scale: float, name: str = "teacher_distance", **kwargs):
        super().__init__(name=name, **kwargs)
        self.scale = float(scale)

    def call(self, y_true, y_pred):
        difference = ops.normalize(y_pred, axis=-1) - ops.cast(y_true, y_pred.dtype)
        return ops.sum(difference * difference, axis=-1) / self.scale

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


def distillation_model(base: BaseNetwork, teacher_dim: int) -> keras.Model:
    """``[image uint8 [B, H, W, 3], label int [B]]`` → ``{"cosface": logits [B, classes], "teacher": [B,
    teacher_dim]}``: the base network's CosFace logits and its embedding in the teacher's space (itself when it
    has the teacher's size, as dlib's backbone does; else through a trained dense projection, used only here)."""
    image, label = base.train_model.inputs
    embedding = base.head(base.trunk(image))
    logits = base.train_model.get_layer("cosface")([embedding, label])
    if embedding.shape[-1] == teacher_dim:
        student = layers.Identity(name="teacher")(embedding)
    else:
        student = layers.Dense(teacher_dim, name="teacher")(embedding)
    return keras.Model([image, label], {"cosface": layers.Identity(name="cosface_logits")(logits),
                                        "teacher": student}, name="recognizer")
