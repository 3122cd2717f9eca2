"""Trusted cases: the few training cases an expert has checked (issue 14).

A group that trains on noisy labels usually has some (MTCL's LA protocol keeps 8 of 80 clean;
meta-learning methods need such a set). They come as a list (``data.trusted_cases``: ids, or
``@file.txt`` with one id per line) or, in simulations, as a count (``data.trusted_count``: that
many training cases drawn with the run seed among those the noise leaves clean, so every method
of a grid gets the same ones). Listed cases are never corrupted by the simulated noise.

Everything is checked against the split before any work: an unknown id, a held-out id, or a noise
ratio that cannot be met without corrupting a trusted case is a one-line error.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from svldrl.config import TrainConfig
from svldrl.data import Split
from svldrl.noise import NoiseManifest, n_noisy_cases

TRUSTED_FILE = "trusted.json"
"""The run folder's record of its trusted cases (the resolved list, not only the count)."""
_TRUSTED_STREAM = 14
"""Seeds the draw of ``trusted_count`` cases: ``default_rng([seed, 14])``, apart from every other stream."""


def listed_trusted_ids(cfg: TrainConfig, base: Path | None = None) -> list[str]:
    """``data.trusted_cases`` with ``@file`` entries read (one id per line, ``#`` comments), in order, once each.

    A relative ``@file`` is found from ``base`` (an experiment file's folder), else the working folder.
    """
    ids: list[str] = []
    for entry in cfg.data.trusted_cases:
        entry = str(entry).strip()
        if entry.startswith("@"):
            path = Path(entry[1:])
            if base is not None and not path.is_absolute():
                path = base / path
            if not path.is_file():
                raise FileNotFoundError(f"{path}: data.trusted_cases file not found")
            lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
            ids.extend(line for line in lines if line)
        elif entry:
            ids.append(entry)
    return list(dict.fromkeys(ids))


def pin_trusted_cases(cfg: TrainConfig, base: Path | None = None) -> TrainConfig:
    """``cfg`` with ``data.trusted_cases`` as the sorted ids themselves (``@file`` entries read).

    Why: the run's ``config.yaml`` then names the cases, so a file edited later, or a path read from
    another folder, cannot make a finished run look like it was trained with the new list.
    """
    if not cfg.data.trusted_cases:
        return cfg
    return replace(cfg, data=replace(cfg.data, trusted_cases=tuple(sorted(listed_trusted_ids(cfg, base)))))


def corrupted_count(cfg: TrainConfig, n_train: int) -> int:
    """How many training cases the run's noise corrupts."""
    return 0 if cfg.noise.kind == "none" else n_noisy_cases(n_train, cfg.noise.ratio)


def check_trusted(cfg: TrainConfig, split: Split) -> list[str]:
    """Refuse trusted settings the split and noise cannot honour; returns the listed ids (may be empty)."""
    listed = listed_trusted_ids(cfg)
    train, held_out = set(split.train), set(split.val) | set(split.test)
    for case_id in listed:
        if case_id in held_out:
            part = "validation" if case_id in split.val else "test"
            raise ValueError(
                f"data.trusted_cases: {case_id!r} is held out for {part}; trusted cases must be training cases"
            )
        if case_id not in train:
            raise ValueError(f"data.trusted_cases: {case_id!r} is not a case of the data set")
    n_train = len(split.train)
    n_noisy = corrupted_count(cfg, n_train)
    if listed and n_noisy > n_train - len(listed):
        raise ValueError(
            f"noise.ratio {cfg.noise.ratio:g} corrupts {n_noisy} of {n_train} training cases, but only "
            f"{n_train - len(listed)} are not trusted ({len(listed)} trusted)"
        )
    count = cfg.data.trusted_count
    if count and count > n_train - n_noisy:
        raise ValueError(
            f"data.trusted_count {count} exceeds the {n_train - n_noisy} training cases the noise leaves clean "
            f"({n_noisy} of {n_train} corrupted at noise.ratio {cfg.noise.ratio:g})"
        )
    return listed


def resolve_trusted(cfg: TrainConfig, split: Split, manifest: NoiseManifest | None) -> list[str]:
    """The run's trusted cases, sorted: the listed ones, or ``trusted_count`` drawn among the clean ones."""
    listed = check_trusted(cfg, split)
    if listed:
        return sorted(listed)
    count = cfg.data.trusted_count
    if not count:
        return []
    clean = sorted(i for i in split.train if manifest is None or not manifest.case(i).corrupted)
    rng = np.random.default_rng([cfg.seed, _TRUSTED_STREAM])
    return sorted(clean[i] for i in rng.choice(len(clean), size=count, replace=False))
