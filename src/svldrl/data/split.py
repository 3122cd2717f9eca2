"""Seeded train/validation/test split of case ids, saved with every run."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from svldrl.data.files import atomic_path

_PARTS = ("train", "val", "test")


@dataclass(frozen=True)
class Split:
    """Disjoint, sorted tuples of case ids (JSON-serialisable through ``to_dict``)."""

    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        seen: dict[str, str] = {}
        for part in _PARTS:
            for case_id in getattr(self, part):
                if case_id in seen:
                    raise ValueError(f"case {case_id!r} is in both {seen[case_id]!r} and {part!r}")
                seen[case_id] = part

    def to_dict(self) -> dict[str, list[str]]:
        return {part: list(getattr(self, part)) for part in _PARTS}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "split") -> Split:
        """Inverse of ``to_dict``; raises a ``ValueError`` naming ``source`` on a malformed mapping."""
        if not isinstance(data, dict) or "train" not in data or "val" not in data:
            raise ValueError(f"{source}: expected a mapping with 'train', 'val' (and optionally 'test') lists")
        unknown = set(data) - set(_PARTS)
        if unknown:
            raise ValueError(f"{source}: unknown keys {sorted(unknown)}")
        try:
            return cls(*(tuple(str(c) for c in data.get(part, [])) for part in _PARTS))
        except ValueError as exc:
            raise ValueError(f"{source}: {exc}") from exc

    def save(self, path: str | Path) -> Path:
        """Write as JSON (atomically)."""
        path = Path(path)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Split:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: cannot read split ({exc})") from exc
        return cls.from_dict(data, source=str(path))


def _count(n: int, fraction: float, name: str) -> int:
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {fraction}")
    count = int(round(n * fraction))
    return max(count, 1) if fraction > 0 and n > 1 else count  # a requested part is never empty


def split_cases(case_ids: Sequence[str], val_fraction: float, test_fraction: float = 0.0, seed: int = 0) -> Split:
    """Shuffle the sorted ids with ``seed`` and cut off validation, then test, cases.

    The result depends only on the set of ids and the arguments (not on the input order).

    Raises:
        ValueError: on duplicate ids, a negative seed, fractions outside [0, 1), or no case left for training.
    """
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    ids = sorted(str(c) for c in case_ids)
    if len(set(ids)) != len(ids):
        raise ValueError("case_ids holds duplicates")
    n_val = _count(len(ids), val_fraction, "val_fraction")
    n_test = _count(len(ids), test_fraction, "test_fraction")
    if n_val + n_test >= len(ids):
        raise ValueError(f"{len(ids)} cases leave none for training with {n_val} validation and {n_test} test cases")
    order = np.random.default_rng(seed).permutation(len(ids))
    shuffled = [ids[i] for i in order]
    val = tuple(sorted(shuffled[:n_val]))
    test = tuple(sorted(shuffled[n_val : n_val + n_test]))
    train = tuple(sorted(shuffled[n_val + n_test :]))
    return Split(train, val, test)
