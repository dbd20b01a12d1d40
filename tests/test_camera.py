"""edge_runtime.camera: live recognition loop, optical-flow tracking, sources, retries, Ctrl-C — no real camera.

The end-to-end tests run on a short MJPG video made of LFW photos moving across a 640x480 frame, with the
smoke run's int8 export (``smoke_export``); the rest use a fake recognizer and fake captures injected through
``camera.open_capture``.
"""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_runtime import camera
from edge_runtime.camera import CameraError, parse_source, run_camera, track
from edge_runtime.recognizer import RecognizedFace

REPO = Path(__file__).resolve().parents[1]
FRAMES = 12
DETECT_EVERY = 3
STEP = np.array([4.0, 2.0])  # pixels per frame the photos move (x, y)
PEOPLE = ("Abdullah_Gul", "Adrien_Brody")


# ---------------------------------------------------------------------------------------------- helpers


def make_video(path: Path, photos: list[np.ndarray], frames: int = FRAMES) -> Path:
    """An MJPG .avi of ``frames`` 640x480 frames: the BGR ``photos`` (250x250 LFW) side by side on grey,
    moving ``STEP`` pixels per frame."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (640, 480))
    assert writer.isOpened(), "this OpenCV cannot write MJPG video"
    for i in range(frames):
        canvas = np.full((480, 640, 3), 110, np.uint8)
        dx, dy = (STEP * i).astype(int)
        for k, photo in enumerate(photos):
            x, y = 20 + 310 * k + dx, 100 + dy
            canvas[y:y + photo.shape[0], x:x + photo.shape[1]] = photo
        writer.write(canvas)
    writer.release()
    return path


@pytest.fixture(scope="module")
def video(lfw_root, tmp_path_factory) -> Path:
    photos = [cv2.imread(str(sorted((lfw_root / name).glob("*.jpg"))[0])) for name in PEOPLE]
    path = make_video(tmp_path_factory.mktemp("camera") / "people.avi", photos)
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    assert count == FRAMES, "the MJPG test video should read back frame for frame"
    return path


@pytest.fixture(scope="module")
def models(request) -> Path:
    """The smoke run's int8 export, or the export folder in ``LANDMASK_CAMERA_MODELS`` (to skip training
    while working on the camera, e.g. ``LANDMASK_CAMERA_MODELS=dist/fast/int8``)."""
    override = os.environ.get("LANDMASK_CAMERA_MODELS")
    if override:
        return Path(override).resolve()
    return Path(request.getfixturevalue("smoke_export"))


def texture(seed: int = 0, shape=(240, 320)) -> np.ndarray:
    """A BGR image with structure at many scales, good for optical flow."""
    noise = np.random.default_rng(seed).uniform(0, 255, shape).astype(np.float32)
    image = cv2.GaussianBlur(noise, (0, 0), 2.0) * 0.7 + cv2.GaussianBlur(noise, (0, 0), 6.0) * 0.3
    image = cv2.normalize(image, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)


def shifted(image: np.ndarray, dx: int, dy: int) -> np.ndarray:
    return cv2.warpAffine(image, np.float32([[1, 0, dx], [0, 1, dy]]), image.shape[1::-1],
                          borderMode=cv2.BORDER_REFLECT)


LANDMARKS = np.array([[140, 100], [180, 100], [160, 120], [145, 140], [175, 140]], np.float32)


MOUTH = np.array([[140, 130], [180, 130], [180, 150], [140, 150]], np.float32)  # an outline around the mouth


def fake_face(name: str = "Alice") -> RecognizedFace:
    return RecognizedFace(box=np.array([120, 80, 80, 90], np.float32), landmarks=LANDMARKS.copy(), confidence=0.99,
                          occluded=["mouth"], outlines={"mouth": MOUTH.copy()}, name=name, matched=True, score=0.8,
                          threshold=0.5, nearest=name, top=[(name, 0.8)])


class FakeRecognizer:
    """Finds the same face in every frame it is asked about (none in the calls numbered in ``blind``); counts
    calls and keeps the ``proposals`` of each."""

    def __init__(self, blind=()):
        self.calls, self.blind, self.proposals = 0, set(blind), []

    def recognize(self, image, faces=None, proposals=None):
        assert image.ndim == 3 and image.shape[2] == 3
        self.proposals.append(proposals)
        self.calls += 1
        return [] if self.calls - 1 in self.blind else [fake_face()]


class FakeCapture:
    """``frames`` BGR images, then read() fails; ``interrupt_at``: read number raising KeyboardInterrupt."""

    def __init__(self, frames=(), opened=True, interrupt_at=None):
        self.frames, self.opened, self.interrupt_at = list(frames), opened, interrupt_at
        self.reads, self.released = 0, False

    def isOpened(self):
        return self.opened and not self.released

    def read(self):
        self.reads += 1
        if self.interrupt_at is not None and self.reads == self.interrupt_at:
            raise KeyboardInterrupt
        if self.released or not self.frames:
            return False, None
        return True, self.frames.pop(0)

    def release(self):
        self.released = True


class CaptureFactory:
    """Stands in for ``camera.open_capture``: hands out the given captures in order, then closed ones."""

    def __init__(self, *captures):
        self.queue, self.opened = list(captures), []

    def __call__(self, target, api=cv2.CAP_ANY):
        capture = self.queue.pop(0) if self.queue else FakeCapture(opened=False)
        self.opened.append((target, capture))
        return capture


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# ---------------------------------------------------------------------------------------------- sources


def test_parse_source_kinds(tmp_path):
    assert parse_source("0") == camera.Source(0, cv2.CAP_ANY, True, "camera")
    assert parse_source(" 2 ").target == 2
    pipeline = parse_source("videotestsrc ! videoconvert ! appsink")
    assert (pipeline.api, pipeline.live, pipeline.kind) == (cv2.CAP_GSTREAMER, True, "gstreamer")
    assert parse_source("rtsp://10.0.0.5:554/stream").live
    assert parse_source("http://cam.local/video.mjpg").kind == "stream"
    clip = tmp_path / "clip.avi"
    clip.write_bytes(b"x")
    assert parse_source(str(clip)) == camera.Source(str(clip), cv2.CAP_ANY, False, "file")
    with pytest.raises(CameraError, match="not found"):
        parse_source(str(tmp_path / "missing.mp4"))
    with pytest.raises(CameraError, match="not a video file"):
        parse_source(str(tmp_path))


def test_bad_options_and_unreadable_file(tmp_path):
    with pytest.raises(CameraError, match="detect-every"):
        run_camera(FakeRecognizer(), "0", headless=True, detect_every=0)
    junk = tmp_path / "junk.avi"
    junk.write_bytes(b"not a video at all" * 10)
    with pytest.raises(CameraError, match="cannot read"):
        run_camera(FakeRecognizer(), str(junk), headless=True, out=io.StringIO())


# ---------------------------------------------------------------------------------------------- tracking


def test_track_follows_motion_and_keeps_identity():
    before = texture()
    after = shifted(before, 5, -3)
    gray = [cv2.cvtColor(i, cv2.COLOR_BGR2GRAY) for i in (before, after)]
    (moved,) = track(gray[0], gray[1], [fake_face()])
    np.testing.assert_allclose(moved.landmarks - LANDMARKS, np.tile([5, -3], (5, 1)), atol=0.5)
    np.testing.assert_allclose(moved.box, [125, 77, 80, 90], atol=0.5)
    np.testing.assert_allclose(moved.outlines["mouth"] - MOUTH, np.tile([5, -3], (4, 1)), atol=0.5)
    assert (moved.name, moved.score, moved.occluded, moved.confidence) == ("Alice", 0.8, ["mouth"], 0.99)


def test_track_drops_lost_faces():
    before = cv2.cvtColor(texture(), cv2.COLOR_BGR2GRAY)
    unrelated = cv2.cvtColor(texture(seed=1), cv2.COLOR_BGR2GRAY)
    assert track(before, unrelated, [fake_face()]) == []
    assert track(before, np.full_like(before, 128), [fake_face()]) == []
    assert track(None, before, [fake_face()]) == []  # nothing to track from
    assert track(before, cv2.resize(before, (160, 120)), [fake_face()]) == []  # frame size changed


def test_headless_loop_with_fake_capture(monkeypatch):
    base = texture()
    frames = [shifted(base, 2 * i, i) for i in range(7)]
    factory = CaptureFactory(FakeCapture(frames))
    monkeypatch.setattr(camera, "open_capture", factory)
    recognizer, out = FakeRecognizer(), io.StringIO()
    assert run_camera(recognizer, "0", headless=True, detect_every=3, max_frames=7, out=out, retry_delay=0) == 0
    records = json_lines(out.getvalue())
    assert [r["frame"] for r in records] == list(range(7))
    assert [r["detected"] for r in records] == [i % 3 == 0 for i in range(7)]
    assert recognizer.calls == 3
    assert all(len(r["faces"]) == 1 and r["faces"][0]["name"] == "Alice" for r in records)
    for r in records:  # between detections, the landmarks follow the frames' motion
        expected = LANDMARKS + np.array([2, 1]) * (r["frame"] % 3)
        np.testing.assert_allclose(r["faces"][0]["landmarks"], expected, atol=0.6)
    assert all(isinstance(r["fps"], float) and r["fps"] > 0 for r in records)
    assert factory.opened[0][1].released


def test_whole_frame_searched_every_scan_every_detections_or_with_nothing_tracked(monkeypatch):
    frames = [shifted(texture(), i, 0) for i in range(10)]
    monkeypatch.setattr(camera, "open_capture", CaptureFactory(FakeCapture(frames)))
    recognizer = FakeRecognizer(blind={4})  # the face is lost at the 5th detection
    run_camera(recognizer, "0", headless=True, detect_every=1, scan_every=3, max_frames=10, out=io.StringIO())
    scans = [i for i, proposals in enumerate(recognizer.proposals) if proposals is None]
    assert scans == [0, 3, 5, 6, 9]  # every 3rd detection, and the one after the face was lost
    tracked = [np.asarray(p) for p in recognizer.proposals if p is not None]
    assert all(p.shape == (1, 4) for p in tracked)  # the tracked face's box (x, y, w, h)
    np.testing.assert_allclose(tracked[0][0], fake_face().box)
    with pytest.raises(CameraError, match="--scan-every must be at least 1"):
        run_camera(FakeRecognizer(), "0", headless=True, scan_every=0)


# ---------------------------------------------------------------------------------------------- live sources


def test_lost_live_camera_gives_a_clear_error_after_retries(monkeypatch, capsys):
    first = FakeCapture([texture()] * 3)
    factory = CaptureFactory(first)
    monkeypatch.setattr(camera, "open_capture", factory)
    out = io.StringIO()
    with pytest.raises(CameraError, match=r"^lost the camera 0 after 5 retries; check the cable/URL$"):
        run_camera(FakeRecognizer(), "0", headless=True, out=out, retries=5, retry_delay=0)
    assert len(json_lines(out.getvalue())) == 3
    assert len(factory.opened) == 1 + 5
    assert all(capture.released for _, capture in factory.opened)
    assert "3 frames" in capsys.readouterr().err


def test_live_camera_reconnects(monkeypatch):
    factory = CaptureFactory(FakeCapture([texture()] * 2), FakeCapture(opened=False), FakeCapture([texture()] * 3))
    monkeypatch.setattr(camera, "open_capture", factory)
    out = io.StringIO()
    with pytest.raises(CameraError, match="lost the camera rtsp://cam/stream after 5 retries"):
        run_camera(FakeRecognizer(), "rtsp://cam/stream", headless=True, out=out, retry_delay=0)
    # 2 frames, reopened on the 2nd try, 3 more frames (numbered on), then lost for good
    assert [r["frame"] for r in json_lines(out.getvalue())] == list(range(5))
    assert len(factory.opened) == 1 + 2 + 5
    assert all(capture.released for _, capture in factory.opened)


def test_ctrl_c_returns_0_and_releases(monkeypatch, capsys):
    capture = FakeCapture([texture()] * 5, interrupt_at=3)
    monkeypatch.setattr(camera, "open_capture", CaptureFactory(capture))
    out = io.StringIO()
    assert run_camera(FakeRecognizer(), "0", headless=True, out=out, retry_delay=0) == 0
    assert capture.released
    assert len(json_lines(out.getvalue())) == 2
    summary = capsys.readouterr().err.strip().splitlines()
    assert len(summary) == 1 and "2 frames" in summary[0] and "interrupted" in summary[0]


def test_camera_that_does_not_open(monkeypatch):
    monkeypatch.setattr(camera, "open_capture", CaptureFactory(FakeCapture(opened=False)))
    with pytest.raises(CameraError, match="cannot open camera 1"):
        run_camera(FakeRecognizer(), "1", headless=True, out=io.StringIO())


def test_window_without_display_support(monkeypatch):
    capture = FakeCapture([texture()] * 3)
    monkeypatch.setattr(camera, "open_capture", CaptureFactory(capture))

    def no_gui(*args):
        raise cv2.error("The function is not implemented")

    monkeypatch.setattr(cv2, "imshow", no_gui)
    with pytest.raises(CameraError, match=r"no display support; use --headless"):
        run_camera(FakeRecognizer(), "0", headless=False, retry_delay=0)
    assert capture.released


def test_window_draws_and_quits_on_q(monkeypatch):
    capture = FakeCapture([texture()] * 5)
    monkeypatch.setattr(camera, "open_capture", CaptureFactory(capture))
    shown, keys = [], iter([-1, ord("q")])
    monkeypatch.setattr(cv2, "imshow", lambda name, image: shown.append(image.copy()))
    monkeypatch.setattr(cv2, "waitKey", lambda delay: next(keys))
    monkeypatch.setattr(cv2, "getWindowProperty", lambda name, prop: 1.0)
    monkeypatch.setattr(cv2, "destroyAllWindows", lambda: None)
    assert run_camera(FakeRecognizer(), "0", headless=False, retry_delay=0) == 0
    assert len(shown) == 2 and capture.released
    assert shown[0].shape == (240, 320, 3) and not np.array_equal(shown[0], texture())  # something drawn


def test_occluded_regions_map_back_onto_the_face(models, video):
    from edge_runtime.recognizer import Recognizer

    recognizer = Recognizer.from_dir(models)
    capture = cv2.VideoCapture(str(video))
    frame = capture.read()[1]
    capture.release()
    rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    face = recognizer.detect(rgb)[0]
    crop_landmarks = recognizer._align(rgb, [face])[1][0]
    outlines = recognizer._outlines(face.landmarks, crop_landmarks, ["eyes", "mouth"])
    assert set(outlines) == {"eyes", "mouth"}
    height = face.box[3]
    assert abs(outlines["eyes"][:, 1].mean() - face.landmarks[:2, 1].mean()) < 0.15 * height
    assert abs(outlines["mouth"][:, 1].mean() - face.landmarks[3:, 1].mean()) < 0.15 * height


def test_draw_faces_draws_box_name_and_occluded_region():
    from edge_runtime.drawing import OCCLUDED_COLOUR, draw_faces

    image = np.full((240, 320, 3), 128, np.uint8)
    drawn = draw_faces(image, [fake_face()])
    assert drawn.shape == image.shape and (image == 128).all()  # a copy; the input is untouched
    assert (drawn[80, 120:200] == (0, 200, 0)).all(-1).mean() > 0.9  # the box's top edge, green: matched
    inside = drawn[140, 150].astype(int)  # in the mouth outline: shaded towards orange
    assert inside[0] > 128 and inside[2] < 128, (inside, OCCLUDED_COLOUR)
    unknown = fake_face()
    unknown.matched, unknown.name = False, "unknown"
    assert (draw_faces(image, [unknown])[80, 120:200] == (255, 0, 0)).all(-1).mean() > 0.9  # red


def test_camera_module_has_no_tensorflow():
    code = "import sys, edge_runtime.camera, edge_runtime.cli; sys.exit('tensorflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


# ---------------------------------------------------------------------------------------------- end to end


def test_video_file_end_to_end(models, video, tmp_path, capsys):
    from edge_runtime.recognizer import Recognizer

    recognizer = Recognizer.from_dir(models)
    out = io.StringIO()
    try:
        assert run_camera(recognizer, str(video), headless=True, detect_every=DETECT_EVERY, out=out) == 0
    finally:
        recognizer.close()
    records = json_lines(out.getvalue())
    assert len(out.getvalue().splitlines()) == FRAMES
    assert [r["frame"] for r in records] == list(range(FRAMES))
    assert [r["detected"] for r in records] == [i % DETECT_EVERY == 0 for i in range(FRAMES)]
    assert sum(len(r["faces"]) >= 1 for r in records) >= 0.75 * FRAMES
    assert f"{FRAMES} frames, {FRAMES // DETECT_EVERY} detections" in capsys.readouterr().err
    # between detections the boxes follow the photos' motion
    last_detection = {}
    for r in records:
        boxes = sorted((f["box"] for f in r["faces"]), key=lambda b: b[0])
        if r["detected"]:
            last_detection = {"frame": r["frame"], "boxes": boxes}
        elif len(boxes) == len(last_detection["boxes"]):
            expected = STEP * (r["frame"] - last_detection["frame"])
            for box, start in zip(boxes, last_detection["boxes"]):
                np.testing.assert_allclose(np.subtract(box[:2], start[:2]), expected, atol=3.0)
    assert [r["type"] for r in records] == ["frame"] * FRAMES
    assert all(r["schema_version"] == 1 and r["timestamp"] > 1.6e9 for r in records)  # Unix seconds
    timestamps = [r["timestamp"] for r in records]
    assert timestamps == sorted(timestamps)


def test_cli_headless_video(models, video, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "edge_runtime", "camera", "--models", str(models), "--headless", "--source",
         str(video)],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == FRAMES
    assert [json.loads(line)["frame"] for line in lines] == list(range(FRAMES))


def test_cli_missing_video_is_one_error_line(models, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "edge_runtime", "camera", "--models", str(models), "--headless", "--source",
         str(tmp_path / "nowhere.mp4")],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "nowhere.mp4" in errors[0] and "not found" in errors[0]


@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
def test_cli_output_writes_the_annotated_video(models, video, tmp_path, suffix):
    output = tmp_path / f"annotated{suffix}"
    result = subprocess.run(
        [sys.executable, "-m", "edge_runtime", "camera", "--models", str(models), "--source", str(video),
         "--output", str(output)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""  # no window, no JSON
    capture = cv2.VideoCapture(str(output))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    original = cv2.VideoCapture(str(video))
    first = original.read()[1]
    original.release()
    assert len(frames) == FRAMES and frames[0].shape == first.shape
    assert np.abs(frames[0].astype(int) - first.astype(int)).mean() > 1  # boxes, names and FPS drawn on it


def test_cli_output_into_a_missing_folder_is_one_error_line(models, video, tmp_path):
    output = tmp_path / "missing" / "annotated.avi"
    result = subprocess.run(
        [sys.executable, "-m", "edge_runtime", "camera", "--models", str(models), "--source", str(video),
         "--output", str(output)], cwd=REPO, capture_output=True, text=True, timeout=300)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert errors == [f"error: cannot write the video '{output}' (its folder is missing or not writable, or this "
                      "OpenCV has no MJPG encoder: try .avi)"]
