"""split_cases: seeded, deterministic, order-independent, disjoint; Split save/load."""

import json

import pytest

from svldrl.data import Split, split_cases

IDS = [f"case_{i:02d}" for i in range(80)]


def test_sizes_disjoint_sorted_and_complete():
    split = split_cases(IDS, 0.2, 0.1, seed=0)
    assert (len(split.train), len(split.val), len(split.test)) == (56, 16, 8)
    assert set(split.train) | set(split.val) | set(split.test) == set(IDS)
    assert not set(split.train) & set(split.val) and not set(split.val) & set(split.test)
    assert all(list(part) == sorted(part) for part in (split.train, split.val, split.test))


def test_deterministic_and_independent_of_input_order():
    a = split_cases(IDS, 0.2, 0.0, seed=3)
    b = split_cases(list(reversed(IDS)), 0.2, 0.0, seed=3)
    assert a == b
    assert split_cases(IDS, 0.2, 0.0, seed=4).val != a.val


def test_small_sets_keep_a_requested_part():
    split = split_cases(["a", "b", "c"], 0.1, 0.0, seed=0)
    assert len(split.val) == 1 and len(split.train) == 2 and split.test == ()


def test_save_load_round_trip(tmp_path):
    split = split_cases(IDS, 0.25, 0.05, seed=1)
    path = split.save(tmp_path / "split.json")
    assert json.loads(path.read_text()) == split.to_dict()
    assert Split.load(path) == split


def test_errors():
    with pytest.raises(ValueError, match="duplicates"):
        split_cases(["a", "a", "b"], 0.2)
    with pytest.raises(ValueError, match="val_fraction must be in"):
        split_cases(IDS, 1.0)
    with pytest.raises(ValueError, match="none for training"):
        split_cases(["a", "b"], 0.5, 0.5)
    with pytest.raises(ValueError, match="seed must be >= 0"):
        split_cases(IDS, 0.2, seed=-1)
    with pytest.raises(ValueError, match="'x' is in both 'train' and 'val'"):
        Split(("x",), ("x",))


def test_load_names_the_file(tmp_path):
    bad = tmp_path / "split.json"
    bad.write_text('{"train": ["a"]}')
    with pytest.raises(ValueError, match="split.json: expected a mapping with 'train', 'val'"):
        Split.load(bad)
