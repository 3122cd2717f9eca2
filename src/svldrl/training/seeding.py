"""Seeding, determinism flags, device choice and RNG snapshots: everything a run needs to repeat itself."""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices) and turn on deterministic algorithms.

    The one place where global random state is touched; code that draws random numbers takes a
    generator instead. ``warn_only`` keeps ops without a deterministic kernel usable (some CUDA
    3D upsampling backward passes) while flagging them.
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=True)


def resolve_device(name: str | torch.device, with_index: bool = True) -> torch.device:
    """``"auto"`` -> the current CUDA device if there is one, else the CPU; "cuda" gets its index.

    ``with_index=False`` leaves a bare "cuda" without one: under torchrun each rank takes its own GPU
    later (``distributed.rank_gpu``), and the current device before that is GPU 0 on every rank.
    """
    name = str(name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"device: cannot use {name!r} ({exc}); expected 'auto', 'cpu', 'cuda' or 'cuda:N'") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device: {name!r} requested but CUDA is not available on this machine")
    if with_index and device.type == "cuda" and device.index is None:  # "cuda" -> "cuda:N", as tensors report it
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def capture_rng_state(generator: torch.Generator) -> dict[str, Any]:
    """Every RNG a training step may touch, as tensors and plain values (loadable with weights_only)."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "kind": np_state[0],
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
        "generator": generator.get_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any], generator: torch.Generator) -> None:
    """Inverse of :func:`capture_rng_state`."""
    random.setstate(_as_python_state(state["python"]))
    np_state = state["numpy"]
    keys = np_state["keys"].numpy().astype(np.uint32)
    np.random.set_state(
        (np_state["kind"], keys, np_state["pos"], np_state["has_gauss"], np_state["cached_gaussian"])
    )
    torch.set_rng_state(state["torch"])
    generator.set_state(state["generator"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_python_state(state: Any) -> tuple[Any, ...]:
    """``random.setstate`` wants tuples; a serialised state may come back with lists."""
    version, internal, gauss = state
    return (version, tuple(internal), gauss)
