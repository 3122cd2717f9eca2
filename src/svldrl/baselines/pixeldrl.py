"""PixelDRL-MG (Sci. Rep. 2025, "pixel-level deep RL with pixel-by-pixel mask generation"), in 3D: a RECONSTRUCTION.

Only the abstract is available (each pixel is an agent whose state, foreground or background, is
updated by direct actions; a pixel-level A3C). Our reading, a variant of SVL-DRL that differs only
in the state transition and the reward:

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
from svldrl.models import HEADS, NetOutput, ThreeHeadNet, build_network
from svldrl.noise import NoiseManifest
from svldrl.rl import RewardParts, action_log_prob_and_entropy, greedy_actions, sample_actions, soft_dice
from svldrl.training import METHODS, GradientPlan, Rollout, SVLDRLTrainer

KEEP, SET_FOREGROUND, SET_BACKGROUND = 0, 1, 2
"""Mask actions of a voxel agent (the policy decoder's three outputs)."""
MASK_LOGIT = 10.0
"""|logit| of a refined mask returned by ``MaskStateNet.segment`` (softmax/sigmoid ~ 1 - 5e-5)."""


# ----------------------------------------------------------------------------- mechanism


def initial_mask(seg_logits: torch.Tensor, mode: str) -> torch.Tensor:
    """(B, F, ...) thresholded prediction: foreground channels of the argmax (classes) or sigmoid > 0.5 (regions)."""
    if mode == "classes":
        onehot = nn.functional.one_hot(seg_logits.argmax(dim=1), seg_logits.shape[1]).movedim(-1, 1)
        return onehot[:, 1:].to(seg_logits.dtype)
    return (seg_logits > 0).to(seg_logits.dtype)


def foreground_proposal(seg_logits: torch.Tensor, mode: str) -> torch.Tensor:
    """(B, F, ...) what "set foreground" writes: the most likely foreground class (one-hot), or for regions
    the regions above 0.5, else the most likely one."""
    fg = seg_logits[:, 1:] if mode == "classes" else seg_logits  # (B, F, ...)
    best = nn.functional.one_hot(fg.argmax(dim=1), fg.shape[1]).movedim(-1, 1).to(seg_logits.dtype)
    if mode == "classes":
        return best
    above = (fg > 0).to(seg_logits.dtype)
    return torch.where(above.sum(dim=1, keepdim=True) > 0, above, best)


def apply_mask_actions(mask: torch.Tensor, actions: torch.Tensor, proposal: torch.Tensor) -> torch.Tensor:
    """The next mask: per voxel keep (0), write ``proposal`` (1) or clear every channel (2).

    Args:
        mask: (B, F, ...) current mask in {0, 1}.
        actions: (B, ...) integer actions in {0, 1, 2}.
        proposal: (B, F, ...) foreground labelling written by action 1.
    """
    if mask.shape != proposal.shape or actions.shape != mask.shape[:1] + mask.shape[2:]:
        raise ValueError(f"apply_mask_actions: mask {tuple(mask.shape)}, proposal {tuple(proposal.shape)} and "
                         f"actions {tuple(actions.shape)} do not fit (actions: one per voxel)")
    if actions.dtype.is_floating_point or (actions.numel() and (actions.min() < 0 or actions.max() > 2)):
        raise ValueError("apply_mask_actions: actions must be integers in {0, 1, 2}")
    a = actions.unsqueeze(1)  # (B, 1, ...)
    return torch.where(a == SET_FOREGROUND, proposal, torch.where(a == SET_BACKGROUND, torch.zeros_like(mask), mask))


@torch.no_grad()
def mask_agreement_reward(prev_mask: torch.Tensor, mask: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B, 1, ...) each voxel's improvement of agreement with the label, ``|m(t-1) - y| - |m(t) - y|``, mean over F.

    Args:
        prev_mask, mask: (B, F, ...) masks before and after the step.
        target: (B, F, ...) foreground channels of the training label.
    """
    return ((prev_mask - target).abs() - (mask - target).abs()).mean(dim=1, keepdim=True)


def mask_logits(mask: torch.Tensor, mode: str) -> torch.Tensor:
    """(B, n_outputs, ...) logits whose softmax/sigmoid is (almost) the (B, F, ...) mask (background = no channel)."""
    if mode == "classes":
        background = 1.0 - mask.amax(dim=1, keepdim=True)
        mask = torch.cat([background, mask], dim=1)
    return MASK_LOGIT * (2.0 * mask - 1.0)


# ----------------------------------------------------------------------------- model


class MaskStateNet(nn.Module):
    """The three-decoder network on (image, mask) states; an image alone is given the blank mask.

    Args:
        net: a ``ThreeHeadNet`` built for ``image_channels + mask_channels`` inputs.
        image_channels: C of the images.
        mask_channels: F, the foreground channels of the labels.
        mode: "classes" or "regions".
    """

    def __init__(self, net: ThreeHeadNet, image_channels: int, mask_channels: int, mode: str) -> None:
        super().__init__()
        self.net = net
        self.image_channels = image_channels
        self.mask_channels = mask_channels
        self.mode = mode
        self.refine_steps = 0
        """Greedy mask-edit steps ``segment`` applies after the segmentation (0: plain segmentation)."""

    def state(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, C + F, ...) the state (image, mask)."""
        return torch.cat([image, mask.to(image.dtype)], dim=1)

    def blank(self, image: torch.Tensor) -> torch.Tensor:
        """(B, C + F, ...) the image with an empty mask, the segmentation decoder's input."""
        return self.state(image, image.new_zeros(image.shape[0], self.mask_channels, *image.shape[2:]))

    def forward(self, x: torch.Tensor, heads: Sequence[str] = HEADS) -> NetOutput:
        """Decoders on a state (B, C + F, ...); an image (B, C, ...) is segmented on the blank mask."""
        if x.shape[1] == self.image_channels:
            if set(heads) - {"seg"}:
                raise ValueError("MaskStateNet: the value and policy decoders need a state (image, mask), got an "
                                 "image; PixelDRL-MG's policy edits masks, not intensities (use refine_steps)")
            x = self.blank(x)
        return self.net(x, heads=heads)

    def segment(self, image: torch.Tensor) -> torch.Tensor:
        """(B, n_outputs, ...) logits: the seg decoder on the blank mask, then ``refine_steps`` greedy edits."""
        logits = self.net.segment(self.blank(image))
        if self.refine_steps < 1:
            return logits
        return mask_logits(self.refine_mask(image, logits, self.refine_steps), self.mode)

    def refine_mask(self, image: torch.Tensor, seg_logits: torch.Tensor, steps: int) -> torch.Tensor:
        """(B, F, ...) the thresholded prediction after ``steps`` greedy (argmax) policy edits."""
        mask, proposal = initial_mask(seg_logits, self.mode), foreground_proposal(seg_logits, self.mode)
        for _ in range(steps):
            actions = greedy_actions(self.net(self.state(image, mask), heads=("policy",)).policy)  # (B, ...)
            mask = apply_mask_actions(mask, actions, proposal)
        return mask


# ----------------------------------------------------------------------------- trainer


def mask_channels(labels: LabelSpec) -> int:
    """F: foreground channels of a label (classes without background, or every region)."""
    return labels.n_outputs - 1 if labels.mode == "classes" else labels.n_outputs


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
