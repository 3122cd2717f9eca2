"""SVL-DRL: the paper's training step, read top to bottom in the order it runs.

Warmup (Eq. 1) trains the encoder and segmentation decoder on the image. Transition (Eq. 4) and
Full RL (Eq. 7) run an episode of K voxel-action steps from s(0) = x (Eq. 10), score each step
(Eqs. 11-14), turn the rewards into n-step returns (Eq. 2) and combine Dice, value (Eq. 3) and
policy (Eqs. 5-6) losses. "Every voxel is an agent": values, actions and log-probabilities are
per-voxel maps, all agents of a batch are updated together (synchronous A2C, method.md).

Two gradient estimators of the same loss (``method_options["gradient_estimator"]``):

- ``"full"`` (default, method.md): every state s(0..K) is forwarded with gradient; Dice loss on
  the states of ``rl.seg_loss_states``, value and policy losses averaged over the K steps.
- ``"sampled"``: the rollout runs without gradient except at two states: s(0) and s(n) with
  n ~ U{1..K}. The Dice loss is ``L(s0) / (K+1) + L(s(n)) * K / (K+1)``, and the value/policy
  losses are taken at the single step m = n mod K (uniform on 0..K-1), whose state is s(0) or
  s(n) and so costs no extra pass. Both are unbiased estimates of the full-form losses (with
  ``seg_loss_states="last"``: Dice on s(K), step m ~ U{0..K-1}). Fewer backward passes, same
  expected gradient, more variance; see benchmarks/bench_training.py for the cost.
- ``"single"`` (issue 17): one state carries all the gradient: n ~ U{0..K}, Dice loss
  ``L(s(n))`` and, when n < K, the value/policy losses of the step from s(n) weighted (K+1)/K.
  Also unbiased for the full form (each Dice state has weight 1/(K+1) in expectation, each step
  1/K), with one backward pass a step: its cost is the gradient-free episode plus one baseline
  backward, the least any estimator of this loss can cost, at the price of more variance (the
  image s(0) itself carries the Dice loss only one step in K+1). Needs ``seg_loss_states="all"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch

from svldrl.config import StageConfig, TrainConfig
from svldrl.data import Case, LabelSpec
from svldrl.noise import NoiseManifest
from svldrl.rl import (
    ENHANCE,
    KEEP,
    WEAKEN,
    RewardParts,
    action_log_prob_and_entropy,
    apply_actions,
    discounted_returns,
    normalize_advantages,
    policy_loss,
    sample_actions,
    step_reward,
    value_loss,
)
from svldrl.rl.rewards import GRANULARITIES, PENALTY_FORMS
from svldrl.training.methods import METHODS
from svldrl.training.stages import Stage, StageSchedule
from svldrl.training.trainer import Trainer

GRADIENT_ESTIMATORS = ("full", "sampled", "single")
METHOD_OPTIONS = {"gradient_estimator": "full"}
"""Options of this method in ``cfg.method_options`` and their defaults."""
METHOD_OPTION_DOCS = {
    "gradient_estimator": "'full' (every state of an episode with gradient, method.md), 'sampled' (s(0) and one "
    "sampled state: unbiased, fewer backward passes) or 'single' (one state, one backward pass; needs "
    "rl.seg_loss_states=all); module docstring",
}
"""One line each, shown by ``svldrl methods NAME``."""


class GradientPlan(NamedTuple):
    """Which states of an episode carry gradient, and the weight of each one's loss terms."""

    seg_weights: dict[int, float]
    """state index t in 0..K -> weight of Dice(seg(s(t)), y) in L_dice."""
    rl_weights: dict[int, float]
    """state index t in 0..K-1 -> weight of the value and policy terms of the step taken from s(t)."""

    @property
    def grad_states(self) -> set[int]:
        return set(self.seg_weights) | set(self.rl_weights)


class Rollout(NamedTuple):
    """One episode of K steps; index t is the state s(t). Only the planned states keep gradient."""

    states: list[torch.Tensor]
    """s(0..K), each (B, C, h, w, d), detached: no gradient flows through the image."""
    probs: list[torch.Tensor]
    """f(0..K), each (B, F, h, w, d) foreground probabilities, detached (rewards)."""
    seg_logits: dict[int, torch.Tensor]
    """t -> (B, n_outputs, h, w, d) segmentation logits with gradient, for t in ``seg_weights``."""
    values: dict[int, torch.Tensor]
    """t -> (B, 1, h, w, d) V(s(t)) with gradient, for t in ``rl_weights``."""
    policy_logits: dict[int, torch.Tensor]
    """t -> (B, 3, h, w, d) policy logits of s(t), for t in ``rl_weights``."""
    actions: list[torch.Tensor]
    """a(0..K-1), each (B, h, w, d) long: the action taken in s(t), leading to s(t+1)."""
    entropy: list[torch.Tensor]
    """per step, (B, h, w, d) policy entropy at s(t) (detached, for the logs)."""
    bootstrap: torch.Tensor
    """(B, 1, h, w, d) V(s(K)), detached: the tail of the n-step return."""


