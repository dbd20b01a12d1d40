"""``--strategy default|mirrored|multiworker``: which tf.distribute strategy trains the model.

``mirrored`` replicates over the local devices (GPUs); ``multiworker`` trains synchronously across
machines described by the ``TF_CONFIG`` environment variable (the same command runs on each; worker 0
is the chief and the only one that writes the run folder).
"""
from __future__ import annotations

import json
import os

import tensorflow as tf

from keras_landmask.errors import LandmaskError

STRATEGIES = ("default", "mirrored", "multiworker")


def make_strategy(name: str) -> tf.distribute.Strategy:
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise LandmaskError("--strategy multiworker needs TF_CONFIG (cluster and task) set on every worker")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise LandmaskError(f"unknown strategy '{name}'; choose one of: {', '.join(STRATEGIES)}")


def is_chief() -> bool:
    """Whether this process writes results: no TF_CONFIG, the "chief" task, or worker 0 of a cluster
    without a chief."""
    tf_config = json.loads(os.environ.get("TF_CONFIG", "{}"))
    task = tf_config.get("task")
    if not task:
        return True
    if task.get("type") == "chief":
        return True
    return task.get("type") == "worker" and task.get("index", 0) == 0 and "chief" not in tf_config.get("cluster", {})
