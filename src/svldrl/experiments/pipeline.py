"""One training run from a data folder to ``metrics.json``, in the order it happens.

check data -> run folder (new / resume / refuse) -> split -> training labels (clean or noisy,
frozen) -> prepare (resample) -> train -> predict the held-out cases on their original grid ->
score against their original clean labels -> ``metrics.json`` (written last: it marks a finished run).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from svldrl._io import write_json
from svldrl.config import TrainConfig, to_dict
from svldrl.config_checks import check_values
from svldrl.data import (  # noqa: F401  (DataError and open_checked_dataset: re-exported, they lived here)
    Case,
    DataError,
    Dataset,
    LabelSpec,
    Split,
    open_checked_dataset,
    prepare_cases,
    split_cases,
)
from svldrl.experiments.environment import environment_record
from svldrl.experiments.noisy_labels import noisy_labels_file, training_labels
from svldrl.experiments.runs import METRICS_FILE, default_run_dir, fresh_run_folder, plan_run, save_config
from svldrl.experiments.trusted import (
    TRUSTED_FILE,
    check_trusted,
    listed_trusted_ids,
    pin_trusted_cases,
    resolve_trusted,
)
from svldrl.metrics import evaluate_case, summarise
from svldrl.models import parameter_counts
from svldrl.noise import MANIFEST_NAME

SPLIT_FILE = "split.json"
DATA_FILE = "data.json"
NOISY_LABELS_FILE = "noisy_labels.json"
"""Points to the frozen noisy training labels (shared by every run of the same noise)."""


def dataset_record(dataset: Dataset, path: Path) -> dict[str, Any]:
    """What predict needs to read new inputs like the training data (``data.json`` in the run folder)."""
    return {
        "name": dataset.name,
        "path": str(path.resolve()),
        "format": dataset.format,
        "modality": list(dataset.modality),
        "labels": {"names": list(dataset.labels.names), "mode": dataset.labels.mode},
        "n_cases": len(dataset),
    }


def make_split(dataset: Dataset, cfg: TrainConfig) -> Split:
    """The run's split, a pure function of the case ids and the ``data`` keys (checked before any folder exists)."""
    ids = dataset.case_ids if cfg.data.max_cases is None else dataset.case_ids[: cfg.data.max_cases]
    try:
        split = split_cases(ids, cfg.data.val_fraction, cfg.data.test_fraction, cfg.data.split_seed)
    except ValueError as exc:
        raise ValueError(f"data.val_fraction / data.test_fraction: {exc}") from exc
    if not split.train:
        raise ValueError(f"{dataset.name}: no training cases left after the split ({len(ids)} cases)")
    return split


def resolve_split(dataset: Dataset, cfg: TrainConfig, run_dir: Path) -> Split:
    """The run's split: made from the configuration, saved with the run, re-checked on resume."""
    split = make_split(dataset, cfg)
    saved = run_dir / SPLIT_FILE
    if saved.exists() and Split.load(saved) != split:
        raise ValueError(f"{saved}: the saved split differs from the one the configuration makes")
    if not saved.exists():
        split.save(saved)
    return split


def check_run_config(cfg: TrainConfig) -> type:
    """Every option of a run checked before any data is read or folder made; returns the method's Trainer.

    The value domains (``check_values``), the patch against the backbone, the device, and what
    the method itself refuses (``Trainer.check_config``: its options, its RL keys, its schedule).
    """
    from svldrl.models import check_patch_size
    from svldrl.training import METHODS, resolve_device

    trainer_cls = METHODS.get(cfg.method)  # a typo fails here, with the list of methods
    check_values(cfg)
    check_patch_size(cfg.model.backbone, cfg.data.patch_size, cfg.model)
    resolve_device(cfg.device)
    trainer_cls.check_config(cfg)
    return trainer_cls


def held_out_ids(split: Split) -> tuple[str, list[str]]:
    """Cases scored at the end: the test set, or the validation set when there is no test set."""
    return ("test", list(split.test)) if split.test else ("val", list(split.val))


