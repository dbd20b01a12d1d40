"""``verify`` accuracy on pairs and the time per photo of batch ``identify``, for one export.

    python benchmarks/verify_pairs.py --models dist/fast/int8 [--run runs/fast] [--photos 200]
        [--lfw-pairs ../shared/data/lfw_meta/pairs.txt]

Measures, and writes as ``<--name>.json`` and ``.md`` (default ``verify-<models folder>``) to ``--out``:

a. **Verification on the run's validation pairs.** Every validation photo of the run (``prepare/split.csv``) goes
   through the runtime from its JPEG (detect → the face nearest the centre → align → features), and every pair
   of them is scored as ``Recognizer.verify`` scores it: both embeddings under the union of the two occlusion
   patterns, cosine. Reported: TAR at FAR 1 % with the threshold chosen on these pairs, and FAR/TAR at the
   threshold the export calibrated (on the prepared crops of the same split, so the gap is the runtime's own
   detection and alignment); photos without a face are left out and counted.
b. Optionally (``--lfw-pairs``) the same on LFW's own pairs list (View 2 ``pairs.txt`` format), for the pairs
   whose two images are in ``--data`` or in ``lfw_single`` beside it. Caution: LFW's same-person pairs are of the
   158 people the recognizer was trained on.
c. **Batch identify.** ``landmask identify --csv`` in a fresh process over ``--photos`` test-split photos of the
   run, against a gallery of ``--gallery-people`` people with 3 train photos each; the same over one photo gives
   the start-up, and ``(T_N - T_1) / (N - 1)`` is the time per photo.

Timings are wall clock on whatever else the machine runs. Nothing is written outside ``--out`` but a temporary
folder (the gallery, the CSV).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from edge_runtime.detector import central_face  # noqa: E402
from edge_runtime.recognizer import Recognizer  # noqa: E402
from export.threshold import pair_threshold  # noqa: E402
from keras_landmask.core.images import ImageError, read_image  # noqa: E402
from keras_landmask.core.vectors import l2_normalise  # noqa: E402
from keras_landmask.runs import RunFolder  # noqa: E402

FAR = 0.01


def split_photos(run: Path, data: Path) -> dict[str, list[tuple[Path, str]]]:
    """``{split: [(photo, person)]}`` of the run's ``prepare/split.csv``, the photos found under ``data``."""
    rows = csv.DictReader((RunFolder(run).folder("prepare") / "split.csv").open(encoding="utf-8"))
    photos: dict[str, list[tuple[Path, str]]] = {}
    for row in rows:
        stored = Path(row["path"])
        photos.setdefault(row["split"], []).append((data / stored.parent.name / stored.name, row["person"]))
    return photos


def lfw_pairs(path: Path, data: Path) -> tuple[list[tuple[Path, Path, bool]], int]:
    """``([(photo a, photo b, same person)], pairs listed)`` of an LFW pairs file whose two photos exist in
    ``data`` or in ``lfw_single`` beside it."""
    def photo(person: str, number: str) -> Path | None:
        for root in (data, data.parent / "lfw_single"):
            candidate = root / person / f"{person}_{int(number):04d}.jpg"
            if candidate.is_file():
                return candidate
        return None

    pairs, listed = [], 0
    for line in path.read_text().splitlines()[1:]:
        fields = line.split("\t")
        if len(fields) not in (3, 4):
            continue
        listed += 1
        a, b = ((fields[0], fields[1]), (fields[0], fields[2])) if len(fields) == 3 else \
            ((fields[0], fields[1]), (fields[2], fields[3]))
        found = photo(*a), photo(*b)
        if all(found):
            pairs.append((found[0], found[1], len(fields) == 3))
    return pairs, listed


def described(recognizer: Recognizer, photos: list[Path]) -> dict[Path, tuple[np.ndarray, tuple]]:
    """``{photo: (feature map, occlusion pattern)}`` of the face nearest each photo's centre (photos without one
    are left out), as ``Recognizer.verify`` finds it."""
    found = {}
    for photo in dict.fromkeys(photos):
        try:
            image = read_image(photo)
        except ImageError:
            continue
        face = central_face(recognizer.detect(image), image.shape)
        if face is not None:
            _, feature_map, pattern = recognizer.face_features(image, [face])[0]
            found[photo] = (feature_map, pattern)
    return found


