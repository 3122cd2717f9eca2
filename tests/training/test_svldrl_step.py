"""The SVL-DRL training step: which decoders learn in each stage, the stage losses, and every loss
term against an independent replay of the episode (returns paired with the states they start from)."""

from __future__ import annotations

import copy

import pytest
import torch
from monai.losses import DiceLoss

from svldrl.config import StageConfig
from svldrl.rl import anatomical_penalty, apply_actions, sample_actions, soft_dice
from svldrl.training import Stage, gradient_plan, sampled_plan, single_plan, stage_loss

# 10 epochs with the default fractions: Warmup 0-4, Transition 5-6, Full RL 7-9.
EPOCH = {Stage.WARMUP: 0, Stage.TRANSITION: 5, Stage.FULL_RL: 7}


def batch_of(trainer):
    return trainer.batch_to_device(next(trainer.sampler.epoch(0, 1, 2)))


def has_grad(params) -> bool:
    return any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in params)


def no_grad(params) -> bool:
    return all(p.grad is None or bool(p.grad.abs().sum() == 0) for p in params)


def test_warmup_trains_only_encoder_and_segmentation_decoder(tiny_config, phantoms16, make_trainer, tmp_path):
    trainer = make_trainer(tiny_config(), phantoms16, tmp_path)
    scalars = trainer.train_step(batch_of(trainer), EPOCH[Stage.WARMUP])
    assert has_grad(trainer.net.seg_parameters())
    assert no_grad(trainer.net.value_parameters())
    assert no_grad(trainer.net.policy_parameters())
    assert scalars["loss"] == scalars["loss_dice"]


@pytest.mark.parametrize("estimator", ["full", "sampled"])
def test_transition_trains_value_but_not_policy(tiny_config, phantoms16, make_trainer, tmp_path, estimator):
    cfg = tiny_config({"method_options": {"gradient_estimator": estimator}})
    trainer = make_trainer(cfg, phantoms16, tmp_path)
    scalars = trainer.train_step(batch_of(trainer), EPOCH[Stage.TRANSITION])
    assert has_grad(trainer.net.seg_parameters())
    assert has_grad(trainer.net.value_parameters())
    assert no_grad(trainer.net.policy_parameters())
    assert "loss_policy" not in scalars
    assert scalars["loss"] == pytest.approx(0.7 * scalars["loss_dice"] + 0.3 * scalars["loss_value"], rel=1e-5)


@pytest.mark.parametrize("estimator", ["full", "sampled"])
def test_full_rl_trains_all_decoders_with_eq7_weights(tiny_config, phantoms16, make_trainer, tmp_path, estimator):
    cfg = tiny_config({"stages": {"alpha": 0.3, "beta": 0.1}, "method_options": {"gradient_estimator": estimator}})
    trainer = make_trainer(cfg, phantoms16, tmp_path)
    s = trainer.train_step(batch_of(trainer), EPOCH[Stage.FULL_RL])
    for params in (trainer.net.seg_parameters(), trainer.net.value_parameters(), trainer.net.policy_parameters()):
        assert has_grad(params)
    expected = 0.6 * s["loss_dice"] + 0.3 * s["loss_value"] + 0.1 * s["loss_policy"]
    assert s["loss"] == pytest.approx(expected, rel=1e-5, abs=1e-8)
    assert s["action_keep"] + s["action_enhance"] + s["action_weaken"] == pytest.approx(1.0)


def test_stage_loss_on_known_terms():
    cfg = StageConfig(lambda_value=0.3, alpha=0.2, beta=0.1)
    l_dice, l_value, l_policy = torch.tensor(0.5), torch.tensor(2.0), torch.tensor(-1.0)
    assert float(stage_loss(Stage.WARMUP, cfg, l_dice)) == pytest.approx(0.5)  # Eq. 1
    assert float(stage_loss(Stage.TRANSITION, cfg, l_dice, l_value)) == pytest.approx(0.7 * 0.5 + 0.3 * 2.0)  # Eq. 4
    full = float(stage_loss(Stage.FULL_RL, cfg, l_dice, l_value, l_policy))
    assert full == pytest.approx(0.7 * 0.5 + 0.2 * 2.0 - 0.1)  # Eq. 7: alpha with value, beta with policy
    with pytest.raises(ValueError, match="policy loss"):
        stage_loss(Stage.FULL_RL, cfg, l_dice, l_value)


