"""The recognizer builder: one set of weights seen as a training model and as its exportable parts.

``trunk`` (uint8 image → feature map), ``head`` (feature map → embedding), ``embedder`` (head ∘ trunk)
and ``train_model`` ([image, label] → CosFace logits) share their layers, so the feature discarding
mask can later sit between trunk and head, and export needs no classifier.
"""
from __future__ import annotations

import dataclasses
import zipfile
from pathlib import Path

import keras

from keras_landmask.errors import LandmaskError
from keras_landmask.models.cosface import CosFace
from keras_landmask.models.embedding_head import embedding_head
from keras_landmask.models.resnet import resnet_trunk


@dataclasses.dataclass
class Recognizer:
    train_model: keras.Model
    trunk: keras.Model
    head: keras.Model
    embedder: keras.Model


def _assemble(trunk: keras.Model, head: keras.Model, cosface: CosFace) -> Recognizer:
    image = keras.Input(trunk.input_shape[1:], dtype="uint8", name="image")
    label = keras.Input((), dtype="int32", name="label")
    embedding = head(trunk(image))
    train_model = keras.Model([image, label], cosface([embedding, label]), name="recognizer")
    embedder = keras.Model(image, embedding, name="embedder")
    return Recognizer(train_model, trunk, head, embedder)


def build_recognizer(
    n_classes: int, height: int = 128, width: int = 96, base_width: int = 64, embedding_dim: int = 512,
    dropout: float = 0.4, scale: float = 64.0, margin: float = 0.35,
) -> Recognizer:
    """A fresh ResNet34 + embedding head + CosFace recognizer for ``n_classes`` identities."""
    trunk = resnet_trunk(height, width, base_width)
    head = embedding_head(tuple(trunk.output_shape[1:]), embedding_dim, dropout)
    return _assemble(trunk, head, CosFace(n_classes, scale, margin, name="cosface"))


def load_keras_file(path: str | Path, stage: str, what: str = "model") -> keras.Model:
    """The Keras model in ``path`` (a keras-landmask ``what``, written by ``stage``); ``LandmaskError`` saying to
    rerun that stage when the file is missing, damaged (not a .keras zip, cut short) or otherwise unloadable."""
    path = Path(path)
    if not path.is_file():
        raise LandmaskError(f"model file '{path}' not found; run the '{stage}' stage first")
    retrain = f"retrain it: rerun the '{stage}' stage with --force"
    if path.suffix == ".keras" and not zipfile.is_zipfile(path):
        raise LandmaskError(f"'{path}' is not a keras-landmask {what}: not a readable model (damaged, or not a "
                            f".keras file); {retrain}")
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as error:  # zip/HDF5/JSON/deserialisation errors of a damaged or foreign file
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise LandmaskError(f"'{path}' is not a keras-landmask {what}: not a readable model ({reason}); "
                            f"{retrain}") from None


def load_recognizer(path: str | Path) -> Recognizer:
    """Load a ``.keras`` file written by ``Recognizer.train_model.save``."""
    model = load_keras_file(path, "base", "recognizer")
    try:
        return _assemble(model.get_layer("trunk"), model.get_layer("head"), model.get_layer("cosface"))
    except (ValueError, KeyError) as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise LandmaskError(f"'{path}' is not a keras-landmask recognizer ({reason}); retrain it or pass the "
                            "right file") from None
