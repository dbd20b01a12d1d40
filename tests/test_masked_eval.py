"""Masked identification with the gallery pattern cache, and the oracle Table 1 stage."""
import json

import numpy as np
import pytest

from keras_landmask.evaluate import GalleryCache, fdm_embedder, identify, identify_masked
from keras_landmask.train import main
from tests.conftest import with_stages


def _affine_head(seed=0):
    weights = np.random.default_rng(seed).normal(size=(2 * 2 * 3, 5))
    return lambda features: features.reshape(len(features), -1) @ weights + 0.1


def test_pattern_cache_gives_the_same_answers_as_direct_computation():
    rng = np.random.default_rng(3)
    head = _affine_head()
    masks = (rng.random((2, 2, 2, 3)) > 0.5).astype(np.float32)

    def fdm(pattern):
        result = np.ones((2, 2, 3), np.float32)
        for flag, mask in zip(pattern, masks):
            result = result * (mask if flag else 1.0)
        return result

    gallery = rng.normal(size=(12, 2, 2, 3)).astype(np.float32)
    labels = np.repeat(np.arange(6), 2)
    probes = rng.normal(size=(9, 2, 2, 3)).astype(np.float32)
    probe_labels = rng.integers(0, 6, 9)
    patterns = rng.integers(0, 2, (9, 2))
    cache = GalleryCache(fdm_embedder(head, fdm), gallery, labels)
    masked = identify_masked(cache, probes, patterns, probe_labels)
    assert len(cache.cache) == len({tuple(p) for p in patterns})

    hits1 = hits5 = 0
    for probe, pattern, label in zip(probes, patterns, probe_labels):
        mask = fdm(tuple(pattern))
        direct = identify(head(gallery * mask), labels, head(probe[None] * mask), np.array([label]))
        hits1 += direct.rank1
        hits5 += direct.rank5
    assert masked.rank1 == pytest.approx(hits1 / 9)
    assert masked.rank5 == pytest.approx(hits5 / 9)


def test_cache_computes_each_pattern_once():
    calls = []

    def head(features):
        calls.append(len(features))
        return features.reshape(len(features), -1)

    cache = GalleryCache(fdm_embedder(head, lambda p: np.ones((1, 1, 2), np.float32)),
                         np.ones((4, 1, 1, 2), np.float32), np.arange(4))
    for _ in range(3):
        cache.embeddings((1, 0))
    assert calls == [4]


def test_evaluate_stage_writes_the_oracle_table_and_pictures(smoke_base, smoke_run):
    run, args = smoke_run
    assert main(with_stages(args, "pdsn,dictionary,evaluate")) == 0
    table = json.loads((run / "eval" / "table1_oracle.json").read_text())
    assert list(table) == ["clean", "forehead", "eyes", "nose", "mouth", "chin", "face_mask", "sunglasses"]
    for row in table.values():
        assert set(row) == {"none", "LM1", "LM2", "grid3x3"}
        assert all(0 <= r["rank1"] <= r["rank5"] <= 1 for r in row.values())
    # A clean probe triggers no region, so every strategy equals no masking.
    assert len({r["rank1"] for r in table["clean"].values()}) == 1
    for name in ("table1_oracle.csv", "table1_oracle.md"):
        assert "forehead" in (run / "eval" / name).read_text()
    for picture in ("table1_oracle.png", "saliency.png"):
        assert (run / "eval" / picture).stat().st_size > 10_000
