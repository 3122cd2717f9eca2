"""select_noisy_cases: exact counts (round half up), seeding, order independence, errors."""

import numpy as np
import pytest

from svldrl.noise import n_noisy_cases, select_noisy_cases

IDS = [f"case_{i:03d}" for i in range(20)]


@pytest.mark.parametrize(
    ("n", "ratio", "expected"),
    [(20, 0.5, 10), (5, 0.5, 3), (5, 0.3, 2), (7, 0.5, 4), (50, 0.29, 15), (10, 0.25, 3), (80, 0.0, 0), (3, 1.0, 3)],
)
def test_count_is_ratio_times_n_rounded_half_up(n: int, ratio: float, expected: int) -> None:
    assert n_noisy_cases(n, ratio) == expected
    ids = [f"c{i}" for i in range(n)]
    chosen = select_noisy_cases(ids, ratio, np.random.default_rng(0))
    assert len(chosen) == expected and len(set(chosen)) == expected and set(chosen) <= set(ids)


def test_same_seed_same_cases_and_seeds_differ() -> None:
    a = select_noisy_cases(IDS, 0.5, np.random.default_rng(1))
    b = select_noisy_cases(IDS, 0.5, np.random.default_rng(1))
    assert a == b == sorted(a)
    others = {tuple(select_noisy_cases(IDS, 0.5, np.random.default_rng(s))) for s in range(2, 8)}
    assert len(others | {tuple(a)}) > 1


def test_selection_does_not_depend_on_the_listing_order() -> None:
    shuffled = list(np.random.default_rng(9).permutation(IDS))
    assert select_noisy_cases(shuffled, 0.4, np.random.default_rng(3)) == select_noisy_cases(
        IDS, 0.4, np.random.default_rng(3)
    )


def test_every_case_is_picked_about_ratio_of_the_time() -> None:
    counts = dict.fromkeys(IDS, 0)
    for seed in range(300):
        for case_id in select_noisy_cases(IDS, 0.5, np.random.default_rng(seed)):
            counts[case_id] += 1
    assert all(100 <= c <= 200 for c in counts.values())  # 150 +- 5.8 standard deviations


def test_bad_arguments_are_rejected() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="ratio"):
        select_noisy_cases(IDS, 1.5, rng)
    with pytest.raises(ValueError, match="duplicate ids"):
        select_noisy_cases(["a", "b", "a"], 0.5, rng)
    with pytest.raises(TypeError, match="Generator"):
        select_noisy_cases(IDS, 0.5, 0)  # type: ignore[arg-type]
