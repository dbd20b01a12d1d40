"""LFW discovery (``<root>/<Name>/<Name>_NNNN.jpg``) and the deterministic per-identity split."""
from __future__ import annotations

import csv
import dataclasses
import hashlib
from pathlib import Path

import numpy as np

from keras_landmask.errors import LandmaskError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
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
        found = (f" ({others} sub-folder(s) hold only files that are not {'/'.join(IMAGE_SUFFIXES)})"
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
