"""Which photos a command reads from the disk: ``identify``'s files and folders, ``enrol --folder``'s people, and
the file each annotated photo gets under ``identify --save-dir``.

Inside folders, photos are picked by suffix (``keras_landmask.core.images.IMAGE_SUFFIXES``, the same rule for
every command); hidden files and folders (``.DS_Store``, ``.thumbnails/``) are passed over.
"""
from __future__ import annotations

from pathlib import Path

import cv2

from edge_runtime.gallery import GalleryError, check_new_name
from keras_landmask.core.images import IMAGE_SUFFIXES, ImageError


def _visible(path: Path, root: Path) -> bool:
    return not any(part.startswith(".") for part in path.relative_to(root).parts)


def collect_photos(arguments: list[str]) -> list[tuple[Path, Path]]:
    """``(photo, its name under --save-dir)`` for every argument, in order: a file (or a path that does not exist,
    reported when it is read) as it is, named by its file name; a folder: every photo under it, recursively and
    sorted, named ``FOLDER/relative path``."""
    photos = []
    for argument in arguments:
        path = Path(argument)
        if not path.is_dir():
            photos.append((path, Path(path.name)))
            continue
        found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                       and _visible(p, path))
        photos += [(p, Path(path.resolve().name) / p.relative_to(path)) for p in found]
    return photos


def people_in_folder(folder: Path) -> tuple[dict[str, list[Path]], list[Path]]:
    """``({person: their photos}, files that are not photos)`` of an ``enrol --folder`` folder: each sub-folder
    is a person named after it (the photos directly inside), and each photo directly in ``folder`` a person named
    after its file (``Ada Lovelace.jpg``: face_recognition's ``known_people/`` layout); the two may be mixed. Every
    name is checked before anything is returned; ``ImageError`` / ``GalleryError`` say what to fix."""
    if not folder.is_dir():
        raise ImageError(f"folder '{folder}' not found")
    entries = [p for p in sorted(folder.iterdir()) if not p.name.startswith(".")]
    people: dict[str, list[Path]] = {}
    others = []
    for entry in entries:
        loose = entry.is_file()
        if loose and entry.suffix.lower() not in IMAGE_SUFFIXES:
            others.append(entry)
            continue
        try:
            name = check_new_name(entry.stem if loose else entry.name)
        except GalleryError as error:
            kind = "photo" if loose else "folder"
            raise GalleryError(f"{kind} '{entry}': {error} (rename the {'file' if loose else 'folder'})") from None
        photos = people.setdefault(name, [])
        if loose:
            photos.append(entry)
        else:
            for file in sorted(p for p in entry.iterdir() if p.is_file() and not p.name.startswith(".")):
                (photos if file.suffix.lower() in IMAGE_SUFFIXES else others).append(file)
    if not people:
        raise ImageError(f"'{folder}' has no photos and no sub-folders; make one sub-folder per person, named "
                         "after them, or name each photo after its person (Ada Lovelace.jpg)")
    return people, others


def save_path(save_dir: Path, name: Path, used: set[Path]) -> Path:
    """Where the annotated copy of a photo called ``name`` goes under ``save_dir``: the same relative name (with
    ``.png`` added when OpenCV cannot write that format), and ``-2``, ``-3``, ... when ``used`` already has it."""
    target = save_dir / name
    if not cv2.haveImageWriter(str(target)):
        target = target.with_name(target.name + ".png")
    candidate, count = target, 1
    while candidate in used:
        count += 1
        candidate = target.with_name(f"{target.stem}-{count}{target.suffix}")
    used.add(candidate)
    return candidate
