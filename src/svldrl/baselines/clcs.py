"""CLCS: collaborative learning with curriculum selection (Guo et al., IEEE TMI 2025), a RECONSTRUCTION.

The authors' code is not public (their text also calls the method CLCL); this follows the paper's
description, and every constant below is ours where the paper gives none:

- Two decoders on one shared encoder, kept apart by a discrepancy loss on their weights (the
  cosine similarity of the flattened decoder parameters plus 1, as CLAN's weight discrepancy), so
  that they see the voxels from different views. Their probabilities are averaged ("voted").
- Curriculum noisy-label selection: a voxel labelled c is clean when the voted probability of c is
  at least ``tau_c(p) = tau_max * p**gamma * M(beta_c)``, with p = epoch / epochs the training
  progress (convex in p for gamma > 1: every voxel is clean at first, the bar rises later),
  ``beta_c`` the learning effect of class c (running mean of its voted probability on voxels
  labelled c, divided by the best class's) and ``M(b) = b / (2 - b)`` (FlexMatch's convex mapping),
  so classes learned less well get a lower bar and keep more of their (rare) voxels.
- Noise balance loss: clean voxels get CE + Dice (Dice on the clean voxels only); the others,
  instead of being dropped, get ``w CE + (1 - w) RCE`` with w the voted confidence in the label
  and RCE the reverse cross-entropy ``-sum_k p_k log y_k`` with log 0 taken as -4, i.e.
  ``4 (1 - p_y)`` (Wang et al., ICCV 2019): the less the model believes a label, the more its
  loss is bounded.
Both decoders get the loss; the voted prediction is the model's output.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from monai.losses import DiceLoss
from torch import nn

from svldrl.baselines.common import (
    BaselineTrainer,
    group_log_probs,
    group_targets,
    label_boundary_band,
    n_groups_classes,
    option,
    seg_probabilities,
)
from svldrl.config import TrainConfig
from svldrl.data import LabelSpec
from svldrl.models import ThreeHeadNet, build_network
from svldrl.training import METHODS


@dataclass(frozen=True)
class CLCSOptions:
    """``method_options`` of clcs (all ours: the paper's code is not public)."""

    tau_max: float = option(0.9, "clean-voxel threshold at the end of training, before the class factor")
    curriculum_power: float = option(2.0, "gamma of tau(p) = tau_max * p**gamma (convex in progress p for gamma > 1)")
    effect_momentum: float = option(
        0.9,
        "momentum of the running learning effect of each class, per step: a fixed horizon of about 10 steps, "
        "not scaled to the budget (ours; the paper gives no value)",
    )
    rce_log_zero: float = option(-4.0, "log 0 in the reverse cross-entropy (RCE = -A (1 - p_y), Wang et al. 2019)")
    discrepancy_weight: float = option(0.01, "weight of the decoders' weight discrepancy (CLAN's 0.01)")
    dice_weight: float = option(1.0, "weight of the Dice loss on clean voxels")

    def __post_init__(self) -> None:
        if not 0.0 <= self.tau_max <= 1.0:
            raise ValueError(f"method_options.tau_max must be in [0, 1], got {self.tau_max}")
        if self.curriculum_power <= 0 or not 0.0 <= self.effect_momentum < 1.0:
            raise ValueError("method_options.curriculum_power must be > 0 and effect_momentum in [0, 1)")
        if self.rce_log_zero >= 0:
            raise ValueError(f"method_options.rce_log_zero stands for log 0 and must be < 0, got {self.rce_log_zero}")
        if self.discrepancy_weight < 0 or self.dice_weight < 0:
            raise ValueError("method_options.discrepancy_weight and dice_weight must be >= 0")


# ----------------------------------------------------------------------------- mechanism


def convex_mapping(beta: torch.Tensor) -> torch.Tensor:
    """M(b) = b / (2 - b): 0 -> 0, 1 -> 1, below the diagonal in between (FlexMatch)."""
    return beta / (2.0 - beta)


def curriculum_thresholds(
    progress: float, effect: torch.Tensor, tau_max: float = 0.9, power: float = 2.0
) -> torch.Tensor:
    """(G, n) per-class thresholds ``tau_max * p**power * M(effect / max effect of the group)``.

    Args:
        progress: training progress p in [0, 1].
        effect: (G, n) learning effect per class (non-negative).
        tau_max, power: the schedule's constants.
    """
    if not 0.0 <= progress <= 1.0:
        raise ValueError(f"progress must be in [0, 1], got {progress}")
    beta = effect / effect.amax(dim=1, keepdim=True).clamp_min(1e-12)  # (G, n)
    return tau_max * progress**power * convex_mapping(beta)


def update_learning_effect(
    effect: torch.Tensor, voted: torch.Tensor, onehot: torch.Tensor, momentum: float
) -> torch.Tensor:
    """Running mean of each class's voted probability on the voxels labelled with it; absent classes keep theirs.

    Args:
        effect: (G, n) current learning effect.
        voted: (B, G, n, ...) voted class probabilities.
        onehot: (B, G, n, ...) one-hot labels.
        momentum: weight of the old value.
    """
    dims = (0, *range(3, voted.dim()))
    count = onehot.sum(dim=dims)  # (G, n)
    mean = (voted * onehot).sum(dim=dims) / count.clamp_min(1.0)
    return torch.where(count > 0, momentum * effect + (1.0 - momentum) * mean, effect)


def select_clean(voted: torch.Tensor, onehot: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """(B, G, ...) bool: the voted probability of the voxel's label reaches that class's threshold."""
    label_prob = (voted * onehot).sum(dim=2)  # (B, G, ...)
    bar = torch.einsum("bgn...,gn->bg...", onehot, thresholds)  # (B, G, ...) threshold of the labelled class
    return label_prob >= bar


def noise_balance_voxel_loss(
    log_probs: torch.Tensor, onehot: torch.Tensor, clean: torch.Tensor, confidence: torch.Tensor, log_zero: float = -4.0
) -> torch.Tensor:
    """(B, G, ...) per-voxel loss: CE where clean, else ``w CE + (1 - w) RCE`` with w = ``confidence``.

    Args:
        log_probs: (B, G, n, ...) one decoder's log-probabilities.
        onehot: (B, G, n, ...) one-hot (noisy) labels.
        clean: (B, G, ...) bool clean-voxel mask.
        confidence: (B, G, ...) voted probability of the label, in [0, 1] (treated as a constant).
        log_zero: the value standing for log 0 in the reverse cross-entropy.
    """
    ce = -(onehot * log_probs).sum(dim=2)  # (B, G, ...)
    rce = -log_zero * (1.0 - (onehot * log_probs.exp()).sum(dim=2))  # -sum_k p_k log y_k = -A (1 - p_y)
    w = confidence.detach()
    return torch.where(clean, ce, w * ce + (1.0 - w) * rce)


def where_unselected(clean: torch.Tensor, onehot: torch.Tensor, band: torch.Tensor) -> dict[str, float]:
    """Where the voxels left out of the clean set lie, each as a share of all the batch's voxels.

    Why: a selection that drops voxels all over the organ's interior discards signal, one that drops
    them at the label's border may be finding the noise (both our noise models move the border).
    Logged per step and averaged per epoch, so ratios of the epoch means are pooled shares:
    ``unselected_label_fg / label_fg_fraction`` is the share of foreground-labelled voxels left out,
    ``unselected_in_band / (unselected_label_fg + unselected_label_bg)`` the share of left-out
    voxels in the border band, to be set against ``band_fraction``.

    Args:
        clean: (B, G, ...) bool clean-voxel mask (``select_clean``).
        onehot: (B, G, n, ...) one-hot labels; voxels with no class (padding) count nowhere.
        band: (B, G, ...) bool border band of the label (``label_boundary_band``).
    """
    labelled = onehot.sum(dim=2) > 0
    foreground = onehot[:, :, 1:].sum(dim=2) > 0
    unselected = ~clean & labelled
    return {
        "label_fg_fraction": foreground.float().mean().item(),
        "band_fraction": (band & labelled).float().mean().item(),
        "unselected_label_fg": (unselected & foreground).float().mean().item(),
        "unselected_label_bg": (unselected & ~foreground).float().mean().item(),
        "unselected_in_band": (unselected & band).float().mean().item(),
    }


def masked_dice_loss(prob: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """MONAI's Dice loss restricted to the masked voxels (masking both sides, as MONAI's ``MaskedDiceLoss``).

    Args:
        prob: (B, n_outputs, ...) probabilities (softmax or sigmoid).
        target: (B, n_outputs, ...) labels.
        mask: (B, 1, ...) or (B, n_outputs, ...) float mask of the voxels that count.
    """
    return DiceLoss(include_background=True)(prob * mask, target * mask)


def weight_discrepancy(first: nn.Module, second: nn.Module) -> torch.Tensor:
    """1 + cosine similarity of the two modules' flattened parameters, in [0, 2] (CLAN's weight discrepancy)."""
    a = torch.cat([p.flatten() for p in first.parameters()])
    b = torch.cat([p.flatten() for p in second.parameters()])
    return 1.0 + torch.dot(a, b) / (a.norm() * b.norm()).clamp_min(1e-12)


# ----------------------------------------------------------------------------- model


class DualDecoderNet(nn.Module):
    """A shared encoder and two segmentation decoders of one class; ``segment`` returns the voted prediction.

    Built from the common network: its encoder and seg decoder, plus a fresh copy of the seg
    decoder (same architecture, its own initialisation). The value and policy decoders are left out.

    Args:
        net: the three-decoder network of the run's backbone.
        mode: "classes" (softmax) or "regions" (sigmoid): how the two predictions are averaged.
    """

    def __init__(self, net: ThreeHeadNet, mode: str) -> None:
        super().__init__()
        self.mode = mode
        self.backbone = net.backbone
        self.patch_multiple = net.patch_multiple
        self.encoder = net.encoder
        second = copy.deepcopy(net.decoders["seg"])
        for module in second.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()  # a new draw, so the two decoders start apart
        self.decoders = nn.ModuleDict({"seg": net.decoders["seg"], "seg2": second})

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both decoders' (B, n_outputs, H, W, D) logits from one encoder pass."""
        features = self.encoder(x)
        return self.decoders["seg"](features), self.decoders["seg2"](features)

    def segment(self, x: torch.Tensor) -> torch.Tensor:
        """(B, n_outputs, H, W, D) logits of the voted (averaged) probabilities."""
        first, second = self(x)
        if self.mode == "classes":
            voted = 0.5 * (torch.softmax(first, dim=1) + torch.softmax(second, dim=1))
            return voted.clamp_min(1e-7).log()  # softmax(log p) = p
        voted = (0.5 * (torch.sigmoid(first) + torch.sigmoid(second))).clamp(1e-7, 1.0 - 1e-7)
        return voted.log() - (1.0 - voted).log()  # sigmoid(logit p) = p


# ----------------------------------------------------------------------------- trainer


@METHODS.register("clcs", aliases=("clcl",))
class CLCSTrainer(BaselineTrainer):
    """Two decoders, voted probabilities, a class-aware curriculum threshold, CE + Dice or the noise balance loss."""

    OPTIONS = CLCSOptions
    NAME = "CLCS"
    DESCRIPTION = ("CLCS (Guo 2025), a reconstruction (no public code): two decoders, class-aware curriculum "
                   "selection of clean voxels, CE + Dice on them and a CE/reverse-CE mix on the rest")
    FOOTNOTE = "CLCS: reconstructed from the paper's description (no public code); constants are ours."
    TRAIN_SCALARS = ("loss", "loss_ce", "loss_dice", "loss_discrepancy", "clean_fraction", "threshold_mean",
                     "label_fg_fraction", "band_fraction", "unselected_label_fg", "unselected_label_bg",
                     "unselected_in_band")  # fmt: skip
    BAND_RADIUS = 2
    """Half-width in voxels of the label border band in which the log counts left-out voxels."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        groups, n = n_groups_classes(self.labels)
        self.effect = torch.ones(groups, n, device=self.device)
        """(G, n) learning effect per class (1 at the start: every class equal)."""

    @classmethod
    def inference_network(cls, cfg: TrainConfig, in_channels: int, labels: LabelSpec) -> DualDecoderNet:
        """The module this method trains, validates and saves (``load_trained`` must rebuild this to load it)."""
        return DualDecoderNet(build_network(cfg.model, in_channels, labels.n_outputs), labels.mode)

    def build_models(self) -> nn.Module:
        return self.inference_network(self.cfg, self.in_channels, self.labels)

    def training_progress(self, epoch: int) -> float:
        """Training progress p = epoch / epochs, in [0, 1)."""
        return epoch / self.cfg.optim.epochs

    def train_step(self, batch: dict[str, Any], epoch: int) -> dict[str, float]:
        image, label = batch["image"], batch["label"]  # (B, C, h, w, d), (B, n_outputs, h, w, d)
        mode, o = self.labels.mode, self.options
        self.optimizer.zero_grad(set_to_none=True)
        logits = self.net(image)  # two (B, n_outputs, h, w, d)
        log_probs = [group_log_probs(x, mode) for x in logits]  # two (B, G, n, h, w, d)
        onehot = group_targets(label, mode)
        with torch.no_grad():
            voted = 0.5 * (log_probs[0].exp() + log_probs[1].exp())  # (B, G, n, h, w, d)
            self.effect = update_learning_effect(self.effect, voted, onehot, o.effect_momentum)
            progress = self.training_progress(epoch)
            thresholds = curriculum_thresholds(progress, self.effect, o.tau_max, o.curriculum_power)
            clean = select_clean(voted, onehot, thresholds)  # (B, G, h, w, d)
            confidence = (voted * onehot).sum(dim=2)
            where = where_unselected(clean, onehot, label_boundary_band(onehot, self.BAND_RADIUS))
        mask = clean[:, 0:1] if mode == "classes" else clean  # (B, 1 or n_outputs, h, w, d)
        l_ce = sum(noise_balance_voxel_loss(lp, onehot, clean, confidence, o.rce_log_zero).mean() for lp in log_probs)
        l_dice = sum(masked_dice_loss(seg_probabilities(x, mode), label, mask.float()) for x in logits)
        l_dis = weight_discrepancy(self.net.decoders["seg"], self.net.decoders["seg2"])
        loss = l_ce + o.dice_weight * l_dice + o.discrepancy_weight * l_dis
        self.backward_and_step(loss)
        return {
            "loss": loss.item(), "loss_ce": l_ce.item(), "loss_dice": l_dice.item(), "loss_discrepancy": l_dis.item(),
            "clean_fraction": clean.float().mean().item(), "threshold_mean": thresholds.mean().item(), **where,
        }

    def checkpoint_state(self) -> dict[str, Any]:
        return {**super().checkpoint_state(), "learning_effect": self.effect.detach().cpu()}

    def load_checkpoint_state(self, payload: dict[str, Any]) -> None:
        super().load_checkpoint_state(payload)
        self.effect = payload["learning_effect"].to(self.device)
