"""Synthetic occlusions on real aligned faces: region blocks and bands, face masks, sunglasses, Table 1 probes."""
from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from keras_landmask.core.layouts import LandmarkStats, Region, lm2_layout
from keras_landmask.data.facemask import face_mask, head_turn, load_mask_templates, mask_kinds, template_name
from keras_landmask.data.occluders import clean, random_block, table1_probes, white_band
from keras_landmask.data.sunglasses import STYLES, sunglasses
from keras_landmask.errors import LandmaskError

BOX = Region("box", 20.4, 50.6, 70.2, 66.4)  # rounds to x 20..70, y 51..66


@pytest.fixture(scope="module")
def templates(masks_dir):
    return load_mask_templates(masks_dir)


def _faces(aligned_faces):
    return list(zip(aligned_faces["images"], aligned_faces["landmarks"]))


def _at(mask: np.ndarray, point) -> bool:
    """The mask at a point (x, y), clipped into the crop."""
    height, width = mask.shape
    x, y = np.clip(np.rint(point), 0, [width - 1, height - 1]).astype(int)
    return bool(mask[y, x])


def test_white_band_is_exactly_its_rows_over_the_full_width(aligned_faces):
    image = aligned_faces["images"][0]
    occluded, mask = white_band(image, BOX)
    expected = np.zeros(mask.shape, bool)
    expected[51:66] = True
    np.testing.assert_array_equal(mask, expected)
    assert (occluded[expected] == 255).all()
    np.testing.assert_array_equal(occluded[~expected], image[~expected])


def test_random_block_is_exactly_its_box_in_one_grey(aligned_faces):
    image = aligned_faces["images"][0]
    occluded, mask = random_block(image, BOX, np.random.default_rng(0))
    np.testing.assert_array_equal(mask, BOX.pixel_mask(*mask.shape))
    assert mask[51:66, 20:70].all() and mask.sum() == 15 * 50
    assert len(np.unique(occluded[mask])) == 1  # one value, same in every channel
    np.testing.assert_array_equal(occluded[~mask], image[~mask])


def test_random_block_grey_is_seeded():
    image = np.zeros((128, 96, 3), np.uint8)
    greys = [random_block(image, BOX, np.random.default_rng(seed))[0][55, 40, 0] for seed in range(10)]
    again = [random_block(image, BOX, np.random.default_rng(seed))[0][55, 40, 0] for seed in range(10)]
    assert greys == again
    assert len(set(greys)) > 5


def _occluders(templates):
    return {
        "block": lambda image, marks, rng: random_block(image, BOX, rng),
        "band": lambda image, marks, rng: white_band(image, BOX),
        "face_mask": lambda image, marks, rng: face_mask(image, marks, templates, rng),
        "sunglasses": lambda image, marks, rng: sunglasses(image, marks, rng),
    }


@pytest.mark.parametrize("kind", ["block", "band", "face_mask", "sunglasses"])
def test_occluders_leave_the_input_alone_and_return_matching_shapes(aligned_faces, templates, kind):
    image, marks = aligned_faces["images"][1], aligned_faces["landmarks"][1]
    before, marks_before = image.copy(), marks.copy()
    occluded, mask = _occluders(templates)[kind](image, marks, np.random.default_rng(3))
    np.testing.assert_array_equal(image, before)
    np.testing.assert_array_equal(marks, marks_before)
    assert occluded.dtype == np.uint8 and occluded.shape == image.shape
    assert mask.dtype == bool and mask.shape == image.shape[:2] and mask.any()
    assert (occluded != image).any(axis=-1)[mask].mean() > 0.5  # the occluder changed what it covers


