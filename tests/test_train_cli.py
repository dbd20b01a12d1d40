"""The CLI ``python -m keras_landmask.train``: prepare and base stages end to end, reruns, resume, errors."""
import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from keras_landmask.config import load_config
from keras_landmask.data.faceset import FaceSet
from keras_landmask.train import main
from tests.conftest import with_stages


def test_prepare_writes_summary_faces_and_pictures(smoke_run):
    run, _ = smoke_run
    out = run / "prepare"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_people"] == 4
    assert summary["n_images"] + summary["n_unreadable"] == 48
    for key in ("n_no_face", "n_multi_face", "n_unreadable"):
        assert isinstance(summary[key], int)
    assert set(summary["coverage"]) == {"LM1", "LM2"}
    assert 0.5 < summary["coverage"]["LM2"]["all"] <= 1.0
    assert set(summary["seg_label_iou"]) == {"block", "band", "face_mask", "sunglasses"}
    faces = FaceSet.load(out / "faces.npz")
    assert faces.images.shape == (summary["n_images"], 128, 96, 3)
    assert set(np.unique(faces.splits)) == {"train", "val", "test"}
    layouts = json.loads((out / "layouts.json").read_text())
    assert set(layouts) == {"LM1", "LM2", "grid3x3"}
    for picture in ("layouts.png", "occlusions.png", "seg_labels.png"):
        assert (out / picture).stat().st_size > 10_000
    assert (run / "config.yaml").is_file() and (out / "DONE.json").is_file()


def test_prepare_holds_people_out_for_the_open_set_evaluation(smoke_run):
    run, _ = smoke_run
    summary = json.loads((run / "prepare" / "summary.json").read_text())
    assert summary["openset"] == {"people": 2, "enrol": 10, "probe": 14, "unknown": 20}
    trained = FaceSet.load(run / "prepare" / "faces.npz")
    held = FaceSet.load(run / "prepare" / "openset.npz")
    assert not set(trained.people) & set(held.people)  # never trained on
    assert not {Path(p).parent.name for p in held.paths} & set(trained.people)
    unknown = held.subset("unknown")
    assert set(unknown.labels.tolist()) == {-1} and len(set(unknown.paths)) == 20
    assert all("lfw_single" in p for p in unknown.paths)
    enrol = held.subset("enrol")
    assert sorted(np.bincount(enrol.labels).tolist()) == [5, 5]


def test_rerun_skips_and_force_redoes(smoke_run, capsys):
    _, args = smoke_run
    assert main(args) == 0
    assert "already finished" in capsys.readouterr().out
    assert main(args + ["--force"]) == 0
    assert "[prepare] running" in capsys.readouterr().out


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "keras_landmask.train", *args], capture_output=True, text=True)


