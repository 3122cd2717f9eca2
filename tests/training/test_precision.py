"""Mixed precision (issue 17): autocast around the step, backward outside it, rewards and losses in float32."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from svldrl.config import CPU, merge, settings_of
from svldrl.config_checks import check_values
from svldrl.data import PHANTOM_LABELS, make_phantoms
from svldrl.training import SVLDRLTrainer, Trainer
from svldrl.training.precision import resolve_precision

TINY = {"data": {"patch_size": [32, 32, 32]}, "model": {"channels": [4, 8]}, "val_every": 0,
        "optim": {"epochs": 1, "iters_per_epoch": 2, "batch_size": 2}}  # fmt: skip


def test_precision_resolves_per_device_and_refuses_fp16_off_cuda():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == "fp32" and resolve_precision("bf16", cpu) == "bf16"
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        resolve_precision("fp16", cpu)
    with pytest.raises(ValueError, match="precision must be one of"):
        check_values(merge(CPU, {"precision": "fp8"}))
    # an execution key: a run made in fp32 is the same run asked for in bf16 (like device)
    assert settings_of(merge(CPU, {"precision": "bf16"})) == settings_of(CPU)


@pytest.mark.parametrize("method", ["baseline", "svl-drl"])
def test_a_bf16_step_runs_under_autocast_and_keeps_losses_and_rewards_in_float32(tmp_path: Path, method: str):
    cfg = merge(CPU, {**TINY, "method": method, "precision": "bf16", "rl": {"episode_length": 1},
                      "stages": {"warmup_epochs": 0, "transition_epochs": 0}})  # fmt: skip
    cls = SVLDRLTrainer if method == "svl-drl" else Trainer
    trainer = cls(cfg, make_phantoms(2, 32, seed=2), [], PHANTOM_LABELS, tmp_path, progress=False)
    seen: list[torch.dtype] = []
    loss_fn = trainer.seg_loss

    def spy(logits, target):
        seen.append(logits.dtype)
        return loss_fn(logits, target)

    trainer.seg_loss = spy
    before = [p.detach().clone() for p in trainer.net.parameters()]
    metrics = trainer.fit()
    assert trainer.precision == "bf16"
    assert seen and set(seen) == {torch.float32}  # the Dice loss sees float32 logits
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.net.parameters(), strict=True))
    assert all(p.dtype == torch.float32 for p in trainer.net.parameters())  # weights stay float32
    assert metrics["epochs_done"] == 1.0
    if method == "svl-drl":  # the rewards' probabilities are float32 although the network ran in bf16
        image = torch.as_tensor(next(iter(trainer.sampler.epoch(0, 1, 2)))["image"], dtype=torch.float32)
        from svldrl.training.precision import autocast
        from svldrl.training.svldrl import gradient_plan

        with autocast("bf16", trainer.device):
            rollout = trainer.rollout(image, gradient_plan(1, "full", "all", torch.Generator()), train_policy=True)
        assert rollout.seg_logits[0].dtype == torch.bfloat16 and rollout.probs[0].dtype == torch.float32


def test_bf16_on_a_cpu_without_native_bf16_is_warned_about(tmp_path: Path):
    """An AVX2 CPU emulates bf16 (35-45x slower than fp32, benchmarks/README.md): the run says so."""
    from svldrl.training.precision import cpu_flags, warn_if_emulated

    cpu = torch.device("cpu")
    with pytest.warns(UserWarning, match="emulated"):
        assert "use --precision fp32" in warn_if_emulated("bf16", cpu, {"avx2", "fma"})
    assert warn_if_emulated("bf16", cpu, {"avx2", "avx512f", "avx512_bf16"}) is None  # native
    assert warn_if_emulated("fp32", cpu, {"avx2"}) is None
    assert warn_if_emulated("bf16", cpu, set()) is None  # nothing known about the CPU: no guess
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 amx_bf16\n")
    assert cpu_flags(info) == {"fpu", "avx2", "amx_bf16"} and cpu_flags(tmp_path / "missing") == set()
