"""Faces drawn onto a photo or a video frame: ``draw_faces(image, faces)``, for ``identify --save-dir`` and the
camera's window and ``--output`` video. OpenCV only."""
from __future__ import annotations

import cv2
import numpy as np

from edge_runtime.recognizer import RecognizedFace

KNOWN_COLOUR, UNKNOWN_COLOUR, OCCLUDED_COLOUR = (0, 200, 0), (255, 0, 0), (255, 165, 0)  # RGB
SHADE = 0.35  # opacity of the occluded regions' fill


def draw_faces(image: np.ndarray, faces: list) -> np.ndarray:
    """A copy of the RGB ``uint8 [H, W, 3]`` ``image`` with each face's box and landmarks (green: matched, red:
    not), its name and score above the box, its occluded regions shaded orange and named below it. ``faces``
    are ``RecognizedFace``s (a ``DetectedFace`` gets no name); lines and text grow with the image."""
    canvas = image.copy()
    size = max(1.0, max(image.shape[:2]) / 800)  # 1 up to 800 pixels, then in proportion
    thickness = int(round(2 * size))
    shade = canvas.copy()
    for face in faces:
        for outline in face.outlines.values():
            cv2.fillPoly(shade, [np.round(outline).astype(np.int32)], OCCLUDED_COLOUR)
    cv2.addWeighted(shade, SHADE, canvas, 1 - SHADE, 0, dst=canvas)
    for face in faces:
        named = isinstance(face, RecognizedFace)
        colour = KNOWN_COLOUR if named and face.matched else UNKNOWN_COLOUR
        x, y, w, h = (int(round(float(v))) for v in face.box)
        cv2.rectangle(canvas, (x, y), (x + w, y + h), colour, thickness)
        for px, py in np.asarray(face.landmarks).reshape(-1, 2):
            cv2.circle(canvas, (int(round(float(px))), int(round(float(py)))), thickness, colour, -1)
        if named:
            label = face.name if face.score is None else f"{face.name} {face.score:.2f}"
            put_text(canvas, label, (x, max(y - int(6 * size), int(14 * size))), colour, size)
        if face.occluded:
            put_text(canvas, "occluded: " + ", ".join(face.occluded), (x, y + h + int(16 * size)), OCCLUDED_COLOUR,
                     size)
    return canvas


def put_text(canvas: np.ndarray, text: str, origin: tuple[int, int], colour, size: float = 1.0) -> None:
    """``text`` drawn in place at ``origin`` (its baseline's left end, pixels), outlined in black to stay legible."""
    scale, thickness = 0.5 * size, max(1, int(round(size)))
    cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness + 2, cv2.LINE_AA)
    cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thickness, cv2.LINE_AA)
