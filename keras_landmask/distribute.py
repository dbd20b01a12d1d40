"""``--strategy default|mirrored|multiworker``: which tf.distribute strategy trains the model.

``mirrored`` replicates over the local GPUs (one CPU replica without them); ``multiworker`` trains
synchronously across the processes described by the ``TF_CONFIG`` environment variable (the same
command runs on each). The dataset's batch is the global batch: each step splits it between replicas.

Worker 0 (or the ``chief`` task) is the only one that writes the run folder; every other worker keeps
its own copy under the temp dir (:func:`worker_runs_dir`), its resume backup included.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from pathlib import Path

import keras
import tensorflow as tf

from keras_landmask.errors import LandmaskError

STRATEGIES = ("default", "mirrored", "multiworker")
# The dtypes a cross-worker all-reduce carries; other values are reduced as float32.
_COLLECTIVE_DTYPES = (tf.bfloat16, tf.float16, tf.float32, tf.float64, tf.int32, tf.int64)


class Keras3MultiWorkerStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """``MultiWorkerMirroredStrategy`` whose ``reduce`` takes what Keras 3 hands it.

    ``fit`` reduces a whole nested input batch (uint8 images included) to build the model, and each
    train step reduces scalar metrics with ``axis=0``; the stock strategy rejects nested values, uint8
    and that axis (keras-team/keras#20585, tensorflow/tensorflow#72388). Here each value is reduced on
    its own, a scalar over replicas only, and a dtype collectives lack as float32.
    """

    def reduce(self, reduce_op, value, axis):
        return tf.nest.map_structure(lambda v: self._reduce_value(reduce_op, v, axis), value)

    def _reduce_value(self, reduce_op, value, axis):
        local = self.experimental_local_results(value)[0]
        axis = axis if local.shape.rank else None
        if local.dtype in _COLLECTIVE_DTYPES:
            return super().reduce(reduce_op, value, axis)
        wide = tf.nest.map_structure(lambda t: tf.cast(t, tf.float32), value, expand_composites=True)
        return tf.cast(super().reduce(reduce_op, wide, axis), local.dtype)


class SyncMovingStatistics(keras.callbacks.Callback):
    """At each epoch end, set the model's float non-trainable variables (batch-norm moving statistics)
    to their mean over the replicas.

    Keras 3 updates them on each replica from its own share of the batch, so without this the workers'
    models drift apart: a distributed ``predict`` mixes them and the chief saves only its own.
    """

    def on_train_begin(self, logs=None):
        strategy = self.model.distribute_strategy
        variables = [v for v in self.model.non_trainable_variables if "float" in v.dtype]

        def average():
            means = tf.distribute.get_replica_context().all_reduce(
                "MEAN", [tf.identity(v.value) for v in variables])
            for variable, mean in zip(variables, means):
                variable.assign(mean)

        self.sync = None
        if strategy.num_replicas_in_sync > 1 and variables:
            self.sync = tf.function(lambda: strategy.run(average))

    def on_epoch_end(self, epoch, logs=None):
        if self.sync is not None:
            self.sync()


@functools.cache
def make_strategy(name: str) -> tf.distribute.Strategy:
    """The strategy called ``name``, made once per process; ``multiworker`` needs ``TF_CONFIG`` and must
    be made before any TensorFlow op runs (collective ops are set up at startup)."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise LandmaskError("--strategy multiworker needs TF_CONFIG (cluster and task) set on every worker")
        return Keras3MultiWorkerStrategy()
    raise LandmaskError(f"unknown strategy '{name}'; choose one of: {', '.join(STRATEGIES)}")


def shard_by_data(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Let a multi-worker strategy give each worker its share of every global batch (data held in
    memory has no files to shard by)."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def _task_and_cluster() -> tuple[dict, dict]:
    tf_config = json.loads(os.environ.get("TF_CONFIG", "{}"))
    return tf_config.get("task") or {}, tf_config.get("cluster", {})


def is_chief() -> bool:
    """Whether this process writes results: no TF_CONFIG, the "chief" task, or worker 0 of a cluster
    without a chief."""
    task, cluster = _task_and_cluster()
    if not task or task.get("type") == "chief":
        return True
    return task.get("type") == "worker" and task.get("index", 0) == 0 and "chief" not in cluster


def worker_runs_dir(runs_dir: str | Path) -> Path:
    """Where this process keeps its runs: ``runs_dir`` on the chief; on another worker a private folder
    under the temp dir, the same on every start, so a resumed run finds that worker's backup."""
    if is_chief():
        return Path(runs_dir)
    task, _ = _task_and_cluster()
    key = hashlib.sha256(str(Path(runs_dir).resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / "keras-landmask-workers" / f"{task['type']}{task.get('index', 0)}-{key}"
