"""LFW discovery and the per-identity split."""
from collections import Counter

import pytest

from keras_landmask.data.lfw import discover_people, split_people
from keras_landmask.errors import LandmaskError


def test_discovers_the_158_people(lfw_root):
    people = discover_people(lfw_root, min_images=10)
    assert len(people) == 158
    assert sum(len(files) for files in people.values()) == 4324
    assert list(people) == sorted(people)


def test_split_is_stratified_and_deterministic(lfw_root):
    people = discover_people(lfw_root, min_images=10, max_people=12)
    first = split_people(people, seed=5)
    again = split_people(people, seed=5)
    other = split_people(people, seed=6)
    assert first == again
    assert first != other
    per_person = {}
    for s in first:
        per_person.setdefault(s.person, Counter())[s.split] += 1
    for person, counts in per_person.items():
        n = sum(counts.values())
        assert counts["val"] >= 1 and counts["test"] >= 1, person
        assert abs(counts["train"] / n - 0.70) < 0.11, person
    assert len({s.path for s in first}) == len(first)


def test_split_of_a_person_does_not_depend_on_who_else_is_in(lfw_root):
    few = split_people(discover_people(lfw_root, max_people=3))
    many = split_people(discover_people(lfw_root, max_people=20))
    few_splits = {s.path: s.split for s in few}
    assert all(few_splits[s.path] == s.split for s in many if s.path in few_splits)


def test_max_images_per_person_caps_each_person(lfw_root):
    samples = split_people(discover_people(lfw_root, max_people=3), max_images_per_person=10)
    assert set(Counter(s.person for s in samples).values()) == {10}


@pytest.mark.parametrize(
    "kwargs, message",
    [({"min_images": 10**6}, "have >= 1000000 images"), ({"max_people": 500}, "500 were asked for")],
)
def test_too_few_people_is_a_clear_error(lfw_root, kwargs, message):
    with pytest.raises(LandmaskError, match=message):
        discover_people(lfw_root, **kwargs)


def test_missing_and_empty_folders_are_clear_errors(tmp_path):
    with pytest.raises(LandmaskError, match="does not exist"):
        discover_people(tmp_path / "nope")
    (tmp_path / "Someone").mkdir()
    with pytest.raises(LandmaskError, match="no person folders with images"):
        discover_people(tmp_path)