def gradient_plan(k: int, estimator: str, seg_loss_states: str, generator: torch.Generator) -> GradientPlan:
    """Loss weights per state for one episode (see the module docstring); "sampled" draws from ``generator``."""
    if estimator == "full":
        seg = {t: 1.0 / (k + 1) for t in range(k + 1)} if seg_loss_states == "all" else {k: 1.0}
        return GradientPlan(seg, {t: 1.0 / k for t in range(k)})
    if estimator == "single":
        return single_plan(k, int(torch.randint(0, k + 1, (1,), generator=generator, device=generator.device)))
    draw = int(torch.randint(0, k, (1,), generator=generator, device=generator.device))
    return sampled_plan(k, draw, seg_loss_states)


def sampled_plan(k: int, draw: int, seg_loss_states: str) -> GradientPlan:
    """The "sampled" estimator's plan for a uniform ``draw`` in 0..K-1.

    "all": Dice on s(0) and s(n), n = draw + 1, weighted 1/(K+1) and K/(K+1); value/policy on the
    step from s(n mod K), which is s(n) or s(0), so two states carry all the gradient.
    "last": Dice on s(K); value/policy on the step from s(draw).
    """
    if seg_loss_states == "all":
        n = draw + 1
        return GradientPlan({0: 1.0 / (k + 1), n: k / (k + 1)}, {n % k: 1.0})
    return GradientPlan({k: 1.0}, {draw: 1.0})


def single_plan(k: int, n: int) -> GradientPlan:
    """The "single" estimator's plan for a uniform ``n`` in 0..K: every loss term at the one state s(n).

    Dice on s(n) with weight 1 (1/(K+1) in expectation, as the full form's mean over K+1 states);
    value/policy on the step from s(n) with weight (K+1)/K when n < K (1/K in expectation), none
    when n = K, the state no action is taken from.
    """
    return GradientPlan({n: 1.0}, {n: (k + 1) / k} if n < k else {})


def episode_rewards(probs: list[torch.Tensor], target: torch.Tensor, cfg: TrainConfig) -> RewardParts:
    """r(1..K) from f(0..K) (Eqs. 11-14), on a leading step axis: total (K, B) or (K, B, 1, h, w, d), parts (K, B)."""
    rl = cfg.rl
    parts, prev_penalty = [], None
    for t in range(1, len(probs)):
        part = step_reward(
            probs[t - 1], probs[t], target, granularity=rl.reward, penalty_weight=rl.penalty_weight,
            penalty_form=rl.penalty_form, prev_penalty=prev_penalty,
        )
        parts.append(part)
        prev_penalty = part.penalty  # C~(f(t)) is scored once and reused as the next step's "before"
    return RewardParts(*(torch.stack(field) for field in zip(*parts, strict=True)))


def stage_loss(
    stage: Stage,
    stage_cfg: StageConfig,
    l_dice: torch.Tensor,
    l_value: torch.Tensor | None = None,
    l_policy: torch.Tensor | None = None,
) -> torch.Tensor:
    """The loss of each stage: Eq. 1 (Warmup), Eq. 4 (Transition), Eq. 7 (Full RL)."""
    if stage is Stage.WARMUP:
        return l_dice  # Eq. 1
    if l_value is None:
        raise ValueError(f"stage_loss: {stage.value} needs the value loss")
    if stage is Stage.TRANSITION:
        return (1.0 - stage_cfg.lambda_value) * l_dice + stage_cfg.lambda_value * l_value  # Eq. 4
    if l_policy is None:
        raise ValueError("stage_loss: full_rl needs the policy loss")
    alpha, beta = stage_cfg.alpha, stage_cfg.beta
    return (1.0 - alpha - beta) * l_dice + alpha * l_value + beta * l_policy  # Eq. 7 (alpha value, beta policy)


