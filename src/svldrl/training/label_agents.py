"""SVL-DRL-T: voxel agents that correct the training label, rewarded by the trusted cases (issue 15).

Why a new method: SVL-DRL's reward is the Dice gain against the same noisy label its Dice loss
uses, so no reward can tell a right label voxel from a wrong one (docs/results.md). This variant
keeps SVL-DRL's staged training (Warmup -> Transition -> Full RL, Eqs. 1, 4, 7), its three
decoders, voxels as agents and the A2C losses (Eqs. 2, 3, 5, 6), and changes three things:

1. **What the agents act on** (PixelDRL-MG's action space, on the label instead of the prediction):
   the state is (image, m(t)), m(0) = the noisy training label y; each agent keeps its label,
   sets it to foreground or to background. The value and policy decoders see the state; the
   segmentation decoder sees a blank mask (``MaskStateNet``) and is what runs at inference.
2. **The reward** carries information the noisy label does not: each step's reward is the change
   of the voxel's *trusted credit* (``rl/credit.py``, C2), ``r_i(t+1) = (e_{m_i(t+1)} - e_{m_i(t)}) .
   delta_i``, where ``delta_i`` is how one descent step on a batch of trusted (expert-checked)
   patches moves voxel i's logits, scaled by its RMS over the batch. A label change is rewarded
   when the trusted cases' own gradient pushes the voxel the same way. Returns telescope, so an
   episode's return is the credit of the final label minus that of y. ``method_options.credit =
   episode`` gives every agent of a sample the sample's mean instead (one scalar, as DVRL and RALIS
   reward a whole batch): the ablation that shows what per-voxel credit adds. The anatomical term
   ``- w_c [C~(m(t+1)) - C~(m(t))]`` of SVL-DRL is kept (on the masks).
3. **What the segmentation learns from**: in Full RL, the Dice loss's target is the label the
   policy corrects at s(0) (a voxel changes where the policy gives the change a probability above
   ``correction_threshold``); in Warmup and Transition it is y. Trusted patches of a batch
   (``data.trusted_per_batch``) are never edited and are no agents.

``method_options.reward = teacher`` (C5) pays an edit instead by the gain in the label's
log-likelihood under a teacher, the network as Warmup leaves it after training on trusted patches
alone and then frozen, less ``logit(teacher_confidence)``: an edit pays where that teacher is
confident of the new label. Why: on LA the trusted credit separates wrong from right label voxels
at AUC 0.55-0.59, a trusted-supervised network's disagreement at 0.81-0.86
(``experiments/la/credit_auc.py``, docs/results.md). With ``teacher_run`` the teacher is instead a
finished run's network (usually ``trusted-only`` of the same seed, trained for the whole budget;
``training/teacher.py``), and Warmup, if any, trains on the batch as SVL-DRL's does.

The trusted batch that estimates clean quality is drawn from the trusted cases alone, by a sampler
of its own; trusted cases are never agents. Nothing here reads the noise manifest, except the
``changed_corrupted`` / ``changed_clean`` diagnostics of the log (how much the agents change the
labels of corrupted and untouched cases), which nothing trains on.

Departures from SVL-DRL (method.md, "SVL-DRL-T"): the state, the actions, the reward (above); the
policy starts biased toward keep (``keep_prior``), because an untrained policy that edits two thirds
of the voxels would turn the labels into noise; advantages are standardised (``rl.advantage_norm``
is forced on: credits have no natural scale).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from svldrl.config import TrainConfig
from svldrl.data import LabelSpec, TrustedBatches
from svldrl.models import MaskStateNet, build_network, mask_channels
from svldrl.rl import action_log_prob_and_entropy, anatomical_penalty, discounted_returns, sample_actions
from svldrl.rl.credit import (
    descent_logit_change,
    group_delta,
    relabel_credit,
    rms_scale,
    trusted_gradient,
)
from svldrl.rl.mask_actions import KEEP, SET_BACKGROUND, SET_FOREGROUND, apply_mask_actions, foreground_proposal
from svldrl.rl.returns import normalize_advantages, policy_loss, value_loss
from svldrl.training import precision
from svldrl.training.case_scores import cases_to_drop, gate_from_state, gate_to_state, label_agreement, split_report
from svldrl.training.checkpoint import atomic_write_text
from svldrl.training.label_agent_log import LabelAgentLogMixin
from svldrl.training.label_agent_options import LabelAgentOptions, parse_label_agent_options
from svldrl.training.label_episode import LabelEpisode, changed_groups, seg_forward, set_keep_prior
from svldrl.training.methods import METHODS
from svldrl.training.stages import Stage
from svldrl.training.svldrl import GradientPlan, SVLDRLTrainer, stage_loss
from svldrl.training.teacher import FrozenTeacherMixin

TEACHER_FLOOR = 1e-3
"""The teacher's probabilities are floored here in C5, so one edit's reward stays within about +-7
(a Dice-trained teacher is near certain almost everywhere: unfloored log-probabilities of -20 to -30
would swamp the value loss and the advantage's scale). The floor is far below any confidence
threshold, so no edit's sign changes."""


GATE_FILE = "agent_gate.json"


@METHODS.register("svl-drl-trusted", aliases=("svldrl-trusted",))
class LabelAgentsTrainer(LabelAgentLogMixin, FrozenTeacherMixin, SVLDRLTrainer):
    """SVL-DRL whose voxel agents correct the training label, rewarded by trusted-case credit (SVL-DRL-T)."""

    NAME = "SVL-DRL-T"
    DDP_REFUSAL = ("its reward differentiates the network functionally (torch.func) and its teacher and trusted "
                   "streams are per process; not yet made distributed")
    DESCRIPTION = ("SVL-DRL-T (ours, issue 15): voxel agents keep / set foreground / set background the noisy "
                   "training label; reward = each voxel's credit from a descent step on trusted cases, or "
                   "(reward=teacher) the confidence of a teacher trained on them")
    FOOTNOTE = ("SVL-DRL-T: uses the trusted cases (data.trusted_count / trusted_cases), never the noise manifest "
                "(read for log diagnostics only); see docs/method.md.")
    TRAIN_SCALARS = (
        "loss", "loss_dice", "loss_value", "loss_policy", "reward", "reward_penalty_change", "credit_rms",
        "action_keep", "action_enhance", "action_weaken", "label_changed", "changed_to_foreground",
        "changed_to_background", "changed_credit", "changed_corrupted", "changed_clean",
        "value_mean", "policy_entropy", "advantage_std",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """As ``SVLDRLTrainer``; adds the trusted-batch stream of the reward."""
        super().__init__(*args, **kwargs)
        self.trusted_batches = TrustedBatches(self.train_cases, self.labels, self.cfg.data, self.cfg.seed,
                                              self.trusted_ids)
        self.flagged: frozenset[str] | None = None
        """gate=case: the cases the agents may edit, once the teacher has scored them; None: every case."""
        if self.options.teacher_run:
            self.adopt_teacher_run(self.options.teacher_run)

    # ------------------------------------------------------------------ configuration

    @classmethod
    def parse_options(cls, cfg: TrainConfig) -> LabelAgentOptions:
        return parse_label_agent_options(cfg)

    @classmethod
    def check_config(cls, cfg: TrainConfig) -> None:
        super().check_config(cfg)
        if not (cfg.data.trusted_cases or cfg.data.trusted_count):
            raise ValueError(f"{cfg.method}: needs trusted cases for its reward; set data.trusted_count "
                             "(simulations) or data.trusted_cases")

    @classmethod
    def table_label(cls, method_options: dict[str, Any] | None = None, trusted: bool = False) -> str:
        options = method_options or {}
        if options.get("reward", "credit") == "teacher":
            gated = ", case-gated" if options.get("gate", "none") != "none" else ""
            source = " from a run" if options.get("teacher_run") else ""
            return f"{cls.NAME} (teacher reward{source}){gated}"
        return cls.NAME if options.get("credit", "voxel") == "voxel" else f"{cls.NAME} (episode credit)"

    @classmethod
    def inference_network(cls, cfg: TrainConfig, in_channels: int, labels: LabelSpec) -> MaskStateNet:
        """The three-decoder network on (image, mask) states; ``segment(image)`` is the seg decoder's."""
        f = mask_channels(labels)
        return MaskStateNet(build_network(cfg.model, in_channels + f, labels.n_outputs), in_channels, f, labels.mode)

    def build_models(self) -> nn.Module:
        net = self.inference_network(self.cfg, self.in_channels, self.labels)
        set_keep_prior(net.net, self.options.keep_prior)
        return net

    # ------------------------------------------------------------------ the training step

    def train_step(self, batch: dict[str, Any], epoch: int) -> dict[str, float]:
        """One step: credit from the trusted batch, an episode of label edits, the stage loss (Eqs. 1, 4, 7)."""
        stage = self.schedule.stage(epoch)
        image, label = batch["image"], batch["label"]  # (B, C, h, w, d), (B, n_outputs, h, w, d)
        teacher_reward = self.options.reward == "teacher"
        if stage is Stage.WARMUP and teacher_reward and not self.options.teacher_run:
            # the teacher learns from trusted patches alone
            trusted = self.batch_to_device(
                self.trusted_batches.next(epoch, self.batches_per_epoch, self.cfg.optim.batch_size)
            )
            return self.supervised_step(trusted["image"], trusted["label"])
        if teacher_reward and self.teacher is None:  # the first step after Warmup
            self.freeze_teacher()
        if self.options.gate == "case" and self.flagged is None:  # once, as soon as the teacher is there
            self.flag_cases()
        agents = self.agent_rows(batch["case_id"])  # (A,) rows whose labels the agents may edit
        if stage is Stage.WARMUP or agents.numel() == 0:
            return super().train_step(batch, epoch) if stage is Stage.WARMUP else self.supervised_step(image, label)
        rl = self.cfg.rl
        plan = self.plan()
        self.optimizer.zero_grad(set_to_none=True)
        # 1. What an edit of every agent voxel earns: the trusted credit (C2, delta = the logit change along a
        #    trusted descent step), or the teacher's log-probabilities (C5).
        with precision.without_autocast(self.device):  # rewards in float32, whatever the step's precision
            if teacher_reward:
                logits0, delta_groups = self.teacher_view(image[agents])
                credit_rms = math.nan
            else:
                trusted = self.batch_to_device(
                    self.trusted_batches.next(epoch, self.batches_per_epoch, self.options.trusted_batch)
                )
                g_t = trusted_gradient(self.net, seg_forward, trusted["image"], trusted["label"], self.seg_loss)
                logits0, delta = descent_logit_change(
                    self.net, seg_forward, image[agents], g_t, self.options.credit_estimator
                )  # (A, n_outputs, h, w, d) each
                credit_rms = delta.square().mean().sqrt().item()
                delta_groups = rms_scale(group_delta(delta, self.labels.mode))  # (A, G, n, h, w, d), unit RMS
        # 2. An episode of label edits from m(0) = y on the agents' rows (the state (image, m(t))).
        proposal = foreground_proposal(logits0, self.labels.mode)  # (A, F, h, w, d) what "set foreground" writes
        episode = self.label_episode(image[agents], self.foreground(label[agents]), proposal, plan,
                                     train_policy=stage is Stage.FULL_RL)  # fmt: skip
        # 3. Rewards: the change of trusted credit of each edit (C2), minus the anatomical change.
        rewards, penalty_change = self.label_rewards(episode.masks, delta_groups)  # (K, A, 1, h, w, d), (K, A)
        returns = discounted_returns(rewards, episode.bootstrap, rl.gamma)  # Eq. 2, (K, A, 1, h, w, d)
        # 4. The Dice target: y, or (Full RL) y corrected by the policy at s(0); trusted rows keep theirs.
        target, changed = label.clone(), None
        if stage is Stage.FULL_RL:
            corrected, changed = self.corrected_label(episode.masks[0], episode.first_policy, proposal)
            if self.options.correction == "expected":
                corrected = self.expected_label(episode.masks[0], episode.first_policy, proposal)
            target[agents] = self.label_from_mask(corrected)
        seg = self.net(image, heads=("seg",)).seg  # (B, n_outputs, h, w, d)
        l_dice = self.compute_loss(seg, target)
        l_value = sum(w * value_loss(returns[t : t + 1], episode.values[t][None]) for t, w in plan.rl_weights.items())
        l_policy = None
        if stage is Stage.FULL_RL:
            if self.options.policy_gradient == "all_actions":
                l_policy = sum(w * self.all_action_policy_term(episode, delta_groups, proposal, t)
                               for t, w in plan.rl_weights.items())  # fmt: skip
            else:
                l_policy = sum(w * self.label_policy_term(episode, returns, t) for t, w in plan.rl_weights.items())
        loss = stage_loss(stage, self.cfg.stages, l_dice, l_value, l_policy)  # Eq. 4 or Eq. 7
        self.backward_and_step(loss)
        return self.label_scalars(loss, l_dice, l_value, l_policy, episode, rewards, penalty_change, returns, plan,
                                  credit_rms, changed, delta_groups, [batch["case_id"][i] for i in agents.tolist()])

    @torch.no_grad()
    def teacher_view(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The network's logits of ``image`` and the teacher's (A, G, n, h, w, d) class-view log-probabilities.

        C5: with ``delta`` replaced by log p_T, C2's ``(e_new - e_old) . delta`` is the gain in the label's
        log-likelihood under the teacher, ``log p_T(new) - log p_T(old)``.
        """
        from svldrl.baselines.common import group_log_probs  # baselines import training: import when used

        assert self.teacher is not None
        log_probs = group_log_probs(seg_forward(self.teacher, image), self.labels.mode)
        return seg_forward(self.net, image), log_probs.clamp_min(math.log(TEACHER_FLOOR))

    @property
    def edit_cost(self) -> float:
        """What a label-changing edit must earn to pay: logit(teacher_confidence) for reward=teacher, else 0.

        With it, an edit's reward ``log p_T(new) - log p_T(old) - logit(c)`` is positive exactly where the
        teacher gives the new label more than c (two classes): the agents are paid for confident corrections.
        """
        if self.options.reward != "teacher":
            return 0.0
        c = self.options.teacher_confidence
        return math.log(c / (1.0 - c))

    def plan(self) -> GradientPlan:
        """Value and policy terms at every step, weights 1/K (SVL-DRL's "full" estimator); the Dice loss is not
        per state here (the segmentation sees one image, whatever the label edits), so no Dice weights."""
        k = self.cfg.rl.episode_length
        return GradientPlan({}, {t: 1.0 / k for t in range(k)})

    def supervised_step(self, image: torch.Tensor, label: torch.Tensor) -> dict[str, float]:
        """A batch of trusted patches only: the Dice loss on their labels (nothing for the agents to do)."""
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.compute_loss(self.net(image, heads=("seg",)).seg, label)
        self.backward_and_step(loss)
        return {"loss": loss.item(), "loss_dice": loss.item()}

    def agent_rows(self, case_ids: Sequence[str]) -> torch.Tensor:
        """(A,) long indices of the batch rows whose labels are edited: not trusted (and flagged, when gated)."""
        rows = [i for i, case_id in enumerate(case_ids)
                if case_id not in self.trusted_ids and (self.flagged is None or case_id in self.flagged)]  # fmt: skip
        return torch.tensor(rows, dtype=torch.long, device=self.device)

    def flag_cases(self) -> None:
        """gate=case: the cases the agents may edit, the low group of the teacher's agreement with each label."""
        assert self.teacher is not None
        with precision.without_autocast(self.device):  # as the baselines score: in float32
            scores = label_agreement(self, self.teacher)
        flagged, threshold = cases_to_drop(scores, "otsu")
        self.flagged = frozenset(flagged)
        report = split_report(scores, threshold, "flagged", flagged, self.noise_manifest)
        atomic_write_text(json.dumps(report, indent=2) + "\n", self.run_dir / GATE_FILE)

    def checkpoint_state(self) -> dict[str, Any]:
        state = super().checkpoint_state()
        state["agent_gate"] = gate_to_state(self.flagged)
        return state

    def load_checkpoint_state(self, payload: dict[str, Any]) -> None:
        super().load_checkpoint_state(payload)
        self.flagged = gate_from_state(payload.get("agent_gate"))

    def label_episode(
        self,
        image: torch.Tensor,
        label_mask: torch.Tensor,
        proposal: torch.Tensor,
        plan: GradientPlan,
        *,
        train_policy: bool,
    ) -> LabelEpisode:
        """K steps of label edits from m(0) = ``label_mask``; forwards keep gradient only at planned steps."""
        rl = self.cfg.rl
        masks = [label_mask]
        values, policy_logits, actions, entropy = {}, {}, [], []
        first_policy = None
        for t in range(rl.episode_length):
            heads = ("value", "policy") if t in plan.rl_weights else ("policy",)
            with torch.set_grad_enabled(t in plan.rl_weights):
                out = self.net(self.net.state(image, masks[t]), heads=heads)
            if t == 0:
                first_policy = out.policy.detach()
            if t in plan.rl_weights:
                values[t] = out.value  # (A, 1, h, w, d)
                policy_logits[t] = out.policy if train_policy else out.policy.detach()
            action, _ = sample_actions(out.policy.detach(), rl.tau, self.generator)  # (A, h, w, d)
            with torch.no_grad():
                masks.append(apply_mask_actions(masks[t], action, proposal))  # m(t+1)
                entropy.append(action_log_prob_and_entropy(out.policy.detach(), action, tau=rl.tau)[1])
            actions.append(action)
        # The episode ends after K edits: the edited label is what the Dice loss then uses, nothing follows,
        # so s(K) is terminal and the return has no bootstrap term (one forward pass fewer than SVL-DRL).
        bootstrap = torch.zeros_like(values[0] if values else masks[0][:, :1]).detach()
        assert first_policy is not None
        return LabelEpisode(masks, values, policy_logits, first_policy, actions, entropy, bootstrap)

    @torch.no_grad()
    def label_rewards(
        self, masks: list[torch.Tensor], delta_groups: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """r(1..K): (K, A, 1, h, w, d) credit change of each edit (C2; "episode": the sample's mean) minus
        ``w_c`` times the anatomical change of the mask (Eq. 11-14's penalty term), and that change (K, A)."""
        rl = self.cfg.rl
        steps, penalties = [], []
        previous_penalty = anatomical_penalty(masks[0])
        for before, after in zip(masks[:-1], masks[1:], strict=True):
            old, new = self.class_view(before), self.class_view(after)
            credit = relabel_credit(delta_groups, old, new)  # (A, 1, h, w, d)
            if self.edit_cost:
                credit = credit - self.edit_cost * changed_groups(old, new)
            if self.options.credit == "episode":
                credit = credit.mean(dim=(1, 2, 3, 4), keepdim=True).expand_as(credit)
            penalty = anatomical_penalty(after)  # (A,)
            change = penalty - previous_penalty
            steps.append(credit - rl.penalty_weight * change.view(-1, 1, 1, 1, 1))
            penalties.append(change)
            previous_penalty = penalty
        return torch.stack(steps), torch.stack(penalties)

    def class_view(self, mask: torch.Tensor) -> torch.Tensor:
        """(A, G, n, ...) one-hot class view of a (A, F, ...) foreground mask."""
        from svldrl.baselines.common import group_targets  # baselines import training: import when used

        return group_targets(self.label_from_mask(mask), self.labels.mode)

    def label_from_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """(A, n_outputs, ...) the batch-label layout of a foreground mask (classes: background channel added)."""
        if self.labels.mode == "classes":
            return torch.cat([1.0 - mask.amax(dim=1, keepdim=True), mask], dim=1)
        return mask

    @torch.no_grad()
    def corrected_label(
        self, label_mask: torch.Tensor, policy_logits: torch.Tensor, proposal: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The Dice target of the agents' rows: y with each voxel changed where the policy at s(0) gives the change
        a probability above ``correction_threshold``; and (A, h, w, d) bool, which voxels changed."""
        probs = torch.softmax(policy_logits / self.cfg.rl.tau, dim=1)  # (A, 3, h, w, d)
        best = probs[:, 1:].argmax(dim=1) + 1  # the likelier edit: SET_FOREGROUND or SET_BACKGROUND
        confident = probs.gather(1, best.unsqueeze(1)).squeeze(1) > self.options.correction_threshold
        actions = torch.where(confident, best, torch.full_like(best, KEEP))
        corrected = apply_mask_actions(label_mask, actions, proposal)
        changed = (corrected != label_mask).any(dim=1)
        return corrected, changed

    @torch.no_grad()
    def expected_label(
        self, label_mask: torch.Tensor, policy_logits: torch.Tensor, proposal: torch.Tensor
    ) -> torch.Tensor:
        """(A, F, h, w, d) the label expected under the policy at s(0): ``pi(keep) y + pi(set fg) proposal``.

        Why an option: under the threshold rule nothing changes until an edit's probability passes 0.5,
        which a keep-biased policy may not reach in a short run; the
        expected label moves with the policy from the first step. At the start (keep 0.9) it is y smoothed
        by 0.05 toward the proposal and toward background: a mild label smoothing, stated.
        """
        probs = torch.softmax(policy_logits / self.cfg.rl.tau, dim=1)  # (A, 3, h, w, d)
        return probs[:, KEEP : KEEP + 1] * label_mask + probs[:, SET_FOREGROUND : SET_FOREGROUND + 1] * proposal

    def label_policy_term(self, episode: LabelEpisode, returns: torch.Tensor, t: int) -> torch.Tensor:
        """Eqs. 5-6 on the agents' voxels, with standardised advantages (credits have no natural scale)."""
        rl = self.cfg.rl
        log_prob, entropy = action_log_prob_and_entropy(episode.policy_logits[t], episode.actions[t], tau=rl.tau)
        advantage = normalize_advantages(returns[t] - episode.values[t].detach())  # (A, 1, h, w, d)
        return policy_loss(log_prob[None], advantage[None], entropy[None], rl.entropy_coef)

    def all_action_policy_term(
        self, episode: LabelEpisode, delta_groups: torch.Tensor, proposal: torch.Tensor, t: int
    ) -> torch.Tensor:
        """The expected policy gradient over the three actions (Mean Actor-Critic, Allen et al. 2017).

        Why: the credit of every action at every voxel is known in closed form (C2: keep 0, each edit
        ``(e_new - e_old) . delta``), so no action has to be sampled to learn its worth: the loss is
        ``-sum_a pi(a|s) (Q(s, a) - sum_a' pi(a'|s) Q(s, a'))`` with Q the credits (standardised over the
        batch), minus the entropy bonus. Sampled A2C sees each edit at 1 voxel in 20 under the start
        policy.
        The anatomical term, a property of the whole mask, has no per-action value and is left out here;
        it still shapes the critic through the sampled returns.
        """
        rl = self.cfg.rl
        q = self.action_credits(episode.masks[t], delta_groups, proposal)  # (A, 3, h, w, d)
        probs = torch.softmax(episode.policy_logits[t] / rl.tau, dim=1)  # (A, 3, h, w, d)
        advantage = q - (probs.detach() * q).sum(dim=1, keepdim=True)
        advantage = advantage / (advantage.std(unbiased=False) + 1e-8)
        entropy = -(probs * torch.log_softmax(episode.policy_logits[t] / rl.tau, dim=1)).sum(dim=1)
        return -(probs * advantage.detach()).sum(dim=1).mean() - rl.entropy_coef * entropy.mean()

    @torch.no_grad()
    def action_credits(self, mask: torch.Tensor, delta_groups: torch.Tensor, proposal: torch.Tensor) -> torch.Tensor:
        """(A, 3, h, w, d) the credit (C2) of keep (0), set foreground and set background at every voxel."""
        old = self.class_view(mask)
        credits = [torch.zeros_like(mask[:, :1])]
        for action in (SET_FOREGROUND, SET_BACKGROUND):
            every = torch.full_like(mask[:, 0], action, dtype=torch.long)  # (A, h, w, d)
            new = self.class_view(apply_mask_actions(mask, every, proposal))
            credit = relabel_credit(delta_groups, old, new)
            if self.edit_cost:  # C5's margin, once for every class group (region) the edit changes
                credit = credit - self.edit_cost * changed_groups(old, new)
            credits.append(credit)
        return torch.cat(credits, dim=1)
