"""The runtime's machine-readable output, schema version ``SCHEMA_VERSION`` (docs/output-schema.md, validated by
docs/output.schema.json): one JSON object per photo (``identify --json``), per camera frame (``camera
--headless``) or per pair (``verify --json``), and the rows of ``identify --csv`` (one per face)."""
from __future__ import annotations

import numpy as np

from edge_runtime.recognizer import DetectedFace, RecognizedFace, Verification

SCHEMA_VERSION = 1
CSV_COLUMNS = ("file", "face", "x", "y", "w", "h", "name", "matched", "score", "threshold", "nearest", "occluded",
               "error")


def _score(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


def detection_record(face: DetectedFace) -> dict:
    """``box`` [x, y, w, h] and ``landmarks`` [[x, y] × 5] in image pixels, ``confidence``, ``occluded``."""
    return {"box": [round(float(v), 1) for v in face.box],
            "landmarks": np.round(np.asarray(face.landmarks, float), 1).tolist(),
            "confidence": round(float(face.confidence), 4), "occluded": list(face.occluded)}


def face_record(face: RecognizedFace) -> dict:
    """A detection with the gallery's answer: name, matched, score, threshold, nearest, top."""
    return {**detection_record(face), "name": face.name, "matched": bool(face.matched), "score": _score(face.score),
            "threshold": _score(face.threshold), "nearest": face.nearest,
            "top": [{"name": name, "score": _score(score)} for name, score in face.top]}


def photo_record(image: str, faces: list[RecognizedFace], error: str | None = None) -> dict:
    """One photo of ``identify``: its faces, or the ``error`` that kept it from being read."""
    return {"schema_version": SCHEMA_VERSION, "type": "photo", "image": image,
            "faces": [face_record(f) for f in faces], "error": error}


def frame_record(frame: int, timestamp: float, detected: bool, fps: float, faces: list[RecognizedFace]) -> dict:
    """One camera frame: its index from 0, wall-clock ``timestamp`` (Unix seconds), whether faces were
    ``detected`` in it (else tracked from the frame before), the smoothed ``fps`` and the faces."""
    return {"schema_version": SCHEMA_VERSION, "type": "frame", "frame": frame, "timestamp": round(timestamp, 3),
            "detected": detected, "fps": round(fps, 2), "faces": [face_record(f) for f in faces]}


def verification_record(images: tuple[str, str], verification: Verification) -> dict:
    """One ``verify``: the decision, score, threshold applied and the face used in each image."""
    return {"schema_version": SCHEMA_VERSION, "type": "verification", "images": list(images),
            "same_person": verification.same_person, "score": _score(verification.score),
            "threshold": _score(verification.threshold), "threshold_source": verification.threshold_source,
            "occluded": list(verification.occluded), "faces": [detection_record(f) for f in verification.faces]}


def csv_rows(image: str, faces: list[RecognizedFace], error: str | None = None) -> list[dict]:
    """``CSV_COLUMNS`` rows of one photo: one per face (``face`` its index from 0, ``matched`` true/false,
    ``occluded`` joined by ``;``); a photo without faces, or unreadable (``error``), still gets one row, with
    ``face`` empty."""
    if error is not None or not faces:
        return [{**dict.fromkeys(CSV_COLUMNS, ""), "file": image, "error": error or ""}]
    rows = []
    for index, face in enumerate(faces):
        record = face_record(face)
        x, y, w, h = record["box"]
        rows.append({"file": image, "face": index, "x": x, "y": y, "w": w, "h": h, "name": face.name,
                     "matched": "true" if face.matched else "false",
                     "score": "" if record["score"] is None else record["score"],
                     "threshold": record["threshold"], "nearest": face.nearest or "",
                     "occluded": ";".join(face.occluded), "error": ""})
    return rows
