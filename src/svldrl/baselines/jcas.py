"""JCAS: joint class-affinity loss correction (Guo & Yuan, MICCAI 2022; code: CityU-AIM-Group/JCAS @ 5c9aefc,
``tools_ablation/``), in 3D.

Two kinds of supervision come from one noisy label map: each voxel's class, and for each pair of
voxels of a coarse grid whether they have the same class (the "affinity", less noisy because a
pair stays "same" when both voxels flip together). Each is forward-corrected by its own learned
transition matrix, parameterised as in the reference's ``NTM``: identity plus sigmoid off-diagonal
entries, rows normalised to sum to 1, off-diagonal logits started at -2. Two regularisers keep the
matrices identifiable: a log-determinant "volume" term (VolMinNet; off by default here, see below)
and a consistency term tying the affinity matrix to the one implied by the class matrix and the
class frequencies.

Loss after the warmup (weights of the reference's stage-2 script ``trainS2.py``)::

    L = CE(T_c^T softmax(seg)) + CE(T_c^T softmax(seg refined by affinities))      class branch
        + 1 * BCE(T_a^T [1 - a, a], same-class targets)                             affinity branch
        + 0.5 * (log|det T_c| + log|det T_a|) + 0.01 * MSE(T_a(T_c), T_a)

Our default leaves the volume term out (``volume_weight`` 0; the reference's 0.5 is
``--set method_options.volume_weight=0.5``): on LA's small foreground the term, not the data,
sets the class matrix, and JCAS then over-segments (``volume_weight``'s help has the figures).

Adaptations to 3D volumes, stated here and in ``FOOTNOTE``: one scale instead of the reference's
two DeepLab levels; the affinity features are a 1x1x1 convolution on the deepest encoder level at
least as fine as the coarse grid (patch / ``coarse_factor`` per side); features and logits go to
the coarse grid by average pooling and the refined logits come back by trilinear upsampling; the
coarse label of a cell is its majority class; the warmup the reference loads from a separate run is
the first ``warmup_fraction`` of this run (plain cross-entropy). Affinity index 0 is "different",
1 is "same", in both the affinity branch and ``class_to_affinity_transition`` (the reference orders
them oppositely in the two, which only agrees while the matrices are symmetric).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from svldrl.baselines.common import (
    BaselineTrainer,
    group_log_probs,
    group_targets,
    label_groups,
    n_groups_classes,
    option,
    voxel_cross_entropy,
)
from svldrl.baselines.loss_correction import forward_corrected_ce
from svldrl.data import Case, LabelSpec
from svldrl.models import ThreeHeadNet
from svldrl.training import METHODS

DIFFERENT, SAME = 0, 1
"""Indices of the two affinity classes."""
AFFINITY_FLOOR = 1e-10
"""Predicted affinities are clamped to [floor, 1] (reference), so the BCE stays finite."""


@dataclass(frozen=True)
class JCASOptions:
    """``method_options`` of jcas."""

    warmup_fraction: float = option(
        0.3,
        "share of epochs with plain cross-entropy first (the reference: a separate 200-epoch stage 1, then 200 "
        "epochs of stage 2 from its best-validation checkpoint, i.e. half of all its epochs)",
    )
    affinity_weight: float = option(1.0, "weight of the corrected affinity loss")
    volume_weight: float = option(
        0.0,
        "weight of log|det T_c| + log|det T_a| (minimum-volume term). The reference uses 0.5 (trainS2.py L302, from "
        "the first stage-2 iteration, no schedule; defaults up to v5 here); VolMinNet, where the term comes from, "
        "1e-4 (main.py L24). Against a mean CE the data pull on a class's row scales with the class's voxel share and "
        "the term's does not, so on LA's small foreground 0.5 sets T_c's foreground row whatever the noise (about "
        "0.21 under MT and SFDA alike) and JCAS over-segments labels that already over-segment: 5.5 Dice points "
        "under its baseline under SFDA 50 %. Without the term T_c follows the data and JCAS is within its "
        "baseline's spread under both noises (docs/results.md, 'Session 21'; experiments/la/jcas_volume.yaml)",
    )
    consistency_weight: float = option(0.01, "weight of MSE(T_a implied by T_c, T_a)")
    coarse_factor: int = option(
        4,
        "affinities on a grid this many times coarser than the patch, per side: 4 gives 8^3 cells of a 32^3 patch "
        "(the reference's 1/8-resolution map of a 2D crop has ~40^2); 8 made the tables before issue 16 (4^3 cells)",
    )
    affinity_warmup: bool = option(
        True,
        "train the affinity head on the (uncorrected) affinities during the warmup, so it is not random when "
        "correction starts (the reference trains it in its first stage); false made the tables before issue 16",
    )
    feature_dim: int = option(128, "channels of the affinity features (reference: 128)")
    transition_init: float = option(-2.0, "initial off-diagonal logit of both matrices (sigmoid(-2) = 0.12)")
    transition_lr_factor: float = option(
        1.0,
        "learning rate of the matrices / optim.lr: 1, as the reference trains them (their SGD is made at 1e-3, but "
        "adjust_learning_rate resets every optimiser to the base poly rate each iteration, trainS2.py L133-137, "
        "L276-278); 10 made the tables before issue 16. The matrices share the run's optimizer (optim.optimizer: "
        "Adam under the cpu preset, SGD under paper); the reference's is SGD, momentum 0.9, no weight decay",
    )
    dice_weight: float = option(0.0, "weight of an added, uncorrected Dice loss (0: the reference's CE only)")

    def __post_init__(self) -> None:
        if not 0.0 <= self.warmup_fraction < 1.0:
            raise ValueError(f"method_options.warmup_fraction must be in [0, 1), got {self.warmup_fraction}")
        if self.coarse_factor < 1 or self.feature_dim < 1:
            raise ValueError(
                f"method_options.coarse_factor and feature_dim must be >= 1, got {self.coarse_factor}, "
                f"{self.feature_dim}"
            )
        weights = (self.affinity_weight, self.volume_weight, self.consistency_weight, self.dice_weight)
        if min(weights) < 0 or self.transition_lr_factor <= 0:
            raise ValueError("method_options: loss weights must be >= 0 and transition_lr_factor > 0")


# ----------------------------------------------------------------------------- mechanism


def transition_matrix(logits: torch.Tensor) -> torch.Tensor:
    """(G, n, n) row-stochastic T = rownorm(I + sigmoid(w) * (1 - I)) from (G, n, n) logits w (diagonal unused)."""
    n = logits.shape[-1]
    eye = torch.eye(n, dtype=logits.dtype, device=logits.device)
    t = eye + torch.sigmoid(logits) * (1.0 - eye)
    return t / t.sum(dim=-1, keepdim=True)


def coarse_onehot(onehot: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """(B, G, n, N) majority class of each coarse cell, one-hot, from (B, G, n, h, w, d) one-hot labels."""
    b, g, n = onehot.shape[:3]
    share = F.adaptive_avg_pool3d(onehot.flatten(0, 1), tuple(size))  # (B*G, n, *size) class share per cell
    majority = F.one_hot(share.argmax(dim=1), n).movedim(-1, 1)  # (B*G, n, *size)
    return majority.reshape(b, g, n, -1).to(onehot.dtype)


def affinity_targets(coarse: torch.Tensor) -> torch.Tensor:
    """(B, G, N, N) 1 where two cells have the same class, else 0, from (B, G, n, N) one-hot cells."""
    return torch.einsum("bgcu,bgcv->bguv", coarse, coarse)


def feature_affinity(features: torch.Tensor) -> torch.Tensor:
    """(B, N, N) cosine similarity of ReLU'd features (B, d, N), clamped to [1e-10, 1] (the reference)."""
    unit = F.relu(features)
    unit = unit / (unit.norm(dim=1, keepdim=True) + 1e-9)  # (B, d, N)
    return torch.bmm(unit.transpose(1, 2), unit).clamp(AFFINITY_FLOOR, 1.0)


