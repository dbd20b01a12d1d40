"""The export's accuracy guard: which Table 1 drops (Keras → TFLite) refuse an export, and when too few test
faces leave nothing to judge."""
from export.parity import CLEAN_TOLERANCE, OCCLUDED_TOLERANCE, guard


def comparison(**drops: float) -> dict:
    """``compare``'s result with the given drops (points) as ``occlusion_column=drop``; every other cell 0."""
    rows = {occlusion: {column: {"keras_rank1": 0.9, "tflite_rank1": 0.9, "drop_points": 0.0}
                        for column in ("none", "LM2")} for occlusion in ("clean", "face_mask", "sunglasses")}
    for cell, drop in drops.items():
        occlusion, column = cell.rsplit("_", 1)
        rows[occlusion][column]["drop_points"] = drop
    return {"rows": rows, "max_drop_points": max(drops.values(), default=0.0)}


def test_drops_within_the_tolerance_pass():
    verdict = guard(comparison(clean_none=CLEAN_TOLERANCE, face_mask_LM2=OCCLUDED_TOLERANCE), probes=650)
    assert verdict["checked"] and verdict["passed"] and verdict["over"] == []
    assert verdict["tolerance_points"] == {"clean": 1.0, "occluded": 2.0} and verdict["allowed_points"] is None


def test_a_clean_drop_over_one_point_or_an_occluded_one_over_two_fails():
    clean = guard(comparison(clean_LM2=1.2), probes=650)
    assert clean["checked"] and not clean["passed"] and clean["over"] == ["clean / LM2: 1.20 points"]
    occluded = guard(comparison(sunglasses_none=2.5, face_mask_LM2=1.9), probes=650)
    assert not occluded["passed"] and occluded["over"] == ["sunglasses / none: 2.50 points"]
    assert "over the tolerance: sunglasses / none: 2.50 points" == occluded["note"]


def test_the_user_may_allow_a_larger_drop_on_every_cell():
    verdict = guard(comparison(clean_none=2.5, face_mask_LM2=2.5), probes=650, allowed=3.0)
    assert verdict["passed"] and verdict["tolerance_points"] == {"clean": 3.0, "occluded": 3.0}
    assert not guard(comparison(face_mask_LM2=3.5), probes=650, allowed=3.0)["passed"]
    assert not guard(comparison(sunglasses_none=1.5), probes=650, allowed=1.0)["passed"]


def test_too_few_test_faces_to_see_the_tolerance_are_not_judged():
    verdict = guard(comparison(face_mask_LM2=12.5), probes=8)  # one face of 8 is 12.5 points
    assert not verdict["checked"] and verdict["passed"]
    assert verdict["note"].startswith("not checked: 8 test faces measure rank-1 in steps of 12.5 points")
    assert guard(comparison(clean_none=0.9), probes=99)["checked"] is False  # a step of 1.01 points
    assert guard(comparison(clean_none=0.9), probes=100)["checked"] is True
    allowed = guard(comparison(face_mask_LM2=25.0), probes=8, allowed=20.0)  # a tolerance the steps can see
    assert allowed["checked"] and not allowed["passed"]
