"""Face detection for training: MTCNN, keeping the face nearest the image centre.

Images are RGB ``uint8 [H, W, 3]``; results are ``keras_landmask.core.align.Detection`` (landmarks in the
order ``LANDMARK_NAMES``). TensorFlow loads only when a ``FaceDetector`` is made.
"""
from __future__ import annotations

import numpy as np

from keras_landmask.core.align import Detection, central_index
from keras_landmask.core.layouts import LANDMARK_NAMES


class FaceDetector:
    """MTCNN (weights ship in the mtcnn wheel) returning the face nearest the image centre."""

    def __init__(self, batch_size: int = 32):
        from mtcnn import MTCNN  # imported here: TensorFlow loads only when detection is needed

        self._mtcnn = MTCNN(device="CPU:0")
        self.batch_size = batch_size

    def detect(self, images: list[np.ndarray]) -> list[Detection | None]:
        """One ``Detection`` (or None when no face is found) per image; same-shape images are batched."""
        results: list[Detection | None] = [None] * len(images)
        by_shape: dict[tuple, list[int]] = {}
        for i, image in enumerate(images):
            by_shape.setdefault(image.shape, []).append(i)
        for indices in by_shape.values():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start : start + self.batch_size]
                faces = self._mtcnn.detect_faces([images[i] for i in chunk]) if len(chunk) > 1 else [
                    self._mtcnn.detect_faces(images[chunk[0]])
                ]
                for i, found in zip(chunk, faces):
                    results[i] = choose_central_face(found, images[i].shape)
        return results


def choose_central_face(faces: list[dict], image_shape: tuple) -> Detection | None:
    """The MTCNN face whose box centre is nearest the image centre (None for an empty list)."""
    if not faces:
        return None
    face = faces[central_index([f["box"] for f in faces], image_shape)]
    landmarks = np.array([face["keypoints"][name] for name in LANDMARK_NAMES], dtype=np.float32)
    return Detection(np.asarray(face["box"], np.float32), landmarks, float(face["confidence"]), len(faces))