def noisy_same_probability(affinity: torch.Tensor, affinity_t: torch.Tensor) -> torch.Tensor:
    """(B, G, N, N) P(noisy "same") = [1 - a, a] @ T_a[:, SAME] for clean affinity a (B, N, N), T_a (G, 2, 2)."""
    to_same = affinity_t[:, :, SAME]  # (G, 2) P(noisy same | clean different), P(noisy same | clean same)
    a = affinity[:, None]  # (B, 1, N, N)
    return (1.0 - a) * to_same[None, :, DIFFERENT, None, None] + a * to_same[None, :, SAME, None, None]


def affinity_loss(noisy_same: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy over pairs and groups."""
    return F.binary_cross_entropy(noisy_same.clamp(AFFINITY_FLOOR, 1.0), targets)


def affinity_refined_logits(logits: torch.Tensor, affinity: torch.Tensor) -> torch.Tensor:
    """(B, c, N): logits plus the affinity-weighted mean of similar cells minus that of dissimilar ones, halved.

    The reference's ``(pred + A~ pred + pred - (1 - A)~ pred) / 2`` with ``~`` the L1 row normalisation.

    Args:
        logits: (B, c, N) coarse logits.
        affinity: (B, N, N) predicted affinities in (0, 1].
    """
    similar = F.normalize(affinity, p=1, dim=2)  # (B, N, N)
    dissimilar = F.normalize(1.0 - affinity, p=1, dim=2)
    pulled = torch.bmm(logits, similar.transpose(1, 2))  # (B, c, N) sum_v A~[u, v] logits[:, v]
    pushed = torch.bmm(logits, dissimilar.transpose(1, 2))
    return logits + 0.5 * (pulled - pushed)


def class_to_affinity_transition(class_t: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
    """(G, 2, 2) the affinity transition implied by class transitions (G, n, n) and class frequencies (G, n).

    Two voxels of clean classes i, m (drawn independently from ``prior``) get noisy labels that
    agree with probability ``sum_j T[i, j] T[m, j]``; averaging over same-class (i = m) or
    different-class pairs gives P(noisy same | clean same) and P(noisy same | clean different).
    """
    n = class_t.shape[-1]
    agree = class_t @ class_t.transpose(1, 2)  # (G, n, n)
    pair = prior[:, :, None] * prior[:, None, :]  # (G, n, n)
    same = torch.eye(n, dtype=torch.bool, device=class_t.device)
    weighted = pair * agree

    def mean_over(mask: torch.Tensor) -> torch.Tensor:
        return (weighted * mask).sum(dim=(1, 2)) / (pair * mask).sum(dim=(1, 2)).clamp_min(1e-12)  # (G,)

    p_same = mean_over(same)
    p_diff = mean_over(~same)
    row_diff = torch.stack([1.0 - p_diff, p_diff], dim=-1)  # (G, 2) clean "different"
    row_same = torch.stack([1.0 - p_same, p_same], dim=-1)  # (G, 2) clean "same"
    return torch.stack([row_diff, row_same], dim=1)


def volume_term(*transitions: torch.Tensor) -> torch.Tensor:
    """Sum of log|det T| over the matrices and their groups (each (G, n, n))."""
    return sum(torch.linalg.slogdet(t).logabsdet.sum() for t in transitions)


def consistency_term(affinity_t: torch.Tensor, implied: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between the learned (G, 2, 2) affinity matrix and the implied one."""
    return F.mse_loss(implied, affinity_t)


def class_prior(cases: Sequence[Case], labels: LabelSpec) -> np.ndarray:
    """(G, n) class frequencies of the training labels (noisy, as the user has them), per class group."""
    g, n = n_groups_classes(labels)
    counts = np.zeros((g, n), dtype=np.float64)
    for case in cases:
        groups = label_groups(case.label, labels.mode)  # (G, H, W, D)
        for k in range(g):
            counts[k] += np.bincount(groups[k].ravel(), minlength=n)[:n]
    return counts / counts.sum(axis=1, keepdims=True).clip(min=1.0)


# ----------------------------------------------------------------------------- model


class TransitionMatrix(nn.Module):
    """Learned row-stochastic matrices (G, n, n): identity plus sigmoid off-diagonals, rows normalised."""

    def __init__(self, groups: int, n: int, init: float) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.full((groups, n, n), float(init)))

    def forward(self) -> torch.Tensor:
        return transition_matrix(self.logits)


