"""The training labels of a run: clean, or corrupted once and frozen for every method compared.

SFDA noise is expensive (a source model is trained), and every method of a comparison must see
the same noisy labels (method.md "SFDA noise": freeze them). So noisy labels are made once per
(data set, split, noise kind, ratio, seed) and cached under ``<runs root>/<dataset>/_noise/``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from svldrl._io import atomic_path
from svldrl.config import TrainConfig, to_dict
from svldrl.data import Case, Dataset, LabelSpec, Split, prepare_cases
from svldrl.noise import MANIFEST_NAME, NoiseManifest, Predictor, SourceTrainer, corrupt_labels

LABELS_FILE = "labels.npz"
SOURCE_LOSS = "dice"
"""The SFDA source model's loss, fixed so that the noisy labels do not depend on the method's ``optim.loss``."""


TRUSTED_KEYS = ("trusted_cases", "trusted_count", "trusted_per_batch")


def source_epochs(cfg: TrainConfig) -> int:
    """The SFDA source model's epochs: ``noise.sfda_epochs``, else ``sfda_budget`` of the run's epochs.

    A fixed count keeps the noise as wrong at a long protocol as at a short one (a fifth of 160
    epochs makes a better source model, so milder noise, than a fifth of 40: issue 14).
    """
    if cfg.noise.sfda_epochs is not None:
        return cfg.noise.sfda_epochs
    return max(1, round(cfg.optim.epochs * cfg.noise.sfda_budget))


def noise_key(cfg: TrainConfig, split: Split, protected: Sequence[str] = ()) -> str:
    """A folder name that changes whenever the noisy labels would."""
    noise = cfg.noise
    payload: dict = {"split": split.to_dict(), "kind": noise.kind, "ratio": noise.ratio, "seed": noise.seed}
    if protected:  # trusted cases change which cases are drawn
        payload["protected"] = sorted(protected)
    if noise.kind == "sfda":  # the source model depends on how it is trained (never on the method's loss)
        source = {k: v for k, v in to_dict(cfg).items() if k in ("data", "model", "optim")}
        source["optim"].pop("loss", None)
        source["optim"]["epochs"] = source_epochs(cfg)
        for key in TRUSTED_KEYS:  # who is trusted does not change how the source model trains
            source["data"].pop(key, None)
        payload["source"] = source
    digest = hashlib.sha1(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:8]
    return f"{noise.kind}-{noise.ratio:g}-seed{noise.seed}-{digest}"


def noisy_labels_file(
    dataset_name: str, cfg: TrainConfig, split: Split, runs_root: Path, protected: Sequence[str] = ()
) -> Path | None:
    """Where the frozen noisy labels of a run are kept (None for clean runs)."""
    if cfg.noise.kind == "none":
        return None
    return runs_root / dataset_name / "_noise" / noise_key(cfg, split, protected) / LABELS_FILE


def training_labels(
    dataset: Dataset,
    train_ids: Sequence[str],
    cfg: TrainConfig,
    split: Split,
    cache_root: Path,
    protected: Sequence[str] = (),
) -> tuple[dict[str, np.ndarray], NoiseManifest | None]:
    """Training labels on the original grid by case id, and the noise manifest (None for clean runs).

    ``protected``: the listed trusted cases, never corrupted.
    """
    if cfg.noise.kind == "none":
        return {i: dataset.get(i).label for i in train_ids}, None
    from filelock import FileLock

    cache = cache_root / noise_key(cfg, split, protected)
    cache_root.mkdir(parents=True, exist_ok=True)
    # One process makes the labels (SFDA trains a source model), the others of a parallel grid wait and read them.
    with FileLock(str(cache_root / f".{cache.name}.lock")):
        return _cached_or_new_labels(dataset, train_ids, cfg, split, cache, protected)


def _cached_or_new_labels(
    dataset: Dataset, train_ids: Sequence[str], cfg: TrainConfig, split: Split, cache: Path, protected: Sequence[str]
) -> tuple[dict[str, np.ndarray], NoiseManifest]:
    if (cache / MANIFEST_NAME).exists() and (cache / LABELS_FILE).exists():
        with np.load(cache / LABELS_FILE) as npz:
            labels = {i: npz[i] for i in train_ids}
        return labels, NoiseManifest.load(cache / MANIFEST_NAME)
    cases = [dataset.get(i) for i in train_ids]
    options: dict = {"protected": list(protected)} if protected else {}
    if cfg.noise.kind == "sfda":
        options.update(sfda_options(cfg, cache, dataset.labels))
    labels, manifest = corrupt_labels(cases, cfg.noise.kind, cfg.noise.ratio, cfg.noise.seed, **options)
    manifest = replace(manifest, options={**manifest.options, "split": split.to_dict()})
    cache.mkdir(parents=True, exist_ok=True)
    with atomic_path(cache / LABELS_FILE) as tmp:
        np.savez_compressed(tmp, **labels)
    manifest.save(cache / MANIFEST_NAME)  # written last: its presence marks a complete cache
    return labels, manifest


def recorded_labels(
    labels_file: Path, train_ids: Sequence[str]
) -> tuple[dict[str, np.ndarray], NoiseManifest] | None:
    """The frozen noisy labels a run recorded (``noisy_labels.json``), if they are still there.

    Why: a resumed run must keep training on the labels it started with, even if svldrl has since
    changed how the cache folder is named (the SFDA key gained the source budget in issue 14).
    """
    cache = labels_file.parent
    if not (labels_file.is_file() and (cache / MANIFEST_NAME).is_file()):
        return None
    with np.load(labels_file) as npz:
        if not set(train_ids) <= set(npz.files):
            return None
        labels = {i: npz[i] for i in train_ids}
    return labels, NoiseManifest.load(cache / MANIFEST_NAME)


def sfda_options(cfg: TrainConfig, cache: Path, labels: LabelSpec) -> dict:
    """``train_source`` and ``domain_shift`` for ``sfda_noise`` (method.md "SFDA noise")."""
    from svldrl.noise import DomainShift

    noise = cfg.noise
    shift = None
    if noise.sfda_gamma is not None or noise.sfda_shift is not None:
        shift = DomainShift(gamma=noise.sfda_gamma or 1.0, shift=noise.sfda_shift or 0.0)
    return {
        "train_source": make_source_trainer(cfg, labels, cache / "source_model", source_epochs(cfg)),
        "domain_shift": shift,
    }


def make_source_trainer(cfg: TrainConfig, labels: LabelSpec, run_dir: Path, epochs: int) -> SourceTrainer:
    """A ``SourceTrainer``: trains the baseline on the source cases for ``epochs`` epochs.

    The source model sees clean labels only (the source domain); its thresholded predictions on the
    target cases become their labels.
    """
    from svldrl.data import split_cases
    from svldrl.inference import predict_case
    from svldrl.training import Trainer

    source_data = replace(cfg.data, trusted_cases=(), trusted_count=None, trusted_per_batch=0)
    source_cfg = replace(
        cfg,
        method="baseline",
        data=source_data,
        noise=replace(cfg.noise, kind="none"),
        # the paper's Dice loss whatever the run's loss: methods compared on one noise draw
        # must see the same noisy labels (optim.loss=dice_ce once changed them, docs/results.md)
        optim=replace(cfg.optim, epochs=epochs, loss=SOURCE_LOSS),
        val_every=max(1, epochs),
    )

    def train_source(cases: list[Case]) -> Predictor:
        ids = [c.case_id for c in cases]
        inner = split_cases(ids, 0.2 if len(ids) >= 5 else 0.0, 0.0, cfg.data.split_seed)
        by_id = {c.case_id: c for c in prepare_cases(cases, cfg.data)}
        train = [by_id[i] for i in inner.train]
        val = [by_id[i] for i in inner.val]
        trainer = Trainer(source_cfg, train, val, labels, run_dir, progress=False)
        trainer.fit()
        net = trainer.eval_model()

        def predict(case: Case) -> np.ndarray:
            prepared = prepare_cases([case], cfg.data)[0]
            return predict_case(net, prepared, labels, source_cfg, refine_steps=0)

        return predict

    train_source.record = {  # type: ignore[attr-defined]  (the manifest's account of the source model)
        "method": "baseline",
        "epochs": epochs,
        "iters_per_epoch": cfg.optim.iters_per_epoch,
        "loss": SOURCE_LOSS,
        "sampler": cfg.data.sampler,
    }
    return train_source
