"""LFW discovery (``<root>/<Name>/<Name>_NNNN.jpg``) and the deterministic per-identity split."""
from __future__ import annotations

import csv
import dataclasses
import hashlib
from pathlib import Path

import numpy as np

from keras_landmask.core.images import FORMATS, IMAGE_SUFFIXES
from keras_landmask.errors import LandmaskError

SPLITS = ("train", "val", "test")


@dataclasses.dataclass(frozen=True)
class Sample:
    """One image: its path, person name, integer label (index of the person) and split."""

    path: Path
    person: str
    label: int
    split: str


def discover_people(root: str | Path, min_images: int = 10, max_people: int = 0) -> dict[str, list[Path]]:
    """People (sub-folders) with at least ``min_images`` images, sorted by name, and their sorted files.

    Raises ``LandmaskError`` when the folder is missing, holds no images, or too few people qualify.
    """
    root = Path(root)
    hint = "pass --data DIR (or set LANDMASK_DATA) to an LFW folder with one sub-folder of JPEGs per person"
    if not root.is_dir():
        raise LandmaskError(f"data folder '{root}' does not exist; {hint}")
    people, others = {}, 0
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        if files:
            people[folder.name] = files
        elif any(f.is_file() for f in folder.iterdir()):
            others += 1
    if not people:
        found = (f" ({others} sub-folder(s) hold only files that are not {FORMATS} images)"
                 if others else "")
        raise LandmaskError(f"data folder '{root}' holds no person folders with images{found}; {hint}")
    chosen = {name: files for name, files in people.items() if len(files) >= min_images}
    if max_people and len(chosen) < max_people:
        raise LandmaskError(
            f"only {len(chosen)} people in '{root}' have >= {min_images} images, {max_people} were asked for; "
            "lower data.min_images or data.max_people"
        )
    if len(chosen) < 2:
        raise LandmaskError(
            f"only {len(chosen)} people in '{root}' have >= {min_images} images; recognition needs at least 2 "
            "(lower data.min_images)"
        )
    if max_people:
        chosen = dict(list(chosen.items())[:max_people])
    return chosen


def folder_digest(root: str | Path) -> str:
    """16 hex digits over every image's relative path and size in ``root``'s person folders (``"missing"`` when
    the folder does not exist): a stage that read the folder reruns when its files change."""
    root = Path(root)
    if not root.is_dir():
        return "missing"
    digest = hashlib.sha256()
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for file in sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES):
            digest.update(f"{folder.name}/{file.name}:{file.stat().st_size};".encode())
    return digest.hexdigest()[:16]


def images_under(root: Path) -> list[Path]:
    """Every image file under ``root``, recursively, sorted."""
    return sorted(f for f in root.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)


def tree_digest(folders: list[str | Path]) -> str:
    """16 hex digits over every image's path (relative to its folder) and size under ``folders``, recursively
    (``missing`` for a folder that does not exist)."""
    digest = hashlib.sha256()
    for root in map(Path, folders):
        if not root.is_dir():
            digest.update(f"{root}:missing;".encode())
            continue
        for file in images_under(root):
            digest.update(f"{file.relative_to(root)}:{file.stat().st_size};".encode())
    return digest.hexdigest()[:16]


def split_people(
    people: dict[str, list[Path]],
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 1234,
    max_images_per_person: int = 0,
) -> list[Sample]:
    """Per-identity shuffled split into train/val/test (each person in all three when it has >= 3 images).

    Deterministic: the same people, fractions and seed give the same split. Val and test get
    ``round(fraction * n)`` images each (at least 1), train the rest.
    """
    samples = []
    for label, (person, files) in enumerate(people.items()):
        person_seed = np.random.SeedSequence([seed, _stable_hash(person)])
        order = np.random.default_rng(person_seed).permutation(len(files))
        files = [files[i] for i in order]
        if max_images_per_person:
            files = files[:max_images_per_person]
        n = len(files)
        n_val = max(1, int(val_fraction * n + 0.5)) if n >= 3 else 0
        n_test = max(1, int(test_fraction * n + 0.5)) if n >= 3 else 0
        names = ["val"] * n_val + ["test"] * n_test + ["train"] * (n - n_val - n_test)
        samples += [Sample(path, person, label, split) for path, split in zip(files, names)]
    return samples


def hold_out_people(people: dict[str, list[Path]], count: int, seed: int) -> tuple[dict, dict]:
    """``(kept, held_out)``: ``count`` people drawn with ``seed`` are held out (for the open-set evaluation: never
    trained on), the rest kept; both in name order. At least 2 people must stay on each side (or none held out)."""
    if count == 0:
        return people, {}
    if count < 2 or count > len(people) - 2:
        raise LandmaskError(f"data.openset_people={count} of {len(people)} people: hold out 0, or 2 to "
                            f"{len(people) - 2} (2 or more must stay for training)")
    names = sorted(people)
    chosen = set(np.random.default_rng([seed, 0x0BE5]).choice(len(names), size=count, replace=False).tolist())
    held = {n: people[n] for i, n in enumerate(names) if i in chosen}
    return {n: files for n, files in people.items() if n not in held}, held


def openset_samples(people: dict[str, list[Path]], enrol: int, seed: int, max_images_per_person: int = 0):
    """The held-out people's photos, per person shuffled with ``seed``: the first ``enrol`` are split ``enrol``
    (the 1-photo protocol uses the first), the rest ``probe``; labels index ``people`` in name order."""
    samples = []
    for label, (person, files) in enumerate(sorted(people.items())):
        order = np.random.default_rng(np.random.SeedSequence([seed, _stable_hash(person), 1])).permutation(len(files))
        files = [files[i] for i in order][:max_images_per_person or None]
        if len(files) <= enrol:
            raise LandmaskError(f"open-set person {person} has {len(files)} photos, not more than "
                                f"data.openset_enrol={enrol}; lower data.openset_enrol")
        samples += [Sample(path, person, label, "enrol" if i < enrol else "probe") for i, path in enumerate(files)]
    return samples


def unknown_samples(root: str | Path, count: int, seed: int, exclude: set[str]) -> list[Sample]:
    """One photo each of ``count`` people from ``root`` (one sub-folder per person, e.g. LFW's single-photo
    people), drawn with ``seed``, none named in ``exclude``: split ``unknown``, label -1 (never enrolled)."""
    root = Path(root)
    if not root.is_dir():
        raise LandmaskError(f"unknown-faces folder '{root}' not found; set data.unknown_folder=DIR (one "
                            "sub-folder of photos per person) or data.unknown_people=0")
    people = {n: files for n, files in discover_people(root, 1).items() if n not in exclude}
    if len(people) < count:
        raise LandmaskError(f"'{root}' holds {len(people)} people not in the training data, "
                            f"data.unknown_people={count} were asked for; lower it")
    names = sorted(people)
    chosen = sorted(np.random.default_rng([seed, 0x5EED]).choice(len(names), size=count, replace=False))
    return [Sample(people[names[i]][0], names[i], -1, "unknown") for i in chosen]


def _stable_hash(text: str) -> int:
    """A 64-bit integer from a string, the same in every process (unlike ``hash``)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def write_split(samples: list[Sample], path: Path) -> None:
    """CSV with columns path, person, label, split (one row per image)."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "person", "label", "split"])
        for s in samples:
            writer.writerow([str(s.path), s.person, s.label, s.split])