@pytest.mark.parametrize("k", [1, 2, 3, 5])
@pytest.mark.parametrize("seg_states", ["all", "last"])
def test_sampled_plan_is_unbiased_for_the_full_plan(k, seg_states):
    full = gradient_plan(k, "full", seg_states, torch.Generator())
    expected_seg = {t: 0.0 for t in range(k + 1)}
    expected_rl = {t: 0.0 for t in range(k)}
    for draw in range(k):  # the draw is uniform on 0..K-1
        plan = sampled_plan(k, draw, seg_states)
        assert len(plan.grad_states) <= 2  # the point of the estimator: at most two states with gradient
        for t, w in plan.seg_weights.items():
            expected_seg[t] += w / k
        for t, w in plan.rl_weights.items():
            expected_rl[t] += w / k
    assert expected_seg == pytest.approx({t: full.seg_weights.get(t, 0.0) for t in expected_seg})
    assert expected_rl == pytest.approx(full.rl_weights)


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_single_plan_is_unbiased_for_the_full_plan_with_one_state(k):
    full = gradient_plan(k, "full", "all", torch.Generator())
    expected_seg = {t: 0.0 for t in range(k + 1)}
    expected_rl = {t: 0.0 for t in range(k)}
    for n in range(k + 1):  # the draw is uniform on 0..K
        plan = single_plan(k, n)
        assert plan.grad_states == {n}  # the point of the estimator: one state, one backward pass
        for t, w in plan.seg_weights.items():
            expected_seg[t] += w / (k + 1)
        for t, w in plan.rl_weights.items():
            expected_rl[t] += w / (k + 1)
    assert expected_seg == pytest.approx(full.seg_weights)
    assert expected_rl == pytest.approx(full.rl_weights)
    draws = {next(iter(gradient_plan(k, "single", "all", torch.Generator().manual_seed(s)).seg_weights))
             for s in range(60)}  # fmt: skip
    assert draws == set(range(k + 1))


@pytest.mark.parametrize("n, trains_rl", [(0, True), (3, False)])
def test_single_estimator_step(tiny_config, phantoms16, make_trainer, tmp_path, monkeypatch, n, trains_rl):
    """A draw of s(0..K-1) trains every decoder; a draw of s(K) only the segmentation path, and logs no RL loss."""
    import svldrl.training.svldrl as svldrl_module

    cfg = tiny_config({"rl": {"episode_length": 3}, "stages": {"alpha": 0.3, "beta": 0.1},
                       "method_options": {"gradient_estimator": "single"}})  # fmt: skip
    monkeypatch.setattr(svldrl_module, "gradient_plan", lambda k, *args: single_plan(k, n))
    trainer = make_trainer(cfg, phantoms16, tmp_path)
    s = trainer.train_step(batch_of(trainer), EPOCH[Stage.FULL_RL])
    assert has_grad(trainer.net.seg_parameters())
    for params in (trainer.net.value_parameters(), trainer.net.policy_parameters()):
        assert has_grad(params) if trains_rl else no_grad(params)
    if trains_rl:
        assert s["loss"] == pytest.approx(0.6 * s["loss_dice"] + 0.3 * s["loss_value"] + 0.1 * s["loss_policy"],
                                          rel=1e-5, abs=1e-8)  # fmt: skip
    else:
        assert s["loss"] == pytest.approx(0.6 * s["loss_dice"], rel=1e-6)
        assert all(s[key] != s[key] for key in ("loss_value", "loss_policy", "value_mean", "advantage_std"))  # NaN


def test_single_estimator_needs_the_dice_loss_on_every_state(tiny_config, phantoms16, make_trainer, tmp_path):
    cfg = tiny_config({"rl": {"seg_loss_states": "last"}, "method_options": {"gradient_estimator": "single"}})
    with pytest.raises(ValueError, match="single needs rl.seg_loss_states=all"):
        make_trainer(cfg, phantoms16, tmp_path)


def test_full_plan_weights():
    plan = gradient_plan(3, "full", "all", torch.Generator())
    assert plan.seg_weights == pytest.approx({0: 0.25, 1: 0.25, 2: 0.25, 3: 0.25})
    assert plan.rl_weights == pytest.approx({0: 1 / 3, 1: 1 / 3, 2: 1 / 3})
    assert gradient_plan(3, "full", "last", torch.Generator()).seg_weights == {3: 1.0}


# ------------------------------------------------------------------ independent replay of one step