def pair_scores(recognizer: Recognizer, faces: dict, pairs: list[tuple[Path, Path, bool]]) -> dict:
    """Scores of the ``pairs`` both of whose photos have a face, each pair embedded under the union of its two
    patterns; TAR at FAR 1 % on them, and FAR/TAR at the thresholds the runtime would apply."""
    kept = [(a, b, same) for a, b, same in pairs if a in faces and b in faces]
    photos = list(faces)
    index = {p: i for i, p in enumerate(photos)}
    maps = np.stack([faces[p][0] for p in photos])
    unions: dict[tuple, list[int]] = {}
    for k, (a, b, _) in enumerate(kept):
        unions.setdefault(tuple(x | y for x, y in zip(faces[a][1], faces[b][1])), []).append(k)
    scores, applied = np.zeros(len(kept)), np.zeros(len(kept))
    for union, members in unions.items():
        embeddings = l2_normalise(recognizer.embed(maps, union))
        for k in members:
            scores[k] = embeddings[index[kept[k][0]]] @ embeddings[index[kept[k][1]]]
            applied[k] = recognizer.verify_threshold_for(union)[0]
    same = np.array([s for _, _, s in kept], bool)
    accepted = scores >= applied
    return {"pairs": len(kept), "pairs_without_face": len(pairs) - len(kept), "occluded_pairs": int(sum(
                len(m) for u, m in unions.items() if any(u))),
            "at_far_1pct": pair_threshold(scores, same, FAR),
            "at_export_threshold": {"false_accept_rate": float(accepted[~same].mean()) if (~same).any() else None,
                                    "true_accept_rate": float(accepted[same].mean()) if same.any() else None}}


def time_identify(models: Path, gallery: Path, photos: list[Path], threads: int, scratch: Path) -> dict:
    """Wall seconds of ``landmask identify --csv`` over all ``photos`` and over the first alone."""
    def run(paths: list[Path]) -> float:
        command = [sys.executable, "-m", "edge_runtime", "identify", "--models", str(models), "--gallery",
                   str(gallery), "--threads", str(threads), "--csv", str(scratch / "faces.csv"), *map(str, paths)]
        start = time.perf_counter()
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        if result.returncode not in (0, 2):
            raise RuntimeError(result.stderr[-2000:])
        return time.perf_counter() - start

    one, batch = run(photos[:1]), run(photos)
    rows = list(csv.DictReader((scratch / "faces.csv").open(encoding="utf-8")))
    return {"photos": len(photos), "faces": sum(r["face"] != "" for r in rows),
            "named": sum(r["matched"] == "true" for r in rows), "one_photo_s": round(one, 3),
            "batch_s": round(batch, 3), "per_photo_ms": round((batch - one) / max(len(photos) - 1, 1) * 1e3, 2)}