@METHODS.register("svl-drl", aliases=("svldrl",))
class SVLDRLTrainer(Trainer):
    """Staged voxel-level deep RL (Warmup -> Transition -> Full RL) on the three-decoder network."""

    OPTION_DOCS = METHOD_OPTION_DOCS
    TRAIN_SCALARS = (
        "loss", "loss_dice", "loss_value", "loss_policy",
        "reward", "reward_dice_gain", "reward_penalty_change",
        "action_keep", "action_enhance", "action_weaken", "value_mean", "policy_entropy", "advantage_std",
    )

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
        self.options = self.parse_options(cfg)
        _check_rl_config(cfg)
        self.schedule = StageSchedule(cfg.stages, cfg.optim.epochs)
        super().__init__(cfg, train_cases, val_cases, labels, run_dir, progress=progress, noise_manifest=noise_manifest,
                         trusted_ids=trusted_ids)  # fmt: skip

    @classmethod
    def check_config(cls, cfg: TrainConfig) -> None:
        """The RL keys, the method options and the stage schedule, before any data is read."""
        super().check_config(cfg)
        cls.parse_options(cfg)
        _check_rl_config(cfg)
        StageSchedule(cfg.stages, cfg.optim.epochs)

    @classmethod
    def parse_options(cls, cfg: TrainConfig) -> Any:
        """This method's ``cfg.method_options`` with defaults; a variant with options of its own overrides it."""
        return _method_options(cfg)

    def stage_name(self, epoch: int) -> str:
        return self.schedule.stage(epoch).value

    def train_step(self, batch: dict[str, Any], epoch: int) -> dict[str, float]:
        """One SVL-DRL step; the stage of ``epoch`` decides the loss (Eqs. 1, 4, 7)."""
        stage = self.schedule.stage(epoch)
        image, label = batch["image"], batch["label"]  # (B, C, h, w, d), (B, n_outputs, h, w, d)
        self.optimizer.zero_grad(set_to_none=True)
        if stage is Stage.WARMUP:
            # Eq. 1: Dice loss of the prediction on the image; only the segmentation decoder runs,
            # so no gradient can reach the value and policy decoders.
            l_dice = self.compute_loss(self.net(image, heads=("seg",)).seg, label)
            loss = stage_loss(stage, self.cfg.stages, l_dice)
            self.backward_and_step(loss)
            return {"loss": loss.item(), "loss_dice": l_dice.item()}

        rl = self.cfg.rl
        plan = gradient_plan(rl.episode_length, self.options["gradient_estimator"], rl.seg_loss_states, self.generator)
        # 1. Rollout: K steps of sampled voxel actions (Eq. 10), s(t+1) = apply_actions(s(t), a(t), eps).
        rollout = self.rollout(image, plan, train_policy=stage is Stage.FULL_RL)
        # 2. Rewards r(1..K) (Eqs. 11-14): Dice gain minus the change of anatomical penalty, against
        #    the training label y (noisy or not), without gradient.
        rewards = episode_rewards(rollout.probs, self.foreground(label), self.cfg)
        # 3. Returns (Eq. 2): R(t) = r(t) + gamma R(t+1), R(K) = r(K) + gamma V(s(K)); R[t] is the
        #    return of the state s(t) the action a(t) was taken in (n-step A2C).
        returns = discounted_returns(rewards.total, rollout.bootstrap, rl.gamma)  # (K, B, 1, h, w, d)
        # 4. Losses. Dice over the planned states (method.md: mean over s(0..K); "last": s(K)).
        l_dice = sum(w * self.compute_loss(rollout.seg_logits[t], label) for t, w in plan.seg_weights.items())
        # Eq. 3: value loss (R(t) - V(s(t)))^2, mean over voxels and steps.
        # (An empty sum, the "single" estimator's draw of s(K), is a zero tensor: no step trained.)
        zero = l_dice.new_zeros(())
        l_value = sum((w * value_loss(returns[t : t + 1], rollout.values[t][None]) for t, w in plan.rl_weights.items()),
                      zero)  # fmt: skip
        l_policy = None
        if stage is Stage.FULL_RL:
            # Eqs. 5-6: A = R - V (detached), -log pi(a|s) A minus the entropy bonus.
            l_policy = sum((w * self.policy_term(rollout, returns, t) for t, w in plan.rl_weights.items()), zero)
        # Eq. 4 (Transition) or Eq. 7 (Full RL). In Transition the policy logits are used detached
        # (for sampling only), so no gradient reaches the policy decoder.
        loss = stage_loss(stage, self.cfg.stages, l_dice, l_value, l_policy)
        self.backward_and_step(loss)
        return self.step_scalars(loss, l_dice, l_value, l_policy, rollout, rewards, returns, plan)

    # ------------------------------------------------------------------ 1. rollout

    def rollout(self, image: torch.Tensor, plan: GradientPlan, *, train_policy: bool) -> Rollout:
        """Run the episode from s(0) = image; forwards keep gradient only at the planned states."""
        rl = self.cfg.rl
        k = rl.episode_length
        replay = self.dist.enabled  # DDP reduces one forward pass per step: act without gradient, replay after
        states, probs, actions, entropy = [image.detach()], [], [], []
        seg_logits, values, policy_logits = {}, {}, {}
        bootstrap = None
        for t in range(k + 1):
            last = t == k
            if last:
                heads = ("seg", "value")  # f(K) for the last reward, V(s(K)) for the bootstrap
            elif t in plan.rl_weights:
                heads = ("seg", "value", "policy")  # a trained step: V(s(t)) and pi(.|s(t)) with gradient
            else:
                heads = ("seg", "policy")  # f(t) for the rewards, pi(.|s(t)) to act
            with torch.set_grad_enabled(t in plan.grad_states and not replay):
                out = (self.module if replay else self.net)(states[t], heads=heads)
            probs.append(self.foreground_probabilities(out.seg.detach().float()))  # (B, F, h, w, d) f(t), fp32
            if t in plan.seg_weights:
                seg_logits[t] = out.seg
            if last:
                bootstrap = out.value.detach()  # (B, 1, h, w, d) V(s(K))
                break
            if t in plan.rl_weights:
                values[t] = out.value
                policy_logits[t] = out.policy if train_policy else out.policy.detach()
            action, _ = sample_actions(out.policy.detach(), rl.tau, self.generator)  # (B, h, w, d)
            eps = torch.rand(action.shape, generator=self.generator, device=action.device)  # (B, h, w, d) U(0, 1)
            with torch.no_grad():
                states.append(apply_actions(states[t], action, eps, rl.action_scale))  # s(t+1), Eq. 10
                entropy.append(action_log_prob_and_entropy(out.policy.detach(), action, tau=rl.tau)[1])
            actions.append(action)
        assert bootstrap is not None
        if replay:
            seg_logits, values, policy_logits = self.replay_with_gradient(states, plan, train_policy=train_policy)
        return Rollout(states, probs, seg_logits, values, policy_logits, actions, entropy, bootstrap)

    def replay_with_gradient(
        self, states: list[torch.Tensor], plan: GradientPlan, *, train_policy: bool
    ) -> tuple[dict[int, torch.Tensor], dict[int, torch.Tensor], dict[int, torch.Tensor]]:
        """The planned states' outputs with gradient, from one forward pass of the (DDP) network over all of them.

        Why: DistributedDataParallel reduces the gradients of one forward pass per step; the rollout's
        interleaved passes with gradient would mark parameters ready twice. The states were made by the
        gradient-free rollout, so the replay computes what the interleaved passes would (the same
        weights, the same inputs; instance normalisation is per sample), at the cost of one more
        forward over the planned states.
        """
        steps = sorted(plan.grad_states)
        batch = states[0].shape[0]
        out = self.net(torch.cat([states[t] for t in steps]), heads=("seg", "value", "policy"))
        seg_logits, values, policy_logits = {}, {}, {}
        for i, t in enumerate(steps):
            rows = slice(i * batch, (i + 1) * batch)
            if t in plan.seg_weights:
                seg_logits[t] = out.seg[rows]
            if t in plan.rl_weights:
                values[t] = out.value[rows]
                policy_logits[t] = out.policy[rows] if train_policy else out.policy[rows].detach()
        return seg_logits, values, policy_logits

    def foreground_probabilities(self, seg_logits: torch.Tensor) -> torch.Tensor:
        """(B, F, h, w, d) f: softmax without the background channel (classes) or sigmoid (regions)."""
        if self.labels.mode == "classes":
            return torch.softmax(seg_logits, dim=1)[:, 1:]
        return torch.sigmoid(seg_logits)

    def foreground(self, label: torch.Tensor) -> torch.Tensor:
        """(B, F, h, w, d) the foreground channels of a one-hot or region label."""
        return label[:, 1:] if self.labels.mode == "classes" else label

    # ------------------------------------------------------------------ 4. losses: the policy term

    def policy_term(self, rollout: Rollout, returns: torch.Tensor, t: int) -> torch.Tensor:
        """Eqs. 5-6 for the step taken from s(t): -log pi(a(t)|s(t)) A(t) - c H(pi(.|s(t)))."""
        rl = self.cfg.rl
        log_prob, entropy = action_log_prob_and_entropy(
            rollout.policy_logits[t], rollout.actions[t], tau=rl.tau
        )  # (B, h, w, d) each
        advantage = returns[t] - rollout.values[t].detach()  # (B, 1, h, w, d) Eq. 5
        if rl.advantage_norm:
            advantage = normalize_advantages(advantage)  # ours: scale-free policy step (docs/results.md)
        return policy_loss(log_prob[None], advantage[None], entropy[None], rl.entropy_coef)

    # ------------------------------------------------------------------ logs

    def step_scalars(
        self,
        loss: torch.Tensor,
        l_dice: torch.Tensor,
        l_value: torch.Tensor,
        l_policy: torch.Tensor | None,
        rollout: Rollout,
        rewards: RewardParts,
        returns: torch.Tensor,
        plan: GradientPlan,
    ) -> dict[str, float]:
        """What the log records of an RL step (means over the batch, voxels and steps).

        A step that trained no value or policy term (the "single" estimator's draw of s(K)) logs NaN
        for them, which the epoch's means skip (``ScalarMeans``).
        """
        actions = torch.stack(rollout.actions)  # (K, B, h, w, d)
        if not plan.rl_weights:
            nan = float("nan")
            rl_scalars = {"loss_value": nan, "value_mean": nan, "advantage_std": nan}
            l_policy = None if l_policy is None else torch.tensor(nan)
        else:
            rl_scalars = {
                "loss_value": l_value.item(),
                "value_mean": sum(w * rollout.values[t].detach().mean() for t, w in plan.rl_weights.items()).item(),
                # raw (un-normalised) A = R - V over the batch's voxel agents: the policy gradient's scale
                "advantage_std": torch.cat(
                    [(returns[t] - rollout.values[t].detach()).flatten() for t in plan.rl_weights]
                ).std(unbiased=False).item(),
            }
        scalars = {
            "loss": loss.item(),
            "loss_dice": l_dice.item(),
            "reward": rewards.total.mean().item(),
            "reward_dice_gain": rewards.dice_gain.mean().item(),
            "reward_penalty_change": rewards.penalty_change.mean().item(),
            "action_keep": (actions == KEEP).float().mean().item(),
            "action_enhance": (actions == ENHANCE).float().mean().item(),
            "action_weaken": (actions == WEAKEN).float().mean().item(),
            "policy_entropy": torch.stack(rollout.entropy).mean().item(),
            **rl_scalars,
        }
        if l_policy is not None:
            scalars["loss_policy"] = l_policy.item()
        return scalars


