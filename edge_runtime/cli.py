"""``python -m edge_runtime``: enrol people, identify faces in photos, run a camera, manage the gallery.

    python -m edge_runtime enrol    --models dist/lfw-int8 --gallery people.db --folder photos/
    python -m edge_runtime identify --models dist/lfw-int8 --gallery people.db photo.jpg --json
    python -m edge_runtime camera   --models dist/lfw-int8 --gallery people.db --source 0
    python -m edge_runtime gallery  --models dist/lfw-int8 --gallery people.db list | rename OLD NEW | erase NAME

Needs only LiteRT (``pip install ai-edge-litert``), numpy and OpenCV; never TensorFlow. Problems the user can
fix are one line on stderr and exit status 2. ``enrol`` skips unusable photos with a line each (status 2 only
when nothing could be enrolled); ``identify`` reports every readable photo and exits 2 if any could not be read.
See docs/errors.md.
"""
from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path

from edge_runtime.camera import CameraError
from edge_runtime.gallery import GalleryError, check_name
from keras_landmask.core.images import IMAGE_SUFFIXES, ImageError, image_files, other_files, read_image
from edge_runtime.interpreter import ModelError, RuntimeMissing
from edge_runtime.manifest import ManifestError
from edge_runtime.recognizer import MIN_ENROL_FACE

USER_ERRORS = (CameraError, GalleryError, ImageError, ManifestError, ModelError, RuntimeMissing)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m edge_runtime", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.add_argument("--models", required=True, help="folder written by tools/export_tflite.py")
        sub.add_argument("--gallery", required=True, help="gallery file (SQLite; created on first enrolment)")
        sub.add_argument("--threads", type=int, default=2, help="LiteRT threads per model (default: 2)")
        return sub

    enrol = command("enrol", "add people from photos (the face nearest each photo's centre)")
    enrol.add_argument("--folder", help="one sub-folder per person, named after them, holding their photos")
    enrol.add_argument("--name", help="the person the IMAGES show (instead of --folder)")
    enrol.add_argument("images", nargs="*", help="photos of --name")
    enrol.add_argument("--min-face", type=float, default=MIN_ENROL_FACE, metavar="PX",
                       help=f"skip photos whose face is shorter than PX pixels (default {MIN_ENROL_FACE}: smaller "
                            "faces are blurred references)")

    identify = command("identify", "name every face in photos")
    identify.add_argument("images", nargs="+", help="photos (JPEG, PNG, ...)")
    identify.add_argument("--threshold", type=float,
                          help="cosine score below which a face is 'unknown' (default: the manifest's, calibrated)")
    identify.add_argument("--json", action="store_true", help="one JSON object per photo instead of text")

    camera = command("camera", "recognise faces live from a camera, a video file or a stream")
    camera.add_argument("--source", default="0",
                        help="camera index (0), video file, rtsp://... URL or a GStreamer pipeline ending in appsink")
    camera.add_argument("--threshold", type=float, help="as for identify")
    camera.add_argument("--headless", action="store_true", help="no window: one JSON line per frame on stdout")
    camera.add_argument("--detect-every", type=int, default=3,
                        help="run detection and recognition every N frames, track faces in between (default: 3)")
    camera.add_argument("--max-frames", type=int, help="stop after this many frames")

    gallery = command("gallery", "list, rename or erase enrolled people")
    actions = gallery.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="people and how many faces each has")
    rename = actions.add_parser("rename", help="rename a person")
    rename.add_argument("old")
    rename.add_argument("new")
    erase = actions.add_parser("erase", help="remove a person completely (faces, cached embeddings; file compacted)")
    erase.add_argument("name")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        from edge_runtime.recognizer import Recognizer

        recognizer = Recognizer.from_dir(args.models, gallery=args.gallery, threads=args.threads,
                                         threshold=getattr(args, "threshold", None))
        try:
            return COMMANDS[args.command](recognizer, args)
        finally:
            recognizer.close()
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except sqlite3.Error as error:  # a gallery write failing (disk full, read-only) outside the checked paths
        print(f"error: gallery '{args.gallery}' cannot be used ({error}); free disk space or fix its "
              "permissions and run again (enrolments reported as done are saved)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; every enrolment reported as done is saved", file=sys.stderr)
        return 130


