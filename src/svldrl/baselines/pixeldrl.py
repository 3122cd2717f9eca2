"""PixelDRL-MG (Sci. Rep. 2025, "pixel-level deep RL with pixel-by-pixel mask generation"), in 3D: a RECONSTRUCTION.

No public code exists and only the abstract is available to us (each pixel is an agent whose state,
foreground or background, is updated by direct actions; a pixel-level A3C). Our reading, a variant
of SVL-DRL that differs only in the state transition and the reward:

- The network sees (image, mask): the common three-decoder network with the F foreground channels
  of the current mask as extra input channels. Its segmentation decoder always sees a blank mask,
  so it is an ordinary segmenter, trained with the Dice loss as SVL-DRL's, and is what runs at
  inference.
- An episode starts from the segmentation decoder's own thresholded prediction m(0); each step
  every voxel agent acts on its mask value: 0 keep, 1 set foreground (the seg decoder's most likely
  foreground labelling of that voxel), 2 set background. The value and policy decoders see
  (image, m(t)).
- The reward is each voxel's improvement of agreement with the training label,
  ``|m_i(t-1) - y_i| - |m_i(t) - y_i|`` (mean over the F channels), nothing else: ``rl.reward``,
  ``rl.penalty_weight`` and ``rl.penalty_form`` are not used. The mask's soft-Dice change is logged
  as "reward_dice_gain" for comparison, and "reward_penalty_change" is 0.
- Stages, returns, A2C losses and gradient estimators are SVL-DRL's (``SVLDRLTrainer``). In the logs,
  "action_enhance" counts set-foreground and "action_weaken" set-background actions.

At inference the segmentation decoder runs on a blank mask; ``MaskStateNet.refine_steps > 0`` adds
that many greedy mask edits of the policy (``segment`` then returns the edited mask as logits).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from svldrl.config import TrainConfig
from svldrl.data import Case, LabelSpec
from svldrl.models import MaskStateNet, build_network, mask_channels
from svldrl.noise import NoiseManifest
from svldrl.rl import RewardParts, action_log_prob_and_entropy, sample_actions, soft_dice
from svldrl.rl.mask_actions import (  # noqa: F401  (the mechanism, importable from here as before the move)
    KEEP,
    MASK_LOGIT,
    SET_BACKGROUND,
    SET_FOREGROUND,
    apply_mask_actions,
    foreground_proposal,
    initial_mask,
    mask_agreement_reward,
    mask_logits,
)
from svldrl.training import METHODS, GradientPlan, Rollout, SVLDRLTrainer

# ----------------------------------------------------------------------------- trainer


@METHODS.register("pixeldrl-mg", aliases=("pixeldrl",))
class PixelDRLTrainer(SVLDRLTrainer):
    """SVL-DRL with PixelDRL-MG's state (the mask), transition (direct mask edits: ``rollout``) and per-voxel
    reward (``episode_rewards``); everything else is SVL-DRL's."""

    NAME = "PixelDRL-MG"
    ORACLE = False
    DESCRIPTION = ("PixelDRL-MG (2025), a 3D reconstruction from the abstract: voxel agents edit the mask "
                   "directly (keep / set foreground / set background), rewarded per voxel")
    FOOTNOTE = "PixelDRL-MG: reconstructed from the abstract (the paper's details are not available to us)."

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
        """As ``SVLDRLTrainer``; ``noise_manifest`` is kept like every method's and not used (no oracle)."""
        super().__init__(cfg, train_cases, val_cases, labels, run_dir, progress=progress, noise_manifest=noise_manifest,
                         trusted_ids=trusted_ids)  # fmt: skip

    @classmethod
    def table_label(cls, method_options: Mapping[str, Any] | None = None, trusted: bool = False) -> str:
        return cls.NAME

    @classmethod
    def inference_network(cls, cfg: TrainConfig, in_channels: int, labels: LabelSpec) -> MaskStateNet:
        """The module this method trains, validates and saves (``load_trained`` must rebuild this to load it):
        the network built for image + mask channels, wrapped so that ``segment(image)`` works."""
        f = mask_channels(labels)
        net = build_network(cfg.model, in_channels + f, labels.n_outputs)
        return MaskStateNet(net, in_channels, f, labels.mode)

    def build_models(self) -> nn.Module:
        return self.inference_network(self.cfg, self.in_channels, self.labels)

    def rollout(self, image: torch.Tensor, plan: GradientPlan, *, train_policy: bool) -> Rollout:
        """An episode of mask edits from m(0), the thresholded segmentation; ``probs`` holds the masks m(0..K).

        The segmentation (blank mask) is computed once; it stands for every state in ``plan.seg_weights``,
        so SVL-DRL's weighted Dice sum is the Dice loss of that one prediction.
        """
        rl, mode = self.cfg.rl, self.labels.mode
        with torch.set_grad_enabled(bool(plan.seg_weights)):
            seg = self.net(image, heads=("seg",)).seg  # (B, n_outputs, h, w, d) on the blank mask
        proposal = foreground_proposal(seg.detach(), mode)  # (B, F, h, w, d)
        masks = [initial_mask(seg.detach(), mode)]  # m(0)
        states = [self.net.state(image, masks[0])]  # (B, C + F, h, w, d)
        values, policy_logits, actions, entropy = {}, {}, [], []
        for t in range(rl.episode_length):
            heads = ("value", "policy") if t in plan.rl_weights else ("policy",)
            with torch.set_grad_enabled(t in plan.rl_weights):
                out = self.net(states[t], heads=heads)
            if t in plan.rl_weights:
                values[t] = out.value  # (B, 1, h, w, d)
                policy_logits[t] = out.policy if train_policy else out.policy.detach()
            action, _ = sample_actions(out.policy.detach(), rl.tau, self.generator)  # (B, h, w, d)
            with torch.no_grad():
                masks.append(apply_mask_actions(masks[t], action, proposal))  # m(t+1)
                states.append(self.net.state(image, masks[t + 1]))
                entropy.append(action_log_prob_and_entropy(out.policy.detach(), action, tau=rl.tau)[1])
            actions.append(action)
        with torch.no_grad():
            bootstrap = self.net(states[-1], heads=("value",)).value  # (B, 1, h, w, d) V(s(K))
        seg_logits = {t: seg for t in plan.seg_weights}
        return Rollout(states, masks, seg_logits, values, policy_logits, actions, entropy, bootstrap)

    def episode_rewards(self, probs: list[torch.Tensor], target: torch.Tensor) -> RewardParts:
        """r(1..K) from the masks m(0..K): total (K, B, 1, h, w, d) per-voxel agreement gains; the masks'
        soft-Dice gain (K, B) is reported beside it, not added; no anatomical penalty (zeros)."""
        steps = list(zip(probs[:-1], probs[1:], strict=True))  # (m(t-1), m(t)) for t = 1..K
        total = torch.stack([mask_agreement_reward(before, after, target) for before, after in steps])
        dice_gain = torch.stack([soft_dice(after, target) - soft_dice(before, target) for before, after in steps])
        zeros = torch.zeros_like(dice_gain)
        return RewardParts(total=total, dice_gain=dice_gain, penalty_change=zeros, penalty=zeros)
