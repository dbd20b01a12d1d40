"""A model pack: a guarded export and its provenance, shipped inside the edge runtime (``edge_runtime.packs``).

``build_pack`` copies an export folder (checked against its manifest's sha256) into
``edge_runtime/models/<name>/`` with ``pack.json`` (machine-readable provenance) and ``PACK.md`` (the same for
people): the training command and resolved config, the project commit the pack was built at, the data the run saw,
Table 1 (Keras), the open-set table measured through the exported models themselves (the device's numbers), int8
parity, the seeds benchmark's mean ± std with this run's place among the seeds, the measured speed, the licences,
and every file's size and sha256. Only an export within the parity guard's tolerance is packed, and a pack stays
under ``MAX_MEGABYTES``.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Callable

import numpy as np

from edge_runtime.interpreter import TFLiteModel
from edge_runtime.manifest import load_manifest
from edge_runtime.packs import DEFAULT_PACK, PACK_RECORD, SHIPPED_DIR, SUMMARY_ROWS
from export.parity import openset_rows, tflite_pair
from keras_landmask.config import load_config
from keras_landmask.core.manifest import MANIFEST_NAME, sha256_file
from keras_landmask.data.facemask import load_mask_templates
from keras_landmask.data.lfw import folder_digest
from keras_landmask.data.occluders import table1_probes
from keras_landmask.errors import LandmaskError
from keras_landmask.io import write_json
from keras_landmask.runs import RunFolder
from keras_landmask.stages.graph import plan

MAX_MEGABYTES = 15.0
OPENSET_KEYS = ("rank1_1", "dir_1", "rank1_5", "dir_5", "tar")
# Config fields that hold this machine's folders: recorded in the config, not repeated as --set overrides.
FOLDER_FIELDS = {"data.folder", "data.unknown_folder", "occlusion.masks_dir", "unlabelled.folders"}
LICENCES = [
    {"what": "training images", "source": "Labeled Faces in the Wild, deep-funneled (Huang et al. 2007; Huang, "
     "Mattar, Lee, Learned-Miller 2012), via ../shared/data/lfw and lfw_single",
     "terms": "News photographs collected from the web; the LFW authors distribute them for research and the "
     "copyright of each photo stays with its owner. The weights are learnt from them: check that your use fits "
     "LFW's terms (https://vis-www.cs.umass.edu/lfw/)."},
    {"what": "the recognizer's starting weights and the distillation teacher",
     "source": "dlib's face recognition ResNet and 5-point landmark model (Davis King), from the "
     "face_recognition_models package", "terms": "Released into the public domain by their author (CC0)."},
    {"what": "the face detector (pnet/rnet/onet)", "source": "the MTCNN weights of the mtcnn package (ipazc/mtcnn)",
     "terms": "MIT licence."},
    {"what": "synthetic occlusions seen in training", "source": "MaskTheFace mask templates and textures "
     "(Aqeel Anwar)", "terms": "MIT licence."},
    {"what": "this code", "source": "keras-landmask", "terms": "MIT licence."},
]


class PackError(LandmaskError):
    """An export or run that cannot become a pack (not guarded, not the run's, too large, unfinished)."""


def build_pack(run_dir: str | Path, export_dir: str | Path, name: str = DEFAULT_PACK, into: str | Path = SHIPPED_DIR,
               seeds: str | Path | None = None, speed: str | Path | None = None, threads: int = 2,
               log: Callable[[str], None] = print) -> Path:
    """Write the pack ``<into>/<name>/`` from a finished run and its export; returns the pack folder.

    ``seeds``: a ``benchmarks/seeds.py`` JSON that counts this run among its seeds; ``speed``: a
    ``benchmarks/edge_pipeline.py`` JSON measured on this export (its camera and photo rows are recorded)."""
    run, export = RunFolder(run_dir), Path(export_dir)
    manifest = load_manifest(export)
    exported_from = Path(manifest["run"]["folder"]).resolve()
    if exported_from != run.root.resolve():
        raise PackError(f"the export '{export}' was made from '{manifest['run']['folder']}', not '{run_dir}'; "
                        "pass the run it was exported from")
    guard = manifest["parity"]["guard"]
    if guard.get("allowed_points") is not None or (guard["checked"] and not guard["passed"]):
        raise PackError(f"the export '{export}' is not within the parity guard's default tolerance ({guard['note']}; "
                        f"allowed: {guard.get('allowed_points')}); a pack ships only a guarded export")
    config = run.config()
    check_up_to_date(run, config)
    log("measuring the open-set table through the exported models (people never trained on, as a device meets them)")
    device_rows = device_openset(run, export, manifest, threads)
    record = {
        "name": name,
        "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": project_commit(),
        "training": training_record(run, config),
        "export": {"folder": str(export), "quantization": manifest["quantization"], "created": manifest["created"],
                   "software": manifest["software"], "layout": manifest["parity"]["layout"],
                   "command": f"python tools/export_tflite.py --run {manifest['run']['folder']} "
                              f"--quantize {manifest['quantization']} --out {export}"},
        "data": data_record(run),
        "accuracy": {
            "openset": device_rows,
            "openset_protocol": "The run's held-out people (never trained on), 1 (and 5) clean enrolment photos each, "
                                "their other photos as probes clean and under each Table 1 occlusion, the unknown "
                                "people rejected at FPIR 1 %; the exported features and head (int8 as shipped), "
                                "each probe's own occlusion flags choosing the FDM",
            "openset_keras": json.loads(run.require("openset", "openset.json").read_text())["table"],
            "table1_keras": json.loads(run.require("evaluate", "table1.json").read_text()),
            "int8_parity": {key: manifest["parity"][key] for key in ("rows", "max_drop_points", "guard",
                                                                     "embedding_cosine_min", "flag_agreement")},
        },
        "licences": LICENCES,
    }
    if seeds is not None:
        record["accuracy"]["seeds"] = seeds_record(json.loads(Path(seeds).read_text()), config.train.seed,
                                                   manifest["parity"]["layout"])
    if speed is not None:
        record["speed"] = speed_record(json.loads(Path(speed).read_text()), export)
    return write_pack(export, manifest, record, Path(into) / name, log)


def check_up_to_date(run: RunFolder, config) -> None:
    """``PackError`` when a finished stage of the run is out of date under this code's settings (a default that
    changed since it trained, a changed data folder): the pack's record would not describe what it ships."""
    stale = [d for d in plan(run, config, folder_digest(config.data.folder), [], False) if d.action == "stale"]
    if stale:
        raise PackError(f"run '{run.root}' is out of date under this code ("
                        + "; ".join(f"{d.stage.name}: {d.reasons[0]}" for d in stale)
                        + "); rerun its training command and export again before packing it")


def device_openset(run: RunFolder, export: Path, manifest: dict, threads: int) -> dict:
    """``openset_rows`` of the exported features and head on every Table 1 occlusion of the run's open-set split."""
    if not run.openset_file.is_file():
        raise PackError(f"run '{run.root}' has no open-set split (data.openset_people=0); a pack is measured on "
                        "people never trained on: train with the default data settings")
    config = run.config()
    held = run.openset()
    probes = table1_probes(held, run.layouts(), load_mask_templates(config.occlusion.masks_dir), config.occlusion.seed)
    models = manifest["models"]
    pair = tflite_pair(TFLiteModel(export / models["features"]["file"], threads=threads),
                       TFLiteModel(export / models["head"]["file"], threads=threads))
    rows = openset_rows(pair, held, {occlusion: images for occlusion, (images, _) in probes.items()})
    return {occlusion: {key: row[key] for key in OPENSET_KEYS + ("n_probes", "n_unknown")}
            for occlusion, row in rows.items()}


def project_commit() -> dict:
    """The repository's HEAD and whether the working tree had changes, or ``{"hash": "unknown"}``."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return {"hash": "unknown"}
    return {"hash": head.stdout.strip(), "dirty": bool(status.stdout.strip())}


def flatten(tree: dict, prefix: str = "") -> dict:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}``."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def training_record(run: RunFolder, config) -> dict:
    """The command that trains the run again (its profile and every setting that differs from it), the resolved
    config, and when each stage finished."""
    profile = flatten(load_config(config.profile).to_dict())
    resolved = flatten(config.to_dict())
    overrides = [f"{key}={value}" for key, value in resolved.items()
                 if key not in FOLDER_FIELDS and key != "profile" and profile.get(key) != value]
    command = (f"python -m keras_landmask.train --data {config.data.folder} --run {run.root.name} "
               f"--profile {config.profile}" + "".join(f" --set {item}" for item in overrides)
               + "".join(f" --unlabelled {folder}" for folder in config.unlabelled.folders))
    finished = {}
    for marker in sorted(run.root.glob("*/DONE.json")):
        stamp = json.loads(marker.read_text()).get("finished")
        if stamp is not None:
            finished[marker.parent.name] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp))
    return {"command": command, "overrides": overrides, "config": config.to_dict(), "stages_finished": finished,
            "note": "the project commit is the one the pack was built at; runs do not record the commit they were "
                    "trained at (compare stages_finished with the repository's history)"}


def data_record(run: RunFolder) -> dict:
    """What the run saw: the labelled people and splits, the unlabelled faces, and the held-out open-set split."""
    prepared = json.loads(run.require("prepare", "summary.json").read_text())
    unlabelled = run.folder("unlabelled") / "summary.json"
    return {
        "labelled": {"folder": run.config().data.folder, "people": prepared["n_people"],
                     "faces": prepared["split"], "note": "LFW people with at least data.min_images photos, "
                     "less the held-out open-set people"},
        "unlabelled_faces": json.loads(unlabelled.read_text())["n_faces"] if unlabelled.is_file() else 0,
        "held_out": {**prepared.get("openset", {}), "note": "never trained on: the open-set evaluation and the "
                     "export's thresholds"},
    }


def seeds_record(seeds: dict, seed: int, layout: str) -> dict:
    """The seeds benchmark's mean ± std and where this run stands among its seeds (by the Keras open-set rank-1
    with the exported layout's FDM and 1 enrolment photo, averaged over the clean, face mask and sunglasses
    probes: ``SUMMARY_ROWS``)."""
    per_seed = {int(k): v for k, v in seeds["per_seed"].items()}
    if seed not in per_seed:
        raise PackError(f"the seeds benchmark has seeds {sorted(per_seed)}, not this run's train.seed {seed}; "
                        "pass the run with --also to benchmarks/seeds.py")
    if "openset" not in per_seed[seed]:
        raise PackError("the seeds benchmark has no open-set table; run it with the whole stage chain")
    score = {s: np.mean([r["openset"]["rank1_1"][row][layout] for row in SUMMARY_ROWS]) for s, r in per_seed.items()}
    order = sorted(score, key=score.get)
    place = order.index(seed)
    role = "median" if place == (len(order) - 1) / 2 else "best" if place == len(order) - 1 else \
        "worst" if place == 0 else f"{place + 1} of {len(order)}"
    return {"seeds": sorted(per_seed), "this_seed": seed, "this_run_is": role,
            "ranked_by": f"open-set rank-1 (Keras, {layout} FDM, 1 enrolment photo), mean of {', '.join(SUMMARY_ROWS)}",
            "mean_std": seeds["mean_std"], "profile": seeds.get("profile"), "overrides": seeds.get("overrides")}


def speed_record(speed: dict, export: Path) -> dict:
    """The edge pipeline benchmark's rows for this export: ms per frame of the camera and the photo detector set-ups."""
    rows = [row for row in speed["video"]["edge"] if Path(row["models"]).resolve() == export.resolve()]
    if not rows:
        raise PackError(f"the speed benchmark measured {speed.get('models')}, not '{export}'; run "
                        f"benchmarks/edge_pipeline.py --models {export}")
    by_detector = {row["detector"]: row for row in rows if row.get("threads") == 2} or \
        {row["detector"]: row for row in rows}
    record = {"machine": speed["machine"], "created": speed["created"],
              "frame": speed["video"]["frame_size"], "rows": rows}
    if "camera" in by_detector:
        record["camera_ms"] = by_detector["camera"]["e2e_ms"]
    if "photo" in by_detector:
        record["photo_ms"] = by_detector["photo"]["e2e_ms"]
    return record