def pct(value) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def write_report(result: dict, out: Path, name: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"# verify and batch identify: `{result['models']}` ({result['quantization']})", "",
             f"{result['created']}, {result['machine']['platform']}, {result['machine']['cpus']} CPUs, "
             f"{result['threads']} interpreter threads. `python benchmarks/verify_pairs.py` (see its docstring).", "",
             "| pairs | photos without a face | pairs kept (occluded) | TAR at FAR 1 % (threshold) | at the export's "
             "threshold: FAR / TAR |", "| --- | --- | --- | --- | --- |"]
    for key, label in (("val_pairs", "run's validation split, all pairs"), ("lfw_pairs", "LFW pairs list")):
        row = result.get(key)
        if row:
            chosen, export = row["at_far_1pct"], row["at_export_threshold"]
            lines.append(f"| {label} | {row['photos_without_face']} of {row['photos']} | {row['pairs']} "
                         f"({row['occluded_pairs']}) | {pct(chosen['true_accept_rate'])} ({chosen['threshold']:.4f}) | "
                         f"{pct(export['false_accept_rate'])} / {pct(export['true_accept_rate'])} |")
    exported = result["export_verify_threshold"]
    lines += ["", f"The export's own calibration (prepared crops of the validation split): threshold "
                  f"{exported.get('threshold')}, TAR {pct(exported.get('true_accept_rate'))} at FAR "
                  f"{pct(exported.get('false_accept_rate'))}." if exported else
              "The export has no verification threshold (exported before verify existed).", ""]
    timing = result["identify"]
    lines += ["| batch identify | photos | faces (named) | one photo | whole batch | per photo |",
              "| --- | --- | --- | --- | --- | --- |",
              f"| `landmask identify --csv`, gallery of {result['gallery_people']} people | {timing['photos']} | "
              f"{timing['faces']} ({timing['named']}) | {timing['one_photo_s']} s | {timing['batch_s']} s | "
              f"{timing['per_photo_ms']} ms |", ""]
    (out / f"{name}.md").write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, required=True, help="export folder (manifest.json + .tflite)")
    parser.add_argument("--run", type=Path, help="run folder the models came from (default: the manifest's)")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "lfw", help="LFW folder")
    parser.add_argument("--lfw-pairs", type=Path, help="also score the pairs of this LFW pairs file")
    parser.add_argument("--photos", type=int, default=200, help="test-split photos for batch identify")
    parser.add_argument("--gallery-people", type=int, default=20, help="people enrolled for batch identify")
    parser.add_argument("--threads", type=int, default=2, help="interpreter threads (default: 2)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results", help="folder for the results")
    parser.add_argument("--name", help="file stem of the results (default: verify-<models folder name>)")
    args = parser.parse_args(argv)

    manifest = json.loads((args.models / "manifest.json").read_text())
    run = args.run or Path(manifest["run"]["folder"])
    photos = split_photos(run, args.data)
    result: dict = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "models": str(args.models),
                    "run": str(run), "quantization": manifest["quantization"], "threads": args.threads,
                    "export_verify_threshold": {k: v for k, v in manifest["threshold"].get("verify", {}).items()
                                                if k != "per_pattern"},
                    "machine": {"platform": platform.platform(), "python": platform.python_version(),
                                "cpus": os.cpu_count(), "load_average_start": list(os.getloadavg())}}
    with tempfile.TemporaryDirectory(prefix="verify-pairs-") as scratch:
        gallery = Path(scratch) / "people.db"
        with Recognizer(args.models, gallery=gallery, threads=args.threads, create_gallery=True) as recognizer:
            val = [p for p, _ in photos["val"]]
            person = dict(photos["val"])
            faces = described(recognizer, val)
            first, second = np.triu_indices(len(val), k=1)
            pairs = [(val[i], val[j], person[val[i]] == person[val[j]]) for i, j in zip(first, second)]
            result["val_pairs"] = {"photos": len(val), "photos_without_face": len(val) - len(faces),
                                   **pair_scores(recognizer, faces, pairs)}
            if args.lfw_pairs:
                listed_pairs, listed = lfw_pairs(args.lfw_pairs, args.data)
                lfw_photos = list(dict.fromkeys(p for a, b, _ in listed_pairs for p in (a, b)))
                lfw_faces = described(recognizer, lfw_photos)
                result["lfw_pairs"] = {"listed": listed, "photos": len(lfw_photos),
                                       "photos_without_face": len(lfw_photos) - len(lfw_faces),
                                       **pair_scores(recognizer, lfw_faces, listed_pairs)}
            train: dict[str, list[Path]] = {}
            for photo, name in photos["train"]:
                if len(train) < args.gallery_people or name in train:
                    train.setdefault(name, []).append(photo)
            for name, paths in train.items():
                recognizer.enrol(name, [read_image(p) for p in paths[:3]], [str(p) for p in paths[:3]])
        result["gallery_people"] = len(train)
        result["identify"] = time_identify(args.models, gallery, [p for p, _ in photos["test"]][:args.photos],
                                           args.threads, Path(scratch))
    result["machine"]["load_average_end"] = list(os.getloadavg())
    name = args.name or f"verify-{args.models.name}"
    write_report(result, args.out, name)
    print(f"val pairs: TAR {pct(result['val_pairs']['at_far_1pct']['true_accept_rate'])} at FAR 1 %; identify "
          f"{result['identify']['per_photo_ms']} ms per photo; wrote {args.out / name}.json and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