@dataclass
class RunResult:
    run_dir: Path
    metrics: dict[str, Any]


def train_run(
    data: str | Path,
    cfg: TrainConfig,
    *,
    out: Path | None = None,
    runs_root: Path = Path("runs"),
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
) -> RunResult:
    """Train ``cfg.method`` on the data set at ``data`` and score it on held-out clean labels.

    Args:
        stop_after: stop after this many epochs without finishing (budgeted chunks; tests of resume).
    """
    from svldrl.training import distributed, resolve_device
    from svldrl.training.teacher import check_teacher_run_finished
    from svldrl.training.trainer import check_distributed

    data = Path(data)
    cfg = pin_trusted_cases(cfg)  # the ids themselves in config.yaml, not a file that may change
    trainer_cls = check_run_config(cfg)
    check_distributed(trainer_cls, cfg)  # under torchrun: a method or batch that cannot be split fails now
    if cfg.method_options.get("teacher_run"):  # a teacher run must be finished before its student starts
        check_teacher_run_finished(cfg.method_options["teacher_run"])
    dataset = open_checked_dataset(data)
    check_trusted(cfg, make_split(dataset, cfg))  # a bad split or trusted id fails before the folder exists
    run_dir = out if out is not None else default_run_dir(dataset.name, cfg, runs_root)
    with distributed.process_group(str(resolve_device(cfg.device, with_index=False))) as ctx:
        if ctx.is_main:
            trainer, resume = _prepare_run(trainer_cls, data, dataset, cfg, run_dir, runs_root, resume, overwrite,
                                           progress)  # fmt: skip
        else:  # the other ranks of a torchrun run read what rank 0 prepared
            trainer, resume = _join_run(trainer_cls, dataset, cfg, run_dir, runs_root)
        start = time.perf_counter()
        trainer.fit(resume=resume, stop_after=stop_after)
        train_seconds = time.perf_counter() - start
        if trainer.epoch < cfg.optim.epochs:
            return RunResult(run_dir, {"finished": False, "epochs_done": trainer.epoch})
        metrics = _score_run(trainer, dataset, cfg, run_dir, train_seconds) if ctx.is_main else {}
        distributed.barrier()  # every rank leaves once metrics.json is written
        return RunResult(run_dir, metrics)


def _prepare_run(
    trainer_cls: type, data: Path, dataset: Any, cfg: TrainConfig, run_dir: Path, runs_root: Path, resume: bool,
    overwrite: bool, progress: bool,
) -> tuple[Any, bool]:
    """Make (or reopen) the run folder, its split, noisy labels and trusted cases, and build the Trainer.

    Under torchrun this is rank 0's part: it tells the other ranks, before the Trainer's
    DistributedDataParallel joins them, whether the folder is ready (or what failed).
    """
    import torch

    from svldrl.training import distributed, resolve_device

    try:
        plan = plan_run(run_dir, cfg, resume=resume, overwrite=overwrite)
    except BaseException as exc:
        distributed.broadcast_from_main({"error": f"{type(exc).__name__}: {exc}"})
        raise
    with fresh_run_folder(plan):  # a failure in here puts back what the folder held
        try:
            save_config(run_dir, cfg)
            device = str(resolve_device(cfg.device))
            if cfg.num_threads is not None:
                torch.set_num_threads(cfg.num_threads)  # before env.json records the thread count
            write_json(run_dir / "env.json", {**environment_record(device), "data": str(data.resolve()),
                                              "processes": distributed.planned().world_size,
                                              "process_group_backend": distributed.backend()})  # fmt: skip
            write_json(run_dir / DATA_FILE, dataset_record(dataset, data))
            split = resolve_split(dataset, cfg, run_dir)
            protected = listed_trusted_ids(cfg)  # never corrupted
            frozen = resumed_labels(run_dir, split.train) if plan.resume and cfg.noise.kind != "none" else None
            if frozen is not None:  # the labels this run started with, wherever they are cached
                labels_by_id, manifest, labels_file = frozen
            else:
                cache_root = runs_root / dataset.name / "_noise"
                labels_by_id, manifest = training_labels(dataset, split.train, cfg, split, cache_root, protected)
                labels_file = noisy_labels_file(dataset.name, cfg, split, runs_root, protected)
            if manifest is not None:
                manifest.save(run_dir / MANIFEST_NAME)
                write_json(run_dir / NOISY_LABELS_FILE, {"path": str(labels_file.resolve())})
            trusted = record_trusted(run_dir, resolve_trusted(cfg, split, manifest))
        except BaseException as exc:
            distributed.broadcast_from_main({"error": f"{type(exc).__name__}: {exc}"})
            raise
        distributed.broadcast_from_main({"resume": plan.resume})
        trainer = _build_trainer(trainer_cls, dataset, cfg, split, labels_by_id, manifest, trusted, run_dir, progress)
    return trainer, plan.resume