def write_pack(export: Path, manifest: dict, record: dict, target: Path, log: Callable[[str], None]) -> Path:
    """Copy the export's files and write ``pack.json`` and ``PACK.md`` into a staging folder beside ``target``,
    check the size, then replace ``target`` with it."""
    staging = target.parent / f".{target.name}.pack-partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    names = [MANIFEST_NAME] + [entry["file"] for entry in manifest["models"].values()]
    for file_name in names:
        shutil.copy2(export / file_name, staging / file_name)
    record["files"] = {n: {"sha256": sha256_file(staging / n), "bytes": (staging / n).stat().st_size} for n in names}
    record["megabytes"] = round(sum(f["bytes"] for f in record["files"].values()) / 1e6, 2)
    if record["megabytes"] > MAX_MEGABYTES:
        shutil.rmtree(staging)
        raise PackError(f"the pack would weigh {record['megabytes']} MB, over the {MAX_MEGABYTES:g} MB a shipped pack "
                        "may; export with --quantize int8")
    write_json(staging / PACK_RECORD, record)
    (staging / "PACK.md").write_text(pack_markdown(record))
    if target.exists():
        retired = target.parent / f".{target.name}.pack-old"
        shutil.rmtree(retired, ignore_errors=True)
        os.replace(target, retired)
        os.replace(staging, target)
        shutil.rmtree(retired)
    else:
        os.replace(staging, target)
    log(f"pack '{record['name']}' written to {target} ({record['megabytes']} MB)")
    return target


