"""Config: profiles, YAML overrides, --set assignments and their errors."""
import pytest

from keras_landmask.config import load_config
from keras_landmask.errors import LandmaskError


def test_profiles_differ_where_they_should():
    smoke, fast = load_config("smoke"), load_config("fast")
    assert smoke.data.max_people > 0 and fast.data.max_people == 0
    assert load_config("paper").data.alignment == "box"


def test_yaml_then_set_override_in_order(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  seed: 9\n  alignment: similarity\n")
    config = load_config("fast", path, ["data.seed=11"])
    assert config.data.seed == 11 and config.data.alignment == "similarity"


def test_a_stage_key_changes_only_with_its_own_sections():
    from keras_landmask.stages.graph import STAGES, stage_key

    by_name = {stage.name: stage for stage in STAGES}
    a, b = load_config("fast"), load_config("fast", assignments=["segmenter.epochs=9"])
    assert stage_key(by_name["base"], a, "files", {}) == stage_key(by_name["base"], b, "files", {})
    assert stage_key(by_name["segmenter"], a, "files", {}) != stage_key(by_name["segmenter"], b, "files", {})


def test_fdm_layouts_follow_the_grid_settings_and_unknown_names_are_refused():
    assert load_config("fast").fdm_layouts == ["LM1", "LM2", "grid3x3"]
    five = load_config("fast", assignments=["layout.grid_rows=5", "layout.grid_cols=5"])
    assert five.fdm_layouts == ["LM1", "LM2", "grid5x5"]
    with pytest.raises(LandmaskError, match="unknown layout.*grid3x3.*grid5x5"):
        load_config("fast", assignments=["layout.grid_rows=5", "layout.grid_cols=5", "pdsn.layouts=LM2,grid3x3"])
    assert five.dictionary.percentile("grid") == 25.0
    with pytest.raises(LandmaskError, match="no dictionary percentile"):
        five.dictionary.percentile("hexagons")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"profile": "huge"}, "unknown profile 'huge'"),
        ({"assignments": ["data.nope=1"]}, "unknown config key 'data.nope'"),
        ({"assignments": ["data.seed=abc"]}, "wants an integer"),
        ({"assignments": ["data.alignment=warp"]}, "must be 'box' or 'similarity'"),
        ({"assignments": ["seed"]}, "KEY=VALUE"),
        ({"yaml_path": "/no/such.yaml"}, "not found"),
    ],
)
def test_bad_config_is_a_clear_error(kwargs, message):
    with pytest.raises(LandmaskError, match=message):
        load_config(**kwargs)


def test_a_config_file_that_is_not_yaml_is_a_one_line_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("data: {seed: 3\nlayout: [")
    with pytest.raises(LandmaskError, match="bad.yaml is not valid YAML at line"):
        load_config("fast", path)
