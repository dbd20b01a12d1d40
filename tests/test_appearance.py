"""Appearance variety of the segmenter's training occluders (``data.appearance``)."""
import numpy as np
import pytest

from keras_landmask.data.appearance import (camera_look, finish, load_textures, recolour, varied_occluders)
from keras_landmask.data.facemask import face_mask, load_mask_templates
from keras_landmask.data.sunglasses import sunglasses


@pytest.fixture(scope="module")
def templates(masks_dir):
    return load_mask_templates(masks_dir)


@pytest.fixture(scope="module")
def textures(masks_dir):
    return load_textures(masks_dir, size=64)


def test_textures_are_the_maskthefaces_prints(textures):
    assert len(textures) >= 20 and all(t.shape == (64, 64, 3) and 0 <= t.min() and t.max() <= 1 for t in textures)


def test_recoloured_mask_keeps_the_shape_and_changes_the_colours(aligned_faces, templates, textures):
    image, landmarks = aligned_faces["images"][0], aligned_faces["landmarks"][0]
    plain, plain_cover = face_mask(image, landmarks, templates, np.random.default_rng(0), kind="surgical_blue")
    changed = 0
    for seed in range(8):
        varied, cover = face_mask(image, landmarks, templates, np.random.default_rng(0), kind="surgical_blue",
                                  colour=lambda rgb, alpha, rng: recolour(textures)(rgb, alpha,
                                                                                   np.random.default_rng(seed)))
        assert np.array_equal(cover, plain_cover)
        changed += np.abs(varied[cover].astype(int) - plain[cover]).mean() > 20
    assert changed >= 6  # a new colour or print nearly every time


def test_sunglasses_take_a_given_tint_and_opacity(aligned_faces):
    image, landmarks = aligned_faces["images"][0], aligned_faces["landmarks"][0]
    red = np.array([200.0, 0.0, 0.0])
    occluded, cover = sunglasses(image, landmarks, np.random.default_rng(0), style="round", tint=red,
                                 frame_colour=red, opacity=1.0)
    assert np.abs(occluded[cover].astype(float).mean(axis=0) - red).max() < 25  # mirrored red lenses
    plain, plain_cover = sunglasses(image, landmarks, np.random.default_rng(0), style="round")
    assert np.array_equal(cover, plain_cover)


def test_camera_looks_are_gray_and_finish_keeps_the_crop(aligned_faces):
    image = aligned_faces["images"][0]
    for seed in range(6):
        look = camera_look(image, np.random.default_rng(seed))
        assert look.dtype == np.uint8 and look.shape == image.shape
        assert np.array_equal(look[..., 0], look[..., 1]) and np.array_equal(look[..., 1], look[..., 2])
        finished = finish(image, np.random.default_rng(seed))
        assert finished.shape == image.shape and finished.dtype == np.uint8
    assert np.array_equal(finish(image, np.random.default_rng(3)), finish(image, np.random.default_rng(3)))


def test_varied_catalogue_adds_mask_and_sunglasses(aligned_faces, templates, textures):
    image, landmarks = aligned_faces["images"][0], aligned_faces["landmarks"][0]
    catalogue = {"band": lambda i, m, r: (i, np.zeros(i.shape[:2], bool)),
                 "block": lambda i, m, r: (i, np.pad(np.ones((10, 10), bool), ((0, 118), (0, 86))))}
    kinds = varied_occluders(catalogue, templates, textures)
    assert set(kinds) == {"face_mask", "sunglasses", "mask_and_sunglasses", "band", "block"}
    occluded, cover = kinds["mask_and_sunglasses"](image, landmarks, np.random.default_rng(1))
    left_eye, mouth = np.round(landmarks[0]).astype(int), np.round(landmarks[3:].mean(axis=0)).astype(int)
    assert cover[left_eye[1], left_eye[0]] and cover[mouth[1], mouth[0]]
    _, block_cover = kinds["block"](image, landmarks, np.random.default_rng(2))
    assert block_cover[:10, :10].all() and block_cover.sum() == 100


def test_segmenter_appearance_setting_is_checked():
    from types import SimpleNamespace

    from keras_landmask.config import load_config
    from keras_landmask.errors import LandmaskError
    from keras_landmask.stages.segmenter import training_occluders

    config = load_config("fast", assignments=["segmenter.appearance=fancy"])
    assert load_config("fast").segmenter.appearance == "varied"
    with pytest.raises(LandmaskError, match="'varied' or 'plain'"):
        training_occluders(SimpleNamespace(config=config))
