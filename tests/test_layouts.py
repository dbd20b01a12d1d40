"""Region layouts: inside the crop, LM2 bands tile the height, grid tiles the crop, coverage counts."""
import numpy as np
import pytest

from keras_landmask.config import LayoutConfig
from keras_landmask.core.layouts import (
    LandmarkStats,
    Layout,
    Region,
    build_layouts,
    coverage,
    grid_layout,
    lm1_layout,
)


@pytest.fixture(scope="module")
def layouts(raw_faces):
    from keras_landmask.core.align import crop_box

    marks = np.stack([crop_box(image, det)[1] for image, det in zip(*raw_faces)])
    return build_layouts(LandmarkStats.from_landmarks(marks), 128, 96, LayoutConfig()), marks


def test_every_region_lies_inside_the_crop(layouts):
    for layout in layouts[0].values():
        for r in layout.regions:
            assert 0 <= r.x0 < r.x1 <= 96 and 0 <= r.y0 < r.y1 <= 128, (layout.name, r)


def test_lm2_bands_are_contiguous_full_width_and_span_the_height(layouts):
    bands = layouts[0]["LM2"].regions
    assert [b.name for b in bands] == ["forehead", "eyes", "nose", "mouth", "chin"]
    assert bands[0].y0 == 0 and bands[-1].y1 == 128
    for upper, lower in zip(bands, bands[1:]):
        assert upper.y1 == lower.y0
    assert all(b.x0 == 0 and b.x1 == 96 for b in bands)


def test_grid_tiles_the_crop_exactly_once():
    grid = grid_layout(128, 96, 3, 3)
    assert grid.name == "grid3x3" and len(grid.regions) == 9
    total = sum(r.pixel_mask(128, 96).astype(int) for r in grid.regions)
    assert np.all(total == 1)


def test_lm1_boxes_are_four_sigma_around_the_mean():
    stats = LandmarkStats(
        mean=np.array([[30, 60], [66, 60], [48, 80], [34, 100], [62, 100]], np.float32),
        std=np.array([[2, 1], [2, 1], [3, 2], [1, 1], [1, 1]], np.float32),
        eye_y=(60.0, 1.0),
        mouth_y=(100.0, 1.0),
    )
    lm1 = {r.name: r for r in lm1_layout(stats, 128, 96).regions}
    assert set(lm1) == {"left_eye", "right_eye", "nose", "mouth"}
    nose = lm1["nose"]
    assert (nose.x0, nose.x1, nose.y0, nose.y1) == (42, 54, 76, 84)
    assert lm1["mouth"].x0 == pytest.approx(46) and lm1["mouth"].y1 == pytest.approx(102)


def test_coverage_is_high_on_real_faces_and_counts_misses(layouts):
    built, marks = layouts
    lm2 = coverage(built["LM2"], marks)
    assert set(lm2) == {"eyes", "nose", "mouth", "all"}
    assert lm2["all"] <= min(lm2["eyes"], lm2["nose"], lm2["mouth"])
    assert lm2["nose"] > 0.8
    shifted = marks + np.array([0, 200], np.float32)  # every landmark below the crop
    assert coverage(built["LM1"], shifted)["all"] == 0.0
    assert coverage(built["grid3x3"], marks) == {}


def test_layout_round_trips_through_a_dict():
    layout = Layout("test", 128, 96, (Region("a", 0, 0, 10, 10), Region("b", 10, 0, 96, 128)))
    assert Layout.from_dict(layout.to_dict()) == layout


def test_region_pixel_mask_and_contains():
    region = Region("r", 2.0, 3.0, 5.0, 7.0)
    mask = region.pixel_mask(10, 8)
    assert mask.sum() == 3 * 4 and mask[3, 2] and not mask[7, 2]
    assert region.contains(np.array([[2.0, 3.0], [5.0, 3.0]])).tolist() == [True, False]
