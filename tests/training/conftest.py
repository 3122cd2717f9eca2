"""Tiny configurations and phantoms shared by the training tests (16^3 to 32^3, a few channels)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from svldrl.config import CPU, TrainConfig, merge
from svldrl.data import PHANTOM_LABELS, Case, make_phantoms
from svldrl.training import METHODS, Trainer

TINY = {
    "data": {"patch_size": [16, 16, 16], "samples_per_volume": 1},
    "model": {"channels": [4, 8]},
    "optim": {"epochs": 10, "iters_per_epoch": 1, "batch_size": 2},
    "val_every": 1,
    "num_threads": 1,
}
"""The cpu preset shrunk to 16^3 patches and a two-level (4, 8) U-Net; one thread (the machine is shared,
and two threads fighting other processes for two cores run tiny convolutions 10-30x slower)."""


@pytest.fixture(scope="session")
def tiny_config() -> Callable[..., TrainConfig]:
    """``tiny_config(overrides)``: the tiny configuration with a nested override dict applied."""

    def make(overrides: dict[str, Any] | None = None) -> TrainConfig:
        cfg = merge(CPU, TINY)
        return merge(cfg, overrides) if overrides else cfg

    return make


@pytest.fixture(scope="session")
def phantoms16() -> list[Case]:
    return make_phantoms(2, 16, seed=3)


@pytest.fixture(scope="session")
def make_trainer() -> Callable[..., Trainer]:
    """``make_trainer(cfg, cases, run_dir, val=None)``: the trainer of ``cfg.method``, quiet."""

    def make(cfg: TrainConfig, cases: list[Case], run_dir: Path, val: list[Case] | None = None) -> Trainer:
        return METHODS.get(cfg.method)(cfg, cases, val or [], PHANTOM_LABELS, run_dir, progress=False)

    return make
