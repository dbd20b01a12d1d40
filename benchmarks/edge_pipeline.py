"""The whole on-device pipeline (``edge_runtime.Recognizer``) on video frames and on the LFW test split.

    python benchmarks/edge_pipeline.py --models dist/fast/int8 dist/fast/float32 --run runs/fast \\
        --data ../shared/data/lfw --masks ../shared/data/maskthefaces --frames 60 --threads 1 2 \\
        --detector photo camera

Measures, and writes as ``<--name>.json`` and ``.md`` (default ``edge-pipeline``) to ``--out``:

a. **Video.** A 640×480 MJPG ``.avi`` (in a temporary folder) of LFW test-split images of the run (one image per
   person before any second one), each pasted at its native size in the middle of a grey canvas, decoded back
   with ``cv2.VideoCapture``. A gallery of ``--gallery-people`` people (those of the first frames) with
   ``--gallery-faces`` train-split photos each is enrolled through ``Recognizer.enrol``. For each models folder ×
   interpreter threads, after ``--warmup`` frames: median ms per frame of each stage, called as
   ``Recognizer.recognize`` calls them (``detect``, ``aligned``, ``describe`` = features model, ``embed`` = head
   model, gallery ``embeddings`` + ``best_matches`` = match; every face of a frame), and of ``recognize(frame)``
   itself (end to end, detection on every frame: the worst case), as FPS, once per ``--detector`` setting
   (``DETECTORS``: ``photo`` = what ``identify`` uses, faces down to 20 px, the package's exact pyramid;
   ``camera`` = what ``camera`` uses, faces from 60 px, the smaller levels derived from the first). Decoding is
   timed apart (a camera hands over decoded frames).
   **face_recognition** (the peer) on the same frames, in the same run: its default pipeline, rebuilt from its
   parts so that only dlib and ``face_recognition_models`` are needed (the ``teacher`` extra):
   ``face_locations`` (dlib's HOG detector, upsampled once), ``face_encodings`` (the 5-point landmark model, the
   ResNet descriptor, 1 jitter), the nearest enrolled encoding within its 0.6 tolerance; dlib's own threads.
b. **Python baseline** on the same frames: ``mtcnn.MTCNN().detect_faces`` + ``keras_landmask.core.align`` crop +
   the Keras robust embedder (``load_robust_models(run).embedder``, called directly and via ``predict``) + cosine
   nearest neighbour in numpy, the gallery made the same way. TensorFlow runs with its default threads.
c. **Accuracy.** The whole train split enrolled through the runtime (detector on each source JPEG → align →
   features → gallery); each test image identified clean (runtime path from the JPEG), with a face mask and
   with sunglasses (detect and align on the JPEG, then the training side's occluder drawn on the aligned crop
   with the crop's landmarks, face ``i`` seeded ``[occlusion.seed, i]`` as ``occlude_each``), then features → the
   head under the pattern of the features model's own flags → gallery. Rank-1/5: the nearest person, closed
   set, no threshold (as the Keras evaluation); accepted: the nearest person is right and scores at least the
   manifest threshold; impostor ≥ threshold: the best other person passes it (a false accept were the person
   not enrolled). Images where the runtime finds no face count as misses. Compared with the Keras evaluation
   (``<run>/eval/table1.json``, segmenter FDM) and the manifest's parity rows (exported models on the
   prepared crops).
d. Gallery query cost at 10 000 faces is ``benchmarks/gallery_query.py``'s (quoted from its results, not rerun).
e. **Camera loop.** ``edge_runtime.camera.run_camera`` (headless, JSON lines discarded) on a second video: the
   same people, each photo held for ``--hold`` frames while it drifts 3 px right and 2 px down a frame (a person
   moving in front of a camera), with the ``camera`` detector. Each setting of
   ``--detect-every`` / ``--scan-every`` (``CAMERA_SETTINGS``: recognition on every frame with the whole frame
   searched each time, then with tracked faces as proposals, then the camera's defaults): ms per frame
   (wall time of the loop, decoding included, over the frames) and the frames where the person is named.

Timings are wall clock on whatever else the machine runs. No LFW image is written outside a temporary folder.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from edge_runtime.detector import central_face  # noqa: E402
from edge_runtime.gallery import best_matches  # noqa: E402
from edge_runtime.camera import SCAN_EVERY, run_camera  # noqa: E402
from edge_runtime.recognizer import MIN_FACE_CAMERA, MIN_FACE_PHOTO, Recognizer  # noqa: E402

# The detector as the CLI sets it up for photos (identify, verify, enrol) and for video (camera).
DETECTORS = {"photo": {"min_face_size": MIN_FACE_PHOTO, "derive_levels": False},
             "camera": {"min_face_size": MIN_FACE_CAMERA, "derive_levels": True}}
from keras_landmask.core.align import CROPPERS, Detection  # noqa: E402
from keras_landmask.core.images import read_image  # noqa: E402
from keras_landmask.core.layouts import DEFAULT_LAYOUT, LANDMARK_NAMES  # noqa: E402
from keras_landmask.data.detect import choose_central_face  # noqa: E402
from keras_landmask.data.faceset import FaceSet  # noqa: E402
from keras_landmask.runs import RunFolder  # noqa: E402

FRAME_SIZE = (640, 480)  # width, height
CANVAS_GREY = 128
STAGES = ("detect", "align", "features", "head", "match")
OCCLUSIONS = ("clean", "face_mask", "sunglasses")
FACE_RECOGNITION_TOLERANCE = 0.6  # face_recognition.compare_faces' default distance
DRIFT = np.array([3, 2])  # pixels per frame a photo moves in the camera-loop video (x, y)
CAMERA_SETTINGS = ((1, 1), (1, SCAN_EVERY), (3, SCAN_EVERY))  # (detect_every, scan_every)


# -- data ----------------------------------------------------------------------------------------------------
def lfw_file(stored: str, data: Path) -> Path:
    """A prepared face's source file under ``data`` (the stored path's last two parts: person/file)."""
    stored = Path(stored)
    return data / stored.parent.name / stored.name


def run_seed(run: Path) -> int:
    """The occlusion seed the run's evaluation used (``occlusion.seed`` of its ``config.yaml``)."""
    return RunFolder(run).config().occlusion.seed


