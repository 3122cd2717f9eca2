"""Slow end-to-end checks: the cpu preset learns a phantom; the SwinUNETR backbone runs an SVL-DRL step."""

from __future__ import annotations

import math

import pytest

from svldrl.config import CPU, merge
from svldrl.data import PHANTOM_LABELS, make_phantoms
from svldrl.training import METHODS, Stage, read_log


@pytest.mark.slow
def test_cpu_preset_overfits_one_phantom(tmp_path):
    """SVL-DRL with the cpu preset's network and optimiser (Adam 3e-3, poly), through all three stages.

    Shortened to 9 epochs x 4 steps (Warmup 7, Transition 1, Full RL 1), patch = the 32^3 phantom,
    no augmentation (the point is to memorise one case), validated on the training case itself.
    About a minute on one core.
    """
    case = make_phantoms(1, 32, seed=0)[0]
    cfg = merge(
        CPU,
        {
            "data": {"patch_size": [32, 32, 32], "flips": False, "intensity_jitter": 0.0},
            "optim": {"epochs": 9, "iters_per_epoch": 4},
            "stages": {"warmup_epochs": 7, "transition_epochs": 1},
            "val_every": 3,
            "num_threads": 1,
        },
    )
    assert (cfg.optim.optimizer, cfg.optim.lr, cfg.optim.lr_schedule) == (CPU.optim.optimizer, 3e-3, "poly")
    trainer = METHODS.get("svl-drl")(cfg, [case], [case], PHANTOM_LABELS, tmp_path, progress=False)
    result = trainer.fit()
    assert [r["stage"] for r in read_log(tmp_path)][-2:] == ["transition", "full_rl"]
    assert result["val_dice"] > 0.9


@pytest.mark.slow
def test_swin_unetr_runs_one_svl_drl_step_on_a_64_patch(tmp_path):
    """One Full-RL step (K = 1 to stay within a test's budget on a CPU) with the paper's backbone."""
    case = make_phantoms(1, 64, seed=0)[0]
    cfg = merge(
        CPU,
        {
            "model": {"backbone": "swin-unetr", "feature_size": 12},
            "data": {"patch_size": [64, 64, 64]},
            "optim": {"batch_size": 1},
            "rl": {"episode_length": 1},
            "stages": {"skip_warmup": True, "skip_transition": True},
            "num_threads": 1,
        },
    )
    trainer = METHODS.get("svl-drl")(cfg, [case], [], PHANTOM_LABELS, tmp_path, progress=False)
    assert trainer.schedule.stage(0) is Stage.FULL_RL
    batch = trainer.batch_to_device(next(trainer.sampler.epoch(0, 1, 1)))
    scalars = trainer.train_step(batch, 0)
    assert all(math.isfinite(v) for v in scalars.values())
    for params in (trainer.net.seg_parameters(), trainer.net.value_parameters(), trainer.net.policy_parameters()):
        assert any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in params)
