"""``landmask`` (or ``python -m edge_runtime``): enrol people, identify or verify faces in photos, run a camera,
manage the gallery.

    landmask enrol    --gallery people.db --folder photos/
    landmask identify --gallery people.db photos/ more.jpg --csv faces.csv
    landmask verify   a.jpg b.jpg
    landmask camera   --gallery people.db --source 0
    landmask gallery  --gallery people.db list
                      (or: faces NAME | remove-face ID | rename OLD NEW | erase NAME)
    landmask models   (the model packs it knows, with their accuracy)

Every command uses the model pack shipped with the package unless ``--models`` names another pack or an export
folder (``tools/export_tflite.py --out``); a gallery is tied to the models it was enrolled with.
Needs only LiteRT (``pip install ai-edge-litert``), numpy and OpenCV; never TensorFlow. Only ``enrol`` creates a
gallery. Problems the user can fix are one ``error:`` line on stderr and exit status 2. ``enrol`` skips unusable
photos with a line each (status 2 only when nothing could be enrolled); ``identify`` reports every readable
photo and exits 2 if any could not be read. JSON output follows docs/output-schema.md. See docs/errors.md.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import json
import sqlite3
import sys
import warnings
from pathlib import Path

import cv2

from edge_runtime import records
from edge_runtime.camera import SCAN_EVERY, CameraError
from edge_runtime.drawing import draw_faces
from edge_runtime.gallery import GalleryError, check_new_name
from edge_runtime.interpreter import ModelError, RuntimeMissing
from edge_runtime.manifest import ManifestError
from edge_runtime.notes import RuntimeNote
from edge_runtime.packs import DEFAULT_PACK, pack_summary, resolve_models, shipped_packs
from edge_runtime.photos import collect_photos, people_in_folder, save_path
from edge_runtime.progress import Progress
from edge_runtime.recognizer import (DEFAULT_TOP_K, MIN_ENROL_FACE, MIN_FACE_CAMERA, MIN_FACE_PHOTO, Recognizer,
                                     check_min_face_size, check_threshold)
from keras_landmask.core.images import IMAGE_SUFFIXES, ImageError, read_image

MODELS_HELP = (f"an export folder (tools/export_tflite.py --out) or a shipped pack's name (default: the shipped pack "
               f"'{DEFAULT_PACK}'; 'landmask models' lists the packs)")
USER_ERRORS = (CameraError, GalleryError, ImageError, ManifestError, ModelError, RuntimeMissing)
ENROL_BATCH = 16  # photos per gallery transaction: an interrupted enrolment loses at most this many
MODELS_LIST_HELP = ("The model packs shipped with the package and any export folders given: size, quantization, "
                    "the exported models' Table 1 clean rank-1 (people trained on), and, for packs, the open-set "
                    "rank-1 with one enrolment photo (people never trained on, measured through the exported "
                    "models: clean, face mask, sunglasses) and the camera's ms per frame. The default pack is "
                    "marked with *.")
VERIFY_HELP = ("Whether two photos show the same person: the face nearest each photo's centre is embedded under "
               "the union of both faces' occluded regions (the feature discarding mask drops the same features "
               "from both, so a masked face is compared with the other face masked alike), and their cosine "
               "similarity is compared with the verification threshold calibrated at export on validation pairs "
               "(1 % of different-person pairs accepted). Exit status 0: same person, 1: different people, "
               "2: an error.")


def positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1 or str(value) != text.strip():
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return value


def threshold(text: str) -> float:
    """argparse type: a cosine threshold in -1..1."""
    try:
        return check_threshold(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def min_face_size(text: str) -> float:
    """argparse type: the detector's smallest face, pixels (at least 12)."""
    try:
        return check_min_face_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_common(parser: argparse.ArgumentParser, gallery: str | None, suppress: bool = False) -> None:
    """The options every command takes. ``gallery``: its help, or None for a command without one; ``suppress``:
    no defaults (for the ``gallery`` actions, which accept the options after the action too)."""
    default = (lambda value: argparse.SUPPRESS) if suppress else (lambda value: value)
    parser.add_argument("--models", default=default(None), help=MODELS_HELP)
    if gallery is not None:
        parser.add_argument("--gallery", default=default(None), help=gallery)
    parser.add_argument("--threads", type=positive_int, default=default(2), help="LiteRT threads per model (default 2)")
    parser.add_argument("--verbose", action="store_true", default=default(False),
                        help="show LiteRT's own INFO lines (hidden by default)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="landmask", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    existing = "gallery file (SQLite) made by enrol; without it, faces are found but nobody is named"

    enrol = commands.add_parser("enrol", help="add people from photos (the face nearest each photo's centre)")
    add_common(enrol, "gallery file (SQLite); created when it does not exist (required)")
    enrol.add_argument("--folder", help="a sub-folder per person named after them, and/or photos named after "
                                        "their person (Ada Lovelace.jpg); photos already enrolled are left out, so "
                                        "an interrupted enrolment resumes when run again")
    enrol.add_argument("--name", help="the person the IMAGES show (instead of --folder)")
    enrol.add_argument("images", nargs="*", help="photos of --name")
    enrol.add_argument("--min-face", type=float, default=MIN_ENROL_FACE, metavar="PX",
                       help=f"skip photos whose face is shorter than PX pixels (default {MIN_ENROL_FACE}: smaller "
                            "faces are blurred references)")

    identify = commands.add_parser("identify", help="name every face in photos and folders of photos")
    add_common(identify, existing)
    identify.add_argument("images", nargs="+", metavar="PHOTO|FOLDER",
                          help=f"photos, and folders searched recursively for {', '.join(IMAGE_SUFFIXES)} files")
    identify.add_argument("--json", action="store_true", help="one JSON object per photo on stdout instead of text "
                                                              "(docs/output-schema.md)")
    identify.add_argument("--csv", metavar="FILE", help="also write one row per face to FILE (an unreadable "
                                                        "photo is a row with its error)")
    identify.add_argument("--save-dir", metavar="DIR", help="write each photo to DIR with its faces drawn (boxes, "
                                                            "names, scores, occluded regions)")

    verify = commands.add_parser("verify", help="are two photos of the same person?", description=VERIFY_HELP)
    add_common(verify, None)
    verify.add_argument("image_a", metavar="PHOTO_A")
    verify.add_argument("image_b", metavar="PHOTO_B")
    verify.add_argument("--json", action="store_true", help="one JSON object instead of text")

    camera = commands.add_parser("camera", help="recognise faces live from a camera, a video file or a stream")
    add_common(camera, existing)
    camera.add_argument("--source", default="0",
                        help="camera index (0), video file, rtsp://... URL or a GStreamer pipeline ending in appsink")
    camera.add_argument("--headless", action="store_true", help="no window: one JSON line per frame on stdout")
    camera.add_argument("--output", metavar="VIDEO", help="write the annotated frames to VIDEO (.mp4, .avi, ...) "
                                                          "instead of showing a window")
    camera.add_argument("--detect-every", type=positive_int, default=3,
                        help="run detection and recognition every N frames, track faces in between (default: 3)")
    camera.add_argument("--scan-every", type=positive_int, default=SCAN_EVERY, metavar="N",
                        help="every N-th detection searches the whole frame for new faces; the others look only "
                             "where the tracked faces are, which is several times faster (default: "
                             f"{SCAN_EVERY}; 1: search the whole frame every time)")
    camera.add_argument("--max-frames", type=positive_int, help="stop after this many frames")

    for sub in (identify, verify, camera):
        sub.add_argument("--threshold", type=threshold,
                         help="cosine score (-1..1) a match needs (default: the export's, calibrated per occlusion "
                              "pattern)")
    for sub, default in ((identify, MIN_FACE_PHOTO), (verify, MIN_FACE_PHOTO), (camera, MIN_FACE_CAMERA)):
        sub.add_argument("--min-face-size", type=min_face_size, default=default, metavar="PX",
                         help=f"the smallest face to look for, in pixels (default {default:g}); each halving of it "
                              "about quadruples detection time")
    for sub in (identify, camera):
        sub.add_argument("--top-k", type=positive_int, default=DEFAULT_TOP_K, metavar="N",
                         help=f"list the N best people of each face in JSON ('top'; default {DEFAULT_TOP_K})")

    gallery = commands.add_parser("gallery", help="list, inspect, rename or erase enrolled people")
    add_common(gallery, "gallery file (required)")
    actions = gallery.add_subparsers(dest="action", required=True)

    def action(name: str, help: str) -> argparse.ArgumentParser:
        sub = actions.add_parser(name, help=help, description=help)
        add_common(sub, "gallery file (required)", suppress=True)
        return sub

    action("list", "people and how many faces each has")
    action("faces", "one person's faces: id, source photo, when enrolled").add_argument("name")
    action("remove-face", "remove one face (see faces); a person left without faces is removed too").add_argument(
        "face_id", type=positive_int, metavar="ID")
    rename = action("rename", "rename a person")
    rename.add_argument("old")
    rename.add_argument("new")
    action("erase", "remove a person completely (faces, cached embeddings; file compacted)").add_argument("name")

    models = commands.add_parser("models", help="list the model packs (shipped, and any --models folders) and their "
                                                "measured accuracy", description=MODELS_LIST_HELP)
    models.add_argument("--models", action="append", default=[], metavar="FOLDER",
                        help="also list this export folder (repeatable)")
    models.add_argument("--json", action="store_true", help="one JSON object per pack instead of a table")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "models":
        return list_models(args)
    if args.command in ("enrol", "gallery") and args.gallery is None:
        # checked here, not by argparse, so gallery's options may also follow its action
        parser.error(f"{args.command}: the following arguments are required: --gallery")
    with warnings.catch_warnings():
        warnings.simplefilter("default", RuntimeNote)  # each once
        warnings.showwarning = show_note(warnings.showwarning)
        try:
            with Recognizer(args.models, gallery=getattr(args, "gallery", None), threads=args.threads,
                            threshold=getattr(args, "threshold", None), top_k=getattr(args, "top_k", DEFAULT_TOP_K),
                            create_gallery=args.command == "enrol", verbose=args.verbose,
                            min_face_size=getattr(args, "min_face_size", MIN_FACE_PHOTO),
                            derive_levels=args.command == "camera") as recognizer:
                return COMMANDS[args.command](recognizer, args)
        except USER_ERRORS as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        except sqlite3.Error as error:  # a gallery write failing (disk full, read-only) outside the checked paths
            print(f"error: gallery '{args.gallery}' cannot be used ({error}); free disk space or fix its "
                  "permissions and run again (enrolments reported as done are saved)", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted" + ("; every enrolment reported as done is saved (the same enrol command goes on "
                                   "from there)" if args.command == "enrol" else ""), file=sys.stderr)
            return 130


def show_note(show):
    """A ``warnings.showwarning`` printing a ``RuntimeNote`` as one ``note:`` line, other warnings with ``show``."""
    def showwarning(message, category, *rest, **named):
        if issubclass(category, RuntimeNote):
            print(f"note: {message}", file=sys.stderr)
        else:
            show(message, category, *rest, **named)
    return showwarning


def enrol(recognizer: Recognizer, args) -> int:
    """Enrol every person, ``ENROL_BATCH`` photos per transaction; unusable photos are skipped with a line each,
    photos already enrolled are counted. Exit status 2 when nothing at all could be used, else 0."""
    if bool(args.folder) == bool(args.name):
        raise ImageError("pass either --folder DIR (a sub-folder or a photo per person) or --name NAME with photos")
    if args.folder:
        people, others = people_in_folder(Path(args.folder))
    else:
        name = check_new_name(args.name)
        if not args.images:
            raise ImageError(f"no photos of '{name}' given")
        people, others = {name: [Path(p) for p in args.images]}, []
    suffixes = ", ".join(IMAGE_SUFFIXES)
    for path in others:
        print(f"  skipped: '{path}' is not a photo (only {suffixes} files are read)", file=sys.stderr)
    skipped, added, already = len(others), 0, 0
    with Progress(sum(map(len, people.values())), "enrol") as bar:
        for name, paths in people.items():
            if not paths:
                bar.echo(f"  skipped: '{name}' has no photos ({suffixes}); nobody enrolled for them", sys.stderr)
                continue
            person_added = person_already = 0
            for start in range(0, len(paths), ENROL_BATCH):
                faces, batch_added, batch_already, batch_skipped = enrol_batch(
                    recognizer, name, paths[start:start + ENROL_BATCH], args.min_face, bar)
                person_added, person_already = person_added + batch_added, person_already + batch_already
                skipped += batch_skipped
            added, already = added + person_added, already + person_already
            bar.echo(f"{name}: {person_added} face(s) enrolled"
                     + (f", {person_already} already in the gallery" if person_already else "")
                     + (f", {faces} in all" if faces != person_added else ""))
    store = recognizer.gallery
    print(f"gallery {args.gallery}: {len(store.people())} people, {len(store)} faces"
          + (f"; {skipped} photo(s) skipped" if skipped else ""))
    if not added and not already:
        total = sum(map(len, people.values())) + len(others)
        print(f"error: no face enrolled: none of the {total} file(s) given held a usable face; use "
              "JPEG or PNG photos showing one face, at least 24 pixels across", file=sys.stderr)
        return 2
    return 0


def enrol_batch(recognizer: Recognizer, name: str, paths: list[Path], min_face: float,
                bar: Progress) -> tuple[int, int, int, int]:
    """Enrol ``paths`` for ``name`` in one gallery transaction, a ``  skipped:`` line per unusable photo;
    returns (faces they have now, added, already enrolled, skipped)."""
    images, sources, skipped = [], [], 0
    for path in paths:
        try:
            images.append(read_image(path))
            sources.append(str(path))
        except ImageError as error:
            bar.echo(f"  skipped: {error}", sys.stderr)
            skipped += 1
    result = recognizer.enrol(name, images, sources, min_face)
    for reason in result.skipped:
        bar.echo(f"  skipped: {reason}", sys.stderr)
    bar.advance(len(paths))
    return result.faces, result.added, result.already, skipped + len(result.skipped)


def describe(path: Path, faces: list) -> list[str]:
    """The text lines ``identify`` prints for one photo."""
    if not faces:
        return [f"{path}: no face found"]
    lines = []
    for face in faces:
        occluded = f", occluded: {', '.join(face.occluded)}" if face.occluded else ""
        if face.score is None:
            lines.append(f"{path}: {face.name} (nobody enrolled{occluded})")
        else:
            nearest = "" if face.matched else f", nearest {face.nearest}"
            lines.append(f"{path}: {face.name} (score {face.score:.3f}, threshold {face.threshold:.3f}{nearest}"
                         f"{occluded})")
    return lines


def identify(recognizer: Recognizer, args) -> int:
    """Name the faces of every photo (folders searched recursively); a photo that cannot be read is an error
    line (and an error row in --json / --csv), the others are still done, and the exit status is then 2."""
    photos = collect_photos(args.images)
    if not photos:
        raise ImageError(f"no photos ({', '.join(IMAGE_SUFFIXES)}) in {', '.join(map(repr, args.images))}")
    save_dir = None if args.save_dir is None else Path(args.save_dir)
    if save_dir is not None:
        try:
            save_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ImageError(f"--save-dir '{save_dir}' cannot be made ({error.strerror or error}); give a folder") \
                from None
    used: set[Path] = set()
    unreadable = faces_found = named = 0
    with contextlib.ExitStack() as stack:
        table = None if args.csv is None else csv_writer(stack, Path(args.csv))
        bar = stack.enter_context(Progress(len(photos), "identify"))
        for path, name in photos:
            faces, error = [], None
            try:
                image = read_image(path)
                faces = recognizer.recognize(image)
            except ImageError as problem:
                error = str(problem)
                unreadable += 1
                bar.echo(f"error: {error}", sys.stderr)
            if args.json:
                bar.echo(json.dumps(records.photo_record(str(path), faces, error), ensure_ascii=False))
            elif error is None:
                for line in describe(path, faces):
                    bar.echo(line)
            if table is not None:
                table.writerows(records.csv_rows(str(path), faces, error))
            if save_dir is not None and error is None:
                write_photo(save_path(save_dir, name, used), draw_faces(image, faces))
            faces_found += len(faces)
            named += sum(face.matched for face in faces)
            bar.advance()
    if len(photos) > 1:
        print(f"{len(photos)} photos: {faces_found} faces, {named} named, {faces_found - named} unknown"
              + (f"; {unreadable} could not be read" if unreadable else ""), file=sys.stderr)
    return 2 if unreadable else 0


def csv_writer(stack: contextlib.ExitStack, path: Path) -> csv.DictWriter:
    """A ``csv.DictWriter`` of ``records.CSV_COLUMNS`` into ``path`` (header written, a line buffer each row, so
    an interrupted run keeps its rows), closed with ``stack``."""
    try:
        handle = stack.enter_context(open(path, "w", newline="", encoding="utf-8", buffering=1))
    except OSError as error:
        raise ImageError(f"--csv '{path}' cannot be written ({error.strerror or error}); give a writable file") \
            from None
    writer = csv.DictWriter(handle, records.CSV_COLUMNS)
    writer.writeheader()
    return writer


def write_photo(path: Path, rgb) -> None:
    """Write an RGB image to ``path`` (its folders made); ``ImageError`` when that fails (e.g. disk full)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        written = cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    except (OSError, cv2.error) as error:
        written = False
        reason = f" ({error})"
    else:
        reason = ""
    if not written:
        raise ImageError(f"cannot write '{path}'{reason}; check the --save-dir folder and free disk space")


def verify(recognizer: Recognizer, args) -> int:
    """Same person (exit 0) or not (exit 1), with the score, the threshold and each face's occluded regions."""
    result = recognizer.verify(args.image_a, args.image_b)
    images = (args.image_a, args.image_b)
    if args.json:
        print(json.dumps(records.verification_record(images, result), ensure_ascii=False))
    else:
        verdict = "same person" if result.same_person else "different people"
        print(f"{verdict} (score {result.score:.3f}, threshold {result.threshold:.3f}, {result.threshold_source})")
        for path, face in zip(images, result.faces):
            print(f"  {path}: occluded: {', '.join(face.occluded) or 'nothing'}")
        if result.occluded:
            print(f"  both compared without: {', '.join(result.occluded)}")
    return 0 if result.same_person else 1


def camera(recognizer: Recognizer, args) -> int:
    from edge_runtime.camera import run_camera

    return run_camera(recognizer, args.source, headless=args.headless, detect_every=args.detect_every,
                      scan_every=args.scan_every, max_frames=args.max_frames, output=args.output)


def gallery(recognizer: Recognizer, args) -> int:
    store = recognizer.gallery
    if args.action == "list":
        for name, faces in store.people():
            print(f"{name}\t{faces}")
        print(f"{len(store.people())} people, {len(store)} faces")
    elif args.action == "faces":
        faces = store.faces(args.name)
        for face_id, source, created in faces:
            print(f"{face_id}\t{source}\t{created}")
        print(f"{args.name}: {len(faces)} face(s)")
    elif args.action == "remove-face":
        name, left = store.remove_face(args.face_id)
        print(f"removed face {args.face_id} of '{name}' "
              + (f"({left} left)" if left else "(no faces left: they are no longer enrolled)")
              + f" and compacted {args.gallery}")
    elif args.action == "rename":
        store.rename(args.old, args.new)
        print(f"renamed '{args.old}' to '{args.new}'")
    else:
        removed = store.erase(args.name)
        print(f"erased '{args.name}' ({removed} face(s)) and compacted {args.gallery}")
    return 0


def list_models(args) -> int:
    """``landmask models``: a line (or JSON object) per pack: the shipped ones, then the ``--models`` folders."""
    folders = shipped_packs() + [resolve_models(folder) for folder in args.models]
    summaries = []
    for folder in folders:
        try:
            summaries.append(pack_summary(folder))
        except (OSError, ValueError, KeyError, TypeError) as error:
            print(f"error: '{folder}' is not an export folder ({type(error).__name__}: {error}); pass a folder "
                  "written by tools/export_tflite.py", file=sys.stderr)
            return 2
    if args.json:
        for summary in summaries:
            print(json.dumps(summary))
        return 0
    if not summaries:
        print("no model packs installed; pass --models with a folder written by tools/export_tflite.py")
        return 0
    percent = lambda value: "–" if value is None else f"{value:.1%}"  # noqa: E731
    header = ("", "pack", "MB", "quantization", "Table 1 clean", "open set: clean", "face mask", "sunglasses",
              "camera ms/frame")
    rows = [header] + [("*" if s["default"] else "", s["name"], f"{s['megabytes']:.1f}", s["quantization"],
                        percent(s["table1_clean"]), *(percent((s.get("openset_rank1") or {}).get(row))
                                                      for row in ("clean", "face_mask", "sunglasses")),
                        "–" if s.get("frame_ms") is None else f"{s['frame_ms']:.1f}") for s in summaries]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    print("\n".join(["", "open set: rank-1 of people never trained on, one enrolment photo each (packs only); "
                      "* = the default", *(f"{s['name']}: {s['folder']}" for s in summaries)]))
    return 0


COMMANDS = {"enrol": enrol, "identify": identify, "verify": verify, "camera": camera, "gallery": gallery}
