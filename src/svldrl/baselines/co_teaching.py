"""Co-Teaching (Han et al., NeurIPS 2018; reference code: bhanML/Co-teaching @ 7c7fbe2), voxel-wise and per class.

Two networks with different initial weights. Each ranks the voxels of a batch by its own per-voxel
cross-entropy and keeps the small-loss fraction ``1 - forget_rate``; each network is then updated on
the voxels its PEER kept. The selection is made per class (background and each foreground class
apart, after the voxel form of gaozhitong/SP_guided_Noisy_Label_Seg) so the rare foreground is not
thrown away wholesale. The forget rate of class c rises linearly from 0 to its final value over the
first ``ramp_fraction`` = 10 % of epochs, from rate 0 at epoch 0 (the reference's ``np.linspace(0, rate,
num_gradual)`` with ``num_gradual`` = 10 epochs of 200, i.e. 5 % of its run, about 3900 iterations,
reaching the full rate at epoch 9 of 200; ours is a share of the run so it scales with any budget).

The final rate is ``1 - precision`` of the noisy labels of the class. "oracle" computes it from the
run's noise manifest; "estimate" trains both networks on all voxels for a warmup, then takes the
share of each class's labelled voxels where network 1 disagrees with the label; "trusted" does the
same on the other cases and subtracts the disagreement on the trusted cases, whose labels are right
(what remains is the label noise, not the network's own error). "auto" (default): trusted when the
run has trusted cases, else oracle. "given" takes ``given_rates``, one final rate per class, as the
reference takes its known noise rate (``--noise_rate``, one number for all samples) from the command
line. Why "given" beside "oracle": the manifest knows a case's Dice with its clean label, not its
confusion; under SFDA noise "oracle" must assume equal clean and noisy volumes, and on LA (SFDA 50 %,
seed 0) that gives foreground 0.31 and background 0.051 where the true shares are 0.40 and 0.0055 (a
background rate nine times too high drops the background labels that hold over-segmentation back;
docs/results.md, "Session 22"). Rates measured with the clean labels (``experiments/la/noise_errors.py
--rates``) and given here are exact. Both read what a user would not know: oracle rows. The reference
takes the noise rate as known, so ``estimate_fraction`` (the warmup of "estimate" and "trusted") has no
reference counterpart. "teacher" is the estimate a user can make: the share of each class's labelled
voxels of the non-trusted training cases where a finished run's network (``teacher_run``, usually the
``trusted-only`` run of the seed) predicts another class. Why: that network never saw a noisy label,
so it cannot have learnt systematic noise as the run's own network has by the end of a warmup (the
"trusted" estimate was 0 under SFDA on LA); its own errors count as noise, so it over-estimates by
about its error rate. The reference's optimiser schedule (Adam 1e-3, linear decay from epoch 80 of
200) is replaced by the run's own.

Network 1 is validated and saved (the checkpoint holds one network, as for every method); network 2
is kept in the checkpoint for resuming. A Dice term on the peer-selected voxels is added to the
reference's cross-entropy (``dice_weight=0`` removes it).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.losses import DiceLoss
from torch import nn

from svldrl.baselines.common import (
    BaselineTrainer,
    build_peer,
    epochs_of,
    group_indices,
    label_groups,
    n_groups_classes,
    option,
    parse_method_options,
    require_trusted,
    seg_probabilities,
    voxel_cross_entropy,
)
from svldrl.baselines.forget_rates import (  # noqa: F401  (re-exported: the rates are part of Co-Teaching's API)
    FORGET_SOURCES,
    KNOWN_AT_START,
    ORACLE_SOURCES,
    clean_volume_estimate,
    disagreement_counts,
    excess_disagreement,
    forget_rate_at,
    forget_source,
    oracle_forget_rates,
)
from svldrl.training import METHODS
from svldrl.training.checkpoint import atomic_write_text
from svldrl.training.teacher import TEACHER_RUN_HELP, check_teacher_run

RATES_FILE = "co_teaching_rates.json"
@dataclass(frozen=True)
class CoTeachingOptions:
    """``method_options`` of co-teaching."""

    forget_rate: str = option(
        "auto",
        "'oracle' (1 - precision per class from the noise manifest), 'estimate' (network-label disagreement "
        "after a warmup), 'trusted' (that disagreement less the one on trusted cases), 'auto': trusted when "
        "the run has trusted cases, else oracle; 'given': given_rates; 'teacher': the disagreement of teacher_run's "
        "network with the labels of the non-trusted cases",
    )
    given_rates: tuple[float, ...] | None = option(
        None, "forget_rate=given: the final forget rate of each class, background first (the share of the voxels "
        "labelled c whose label is wrong; the reference's known noise rate)",
    )
    teacher_run: str = option("", "forget_rate=teacher: " + TEACHER_RUN_HELP)
    ramp_fraction: float = option(0.1, "share of epochs over which each forget rate rises linearly from 0")
    estimate_fraction: float = option(0.1, "'estimate': share of epochs trained on all voxels before estimating")
    peer_seed_offset: int = option(1, "network 2 is initialised with seed + this offset")
    dice_weight: float = option(1.0, "weight of a Dice loss on the peer-selected voxels (0 = the reference's CE only)")

    def __post_init__(self) -> None:
        if self.forget_rate not in FORGET_SOURCES:
            raise ValueError(f"method_options.forget_rate must be one of {FORGET_SOURCES}, got {self.forget_rate!r}")
        for name in ("ramp_fraction", "estimate_fraction"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"method_options.{name} must be in [0, 1), got {getattr(self, name)}")
        if (self.forget_rate == "given") != (self.given_rates is not None):
            raise ValueError("method_options.given_rates goes with forget_rate=given, and forget_rate=given needs it")
        if (self.forget_rate == "teacher") != bool(self.teacher_run):
            raise ValueError("method_options.teacher_run goes with forget_rate=teacher, "
                             "and forget_rate=teacher needs it")
        if self.given_rates is not None and not all(0.0 <= r < 1.0 for r in self.given_rates):
            raise ValueError(f"method_options.given_rates must each be in [0, 1), got {list(self.given_rates)}")
        if self.peer_seed_offset == 0 or self.dice_weight < 0:
            raise ValueError("method_options.peer_seed_offset must be non-zero and dice_weight >= 0")


# ----------------------------------------------------------------------------- mechanism


def small_loss_selection(loss: torch.Tensor, classes: torch.Tensor, forget: torch.Tensor) -> torch.Tensor:
    """Bool mask of the voxels kept: per group g and class c, the ``int((1 - forget[g, c]) * N_gc)``
    voxels of class c with the smallest loss (``int`` rounds down, as the reference).

    Args:
        loss: (B, G, ...) per-voxel loss of the network that selects.
        classes: (B, G, ...) long noisy class per voxel and group.
        forget: (G, n) forget rate per group and class.
    """
    keep = torch.zeros_like(classes, dtype=torch.bool)
    for g in range(forget.shape[0]):
        loss_g, classes_g, keep_g = loss[:, g].reshape(-1), classes[:, g].reshape(-1), keep[:, g]
        flat_keep = torch.zeros_like(classes_g, dtype=torch.bool)
        for c in range(forget.shape[1]):
            index = torch.nonzero(classes_g == c).squeeze(1)  # (N_gc,)
            n_keep = int((1.0 - float(forget[g, c])) * index.numel())
            if n_keep > 0:
                order = torch.argsort(loss_g[index], stable=True)[:n_keep]
                flat_keep[index[order]] = True
        keep_g.copy_(flat_keep.view_as(keep_g))
    return keep


def exchange_losses(
    ce1: torch.Tensor, ce2: torch.Tensor, classes: torch.Tensor, forget: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The Co-Teaching exchange: each network's mean CE over the voxels its peer kept.

    Returns:
        (loss of net 1, loss of net 2, kept by net 1, kept by net 2); net 1's loss uses net 2's picks.
    """
    keep1 = small_loss_selection(ce1.detach(), classes, forget)
    keep2 = small_loss_selection(ce2.detach(), classes, forget)
    return _masked_mean(ce1, keep2), _masked_mean(ce2, keep1), keep1, keep2


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` where ``mask``; 0 (still part of the graph) when nothing is selected."""
    return (values * mask).sum() / mask.sum().clamp(min=1)


@METHODS.register("co-teaching", aliases=("coteaching",))
class CoTeachingTrainer(BaselineTrainer):
    """Two networks, each trained on the small-loss voxels (per class) its peer selects."""

    OPTIONS = CoTeachingOptions
    NAME = "Co-Teaching"
    ORACLE = True
    DESCRIPTION = (
        "Co-Teaching (Han 2018): two networks exchange per-class small-loss voxels (noise rates from the "
        "trusted cases, else the noise manifest, oracle)"
    )
    FOOTNOTE = ("Co-Teaching: small-loss selection per class and voxel; forget rates from the trusted cases or a "
                "trusted-only teacher run, or 1 - precision from the noise manifest or given per class (oracle); "
                "network 1 evaluated; a Dice term on the selected voxels added.")
    TRAIN_SCALARS = (
        "loss", "loss_net1", "loss_net2", "forget_rate_fg", "kept_fraction", "kept_fraction_bg", "kept_fraction_fg",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.masked_dice = DiceLoss(include_background=True)  # inputs are masked probabilities, no activation
        self.final_forget: np.ndarray | None = None
        """(G, n) final forget rates, once known."""
        self.source = forget_source(self.options.forget_rate, bool(self.trusted_ids))
        if self.source == "trusted" and not self.trusted_ids:
            raise ValueError("co-teaching: method_options.forget_rate=trusted needs trusted cases (data.trusted_count)")
        if self.source == "oracle":
            self.final_forget = self.oracle_rates()
        elif self.source == "given":
            self.final_forget = self.given_rates()
        elif self.source == "teacher":  # checked now, before any work; measured when the first epoch starts
            check_teacher_run(Path(self.options.teacher_run), self)

    @classmethod
    def check_config(cls, cfg: Any) -> None:
        super().check_config(cfg)
        source = parse_method_options(cls.OPTIONS, cfg.method_options, cfg.method).forget_rate
        if source in ("trusted", "teacher"):
            require_trusted(cfg, f"method_options.forget_rate={source}")

    @classmethod
    def uses_oracle(cls, options: CoTeachingOptions, trusted: bool = False) -> bool:
        return forget_source(options.forget_rate, trusted) in ORACLE_SOURCES

    @property
    def ramp_epochs(self) -> int:
        return max(1, epochs_of(self.options.ramp_fraction, self.cfg.optim.epochs))

    @property
    def ramp_start(self) -> int:
        """0 for rates known from the start (oracle, given, teacher); after the estimating warmup otherwise."""
        if self.source in KNOWN_AT_START:
            return 0
        return max(1, epochs_of(self.options.estimate_fraction, self.cfg.optim.epochs))

    def build_models(self) -> nn.Module:
        """Network 1 as every method builds it; network 2 (``self.peer``) the same with another seed."""
        net = super().build_models()
        self.peer = build_peer(super().build_models, self.cfg.seed + self.options.peer_seed_offset).to(self.device)
        return net

    def build_optimizer(self) -> torch.optim.Optimizer:
        """The configured optimiser over network 1, with network 2 as a second parameter group."""
        optimizer = super().build_optimizer()
        optimizer.add_param_group({"params": [p for p in self.peer.parameters() if p.requires_grad]})
        return optimizer

    def forget_rates(self, epoch: int) -> np.ndarray:
        """(G, n) forget rates of ``epoch`` (all 0 before the final rates are known)."""
        groups, n = n_groups_classes(self.labels)
        if self.final_forget is None:
            return np.zeros((groups, n))
        return forget_rate_at(epoch, self.final_forget, self.ramp_epochs, self.ramp_start)

    def train_step(self, batch: dict[str, Any], epoch: int) -> dict[str, float]:
        """Both networks forward; each is updated on its peer's small-loss voxels (one optimiser step)."""
        image, label = batch["image"], batch["label"]  # (B, C, h, w, d), (B, n_outputs, h, w, d)
        mode = self.labels.mode
        self.optimizer.zero_grad(set_to_none=True)
        logits1 = self.net(image, heads=("seg",)).seg  # (B, n_outputs, h, w, d)
        logits2 = self.peer(image, heads=("seg",)).seg
        forget = torch.as_tensor(self.forget_rates(epoch), dtype=torch.float32, device=image.device)  # (G, n)
        classes = group_indices(label, mode)  # (B, G, h, w, d)
        ce1, ce2 = voxel_cross_entropy(logits1, label, mode), voxel_cross_entropy(logits2, label, mode)
        loss1, loss2, keep1, keep2 = exchange_losses(ce1, ce2, classes, forget)
        if self.options.dice_weight > 0:
            loss1 = loss1 + self.options.dice_weight * self.selected_dice(logits1, label, keep2)
            loss2 = loss2 + self.options.dice_weight * self.selected_dice(logits2, label, keep1)
        loss = loss1 + loss2
        self.backward_and_step(loss)
        return {
            "loss": loss.item(), "loss_net1": loss1.item(), "loss_net2": loss2.item(),
            "forget_rate_fg": float(forget[:, 1:].mean()) if mode == "classes" else float(forget[:, 1].mean()),
            "kept_fraction": 0.5 * (keep1.float().mean() + keep2.float().mean()).item(),
            # per class (mechanism health, issue 16): a kept share far below 1 - forget rate for one class
            # means the selection shrinks (or grows) that class
            **kept_by_class(keep1, keep2, classes),
        }

    def selected_dice(self, seg_logits: torch.Tensor, target: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """Dice loss restricted to the kept voxels (probabilities and labels zeroed elsewhere)."""
        mask = keep.float() if self.labels.mode == "regions" else keep[:, :1].float()  # (B, K or 1, h, w, d)
        return self.masked_dice(seg_probabilities(seg_logits, self.labels.mode) * mask, target * mask)

    def clipped_parameters(self) -> Iterator[nn.Parameter]:
        """Both networks' parameters: one clip over the joint gradient, as before."""
        return iter([*self.net.parameters(), *self.peer.parameters()])

    def on_epoch_start(self, epoch: int) -> None:
        """forget_rate=teacher: the teacher's rates, measured here rather than in ``__init__`` so that a resumed run
        takes them from its checkpoint instead of running the teacher over every training case again."""
        super().on_epoch_start(epoch)
        if self.final_forget is None and self.source == "teacher":
            self.final_forget = self.teacher_rates(self.options.teacher_run)
        if self.final_forget is not None and not (self.run_dir / RATES_FILE).exists():
            self.write_rates()

    def on_epoch_end(self, epoch: int) -> None:
        if self.final_forget is None and epoch + 1 == self.ramp_start:
            self.final_forget = self.trusted_rates() if self.source == "trusted" else self.estimated_rates()
            self.write_rates()

    def write_rates(self) -> None:
        """``co_teaching_rates.json``: the final forget rates (rows: class groups, columns: classes, 0 = background)
        and their source. Mechanism health: the log's ``forget_rate_fg`` shows the ramp toward them."""
        if self.dist.is_main:
            report = {"source": self.source, "final_forget": np.asarray(self.final_forget).round(6).tolist()}
            atomic_write_text(json.dumps(report, indent=2) + "\n", self.run_dir / RATES_FILE)

    def oracle_rates(self) -> np.ndarray:
        """(G, n) final rates from the manifest entries of the training cases."""
        manifest = self.require_manifest("method_options.forget_rate='oracle'", "forget_rate='estimate'")
        _, n = n_groups_classes(self.labels)
        cases = [(label_groups(c.label, self.labels.mode), manifest.case(c.case_id)) for c in self.train_cases]
        return oracle_forget_rates(cases, n)

    def given_rates(self) -> np.ndarray:
        """(G, n) ``given_rates``, the same for every group; refused unless there is one rate per class."""
        groups, n = n_groups_classes(self.labels)
        rates = self.options.given_rates
        if len(rates) != n:
            raise ValueError(f"co-teaching: method_options.given_rates has {len(rates)} rates; this data set's "
                             f"groups have {n} classes (background first)")
        return np.tile(np.asarray(rates, dtype=np.float64), (groups, 1))

    def estimated_rates(self) -> np.ndarray:
        """(G, n) share of each class's labelled voxels where network 1 disagrees with the label."""
        wrong, total = self.disagreement(self.train_cases)
        return np.divide(wrong, total, out=np.zeros_like(wrong), where=total > 0)

    def trusted_rates(self) -> np.ndarray:
        """(G, n) the disagreement on the other cases less that on the trusted ones (``excess_disagreement``)."""
        trusted = [c for c in self.train_cases if c.case_id in self.trusted_ids]
        others = [c for c in self.train_cases if c.case_id not in self.trusted_ids]
        return excess_disagreement(*self.disagreement(others), *self.disagreement(trusted))

    def teacher_rates(self, run: str) -> np.ndarray:
        """(G, n) the disagreement of ``run``'s network with the labels of the non-trusted cases (``__init__`` has
        checked that it trained on this run's split and trusted cases, ``check_teacher_run``)."""
        from svldrl.training.checkpoint import load_trained

        teacher, _, _ = load_trained(run, device=self.device)
        others = [c for c in self.train_cases if c.case_id not in self.trusted_ids]
        wrong, total = self.disagreement(others, teacher)
        return np.divide(wrong, total, out=np.zeros_like(wrong), where=total > 0)

    def disagreement(self, cases: Sequence[Any], net: nn.Module | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(wrong, total), each (G, n), of ``net``'s (network 1's) whole-volume predictions against the labels."""
        _, n = n_groups_classes(self.labels)
        wrong, total = np.zeros((1, n)), np.zeros((1, n))
        for case in cases:
            predicted = self.volume_probs(self.net if net is None else net, case.image).argmax(axis=1)  # (G, H, W, D)
            w, t = disagreement_counts(label_groups(case.label, self.labels.mode), predicted, n)
            wrong, total = wrong + w, total + t
        return wrong, total

    def checkpoint_state(self) -> dict[str, Any]:
        state = super().checkpoint_state()
        state["peer"] = self.peer.state_dict()
        if self.final_forget is not None:
            state["final_forget"] = torch.as_tensor(self.final_forget)
        return state

    def load_checkpoint_state(self, payload: dict[str, Any]) -> None:
        super().load_checkpoint_state(payload)
        self.peer.load_state_dict(payload["peer"])
        if "final_forget" in payload:
            self.final_forget = payload["final_forget"].numpy()


def kept_by_class(keep1: torch.Tensor, keep2: torch.Tensor, classes: torch.Tensor) -> dict[str, float]:
    """Share of the voxels labelled background (class 0) and labelled foreground (any other) kept by the two
    networks' selections, averaged; NaN where the batch has no such voxel.

    Args:
        keep1, keep2: (B, G, h, w, d) bool selections.
        classes: (B, G, h, w, d) label class per group.
    """
    kept = 0.5 * (keep1.float() + keep2.float())
    out = {}
    for name, where in (("kept_fraction_bg", classes == 0), ("kept_fraction_fg", classes > 0)):
        out[name] = float(kept[where].mean()) if where.any() else float("nan")
    return out