@pytest.mark.parametrize("kind", ["face_mask", "sunglasses"])
def test_landmark_occluders_are_seeded(aligned_faces, templates, kind):
    image, marks = aligned_faces["images"][2], aligned_faces["landmarks"][2]
    occlude = _occluders(templates)[kind]
    outputs = [occlude(image, marks, np.random.default_rng(seed))[0] for seed in range(6)]
    np.testing.assert_array_equal(outputs[0], occlude(image, marks, np.random.default_rng(0))[0])
    assert any((out != outputs[0]).any() for out in outputs[1:])


def test_face_masks_cover_nose_to_chin_but_not_the_eyes(aligned_faces, templates):
    kinds = mask_kinds(templates)
    assert kinds == ["KN95", "N95", "cloth", "gas", "surgical", "surgical_blue", "surgical_green"]
    for index, (image, marks) in enumerate(_faces(aligned_faces)):
        eye_mid, mouth = marks[:2].mean(axis=0), marks[3:].mean(axis=0)
        below_nose = (marks[2] + mouth) / 2
        chin = mouth + 0.35 * (mouth - eye_mid)
        for kind in kinds:
            _, mask = face_mask(image, marks, templates, np.random.default_rng(index), kind)
            covered = [_at(mask, p) for p in (marks[3], marks[4], below_nose, chin)]
            assert all(covered), f"face {index} {kind}: mouth corners, below nose, chin covered = {covered}"
            assert not _at(mask, marks[0]) and not _at(mask, marks[1]), f"face {index} {kind} covers an eye"


def test_random_face_mask_kind_varies_and_unknown_kind_fails(aligned_faces, templates):
    image, marks = aligned_faces["images"][0], aligned_faces["landmarks"][0]
    masks = {face_mask(image, marks, templates, np.random.default_rng(seed))[1].tobytes() for seed in range(12)}
    assert len(masks) >= 3
    with pytest.raises(LandmaskError, match="surgical"):
        face_mask(image, marks, templates, np.random.default_rng(0), kind="bandana")


def _turned(marks: np.ndarray, turn: float) -> np.ndarray:
    """Landmarks with the nose moved along the eye line to ``turn`` inter-ocular distances from the eye midpoint."""
    turned = marks.copy()
    eye_line = marks[1] - marks[0]
    turned[2] += (turn - head_turn(marks)) * eye_line
    return turned


@pytest.mark.parametrize("turn, suffix", [(-0.35, "_left"), (0.0, ""), (0.35, "_right")])
def test_turned_heads_get_the_template_drawn_for_that_turn(aligned_faces, templates, turn, suffix):
    image, marks = aligned_faces["images"][0], _turned(aligned_faces["landmarks"][0], turn)
    assert head_turn(marks) == pytest.approx(turn, abs=1e-6)
    for kind in mask_kinds(templates):
        name = template_name(kind, head_turn(marks), templates)
        assert name == kind + suffix
        a, b, c = templates[name].anchors[:3, 0]  # contour, nose bridge, contour (x)
        if turn:  # the nose bridge sits on the side the nose points to
            assert np.sign((b - a) - (c - b)) == np.sign(turn)
        _, mask = face_mask(image, marks, templates, np.random.default_rng(0), kind)
        assert _at(mask, marks[3]) and _at(mask, marks[4]), f"{name} leaves a mouth corner bare"


def test_missing_template_folder_says_what_to_pass(tmp_path):
    with pytest.raises(LandmaskError, match="maskthefaces"):
        load_mask_templates(tmp_path / "nowhere")
    with pytest.raises(LandmaskError, match="masks.cfg"):
        load_mask_templates(tmp_path)


@pytest.mark.parametrize("style", STYLES)
def test_sunglasses_cover_both_eyes_and_not_the_mouth(aligned_faces, style):
    for index, (image, marks) in enumerate(_faces(aligned_faces)):
        _, mask = sunglasses(image, marks, np.random.default_rng(index), style)
        assert _at(mask, marks[0]) and _at(mask, marks[1]), f"face {index}: an eye is uncovered"
        assert not any(_at(mask, p) for p in (marks[3], marks[4], marks[3:].mean(axis=0))), f"face {index}: mouth"