def test_help_explains_the_stages():
    result = _cli("--help")
    assert result.returncode == 0
    assert "--stages" in result.stdout and "prepare" in result.stdout and "smoke" in result.stdout


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--data", "/no/such/folder"], "data folder '/no/such/folder' does not exist"),
        (["--profile", "huge"], "unknown profile 'huge'"),
        (["--stages", "prepare,dance"], "unknown stage(s) dance"),
        (["--set", "data.max_people=500"], "500 were asked for"),
        (["--set", "occlusion.masks_dir=/no/masks"], "no masks.cfg in /no/masks"),
    ],
)
def test_errors_are_one_line_without_traceback(tmp_path, lfw_root, extra, message):
    args = ["--data", str(lfw_root), "--runs-dir", str(tmp_path), "--stages", "prepare", *extra]
    result = _cli(*args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0
    assert message in result.stderr


def test_empty_data_folder_is_a_clear_error(tmp_path):
    (tmp_path / "data").mkdir()
    result = _cli("--data", str(tmp_path / "data"), "--runs-dir", str(tmp_path / "runs"))
    assert result.returncode == 2 and "holds no person folders" in result.stderr


def test_no_data_flag_says_what_to_pass(tmp_path, monkeypatch):
    monkeypatch.delenv("LANDMASK_DATA", raising=False)
    result = _cli("--runs-dir", str(tmp_path))
    assert result.returncode == 2 and "pass --data DIR" in result.stderr


def test_base_smoke_run_lowers_the_loss_and_writes_model_and_metrics(smoke_base):
    rows = list(csv.DictReader((smoke_base / "log.csv").open()))
    losses = [float(r["loss"]) for r in rows]
    assert len(losses) == load_config("smoke").train.epochs
    assert np.mean(losses[-3:]) < 0.8 * losses[0]  # epoch losses are noisy on 32 images
    metrics = json.loads((smoke_base / "metrics.json").read_text())
    for split in ("val", "test"):
        assert 0.0 <= metrics[split]["rank1"] <= metrics[split]["rank5"] <= 1.0
    assert metrics["parameters"] > 0
    assert (smoke_base / "model.keras").is_file() and not (smoke_base / "backup").exists()
    assert (smoke_base / "training.png").stat().st_size > 5_000
    per_identity = list(csv.DictReader((smoke_base / "per_identity.csv").open()))
    assert {r["split"] for r in per_identity} == {"val", "test"}


def test_base_metrics_match_the_saved_model(smoke_base, smoke_run):
    from keras_landmask.data.pipeline import embed
    from keras_landmask.evaluate import identify
    from keras_landmask.models.base_network import load_base_network

    faces = FaceSet.load(smoke_run[0] / "prepare" / "faces.npz")
    train, test = faces.subset("train"), faces.subset("test")
    embedder = load_base_network(smoke_base / "model.keras").embedder
    result = identify(embed(embedder, train.images), train.labels, embed(embedder, test.images), test.labels)
    metrics = json.loads((smoke_base / "metrics.json").read_text())
    assert result.rank1 == pytest.approx(metrics["test"]["rank1"])


def test_interrupted_training_resumes_where_it_stopped(smoke_run, tmp_path, monkeypatch):
    import shutil

    from keras_landmask.callbacks import BestRankOne

    run, args = smoke_run
    copy = tmp_path / "runs" / "resume"
    shutil.copytree(run / "prepare", copy / "prepare")
    stage_args = with_stages(args, "base") + ["--set", "train.teacher=none"]  # CosFace only: no teacher stage
    stage_args[stage_args.index("--runs-dir") + 1] = str(tmp_path / "runs")
    stage_args[stage_args.index("--run") + 1] = "resume"
    original = BestRankOne.on_epoch_end

    def crash_at_epoch_4(self, epoch, logs=None):
        if epoch == 3:
            raise KeyboardInterrupt
        original(self, epoch, logs)

    monkeypatch.setattr(BestRankOne, "on_epoch_end", crash_at_epoch_4)
    assert main(stage_args) == 130
    assert (copy / "base" / "backup").is_dir()
    monkeypatch.setattr(BestRankOne, "on_epoch_end", original)
    assert main(stage_args) == 0
    epochs = [int(r["epoch"]) for r in csv.DictReader((copy / "base" / "log.csv").open())]
    assert epochs == list(range(6))


def test_batch_larger_than_the_train_split_is_a_clear_error(smoke_run, capsys):
    _, args = smoke_run
    stage_args = with_stages(args, "unlabelled,teacher,base") + ["--set", "train.batch_size=1000"]
    assert main(stage_args) == 2
    assert "fewer than one batch" in capsys.readouterr().err


def test_a_stage_before_its_inputs_says_which_stage_to_run(tmp_path, lfw_root):
    result = _cli("--data", str(lfw_root), "--runs-dir", str(tmp_path), "--run", "empty", "--stages", "dictionary")
    assert result.returncode == 2
    assert "run the 'prepare' stage first" in result.stderr and "Traceback" not in result.stderr


def test_a_backup_resumes_only_with_the_same_key_and_without_force(tmp_path):
    from keras_landmask.config import load_config
    from keras_landmask.io import write_json
    from keras_landmask.runs import RunFolder
    from keras_landmask.stages.base import resumable
    from keras_landmask.stages.context import StageContext

    context = StageContext(load_config("smoke"), RunFolder(tmp_path), tmp_path, key="abc")
    backup = tmp_path / "backup"
    assert not resumable(backup, context)
    write_json(backup / "settings.json", {"digest": "abc"})
    assert resumable(backup, context)
    assert not resumable(backup, StageContext(load_config("smoke"), RunFolder(tmp_path), tmp_path, key="other"))
    context.force = True
    assert not resumable(backup, context)


def test_progress_bars_only_on_a_terminal(monkeypatch):
    import argparse
    import io

    from keras_landmask.train import show_progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    assert show_progress(argparse.Namespace(no_progress=False))
    assert not show_progress(argparse.Namespace(no_progress=True))
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # a log file or a pipe
    assert not show_progress(argparse.Namespace(no_progress=False))


def saved_weights(model_file: Path) -> list[np.ndarray]:
    """Every weight array stored in a ``.keras`` file, in storage order."""
    import io
    import zipfile

    import h5py

    arrays = []
    with zipfile.ZipFile(model_file) as archive, h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r") as h5:
        h5.visititems(lambda name, item: arrays.append(np.array(item)) if isinstance(item, h5py.Dataset) else None)
    return arrays


def test_the_same_seed_trains_the_same_weights(smoke_base, smoke_run, tmp_path):
    """Every random draw of the base stage comes from the config's seeds, so on a CPU a rerun is bit for bit
    the same (same data, teacher embeddings and settings)."""
    import shutil

    run, args = smoke_run
    retrained = []
    for copy in ("a", "b"):
        runs = tmp_path / copy
        shutil.copytree(run, runs / "smoke")
        copied = with_stages(args, "base")
        copied[copied.index("--runs-dir") + 1] = str(runs)
        assert main([*copied, "--force"]) == 0
        retrained.append(runs / "smoke" / "base")
    first, second = (saved_weights(folder / "model.keras") for folder in retrained)
    assert len(first) == len(second) > 20
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    metrics = [json.loads((folder / "metrics.json").read_text()) for folder in retrained]
    assert [m["val"] for m in metrics] == [metrics[0]["val"]] * 2 and metrics[0]["best_epoch"] == metrics[1]["best_epoch"]
