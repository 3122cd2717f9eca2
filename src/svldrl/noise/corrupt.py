"""Corrupting the training labels of a set of cases, the NOISES registry, and noisy data set copies.

Seeding: ``np.random.default_rng(seed)`` draws which cases are corrupted (the same cases for every
noise kind at a given seed and ratio); each corrupted case then draws its own noise from
``case_generator(seed, case_id)``, so one case's noise does not depend on the others.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from svldrl.config import DataConfig
from svldrl.data import Case, Dataset, copy_dataset_with_labels, load_dataset, open_checked_dataset, split_cases
from svldrl.noise.border import SMOOTHNESS, border_noise_with_record
from svldrl.noise.labels import case_generator, case_ids_of, check_label, check_ratio_seed, each_case, label_dice
from svldrl.noise.manifest import MANIFEST_NAME, CaseNoise, NoiseManifest, clean_entry, sorted_entries
from svldrl.noise.morphological import K_RANGE, MAX_DRAWS, morphological_noise_with_record
from svldrl.noise.selection import select_noisy_cases
from svldrl.noise.sfda import sfda_noise
from svldrl.registry import Registry

NoiseFunction = Callable[..., tuple[dict[str, np.ndarray], NoiseManifest]]
"""``(cases, ratio, seed, **kind_options) -> (training label by case id, manifest)``."""


def mt_noise(
    cases: Sequence[Case],
    ratio: float,
    seed: int,
    *,
    k_range: tuple[int, int] = K_RANGE,
    max_draws: int = MAX_DRAWS,
    protected: Sequence[str] = (),
) -> tuple[dict[str, np.ndarray], NoiseManifest]:
    """Morphological noise on a seeded share ``ratio`` of the cases (``morphological_noise_with_record``).

    Returns:
        The training label of every case by id (clean cases keep their label array, not a copy) and
        the manifest with the operation, k and Dice(noisy, clean) of each corrupted case.
    """

    def corrupt(clean: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str, int, dict]:
        noisy, record = morphological_noise_with_record(clean, rng, k_range=k_range, max_draws=max_draws)
        return noisy, record.operation, record.k, {"draws": record.draws, "fallback": record.fallback}

    options: dict = {"k_range": list(k_range), "max_draws": max_draws}
    return _per_case_noise(cases, ratio, seed, "mt", corrupt, options, protected)


def border_noise(
    cases: Sequence[Case],
    ratio: float,
    seed: int,
    *,
    k_range: tuple[int, int] = K_RANGE,
    smoothness: float = SMOOTHNESS,
    sides: str = "both",
    protected: Sequence[str] = (),
) -> tuple[dict[str, np.ndarray], NoiseManifest]:
    """Border noise (``svldrl.noise.border``) on a seeded share ``ratio`` of the cases: the same cases as MT's.

    ``sides="one"`` is its one-sided control, the kind ``border-onesided``: the manifest then names each
    case's operation ``border-outward`` or ``border-inward``.

    Returns:
        The training label of every case by id and the manifest with k, the share of changed voxels
        that were added (``grown_share``) and Dice(noisy, clean) of each corrupted case.
    """

    def corrupt(clean: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str, int, dict]:
        noisy, record = border_noise_with_record(clean, rng, k_range=k_range, smoothness=smoothness, sides=sides)
        operation = "border" if sides == "both" else f"border-{record.direction}"
        return noisy, operation, record.k, {"grown_share": record.grown_share, "halvings": record.halvings}

    kind = "border" if sides == "both" else "border-onesided"
    options: dict = {"k_range": list(k_range), "smoothness": smoothness}
    return _per_case_noise(cases, ratio, seed, kind, corrupt, options, protected)


def _per_case_noise(
    cases: Sequence[Case],
    ratio: float,
    seed: int,
    kind: str,
    corrupt: Callable[[np.ndarray, np.random.Generator], tuple[np.ndarray, str, int, dict]],
    options: dict,
    protected: Sequence[str],
) -> tuple[dict[str, np.ndarray], NoiseManifest]:
    """Labels and manifest of a noise kind that corrupts each selected case on its own, from its own generator."""
    check_ratio_seed(ratio, seed)
    noisy_ids = set(select_noisy_cases(case_ids_of(cases), ratio, np.random.default_rng(seed), protected))
    labels: dict[str, np.ndarray] = {}
    entries: list[CaseNoise] = []
    for case in each_case(cases):
        if case.label is None:
            raise ValueError(f"case {case.case_id!r}: has no label; label noise needs the clean training labels")
        clean = check_label(case.label, f"case {case.case_id!r} label")
        if case.case_id not in noisy_ids:
            labels[case.case_id] = clean
            entries.append(clean_entry(case.case_id))
            continue
        noisy, operation, k, details = corrupt(clean, case_generator(seed, case.case_id))
        labels[case.case_id] = noisy
        entries.append(CaseNoise(case.case_id, True, kind, operation, k, label_dice(noisy, clean), details))
    if protected:
        options = {**options, "protected": sorted(protected)}
    return labels, NoiseManifest(kind, float(ratio), int(seed), sorted_entries(entries), options)


NOISES: Registry[NoiseFunction] = Registry("noise kind")
NOISES.add("mt", mt_noise, aliases=("morphological",))
NOISES.add("sfda", sfda_noise)
NOISES.add("border", border_noise)
NOISES.add("border-onesided", partial(border_noise, sides="one"))


def corrupt_labels(
    cases: Sequence[Case], kind: str, ratio: float, seed: int, **kind_options: Any
) -> tuple[dict[str, np.ndarray], NoiseManifest]:
    """Training labels of ``cases`` with a seeded share ``ratio`` corrupted by the noise ``kind``.

    Args:
        cases: training cases with clean labels (a list, or a lazily loading sequence).
        kind: a name in ``NOISES`` ("mt", "sfda", "border", "border-onesided"); a typo gets the list and
            the nearest name.
        ratio: share of cases corrupted, rounded half up to a whole number of cases.
        seed: seed of the selection and of the noise.
        **kind_options: options of that kind (mt: ``k_range``, ``max_draws``; border kinds: ``k_range``,
            ``smoothness``; sfda: ``train_source``, ``domain_shift``) and of all: ``protected``, the trusted
            cases, never corrupted.
    """
    noise = NOISES.get(kind)
    check_ratio_seed(ratio, seed)
    return noise(cases, ratio, seed, **kind_options)


class _CasesById(Sequence[Case]):
    """The cases of a data set with the given ids, read from disk when indexed and not cached."""

    def __init__(self, dataset: Dataset, ids: Sequence[str]) -> None:
        self.dataset = dataset
        self.case_ids = list(ids)

    def __len__(self) -> int:
        return len(self.case_ids)

    def __getitem__(self, i: int) -> Case:  # type: ignore[override]
        return self.dataset.load(self.case_ids[i])


def write_noisy_dataset(
    data_path: str | Path,
    kind: str,
    ratio: float,
    seed: int,
    out: str | Path,
    *,
    data_cfg: DataConfig | None = None,
    check: bool = True,
    **kind_options: Any,
) -> Path:
    """A copy of the data set at ``data_path`` in ``out``, with noisy training labels and the manifest.

    Only the training cases of the split that ``data_cfg`` defines (``val_fraction``,
    ``test_fraction``, ``split_seed``; the same split a run with that configuration makes) are
    corrupted, so validation and test cases keep clean labels; ``ratio`` is a share of the training
    cases. The manifest lists the training cases and records the split in ``options["split"]``.

    Args:
        data_path: a data set ``svldrl.data.load_dataset`` reads.
        kind, ratio, seed, kind_options: as in ``corrupt_labels``.
        out: new or empty folder for the copy (same format as the source) and ``noise_manifest.json``.
        data_cfg: the data configuration of the runs that will use the copy; None = the defaults.
        check: check every case first (``open_checked_dataset``: held-out cases are copied as they
            are, so a broken one must be refused, not copied); False when the caller just did.

    Returns:
        ``out``.
    """
    data_path, out = Path(data_path), Path(out)
    NOISES.canonical(kind)
    check_ratio_seed(ratio, seed)
    if not data_path.exists():
        raise FileNotFoundError(f"{data_path}: data set not found")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out}: output exists and is not an empty folder")
    cfg = data_cfg or DataConfig()
    dataset = open_checked_dataset(data_path) if check else load_dataset(data_path)
    split = split_cases(dataset.case_ids, cfg.val_fraction, cfg.test_fraction, cfg.split_seed)
    labels_by_id, manifest = corrupt_labels(_CasesById(dataset, split.train), kind, ratio, seed, **kind_options)
    manifest = replace(manifest, options={**manifest.options, "split": split.to_dict()})
    copy_dataset_with_labels(dataset, {i: labels_by_id[i] for i in manifest.corrupted_ids}, out)
    manifest.save(out / MANIFEST_NAME)
    return out
