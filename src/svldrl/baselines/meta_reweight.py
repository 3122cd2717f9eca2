"""Meta-reweighting per voxel (Learning to Reweight, Ren et al. ICML 2018), with the trusted cases as its clean set.

The reference row for SVL-DRL-T (issue 15): the same trusted credit (``rl/credit.py``) used directly,
without agents or a policy. Each step, every voxel of the noisy patches gets the weight
``max(0, C_i(y_i))`` (C3: how much one descent step on that voxel alone would lower the loss on a
batch of trusted patches), normalised to mean 1 over the batch, and the network trains on the
weighted Dice loss. Trusted patches of a batch (``data.trusted_per_batch``) keep weight 1.

Reference: github.com/uber-research/learning-to-reweight-examples @ 0b616c9 (TensorFlow, classification);
MLB-Seg (Wei et al., MICCAI 2023) applies the same per-pixel meta-gradient to segmentation (LA
among its data sets). Where we depart, and why:

- The per-voxel meta-gradient is computed exactly at first order with a Jacobian-vector product
  (one forward-mode pass), where the reference differentiates through a virtual SGD step; the
  two are the same quantity (``rl/credit.py``, C1) up to the step size, which the normalisation
  removes.
- The credit takes each voxel's loss as cross-entropy (the only per-voxel decomposable form).
  What the weights then multiply depends on ``optim.loss``:

  - ``dice`` (the default, the baseline's loss family): a soft Dice whose sums are weighted,
    ``1 - (2 sum w p y + e) / (sum w p + sum w y + e)`` per channel and sample, mean over both, as
    MONAI's ``DiceLoss`` without weights. This is a departure: Dice is not linear in the weights,
    so ``C_i`` is not the meta-gradient of this loss's weights.
  - ``dice_ce`` (Learning to Reweight's form, and MLB-Seg's): the weights multiply the per-voxel
    cross-entropy, ``Dice + mean_i w_i CE_i``, with the Dice term unweighted, and the trusted loss
    is the same Dice + CE. The CE term is linear in the weights, so ``C_i / N`` is exactly the
    derivative of ``g_T . grad L_train`` with respect to ``w_i`` (tested), as in the reference.
    With all weights 1 it is MONAI's ``DiceCELoss``; its control is the Dice + CE baseline.

  On LA under SFDA 50 % (docs/results.md, Session 32) both forms end about 6 Dice points below the
  same batches unweighted. In both, foreground labels the network disputes, which are SFDA's false
  positives, get 2-3 times the mean weight.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from svldrl.baselines.common import (
    BaselineTrainer,
    group_log_probs,
    group_targets,
    option,
    parse_method_options,
    require_trusted,
    seg_probabilities,
)
from svldrl.data import TrustedBatches
from svldrl.rl.credit import CREDIT_ESTIMATORS, descent_logit_change, group_delta, label_credit, reweight
from svldrl.rl.credit import trusted_gradient as trusted_loss_gradient
from svldrl.training import METHODS
from svldrl.training.label_episode import seg_forward
from svldrl.training.losses import weighted_dice_loss


@dataclasses.dataclass(frozen=True)
class MetaReweightOptions:
    trusted_batch: int = option(2, "trusted patches per step for the meta-gradient (from the trusted cases only)")
    credit_estimator: str = option("jvp",
                                   "'jvp' (exact) or 'finite_difference' (two more forwards, a few per cent off)")


@METHODS.register("meta-reweight", aliases=("l2rw",))
class MetaReweightTrainer(BaselineTrainer):
    """Per-voxel Learning to Reweight on the trusted cases: the weights multiply the Dice sums (``optim.loss=dice``)
    or each voxel's cross-entropy in Dice + CE (``dice_ce``, the reference's form); ``reweighted_loss``."""

    OPTIONS = MetaReweightOptions
    LOSS_KINDS = ("dice", "dice_ce")  # what the weights multiply: reweighted_loss
    NAME = "Meta-reweight"
    DESCRIPTION = ("Meta-reweight (Ren 2018, per voxel): each noisy voxel weighted by how much training on it "
                   "lowers the loss on trusted cases (needs trusted cases)")
    FOOTNOTE = ("Meta-reweight: Learning to Reweight per voxel, clean set = the trusted cases; the weights on "
                "the Dice sums (optim.loss=dice) or on the cross-entropy of Dice + CE (dice_ce, the reference's form).")
    TRAIN_SCALARS = ("loss", "weight_zero_fraction", "weight_max", "weight_label_foreground",
                     "weight_foreground_corrupted", "weight_foreground_untouched")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.trusted_batches = TrustedBatches(self.train_cases, self.labels, self.cfg.data, self.cfg.seed,
                                              self.trusted_ids)

    @classmethod
    def check_config(cls, cfg: Any) -> None:
        super().check_config(cfg)
        options = parse_method_options(MetaReweightOptions, cfg.method_options, cfg.method)
        require_trusted(cfg, "meta-reweight")
        if options.credit_estimator not in CREDIT_ESTIMATORS:
            raise ValueError(f"method_options.credit_estimator must be one of {CREDIT_ESTIMATORS}, "
                             f"got {options.credit_estimator!r}")
        if int(options.trusted_batch) < 1:
            raise ValueError(f"method_options.trusted_batch must be >= 1, got {options.trusted_batch}")

    def train_step(self, batch: dict[str, Any], epoch: int) -> dict[str, float]:
        image, label = batch["image"], batch["label"]
        noisy = torch.tensor([c not in self.trusted_ids for c in batch["case_id"]], device=self.device)  # (B,)
        weights = torch.ones_like(label[:, :1])  # (B, 1, h, w, d)
        if noisy.any():
            weights[noisy] = self.voxel_weights(image[noisy], label[noisy], epoch)
        self.optimizer.zero_grad(set_to_none=True)
        logits = self.net(image, heads=("seg",)).seg
        loss = reweighted_loss(logits, label, weights, self.labels.mode, self.cfg.optim.loss)
        self.backward_and_step(loss)
        w = weights[noisy] if noisy.any() else weights
        labelled_foreground = self.foreground_of(label)  # (B, 1, h, w, d)
        foreground = labelled_foreground[noisy] if noisy.any() else None
        return {
            "loss": loss.item(),
            "weight_zero_fraction": (w == 0).float().mean().item(),
            "weight_max": w.max().item(),
            # mean weight on voxels labelled foreground: below 1 means foreground labels are distrusted
            "weight_label_foreground": w[foreground].mean().item() if foreground is not None and foreground.any()
            else float("nan"),
            **self.foreground_weight_by_corruption(weights, labelled_foreground, batch["case_id"], noisy),
        }

    def foreground_weight_by_corruption(
        self, weights: torch.Tensor, foreground: torch.Tensor, case_ids: list[str], noisy: torch.Tensor
    ) -> dict[str, float]:
        """Mean weight of the voxels labelled foreground in the corrupted noisy rows, and in the untouched ones.

        ``foreground``: (B, 1, h, w, d) bool, ``foreground_of`` the batch label.

        After the fact, from the noise manifest (NaN where a batch has no such row). Under SFDA the
        corrupted cases' foreground labels hold the false positives: a reweighting that finds them
        gives their foreground less weight than the untouched cases'. (Per row the mean weight says
        nothing: with one noisy row per batch it is 1 by the normalisation.)
        """
        nan = float("nan")
        if self.corrupted_ids is None:
            return {"weight_foreground_corrupted": nan, "weight_foreground_untouched": nan}
        corrupted = torch.tensor([c in self.corrupted_ids for c in case_ids], device=weights.device)
        out = {}
        for name, rows in (("weight_foreground_corrupted", noisy & corrupted),
                           ("weight_foreground_untouched", noisy & ~corrupted)):  # fmt: skip
            mask = foreground[rows]
            out[name] = weights[rows][mask].mean().item() if mask.any() else nan
        return out

    def voxel_weights(self, image: torch.Tensor, label: torch.Tensor, epoch: int) -> torch.Tensor:
        """(b, 1, h, w, d) C3 weights of the noisy rows from one trusted batch's gradient."""
        trusted = self.batch_to_device(self.trusted_batches.next(epoch, self.batches_per_epoch,
                                                                 self.options.trusted_batch))  # fmt: skip
        g_t = trusted_loss_gradient(self.net, seg_forward, trusted["image"], trusted["label"], self.seg_loss)
        logits, delta = descent_logit_change(self.net, seg_forward, image, g_t, self.options.credit_estimator)
        probs = group_log_probs(logits, self.labels.mode).exp()  # (b, G, n, h, w, d)
        credit = label_credit(group_delta(delta, self.labels.mode), probs, group_targets(label, self.labels.mode))
        return reweight(credit)

    def foreground_of(self, label: torch.Tensor) -> torch.Tensor:
        """(b, 1, h, w, d) bool: voxels labelled with any foreground class or region."""
        fg = label[:, 1:] if self.labels.mode == "classes" else label
        return fg.amax(dim=1, keepdim=True) > 0


