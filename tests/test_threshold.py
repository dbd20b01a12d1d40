"""Identification (open-set) and verification thresholds: calibrated on clean validation faces (pairs, for
verification) and per occlusion pattern, used per pattern."""
import json

import numpy as np
import pytest

from export.threshold import (calibrate_threshold, openset_threshold, pair_threshold, pattern_thresholds,
                              verify_thresholds)


def _people(rng, n_people=20, per_person=4, noise=0.3, dim=16):
    centres = rng.normal(size=(n_people, dim))
    labels = np.repeat(np.arange(n_people), per_person)
    return centres[labels] + noise * rng.normal(size=(len(labels), dim)), labels


def test_threshold_accepts_the_asked_share_of_impostors():
    rng = np.random.default_rng(0)
    gallery, gallery_labels = _people(rng)
    probes, probe_labels = _people(rng, noise=0.6)  # the same people, other noise
    result = calibrate_threshold(gallery, gallery_labels, probes, probe_labels, false_accept_rate=0.1)
    assert result["false_accept_rate"] <= 0.1 + 1 / len(probes)
    assert 0 < result["true_accept_rate"] <= 1 and result["n_probes"] == len(probes)
    stricter = calibrate_threshold(gallery, gallery_labels, probes, probe_labels, false_accept_rate=0.01)
    assert stricter["threshold"] >= result["threshold"]


def test_openset_threshold_is_set_by_the_unknown_people():
    """Known answer: unknown people's best scores are 0.0..0.99 in steps of 0.01; at 5 % of them accepted the
    threshold lies between the 95th and 96th best, and known probes above it count as detected."""
    gallery = np.eye(2, 3)
    labels = np.array([0, 1])
    angles = np.linspace(0.0, 0.99, 100)
    unknowns = np.stack([angles, np.zeros(100), np.sqrt(1 - angles**2)], axis=1)  # cosine to person 0 = angle
    probes = np.array([[1.0, 0.0, 0.0], [0.0, 0.5, np.sqrt(0.75)], [0.9, 0.1, 0.0]])  # 0 strong, 1 weak, 0 strong
    result = openset_threshold(gallery, labels, probes, np.array([0, 1, 0]), unknowns, false_accept_rate=0.05)
    assert 0.94 <= result["threshold"] <= 0.95
    assert result["false_accept_rate"] == pytest.approx(0.05)
    assert result["true_accept_rate"] == pytest.approx(2 / 3)  # the weak probe of person 1 is rejected
    assert result["n_unknown"] == 100 and "open set" in result["split"]


def test_patterns_with_enough_probes_get_their_own_threshold():
    rng = np.random.default_rng(2)
    gallery, gallery_labels = _people(rng, dim=6)
    probes, probe_labels = _people(rng, noise=0.5, dim=6)
    maps = probes.reshape(-1, 1, 1, 6).astype(np.float32)
    gallery_maps = gallery.reshape(-1, 1, 1, 6).astype(np.float32)
    masks = {(0, 1): np.array([1, 1, 1, 0, 0, 0], np.float32), (1, 0): np.array([0, 0, 0, 1, 1, 1], np.float32)}

    def features(images):  # "images" are indices: the first half gets pattern (0, 1), the rest (1, 0) or clean
        flags = np.zeros((len(images), 2), np.float32)
        flags[images < 40, 1] = 1
        flags[(images >= 40) & (images < 50), 0] = 1  # only 10 probes: below min_probes
        return maps[images], flags

    def embed(feature_maps, pattern):
        return feature_maps.reshape(len(feature_maps), -1) * masks.get(tuple(pattern), 1.0)

    thresholds = pattern_thresholds(features, embed, gallery_maps, gallery_labels, {"occluded": np.arange(80)},
                                    probe_labels, min_probes=30)
    assert set(thresholds) == {"0,1"}
    direct = calibrate_threshold(embed(gallery_maps, (0, 1)), gallery_labels, embed(maps[:40], (0, 1)),
                                 probe_labels[:40])
    assert thresholds["0,1"]["threshold"] == pytest.approx(direct["threshold"])


