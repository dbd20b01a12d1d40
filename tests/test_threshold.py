"""Open-set thresholds: calibrated on clean validation faces and per occlusion pattern, used per pattern."""
import numpy as np
import pytest

from export.threshold import calibrate_threshold, pattern_thresholds


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
