"""Mixed precision: ``torch.autocast`` around a training step, a gradient scaler for fp16 (issue 17).

``precision`` (a top-level configuration key, like ``device`` an execution key: it changes the
rounding, not the method): ``fp32``; ``bf16`` (CUDA, and CPUs, where oneDNN uses AVX512-BF16 or
AMX when the CPU has them); ``fp16`` (CUDA only, with ``torch.amp.GradScaler``); ``auto``, the
default: autocast on CUDA as nnU-Net and MONAI train (bf16 where the GPU supports it, which needs
no loss scaling, else fp16), fp32 on CPUs (where bf16 has to earn its place by measurement,
benchmarks/README.md). The backward pass runs outside autocast (PyTorch's advice; its ops follow
the dtypes of their forward ops anyway); rewards, metrics and the anatomical penalty are computed
from float32 copies.
"""

from __future__ import annotations

import warnings
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import torch

from svldrl.config_checks import PRECISIONS

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_precision(precision: str, device: torch.device) -> str:
    """The concrete precision of ``precision`` on ``device``; refuses fp16 off CUDA."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        if device.type != "cuda":
            return "fp32"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if precision == "fp16" and device.type != "cuda":
        raise ValueError(f"precision fp16 needs a CUDA device (this run's is {device}); use bf16 or fp32")
    return precision


NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
"""CPU flags (``/proc/cpuinfo``) with which oneDNN runs bf16 natively; without them it is emulated."""


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU's feature flags (empty where ``/proc/cpuinfo`` cannot be read: not Linux)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return set()
    return set(next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []))


def warn_if_emulated(precision: str, device: torch.device, flags: set[str] | None = None) -> str | None:
    """Warn (and return the message) when bf16 is asked of a Linux CPU without native bf16 instructions.

    Why: on an AVX2 CPU (AMD EPYC, session 12) a bf16 baseline step took 35-45x as long as fp32
    (benchmarks/README.md), where on an AVX512-BF16 CPU it was 2x faster; a run that would take an
    hour would take a day or two, with nothing to say why.
    """
    if precision != "bf16" or device.type != "cpu":
        return None
    flags = cpu_flags() if flags is None else flags
    if not flags or any(f in flags for f in NATIVE_BF16_FLAGS):
        return None  # native bf16, or nothing known about the CPU
    message = ("precision bf16 on this CPU is emulated (no AVX512-BF16 or AMX in /proc/cpuinfo): measured 35-45x "
               "slower than fp32 on such a CPU (benchmarks/README.md); use --precision fp32")
    warnings.warn(message, stacklevel=2)
    return message


def autocast(precision: str, device: torch.device) -> AbstractContextManager:
    """The autocast context of a concrete ``precision`` (nothing for fp32)."""
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=DTYPES[precision])


def without_autocast(device: torch.device) -> AbstractContextManager:
    """A block outside any autocast (backward passes, rewards)."""
    return torch.autocast(device_type=device.type, enabled=False)


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler | None:
    """A gradient scaler for fp16 on CUDA (small gradients would underflow); None otherwise."""
    if precision == "fp16":
        return torch.amp.GradScaler(device.type)
    return None