def voxel_cross_entropy(logits: torch.Tensor, target: torch.Tensor, mode: str) -> torch.Tensor:
    """(B, 1, h, w, d) each voxel's cross-entropy, the loss whose descent step C1 credits.

    Classes: softmax cross-entropy. Regions: binary cross-entropy averaged over the regions, the
    scale of the baseline's per-channel BCE (``DiceBCELoss``).
    """
    per_group = -(group_targets(target, mode) * group_log_probs(logits, mode)).sum(dim=2)  # (B, G, h, w, d)
    return per_group.mean(dim=1, keepdim=True)


def reweighted_loss(
    logits: torch.Tensor, target: torch.Tensor, weights: torch.Tensor, mode: str, loss_kind: str
) -> torch.Tensor:
    """The training loss with (B, 1, ...) voxel weights: on the Dice sums (``dice``) or on the CE (``dice_ce``).

    ``dice_ce`` is Learning to Reweight's form (module docstring): ``Dice + mean_i w_i CE_i``,
    equal to MONAI's ``DiceCELoss`` (``DiceBCELoss`` for regions) with all weights 1.
    """
    probs = seg_probabilities(logits, mode)
    if loss_kind == "dice":
        return weighted_dice_loss(probs, target, weights)
    if loss_kind != "dice_ce":
        raise ValueError(f"meta-reweight: optim.loss must be 'dice' or 'dice_ce', got {loss_kind!r}")
    dice = weighted_dice_loss(probs, target, torch.ones_like(weights))
    return dice + (weights * voxel_cross_entropy(logits, target, mode)).mean()
