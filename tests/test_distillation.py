"""Distillation: the centred cosine loss (known answers), the training batches' targets and weights, and the
two-output model sharing the recognizer's layers."""
from __future__ import annotations

import numpy as np
import pytest

from keras_landmask.data.faceset import FaceSet
from keras_landmask.models.distillation import TeacherDistance, distillation_model, stranger_distance


def unit(v):
    v = np.asarray(v, np.float32)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def test_loss_is_zero_for_the_teachers_embedding_at_any_scale():
    teacher = unit([[1.0, 0.3, 0.0]])
    loss = TeacherDistance(0.32)
    assert float(np.asarray(loss.call(teacher, 5.0 * teacher))[0]) == pytest.approx(0.0, abs=1e-6)


def test_loss_reads_in_units_of_the_teachers_stranger_distance():
    """Unit vectors around a common part: the mean squared distance of two of them is 2 (1 − ‖mean‖²), and a
    stranger (another of them) is at 1 on average."""
    rng = np.random.default_rng(0)
    vectors = unit(np.array([3.0, 0, 0, 0]) + rng.normal(size=(4000, 4)))
    scale = stranger_distance(vectors)
    mean = vectors.mean(axis=0)
    assert scale == pytest.approx(2 * (1 - mean @ mean), rel=1e-4)
    loss = TeacherDistance(scale)
    far = np.asarray(loss.call(vectors[:2000], vectors[2000:]))
    assert far.mean() == pytest.approx(1.0, abs=0.05)
    assert float(np.asarray(loss.call(unit([[0.0, 1.0]]), unit([[0.0, -1.0]])))[0]) == pytest.approx(4.0 / scale)
    assert TeacherDistance.from_config(loss.get_config()).scale == pytest.approx(scale)


def faces(n: int, labels) -> FaceSet:
    rng = np.random.default_rng(0)
    return FaceSet(images=rng.integers(0, 255, (n, 128, 96, 3), dtype=np.uint8),
                   landmarks=np.tile(np.array([[30, 50], [66, 50], [48, 70], [34, 90], [62, 90]], np.float32),
                                     (n, 1, 1)),
                   labels=np.asarray(labels, np.int32), splits=np.array(["train"] * n), paths=np.array(["x"] * n),
                   no_face=np.zeros(n, bool), multi_face=np.zeros(n, bool), people=np.array(["a", "b"]))


def test_batches_carry_the_teacher_target_and_zero_weight_for_unlabelled():
    from keras_landmask.data.pipeline import training_dataset

    labels = [0, 1, -1, -1]
    targets = unit(np.eye(4, 3, dtype=np.float32) + 0.1)
    (images, batch_labels), y, weights = next(iter(training_dataset(faces(4, labels), 4, 0, targets=targets)))
    order = [int(np.argmax(np.asarray(t) @ targets.T)) for t in np.asarray(y["teacher"])]
    assert sorted(order) == [0, 1, 2, 3]  # each target stays with its face through the shuffle
    np.testing.assert_array_equal(np.asarray(weights["cosface"]), [1.0 if labels[i] >= 0 else 0.0 for i in order])
    assert np.asarray(batch_labels).min() >= 0  # an unlabelled face reaches CosFace as class 0, weighted 0
    assert images.dtype == "uint8"


def test_distillation_model_shares_the_recognizers_layers():
    from keras_landmask.models.base_network import build_base_network

    base = build_base_network(2, base_width=4, embedding_dim=16, dropout=0.0)
    model = distillation_model(base, 128)
    image = np.zeros((2, 128, 96, 3), np.uint8)
    out = model([image, np.array([0, 1])])
    assert out["teacher"].shape == (2, 128) and out["cosface"].shape == (2, 2)
    assert model.get_layer("trunk") is base.trunk and model.get_layer("head") is base.head
    assert model.get_layer("teacher").count_params() == 16 * 128 + 128  # the projection to the teacher's size
