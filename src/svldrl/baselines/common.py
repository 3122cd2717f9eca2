"""What the noisy-label baselines share: a Trainer base with options and oracle flags, the class view of
labels and outputs, per-voxel cross-entropy, EMA updates and whole-volume predictions.

The class view puts both label modes in one shape, ``(B, G, n, ...)``: G groups of n mutually
exclusive classes. Classes (softmax): one group of ``n_outputs`` classes. Regions (sigmoid, BraTS):
one group per region with the two classes "outside" and "inside" (``softmax([0, z]) = (1 - s(z), s(z))``).
Every voxel-wise mechanism (transition matrices, small-loss selection, confident learning, label
correction) is then written once, for classes, and holds for overlapping regions too.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from svldrl.config import TrainConfig, _from_dict
from svldrl.data import Case, LabelSpec
from svldrl.inference import predict_probabilities
from svldrl.noise import NoiseManifest
from svldrl.training import Trainer

OptionsT = TypeVar("OptionsT")


def option(default: Any, doc: str) -> Any:
    """A field of a method's options dataclass, with its one-line doc (shown by ``describe``)."""
    return dataclasses.field(default=default, metadata={"doc": doc})


def parse_method_options(options_cls: type[OptionsT], method_options: Mapping[str, Any], method: str) -> OptionsT:
    """``cfg.method_options`` as the method's frozen options dataclass; unknown keys fail with the valid list.

    Values are coerced like every other configuration value (YAML and ``--set`` give strings and lists).
    """
    valid = [f.name for f in dataclasses.fields(options_cls)]  # type: ignore[arg-type]
    unknown = sorted(set(method_options) - set(valid))
    if unknown:
        close = difflib.get_close_matches(unknown[0], valid, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(
            f"method_options: unknown option {unknown[0]!r} for method {method!r}{hint}; valid: {', '.join(valid)}"
        )
    return _from_dict(options_cls, dict(method_options), "method_options")


def has_trusted_cases(cfg: TrainConfig) -> bool:
    """Whether the configuration names trusted cases (a list, a file, or a count to draw)."""
    return bool(cfg.data.trusted_cases or cfg.data.trusted_count)


def require_trusted(cfg: TrainConfig, setting: str) -> None:
    """Refuse, before any work, a ``setting`` that needs trusted cases in a run without them."""
    if not has_trusted_cases(cfg):
        raise ValueError(f"{cfg.method}: {setting} needs trusted cases (data.trusted_count or data.trusted_cases)")


class BaselineTrainer(Trainer):
    """A noisy-label baseline: the common Trainer plus typed options, oracle flags and table labels.

    Args:
        cfg, train_cases, val_cases, labels, run_dir, progress: as ``Trainer``.
        noise_manifest: the run's noise manifest; oracle methods read from it what a real user would
            not know (which cases are clean, how noisy each class is). None when the run has no noise.
    """

    OPTIONS: ClassVar[type] = type(None)
    DDP_REFUSAL: ClassVar[str | None] = (
        "the noisy-label baselines keep state besides one network's weights (peers, teachers, corrected labels, "
        "case lists) that is not yet shared between processes"
    )
    """The frozen dataclass of this method's ``cfg.method_options``."""
    NAME: ClassVar[str] = ""
    """Name shown in tables (e.g. "MTCL")."""
    LOSS_KINDS: ClassVar[tuple[str, ...]] = ("dice",)
    """The ``optim.loss`` values it takes: most baselines define their own loss and take only the default."""
    ORACLE: ClassVar[bool] = False
    """Whether the default options use information a real user would not have (the noise manifest)."""
    DESCRIPTION: ClassVar[str] = ""
    """One line for ``svldrl train --help``."""
    FOOTNOTE: ClassVar[str] = ""
    """Footnote for tables (reconstructions say so here); empty when there is nothing to add."""

    def __init__(
        self,
        cfg: TrainConfig,
        train_cases: Sequence[Case],
        val_cases: Sequence[Case],
        labels: LabelSpec,
        run_dir: str | Path,
        *,
        progress: bool = True,
        noise_manifest: NoiseManifest | None = None,
        trusted_ids: Sequence[str] = (),
    ) -> None:
        self.options = parse_method_options(self.OPTIONS, cfg.method_options, cfg.method)
        super().__init__(cfg, train_cases, val_cases, labels, run_dir, progress=progress, noise_manifest=noise_manifest,
                         trusted_ids=trusted_ids)  # fmt: skip

    @classmethod
    def check_config(cls, cfg: TrainConfig) -> None:
        """The baselines define their own losses (most add cross-entropy to a Dice term): ``optim.loss``
        only chooses the loss of the baseline and SVL-DRL, and ``dice_ce`` here would count CE twice."""
        super().check_config(cfg)
        # a typo fails before the data is read
        parse_method_options(cls.options_class(cfg.method_options), cfg.method_options, cfg.method)
        if cfg.optim.loss not in cls.LOSS_KINDS:
            raise ValueError(
                f"{cfg.method}: optim.loss={cfg.optim.loss} is for the baseline and svl-drl; {cls.NAME} trains with "
                f"its own loss (see `svldrl methods`), so leave optim.loss at {' or '.join(map(repr, cls.LOSS_KINDS))}"
            )

    @classmethod
    def options_class(cls, method_options: Mapping[str, Any]) -> type:
        """The options dataclass for these options (one method name may serve several, e.g. RSF's bases)."""
        return cls.OPTIONS

    @classmethod
    def uses_oracle(cls, options: Any, trusted: bool = False) -> bool:
        """Whether a run with these options (and trusted cases or not) uses the noise manifest."""
        return cls.ORACLE

    @classmethod
    def table_label(cls, method_options: Mapping[str, Any] | None = None, trusted: bool = False) -> str:
        """The method's name in tables, e.g. "MTCL (oracle)" when the options make it use the manifest."""
        options = parse_method_options(cls.OPTIONS, method_options or {}, cls.NAME)
        name = cls.NAME
        if getattr(options, "gate", "none") != "none":
            name += ", case-gated"
        if getattr(options, "direction", "both") != "both":
            name += ", per-case direction"
        if getattr(options, "teacher_run", ""):
            name += " (teacher run)"  # two variants differing only here must not share a run folder
        return f"{name} (oracle)" if cls.uses_oracle(options, trusted) else name

    def require_manifest(self, setting: str, alternative: str) -> NoiseManifest:
        """The noise manifest, or a clear error naming the setting that needs it and the one that does not."""
        if self.noise_manifest is None:
            raise ValueError(
                f"{self.cfg.method}: {setting} needs the run's noise manifest (noise_manifest=...); "
                f"without one, set {alternative}"
            )
        return self.noise_manifest

    def group_log_probs(self, seg_logits: torch.Tensor) -> torch.Tensor:
        return group_log_probs(seg_logits, self.labels.mode)

    def group_targets(self, target: torch.Tensor) -> torch.Tensor:
        return group_targets(target, self.labels.mode)

    def volume_probs(self, net: nn.Module, image: np.ndarray | torch.Tensor) -> np.ndarray:
        """(G, n, H, W, D) class-view probabilities of a whole volume (sliding window, seg decoder only)."""
        prob = predict_probabilities(
            net, image, self.cfg.data.patch_size, overlap=self.cfg.sw_overlap, sw_batch_size=self.cfg.sw_batch_size,
            device=self.device, mode=self.labels.mode,
        )  # (n_outputs, H, W, D)
        return volume_group_probs(prob, self.labels.mode)


def epochs_of(fraction: float, epochs: int) -> int:
    """``fraction * epochs`` rounded half up, as the stage schedule rounds (Python's round() is banker's)."""
    return int(fraction * epochs + 0.5)


# ----------------------------------------------------------------------------- the class view


def n_groups_classes(labels: LabelSpec) -> tuple[int, int]:
    """(G, n): one group of n_outputs classes, or one two-class group per region."""
    return (1, labels.n_outputs) if labels.mode == "classes" else (labels.n_outputs, 2)


def group_log_probs(seg_logits: torch.Tensor, mode: str) -> torch.Tensor:
    """(B, G, n, h, w, d) log-probabilities from (B, n_outputs, h, w, d) logits."""
    if mode == "classes":
        return torch.log_softmax(seg_logits, dim=1)[:, None]  # (B, 1, n, h, w, d)
    return torch.stack([F.logsigmoid(-seg_logits), F.logsigmoid(seg_logits)], dim=2)  # (B, K, 2, h, w, d)


def group_targets(target: torch.Tensor, mode: str) -> torch.Tensor:
    """(B, G, n, h, w, d) one-hot targets from the batch label (B, n_outputs, h, w, d).

    Voxels of zero padding have no class in "classes" mode (an all-zero row) and so no loss.
    """
    if mode == "classes":
        return target[:, None]  # (B, 1, n, h, w, d)
    return torch.stack([1.0 - target, target], dim=2)  # (B, K, 2, h, w, d)


def group_indices(target: torch.Tensor, mode: str) -> torch.Tensor:
    """(B, G, h, w, d) long class index per group (padding counts as class 0)."""
    return group_targets(target, mode).argmax(dim=2)


def from_group_targets(onehot: torch.Tensor, mode: str) -> torch.Tensor:
    """Inverse of ``group_targets``: (B, G, n, ...) one-hot -> the batch label layout (B, n_outputs, ...)."""
    return onehot[:, 0] if mode == "classes" else onehot[:, :, 1]


def label_boundary_band(onehot: torch.Tensor, radius: int = 2) -> torch.Tensor:
    """(B, G, h, w, d) bool: voxels within ``radius`` voxels (chessboard distance) of the label's border.

    Why: label noise of the kinds we meet (a wider or tighter border, another site's model) lives
    mostly at the border, so a mechanism that singles out voxels (selection, flips) can be checked
    for whether it acts there. The border is where a group's foreground (any class but 0) meets its
    background: a 3D max-pool dilation minus the matching erosion. The patch edge is not a border.

    Args:
        onehot: (B, G, n, h, w, d) one-hot labels (``group_targets``).
        radius: half-width of the band in voxels.
    """
    foreground = onehot[:, :, 1:].sum(dim=2).clamp_max(1.0)  # (B, G, h, w, d)
    flat = foreground.flatten(0, 1)[:, None]  # (B * G, 1, h, w, d)
    size = 2 * radius + 1
    dilated = F.max_pool3d(flat, size, stride=1, padding=radius)
    eroded = -F.max_pool3d(-flat, size, stride=1, padding=radius)  # max-pool pads with -inf: no edge effect
    return (dilated > eroded).view_as(foreground)


def voxel_cross_entropy(seg_logits: torch.Tensor, target: torch.Tensor, mode: str) -> torch.Tensor:
    """(B, G, h, w, d) cross-entropy per voxel and group, no reduction (binary CE per region)."""
    return -(group_targets(target, mode) * group_log_probs(seg_logits, mode)).sum(dim=2)


def seg_probabilities(seg_logits: torch.Tensor, mode: str) -> torch.Tensor:
    """(B, n_outputs, ...) softmax (classes) or sigmoid (regions) probabilities, the Dice loss's input."""
    return torch.softmax(seg_logits, dim=1) if mode == "classes" else torch.sigmoid(seg_logits)


def volume_group_probs(prob: np.ndarray, mode: str) -> np.ndarray:
    """(G, n, H, W, D) from a volume's (n_outputs, H, W, D) probabilities."""
    if mode == "classes":
        return prob[None]
    return np.stack([1.0 - prob, prob], axis=1)  # (K, 2, H, W, D)


def label_groups(label: np.ndarray, mode: str) -> np.ndarray:
    """(G, H, W, D) class index per group from a ``Case.label`` ((H, W, D) classes or (K, H, W, D) regions)."""
    return label[None] if mode == "classes" else label


def label_from_groups(groups: np.ndarray, mode: str) -> np.ndarray:
    """Inverse of ``label_groups``, as uint8."""
    return (groups[0] if mode == "classes" else groups).astype(np.uint8)


# ----------------------------------------------------------------------------- models


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, decay: float) -> None:
    """teacher <- decay * teacher + (1 - decay) * student, parameter by parameter; buffers are copied."""
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"ema decay must be in [0, 1], got {decay}")
    for t, s in zip(teacher.parameters(), student.parameters(), strict=True):
        t.mul_(decay).add_(s.detach(), alpha=1.0 - decay)
    for t, s in zip(teacher.buffers(), student.buffers(), strict=True):
        t.copy_(s)


def build_peer(build: Any, seed: int) -> nn.Module:
    """A second network from ``build()`` with its own seed, leaving the global RNG state untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()