def pack_markdown(record: dict) -> str:
    """``PACK.md``: the provenance and numbers of ``pack.json`` for people."""
    accuracy = record["accuracy"]
    layout = record["export"]["layout"]
    lines = [f"# Model pack `{record['name']}`", "",
             f"Built {record['built']} at commit {record['commit'].get('hash', 'unknown')}"
             f"{' (with uncommitted changes)' if record['commit'].get('dirty') else ''}; "
             f"{record['export']['quantization']} export, {record['megabytes']} MB.", "",
             "## How it was made", "", f"    {record['training']['command']}", f"    {record['export']['command']}", "",
             data_sentence(record["data"]), "",
             "## Open set, measured through these exported models", "", accuracy["openset_protocol"] + ".", "",
             "| probe | rank-1, 1 photo | DIR @ FPIR 1 %, 1 photo | rank-1, 5 photos | TAR @ FAR 0.1 % |",
             "|---|---|---|---|---|"]
    lines += [f"| {o} | {r['rank1_1']:.1%} | {r['dir_1']:.1%} | {r['rank1_5']:.1%} | {r['tar']:.1%} |"
              for o, r in accuracy["openset"].items()]
    lines += ["", f"## Table 1 (Keras, closed set, rank-1) and the export's drop against it ({layout} FDM)", "",
              "| occlusion | Keras none | Keras " + layout + " | int8 drop none (points) | int8 drop " + layout + " |",
              "|---|---|---|---|---|"]
    rows = accuracy["int8_parity"]["rows"]
    lines += [f"| {o} | {r['none']['rank1']:.1%} | {r[layout]['rank1']:.1%} | {rows[o]['none']['drop_points']:.2f} | "
              f"{rows[o][layout]['drop_points']:.2f} |" for o, r in accuracy["table1_keras"].items()]
    lines += ["", f"Parity guard: {accuracy['int8_parity']['guard']['note']}.", ""]
    if "seeds" in accuracy:
        seeds = accuracy["seeds"]
        lines += [f"Seeds: this run (seed {seeds['this_seed']}) is the {seeds['this_run_is']} of seeds "
                  f"{seeds['seeds']} by {seeds['ranked_by']}; their mean ± std is in pack.json "
                  "(`accuracy.seeds.mean_std`).", ""]
    if "speed" in record:
        speed = record["speed"]
        lines += [f"Speed ({speed['frame'][0]}x{speed['frame'][1]} frames, {speed['machine']['cpus']} CPUs, "
                  f"{speed['created']}): camera {speed.get('camera_ms', float('nan')):.1f} ms per frame, photos "
                  f"{speed.get('photo_ms', float('nan')):.1f} ms (end to end, one face).", ""]
    lines += ["## Licences", ""] + [f"- **{item['what']}**: {item['source']}. {item['terms']}" for item in
                                    record["licences"]]
    return "\n".join(lines) + "\n"


def data_sentence(data: dict) -> str:
    """One line of ``PACK.md`` on what the run saw (``data_record``)."""
    faces, held = data["labelled"]["faces"], data["held_out"]
    text = (f"Data: {data['labelled']['people']} labelled LFW people ({', '.join(f'{n} {s}' for s, n in faces.items())} "
            f"faces), {data['unlabelled_faces']} unlabelled faces.")
    if "people" in held:
        text += (f" Held out of training: {held['people']} people ({held['enrol']} enrolment and {held['probe']} probe "
                 f"photos) and {held['unknown']} unknown people.")
    return text

