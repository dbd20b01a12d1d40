"""tf.distribute strategies: chief detection, private worker folders, replica statistics, and real runs
with ``--strategy mirrored`` and ``--strategy multiworker`` (two worker processes on localhost)."""
import csv
import json
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from keras_landmask.distribute import is_chief, make_strategy, worker_runs_dir
from keras_landmask.errors import LandmaskError

TWO_WORKERS = {"worker": ["localhost:1111", "localhost:2222"]}


def _tf_config(task_type, index, cluster=TWO_WORKERS):
    return json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})


@pytest.mark.parametrize(
    "tf_config, chief",
    [
        (None, True),
        (_tf_config("worker", 0), True),
        (_tf_config("worker", 1), False),
        (_tf_config("chief", 0, {"chief": ["localhost:1"], "worker": ["localhost:2"]}), True),
        (_tf_config("worker", 0, {"chief": ["localhost:1"], "worker": ["localhost:2"]}), False),
    ],
)
def test_is_chief_follows_tf_config(monkeypatch, tf_config, chief):
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    assert is_chief() is chief


def test_only_the_chief_keeps_runs_in_the_given_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("TF_CONFIG", _tf_config("worker", 0))
    assert worker_runs_dir(tmp_path / "runs") == tmp_path / "runs"
    monkeypatch.setenv("TF_CONFIG", _tf_config("worker", 1))
    private = worker_runs_dir(tmp_path / "runs")
    assert private.is_relative_to(tempfile.gettempdir()) and not private.is_relative_to(tmp_path)
    assert worker_runs_dir(tmp_path / "runs") == private  # stable, so a resumed run finds its backup
    assert worker_runs_dir(tmp_path / "other") != private


def test_strategy_errors_are_clear(monkeypatch):
    with pytest.raises(LandmaskError, match="unknown strategy 'ring'"):
        make_strategy("ring")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(LandmaskError, match="needs TF_CONFIG"):
        make_strategy("multiworker")


def test_replica_statistics_are_averaged_each_epoch(tmp_path):
    """Two CPU replicas see different data; without the callback their batch-norm statistics differ."""
    script = textwrap.dedent("""
        import numpy as np, tensorflow as tf, keras
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from keras_landmask.distribute import SyncMovingStatistics
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        x = np.zeros((32, 3), "float32")
        x[np.arange(32) % 8 >= 4] = 10.0  # each batch of 8 splits 4 / 4: replica 1 sees only the tens
        with strategy.scope():
            model = keras.Sequential([keras.Input((3,)), keras.layers.BatchNormalization(), keras.layers.Dense(1)])
            model.compile("sgd", "mse")
        dataset = tf.data.Dataset.from_tensor_slices((x, x[:, :1])).batch(8)
        for callbacks in ([], [SyncMovingStatistics()]):
            model.fit(dataset, epochs=1, verbose=0, callbacks=callbacks)
            copies = strategy.experimental_local_results(model.layers[0].moving_mean.value)
            print(float(np.abs(copies[0] - copies[1]).max()))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    without, with_sync = map(float, result.stdout.split())
    assert without > 0.1 and with_sync == 0.0


@pytest.fixture(scope="module")
def cli_args(tmp_path_factory, lfw_root, masks_dir):
    """Arguments of a 3-epoch smoke run of both stages, with a detection cache shared by this module's runs."""
    cache = tmp_path_factory.mktemp("distribute-cache")
    return ["--data", str(lfw_root), "--profile", "smoke", "--stages", "prepare,base", "--cache-dir", str(cache),
            "--no-progress", "--set", f"occlusion.masks_dir={masks_dir}", "--set", "train.epochs=3",
            "--set", "train.teacher=none", "--set", "model.backbone=resnet34", "--set", "headtune.epochs=0"]


def _train_command(*args):
    return [sys.executable, "-m", "keras_landmask.train", *args]


def test_mirrored_strategy_trains_the_smoke_profile(cli_args, tmp_path):
    command = _train_command(*cli_args, "--runs-dir", str(tmp_path), "--run", "mirrored", "--strategy", "mirrored")
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "mirrored" / "base" / "metrics.json").read_text())
    assert metrics["epochs_run"] == 3 and 0.0 <= metrics["test"]["rank1"] <= 1.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


def _rows(path: Path) -> list[dict]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_two_workers_on_localhost_train_and_only_the_chief_writes(cli_args, tmp_path):
    cluster = {"worker": [f"localhost:{_free_port()}", f"localhost:{_free_port()}"]}
    runs, run = tmp_path / "runs", tmp_path / "runs" / "multi"
    workers = []
    for index in range(2):
        temp = tmp_path / f"worker{index}-tmp"  # where a non-chief worker keeps its own run folder
        temp.mkdir()
        env = dict(os.environ, TF_CONFIG=_tf_config("worker", index, cluster), TMPDIR=str(temp),
                   TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1")  # two processes share the cores
        command = _train_command(*cli_args, "--runs-dir", str(runs), "--run", "multi", "--strategy", "multiworker")
        workers.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    try:
        outputs = [worker.communicate(timeout=400)[0] for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
    for index, (worker, output) in enumerate(zip(workers, outputs)):
        assert worker.returncode == 0, f"worker {index}:\n{output[-3000:]}"

    assert (run / "base" / "model.keras").is_file() and not (run / "base" / "backup").exists()
    metrics = json.loads((run / "base" / "metrics.json").read_text())
    assert metrics["epochs_run"] == 3
    chief_log = _rows(run / "base" / "log.csv")
    assert [int(row["epoch"]) for row in chief_log] == [0, 1, 2]  # one writer, no rows appended twice

    assert str(run) not in outputs[1]
    private = list((tmp_path / "worker1-tmp").glob("keras-landmask-workers/*/multi"))
    assert len(private) == 1, "the non-chief worker keeps its own run folder under its temp dir"
    assert not (private[0] / "base" / "metrics.json").exists()
    # Both workers evaluated the same synchronised model, so they logged the same validation rank-1.
    assert [r["val_rank1"] for r in _rows(private[0] / "base" / "log.csv")] == [r["val_rank1"] for r in chief_log]
