"""What a run records about the machine and software, so it can be repeated exactly."""

from __future__ import annotations

import platform
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

_PACKAGES = (
    "svldrl",
    "torch",
    "monai",
    "numpy",
    "scipy",
    "nibabel",
    "h5py",
    "connected-components-3d",
    "edt",
    "cleanlab",
    "scikit-learn",
)


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit(path: Path | None = None) -> str | None:
    """The commit of the svldrl source tree (None outside a git checkout), with '+dirty' if modified."""
    where = path or Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5)
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def cpu_model() -> str | None:
    """The processor's model name (Linux /proc/cpuinfo, else what platform knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


#: environment variables that cap the instruction set torch (ATen), oneDNN and MKL pick their CPU kernels
#: from: with them an AVX-512 machine trains what an AVX2 machine trains, bit for bit (docs/results.md, Session 28)
KERNEL_LIMIT_VARIABLES = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")


#: the two names oneDNN reads its cap from (the newer and the older one)
ONEDNN_LIMIT_VARIABLES = frozenset({"ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"})


def kernel_limits() -> dict[str, str]:
    """The kernel-limiting variables set in this process's environment (``KERNEL_LIMIT_VARIABLES``)."""
    import os

    return {name: os.environ[name] for name in KERNEL_LIMIT_VARIABLES if os.environ.get(name)}


def environment_record(device: str) -> dict[str, Any]:
    """The content of a run's ``env.json``."""
    import torch

    record: dict[str, Any] = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": __import__("os").cpu_count(),
        "cpu_model": cpu_model(),
        # Why: torch picks its CPU kernels by instruction set (AVX2, AVX512, ...), and other kernels
        # round differently, so two machines with the same packages can train different models.
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "cuda": torch.version.cuda,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "packages": package_versions(),
        "git_commit": git_commit(),
        "command": " ".join(sys.argv),
    }
    if limits := kernel_limits():  # absent when none is set, as in every record made before it was kept
        # Why: ``torch_cpu_capability`` shows ATen's choice only; oneDNN's convolutions follow their own
        # variable, and only both together reproduced an AVX2 machine's run on an AVX-512 one
        record["cpu_kernel_limits"] = limits
    return record


def cpu_kernels(environment: dict[str, Any] | None) -> str | None:
    """The CPU kernel family a run was trained with, from its ``env.json``: "AVX2", or "AVX2 (oneDNN not
    capped)"; None where the run has no record of it.

    An AVX-512 machine with ATen and oneDNN both capped at AVX2 counts as "AVX2": it trains what an
    AVX2 machine trains, bit for bit (docs/results.md, Session 28). A cap that differs from ATen's
    choice, or ATen capped and oneDNN not, is named, since those runs are not an AVX2 machine's.
    """
    env = environment or {}
    capability = env.get("torch_cpu_capability")
    if capability is None:
        return None
    limits: dict[str, str] = env.get("cpu_kernel_limits") or {}
    isa = str(capability).upper()
    named = [f"{k}={v}" for k, v in sorted(limits.items())
             if k != "ATEN_CPU_CAPABILITY" and not v.upper().replace("_", "").startswith(isa)]  # fmt: skip
    if "ATEN_CPU_CAPABILITY" in limits and not ONEDNN_LIMIT_VARIABLES & set(limits):
        named.append("oneDNN not capped")
    return f"{capability} ({', '.join(named)})" if named else str(capability)
