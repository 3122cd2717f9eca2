"""SVL-DRL-T (issue 15): the trusted credit on hand-made numbers and on a planted label error, the policy
step toward a planted advantage, trusted cases kept out of the agents and in the reward, resume, and
an end-to-end CLI run on phantoms with SFDA-like systematic noise."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage
from scipy.stats import binomtest
from typer.testing import CliRunner

from svldrl.cli import app
from svldrl.config import CPU, merge
from svldrl.data import PHANTOM_LABELS, PatchSampler, make_phantoms
from svldrl.models import build_network
from svldrl.noise import NoiseManifest
from svldrl.rl.credit import (
    descent_logit_change,
    group_delta,
    label_credit,
    relabel_credit,
    reweight,
    rms_scale,
    trusted_gradient,
)
from svldrl.rl.mask_actions import KEEP, SET_BACKGROUND, SET_FOREGROUND
from svldrl.training import METHODS, LabelAgentsTrainer, build_seg_loss, read_log
from svldrl.training.label_episode import LabelEpisode

SMALL = {"data": {"patch_size": [32, 32, 32], "samples_per_volume": 1}, "model": {"channels": [4, 8]},
         "num_threads": 1, "val_every": 0}  # fmt: skip


def plain_forward(net: torch.nn.Module, image: torch.Tensor) -> torch.Tensor:
    return net(image, heads=("seg",)).seg


# ----------------------------------------------------------------------------- the credit, by hand


def test_relabel_credit_is_the_logit_change_toward_the_new_label():
    # two classes, three voxels: delta = change of (background, foreground) logits along the trusted descent
    delta = torch.tensor([[[0.5, -1.0, 0.0], [-0.5, 2.0, 0.3]]])  # (B=1, n=2, 3 voxels)
    groups = group_delta(delta, "classes")  # (1, 1, 2, 3)
    bg, fg = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    old = torch.stack([bg, bg, fg], dim=-1)[None, None]  # labels: bg, bg, fg
    new = torch.stack([fg, bg, bg], dim=-1)[None, None]  # voxel 0 -> fg, voxel 1 kept, voxel 2 -> bg
    credit = relabel_credit(groups, old, new)[0, 0]
    # voxel 0: (e_fg - e_bg) . delta = -0.5 - 0.5 = -1; voxel 1: 0; voxel 2: (e_bg - e_fg) . delta = 0 - 0.3
    torch.testing.assert_close(credit, torch.tensor([-1.0, 0.0, -0.3]))


def test_label_credit_and_reweight_follow_learning_to_reweight():
    delta = group_delta(torch.tensor([[[0.0, 0.0], [1.0, -1.0]]]), "classes")  # fg logit up at voxel 0, down at 1
    probs = torch.tensor([[[0.5, 0.5], [0.5, 0.5]]])[:, None]  # (1, 1, 2, 2)
    target = torch.tensor([[[0.0, 0.0], [1.0, 1.0]]])[:, None]  # both labelled foreground
    credit = label_credit(delta, probs, target)  # (e_fg - p) . delta = 0.5 * delta_fg
    torch.testing.assert_close(credit[0, 0], torch.tensor([0.5, -0.5]))
    torch.testing.assert_close(reweight(credit)[0, 0], torch.tensor([2.0, 0.0]))  # max(0, C), mean 1
    assert torch.equal(reweight(-credit.abs()), torch.zeros_like(credit))
    assert torch.equal(rms_scale(torch.zeros(3)), torch.zeros(3))
    torch.testing.assert_close(rms_scale(torch.tensor([3.0, -4.0])).square().mean(), torch.tensor(1.0))


def test_region_labels_use_their_binary_view():
    delta = torch.tensor([[[2.0], [-1.0]]])  # (B=1, 2 regions, 1 voxel): region 0 pushed in, region 1 out
    groups = group_delta(delta, "regions")  # (1, 2, 2, 1): [0, dz] per region
    old = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])[..., None]  # region 0 off, region 1 on
    new = torch.tensor([[[0.0, 1.0], [1.0, 0.0]]])[..., None]  # both switched
    assert relabel_credit(groups, old, new).item() == pytest.approx(2.0 + 1.0)


def test_the_jvp_is_the_exact_product_and_the_finite_difference_is_near_it():
    torch.manual_seed(0)
    net = build_network(merge(CPU, SMALL).model, 1, 2)
    image, trusted = torch.rand(1, 1, 16, 16, 16), torch.rand(2, 1, 16, 16, 16)
    target = torch.nn.functional.one_hot((trusted[:, 0] > 0.5).long(), 2).movedim(-1, 1).float()
    g = trusted_gradient(net, plain_forward, trusted, target, build_seg_loss(PHANTOM_LABELS))
    assert g and all(name.startswith(("encoder", "decoders.seg")) for name in g)  # only what the loss reaches
    assert all(p.grad is None for p in net.parameters())  # the network's own gradients are untouched
    logits, exact = descent_logit_change(net, plain_forward, image, g, "jvp")
    _, approx = descent_logit_change(net, plain_forward, image, g, "finite_difference")
    torch.testing.assert_close(logits, plain_forward(net, image).detach())
    # reverse mode twice (the double-backward trick) gives J v independently of forward mode
    params = [p for name, p in net.named_parameters() if name in g]
    out = plain_forward(net, image)
    probe = torch.zeros_like(out, requires_grad=True)
    jt_probe = torch.autograd.grad(out, params, probe, create_graph=True)  # J^T u, linear in u
    reference = torch.autograd.grad(jt_probe, probe, [-g[name] for name, p in net.named_parameters() if name in g])[0]
    torch.testing.assert_close(exact, reference, rtol=1e-4, atol=1e-5)
    assert ((approx - exact).norm() / exact.norm()).item() < 0.1  # kinks: a few per cent (FINITE_DIFFERENCE_STEP)


# ----------------------------------------------------------------------------- a planted label error


@pytest.mark.slow
def test_the_credit_prefers_undoing_a_planted_dilation():
    """Train on labels dilated by two voxels (a systematic error, as SFDA's), then ask each trusted batch:
    on the voxels the dilation added, does setting them back to background earn credit? Sign test."""
    torch.manual_seed(0)
    cases = make_phantoms(8, 32, seed=3)
    dilated = [dataclasses.replace(c, label=ndimage.binary_dilation(c.label > 0, iterations=2).astype(np.uint8))
               for c in cases[:5]]  # fmt: skip
    cfg = merge(CPU, {**SMALL, "model": {"channels": [8, 16, 32]}})
    net = build_network(cfg.model, 1, 2)
    loss_fn = build_seg_loss(PHANTOM_LABELS)
    optimizer = torch.optim.Adam(net.parameters(), 3e-3)
    for batch in PatchSampler(dilated, PHANTOM_LABELS, cfg.data, seed=0).epoch(0, 30, 2):
        optimizer.zero_grad()
        loss_fn(plain_forward(net, batch["image"]), batch["label"]).backward()
        optimizer.step()
    trusted = PatchSampler(cases[5:7], PHANTOM_LABELS, cfg.data, seed=1)
    held_out = cases[7]
    image, truth = torch.from_numpy(held_out.image[None]).float(), held_out.label > 0
    added = torch.from_numpy(ndimage.binary_dilation(truth, iterations=2) & ~truth)  # labelled fg, truly bg
    wins, total = 0, 0
    for batch in trusted.epoch(0, 4, 2):
        g = trusted_gradient(net, plain_forward, batch["image"], batch["label"], loss_fn)
        _, delta = descent_logit_change(net, plain_forward, image, g)
        groups = group_delta(delta, "classes")
        fg = torch.tensor([0.0, 1.0]).view(1, 1, 2, 1, 1, 1).expand_as(groups)
        undo = relabel_credit(groups, fg, 1.0 - fg)[0, 0]  # credit of set-background everywhere
        share = (undo[added] > 0).float().mean().item()
        assert share > 0.5, f"a trusted batch preferred keeping the dilation ({share:.2f} of the voxels)"
        wins += int((undo[added] > 0).sum())
        total += int(added.sum())
    assert binomtest(wins, total, 0.5, alternative="greater").pvalue < 1e-6


# ----------------------------------------------------------------------------- the trainer


def trainer_on_phantoms(tmp_path: Path, options: dict | None = None, epochs: int = 3) -> LabelAgentsTrainer:
    cases = make_phantoms(4, 32, seed=3)
    cfg = merge(CPU, {**SMALL, "method": "svl-drl-trusted", "method_options": options or {},
                      "data": {**SMALL["data"], "trusted_count": 2, "trusted_per_batch": 1},
                      "optim": {"epochs": epochs, "iters_per_epoch": 2, "batch_size": 2},
                      "rl": {"episode_length": 1},
                      "stages": {"warmup_epochs": 1, "transition_epochs": 1}})  # fmt: skip
    trusted = [c.case_id for c in cases[:2]]
    return LabelAgentsTrainer(cfg, cases, [], PHANTOM_LABELS, tmp_path, progress=False, trusted_ids=trusted)


def test_the_policy_step_moves_toward_a_planted_positive_advantage(tmp_path: Path):
    trainer = trainer_on_phantoms(tmp_path)
    logits = torch.zeros(1, 3, 2, 2, 2, requires_grad=True)  # uniform policy on 8 voxels
    actions = torch.tensor([SET_FOREGROUND, KEEP, SET_BACKGROUND, KEEP] * 2).view(1, 2, 2, 2)
    returns = (actions == SET_FOREGROUND).float().view(1, 1, 1, 2, 2, 2)  # the set-foreground agents did well
    episode = LabelEpisode(
        masks=[], values={0: torch.zeros(1, 1, 2, 2, 2)}, policy_logits={0: logits}, first_policy=logits.detach(),
        actions=[actions], entropy=[], bootstrap=torch.zeros(1, 1, 2, 2, 2),
    )  # fmt: skip
    trainer.label_policy_term(episode, returns, 0).backward()
    with torch.no_grad():
        after = torch.softmax(logits - 1.0 * logits.grad, dim=1)
    taken = after.gather(1, actions[:, None])[:, 0]  # probability of the action each agent took
    rewarded = actions == SET_FOREGROUND
    assert (taken[rewarded] > 1 / 3).all()  # positive advantage: more likely
    assert (taken[~rewarded] < 1 / 3).all()  # below-average advantage: less likely


def test_the_expected_gradient_moves_each_voxel_toward_its_best_credited_action(tmp_path: Path):
    trainer = trainer_on_phantoms(tmp_path)
    mask = torch.tensor([1.0, 1.0, 0.0, 0.0]).view(1, 1, 4, 1, 1)  # labelled fg, fg, bg, bg
    delta = torch.zeros(1, 2, 4, 1, 1)
    delta[0, 1] = torch.tensor([-2.0, 1.0, 3.0, -1.0]).view(4, 1, 1)  # the trusted step lowers / raises each fg logit
    groups = group_delta(delta, "classes")
    proposal = torch.ones_like(mask)
    q = trainer.action_credits(mask, groups, proposal)[0, :, :, 0, 0]  # (3 actions, 4 voxels)
    # keep 0; set fg on a fg voxel 0; set bg on fg: -delta_fg; set fg on bg: +delta_fg; set bg on bg 0
    torch.testing.assert_close(q, torch.tensor([[0.0, 0, 0, 0], [0.0, 0, 3, -1], [2.0, -1, 0, 0]]))
    logits = torch.zeros(1, 3, 4, 1, 1, requires_grad=True)
    episode = LabelEpisode(masks=[mask], values={}, policy_logits={0: logits}, first_policy=logits.detach(),
                           actions=[], entropy=[], bootstrap=torch.zeros(1))  # fmt: skip
    trainer.all_action_policy_term(episode, groups, proposal, 0).backward()
    after = torch.softmax(logits.detach() - logits.grad, dim=1)[0, :, :, 0, 0]
    assert after.argmax(dim=0).tolist() == [SET_BACKGROUND, KEEP, SET_FOREGROUND, KEEP]


def test_the_expected_label_mixes_the_edits_by_their_probabilities(tmp_path: Path):
    trainer = trainer_on_phantoms(tmp_path, {"correction": "expected"})
    label = torch.tensor([1.0, 0.0]).view(1, 1, 2, 1, 1)
    proposal = torch.ones_like(label)
    keep_all = torch.tensor([20.0, 0.0, 0.0]).view(1, 3, 1, 1, 1).expand(1, 3, 2, 1, 1)
    torch.testing.assert_close(trainer.expected_label(label, keep_all, proposal), label, atol=1e-6, rtol=0)
    logits = torch.log(torch.tensor([0.5, 0.3, 0.2])).view(1, 3, 1, 1, 1).expand(1, 3, 2, 1, 1)
    # fg voxel: 0.5 * 1 + 0.3 * 1 = 0.8; bg voxel: 0.5 * 0 + 0.3 * 1 = 0.3
    torch.testing.assert_close(trainer.expected_label(label, logits, proposal).flatten(), torch.tensor([0.8, 0.3]))


def test_trusted_cases_feed_the_reward_and_are_never_agents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    trainer = trainer_on_phantoms(tmp_path, {"keep_prior": 0.34}, epochs=3)
    with torch.no_grad():  # a policy that sets everything to background: any edit of a trusted label would show
        conv = trainer.net.net.decoders["policy"].out.conv.conv
        conv.bias.copy_(torch.tensor([0.0, 0.0, 20.0]))
    trusted = trainer.trusted_ids
    assert set(trainer.trusted_batches.sampler.case_ids) == trusted  # the reward's clean set: trusted cases only
    seen: dict[str, list] = {"reward": [], "targets": []}
    next_trusted = trainer.trusted_batches.next

    def spy_next(*args, **kwargs):
        batch = next_trusted(*args, **kwargs)
        seen["reward"].extend(batch["case_id"])
        return batch

    compute_loss = trainer.compute_loss

    def spy_loss(seg, target):
        seen["targets"].append(target.detach().clone())
        return compute_loss(seg, target)

    monkeypatch.setattr(trainer.trusted_batches, "next", spy_next)
    monkeypatch.setattr(trainer, "compute_loss", spy_loss)
    batch = trainer.batch_to_device(next(iter(trainer.sampler.epoch(2, 1, 2))))
    agents = trainer.agent_rows(batch["case_id"]).tolist()
    rows_trusted = [c in trusted for c in batch["case_id"]]
    assert any(rows_trusted) and not all(rows_trusted)  # both kinds of row, so the checks below test something
    assert [batch["case_id"][i] for i in agents] == [c for c in batch["case_id"] if c not in trusted]
    trainer.train_step(batch, epoch=2)  # Full RL
    assert seen["reward"] and set(seen["reward"]) <= trusted
    target = seen["targets"][-1]
    for row, case_id in enumerate(batch["case_id"]):
        if case_id in trusted:
            assert torch.equal(target[row], batch["label"][row]), "a trusted label was edited"
        else:
            assert target[row, 1].sum() == 0, "the agents' edits did not reach the Dice target"


def test_options_and_missing_trusted_cases_are_refused_before_any_work(tmp_path: Path):
    cfg = merge(CPU, {**SMALL, "method": "svl-drl-trusted"})
    with pytest.raises(ValueError, match="needs trusted cases"):
        LabelAgentsTrainer.check_config(cfg)
    trusted = {"data": {"trusted_count": 2}}
    with pytest.raises(ValueError, match="unknown option"):
        LabelAgentsTrainer.check_config(merge(cfg, {**trusted, "method_options": {"credit_by": "voxel"}}))
    with pytest.raises(ValueError, match="credit must be one of"):
        LabelAgentsTrainer.check_config(merge(cfg, {**trusted, "method_options": {"credit": "case"}}))
    assert METHODS.get("svldrl-trusted") is LabelAgentsTrainer


@pytest.mark.slow
@pytest.mark.parametrize(("options", "stop"), [({}, 3), ({"reward": "teacher"}, 3), ({"reward": "teacher"}, 1)],
                         ids=["credit", "teacher", "teacher-at-the-end-of-warmup"])
def test_resume_reaches_the_uninterrupted_result(tmp_path: Path, options: dict, stop: int):
    straight = trainer_on_phantoms(tmp_path / "straight", options, epochs=4)
    result = straight.fit()
    first = trainer_on_phantoms(tmp_path / "resumed", options, epochs=4)
    first.fit(stop_after=stop)
    second = trainer_on_phantoms(tmp_path / "resumed", options, epochs=4)
    assert second.fit(resume=True) == result
    for a, b in zip(straight.net.parameters(), second.net.parameters(), strict=True):
        assert torch.equal(a, b)
    rows = read_log(tmp_path / "resumed")
    assert [r["stage"] for r in rows] == ["warmup", "transition", "full_rl", "full_rl"]
    assert all(math.isfinite(float(r["label_changed"])) for r in rows[2:])


# ----------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_cli_run_on_phantoms_with_sfda_noise(tmp_path: Path):
    runner = CliRunner()
    phantoms = tmp_path / "phantoms"
    assert runner.invoke(app, ["phantom", str(phantoms), "--n", "8", "--size", "32", "--seed", "2"]).exit_code == 0
    out = tmp_path / "run"
    result = runner.invoke(app, [
        "train", str(phantoms), "--method", "svl-drl-trusted", "--noise", "sfda", "--noise-ratio", "0.5",
        "--out", str(out), "-q", "--set", "data.patch_size=32", "--set", "data.trusted_count=2",
        "--set", "data.trusted_per_batch=1", "--set", "optim.epochs=3", "--set", "optim.iters_per_epoch=2",
        "--set", "stages.warmup_epochs=1", "--set", "stages.transition_epochs=1", "--set", "rl.episode_length=1",
        "--set", "noise.sfda_epochs=1", "--set", "model.channels=[4,8]",
    ], catch_exceptions=False)  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["summary"]["mean"]["mean"]["dice"] <= 1.0
    rows = read_log(out)
    assert rows[-1]["stage"] == "full_rl" and rows[-1]["changed_corrupted"] != ""
    trusted = json.loads((out / "trusted.json").read_text())
    manifest = NoiseManifest.load(out / "noise_manifest.json")
    assert trusted["n"] == 2 and manifest.kind == "sfda" and manifest.corrupted_ids  # the agents had noise to see
    assert not set(manifest.corrupted_ids) & set(trusted["cases"])


# ----------------------------------------------------------------------------- the teacher reward (C5)


def test_the_teacher_reward_is_the_teachers_log_likelihood_gain_less_the_confidence_logit(tmp_path: Path):
    trainer = trainer_on_phantoms(tmp_path, {"reward": "teacher", "teacher_confidence": 0.8})
    p_fg = torch.tensor([0.9, 0.6, 0.1, 0.7])
    log_probs = torch.stack([torch.log(1 - p_fg), torch.log(p_fg)]).view(1, 1, 2, 4, 1, 1)  # (A, G, n, ...)
    mask = torch.tensor([0.0, 0.0, 1.0, 1.0]).view(1, 1, 4, 1, 1)
    q = trainer.action_credits(mask, log_probs, torch.ones_like(mask))[0, :, :, 0, 0]  # (3 actions, 4 voxels)
    margin = math.log(0.8 / 0.2)
    expected_fg = [math.log(0.9 / 0.1) - margin, math.log(0.6 / 0.4) - margin, 0.0, 0.0]  # set fg on bg voxels
    expected_bg = [0.0, 0.0, math.log(0.9 / 0.1) - margin, math.log(0.3 / 0.7) - margin]  # set bg on fg voxels
    torch.testing.assert_close(q[KEEP], torch.zeros(4))
    torch.testing.assert_close(q[SET_FOREGROUND], torch.tensor(expected_fg))
    torch.testing.assert_close(q[SET_BACKGROUND], torch.tensor(expected_bg))
    assert (q[1:] > 0).tolist() == [[True, False, False, False], [False, False, True, False]]  # confident edits pay


def test_the_teacher_learns_from_trusted_patches_in_warmup_and_is_then_frozen(tmp_path, monkeypatch):
    trainer = trainer_on_phantoms(tmp_path, {"reward": "teacher"}, epochs=3)
    seen: list[list[str]] = []
    supervised = trainer.supervised_step

    def spy(image, label):
        seen.append(image)
        return supervised(image, label)

    monkeypatch.setattr(trainer, "supervised_step", spy)
    drawn: list[str] = []
    next_trusted = trainer.trusted_batches.next

    def spy_next(*args, **kwargs):
        batch = next_trusted(*args, **kwargs)
        drawn.extend(batch["case_id"])
        return batch

    monkeypatch.setattr(trainer.trusted_batches, "next", spy_next)
    batch = trainer.batch_to_device(next(iter(trainer.sampler.epoch(0, 1, 2))))
    trainer.train_step(batch, epoch=0)  # Warmup: a batch of the trusted stream, not the given one
    assert len(seen) == 1 and len(drawn) == 2 and set(drawn) <= trainer.trusted_ids and trainer.teacher is None
    trainer.train_step(batch, epoch=1)  # the first step after Warmup freezes the teacher
    assert trainer.teacher is not None and not any(p.requires_grad for p in trainer.teacher.parameters())
    frozen = [p.clone() for p in trainer.teacher.parameters()]
    trainer.train_step(batch, epoch=2)
    assert all(torch.equal(a, b) for a, b in zip(frozen, trainer.teacher.parameters(), strict=True))
    assert len(drawn) == 2  # the teacher reward needs no trusted gradient batch


def test_the_teacher_reward_needs_a_warmup(tmp_path: Path):
    cfg = merge(CPU, {**SMALL, "method": "svl-drl-trusted", "data": {"trusted_count": 2},
                      "method_options": {"reward": "teacher"}, "stages": {"skip_warmup": True}})  # fmt: skip
    with pytest.raises(ValueError, match="trains its teacher in Warmup"):
        LabelAgentsTrainer.check_config(cfg)
    with pytest.raises(ValueError, match="teacher_confidence must be in"):
        LabelAgentsTrainer.check_config(merge(cfg, {"method_options": {"teacher_confidence": 1.0},
                                                    "stages": {"skip_warmup": False}}))


def test_the_sampled_reward_charges_the_margin_on_changed_labels_only(tmp_path: Path):
    trainer = trainer_on_phantoms(tmp_path, {"reward": "teacher", "teacher_confidence": 0.8})
    p_fg = torch.tensor([0.9, 0.6, 0.1, 0.7])
    log_probs = torch.stack([torch.log(1 - p_fg), torch.log(p_fg)]).view(1, 1, 2, 4, 1, 1)
    before = torch.tensor([0.0, 0.0, 1.0, 1.0]).view(1, 1, 4, 1, 1)
    after = torch.tensor([1.0, 0.0, 1.0, 0.0]).view(1, 1, 4, 1, 1)  # voxel 0 set to fg, voxel 3 to bg
    rewards, _ = trainer.label_rewards([before, after], log_probs)
    margin = math.log(0.8 / 0.2)
    expected = [math.log(0.9 / 0.1) - margin, 0.0, 0.0, math.log(0.3 / 0.7) - margin]
    penalty = rewards[0, 0, 0, 1, 0, 0]  # an unchanged voxel: only the anatomical term of the whole mask
    torch.testing.assert_close(rewards[0, 0, 0, :, 0, 0] - penalty, torch.tensor(expected))


def test_the_margin_is_charged_once_per_region_changed():
    from svldrl.training.label_episode import changed_groups

    old = torch.zeros(1, 3, 2, 2)  # (A, G regions, n = off/on, 2 voxels)
    old[:, :, 1] = 1.0  # both voxels inside all three regions
    new = old.clone()
    new[:, :, :, 0] = torch.tensor([1.0, 0.0])  # voxel 0 leaves all three regions
    assert changed_groups(old, new)[0, 0].tolist() == [3.0, 0.0]


def test_the_case_gate_lets_agents_edit_only_the_cases_the_teacher_flags(tmp_path: Path, monkeypatch):
    """gate=case: once the teacher exists, the Otsu split of its case scores picks the agents' cases; recorded,
    checkpointed, and no agent row outside them."""
    import json

    import svldrl.training.label_agents as label_agents

    trainer = trainer_on_phantoms(tmp_path, {"reward": "teacher", "gate": "case"}, epochs=3)
    others = sorted({c.case_id for c in trainer.train_cases} - trainer.trusted_ids)
    monkeypatch.setattr(label_agents, "label_agreement", lambda t, model: {others[0]: 0.4, others[1]: 0.9})
    batch = trainer.batch_to_device(next(iter(trainer.sampler.epoch(0, 1, 2))))
    trainer.train_step(batch, epoch=0)  # Warmup: no teacher yet, nothing flagged
    assert trainer.flagged is None
    trainer.train_step(batch, epoch=1)  # the teacher is frozen, then scores the cases
    assert trainer.flagged == frozenset(others[:1])
    assert json.loads((tmp_path / label_agents.GATE_FILE).read_text())["flagged"] == others[:1]
    assert trainer.agent_rows([others[0], others[1], sorted(trainer.trusted_ids)[0]]).tolist() == [0]
    fresh = trainer_on_phantoms(tmp_path / "fresh", {"reward": "teacher", "gate": "case"}, epochs=3)
    fresh.load_checkpoint_state(trainer.checkpoint_state())
    assert fresh.flagged == trainer.flagged
    with pytest.raises(ValueError, match="gate scores the cases with the teacher"):
        LabelAgentsTrainer.check_config(merge(trainer.cfg, {"method_options": {"reward": "credit"}}))
