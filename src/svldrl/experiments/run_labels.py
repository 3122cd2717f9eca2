"""A finished run's training cases with their noisy and clean labels, for after-the-fact label studies.

The scripts of ``experiments/la`` that ask what a method did to the labels (``label_agents_policy.py``,
``teacher_labels.py``, ``credit_auc.py``) all need the same thing: every training case of a run, on
the run's grid, with the label it was trained on, its clean label and its group (corrupted by the
noise, untouched, trusted), from the files the run wrote.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from svldrl.config import DataConfig
from svldrl.data import Dataset, prepare_cases
from svldrl.noise import NoiseManifest


@dataclass(frozen=True)
class TrainingCaseLabels:
    """One training case of a run, prepared as the run prepared it."""

    case_id: str
    group: str
    """"corrupted" (the noise changed its label), "untouched" or "trusted"."""
    image: np.ndarray
    """(C, H, W, D) the prepared image."""
    clean: np.ndarray
    """(H, W, D) bool, the clean foreground."""
    noisy: np.ndarray
    """(H, W, D) bool, the foreground of the label the run trained on."""
    operation: str | None = None
    """The noise manifest's operation on the case ("dilation"/"erosion" under MT, "source-model" under
    SFDA, ...); None when the noise left it alone. Under MT a correction must go opposite ways on
    dilated and eroded cases, so a study that pools them hides which way a method acts."""


def run_trusted_ids(run: Path) -> list[str]:
    """The trusted cases the run recorded (``trusted.json``)."""
    return list(json.loads((run / "trusted.json").read_text())["cases"])


def training_case_labels(
    run: Path, dataset: Dataset, data_cfg: DataConfig, groups: tuple[str, ...] = ("corrupted", "untouched", "trusted")
) -> Iterator[TrainingCaseLabels]:
    """The run's training cases of ``groups``, in case-id order, from its noisy labels, manifest and trusted cases."""
    noisy = np.load(json.loads((run / "noisy_labels.json").read_text())["path"])
    manifest = NoiseManifest.load(run / "noise_manifest.json")  # one entry per case, in case-id order
    trusted = set(run_trusted_ids(run))
    for entry in manifest.cases:
        case_id = entry.case_id
        group = "trusted" if case_id in trusted else "corrupted" if entry.corrupted else "untouched"
        if group not in groups:
            continue
        case = dataset.get(case_id)
        clean = prepare_cases([case], data_cfg)[0]
        label = prepare_cases([case.with_label(noisy[case_id])], data_cfg)[0].label > 0
        operation = entry.operation if group == "corrupted" else None
        yield TrainingCaseLabels(case_id, group, clean.image, clean.label > 0, label, operation)
