"""Rank-k identification on hand-made galleries with known answers."""
import numpy as np

from keras_landmask.evaluate import identify


def test_known_gallery_gives_the_right_ranks():
    # Six people, one gallery vector each along an axis; probes sit near a chosen person.
    gallery = np.eye(6, dtype=np.float32)
    gallery_labels = np.arange(6)
    probes = np.array([
        [0.9, 0.1, 0, 0, 0, 0],  # person 0: nearest is 0 -> rank-1 hit
        [0.0, 0.2, 0.9, 0, 0, 0],  # person 1: 2 then 1 -> rank-1 miss, rank-5 hit
        [0.5, 0.4, 0.3, 0.2, 0.1, 0.0],  # person 5: last of six -> miss at rank 5
    ], np.float32)
    probe_labels = np.array([0, 1, 5])
    result = identify(gallery, gallery_labels, probes, probe_labels)
    assert result.rank1 == 1 / 3
    assert result.rank5 == 2 / 3
    assert result.per_identity == {0: 1.0, 1: 0.0, 5: 0.0}


def test_a_person_counts_once_however_many_gallery_images():
    # Person 7 has many near-duplicate gallery images; rank-2 must still reach person 3.
    gallery = np.array([[1, 0], [1, 0.01], [1, 0.02], [0.6, 0.8]], np.float32)
    labels = np.array([7, 7, 7, 3])
    probe = np.array([[0.9, 0.3]], np.float32)
    result = identify(gallery, labels, probe, np.array([3]))
    assert result.rank1 == 0.0 and result.rank5 == 1.0


def test_cosine_ignores_vector_length():
    gallery = np.array([[1, 0], [0, 1]], np.float32)
    result = identify(gallery, np.array([0, 1]), np.array([[100, 1]], np.float32), np.array([0]))
    assert result.rank1 == 1.0