class JCASModel(nn.Module):
    """The segmentation network, the affinity feature head and the two transition matrices, trained together.

    Args:
        net: the common three-decoder network (only the encoder and the seg decoder are used).
        level: index of the encoder feature map the affinity head reads.
        level_channels: channels of that feature map.
        groups, n: the class view (G groups of n classes).
        options: the method's options.
    """

    def __init__(self, net: ThreeHeadNet, level: int, level_channels: int, groups: int, n: int, options: JCASOptions):
        super().__init__()
        self.net = net
        self.level = level
        self.affinity_head = nn.Conv3d(level_channels, options.feature_dim, kernel_size=1)
        self.class_t = TransitionMatrix(groups, n, options.transition_init)
        self.affinity_t = TransitionMatrix(groups, 2, options.transition_init)

    def features_and_logits(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, feature_dim, ...) affinity features at the chosen level and (B, n_outputs, h, w, d) seg logits."""
        features = self.net.encoder(image)
        return self.affinity_head(features[self.level]), self.net.decoders["seg"](features)

    def transition_parameters(self) -> list[nn.Parameter]:
        return [*self.class_t.parameters(), *self.affinity_t.parameters()]


def choose_level(shapes: Sequence[Sequence[int]], coarse: Sequence[int]) -> int:
    """Index of the coarsest feature map whose every side is at least the coarse grid's (else the finest)."""
    fits = [i for i, s in enumerate(shapes) if all(a >= c for a, c in zip(s, coarse, strict=True))]
    return min(fits, key=lambda i: int(np.prod(shapes[i]))) if fits else 0