def _join_run(trainer_cls: type, dataset: Any, cfg: TrainConfig, run_dir: Path, runs_root: Path) -> tuple[Any, bool]:
    """A rank other than 0: wait for rank 0's folder, read its split, labels and trusted cases, build the Trainer."""
    import torch

    from svldrl.training import distributed

    message = distributed.broadcast_from_main(None)
    if "error" in message:
        raise RuntimeError(f"rank 0 could not prepare {run_dir}: {message['error']}")
    if cfg.num_threads is not None:
        torch.set_num_threads(cfg.num_threads)
    split = make_split(dataset, cfg)
    if cfg.noise.kind == "none":
        labels_by_id, manifest = {i: dataset.get(i).label for i in split.train}, None
    else:
        recorded = resumed_labels(run_dir, split.train)
        if recorded is None:
            raise RuntimeError(f"{run_dir / NOISY_LABELS_FILE}: rank 0 wrote no noisy labels this rank can read")
        labels_by_id, manifest, _ = recorded
    trusted = resolve_trusted(cfg, split, manifest)
    trainer = _build_trainer(trainer_cls, dataset, cfg, split, labels_by_id, manifest, trusted, run_dir, False)
    return trainer, bool(message["resume"])


def _build_trainer(
    trainer_cls: type, dataset: Any, cfg: TrainConfig, split: Any, labels_by_id: dict, manifest: Any,
    trusted: Sequence[str], run_dir: Path, progress: bool,
) -> Any:
    train_cases = prepare_cases([dataset.get(i).with_label(labels_by_id[i]) for i in split.train], cfg.data)
    val_cases = prepare_cases([dataset.get(i) for i in split.val], cfg.data)
    return trainer_cls(
        cfg, train_cases, val_cases, dataset.labels, run_dir, progress=progress, noise_manifest=manifest,
        trusted_ids=trusted,
    )  # fmt: skip


def _score_run(trainer: Any, dataset: Any, cfg: TrainConfig, run_dir: Path, train_seconds: float) -> dict[str, Any]:
    """Score the trained model on the held-out cases and write ``metrics.json``."""
    split = make_split(dataset, cfg)
    part, ids = held_out_ids(split)
    net = trainer.eval_model()
    scores = score_cases(net, dataset, ids, dataset.labels, cfg)
    metrics = {
        "method": cfg.method,
        "dataset": dataset.name,
        "evaluated_on": part,
        "n_cases": len(ids),
        "epochs": trainer.epoch,
        "train_seconds_this_session": round(train_seconds, 1),
        **epoch_cost(run_dir),
        "parameters": parameter_counts(net, refine=cfg.rl.refine_steps > 0),
        "config": to_dict(cfg),
        "trusted_cases": sorted(trainer.trusted_ids),
        **scores,
    }
    write_json(run_dir / METRICS_FILE, metrics)
    return metrics


