"""Checkpoints: written atomically, loadable with ``weights_only=True``, enough to resume or to predict."""

from __future__ import annotations

import importlib
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from svldrl._io import atomic_write, write_text
from svldrl.config import TrainConfig, merge
from svldrl.config_history import with_legacy_values
from svldrl.data import LabelSpec
from svldrl.training.methods import METHODS
from svldrl.training.seeding import resolve_device

if TYPE_CHECKING:
    from svldrl.training.trainer import Trainer

CHECKPOINT_DIR = "checkpoints"
LATEST = "latest.pt"
BEST = "best.pt"


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename: a crash never leaves half a file."""
    atomic_write(path, lambda handle: torch.save(obj, handle), mode="wb")


def atomic_write_text(text: str, path: Path) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    write_text(path, text)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A checkpoint written by the trainer; a clear error if the file is missing or not one of ours."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or foreign files
        raise ValueError(f"{path}: cannot read checkpoint ({exc})") from exc
    missing = {"model", "config", "labels", "in_channels"} - set(payload)
    if missing:
        raise ValueError(f"{path}: not an svldrl checkpoint (missing {', '.join(sorted(missing))})")
    return payload


def checkpoint_path(run_dir_or_checkpoint: str | Path) -> Path:
    """A checkpoint file itself, or a run folder's final model (``latest.pt``, else ``best.pt``).

    Why the final model: it is the one ``train`` scores into ``metrics.json``, so ``evaluate`` and
    ``predict`` on a run folder reproduce the run's numbers (nnU-Net predicts with its final
    checkpoint too). ``best.pt`` is chosen on the validation cases; pass its path to use it.
    """
    path = Path(run_dir_or_checkpoint)
    if path.is_file():
        return path
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: neither a run folder nor a checkpoint file")
    for name in (LATEST, BEST):
        candidate = path / CHECKPOINT_DIR / name
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{path}: no {CHECKPOINT_DIR}/{LATEST} or {CHECKPOINT_DIR}/{BEST} in this run folder")


def labels_to_dict(labels: LabelSpec) -> dict[str, Any]:
    return {"names": list(labels.names), "mode": labels.mode}


def labels_from_dict(data: dict[str, Any]) -> LabelSpec:
    return LabelSpec(names=tuple(data["names"]), mode=str(data["mode"]))


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    """The resolved configuration stored in a checkpoint (keys it predates take their old values)."""
    return merge(TrainConfig(), with_legacy_values(data))


def load_trained(
    run_dir_or_checkpoint: str | Path, device: str | torch.device = "auto"
) -> tuple[nn.Module, TrainConfig, LabelSpec]:
    """The trained network (eval mode, on ``device``), its configuration and label spec.

    The network is rebuilt by the method's ``inference_network`` (methods with another module,
    e.g. extra input channels, override it), then the saved weights are loaded.

    Args:
        run_dir_or_checkpoint: a run folder (its final model ``checkpoints/latest.pt``, else
            ``best.pt``) or a checkpoint file.
        device: "auto", "cpu", "cuda", "cuda:N" or a torch.device.
    """
    path = checkpoint_path(run_dir_or_checkpoint)
    target = resolve_device(device)
    payload = load_checkpoint(path, map_location="cpu")
    cfg = config_from_dict(payload["config"])
    labels = labels_from_dict(payload["labels"])
    # pretrained=None: the checkpoint has the weights; the encoder file may not exist on this machine
    build_cfg = replace(cfg, model=replace(cfg.model, pretrained=None))
    net = method_class(cfg.method).inference_network(build_cfg, int(payload["in_channels"]), labels)
    net.load_state_dict(payload["model"])
    return net.to(target).eval(), cfg, labels


def method_class(name: str) -> type[Trainer]:
    """The Trainer class of ``name``; the baselines register on import, so import them if needed."""
    if name not in METHODS:
        importlib.import_module("svldrl.baselines")
    return METHODS.get(name)
