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
- The credit takes each voxel's loss as cross-entropy (the only per-voxel decomposable form),
  while the network trains on the weighted Dice loss (the baseline's loss family): a soft Dice
  whose sums are weighted, ``1 - (2 sum w p y + e) / (sum w p + sum w y + e)`` per channel and
  sample, mean over both, as MONAI's ``DiceLoss`` without weights.
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
    credit_estimator: str = option("jvp", "'jvp' (exact) or 'finite_difference' (one more forward)")


@METHODS.register("meta-reweight", aliases=("l2rw",))
class MetaReweightTrainer(BaselineTrainer):
    """Per-voxel Learning to Reweight on the trusted cases, trained with the weighted Dice loss."""

    OPTIONS = MetaReweightOptions
    NAME = "Meta-reweight"
    DESCRIPTION = ("Meta-reweight (Ren 2018, per voxel): each noisy voxel weighted by how much training on it "
                   "lowers the loss on trusted cases (needs trusted cases)")
    FOOTNOTE = "Meta-reweight: Learning to Reweight per voxel, clean set = the trusted cases; weighted Dice loss."
    TRAIN_SCALARS = ("loss", "weight_zero_fraction", "weight_max", "weight_label_foreground")

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
        loss = weighted_dice_loss(seg_probabilities(logits, self.labels.mode), label, weights)
        self.backward_and_step(loss)
        w = weights[noisy] if noisy.any() else weights
        foreground = self.foreground_of(label[noisy]) if noisy.any() else None
        return {
            "loss": loss.item(),
            "weight_zero_fraction": (w == 0).float().mean().item(),
            "weight_max": w.max().item(),
            # mean weight on voxels labelled foreground: below 1 means foreground labels are distrusted
            "weight_label_foreground": w[foreground].mean().item() if foreground is not None and foreground.any()
            else float("nan"),
        }

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