def one_per_person_first(indices: np.ndarray, labels: np.ndarray) -> list[int]:
    """``indices`` reordered: the first of every person (in label order), then every second, ..."""
    by_person: dict[int, list[int]] = {}
    for i in indices:
        by_person.setdefault(int(labels[i]), []).append(int(i))
    people = [by_person[p] for p in sorted(by_person)]
    rounds = max(len(p) for p in people)
    return [p[r] for r in range(rounds) for p in people if r < len(p)]


def write_video(paths: list[Path], path: Path) -> None:
    """Each image centred on a grey 640×480 canvas at its own size, one per frame, MJPG at 25 fps."""
    width, height = FRAME_SIZE
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (width, height))
    if not writer.isOpened():
        raise RuntimeError("OpenCV cannot write MJPG video here")
    for source in paths:
        image = cv2.imread(str(source), cv2.IMREAD_COLOR)
        h, w = min(image.shape[0], height), min(image.shape[1], width)
        canvas = np.full((height, width, 3), CANVAS_GREY, np.uint8)
        y, x = (height - h) // 2, (width - w) // 2
        canvas[y:y + h, x:x + w] = image[:h, :w]
        writer.write(canvas)
    writer.release()


def write_moving_video(paths: list[Path], path: Path, hold: int) -> list[int]:
    """Each image held for ``hold`` frames on a grey 640×480 canvas, drifting ``DRIFT`` pixels a frame from
    the top-left quarter, MJPG at 25 fps; the index of the image in each frame."""
    width, height = FRAME_SIZE
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (width, height))
    if not writer.isOpened():
        raise RuntimeError("OpenCV cannot write MJPG video here")
    shown = []
    for index, source in enumerate(paths):
        image = cv2.imread(str(source), cv2.IMREAD_COLOR)
        h, w = min(image.shape[0], height // 2), min(image.shape[1], width // 2)
        for step in range(hold):
            canvas = np.full((height, width, 3), CANVAS_GREY, np.uint8)
            x, y = np.array([width // 8, height // 8]) + DRIFT * step
            canvas[y:y + h, x:x + w] = image[:h, :w]
            writer.write(canvas)
            shown.append(index)
    writer.release()
    return shown


def read_video(path: Path) -> tuple[list[np.ndarray], list[float]]:
    """RGB frames of a video and the ms each took to decode and convert."""
    capture = cv2.VideoCapture(str(path))
    frames, times = [], []
    while True:
        start = time.perf_counter()
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        times.append((time.perf_counter() - start) * 1e3)
    capture.release()
    return frames, times


def median(values) -> float | None:
    values = list(values)
    return round(float(statistics.median(values)), 3) if values else None


# -- a. edge pipeline on video -------------------------------------------------------------------------------
def edge_frame(recognizer: Recognizer, frame: np.ndarray) -> tuple[dict, list[str]]:
    """One frame through the stages in ``Recognizer.recognize``'s order: ms per stage (summed over faces)
    and the name found for each face (threshold applied)."""
    times = dict.fromkeys(STAGES, 0.0)
    start = time.perf_counter()
    faces = recognizer.detect(frame)
    times["detect"] = time.perf_counter() - start
    names = []
    if faces:
        start = time.perf_counter()
        crops = recognizer.aligned(frame, faces)
        times["align"] = time.perf_counter() - start
        start = time.perf_counter()
        maps, flags = recognizer.describe(crops)
        times["features"] = time.perf_counter() - start
        for feature_map, row in zip(maps, flags):
            pattern = tuple(int(v > 0.5) for v in row)
            start = time.perf_counter()
            query = recognizer.embed(feature_map[None], pattern)
            middle = time.perf_counter()
            embeddings, gallery_names = recognizer.gallery.embeddings(pattern, recognizer.embed, normalised=True)
            name, score = best_matches(query, embeddings, gallery_names, normalised=True)[0]
            times["head"] += middle - start
            times["match"] += time.perf_counter() - middle
            names.append(name if score >= recognizer.threshold_for(pattern) else "unknown")
    return {k: v * 1e3 for k, v in times.items()}, names


def enrolled_recognizer(models: Path, threads: int, enrolment: dict, gallery: Path,
                        detector: str = "photo") -> Recognizer:
    """A recognizer over ``models`` with ``enrolment`` (name → photo paths) enrolled in a new ``gallery``,
    detecting faces as the CLI does for ``detector`` (``DETECTORS``)."""
    recognizer = Recognizer(models, gallery=gallery, threads=threads, create_gallery=True, **DETECTORS[detector])
    for name, paths in enrolment.items():
        recognizer.enrol(name, [read_image(p) for p in paths], [str(p) for p in paths])
    return recognizer


def time_edge(models: Path, threads: int, frames: list[np.ndarray], truth: list[str], enrolment: dict,
              warmup: int, folder: Path, detector: str = "photo") -> dict:
    gallery = folder / f"video-{models.name}-{threads}-{detector}.db"
    recognizer = enrolled_recognizer(models, threads, enrolment, gallery, detector)
    try:
        for frame in frames[:warmup]:  # tensor allocation, first pattern's gallery embeddings
            edge_frame(recognizer, frame)
            recognizer.recognize(frame)
        stage_rows, e2e, faces, correct = [], [], [], 0
        for frame, person in zip(frames, truth):
            times, names = edge_frame(recognizer, frame)
            stage_rows.append(times)
            start = time.perf_counter()
            found = recognizer.recognize(frame)
            e2e.append((time.perf_counter() - start) * 1e3)
            faces.append(len(found))
            correct += person in [f.name for f in found]
        with_face = [row for row, n in zip(stage_rows, faces) if n]
        stages = {s: median(row[s] for row in (stage_rows if s == "detect" else with_face)) for s in STAGES}
        e2e_ms = median(e2e)
        return {"models": str(models), "quantization": recognizer.manifest["quantization"], "threads": threads,
                "detector": detector, **DETECTORS[detector], "stages_ms": stages, "stage_sum_ms": round(sum(v or 0.0 for v in stages.values()), 3),
                "e2e_ms": e2e_ms, "e2e_mean_ms": round(float(np.mean(e2e)), 3),
                "fps": round(1000.0 / e2e_ms, 2), "frames": len(frames),
                "frames_with_face": int(sum(n > 0 for n in faces)),
                "faces_per_frame": round(float(np.mean(faces)), 3),
                "gallery_faces": len(recognizer.gallery),
                "enrolled_person_named": int(correct),
                "enrolled_person_frames": int(sum(p in enrolment for p in truth))}
    finally:
        recognizer.close()


def timed_frames(frame_pass, frames: list[np.ndarray], truth: list[str], warmup: int) -> tuple[list, list, int]:
    """``frame_pass(frame) -> (ms per stage, names found)`` over the frames after ``warmup`` of them: the rows
    of stage times, the faces found per frame and the frames whose person is among the names."""
    for frame in frames[:warmup]:
        frame_pass(frame)
    rows, faces, correct = [], [], 0
    for frame, person in zip(frames, truth):
        times, named = frame_pass(frame)
        rows.append(times)
        faces.append(len(named))
        correct += person in named
    return rows, faces, correct


def time_face_recognition(frames: list[np.ndarray], truth: list[str], enrolment: dict, warmup: int) -> dict:
    """face_recognition's default pipeline (see the module docstring) on the same frames: median ms per frame of
    detection, encoding (landmarks + descriptor, every face) and matching, end to end, and frames named right."""
    import dlib

    from keras_landmask.teacher import model_paths

    paths = model_paths()
    detector = dlib.get_frontal_face_detector()
    landmarks = dlib.shape_predictor(str(paths["shape_predictor"]))
    encoder = dlib.face_recognition_model_v1(str(paths["descriptor"]))

    def encodings(image, rectangles):
        return [np.array(encoder.compute_face_descriptor(image, landmarks(image, r), 1)) for r in rectangles]

    known, names = [], []
    for name, photos in enrolment.items():
        for photo in photos:
            image = read_image(photo)
            found = encodings(image, detector(image, 1)[:1])
            known += found
            names += [name] * len(found)
    known = np.stack(known)

    def frame_pass(frame):
        times = dict.fromkeys(("detect", "encode", "match"), 0.0)
        start = time.perf_counter()
        rectangles = detector(frame, 1)
        times["detect"] = time.perf_counter() - start
        found = encodings(frame, rectangles)
        times["encode"] = time.perf_counter() - start - times["detect"]
        start = time.perf_counter()
        named = []
        for encoding in found:
            distances = np.linalg.norm(known - encoding, axis=1)
            best = int(distances.argmin())
            named.append(names[best] if distances[best] <= FACE_RECOGNITION_TOLERANCE else "unknown")
        times["match"] = time.perf_counter() - start
        return {k: v * 1e3 for k, v in times.items()}, named

    rows, faces, correct = timed_frames(frame_pass, frames, truth, warmup)
    e2e = [sum(r.values()) for r in rows]
    with_face = [r for r, n in zip(rows, faces) if n]
    return {"pipeline": "dlib HOG (upsample 1) + 5-point landmarks + ResNet descriptor (1 jitter) + nearest "
                        f"within {FACE_RECOGNITION_TOLERANCE}", "dlib": dlib.__version__,
            "stages_ms": {s: median(r[s] for r in (rows if s == "detect" else with_face)) for s in rows[0]},
            "e2e_ms": median(e2e), "fps": round(1000.0 / median(e2e), 2), "frames": len(frames),
            "frames_with_face": int(sum(n > 0 for n in faces)), "faces_per_frame": round(float(np.mean(faces)), 3),
            "gallery_faces": len(names), "enrolled_person_named": int(correct),
            "enrolled_person_frames": int(sum(p in enrolment for p in truth))}


def time_camera_loop(models: Path, threads: int, video: Path, truth: list[str], enrolment: dict,
                     folder: Path) -> list[dict]:
    """``run_camera`` over ``video`` for each of ``CAMERA_SETTINGS``: ms per frame and frames named right."""
    rows = []
    for detect_every, scan_every in CAMERA_SETTINGS:
        gallery = folder / f"camera-{models.name}-{threads}-{detect_every}-{scan_every}.db"
        recognizer = enrolled_recognizer(models, threads, enrolment, gallery, "camera")
        try:
            out = _Lines()
            run_camera(recognizer, str(video), headless=True, detect_every=1, max_frames=5, out=_Lines())  # warm
            start = time.perf_counter()
            run_camera(recognizer, str(video), headless=True, detect_every=detect_every, scan_every=scan_every,
                       out=out)
            elapsed = time.perf_counter() - start
        finally:
            recognizer.close()
        records = [json.loads(line) for line in out.lines]
        named = sum(person in [f["name"] for f in r["faces"]] for r, person in zip(records, truth))
        rows.append({"models": str(models), "threads": threads, **DETECTORS["camera"],
                     "detect_every": detect_every, "scan_every": scan_every, "frames": len(records),
                     "ms_per_frame": round(elapsed * 1e3 / len(records), 3),
                     "fps": round(len(records) / elapsed, 2), "named": int(named),
                     "named_fraction": round(named / len(records), 4)})
    return rows


class _Lines:
    """A text sink keeping the lines written to it (``run_camera``'s ``out``)."""

    def __init__(self):
        self.lines: list[str] = []

    def write(self, text: str) -> None:
        self.lines += [line for line in text.splitlines() if line]

    def flush(self) -> None:
        pass


# -- b. Python baseline ----------------------------------------------------------------------------------------
def time_baseline(run: Path, frames: list[np.ndarray], truth: list[str], enrolment: dict, warmup: int,
                  alignment: str, crop_size: tuple[int, int]) -> dict:
    """mtcnn package + align crop + Keras robust embedder + numpy cosine NN, per frame (every face)."""
    import tensorflow as tf
    from mtcnn import MTCNN

    from keras_landmask.data.build import read_rgb
    from keras_landmask.models.robust_embedder import load_robust_models

    detector = MTCNN(device="CPU:0")
    embedder = load_robust_models(run).embedder
    crop = CROPPERS[alignment]
    height, width = crop_size

    def crops_of(image, faces):
        return np.stack([crop(image, Detection(np.asarray(f["box"], np.float32), np.array(
            [f["keypoints"][k] for k in LANDMARK_NAMES],
            np.float32), float(f["confidence"]), len(faces)), height, width)[0] for f in faces])

    def unit(x):
        return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)

    vectors, names = [], []
    for name, paths in enrolment.items():
        for path in paths:
            image = read_rgb(path)
            found = choose_central_face(detector.detect_faces(image), image.shape)
            if found is None:
                continue
            vectors.append(np.asarray(embedder(crop(image, found, height, width)[0][None], training=False))[0])
            names.append(name)
    gallery, names = unit(np.stack(vectors)), np.array(names, dtype=object)

    def frame_pass(frame):
        times = dict.fromkeys(("detect", "align", "embed_call", "embed_predict", "match"), 0.0)
        start = time.perf_counter()
        faces = detector.detect_faces(frame)
        times["detect"] = time.perf_counter() - start
        found = []
        if faces:
            start = time.perf_counter()
            crops = crops_of(frame, faces)
            times["align"] = time.perf_counter() - start
            start = time.perf_counter()
            embeddings = np.asarray(embedder(crops, training=False))
            times["embed_call"] = time.perf_counter() - start
            start = time.perf_counter()
            embedder.predict(crops, verbose=0)
            times["embed_predict"] = time.perf_counter() - start
            start = time.perf_counter()
            similarity = gallery @ unit(embeddings).T
            best = similarity.argmax(axis=0)
            found = [names[g] for g in best]
            times["match"] = time.perf_counter() - start
        return {k: v * 1e3 for k, v in times.items()}, found

    rows, faces, correct = timed_frames(frame_pass, frames, truth, warmup)
    with_face = [r for r, n in zip(rows, faces) if n]
    e2e_call = [r["detect"] + r["align"] + r["embed_call"] + r["match"] for r in rows]
    e2e_predict = [r["detect"] + r["align"] + r["embed_predict"] + r["match"] for r in rows]
    return {"stages_ms": {s: median(r[s] for r in (rows if s == "detect" else with_face)) for s in rows[0]},
            "e2e_ms": median(e2e_call), "fps": round(1000.0 / median(e2e_call), 2),
            "e2e_predict_ms": median(e2e_predict), "fps_predict": round(1000.0 / median(e2e_predict), 2),
            "frames": len(frames), "frames_with_face": int(sum(n > 0 for n in faces)),
            "faces_per_frame": round(float(np.mean(faces)), 3), "gallery_faces": int(len(names)),
            "nearest_is_person": int(correct),
            "tensorflow": tf.__version__,
            "tf_threads": {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                           "inter_op": tf.config.threading.get_inter_op_parallelism_threads()}}


# -- c. accuracy ---------------------------------------------------------------------------------------------
def measure_accuracy(models: Path, faces: FaceSet, data: Path, templates: dict, seed: int, threads: int,
                     folder: Path, people_limit: int = 0) -> dict:
    from tqdm import tqdm

    from keras_landmask.data.facemask import face_mask
    from keras_landmask.data.sunglasses import sunglasses

    occluders = {"face_mask": lambda crop, marks, rng: face_mask(crop, marks, templates, rng),
                 "sunglasses": lambda crop, marks, rng: sunglasses(crop, marks, rng)}
    train, test = faces.subset("train"), faces.subset("test")
    if people_limit:  # a quick check on the first people only (a smaller, easier gallery)
        train, test = (FaceSet(**{**vars(s), **{k: v[s.labels < people_limit] for k, v in vars(s).items()
                                               if k != "people"}}) for s in (train, test))
    recognizer = Recognizer(models, gallery=folder / f"accuracy-{models.name}.db", threads=threads,
                            create_gallery=True)
    height, width = recognizer.crop_size
    people = [str(p) for p in faces.people]
    person_index = {name: i for i, name in enumerate(people)}
    start = time.perf_counter()
    skipped_train = 0
    try:
        with tqdm(total=len(train) + len(test), desc=f"accuracy {models}", unit="img") as bar:
            for label in np.unique(train.labels):
                paths = [lfw_file(p, data) for p in train.paths[train.labels == label]]
                enrolled = recognizer.enrol(people[label], [read_image(p) for p in paths], [str(p) for p in paths])
                skipped_train += len(enrolled.skipped)
                bar.update(len(paths))
            enrol_s = time.perf_counter() - start
            scores = {o: [] for o in OCCLUSIONS}  # per probe: per-person best scores, or None (no face)
            flagged = {o: [] for o in OCCLUSIONS}
            no_face = 0
            for i, (stored, label) in enumerate(zip(test.paths, test.labels)):
                image = read_image(lfw_file(stored, data))
                found = recognizer.detect(image)
                face = central_face(found, image.shape)
                bar.update(1)
                if face is None:
                    no_face += 1
                    for o in OCCLUSIONS:
                        scores[o].append(None)
                    continue
                crop, marks = recognizer.align(image, Detection(face.box, face.landmarks, face.confidence, len(found)),
                                               height, width)
                crops = [crop] + [occlude(crop, marks, np.random.default_rng([seed, i]))[0]
                                  for occlude in occluders.values()]
                maps, flags = recognizer.describe(np.stack(crops))
                for occlusion, feature_map, row in zip(OCCLUSIONS, maps, flags):
                    pattern = tuple(int(v > 0.5) for v in row)
                    query = recognizer.embed(feature_map[None], pattern)[0]
                    embeddings, names = recognizer.gallery.embeddings(pattern, recognizer.embed, normalised=True)
                    similarity = embeddings @ (query / max(np.linalg.norm(query), 1e-12))
                    best = np.full(len(people), -np.inf)
                    np.maximum.at(best, np.array([person_index[n] for n in names]), similarity)
                    scores[occlusion].append((best, recognizer.threshold_for(pattern)))
                    flagged[occlusion].append(sum(pattern))
        threshold = recognizer.threshold
        rows = {o: summarise(scores[o], test.labels, flagged[o]) for o in OCCLUSIONS}
        return {"models": str(models), "quantization": recognizer.manifest["quantization"],
                "threshold": threshold, "pattern_thresholds": len(recognizer.pattern_thresholds),
                "gallery_faces": len(recognizer.gallery),
                "train_images": int(len(train)), "train_no_face": int(skipped_train),
                "test_images": int(len(test)), "test_no_face": int(no_face), "rows": rows,
                "people": int(len(np.unique(train.labels))),
                "enrol_seconds": round(enrol_s, 1), "seconds": round(time.perf_counter() - start, 1)}
    finally:
        recognizer.close()


def summarise(bests: list, labels: np.ndarray, flagged: list[int]) -> dict:
    """Rank-1/5, accepted (right and ≥ threshold), impostor ≥ threshold; ``bests`` holds per probe (per-person
    best scores, the threshold the runtime uses for its occlusion pattern), or None: no face, a miss."""
    rank1 = rank5 = accepted = accepted_wrong = impostor = 0
    for entry, label in zip(bests, labels):
        if entry is None:
            continue
        best, threshold = entry
        genuine = best[label]
        rank = int((best > genuine).sum())
        others = np.delete(best, label)
        other = float(others.max()) if len(others) else -np.inf
        rank1 += rank == 0
        rank5 += rank < 5
        accepted += rank == 0 and genuine >= threshold
        accepted_wrong += rank > 0 and other >= threshold
        impostor += other >= threshold
    n = len(labels)
    return {"rank1": rank1 / n, "rank5": rank5 / n, "accepted": accepted / n, "accepted_wrong": accepted_wrong / n,
            "impostor_accepted": impostor / n, "n_probes": n,
            "regions_flagged": round(float(np.mean(flagged)), 3) if flagged else None}


# -- report ------------------------------------------------------------------------------------------------------
def gallery_query_reference(out: Path) -> dict:
    """The per-query numbers of ``benchmarks/gallery_query.py`` (10 000 faces), where its results exist."""
    found = {}
    for name in ("gallery-query", "gallery-query-1thread"):
        path = out / f"{name}.json"
        if path.is_file():
            result = json.loads(path.read_text())["results"]
            found[name] = {k: result[k] for k in ("faces", "query_ms_memory_plus_match",
                                                  "query_ms_sqlite_load_plus_match", "cache_fill_ms")}
    return found


def keras_reference(run: Path, models: list[Path]) -> dict:
    """Keras Table 1 (segmenter FDM) rows and the manifests' parity rows (exported models, prepared crops)."""
    reference = {}
    table = RunFolder(run).folder("evaluate") / "table1.json"
    if table.is_file():
        rows = json.loads(table.read_text())
        reference["keras_table1"] = {o: {s: rows[o][s] for s in ("none", DEFAULT_LAYOUT)}
                                     for o in OCCLUSIONS if o in rows}
    for folder in models:
        parity = json.loads((folder / "manifest.json").read_text())["parity"]
        maskings = ("none", parity["layout"])
        reference[f"tflite_prepared_crops:{folder}"] = {
            o: {**{s: parity["tflite"][o][s] for s in maskings}, "flagged": parity["tflite"][o].get("flagged")}
            for o in OCCLUSIONS if o in parity["tflite"]}
    return reference


def pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def ms(value) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def detector_label(row: dict) -> str:
    """How a row's detector was set up: smallest face and pyramid."""
    pyramid = "levels from the first" if row.get("derive_levels") else "exact pyramid"
    return f"faces ≥ {row.get('min_face_size', MIN_FACE_PHOTO):g} px, {pyramid}"


def write_report(result: dict, out: Path, name: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    machine = result["machine"]
    lines = [f"# Edge pipeline: video latency, Python baseline, accuracy on LFW ({result['run']})", "",
             f"{machine['platform']}, {machine['cpus']} CPUs, Python {machine['python']}; load average "
             f"{machine['load_average_start'][0]:.1f} at the start, {machine['load_average_end'][0]:.1f} at the "
             "end. **Timings are wall clock on a shared machine (the load average says how busy it was), so they "
             "are noisy (easily ±30 % when other jobs run); compare rows of one run, not across runs. With the cores "
             "shared, 2 interpreter threads are not reliably faster than 1.**",
             ""]
    video = result.get("video")
    if video:
        lines += ["## a. Video, one face per frame, detection on every frame", "",
                  f"{video['frames']} frames of {video['source']}, {video['frame_size'][0]}×{video['frame_size'][1]} "
                  f"MJPG (decode + RGB: median {ms(video['decode_ms'])} ms/frame, not included below); gallery "
                  f"{video['gallery_people']} people × {video['gallery_faces_per_person']} train photos; "
                  f"{video['warmup']} warm-up frames first. Median ms per frame; stage times of frames with a face "
                  "(detect: all frames); end to end = `Recognizer.recognize(frame)`.", "",
                  "| models | threads | detector | detect | align | features | head | match | stage sum | "
                  "end to end | FPS | faces/frame | person named |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for row in video["edge"]:
            s = row["stages_ms"]
            lines.append(f"| {row['quantization']} | {row['threads']} | {detector_label(row)} | "
                         + " | ".join(ms(s[k]) for k in STAGES)
                         + f" | {ms(row['stage_sum_ms'])} | **{ms(row['e2e_ms'])}** | **{row['fps']:.1f}** | "
                         f"{row['faces_per_frame']:.2f} | {row['enrolled_person_named']}/"
                         f"{row['enrolled_person_frames']} |")
        peer = video.get("face_recognition")
        if peer:
            s = peer["stages_ms"]
            lines += ["", f"**face_recognition** on the same frames ({peer['pipeline']}; dlib {peer['dlib']}), median "
                      "ms per frame:", "",
                      "| detect | encode | match | end to end | FPS | faces/frame | person named |",
                      "|---|---|---|---|---|---|---|",
                      f"| {ms(s['detect'])} | {ms(s['encode'])} | {ms(s['match'])} | **{ms(peer['e2e_ms'])}** | "
                      f"{peer['fps']:.1f} | {peer['faces_per_frame']:.2f} | {peer['enrolled_person_named']}/"
                      f"{peer['enrolled_person_frames']} |", "",
                      "Speed-up of the edge pipeline over face_recognition (its end to end over ours, same frames, "
                      "same run):", "", "| models | threads | detector | edge ms | speed-up |",
                      "|---|---|---|---|---|"]
            for row in video["edge"]:
                lines.append(f"| {row['quantization']} | {row['threads']} | {detector_label(row)} | "
                             f"{ms(row['e2e_ms'])} | **{row['speedup_over_face_recognition']:.1f}×** |")
        base = video.get("baseline")
        if base:
            s = base["stages_ms"]
            lines += ["", "## b. Python baseline on the same frames", "",
                      "`mtcnn.MTCNN().detect_faces` + `keras_landmask.core.align` crop + Keras robust embedder "
                      f"(TensorFlow {base['tensorflow']}, default threads) + numpy cosine nearest neighbour, every "
                      "face of the frame. Median ms per frame.", "",
                      "| detect | align | embed `__call__` | embed `predict` | match | end to end (`__call__`) | FPS |"
                      " end to end (`predict`) | FPS |", "|---|---|---|---|---|---|---|---|---|",
                      f"| {ms(s['detect'])} | {ms(s['align'])} | {ms(s['embed_call'])} | {ms(s['embed_predict'])} | "
                      f"{ms(s['match'])} | {ms(base['e2e_ms'])} | {base['fps']:.1f} | {ms(base['e2e_predict_ms'])} | "
                      f"{base['fps_predict']:.1f} |", "",
                      "Edge end to end against the baseline (ratio < 1: the edge pipeline is faster):", "",
                      "| models | threads | edge ms | edge / baseline `__call__` | edge / baseline `predict` | "
                      "speed-up |",
                      "|---|---|---|---|---|---|"]
            for row in video["edge"]:
                lines.append(f"| {row['quantization']} | {row['threads']} | {ms(row['e2e_ms'])} | "
                             f"{row['e2e_ms'] / base['e2e_ms']:.2f} | {row['e2e_ms'] / base['e2e_predict_ms']:.2f} | "
                             f"{base['e2e_ms'] / row['e2e_ms']:.1f}× |")
        lines.append("")
    accuracy = result.get("accuracy")
    if accuracy:
        reference = result.get("reference", {})
        keras = reference.get("keras_table1", {})
        lines += ["## c. Accuracy of the whole edge pipeline on the LFW test split", "",
                  "Gallery: every train-split image enrolled through the runtime (detector on the JPEG → align → "
                  "features). Probes: the test split, detected and aligned by the runtime on the JPEG; occlusions "
                  "drawn on the aligned crop by the training side's occluders (same seeds as the evaluation); "
                  "the head under the FDM of the features model's own flags. Rank-1 closed set (no threshold); "
                  "**images where the runtime finds no face count as misses**. Keras = `eval/table1.json` "
                  "(segmenter FDM, prepared crops from the mtcnn package); TFLite prepared = the manifest's parity "
                  "rows (exported models on the same prepared crops).", ""]
        for acc in accuracy:
            prepared = reference.get(f"tflite_prepared_crops:{acc['models']}", {})
            lines += [f"### {acc['quantization']} (`{acc['models']}`), clean threshold {acc['threshold']:.4f}, "
                      f"{acc.get('pattern_thresholds', 0)} occlusion patterns with their own", "",
                      f"Gallery {acc['gallery_faces']} faces of {acc['people']} people ({acc['train_no_face']} of "
                      f"{acc['train_images']} train images without a face); {acc['test_no_face']} of "
                      f"{acc['test_images']} test images without "
                      f"a face (misses); {acc['seconds']:.0f} s.", "",
                      "| probes | edge rank-1 | edge rank-5 | Keras rank-1 LM2 (none) | TFLite prepared LM2 | "
                      "accepted at threshold | wrong person accepted | impostor ≥ threshold | "
                      "regions flagged (prepared) |",
                      "|---|---|---|---|---|---|---|---|---|"]
            for occlusion, row in acc["rows"].items():
                k = keras.get(occlusion, {})
                lines.append(
                    f"| {occlusion} | **{pct(row['rank1'])}** | {pct(row['rank5'])} | "
                    f"{pct(k.get('LM2', {}).get('rank1'))} ({pct(k.get('none', {}).get('rank1'))}) | "
                    f"{pct(prepared.get(occlusion, {}).get('LM2', {}).get('rank1'))} | {pct(row['accepted'])} | "
                    f"{pct(row['accepted_wrong'])} | {pct(row['impostor_accepted'])} | {row['regions_flagged']} "
                    f"({prepared.get(occlusion, {}).get('flagged', 'n/a')}) |")
            lines.append("")
        lines += ["Accepted at threshold: the nearest person is right and scores at least the manifest threshold "
                  "(calibrated on clean validation faces at 1 % false accepts). Wrong person accepted: the nearest "
                  "person is wrong and passes it (the runtime names the wrong person). Impostor ≥ threshold: the "
                  "best other person passes it (a false accept had the person not been enrolled). Compare the "
                  "occluded rows with clean: a threshold calibrated on clean faces does not carry over to probes "
                  "under an FDM; exports that calibrate one per occlusion pattern (manifest `threshold.per_pattern`, "
                  "used by the runtime) hold false accepts near 1 % there too.", ""]
    loop = result.get("camera")
    if loop:
        lines += ["## e. Camera loop", "",
                  f"`run_camera` (headless) on {loop['frames']} frames: each photo held {loop['hold']} frames, drifting "
                  f"{loop['drift_px'][0]} px right and {loop['drift_px'][1]} px down a frame; detector "
                  f"{detector_label(loop['rows'][0])}. ms per frame = the loop's wall time (decoding, tracking "
                  "and JSON included) over its frames.", "",
                  "| models | threads | detect every | scan every | ms per frame | FPS | frames with the person named |",
                  "|---|---|---|---|---|---|---|"]
        for row in loop["rows"]:
            lines.append(f"| `{row['models']}` | {row['threads']} | {row['detect_every']} | {row['scan_every']} | "
                         f"**{ms(row['ms_per_frame'])}** | {row['fps']:.1f} | {row['named_fraction']:.1%} |")
        lines.append("")
    queries = result.get("gallery_query")
    if queries:
        lines += ["## d. Gallery query at 10 000 faces", "",
                  "From `benchmarks/gallery_query.py` (not rerun here; random maps, numpy head stand-in):", ""]
        for stem, q in queries.items():
            lines.append(f"- `{stem}.md`: {q['faces']} faces, per query {q['query_ms_memory_plus_match']:.2f} ms "
                         f"from memory, {q['query_ms_sqlite_load_plus_match']:.1f} ms reading SQLite; first query of "
                         f"a new pattern (cache fill) {q['cache_fill_ms'] / 1000:.1f} s.")
        lines.append("")
    (out / f"{name}.md").write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", type=Path, default=[Path("dist/fast/int8")],
                        help="export folders (manifest.json + .tflite)")
    parser.add_argument("--run", type=Path, default=Path("runs/fast"), help="run folder the models came from")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/lfw"), help="LFW folder")
    parser.add_argument("--masks", type=Path, default=Path("../shared/data/maskthefaces"),
                        help="MaskTheFace templates folder")
    parser.add_argument("--frames", type=int, default=100, help="video frames (default: 100)")
    parser.add_argument("--warmup", type=int, default=10, help="warm-up frames before timing (default: 10)")
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2], help="interpreter threads to time")
    parser.add_argument("--gallery-people", type=int, default=20, help="people in the video gallery")
    parser.add_argument("--gallery-faces", type=int, default=5, help="train photos per video gallery person")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="folder for JSON + Markdown")
    parser.add_argument("--name", default="edge-pipeline", help="file stem of the results")
    parser.add_argument("--skip-baseline", action="store_true", help="no Python/TensorFlow baseline")
    parser.add_argument("--skip-accuracy", action="store_true", help="no LFW accuracy pass")
    parser.add_argument("--skip-video", action="store_true", help="no video timing")
    parser.add_argument("--detector", nargs="+", choices=list(DETECTORS), default=list(DETECTORS),
                        help="detector set-ups, one video row each: photo (identify's) and camera (default: both)")
    parser.add_argument("--hold", type=int, default=10, help="frames each photo stays in the camera-loop video")
    parser.add_argument("--skip-face-recognition", action="store_true", help="no face_recognition (dlib) peer")
    parser.add_argument("--skip-camera", action="store_true", help="no camera-loop timing")
    parser.add_argument("--accuracy-people", type=int, default=0,
                        help="accuracy on the first N people only, a quick check (default: all)")
    args = parser.parse_args(argv)

    faces = RunFolder(args.run).faces()
    manifest = json.loads((args.models[0] / "manifest.json").read_text())
    crop_size = (int(manifest["crop"]["height"]), int(manifest["crop"]["width"]))
    result: dict = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "run": str(args.run),
        "models": [str(m) for m in args.models],
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
                    "load_average_start": list(os.getloadavg())}}
    with tempfile.TemporaryDirectory(prefix="edge-pipeline-") as scratch:
        folder = Path(scratch)
        if not args.skip_video:
            test = one_per_person_first(np.flatnonzero(faces.splits == "test"), faces.labels)[:args.frames]
            sources = [lfw_file(faces.paths[i], args.data) for i in test]
            truth = [str(faces.people[faces.labels[i]]) for i in test]
            enrolment = {}
            for person in dict.fromkeys(truth):
                label = int(np.flatnonzero(faces.people == person)[0])
                train = np.flatnonzero((faces.splits == "train") & (faces.labels == label))[:args.gallery_faces]
                enrolment[person] = [lfw_file(faces.paths[i], args.data) for i in train]
                if len(enrolment) == args.gallery_people:
                    break
            video = folder / "frames.avi"
            write_video(sources, video)
            frames, decode = read_video(video)
            print(f"video: {len(frames)} frames, {video.stat().st_size / 1e6:.1f} MB, decode "
                  f"{median(decode):.1f} ms/frame")
            result["video"] = {"frames": len(frames), "frame_size": list(FRAME_SIZE),
                               "source": "LFW test-split images of the run, one per person first, centred at "
                                         "native size on a grey canvas",
                               "decode_ms": median(decode), "warmup": args.warmup,
                               "gallery_people": len(enrolment), "gallery_faces_per_person": args.gallery_faces,
                               "edge": []}
            for models in args.models:
                for threads in args.threads:
                    for detector in args.detector:
                        row = time_edge(models, threads, frames, truth, enrolment, args.warmup, folder, detector)
                        print(f"edge {row['quantization']} threads {threads} {detector} detector: "
                              f"{row['stages_ms']} end to end {row['e2e_ms']} ms, {row['fps']} FPS")
                        result["video"]["edge"].append(row)
            if not args.skip_face_recognition:
                peer = time_face_recognition(frames, truth, enrolment, args.warmup)
                print(f"face_recognition: {peer['stages_ms']} end to end {peer['e2e_ms']} ms, {peer['fps']} FPS")
                result["video"]["face_recognition"] = peer
                for row in result["video"]["edge"]:
                    row["speedup_over_face_recognition"] = round(peer["e2e_ms"] / row["e2e_ms"], 2)
            if not args.skip_camera:
                people = sources[:max(1, args.frames // args.hold)]
                moving = folder / "moving.avi"
                shown = write_moving_video(people, moving, args.hold)
                result["camera"] = {"frames": len(shown), "hold": args.hold, "drift_px": DRIFT.tolist(), "rows": []}
                for models in args.models:
                    rows = time_camera_loop(models, max(args.threads), moving, [truth[i] for i in shown],
                                            enrolment, folder)
                    for row in rows:
                        print(f"camera loop {models} detect every {row['detect_every']}, scan every "
                              f"{row['scan_every']}: {row['ms_per_frame']} ms/frame, named {row['named_fraction']:.1%}")
                    result["camera"]["rows"] += rows
        if not args.skip_accuracy:
            from keras_landmask.data.facemask import load_mask_templates

            templates = load_mask_templates(args.masks)
            seed = run_seed(args.run)
            result["accuracy"] = []
            for models in args.models:
                acc = measure_accuracy(models, faces, args.data, templates, seed, max(args.threads), folder,
                                       args.accuracy_people)
                print(f"accuracy {acc['quantization']}: " + ", ".join(
                    f"{o} rank-1 {r['rank1']:.1%}" for o, r in acc["rows"].items()) +
                    f"; {acc['test_no_face']} test images without a face")
                result["accuracy"].append(acc)
            result["reference"] = keras_reference(args.run, args.models)
        if not args.skip_video and not args.skip_baseline:
            base = time_baseline(args.run, frames, truth, enrolment, args.warmup, manifest["crop"]["alignment"],
                                 crop_size)
            print(f"baseline: {base['stages_ms']} end to end {base['e2e_ms']} ms, {base['fps']} FPS")
            result["video"]["baseline"] = base
            for row in result["video"]["edge"]:
                row["ratio_to_baseline"] = round(row["e2e_ms"] / base["e2e_ms"], 3)
                row["ratio_to_baseline_predict"] = round(row["e2e_ms"] / base["e2e_predict_ms"], 3)
    result["gallery_query"] = gallery_query_reference(args.out)
    result["machine"]["load_average_end"] = list(os.getloadavg())
    write_report(result, args.out, args.name)
    print(f"wrote {args.out / args.name}.json and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
