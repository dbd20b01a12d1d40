"""The pipeline as one declared graph: each stage's config sections, the stages it reads, and when it reruns.

A stage's key digests its config sections, the data folder's files (for the stage that reads them) and the
outputs of the stages it reads (the ``output`` id each of their markers got when they finished). A rerun
skips a stage whose marker holds the same key; a changed setting, a changed data folder or an upstream
stage that ran again (changed or ``--force``) makes it, and everything downstream of it, run again.
This module imports no TensorFlow: ``--help`` and ``--plan`` answer in a second.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import uuid

from keras_landmask.config import Config
from keras_landmask.data.lfw import tree_digest
from keras_landmask.errors import LandmaskError
from keras_landmask.runs import RunFolder


@dataclasses.dataclass(frozen=True)
class Stage:
    """One pipeline stage: module ``keras_landmask.stages.<name>`` with ``run(context) -> summary dict``."""

    name: str
    about: str  # what it makes, for --help
    sections: tuple[str, ...]  # config sections (``train``) or single keys (``train.seed``) its own work reads
    needs: tuple[str, ...] = ()  # stages whose outputs it reads (they must have finished)
    optional: tuple[str, ...] = ()  # stages whose outputs it reads when they have finished
    reads_data: bool = False  # reads the data folder's files itself
    folders: tuple[str, ...] = ()  # config keys naming more folders it reads (their files' digest joins its key)

    @property
    def inputs(self) -> tuple[str, ...]:
        return self.needs + self.optional

    def run(self, context) -> dict:
        return importlib.import_module(f"keras_landmask.stages.{self.name}").run(context)


STAGES: tuple[Stage, ...] = (
    Stage("prepare", "split, detect and align the faces; region layouts", ("data", "occlusion", "layout"),
          reads_data=True),
    Stage("unlabelled", "detect and align faces without names, for distillation",
          ("unlabelled", "data.unknown_folder", "data.unknown_people", "data.seed", "data.alignment",
           "data.crop_height", "data.crop_width"), needs=("prepare",),
          folders=("data.unknown_folder", "unlabelled.folders")),
    Stage("teacher", "the teacher's (dlib ResNet) embeddings of every prepared face, clean", ("teacher",),
          needs=("prepare",), optional=("unlabelled",)),
    Stage("base", "the recognizer: dlib's ResNet distilled from the teacher, or ResNet34 + CosFace",
          ("data", "occlusion", "model", "train"), needs=("prepare",), optional=("unlabelled", "teacher")),
    Stage("pdsn", "a mask generator per region (PDSN)", ("train.seed", "pdsn"), needs=("prepare", "base")),
    Stage("dictionary", "binary mask dictionary per layout", ("train.seed", "pdsn.layouts", "pdsn.batch_size",
                                                             "dictionary"), needs=("prepare", "base", "pdsn")),
    Stage("headtune", "the head tuned, trunk frozen, so each FDM keeps masked faces in the teacher's space",
          ("headtune", "train.seed", "occlusion", "pdsn.layouts"), needs=("prepare", "base", "dictionary"),
          optional=("unlabelled", "teacher")),
    Stage("segmenter", "U-Net occlusion segmenter", ("data", "occlusion", "segmenter"), needs=("prepare",)),
    Stage("evaluate", "Table 1 (oracle FDM, and the segmenter's once it has run)", ("occlusion", "pdsn.layouts"),
          needs=("prepare", "base", "dictionary"), optional=("headtune", "segmenter")),
    Stage("openset", "open-set evaluation: people never trained on, 1 or 5 photos enrolled, unknowns rejected",
          ("occlusion", "pdsn.layouts", "teacher"), needs=("prepare", "base"),
          optional=("dictionary", "headtune", "segmenter", "teacher")),
    Stage("robustness", "segmenter checks: occluders training never drew, grayscale and infrared clean faces",
          ("occlusion",), needs=("prepare", "segmenter")),
)
STAGE_NAMES: tuple[str, ...] = tuple(stage.name for stage in STAGES)


@dataclasses.dataclass
class Decision:
    """What a walk of the graph does with one stage: ``run``, ``done`` (reused), ``stale`` (out of date but not
    chosen) or ``missing`` (never finished, not chosen); ``reasons`` say why it runs or is stale."""

    stage: Stage
    action: str
    reasons: list[str]


def stage_key(stage: Stage, config: Config, data_files: str | None, inputs: dict[str, str | None]) -> str:
    """16 hex digits over the stage's settings, its data files' digest and its inputs' output ids."""
    payload = {"settings": settings_of(stage, config), "data_files": data_files if stage.reads_data else None,
               "inputs": {name: inputs.get(name) for name in stage.inputs}}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def settings_of(stage: Stage, config: Config) -> dict:
    """``{"train.seed": 42, "pdsn": {...}}``: the values of the stage's sections and keys."""
    values = config.to_dict()
    settings = {}
    for name in stage.sections:
        section, _, key = name.partition(".")
        settings[name] = values[section][key] if key else values[section]
    for name in stage.folders:
        section, _, key = name.partition(".")
        value = values[section][key]
        settings[f"files in {name}"] = tree_digest([value] if isinstance(value, str) else value)
    return settings


