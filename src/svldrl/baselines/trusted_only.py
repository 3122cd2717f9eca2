"""``trusted-only``: the plain baseline trained on the trusted (expert-checked) cases alone.

Ours (issue 14), a reference row rather than a published method: no reference code.

The reference row every noisy-label method must beat to be worth its noisy labels: if a few clean
cases teach as much as many noisy ones, the noisy labels carried little and no noise handling can
show much (issue 14). Same loss and network as ``baseline``, and the same number of optimisation
steps when ``optim.iters_per_epoch`` is set (the LA protocols); with one pass over the training
cases per epoch (``iters_per_epoch: null``) it takes fewer steps, as the baseline would on so few.
"""

from __future__ import annotations

from collections.abc import Sequence

from svldrl.baselines.common import has_trusted_cases
from svldrl.config import TrainConfig
from svldrl.data import Case
from svldrl.training import METHODS, Trainer


@METHODS.register("trusted-only")
class TrustedOnlyTrainer(Trainer):
    """The baseline on the trusted cases only (a reference row, not a noise-handling method)."""

    DESCRIPTION = "Trusted only: the baseline trained on the trusted cases alone (data.trusted_count / trusted_cases)"

    @classmethod
    def check_config(cls, cfg: TrainConfig) -> None:
        super().check_config(cfg)
        if not has_trusted_cases(cfg):
            raise ValueError(
                "trusted-only: needs trusted cases; set data.trusted_count (simulations) or data.trusted_cases"
            )
        if cfg.data.trusted_per_batch:
            raise ValueError("trusted-only: data.trusted_per_batch must be 0 (every case it trains on is trusted)")

    def select_training_cases(self, cases: Sequence[Case]) -> Sequence[Case]:
        kept = [c for c in cases if c.case_id in self.trusted_ids]
        if not kept:
            raise ValueError("trusted-only: none of the training cases is trusted")
        return kept
