"""One loader for the ``.keras`` files of a run, with errors that say which stage to rerun."""
from __future__ import annotations

import zipfile
from pathlib import Path

import keras

from keras_landmask.errors import LandmaskError


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
