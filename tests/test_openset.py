"""Open-set measures on cases whose answers are known by hand."""
import numpy as np
import pytest

from keras_landmask.openset import best_people, identification, threshold_at, verification


def test_best_people_takes_each_persons_best_photo():
    gallery = np.array([[1, 0], [0, 1], [0.6, 0.8]], np.float32)
    labels, scores = best_people(gallery, np.array([0, 1, 1]), np.array([[0.8, 0.6], [0, 2]], np.float32))
    assert labels.tolist() == [1, 1]  # probe 0: person 0 scores 0.8, person 1's second photo 0.96
    assert scores == pytest.approx([0.96, 1.0])


def test_threshold_lets_through_at_most_the_rate():
    scores = np.linspace(0, 0.99, 100)
    threshold = threshold_at(scores, 0.01)
    assert threshold == pytest.approx(0.98) and (scores > threshold).sum() == 1
    assert (scores > threshold_at(scores, 0.0)).sum() == 0
    assert threshold_at(scores, 1.0) == float("-inf")


def test_dir_needs_the_right_person_above_the_unknowns_threshold():
    unknown = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95])  # 10 %: one above 0.9
    best_labels = np.array([0, 1, 2, 3])
    scores = np.array([0.99, 0.97, 0.5, 0.96])
    result = identification(best_labels, scores, np.array([0, 1, 2, 0]), unknown, fpir=0.1)
    assert result["threshold"] == pytest.approx(0.9)
    assert result["rank1"] == pytest.approx(0.75)  # probe 3 names the wrong person
    assert result["dir"] == pytest.approx(0.5)  # probe 2 is right but below the threshold


def test_tar_counts_genuine_pairs_above_the_impostor_threshold():
    similarity = np.array([[1.0, 0.9, 0.2], [0.9, 1.0, 0.95], [0.2, 0.95, 1.0]])
    labels = np.array([0, 0, -1])
    genuine = (labels[:, None] == labels[None, :]) & (labels[:, None] >= 0)
    valid = np.triu(np.ones((3, 3), bool), 1)  # pairs (0,1) genuine 0.9; (0,2) 0.2, (1,2) 0.95 impostors
    result = verification(similarity, genuine, valid, far=0.5)
    assert (result["n_genuine"], result["n_impostor"]) == (1, 2)
    assert result["threshold"] == pytest.approx(0.2) and result["tar"] == 1.0
    assert verification(similarity, genuine, valid, far=0.0)["tar"] == 0.0  # nothing passes 0.95
