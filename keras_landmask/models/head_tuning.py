"""The head-tuning model: the base network's head, trunk left out, seen through an occlusion pattern's FDM.

Inputs are trunk feature maps (``float32 [B, h, w, C]``) of an occluded face and of the same face clean, and the
FDM of the occlusion's pattern (``[B, h, w, C]``, 0/1; all ones when no region is flagged). Its four outputs
(``float [B, D]``, the head's embeddings) are the occluded and the clean face, each masked by the FDM and
unmasked; every one is trained towards the teacher's embedding of the clean face (``TeacherDistance``), so a
masked probe and a masked gallery face meet in the teacher's space and unmasked faces stay where they were.
The head's layers are shared with the base network: tuning this model tunes the recognizer's head.
"""
from __future__ import annotations

import keras
from keras import layers

OUTPUTS = ("masked_occluded", "masked_clean", "occluded", "clean")


def head_tuning_model(head: keras.Model) -> keras.Model:
    """``[occluded map, clean map, fdm]`` → ``{name: embedding [B, D]}`` for each name of ``OUTPUTS``."""
    shape = head.input_shape[1:]
    occluded = keras.Input(shape, name="occluded_features")
    clean = keras.Input(shape, name="clean_features")
    fdm = keras.Input(shape, name="fdm")
    maps = {
        "masked_occluded": layers.Multiply(name="mask_occluded")([occluded, fdm]),
        "masked_clean": layers.Multiply(name="mask_clean")([clean, fdm]),
        "occluded": occluded,
        "clean": clean,
    }
    outputs = {name: layers.Identity(name=name)(head(maps[name])) for name in OUTPUTS}
    return keras.Model([occluded, clean, fdm], outputs, name="head_tuning")
