"""The model pack the edge runtime ships: its record matches its files, the wheel carries it, the runtime uses it
with no ``--models`` (and no TensorFlow), and ``tools/build_model_pack.py`` builds one from a run and its export."""
import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from edge_runtime.manifest import load_manifest
from edge_runtime.packs import DEFAULT_PACK, PACK_RECORD, SHIPPED_DIR, pack_summary, resolve_models, shipped_packs
from keras_landmask.core.manifest import sha256_file
from tests.conftest import TEST_PEOPLE, with_stages

ROOT = Path(__file__).resolve().parents[1]
PACK = SHIPPED_DIR / DEFAULT_PACK
NO_TENSORFLOW = ("import sys; sys.modules['tensorflow'] = None; sys.modules['keras'] = None\n"
                 "from edge_runtime.__main__ import main\n"
                 "sys.argv = ['landmask'] + sys.argv[1:]\n"
                 "sys.exit(main())\n")


def landmask(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The runtime's CLI in a fresh process where importing TensorFlow or Keras fails."""
    return subprocess.run([sys.executable, "-c", NO_TENSORFLOW, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_shipped_pack_matches_its_record():
    manifest = load_manifest(PACK)  # every model's sha256 checked
    record = json.loads((PACK / PACK_RECORD).read_text())
    files = sorted(p.name for p in PACK.iterdir() if p.suffix == ".tflite")
    assert files == sorted(entry["file"] for entry in manifest["models"].values())
    for name, entry in record["files"].items():
        assert sha256_file(PACK / name) == entry["sha256"] and (PACK / name).stat().st_size == entry["bytes"]
    assert set(record["files"]) == {"manifest.json", *files}
    assert record["megabytes"] < 15 and manifest["quantization"] == "int8"
    guard = manifest["parity"]["guard"]
    assert guard["checked"] and guard["passed"] and guard["allowed_points"] is None
    assert record["training"]["command"].startswith("python -m keras_landmask.train ")
    assert len(record["commit"]["hash"]) == 40 and {item["what"] for item in record["licences"]} >= {
        "training images", "the face detector (pnet/rnet/onet)"}
    for row in ("clean", "face_mask", "sunglasses"):
        assert 0 < record["accuracy"]["openset"][row]["rank1_1"] <= 1
    assert (PACK / "PACK.md").read_text().startswith(f"# Model pack `{DEFAULT_PACK}`")


def test_models_are_resolved_from_a_pack_name_a_folder_or_nothing(tmp_path):
    assert resolve_models(None) == PACK
    assert resolve_models(DEFAULT_PACK) == PACK
    assert resolve_models(tmp_path) == tmp_path
    assert resolve_models("no-such-pack") == Path("no-such-pack")  # reported missing by the Recognizer
    assert PACK in shipped_packs()
    summary = pack_summary(PACK)
    assert summary["default"] and summary["shipped"] and summary["openset_rank1"]["clean"] > 0.5


def test_missing_shipped_pack_says_what_to_do(monkeypatch, tmp_path):
    from edge_runtime import packs
    from edge_runtime.manifest import ManifestError

    monkeypatch.setattr(packs, "SHIPPED_DIR", tmp_path)
    with pytest.raises(ManifestError, match=f"shipped model pack '{DEFAULT_PACK}' is not installed.*--models"):
        packs.resolve_models(None)
    assert packs.shipped_packs() == []


def test_wheel_contains_the_pack(tmp_path):
    shutil.copytree(ROOT, tmp_path / "src", ignore=shutil.ignore_patterns(
        ".git", ".venv", "runs", "dist", "logs", "build", "*.egg-info", "__pycache__", ".pytest_cache"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "--wheel-dir", str(tmp_path / "wheels"), str(tmp_path / "src")],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next((tmp_path / "wheels").glob("*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in PACK.iterdir():
        assert f"edge_runtime/models/{DEFAULT_PACK}/{path.name}" in names


def test_runtime_enrols_and_identifies_with_the_shipped_pack(lfw_root, tmp_path):
    photos = tmp_path / "photos"
    for name in TEST_PEOPLE[:3]:
        (photos / name).mkdir(parents=True)
        for path in sorted((lfw_root / name).glob("*.jpg"))[:2]:
            shutil.copy(path, photos / name / path.name)
    enrolled = landmask("enrol", "--gallery", "g.db", "--folder", str(photos), cwd=tmp_path)
    assert enrolled.returncode == 0, enrolled.stderr[-2000:]
    probe = sorted((lfw_root / TEST_PEOPLE[1]).glob("*.jpg"))[4]
    found = landmask("identify", "--gallery", "g.db", str(probe), "--json", cwd=tmp_path)
    assert found.returncode == 0, found.stderr[-2000:]
    faces = [face for line in found.stdout.splitlines() if line.startswith("{")
             for face in json.loads(line)["faces"]]
    assert faces[0]["name"] == TEST_PEOPLE[1]
    listed = landmask("models", cwd=tmp_path)
    assert listed.returncode == 0 and re.search(rf"^\*\s+{DEFAULT_PACK}\s", listed.stdout, re.M)


def test_models_command_lists_given_folders_as_json(smoke_export, tmp_path):
    listed = landmask("models", "--models", str(smoke_export), "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    summaries = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [s["name"] for s in summaries] == [p.name for p in shipped_packs()] + [smoke_export.name]
    assert summaries[-1]["quantization"] == "int8" and not summaries[-1]["shipped"]
    broken = landmask("models", "--models", str(tmp_path), cwd=tmp_path)
    assert broken.returncode == 2 and "is not an export folder" in broken.stderr


def test_gallery_of_other_models_is_refused_with_the_default_pack(smoke_export, lfw_root, tmp_path):
    photo = sorted((lfw_root / TEST_PEOPLE[0]).glob("*.jpg"))[0]
    shutil.copy(photo, tmp_path / f"{TEST_PEOPLE[0]}.jpg")
    enrolled = landmask("enrol", "--models", str(smoke_export), "--gallery", "g.db", "--folder", str(tmp_path),
                        cwd=tmp_path)
    assert enrolled.returncode == 0, enrolled.stderr
    found = landmask("identify", "--gallery", "g.db", str(photo), cwd=tmp_path)
    assert found.returncode == 2 and "enrolled with different models" in found.stderr


@pytest.fixture(scope="module")
def smoke_evaluated(smoke_finished, smoke_run):
    """The smoke run with its Table 1 and open-set stages too (what a pack records)."""
    from keras_landmask.train import main

    assert main(with_stages(smoke_run[1], "evaluate,openset")) == 0
    return smoke_finished


def test_pack_is_built_from_a_run_and_its_export(smoke_evaluated, smoke_export, tmp_path):
    from export.pack import build_pack

    target = build_pack(smoke_evaluated, smoke_export, "smoke-pack", tmp_path, log=lambda message: None)
    record = json.loads((target / PACK_RECORD).read_text())
    assert load_manifest(target)["models"] == load_manifest(smoke_export)["models"]
    assert set(record["accuracy"]["openset"]) == set(record["accuracy"]["table1_keras"])  # every Table 1 row
    assert "--profile smoke" in record["training"]["command"]
    assert not list(tmp_path.glob(".*"))  # no staging folder left
    from edge_runtime.recognizer import Recognizer

    with Recognizer(target) as recognizer:
        assert recognizer.manifest["quantization"] == "int8"


def test_pack_refuses_an_export_of_another_run_or_an_unguarded_one(smoke_evaluated, smoke_export, tmp_path):
    from export.pack import PackError, build_pack

    with pytest.raises(PackError, match="was made from"):
        build_pack(tmp_path, smoke_export, "x", tmp_path / "packs", log=lambda message: None)
    unguarded = tmp_path / "unguarded"
    shutil.copytree(smoke_export, unguarded)
    manifest = json.loads((unguarded / "manifest.json").read_text())
    manifest["parity"]["guard"]["allowed_points"] = 50.0
    (unguarded / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(PackError, match="guard"):
        build_pack(smoke_evaluated, unguarded, "x", tmp_path / "packs", log=lambda message: None)
    assert not (tmp_path / "packs" / "x").exists()


def test_pack_refuses_a_run_out_of_date_under_this_code(smoke_evaluated, smoke_export, tmp_path):
    from export.pack import PackError, build_pack

    stale = tmp_path / "run"
    shutil.copytree(smoke_evaluated, stale)
    config = (stale / "config.yaml").read_text()
    assert "appearance: varied" in config  # as if the segmenter had trained under another setting
    (stale / "config.yaml").write_text(config.replace("appearance: varied", "appearance: plain"))
    exported = tmp_path / "export"
    shutil.copytree(smoke_export, exported)
    manifest = json.loads((exported / "manifest.json").read_text())
    manifest["run"]["folder"] = str(stale)
    (exported / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(PackError, match="out of date under this code.*segmenter"):
        build_pack(stale, exported, "x", tmp_path / "packs", log=lambda message: None)


def test_seeds_record_places_the_run_among_its_seeds():
    from export.pack import PackError, seeds_record

    rows = ("clean", "face_mask", "sunglasses")
    seeds = {"per_seed": {str(s): {"openset": {"rank1_1": {row: {"LM2": score + i / 100} for i, row in enumerate(rows)}}}
                          for s, score in ((1, 0.90), (2, 0.95), (42, 0.93))}, "mean_std": {}}
    assert seeds_record(seeds, 42, "LM2")["this_run_is"] == "median"
    assert seeds_record(seeds, 2, "LM2")["this_run_is"] == "best"
    assert seeds_record(seeds, 1, "LM2")["this_run_is"] == "worst"
    with pytest.raises(PackError, match="not this run"):
        seeds_record(seeds, 7, "LM2")
