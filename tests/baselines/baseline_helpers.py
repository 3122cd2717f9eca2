"""Small inputs shared by the baselines' tests."""

from __future__ import annotations

import numpy as np
import torch

from svldrl.data import Case, LabelSpec
from svldrl.training import Trainer


def region_cases() -> tuple[list[Case], LabelSpec]:
    """Two 16^3 cases with two image channels and three nested regions (BraTS-like layout)."""
    rng = np.random.default_rng(0)
    label = np.zeros((3, 16, 16, 16), np.uint8)
    label[0, 3:13, 3:13, 3:13], label[1, 5:11, 5:11, 5:11], label[2, 7:9, 7:9, 7:9] = 1, 1, 1
    cases = [Case(rng.random((2, 16, 16, 16), dtype=np.float32), label, (1.0,) * 3, f"c{i}") for i in range(2)]
    return cases, LabelSpec(("wt", "tc", "et"), mode="regions")


def first_batch(trainer: Trainer, epoch: int) -> dict:
    """The trainer's first patch batch of ``epoch`` as float tensors."""
    batch = next(iter(trainer.sampler.epoch(epoch, 1, 2)))
    return {**batch, "image": torch.as_tensor(batch["image"]), "label": torch.as_tensor(batch["label"]).float()}