def coarse_size(patch: Sequence[int], factor: int) -> tuple[int, int, int]:
    return tuple(max(1, int(s) // factor) for s in patch)  # type: ignore[return-value]


# ----------------------------------------------------------------------------- trainer


@METHODS.register("jcas")
class JCASTrainer(BaselineTrainer):
    """Cross-entropy, then class- and affinity-level forward correction with learned transition matrices."""

    OPTIONS = JCASOptions
    NAME = "JCAS"
    DESCRIPTION = "JCAS (Guo & Yuan 2022): joint class and affinity loss correction with learned transition matrices"
    FOOTNOTE = ("JCAS: 3D adaptation of the reference code (one scale, affinities on a 1/4 grid, the warmup and the "
                "affinity head's first stage in-run); no minimum-volume term unless its row says so (the reference "
                "weighs it 0.5).")
    TRAIN_SCALARS = (
        "loss", "loss_class", "loss_affinity", "loss_volume", "loss_consistency", "loss_dice",
        "class_t_offdiag", "affinity_t_offdiag", "class_t_fg_to_bg",
    )

    def log_columns(self) -> list[str]:
        """The base columns, and the warmup's affinity loss when it is on (older runs keep their columns)."""
        columns = super().log_columns()
        if not self.options.affinity_warmup:
            return columns
        return [*columns[: len(self.TRAIN_SCALARS)], "loss_affinity_warmup", *columns[len(self.TRAIN_SCALARS):]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        prior = class_prior(self.train_cases, self.labels)
        self.prior = torch.as_tensor(prior, dtype=torch.float32, device=self.device)  # (G, n)

    @property
    def warmup_epochs(self) -> int:
        return int(round(self.options.warmup_fraction * self.cfg.optim.epochs))

    def build_models(self) -> nn.Module:
        net = super().build_models()
        coarse = coarse_size(self.cfg.data.patch_size, self.options.coarse_factor)
        with torch.no_grad():
            probe = net.encoder(torch.zeros(1, self.in_channels, *self.cfg.data.patch_size))
        level = choose_level([f.shape[2:] for f in probe], coarse)
        groups, n = n_groups_classes(self.labels)
        return JCASModel(net, level, probe[level].shape[1], groups, n, self.options)

    def build_optimizer(self) -> torch.optim.Optimizer:
        """The base optimiser, the matrices in a second group at ``transition_lr_factor`` times the rate, no decay."""
        optim = self.cfg.optim
        matrices = {id(p) for p in self.net.transition_parameters()}
        network = [p for p in self.net.parameters() if id(p) not in matrices]
        groups = [
            {"params": network},
            {"params": self.net.transition_parameters(), "lr": optim.lr * self.options.transition_lr_factor,
             "weight_decay": 0.0},
        ]
        if optim.optimizer == "sgd":
            return torch.optim.SGD(groups, lr=optim.lr, momentum=optim.momentum, weight_decay=optim.weight_decay)
        if optim.optimizer == "adam":
            return torch.optim.Adam(groups, lr=optim.lr, weight_decay=optim.weight_decay)
        raise ValueError(f"optim.optimizer must be 'sgd' or 'adam', got {optim.optimizer!r}")

    def eval_model(self) -> nn.Module:
        return self.net.net

    def compute_loss(self, seg_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Warmup loss: mean per-voxel cross-entropy (plus the optional Dice term)."""
        loss = voxel_cross_entropy(seg_logits, target, self.labels.mode).mean()
        if self.options.dice_weight > 0:
            loss = loss + self.options.dice_weight * self.seg_loss(seg_logits, target)
        return loss

    def train_step(self, batch: dict[str, Any], epoch: int) -> dict[str, float]:
        image, label = batch["image"], batch["label"]  # (B, C, h, w, d), (B, n_outputs, h, w, d)
        self.optimizer.zero_grad(set_to_none=True)
        features, seg_logits = self.net.features_and_logits(image)
        if epoch < self.warmup_epochs:
            loss_class = self.compute_loss(seg_logits, label)
            loss = loss_class
            scalars = {"loss_class": loss_class.item()}
            if self.options.affinity_warmup:  # the affinity head learns before its matrix corrects it
                loss_affinity = self.plain_affinity_loss(features, label, seg_logits.shape[2:])
                loss = loss + self.options.affinity_weight * loss_affinity
                scalars["loss_affinity_warmup"] = loss_affinity.item()
            self.backward_and_step(loss)
            return {"loss": loss.item(), **scalars}
        parts = self.corrected_losses(features, seg_logits, label)
        o = self.options
        loss = (parts["loss_class"] + o.affinity_weight * parts["loss_affinity"]
                + o.volume_weight * parts["loss_volume"] + o.consistency_weight * parts["loss_consistency"])
        if o.dice_weight > 0:
            parts["loss_dice"] = self.seg_loss(seg_logits, label)
            loss = loss + o.dice_weight * parts["loss_dice"]
        self.backward_and_step(loss)
        scalars = {"loss": loss.item(), **{k: v.item() for k, v in parts.items()}}
        with torch.no_grad():
            scalars["class_t_offdiag"] = _mean_offdiagonal(self.net.class_t()).item()
            scalars["affinity_t_offdiag"] = _mean_offdiagonal(self.net.affinity_t()).item()
            # T[fg -> bg] (mean over foreground classes and groups): the entry whose growth lowers the decision
            # threshold and over-segments (issue 16); it should stay near its start (0.11) on clean labels
            scalars["class_t_fg_to_bg"] = self.net.class_t()[:, 1:, 0].mean().item()
        return scalars

    def plain_affinity_loss(self, features: torch.Tensor, label: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
        """The warmup's affinity loss: BCE of the predicted affinities against the label's, without T_a."""
        grid = coarse_size(shape, self.options.coarse_factor)
        affinity = feature_affinity(F.adaptive_avg_pool3d(features, grid).flatten(2))  # (B, N, N)
        targets = affinity_targets(coarse_onehot(group_targets(label, self.labels.mode), grid))  # (B, G, N, N)
        identity = torch.eye(2, dtype=affinity.dtype, device=affinity.device).expand(targets.shape[1], 2, 2)
        return affinity_loss(noisy_same_probability(affinity, identity), targets)

    def corrected_losses(
        self, features: torch.Tensor, seg_logits: torch.Tensor, label: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """The four terms of the joint loss after the warmup (see the module docstring)."""
        mode = self.labels.mode
        grid = coarse_size(seg_logits.shape[2:], self.options.coarse_factor)
        class_t, affinity_t = self.net.class_t(), self.net.affinity_t()  # (G, n, n), (G, 2, 2)
        onehot = group_targets(label, mode)  # (B, G, n, h, w, d)
        # Affinity branch: predicted clean affinities of the coarse cells, pushed through T_a.
        affinity = feature_affinity(F.adaptive_avg_pool3d(features, grid).flatten(2))  # (B, N, N)
        targets = affinity_targets(coarse_onehot(onehot, grid))  # (B, G, N, N)
        loss_affinity = affinity_loss(noisy_same_probability(affinity, affinity_t), targets)
        # Class branch: the prediction and its affinity-refined version, both pushed through T_c.
        coarse_logits = F.adaptive_avg_pool3d(seg_logits, grid)  # (B, n_outputs, *grid)
        refined = affinity_refined_logits(coarse_logits.flatten(2), affinity).view_as(coarse_logits)
        refined = F.interpolate(refined, size=seg_logits.shape[2:], mode="trilinear", align_corners=False)
        plain_ce = forward_corrected_ce(group_log_probs(seg_logits, mode), onehot, class_t)  # (B, G, h, w, d)
        refined_ce = forward_corrected_ce(group_log_probs(refined, mode), onehot, class_t)
        return {
            "loss_class": (plain_ce + refined_ce).mean(),
            "loss_affinity": loss_affinity,
            "loss_volume": volume_term(class_t, affinity_t),
            "loss_consistency": consistency_term(affinity_t, class_to_affinity_transition(class_t, self.prior)),
        }


def _mean_offdiagonal(t: torch.Tensor) -> torch.Tensor:
    n = t.shape[-1]
    return t[:, ~torch.eye(n, dtype=torch.bool, device=t.device)].mean()