def replay(net, image, label, generator, cfg, estimator):
    """Loss terms of one Full-RL step recomputed with plain loops (no code from training/svldrl.py)."""
    rl, k = cfg.rl, cfg.rl.episode_length
    draw = int(torch.randint(0, k, (1,), generator=generator)) if estimator == "sampled" else None
    states, segs, values, logits, actions = [image], [], [], [], []
    with torch.no_grad():
        for t in range(k + 1):
            out = net(states[t])
            segs.append(out.seg), values.append(out.value), logits.append(out.policy)
            if t < k:
                a, _ = sample_actions(out.policy, rl.tau, generator)
                eps = torch.rand(a.shape, generator=generator)
                states.append(apply_actions(states[t], a, eps, rl.action_scale))
                actions.append(a)
    f = [torch.softmax(s, dim=1)[:, 1:] for s in segs]
    y = label[:, 1:]
    rewards = [
        soft_dice(f[t], y) - soft_dice(f[t - 1], y)
        - rl.penalty_weight * (anatomical_penalty(f[t]) - anatomical_penalty(f[t - 1]))
        for t in range(1, k + 1)
    ]  # r(1..K), (B,) each
    returns, running = [None] * k, values[k]  # bootstrap V(s(K))
    for t in reversed(range(k)):
        running = rewards[t].view(-1, 1, 1, 1, 1) + rl.gamma * running
        returns[t] = running  # the return of s(t), the state a(t) was taken in
    dice = DiceLoss(softmax=True, include_background=True)
    seg_terms = [float(dice(s, label)) for s in segs]
    value_terms = [float(((returns[t] - values[t]) ** 2).mean()) for t in range(k)]
    policy_terms = []
    for t in range(k):
        log_p = torch.log_softmax(logits[t] / rl.tau, dim=1)
        taken = log_p.gather(1, actions[t][:, None])[:, 0]
        advantage = (returns[t] - values[t])[:, 0]
        entropy = -(log_p.exp() * log_p).sum(1)
        policy_terms.append(float(-(taken * advantage).mean() - rl.entropy_coef * entropy.mean()))
    if estimator == "full":
        return sum(seg_terms) / (k + 1), sum(value_terms) / k, sum(policy_terms) / k
    n = draw + 1
    return (seg_terms[0] + k * seg_terms[n]) / (k + 1), value_terms[n % k], policy_terms[n % k]


@pytest.mark.parametrize("estimator", ["full", "sampled"])
def test_full_rl_terms_match_independent_replay(tiny_config, phantoms16, make_trainer, tmp_path, estimator):
    cfg = tiny_config({"rl": {"episode_length": 3}, "method_options": {"gradient_estimator": estimator}})
    trainer = make_trainer(cfg, phantoms16, tmp_path)
    with torch.no_grad():  # a value head that varies between states, so a mispaired return shows
        conv = trainer.net.decoders["value"].out.conv.conv
        conv.weight.mul_(1000.0)
        conv.bias.fill_(0.3)
    batch = batch_of(trainer)
    net_before = copy.deepcopy(trainer.net)
    replay_generator = torch.Generator()
    replay_generator.set_state(trainer.generator.get_state())
    scalars = trainer.train_step(batch, EPOCH[Stage.FULL_RL])
    l_dice, l_value, l_policy = replay(net_before, batch["image"], batch["label"], replay_generator, cfg, estimator)
    assert scalars["loss_dice"] == pytest.approx(l_dice, rel=1e-4)
    assert scalars["loss_value"] == pytest.approx(l_value, rel=1e-4)
    assert scalars["loss_policy"] == pytest.approx(l_policy, rel=1e-4, abs=1e-7)


def test_one_seed_gives_one_step(tiny_config, phantoms16, make_trainer, tmp_path):
    runs = []
    for name in ("a", "b"):
        trainer = make_trainer(tiny_config(), phantoms16, tmp_path / name)
        runs.append(trainer.train_step(batch_of(trainer), EPOCH[Stage.FULL_RL]))
    assert runs[0] == runs[1]


def test_unknown_method_option_is_rejected(tiny_config, phantoms16, make_trainer, tmp_path):
    with pytest.raises(ValueError, match="gradient_estimatr"):
        make_trainer(tiny_config({"method_options": {"gradient_estimatr": "sampled"}}), phantoms16, tmp_path)
    with pytest.raises(ValueError, match="gradient_estimator must be one of"):
        make_trainer(tiny_config({"method_options": {"gradient_estimator": "cheap"}}), phantoms16, tmp_path)