def test_random_sunglasses_style_varies_and_unknown_style_fails(aligned_faces):
    image, marks = aligned_faces["images"][0], aligned_faces["landmarks"][0]
    masks = {sunglasses(image, marks, np.random.default_rng(seed))[1].tobytes() for seed in range(30)}
    assert len(masks) == len(STYLES)
    with pytest.raises(LandmaskError, match="aviator"):
        sunglasses(image, marks, np.random.default_rng(0), style="monocle")


def _orientation(mask: np.ndarray) -> float:
    """Angle in degrees of a mask's principal axis (image axes: x right, y down)."""
    m = cv2.moments(mask.astype(np.uint8), binaryImage=True)
    return float(np.degrees(0.5 * np.arctan2(2 * m["mu11"], m["mu20"] - m["mu02"])))


def _placed(image, marks, angle, scale):
    """The face turned by ``angle`` degrees (counter-clockwise on screen) and scaled about the eye midpoint,
    which lands in the middle of a 256 x 320 canvas so nothing is clipped."""
    eye_mid = marks[:2].mean(axis=0)
    matrix = cv2.getRotationMatrix2D(tuple(map(float, eye_mid)), angle, scale)
    matrix[:, 2] += np.array([160.0, 128.0]) - eye_mid
    return cv2.warpAffine(image, matrix, (320, 256)), marks @ matrix[:, :2].T + matrix[:, 2]


@pytest.mark.parametrize("style", STYLES)
def test_sunglasses_follow_the_roll_and_scale_of_the_eyes(aligned_faces, style):
    image, marks = aligned_faces["images"][0], aligned_faces["landmarks"][0]
    roll = np.degrees(np.arctan2(*(marks[1] - marks[0])[::-1]))
    _, upright = sunglasses(*_placed(image, marks, 0.0, 1.0), np.random.default_rng(0), style)
    _, rolled = sunglasses(*_placed(image, marks, -20.0, 2.0), np.random.default_rng(0), style)
    assert _orientation(upright) == pytest.approx(roll, abs=3.0)
    assert _orientation(rolled) - _orientation(upright) == pytest.approx(20.0, abs=3.0)  # clockwise = +y
    assert np.sqrt(rolled.sum() / upright.sum()) == pytest.approx(2.0, rel=0.08)  # size doubles (frame widths round)


def test_table1_probes_are_clean_each_lm2_band_a_face_mask_and_sunglasses(aligned_faces, templates):
    images, marks = aligned_faces["images"][:4], aligned_faces["landmarks"][:4]
    lm2 = lm2_layout(LandmarkStats.from_landmarks(aligned_faces["landmarks"]), 128, 96)
    probes = table1_probes(SimpleNamespace(images=images, landmarks=marks), {"LM2": lm2}, templates, seed=5)
    assert list(probes) == ["clean", *lm2.region_names, "face_mask", "sunglasses"]
    np.testing.assert_array_equal(probes["clean"][0], images)
    assert not probes["clean"][1].any()
    for band in lm2.regions:
        np.testing.assert_array_equal(probes[band.name][1][0], white_band(images[0], band)[1])
    # face i is drawn from seed [seed, i], so every stage draws the same probes
    np.testing.assert_array_equal(probes["sunglasses"][0][1],
                                  sunglasses(images[1], marks[1], np.random.default_rng([5, 1]))[0])
    np.testing.assert_array_equal(probes["face_mask"][0][2],
                                  face_mask(images[2], marks[2], templates, np.random.default_rng([5, 2]))[0])


def test_clean_leaves_the_face_as_it_is(aligned_faces):
    image = aligned_faces["images"][0]
    occluded, mask = clean(image, aligned_faces["landmarks"][0], np.random.default_rng(0))
    np.testing.assert_array_equal(occluded, image)
    assert mask.shape == image.shape[:2] and not mask.any()
