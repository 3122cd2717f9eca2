"""What a run's ``env.json`` says about how its CPU kernels were chosen (experiments/environment.py)."""

from __future__ import annotations

import pytest

from svldrl.experiments.environment import KERNEL_LIMIT_VARIABLES, environment_record
from svldrl.experiments.grid_outputs import environments


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
