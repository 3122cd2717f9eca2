"""Which training cases get a noisy label: a seeded draw of an exact number of cases."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def n_noisy_cases(n_cases: int, ratio: float) -> int:
    """``round(ratio * n_cases)`` with halves rounded up (0.5 * 5 -> 3), not Python's half-to-even.

    A tolerance of 1e-9 absorbs float error, so 0.29 * 50 = 14.4999... still counts as 14.5 -> 15.
    """
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"ratio: expected a share of cases in [0, 1], got {ratio!r}")
    return min(n_cases, math.floor(ratio * n_cases + 0.5 + 1e-9))


def select_noisy_cases(
    case_ids: Sequence[str], ratio: float, rng: np.random.Generator, protected: Sequence[str] = ()
) -> list[str]:
    """Exactly ``n_noisy_cases(len(case_ids), ratio)`` case ids, drawn without replacement.

    The ids are sorted before the draw, so the selection depends on the set of ids and the generator
    state, not on the order the ids were listed in. The result is sorted too. ``protected`` ids
    (trusted cases) are never drawn; the count is still a share of all ``case_ids``, and without
    protected ids the draw is the one svldrl always made.
    """
    ids = list(case_ids)
    if len(set(ids)) != len(ids):
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"case_ids: duplicate ids {duplicates}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng: expected a numpy Generator (np.random.default_rng(seed)), got {type(rng).__name__}")
    n = n_noisy_cases(len(ids), ratio)
    keep = set(protected)
    ordered = sorted(i for i in ids if i not in keep)
    if n > len(ordered):
        raise ValueError(
            f"ratio {ratio:g}: {n} of {len(ids)} cases to corrupt, but {len(keep)} are protected (trusted)"
        )
    chosen = rng.choice(len(ordered), size=n, replace=False)
    return [ordered[i] for i in sorted(chosen)]