def test_recognizer_uses_the_pattern_threshold_unless_one_is_given(smoke_export):
    from edge_runtime.recognizer import Recognizer

    recognizer = Recognizer.from_dir(smoke_export)
    recognizer.pattern_thresholds = {"0,0,0,1,1": 0.9}
    assert recognizer.threshold_for((0, 0, 0, 1, 1)) == 0.9
    assert recognizer.threshold_for((0, 0, 0, 0, 0)) == recognizer.threshold
    assert Recognizer.from_dir(smoke_export, threshold=0.5).pattern_thresholds == {}


def test_pair_threshold_accepts_the_asked_share_of_different_person_pairs():
    rng = np.random.default_rng(3)
    scores = np.concatenate([rng.normal(0.7, 0.1, 200), rng.normal(0.2, 0.1, 5000)])
    same = np.arange(len(scores)) < 200
    result = pair_threshold(scores, same, false_accept_rate=0.01)
    assert abs(result["false_accept_rate"] - 0.01) <= 1 / 5000
    assert result["true_accept_rate"] > 0.5 and (result["same_pairs"], result["different_pairs"]) == (200, 5000)
    assert pair_threshold(scores, same, 0.1)["threshold"] < result["threshold"]
    assert pair_threshold(scores[200:], same[200:])["true_accept_rate"] is None  # no same-person pair at all


def test_verify_thresholds_use_every_pair_and_per_pattern_leave_out_the_same_photo():
    rng = np.random.default_rng(4)
    probes, labels = _people(rng, noise=0.5, dim=6)
    maps = probes.reshape(-1, 1, 1, 6).astype(np.float32)
    masks = {(0, 1): np.array([1, 1, 1, 0, 0, 0], np.float32)}

    def features(images):  # the first 40 probes are found with pattern (0, 1), the rest clean
        flags = np.zeros((len(images), 2), np.float32)
        flags[images < 40, 1] = 1
        return maps[images], flags

    def embed(feature_maps, pattern):
        return feature_maps.reshape(len(feature_maps), -1) * masks.get(tuple(pattern), 1.0)

    result = verify_thresholds(features, embed, maps, labels, {"occluded": np.arange(80)}, regions=2)
    assert result["same_pairs"] + result["different_pairs"] == 80 * 79 // 2
    assert result["same_pairs"] == 20 * (4 * 3 // 2)  # 20 people, 4 faces each
    assert set(result["per_pattern"]) == {"0,1"}
    occluded = result["per_pattern"]["0,1"]
    assert occluded["same_pairs"] + occluded["different_pairs"] == 40 * 79  # each face with all but itself
    assert occluded["same_pairs"] == 40 * 3
    unit = embed(maps, (0, 1)) / np.linalg.norm(embed(maps, (0, 1)), axis=1, keepdims=True)
    scores = unit[:40] @ unit.T
    other = np.arange(40)[:, None] != np.arange(80)[None, :]
    direct = pair_threshold(scores[other], (labels[:40, None] == labels[None, :])[other])
    assert occluded["threshold"] == pytest.approx(direct["threshold"])


def test_the_export_records_a_verification_threshold_the_runtime_uses(smoke_export):
    from edge_runtime.recognizer import Recognizer

    verify = json.loads((smoke_export / "manifest.json").read_text())["threshold"]["verify"]
    assert -1 <= verify["threshold"] <= 1 and 0 <= verify["false_accept_rate"] <= 1
    pairs = verify["same_pairs"] + verify["different_pairs"]
    assert int((8 * pairs + 1) ** 0.5) ** 2 == 8 * pairs + 1  # n (n - 1) / 2 pairs of n validation faces
    recognizer = Recognizer.from_dir(smoke_export)
    clean = (0,) * len(recognizer.regions)
    assert recognizer.verify_threshold_for(clean) == (verify["threshold"], "verify")
    recognizer.verify_pattern_thresholds = {"0,0,0,1,1": 0.5}
    assert recognizer.verify_threshold_for((0, 0, 0, 1, 1)) == (0.5, "verify:0,0,0,1,1")
    assert Recognizer.from_dir(smoke_export, threshold=0.25).verify_threshold_for(clean) == (0.25, "given")
