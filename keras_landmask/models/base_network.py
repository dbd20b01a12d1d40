"""The base network: one set of weights seen as a training model and as its exportable parts.

``trunk`` (uint8 image → feature map), ``head`` (feature map → embedding), ``embedder`` (head ∘ trunk)
and ``train_model`` ([image, label] → CosFace logits) share their layers, so the feature discarding
mask can later sit between trunk and head, and export needs no classifier.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import keras

from keras_landmask.errors import LandmaskError
from keras_landmask.models.cosface import CosFace
from keras_landmask.models.dlib_resnet import (CHIP_BOXES, dlib_head, dlib_trunk,  # registers PadAdd for loading
                                               read_dlib_weights)
from keras_landmask.models.embedding_head import embedding_head
from keras_landmask.models.resnet import resnet_trunk
from keras_landmask.models.saving import load_keras_file


@dataclasses.dataclass
class BaseNetwork:
    train_model: keras.Model
    trunk: keras.Model
    head: keras.Model
    embedder: keras.Model


def _assemble(trunk: keras.Model, head: keras.Model, cosface: CosFace) -> BaseNetwork:
    image = keras.Input(trunk.input_shape[1:], dtype="uint8", name="image")
    label = keras.Input((), dtype="int32", name="label")
    embedding = head(trunk(image))
    train_model = keras.Model([image, label], cosface([embedding, label]), name="recognizer")
    embedder = keras.Model(image, embedding, name="embedder")
    return BaseNetwork(train_model, trunk, head, embedder)


def build_base_network(
    n_classes: int, height: int = 128, width: int = 96, base_width: int = 64, embedding_dim: int = 512,
    dropout: float = 0.4, scale: float = 64.0, margin: float = 0.35, backbone: str = "resnet34",
    alignment: str = "box",
) -> BaseNetwork:
    """A base network + CosFace for ``n_classes`` identities: ``backbone`` "resnet34" (fresh ResNet34 trunk and
    embedding head of ``base_width`` / ``embedding_dim`` / ``dropout``) or "dlib" (dlib's face ResNet with its
    trained weights, ``models/dlib_resnet.py``, its face chip cut from crops of ``alignment``; needs the teacher's
    model files)."""
    if backbone == "dlib":
        from keras_landmask.teacher import model_paths

        weights = read_dlib_weights(model_paths()["descriptor"])
        trunk = dlib_trunk(weights, height, width, CHIP_BOXES[alignment])
        head = dlib_head(weights, tuple(trunk.output_shape[1:]))
    elif backbone == "resnet34":
        trunk = resnet_trunk(height, width, base_width)
        head = embedding_head(tuple(trunk.output_shape[1:]), embedding_dim, dropout)
    else:
        raise LandmaskError(f"unknown backbone '{backbone}'; choose 'dlib' or 'resnet34'")
    return _assemble(trunk, head, CosFace(n_classes, scale, margin, name="cosface"))


def load_base_network(path: str | Path) -> BaseNetwork:
    """Load a ``.keras`` file written by ``BaseNetwork.train_model.save``."""
    model = load_keras_file(path, "base", "recognizer")
    try:
        return _assemble(model.get_layer("trunk"), model.get_layer("head"), model.get_layer("cosface"))
    except (ValueError, KeyError) as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise LandmaskError(f"'{path}' is not a keras-landmask recognizer ({reason}); retrain it or pass the "
                            "right file") from None