def enrol(recognizer, args) -> int:
    """Enrol every person; unusable photos are skipped with a line each. Exit status 2 when nothing at all
    could be enrolled, else 0."""
    if bool(args.folder) == bool(args.name):
        raise ImageError("pass either --folder DIR (one sub-folder per person) or --name NAME with photos")
    ignored = {}  # person → files skipped for their suffix
    if args.folder:
        folder = Path(args.folder)
        if not folder.is_dir():
            raise ImageError(f"folder '{folder}' not found")
        folders = [p for p in sorted(folder.iterdir()) if p.is_dir() and not p.name.startswith(".")]
        if not folders:
            hint = " (to enrol its photos as one person: --name NAME PHOTOS...)" if image_files(folder) else ""
            raise ImageError(f"'{folder}' has no sub-folders; make one per person, named after them{hint}")
        people = {}
        for person in folders:  # every name checked before anything is enrolled
            try:
                name = check_name(person.name)
            except GalleryError as error:
                raise GalleryError(f"folder '{person}': {error} (rename the folder)") from None
            people.setdefault(name, []).extend(image_files(person))
            ignored.setdefault(name, []).extend(other_files(person))
    else:
        name = check_name(args.name)
        if not args.images:
            raise ImageError(f"no photos of '{name}' given")
        people = {name: [Path(p) for p in args.images]}
    skipped_total = enrolled_total = photos_total = 0
    for name, paths in people.items():
        for path in ignored.get(name, []):
            print(f"  skipped: '{path}' is not a photo (only {', '.join(IMAGE_SUFFIXES)} files are read)",
                  file=sys.stderr)
            skipped_total += 1
        photos_total += len(paths) + len(ignored.get(name, []))
        if not paths:
            print(f"  skipped: '{name}' has no photos ({', '.join(IMAGE_SUFFIXES)}); nobody enrolled for them",
                  file=sys.stderr)
            continue
        images, sources = [], []
        for path in paths:
            try:
                images.append(read_image(path))
                sources.append(str(path))
            except ImageError as error:
                print(f"  skipped: {error}", file=sys.stderr)
                skipped_total += 1
        before = dict(recognizer.gallery.people()).get(name, 0)
        stored, unusable = recognizer.enrol(name, images, sources, args.min_face)
        for reason in unusable:
            print(f"  skipped: {reason}", file=sys.stderr)
        skipped_total += len(unusable)
        enrolled_total += stored - before
        print(f"{name}: {stored - before} face(s) enrolled" + (f", {stored} in all" if before else ""))
    print(f"gallery {args.gallery}: {len(recognizer.gallery.people())} people, {len(recognizer.gallery)} faces"
          + (f"; {skipped_total} photo(s) skipped" if skipped_total else ""))
    if not enrolled_total:
        print(f"error: no face enrolled: none of the {photos_total} file(s) given held a usable face; use "
              "JPEG or PNG photos showing one face, at least 24 pixels across", file=sys.stderr)
        return 2
    return 0


def identify(recognizer, args) -> int:
    """Name the faces of every photo; a photo that cannot be read is an error line, the others are still
    done, and the exit status is then 2."""
    unreadable = 0
    for path in args.images:
        try:
            faces = recognizer.recognize(read_image(path))
        except ImageError as error:
            print(f"error: {error}", file=sys.stderr)
            unreadable += 1
            continue
        if args.json:
            print(json.dumps({"image": str(path), "faces": [f.to_dict() for f in faces]}, ensure_ascii=False))
        elif not faces:
            print(f"{path}: no face found")
        for face in [] if args.json else faces:
            occluded = f", occluded: {', '.join(face.occluded)}" if face.occluded else ""
            print(f"{path}: {face.name} (score {face.score:.3f}{occluded})")
    return 2 if unreadable else 0


def camera(recognizer, args) -> int:
    from edge_runtime.camera import run_camera

    return run_camera(recognizer, args.source, headless=args.headless, detect_every=args.detect_every,
                      max_frames=args.max_frames)


def gallery(recognizer, args) -> int:
    store = recognizer.gallery
    if args.action == "list":
        for name, faces in store.people():
            print(f"{name}\t{faces}")
        print(f"{len(store.people())} people, {len(store)} faces")
    elif args.action == "rename":
        store.rename(args.old, args.new)
        print(f"renamed '{args.old}' to '{args.new}'")
    else:
        removed = store.erase(args.name)
        print(f"erased '{args.name}' ({removed} face(s)) and compacted {args.gallery}")
    return 0


COMMANDS = {"enrol": enrol, "identify": identify, "camera": camera, "gallery": gallery}