def marker_record(stage: Stage, config: Config, data_files: str | None, inputs: dict[str, str | None],
                  seconds: float) -> dict:
    """What a finished stage's marker holds: its key, a fresh output id for the stages that read it, and what
    went into the key (so a later plan can say which setting or input changed)."""
    return {"key": stage_key(stage, config, data_files, inputs), "output": uuid.uuid4().hex[:16],
            "settings": settings_of(stage, config), "data_files": data_files if stage.reads_data else None,
            "inputs": {name: inputs.get(name) for name in stage.inputs}, "seconds": round(seconds, 2)}


def current_inputs(stage: Stage, run: RunFolder) -> dict[str, str | None]:
    """The output id of each stage ``stage`` reads, from their markers (None: not finished)."""
    return {name: (run.read_marker(name) or {}).get("output") for name in stage.inputs}


def plan(run: RunFolder, config: Config, data_files: str, chosen: list[str], force: bool) -> list[Decision]:
    """The decision for every stage, in pipeline order, for running ``chosen`` (``force``: redo them)."""
    decisions: dict[str, Decision] = {}
    for stage in STAGES:
        reasons = ["--force"] if force and stage.name in chosen else []
        reasons += reasons_to_rerun(stage, run, config, data_files, decisions)
        if stage.name in chosen:
            action = "run" if reasons else "done"
        elif reasons:
            action = "missing" if run.read_marker(stage.name) is None else "stale"
        else:
            action = "done"
        decisions[stage.name] = Decision(stage, action, reasons)
    return list(decisions.values())


def reasons_to_rerun(stage: Stage, run: RunFolder, config: Config, data_files: str,
                     upstream: dict[str, Decision]) -> list[str]:
    """Why the stage's finished result (if any) no longer matches: empty when it can be reused."""
    marker = run.read_marker(stage.name)
    if marker is None:
        return ["not finished yet"]
    if "key" not in marker or "settings" not in marker:
        return ["made by an older version of keras-landmask"]
    reasons = changed_settings(marker["settings"], settings_of(stage, config))
    if stage.reads_data and marker.get("data_files") != data_files:
        reasons.append("the data folder's files changed")
    recorded = marker.get("inputs", {})
    for name in stage.inputs:
        before = upstream[name]
        if before.action == "run":
            reasons.append(f"{name} runs first")
        elif before.action == "stale":
            reasons.append(f"{name} is out of date")
        elif before.action == "missing" and name in stage.needs:
            reasons.append(f"{name} is not finished")
        elif recorded.get(name) != (run.read_marker(name) or {}).get("output"):
            reasons.append(f"{name} changed since" if recorded.get(name) else f"{name} finished since")
    if not reasons and marker["key"] != stage_key(stage, config, data_files, current_inputs(stage, run)):
        reasons.append("made by another version of keras-landmask")
    return reasons


def changed_settings(before: dict, now: dict, prefix: str = "") -> list[str]:
    """``["train.epochs 24 -> 30", ...]``: every leaf value that differs between two nested dicts."""
    changes = []
    for key in sorted(set(before) | set(now), key=str):
        old, new = before.get(key), now.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            changes += changed_settings(old, new, f"{prefix}{key}.")
        elif old != new:
            changes.append(f"{prefix}{key} {old!r} -> {new!r}")
    return changes


def check_plan(decisions: list[Decision]) -> None:
    """``LandmaskError`` when a stage that will run reads a stage that is neither finished and up to date nor
    running first (before any stage runs: a long stage does not fail at its end)."""
    by_name = {d.stage.name: d for d in decisions}
    for decision in decisions:
        if decision.action != "run":
            continue
        for name in decision.stage.inputs:
            before = by_name[name]
            if before.action == "missing" and name in decision.stage.needs:
                raise LandmaskError(f"'{decision.stage.name}' reads the '{name}' stage, which has not finished: "
                                    f"run the '{name}' stage first (add it to --stages, or leave --stages out to "
                                    "run the whole pipeline)")
            if before.action == "stale":
                raise LandmaskError(f"'{decision.stage.name}' reads the '{name}' stage, which is out of date ("
                                    f"{'; '.join(before.reasons)}): add '{name}' to --stages, or leave --stages out "
                                    "to run the whole pipeline")


def format_plan(decisions: list[Decision]) -> str:
    """One line per stage: ``will run``, ``reused``, ``out of date`` or ``not finished``, and why."""
    words = {"run": "will run", "done": "reused (finished, up to date)", "stale": "out of date, not chosen",
             "missing": "not finished, not chosen"}
    lines = []
    for decision in decisions:
        why = f": {'; '.join(decision.reasons)}" if decision.reasons and decision.action != "done" else ""
        lines.append(f"  {decision.stage.name:<10} {words[decision.action]}{why}")
    return "\n".join(lines)


def describe_graph() -> str:
    """The graph for ``--help``: each stage, what it reads and the settings it depends on."""
    lines = []
    for stage in STAGES:
        reads = ["the data folder"] if stage.reads_data else []
        reads += [f"the folders of {name}" for name in stage.folders]
        reads += list(stage.needs) + [f"{name} (if finished)" for name in stage.optional]
        settings = ", ".join(stage.sections)
        lines.append(f"  {stage.name:<10} {stage.about}; reads {', '.join(reads)}; settings {settings}")
    return "\n".join(lines)