def resumed_labels(run_dir: Path, train_ids: Sequence[str]) -> tuple[dict, Any, Path] | None:
    """The noisy labels an interrupted run recorded in ``noisy_labels.json``, with their file, if still there."""
    import json

    from svldrl.experiments.noisy_labels import recorded_labels

    record = run_dir / NOISY_LABELS_FILE
    if not record.is_file():
        return None
    labels_file = Path(json.loads(record.read_text())["path"])
    found = recorded_labels(labels_file, train_ids)
    return None if found is None else (*found, labels_file)


def record_trusted(run_dir: Path, trusted: list[str]) -> list[str]:
    """Write ``trusted.json`` (the resolved list); on resume it must name the same cases."""
    import json

    path = run_dir / TRUSTED_FILE
    if path.is_file() and json.loads(path.read_text()).get("cases") != trusted:
        raise ValueError(f"{path}: the run was trained with other trusted cases than the configuration gives now")
    write_json(path, {"cases": trusted, "n": len(trusted)})
    return trusted


# A training epoch this many times the run's median training epoch was not training: the process was
# stopped (SIGSTOP while another job had the cores; a suspended laptop). Session 36 left one epoch of
# about 1,510 s in runs whose other epochs averaged 26.7 s, which raised their mean to 36 s
# (docs/results.md, Session 37).
PAUSED_EPOCH_FACTOR = 10.0


def epoch_cost(run_dir: Path) -> dict[str, Any]:
    """``seconds_per_epoch``: the mean wall time of an epoch over the whole run (all sessions), from
    ``log.csv``, without the paused epochs, whose number is ``paused_epochs_left_out_of_cost``.
    Epochs that validated are always kept: their time is real work, however long validation takes."""
    from svldrl.training import read_log

    rows = [r for r in read_log(run_dir) if r.get("epoch_time")]
    paused = set(paused_epochs(rows))
    times = [float(r["epoch_time"]) for i, r in enumerate(rows) if i not in paused]
    return {
        "seconds_per_epoch": round(sum(times) / len(times), 3) if times else None,
        "paused_epochs_left_out_of_cost": len(paused),
    }


def paused_epochs(rows: Sequence[dict[str, str]]) -> list[int]:
    """Positions in ``rows`` (``log.csv`` rows with an ``epoch_time``) of training-only epochs that took
    more than ``PAUSED_EPOCH_FACTOR`` times the median training-only epoch: a pause, not a cost."""
    import statistics

    training_only = [i for i, r in enumerate(rows) if not r.get("val_dice")]
    if not training_only:
        return []
    median = statistics.median(float(rows[i]["epoch_time"]) for i in training_only)
    return [i for i in training_only if float(rows[i]["epoch_time"]) > PAUSED_EPOCH_FACTOR * median]


def score_cases(
    net: Any, dataset: Dataset, ids: Sequence[str], labels: LabelSpec, cfg: TrainConfig, refine_steps: int | None = None
) -> dict[str, Any]:
    """Predict each case on its original grid and score it against its original (clean) label."""
    from svldrl.inference import predict_case

    rows = []
    per_case = {}
    for case_id in ids:
        original = dataset.get(case_id)
        prepared = prepare_cases([original], cfg.data)[0]
        pred = predict_case(net, prepared, labels, cfg, refine_steps=refine_steps)
        row = score_prediction(pred, original, labels)
        rows.append(row)
        per_case[case_id] = row
    return {"summary": summarise(rows).to_dict(), "per_case": per_case}


def score_prediction(pred: np.ndarray, reference: Case, labels: LabelSpec) -> dict[str, Any]:
    """The four metrics per foreground class and their mean (evaluate_case), in mm on the reference grid."""
    if reference.label is None:
        raise ValueError(f"case {reference.case_id!r}: no reference label to score against")
    return evaluate_case(
        labels.foreground_masks(pred),
        labels.foreground_masks(reference.label),
        reference.spacing,
        labels.foreground_names,
    )
