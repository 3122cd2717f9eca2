"""What a run's ``env.json`` says about how its CPU kernels were chosen (experiments/environment.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from svldrl.experiments.environment import KERNEL_LIMIT_VARIABLES, cpu_kernels, environment_record
from svldrl.experiments.grid_outputs import environments, mixed_kernel_footnotes, results_table
from svldrl.metrics import METRICS


def test_kernel_limits_are_recorded_only_when_set(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in KERNEL_LIMIT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert "cpu_kernel_limits" not in environment_record("cpu")  # as in every record made before the key
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    monkeypatch.setenv("MKL_ENABLE_INSTRUCTIONS", "")  # set but empty: no limit
    assert environment_record("cpu")["cpu_kernel_limits"] == {"ONEDNN_MAX_CPU_ISA": "AVX2"}


def test_runs_with_and_without_kernel_limits_are_two_environments() -> None:
    """A table that mixes them should show it: the same machine and packages train different models."""
    base = {"packages": {"torch": "2.13.0"}, "machine": "x86_64", "torch_cpu_capability": "AVX2", "git_commit": "a"}
    limited = {**base, "cpu_kernel_limits": {"ONEDNN_MAX_CPU_ISA": "AVX2"}}
    groups = environments([(None, {"environment": base}), (None, {"environment": limited}),
                           (None, {"environment": base})])  # fmt: skip
    assert sorted(g["runs"] for g in groups) == [1, 2]
    assert {str(g.get("cpu_kernel_limits")) for g in groups} == {"None", "{'ONEDNN_MAX_CPU_ISA': 'AVX2'}"}
    assert sum("cpu_kernel_limits" in g for g in groups) == 1  # absent, not null, where none was set


def _run(label: str, seed: int) -> SimpleNamespace:
    """What the table writer reads of a grid run: its row (noise group, label) and seed."""
    variant = SimpleNamespace(label=label, superseded=None, method="baseline")
    return SimpleNamespace(group="MT-Noise 50%", seed=seed, variant=variant)


def test_a_row_whose_seeds_were_trained_with_different_kernels_says_which() -> None:
    avx2 = {"environment": {"torch_cpu_capability": "AVX2"}}
    avx512 = {"environment": {"torch_cpu_capability": "AVX512"}}
    both = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
    capped = {"environment": {"torch_cpu_capability": "AVX2", "cpu_kernel_limits": both}}  # Session 28: as AVX2
    aten_only = {"environment": {"torch_cpu_capability": "AVX2", "cpu_kernel_limits": {"ATEN_CPU_CAPABILITY": "avx2"}}}
    entries = [(_run("Trusted only 6", 5), avx2), (_run("Trusted only 6", 6), avx2),
               (_run("Trusted only 6", 8), avx512), (_run("Agents", 5), avx2), (_run("Agents", 6), avx2),
               (_run("Agents", 7), {}), (_run("Capped", 1), avx2), (_run("Capped", 2), capped),
               (_run("Half-capped", 1), avx2), (_run("Half-capped", 2), aten_only)]  # fmt: skip
    notes = mixed_kernel_footnotes(entries)
    # "Agents": one kernel family, and a run with no record is not a second one; "Capped": an AVX-512
    # machine capped at AVX2 in ATen and oneDNN trains what an AVX2 machine trains
    assert len(notes) == 2
    assert notes[0].startswith("Half-capped (MT-Noise 50%): seeds trained with different CPU kernels (AVX2: seed 1; "
                               "AVX2 (oneDNN not capped): seed 2)")  # fmt: skip
    assert "(AVX2: seeds 5, 6; AVX512: seed 8)" in notes[1] and notes[1].startswith("Trusted only 6 (MT-Noise 50%)")
    scores = {"summary": {"mean": {"mean": dict.fromkeys(METRICS, 0.8)}}}
    table = results_table([(run, {**metrics, **scores}) for run, metrics in entries[:3]], "caption", 3)
    assert table.footnotes[-1] == notes[1]  # the table of the grid carries it


def test_a_kernel_cap_that_is_not_atens_choice_is_named() -> None:
    env = {"torch_cpu_capability": "AVX512", "cpu_kernel_limits": {"ONEDNN_MAX_CPU_ISA": "AVX2"}}
    assert cpu_kernels(env) == "AVX512 (ONEDNN_MAX_CPU_ISA=AVX2)"
    same = {"torch_cpu_capability": "AVX512", "cpu_kernel_limits": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"}}
    assert cpu_kernels(same) == "AVX512"  # oneDNN's name of the same instruction set
    assert cpu_kernels({}) is None and cpu_kernels(None) is None