# ---------------------------------------------------------------------- configuration checks


def _method_options(cfg: TrainConfig) -> dict[str, Any]:
    unknown = sorted(set(cfg.method_options) - set(METHOD_OPTIONS))
    if unknown:
        raise ValueError(f"method_options: unknown option(s) {unknown} for svl-drl; valid: {sorted(METHOD_OPTIONS)}")
    options = {**METHOD_OPTIONS, **cfg.method_options}
    if options["gradient_estimator"] not in GRADIENT_ESTIMATORS:
        raise ValueError(
            f"method_options.gradient_estimator must be one of {GRADIENT_ESTIMATORS}, "
            f"got {options['gradient_estimator']!r}"
        )
    if options["gradient_estimator"] == "single" and cfg.rl.seg_loss_states != "all":
        raise ValueError("method_options.gradient_estimator=single needs rl.seg_loss_states=all (its one state "
                         "carries the Dice loss); use 'sampled' with 'last'")
    return options


def _check_rl_config(cfg: TrainConfig) -> None:
    rl, st = cfg.rl, cfg.stages
    if rl.episode_length < 1:
        raise ValueError(f"rl.episode_length must be >= 1, got {rl.episode_length}")
    if not (rl.tau > 0 and 0.0 <= rl.gamma <= 1.0 and rl.action_scale > 0):
        raise ValueError(
            f"rl: need tau > 0, gamma in [0, 1] and action_scale > 0, got {rl.tau}, {rl.gamma}, {rl.action_scale}"
        )
    if rl.reward not in GRANULARITIES:
        raise ValueError(f"rl.reward must be one of {GRANULARITIES}, got {rl.reward!r}")
    if rl.penalty_form not in PENALTY_FORMS:
        raise ValueError(f"rl.penalty_form must be one of {PENALTY_FORMS}, got {rl.penalty_form!r}")
    if rl.seg_loss_states not in ("all", "last"):
        raise ValueError(f"rl.seg_loss_states must be 'all' or 'last', got {rl.seg_loss_states!r}")
    if not 0.0 <= st.lambda_value <= 1.0:
        raise ValueError(f"stages.lambda_value must be in [0, 1], got {st.lambda_value}")
    if st.alpha < 0 or st.beta < 0 or st.alpha + st.beta > 1.0:
        raise ValueError(f"stages.alpha and stages.beta must be >= 0 with alpha + beta <= 1, got {st.alpha}, {st.beta}")
