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


def test_digest_changes_only_with_its_sections():
    a, b = load_config("fast"), load_config("fast", assignments=["layout.lm1_sigmas=3"])
    assert a.section_digest("data") == b.section_digest("data")
    assert a.section_digest("layout") != b.section_digest("layout")


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
