"""The README's train → export → runtime commands, in that order, as a newcomer types them (smoke profile):
no flag beyond those the README shows, each in a fresh process, from the repository root."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import TEST_PEOPLE

ROOT = Path(__file__).resolve().parents[1]


def test_train_then_export_then_enrol_and_identify(lfw_root, masks_dir, tmp_path):
    assert masks_dir == lfw_root.parent / "maskthefaces"  # the default the README relies on
    runs, dist, photos = tmp_path / "runs", tmp_path / "dist" / "smoke-int8", tmp_path / "photos"
    env = {**os.environ, "LANDMASK_CACHE": str(tmp_path / "cache")}

    def command(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
        result = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                                timeout=timeout)
        assert result.returncode == 0, f"{' '.join(args)}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        return result

    trained = command("-m", "keras_landmask.train", "--data", str(lfw_root), "--run", "smoke", "--profile", "smoke",
                      "--runs-dir", str(runs), "--no-progress")
    assert "Table 1, rank-1 with the segmenter FDM" in trained.stdout
    assert (runs / "smoke" / "eval" / "table1.json").is_file()

    command("tools/export_tflite.py", "--run", str(runs / "smoke"), "--quantize", "int8", "--out", str(dist))
    manifest = json.loads((dist / "manifest.json").read_text())
    assert manifest["quantization"] == "int8" and manifest["layout"]["name"] == "LM2"

    for name in TEST_PEOPLE[:2]:
        (photos / name).mkdir(parents=True)
        for path in sorted((lfw_root / name).glob("*.jpg"))[:3]:
            shutil.copy(path, photos / name / path.name)
    gallery = tmp_path / "people.db"
    command("-m", "edge_runtime", "enrol", "--models", str(dist), "--gallery", str(gallery), "--folder", str(photos))
    probe = sorted((lfw_root / TEST_PEOPLE[0]).glob("*.jpg"))[5]
    found = command("-m", "edge_runtime", "identify", "--models", str(dist), "--gallery", str(gallery), str(probe),
                    "--json")
    faces = [face for line in found.stdout.splitlines() if line.startswith("{")
             for face in json.loads(line).get("faces", [])]
    assert faces and {"name", "score", "occluded"} <= set(faces[0])
