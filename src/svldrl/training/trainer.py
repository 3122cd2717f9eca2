"""The training engine: epochs, validation, checkpoints, resume, logs. Variants override narrow hooks.

``Trainer`` itself trains the backbone with the Dice loss (``optim.loss``): that is the "baseline" method.
SVL-DRL (``training/svldrl.py``) and the noisy-label baselines are subclasses overriding
``train_step``, ``compute_loss``, ``build_models`` or ``eval_model``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from svldrl._io import remove_stale_temporaries
from svldrl.config import TrainConfig, dump_config, to_dict
from svldrl.data import Case, LabelSpec, PatchSampler
from svldrl.inference import labels_from_probabilities, predict_probabilities
from svldrl.metrics import dice
from svldrl.models import build_network, check_patch_size
from svldrl.noise import NoiseManifest
from svldrl.training import distributed, precision
from svldrl.training.checkpoint import (
    BEST,
    CHECKPOINT_DIR,
    LATEST,
    atomic_torch_save,
    atomic_write_text,
    labels_to_dict,
    load_checkpoint,
)
from svldrl.training.logs import EpochLogger, ScalarMeans
from svldrl.training.losses import SEG_LOSSES, build_seg_loss
from svldrl.training.methods import METHODS, compared_settings
from svldrl.training.seeding import capture_rng_state, resolve_device, restore_rng_state, seed_everything

CONFIG_FILE = "config.yaml"


@METHODS.register("baseline")
class Trainer:
    """Supervised training of the segmentation decoder with the Dice loss (the "baseline" method).

    Args:
        cfg: the resolved configuration.
        train_cases: cases with (possibly noisy) training labels, prepared for the model.
        val_cases: cases with clean labels, validated by sliding window every ``cfg.val_every``
            epochs and after the last; may be empty (then no ``best.pt``).
        labels: what the label channels mean.
        run_dir: the run folder (checkpoints, log.csv, tensorboard, config.yaml).
        progress: show a progress bar over epochs.
        noise_manifest: which training cases were corrupted and how; only "oracle" methods use it.
        trusted_ids: the expert-checked training cases (``data.trusted_cases``/``trusted_count``, resolved
            by the pipeline): the two-stream sampler, ``trusted-only`` and MTCL's clean stream use them.
    """

    TRAIN_SCALARS: tuple[str, ...] = ("loss",)
    """Scalars ``train_step`` returns; with the validation metrics they are the columns of log.csv."""
    DDP_REFUSAL: str | None = None
    """Why this method cannot train one run over several processes (torchrun); None: it can."""

    @classmethod
    def check_config(cls, cfg: TrainConfig) -> None:
        """Refuse settings this method cannot honour; called before any data is read or noise is made."""
        if cfg.optim.loss not in SEG_LOSSES:
            raise ValueError(f"optim.loss must be one of {SEG_LOSSES}, got {cfg.optim.loss!r}")

    def __init__(
        self,
        cfg: TrainConfig,
        train_cases: Sequence[Case],
        val_cases: Sequence[Case],
        labels: LabelSpec,
        run_dir: str | Path,
        *,
        progress: bool = True,
        noise_manifest: NoiseManifest | None = None,
        trusted_ids: Sequence[str] = (),
    ) -> None:
        self.check_config(cfg)
        self.dist = distributed.current()
        """This process's rank in a torchrun run (rank 0 of 1 otherwise); rank 0 alone writes the run folder."""
        check_distributed(type(self), cfg)
        _check_cases(train_cases, val_cases, labels)
        self.noise_manifest = noise_manifest
        """The run's noise manifest (None for clean runs); oracle methods train with it, diagnostics read it."""
        self.corrupted_ids = frozenset(noise_manifest.corrupted_ids) if noise_manifest is not None else None
        """The training cases the noise corrupted (None for clean runs), from the manifest. For diagnostics only:
        log columns that split a mechanism's effect by corrupted vs untouched cases (meta-reweight, SVL-DRL-T)."""
        self.trusted_ids = frozenset(trusted_ids)
        """The trusted training cases (empty when none are given)."""
        train_cases = self.select_training_cases(train_cases)
        check_patch_size(cfg.model.backbone, cfg.data.patch_size, cfg.model)
        if cfg.val_every < 0:
            raise ValueError(f"val_every must be >= 0 (0: no validation while training), got {cfg.val_every}")
        self.cfg = cfg
        self.train_cases = list(train_cases)
        self.val_cases = list(val_cases)
        self.labels = labels
        self.run_dir = Path(run_dir)
        self.progress = progress
        self.in_channels = self.train_cases[0].n_channels
        self.device = distributed.device_for(resolve_device(cfg.device, with_index=False), self.dist)
        if cfg.num_threads is not None:
            torch.set_num_threads(cfg.num_threads)
        seed_everything(cfg.seed)  # the same initial weights on every rank (DDP also broadcasts rank 0's)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(self.dist.rank_seed(cfg.seed))
        self.net = distributed.wrap(self.build_models().to(self.device), self.dist, self.device)
        """The network trained; in DistributedDataParallel under torchrun (``module`` is the network itself)."""
        self.optimizer = self.build_optimizer()
        self.lr_scheduler = self.build_lr_scheduler()
        self.seg_loss = build_seg_loss(labels, cfg.optim.loss)
        self.precision = precision.resolve_precision(cfg.precision, self.device)
        """fp32, bf16 or fp16: the autocast of every training step (``cfg.precision`` resolved on the device)."""
        precision.warn_if_emulated(self.precision, self.device)
        self.scaler = precision.grad_scaler(self.precision, self.device)
        self.rank_batch_size = self.dist.rank_batch(cfg.optim.batch_size)
        """Patches per step on this process: the global ``optim.batch_size`` split over the ranks."""
        self.sampler = PatchSampler(
            self.train_cases, labels, cfg.data, seed=self.dist.rank_seed(cfg.seed), trusted_ids=self.trusted_ids
        )
        self.epoch = 0
        """Epochs completed (the next epoch to run)."""
        self.best_score = -math.inf
        self.last_metrics: dict[str, float] = {}

    # ------------------------------------------------------------------ hooks for variants

    def select_training_cases(self, cases: Sequence[Case]) -> Sequence[Case]:
        """The cases this method trains on (all of them; ``trusted-only`` keeps the trusted ones)."""
        return cases

    @classmethod
    def inference_network(cls, cfg: TrainConfig, in_channels: int, labels: LabelSpec) -> nn.Module:
        """The module this method validates and saves; ``load_trained`` rebuilds it to load a checkpoint."""
        return build_network(cfg.model, in_channels, labels.n_outputs)

    def build_models(self) -> nn.Module:
        """The network(s) to train; variants with a second model (teachers, peers) extend this."""
        return self.inference_network(self.cfg, self.in_channels, self.labels)

    def build_optimizer(self) -> torch.optim.Optimizer:
        """SGD (with momentum) or Adam over all parameters (unused decoders get no gradient, so no update)."""
        optim = self.cfg.optim
        params = [p for p in self.net.parameters() if p.requires_grad]
        if optim.optimizer == "sgd":
            return torch.optim.SGD(params, lr=optim.lr, momentum=optim.momentum, weight_decay=optim.weight_decay)
        if optim.optimizer == "adam":
            return torch.optim.Adam(params, lr=optim.lr, weight_decay=optim.weight_decay)
        raise ValueError(f"optim.optimizer must be 'sgd' or 'adam', got {optim.optimizer!r}")

    def build_lr_scheduler(self) -> torch.optim.lr_scheduler.LRScheduler:
        """Stepped once per epoch: constant, or nnU-Net's poly ``lr0 * (1 - e / E) ** 0.9``."""
        optim = self.cfg.optim
        if optim.lr_schedule == "constant":
            return torch.optim.lr_scheduler.ConstantLR(self.optimizer, factor=1.0, total_iters=0)
        if optim.lr_schedule == "poly":
            return torch.optim.lr_scheduler.PolynomialLR(self.optimizer, total_iters=optim.epochs, power=0.9)
        raise ValueError(f"optim.lr_schedule must be 'constant' or 'poly', got {optim.lr_schedule!r}")

    def compute_loss(self, seg_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Segmentation loss of ``(B, n_outputs, h, w, d)`` logits against the training label (Eq. 1), in float32
        (under bf16/fp16 autocast the logits arrive in half precision; the Dice sums want full)."""
        return self.seg_loss(seg_logits.float(), target)

    def train_step(self, batch: dict[str, Any], epoch: int) -> dict[str, float]:
        """One optimisation step on a batch; returns the scalars to log (keys of ``log_columns``)."""
        image, label = batch["image"], batch["label"]
        self.optimizer.zero_grad(set_to_none=True)
        seg_logits = self.net(image, heads=("seg",)).seg  # (B, n_outputs, h, w, d)
        loss = self.compute_loss(seg_logits, label)
        self.backward_and_step(loss)
        return {"loss": loss.item()}

    def on_epoch_start(self, epoch: int) -> None:
        """Hook before ``epoch``'s first batch is drawn (e.g. a variant that changes its training cases)."""

    def on_epoch_end(self, epoch: int) -> None:
        """Called after each epoch's steps and validation, before the checkpoint (EMA, label updates, ...)."""

    def eval_model(self) -> nn.Module:
        """The module validated and saved for inference (a teacher, for mean-teacher variants)."""
        return self.module

    @property
    def module(self) -> nn.Module:
        """The trained network itself (``net`` without its DistributedDataParallel wrapper)."""
        return distributed.unwrap(self.net)

    def stage_name(self, epoch: int) -> str:
        """What the ``stage`` column of the log says for ``epoch``."""
        return "supervised"

    def log_columns(self) -> list[str]:
        """Stable columns of log.csv after ``epoch`` and ``stage``."""
        val = ["val_dice", *(f"val_dice_{name}" for name in self.labels.foreground_names)]
        return [*self.TRAIN_SCALARS, *val, "lr", "epoch_time"]

    def checkpoint_state(self) -> dict[str, Any]:
        """Everything needed to resume; variants with more state extend it (call super)."""
        state = {
            "model": self.eval_model().state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "lr_scheduler": self.lr_scheduler.state_dict(),
            "epoch": self.epoch,
            "best_score": self.best_score,
            "last_metrics": dict(self.last_metrics),
            "rng": capture_rng_state(self.generator),
            "config": to_dict(self.cfg),
            "labels": labels_to_dict(self.labels),
            "in_channels": self.in_channels,
            "method": self.cfg.method,
        }
        if self.eval_model() is not self.module:  # e.g. a teacher is validated, the student trained
            state["train_model"] = self.module.state_dict()
        if self.scaler is not None:
            state["grad_scaler"] = self.scaler.state_dict()
        return state

    def load_checkpoint_state(self, payload: dict[str, Any]) -> None:
        """Inverse of ``checkpoint_state``."""
        self.module.load_state_dict(payload.get("train_model", payload["model"]))
        if self.scaler is not None and "grad_scaler" in payload:
            self.scaler.load_state_dict(payload["grad_scaler"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.lr_scheduler.load_state_dict(payload["lr_scheduler"])
        self.epoch = int(payload["epoch"])
        self.best_score = float(payload["best_score"])
        self.last_metrics = dict(payload["last_metrics"])
        restore_rng_state(payload["rng"], self.generator)

    # ------------------------------------------------------------------ shared machinery

    def backward_and_step(self, loss: torch.Tensor) -> None:
        """Backward pass (outside autocast; scaled for fp16), optional gradient clipping, optimiser step."""
        with precision.without_autocast(self.device):
            if self.scaler is None:
                loss.backward()
            else:
                self.scaler.scale(loss).backward()
                self.scaler.unscale_(self.optimizer)  # clip the true gradients
            if self.cfg.optim.grad_clip is not None:
                nn.utils.clip_grad_norm_(list(self.clipped_parameters()), self.cfg.optim.grad_clip)
            if self.scaler is None:
                self.optimizer.step()
            else:
                self.scaler.step(self.optimizer)  # skipped when fp16 overflowed
                self.scaler.update()

    def clipped_parameters(self) -> Iterator[nn.Parameter]:
        """The parameters whose gradient norm ``optim.grad_clip`` bounds (a peer network's too, for Co-Teaching)."""
        return self.net.parameters()

    def fit(self, resume: bool = False, stop_after: int | None = None) -> dict[str, float]:
        """Train to ``optim.epochs`` (or until ``stop_after`` epochs are done); returns the last metrics.

        Args:
            resume: continue from ``checkpoints/latest.pt``; the result equals an uninterrupted run.
            stop_after: stop once this many epochs are complete (the schedule still spans
                ``optim.epochs``); used for budgeted chunks and to test resuming.
        """
        if self.dist.is_main:  # rank 0 alone writes here: another rank would delete its temporaries mid-write
            remove_stale_temporaries(self.run_dir)  # a kill during a checkpoint write left its temporary
        if resume:
            payload = load_checkpoint(self.latest_path, map_location=self.device)
            _check_same_config(payload["config"], self.cfg, self.latest_path)
            self.load_checkpoint_state(payload)
        elif self.dist.is_main:
            atomic_write_text(dump_config(self.cfg), self.run_dir / CONFIG_FILE)
        end = self.cfg.optim.epochs if stop_after is None else min(stop_after, self.cfg.optim.epochs)
        logger = (EpochLogger(self.run_dir, self.log_columns(), start_epoch=self.epoch) if self.dist.is_main
                  else _NoLogger())  # fmt: skip
        try:
            for epoch in self._epochs(self.epoch, end):
                self._run_epoch(epoch, logger)
        finally:
            logger.close()
        best = self.best_score if math.isfinite(self.best_score) else math.nan
        return {**self.last_metrics, "best_val_dice": best, "epochs_done": float(self.epoch)}

    @property
    def latest_path(self) -> Path:
        return self.run_dir / CHECKPOINT_DIR / LATEST

    @property
    def best_path(self) -> Path:
        return self.run_dir / CHECKPOINT_DIR / BEST

    def _epochs(self, start: int, end: int) -> Iterator[int]:
        return iter(tqdm(range(start, end), desc="epochs", disable=not self.progress, initial=start,
                         total=self.cfg.optim.epochs))

    def _run_epoch(self, epoch: int, logger: EpochLogger | _NoLogger) -> None:
        start = time.perf_counter()
        if self.dist.enabled:  # a checkpoint holds rank 0's generator: the other ranks reseed per epoch
            self.generator.manual_seed(self.dist.epoch_seed(self.cfg.seed, epoch))
        self.on_epoch_start(epoch)
        row = self._train_epoch(epoch)
        row["lr"] = self.optimizer.param_groups[0]["lr"]
        self.lr_scheduler.step()
        improved = False
        if self.should_validate(epoch) and self.dist.is_main:
            metrics = self.validate()
            row.update(metrics)
            self.last_metrics = metrics
            improved = metrics["val_dice"] > self.best_score
            if improved:
                self.best_score = metrics["val_dice"]
        self.on_epoch_end(epoch)
        row["epoch_time"] = time.perf_counter() - start
        logger.log(epoch, self.stage_name(epoch), row)
        self.epoch = epoch + 1
        if not self.dist.is_main:
            return
        state = self.checkpoint_state()
        atomic_torch_save(state, self.latest_path)
        if improved:
            atomic_torch_save(state, self.best_path)

    def _train_epoch(self, epoch: int) -> dict[str, float]:
        self.net.train()
        means = ScalarMeans()
        for batch in self.sampler.epoch(epoch, self.batches_per_epoch, self.rank_batch_size):
            with precision.autocast(self.precision, self.device):
                means.add(self.train_step(self.batch_to_device(batch), epoch))
        return means.means()

    @property
    def batches_per_epoch(self) -> int:
        """``optim.iters_per_epoch``, else one pass: every case visited ``samples_per_volume`` times."""
        if self.cfg.optim.iters_per_epoch is not None:
            return self.cfg.optim.iters_per_epoch
        patches = len(self.train_cases) * self.cfg.data.samples_per_volume
        return max(1, math.ceil(patches / self.cfg.optim.batch_size))

    def batch_to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        out = dict(batch)
        for key in ("image", "label"):
            out[key] = torch.as_tensor(batch[key], dtype=torch.float32).to(self.device, non_blocking=True)
        return out

    def should_validate(self, epoch: int) -> bool:
        """Every ``val_every`` epochs and after the last one, if there are validation cases and val_every > 0.

        val_every = 0 is for protocols that score the final model on the held-out cases anyway
        (``train``'s metrics.json): validating the same cases again would only double the cost.
        """
        if not self.val_cases or self.cfg.val_every == 0:
            return False
        return (epoch + 1) % self.cfg.val_every == 0 or epoch + 1 == self.cfg.optim.epochs

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Mean Dice per foreground class over the validation cases (clean labels, sliding window)."""
        model = self.eval_model()
        names = self.labels.foreground_names
        scores: dict[str, list[float]] = {name: [] for name in names}
        for case in self.val_cases:
            prob = predict_probabilities(
                model, case.image, self.cfg.data.patch_size, overlap=self.cfg.sw_overlap,
                sw_batch_size=self.cfg.sw_batch_size, device=self.device, mode=self.labels.mode,
            )  # (n_outputs, H, W, D)
            pred = self.labels.foreground_masks(labels_from_probabilities(prob, self.labels))
            ref = self.labels.foreground_masks(case.label)
            for name, p, r in zip(names, pred, ref, strict=True):
                scores[name].append(dice(p, r))
        metrics = {f"val_dice_{name}": float(np.mean(values)) for name, values in scores.items()}
        metrics["val_dice"] = float(np.mean(list(metrics.values())))
        return metrics


class _NoLogger:
    """What ranks other than 0 log to: nothing (rank 0 writes log.csv and TensorBoard)."""

    def log(self, epoch: int, stage: str, row: dict[str, float]) -> None:
        pass

    def close(self) -> None:
        pass


def check_distributed(trainer_cls: type, cfg: TrainConfig) -> None:
    """Refuse, before any work, a method that cannot train under torchrun, or a batch that does not split."""
    ctx = distributed.planned()
    if not ctx.enabled:
        return
    if trainer_cls.DDP_REFUSAL:
        raise ValueError(f"{cfg.method}: cannot train over several processes: {trainer_cls.DDP_REFUSAL}; "
                         "run it in one process (several runs side by side: svldrl compare --jobs/--index)")
    per_rank = ctx.rank_batch(cfg.optim.batch_size)
    if cfg.data.trusted_per_batch and per_rank <= cfg.data.trusted_per_batch:
        raise ValueError(f"data.trusted_per_batch {cfg.data.trusted_per_batch} leaves no other patch in a rank's "
                         f"batch of {per_rank}; raise optim.batch_size")


def _check_cases(train_cases: Sequence[Case], val_cases: Sequence[Case], labels: LabelSpec) -> None:
    if not train_cases:
        raise ValueError("train_cases: need at least one training case")
    channels = {c.n_channels for c in [*train_cases, *val_cases]}
    if len(channels) != 1:
        raise ValueError(f"train_cases/val_cases: all images must have the same number of channels, got {channels}")
    for role, cases in (("train_cases", train_cases), ("val_cases", val_cases)):
        unlabelled = [c.case_id for c in cases if c.label is None]
        if unlabelled:
            raise ValueError(f"{role}: cases without a label: {', '.join(unlabelled[:5])}")
    if labels.mode not in ("classes", "regions"):
        raise ValueError(f"labels.mode must be 'classes' or 'regions', got {labels.mode!r}")


def _check_same_config(saved: dict[str, Any], current: TrainConfig, path: Path) -> None:
    """Resuming with another configuration would silently mix two runs: refuse, naming the keys."""
    old, new = compared_settings(saved), compared_settings(current)
    differing = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if differing:
        raise ValueError(f"{path}: cannot resume, the configuration differs in {', '.join(differing)}")
