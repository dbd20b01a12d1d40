"""Live recognition from a camera, a video file, a stream or a GStreamer pipeline (``python -m edge_runtime camera``).

    from edge_runtime.camera import run_camera
    run_camera(recognizer, "0", headless=True, detect_every=3)

Every ``detect_every``-th frame is run through the full recognizer (detect → align → features → gallery); the
frames between only move each face's box and landmarks with sparse optical flow (pyramidal Lucas-Kanade on
the five landmarks, checked forwards and backwards), keeping its name, score and occluded regions. A face whose
points are lost is dropped until the next detection. Every ``scan_every``-th detection, and any while no face
is tracked, searches the whole frame (the detector's pyramid, the slow part); the others look only where the
tracked faces are (their boxes as R-net/O-net proposals), so a new face shows up within ``scan_every``
detections. Frames are processed as fast as they come: a video file
is not paced at its own frame rate.

Sources (``--source``): digits are a camera index (``0``, V4L2 on Linux); text holding ``!`` is a GStreamer
pipeline ending in ``appsink`` (needs OpenCV built with GStreamer); anything else is a video file, a device
path (``/dev/video0``) or a URL (``rtsp://``, ``http://``). The end of a file is a normal end; a live source
that stops delivering frames is reopened ``retries`` times, ``retry_delay`` seconds apart, before giving up.

Headless, each frame is one JSON line on ``out`` (``records.frame_record``: frame index, timestamp, faces). With
a window, or into an ``output`` video file (no window then), each frame is drawn by ``drawing.draw_faces`` (boxes
green when matched, red when not, name and score, occluded regions) with the FPS. Needs numpy and OpenCV only;
never TensorFlow.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from edge_runtime.drawing import draw_faces, put_text
from edge_runtime.records import frame_record

WINDOW = "edge_runtime camera"
QUIT_KEYS = (ord("q"), ord("Q"), 27)  # q or Esc
FPS_SMOOTHING = 0.9  # weight of the previous smoothed FPS per frame (exponential moving average)
MIN_TRACKED_POINTS = 3  # of a face's 5 landmarks, for the face to be kept between detections
FB_ERROR = 2.0  # pixels (at least; 3% of the box width for larger faces): forward-backward flow error allowed
LK_PARAMS = dict(winSize=(21, 21), maxLevel=3,
                 criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03))
LIVE_URL_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")
NO_DISPLAY = ("this OpenCV has no display support; use --headless or --output FILE (or pip install "
              "opencv-python)")
VIDEO_CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}  # FourCC by suffix
DEFAULT_FPS = 25.0  # of an --output video when the source does not say its frame rate
SCAN_EVERY = 5  # detections between two searches of the whole frame (the others look where faces are tracked)


class CameraError(ValueError):
    """A source that cannot be opened or was lost, or an option the user can fix; the message says how."""


@dataclasses.dataclass(frozen=True)
class Source:
    """What ``--source`` names: ``target`` for ``cv2.VideoCapture`` (int index or text), its ``api``
    preference, whether it is ``live`` (reopened when it stops) and a ``kind`` for messages."""

    target: int | str
    api: int
    live: bool
    kind: str  # "camera", "gstreamer", "stream" or "file"


def parse_source(source: str) -> Source:
    """The capture target of a ``--source`` string; ``CameraError`` for a video file that does not exist."""
    text = str(source).strip()
    if not text:
        raise CameraError("empty --source; pass a camera index (0), a video file, a URL or a GStreamer pipeline")
    if text.isdigit():
        return Source(int(text), cv2.CAP_ANY, True, "camera")
    if "!" in text:
        return Source(text, cv2.CAP_GSTREAMER, True, "gstreamer")
    if text.lower().startswith(LIVE_URL_SCHEMES):
        return Source(text, cv2.CAP_ANY, True, "stream")
    path = Path(text).expanduser()
    if str(path).startswith("/dev/"):
        if not path.exists():
            raise CameraError(f"camera device '{path}' not found; list cameras with: ls /dev/video*")
        return Source(str(path), cv2.CAP_ANY, True, "camera")
    if not path.exists():
        raise CameraError(f"video file '{path}' not found (a camera is a number, e.g. --source 0)")
    if not path.is_file():
        raise CameraError(f"'{path}' is not a video file")
    return Source(str(path), cv2.CAP_ANY, False, "file")


def open_capture(target: int | str, api: int = cv2.CAP_ANY):
    """A ``cv2.VideoCapture`` of ``target`` (tests replace this factory with a fake)."""
    capture = cv2.VideoCapture(target, api)
    if isinstance(target, int) and capture.isOpened():
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # newest frame, not a queue of old ones (V4L2; ignored elsewhere)
    return capture


def has_gstreamer() -> bool:
    """Whether this OpenCV was built with GStreamer."""
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GStreamer:"):
            return line.split(":", 1)[1].strip().upper().startswith("YES")
    return False


def _cannot_open(source: str, spec: Source) -> CameraError:
    if spec.kind == "file":
        return CameraError(f"cannot read '{source}' as a video (damaged, or a format this OpenCV cannot decode)")
    if spec.kind == "gstreamer":
        if not has_gstreamer():
            return CameraError("this OpenCV was built without GStreamer, so it cannot open a pipeline; use the "
                               "system OpenCV (e.g. a venv made with --system-site-packages) or --source 0")
        return CameraError(f"cannot open the GStreamer pipeline '{source}'; test it with gst-launch-1.0 "
                           "(it must end in appsink)")
    if spec.kind == "stream":
        return CameraError(f"cannot open the stream '{source}'; check the URL, the network and the credentials")
    return CameraError(f"cannot open camera {source}; check that it is connected (ls /dev/video*) and not in use "
                       "by another program")


def track(prev_gray: np.ndarray, gray: np.ndarray, faces: list) -> list:
    """``faces`` (each with ``box`` (x, y, w, h) and ``landmarks [5, 2]``) moved from ``prev_gray`` to ``gray``
    by pyramidal Lucas-Kanade flow on their landmarks; the box moves by the median landmark displacement.

    A landmark counts as tracked when found forwards and backwards with a small round-trip error; a face
    with fewer than ``MIN_TRACKED_POINTS`` tracked landmarks, or whose centre leaves the frame, is dropped.
    Landmarks not tracked move with the median, and so do the occluded regions' outlines. Other fields (name,
    score, occluded) are kept.
    """
    if not faces or prev_gray is None or prev_gray.shape != gray.shape:
        return []
    points = np.concatenate([np.asarray(f.landmarks, np.float32).reshape(-1, 2) for f in faces]).reshape(-1, 1, 2)
    moved, found, _ = cv2.calcOpticalFlowPyrLK(prev_gray, gray, points, None, **LK_PARAMS)
    if moved is None:
        return []
    back, found_back, _ = cv2.calcOpticalFlowPyrLK(gray, prev_gray, moved, None, **LK_PARAMS)
    moved, points = moved.reshape(-1, 2), points.reshape(-1, 2)
    round_trip = np.linalg.norm(back.reshape(-1, 2) - points, axis=1)
    found = (found.ravel() == 1) & (found_back.ravel() == 1)
    height, width = gray.shape[:2]
    kept, start = [], 0
    for face in faces:
        count = len(np.asarray(face.landmarks).reshape(-1, 2))
        part = slice(start, start + count)
        start += count
        box = np.asarray(face.box, np.float32)
        good = found[part] & (round_trip[part] < max(FB_ERROR, 0.03 * float(box[2])))
        if good.sum() < MIN_TRACKED_POINTS:
            continue
        shift = np.median(moved[part][good] - points[part][good], axis=0)
        landmarks = np.where(good[:, None], moved[part], points[part] + shift).astype(np.float32)
        new_box = box.copy()
        new_box[:2] += shift
        centre = new_box[:2] + new_box[2:] / 2
        if not (0 <= centre[0] < width and 0 <= centre[1] < height):
            continue
        outlines = {name: outline + shift for name, outline in face.outlines.items()}
        kept.append(dataclasses.replace(face, box=new_box, landmarks=landmarks, outlines=outlines))
    return kept


def run_camera(recognizer, source: str, headless: bool, detect_every: int = 3, max_frames: int | None = None,
               out=None, retries: int = 5, retry_delay: float = 1.0, output: str | Path | None = None,
               scan_every: int = SCAN_EVERY) -> int:
    """Recognise faces in every frame of ``source`` until it ends, ``max_frames``, ``q``/Esc or Ctrl-C.

    ``out`` (default ``sys.stdout``) gets one JSON line per frame when ``headless``; ``output``: a video file
    (``.mp4``, ``.avi``, ...) the annotated frames are written to. A window is shown only with neither. Returns
    0; raises ``CameraError`` for a source that cannot be opened or read, a live source lost for ``retries``
    reopenings ``retry_delay`` seconds apart, an ``output`` that cannot be written, or a window asked of an
    OpenCV without display support. A summary (frames, detections, mean FPS) goes to stderr at the end.
    """
    if detect_every < 1:
        raise CameraError(f"--detect-every must be at least 1, got {detect_every}")
    if scan_every < 1:
        raise CameraError(f"--scan-every must be at least 1, got {scan_every}")
    if max_frames is not None and max_frames < 1:
        raise CameraError(f"--max-frames must be at least 1, got {max_frames}")
    out = sys.stdout if out is None else out
    codec = None if output is None else video_codec(output)
    spec = parse_source(source)
    capture = open_capture(spec.target, spec.api)
    frames = detections = 0
    started = time.perf_counter()
    opened = interrupted = window = False
    writer = None
    try:
        if not capture.isOpened():
            raise _cannot_open(source, spec)
        opened = True
        shown = not headless and output is None
        tracks, prev_gray, fps, last = [], None, None, time.perf_counter()
        while max_frames is None or frames < max_frames:
            ok, frame = capture.read()
            if not ok or frame is None:
                if not spec.live and not frames:  # e.g. a text file named .jpg, which OpenCV "opens"
                    raise CameraError(f"cannot read '{source}' as a video: it gave no frame (damaged, or not a "
                                      "video this OpenCV can decode)")
                if not spec.live:
                    break  # end of the video file
                capture, frame = _reopen(capture, source, spec, retries, retry_delay)
                tracks, prev_gray = [], None  # a gap: nothing to track across
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
            detected = frames % detect_every == 0
            if detected:
                scan = not tracks or detections % scan_every == 0
                tracks = recognizer.recognize(rgb, proposals=None if scan else [t.box for t in tracks])
                detections += 1
            else:
                tracks = track(prev_gray, gray, tracks)
            prev_gray = gray
            now = time.perf_counter()
            rate = 1.0 / max(now - last, 1e-6)
            fps = rate if fps is None else FPS_SMOOTHING * fps + (1 - FPS_SMOOTHING) * rate
            last = now
            stop = False
            if headless:
                # False when the reader went away (e.g. piped into head): stop quietly
                stop = not _emit(out, frame_record(frames, time.time(), detected, fps, tracks))
            if shown or output is not None:
                canvas = cv2.cvtColor(draw_faces(rgb, tracks), cv2.COLOR_RGB2BGR)
                put_text(canvas, f"{fps:.1f} FPS", (8, 22), (255, 255, 255))
                if output is not None:
                    if writer is None:  # the frame size is known now
                        writer = open_writer(output, codec, capture, canvas.shape)
                    writer.write(canvas)
                else:
                    window = True
                    stop = show(canvas)
            frames += 1
            if stop:
                break
    except KeyboardInterrupt:
        interrupted = True
    finally:
        capture.release()
        if writer is not None:
            writer.release()
        if window:
            _close_windows()
        if opened and (frames or interrupted):
            elapsed = time.perf_counter() - started
            mean = frames / elapsed if elapsed > 0 else 0.0
            print(f"camera {source}: {frames} frames, {detections} detections, mean {mean:.1f} FPS"
                  + (" (interrupted)" if interrupted else ""), file=sys.stderr, flush=True)
    return 0


def _reopen(capture, source: str, spec: Source, retries: int, retry_delay: float):
    """``(capture, first frame)`` of ``spec`` reopened after it stopped delivering frames, or ``CameraError``."""
    capture.release()
    for attempt in range(1, retries + 1):
        print(f"camera {source} stopped delivering frames; reopening ({attempt}/{retries})", file=sys.stderr,
              flush=True)
        time.sleep(retry_delay)
        capture = open_capture(spec.target, spec.api)
        try:
            if capture.isOpened():
                ok, frame = capture.read()
                if ok and frame is not None:
                    return capture, frame
        except BaseException:  # Ctrl-C while reopening: the caller only holds the old capture
            capture.release()
            raise
        capture.release()
    raise CameraError(f"lost the camera {source} after {retries} retries; check the cable/URL")


def _emit(out, record: dict) -> bool:
    """Write one JSON line and flush; False when the reader has gone (broken pipe)."""
    try:
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
        out.flush()
        return True
    except BrokenPipeError:
        if out is sys.stdout:  # keep the interpreter's final flush quiet
            sys.stdout = open(os.devnull, "w")
        return False


def _close_windows() -> None:
    try:
        cv2.destroyAllWindows()
    except cv2.error:
        pass


def show(canvas: np.ndarray) -> bool:
    """Show a BGR frame in the window; True when the user asked to quit (q, Esc or the window closed)."""
    try:
        cv2.imshow(WINDOW, canvas)
        key = cv2.waitKey(1) & 0xFF
    except cv2.error as error:
        raise CameraError(NO_DISPLAY) from error
    if key in QUIT_KEYS:
        return True
    try:
        return cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) < 1
    except cv2.error:
        return False


def video_codec(path: str | Path) -> str:
    """The FourCC an ``--output`` file gets from its suffix; ``CameraError`` for a suffix not in ``VIDEO_CODECS``."""
    suffix = Path(path).suffix.lower()
    if suffix not in VIDEO_CODECS:
        raise CameraError(f"--output '{path}': give a video file ending in {', '.join(VIDEO_CODECS)}")
    return VIDEO_CODECS[suffix]


def open_writer(path: str | Path, codec: str, capture, shape: tuple) -> cv2.VideoWriter:
    """A ``cv2.VideoWriter`` for frames of ``shape`` (H, W, 3) at the source's frame rate (``DEFAULT_FPS`` when it
    does not say); ``CameraError`` when it cannot be opened."""
    fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)  # 0 (or nonsense) for many cameras and streams
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps if 1 <= fps <= 240 else DEFAULT_FPS,
                             (shape[1], shape[0]))
    if not writer.isOpened():
        raise CameraError(f"cannot write the video '{path}' (its folder is missing or not writable, or this OpenCV "
                          f"has no {codec} encoder: try .avi)")
    return writer
