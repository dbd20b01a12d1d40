"""Alignment: crop shapes and dtypes, eyes on the template, central-face choice, fallback."""
import numpy as np

from keras_landmask.core.align import (
    Detection,
    crop_box,
    crop_similarity,
    fallback_detection,
    similarity_matrix,
    template_landmarks,
)
from keras_landmask.data.detect import choose_central_face


def test_similarity_puts_eyes_on_template(aligned_faces):
    template = template_landmarks(128, 96)
    eye_error = np.linalg.norm(aligned_faces["landmarks"][:, :2] - template[:2], axis=-1)
    assert aligned_faces["images"].shape[1:] == (128, 96, 3)
    assert aligned_faces["images"].dtype == np.uint8
    assert np.median(eye_error) < 2.0
    assert eye_error.max() < 5.0


def test_box_crop_shape_and_landmarks_inside(raw_faces):
    for image, det in zip(*raw_faces):
        crop, marks = crop_box(image, det, 128, 96)
        assert crop.shape == (128, 96, 3) and crop.dtype == np.uint8
        assert np.all((marks >= 0) & (marks < [96, 128]))
        # the paper's crop keeps the eyes above the mouth and the nose between them
        assert marks[0, 1] < marks[2, 1] < marks[3, 1]


def test_box_crop_maps_box_to_full_crop():
    image = np.zeros((200, 200, 3), np.uint8)
    image[50:130, 70:130] = 255  # a 60 x 80 (w x h) box, already 4:3
    det = Detection(np.array([70, 50, 60, 80], np.float32), np.full((5, 2), 100, np.float32), 1.0, 1)
    crop, _ = crop_box(image, det, 128, 96)
    assert crop[2:-2, 2:-2].min() == 255


def test_similarity_matrix_recovers_a_known_transform():
    rng = np.random.default_rng(0)
    points = rng.uniform(0, 100, (5, 2)).astype(np.float32)
    angle, scale, shift = 0.3, 1.7, np.array([5.0, -3.0])
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = points @ rotation.T + shift
    matrix = similarity_matrix(points, moved)
    np.testing.assert_allclose(matrix[:, :2], rotation, atol=1e-4)
    np.testing.assert_allclose(matrix[:, 2], shift, atol=1e-3)


def test_choose_central_face_prefers_the_middle():
    def face(x):
        keypoints = {n: [x + 10, 60] for n in ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")}
        return {"box": [x, 40, 40, 50], "confidence": 0.99, "keypoints": keypoints}

    chosen = choose_central_face([face(0), face(105), face(200)], (250, 250, 3))
    assert chosen.box[0] == 105 and chosen.n_faces == 3
    assert choose_central_face([], (250, 250, 3)) is None


def test_crop_similarity_of_template_is_identity_on_landmarks():
    template = template_landmarks(128, 96)
    image = np.random.default_rng(1).integers(0, 255, (128, 96, 3), dtype=np.uint8)
    crop, marks = crop_similarity(image, Detection(np.zeros(4, np.float32), template, 1.0, 1))
    np.testing.assert_allclose(marks, template, atol=1e-3)
    assert np.abs(crop.astype(int) - image.astype(int))[2:-2, 2:-2].max() <= 1


def test_fallback_uses_median_relative_box(raw_faces):
    images, detections = raw_faces
    size = np.array([[im.shape[1], im.shape[0]] for im in images], np.float32)
    boxes = np.stack([d.box for d in detections]) / np.tile(size, 2)
    marks = np.stack([d.landmarks for d in detections]) / size[:, None, :]
    fallback = fallback_detection(boxes, marks, (500, 500, 3))  # twice the LFW size
    median_box = np.median([d.box for d in detections], axis=0)
    np.testing.assert_allclose(fallback.box, 2 * median_box, atol=1.0)
    assert fallback.n_faces == 0
    centred = fallback_detection(np.zeros((0, 4)), np.zeros((0, 5, 2)), (100, 80, 3))
    np.testing.assert_allclose(centred.box, [20, 25, 40, 50])
