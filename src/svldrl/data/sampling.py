"""Training patches: foreground/background-balanced crops with flips and intensity jitter.

The patches of an epoch are a pure function of ``(seed, epoch)`` (batch ``b`` even of
``(seed, epoch, b)``): every random draw comes from a generator seeded with them, so a run resumed at
an epoch boundary sees exactly the patches the uninterrupted run would have seen.

Which cases a batch holds (``data.sampler``): ``mixed`` (the default) draws the patches of a batch
from different cases, as nnU-Net's and MONAI's samplers do; ``per_case`` puts the
``samples_per_volume`` patches of one case side by side (every table made before issue 14). With
trusted cases and ``data.trusted_per_batch = k``, every batch holds ``k`` patches of trusted cases
and the rest from the others (two streams, as MTCL's ``TwoStreamBatchSampler``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from monai.transforms import SpatialPad
from monai.utils import convert_to_numpy

from svldrl.config import DataConfig
from svldrl.data.case import Case, LabelSpec
from svldrl.data.labels import unique_values

_ORDER, _BATCH = 0, 1  # stream tags; seeds are fixed-length lists because numpy ignores trailing zeros
_ALL, _TRUSTED, _OTHERS = 0, 1, 2  # the case streams of ``_ORDER``


@dataclass(frozen=True)
class _Volume:
    """A case ready for cropping: padded to at least the patch size, foreground voxels indexed."""

    case_id: str
    image: np.ndarray  # (C, H, W, D) float32
    target: np.ndarray  # (n_outputs, H, W, D) uint8: one-hot classes or binary regions
    foreground: np.ndarray  # sorted flat indices of voxels in any foreground class/region


def _pad(array: np.ndarray, patch: tuple[int, int, int]) -> np.ndarray:
    """Zero-pad (C, H, W, D) symmetrically up to the patch size where the volume is smaller."""
    if all(s >= p for s, p in zip(array.shape[1:], patch, strict=True)):
        return array
    return convert_to_numpy(SpatialPad(spatial_size=patch, method="symmetric")(array), dtype=array.dtype)


def _target(label: np.ndarray, labels: LabelSpec) -> np.ndarray:
    """(n_outputs, H, W, D) uint8: one-hot class channels, or the region channels as they are."""
    return labels.target_channels(label)


def _check_case(case: Case, labels: LabelSpec) -> None:
    where = f"case {case.case_id}"
    if case.label is None:
        raise ValueError(f"{where}: has no label; the patch sampler needs training labels")
    if case.image.ndim != 4:
        raise ValueError(f"{where}: image must be (C, H, W, D), got shape {case.image.shape}")
    if labels.mode == "classes":
        if case.label.shape != case.image.shape[1:]:
            raise ValueError(f"{where}: label shape {case.label.shape} differs from image {case.image.shape[1:]}")
        too_big = [v for v in unique_values(case.label, where).tolist() if v >= labels.n_outputs]
        if too_big:
            raise ValueError(f"{where}: label values {too_big} >= {labels.n_outputs} classes {labels.names}")
    elif case.label.shape != (labels.n_outputs, *case.image.shape[1:]):
        raise ValueError(f"{where}: region label shape {case.label.shape}, expected ({labels.n_outputs}, H, W, D)")


def _check_config(data_cfg: DataConfig, seed: int) -> tuple[int, int, int]:
    patch = tuple(int(p) for p in data_cfg.patch_size)
    if len(patch) != 3 or min(patch) < 1:
        raise ValueError(f"data.patch_size must be 3 positive ints, got {data_cfg.patch_size}")
    if not 0.0 <= data_cfg.pos_fraction <= 1.0:
        raise ValueError(f"data.pos_fraction must be in [0, 1], got {data_cfg.pos_fraction}")
    if data_cfg.samples_per_volume < 1:
        raise ValueError(f"data.samples_per_volume must be >= 1, got {data_cfg.samples_per_volume}")
    if not 0.0 <= data_cfg.intensity_jitter < 1.0:
        raise ValueError(f"data.intensity_jitter must be in [0, 1), got {data_cfg.intensity_jitter}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return patch  # type: ignore[return-value]


def _nth_background(foreground: np.ndarray, n: int) -> int:
    """Flat index of the n-th (0-based) voxel NOT in the sorted ``foreground`` indices."""
    gaps = foreground - np.arange(foreground.size)  # background voxels before each foreground voxel
    return int(n + np.searchsorted(gaps, n, side="right"))


class PatchSampler:
    """Draws training batches ``{"image": (B, C, h, w, d), "label": (B, n_outputs, h, w, d), "case_id": [...]}``.

    With probability ``data_cfg.pos_fraction`` a patch is centred on a voxel drawn uniformly from the
    foreground of the training label, else from its background (as MONAI's ``RandCropByPosNegLabeld``);
    the centre is then shifted so the patch lies inside the volume, and volumes smaller than the patch
    are zero-padded (``SpatialPad``). Each axis is flipped with probability 1/2 (``data_cfg.flips``) and
    each channel gets ``x * (1 + u) + v``, ``u, v ~ U(-j, j)``, clamped to [0, 1] (``intensity_jitter``).
    Cases are visited in a fresh random order each epoch, ``samples_per_volume`` patches per visit
    and pass; ``data_cfg.sampler`` and ``trusted_per_batch`` decide how the visits form batches
    (module docstring).

    Args:
        cases: prepared cases (see ``prepare_cases``) with training labels, possibly noisy.
        labels: what the labels mean; sets one-hot classes or binary region channels.
        data_cfg: patch size, ``pos_fraction``, ``samples_per_volume``, ``flips``, ``intensity_jitter``,
            ``sampler``, ``trusted_per_batch``.
        seed: the run's seed.
        trusted_ids: the trusted cases among ``cases`` (their stream, with ``trusted_per_batch``).
    """

    def __init__(
        self,
        cases: Sequence[Case],
        labels: LabelSpec,
        data_cfg: DataConfig,
        seed: int,
        trusted_ids: Sequence[str] = (),
    ) -> None:
        self.patch_size = _check_config(data_cfg, seed)
        if not cases:
            raise ValueError("PatchSampler: no cases given")
        for case in cases:
            _check_case(case, labels)
        channels = {case.n_channels for case in cases}
        if len(channels) > 1:
            raise ValueError(f"PatchSampler: cases have different channel counts {sorted(channels)}")
        self.labels = labels
        self.data_cfg = data_cfg
        self.seed = seed
        self._volumes = [self._prepare(case) for case in cases]
        trusted = set(trusted_ids)
        self._trusted = [i for i, v in enumerate(self._volumes) if v.case_id in trusted]
        self._others = [i for i, v in enumerate(self._volumes) if v.case_id not in trusted]
        if data_cfg.trusted_per_batch and not (self._trusted and self._others):
            raise ValueError(
                f"data.trusted_per_batch={data_cfg.trusted_per_batch} needs trusted and other cases among the "
                f"training cases; got {len(self._trusted)} trusted and {len(self._others)} others"
            )

    def _prepare(self, case: Case) -> _Volume:
        image = _pad(case.image.astype(np.float32, copy=False), self.patch_size)
        label = case.label if self.labels.mode == "regions" else case.label[None]
        label = _pad(label, self.patch_size)  # padding is background (class 0 / no region)
        target = _target(label if self.labels.mode == "regions" else label[0], self.labels)
        foreground = np.flatnonzero(target[1:].any(0) if self.labels.mode == "classes" else target.any(0))
        return _Volume(case.case_id, image, target, foreground)

    @property
    def case_ids(self) -> tuple[str, ...]:
        return tuple(v.case_id for v in self._volumes)

    def batches_per_pass(self, batch_size: int) -> int:
        """Batches that visit every case once (``samples_per_volume`` patches each)."""
        return math.ceil(len(self._volumes) * self.data_cfg.samples_per_volume / batch_size)

    def _visit_order(self, epoch: int, n_patches: int) -> list[int]:
        """``per_case``: volume index of each patch; shuffled passes over the cases, each visit repeated."""
        rng = np.random.default_rng([self.seed, epoch, _ORDER, 0])
        order: list[int] = []
        while len(order) < n_patches:
            order.extend(np.repeat(rng.permutation(len(self._volumes)), self.data_cfg.samples_per_volume).tolist())
        return order[:n_patches]

    def _stream(self, epoch: int, tag: int, volumes: list[int], n_batches: int, per_batch: int) -> list[list[int]]:
        """``n_batches`` groups of ``per_batch`` volume indices, each group of different cases when possible.

        The visits are shuffled rounds over ``volumes`` (``samples_per_volume`` rounds make a pass);
        a group takes the next visits in turn, skipping ahead past a case it already holds.
        """
        rng = np.random.default_rng([self.seed, epoch, _ORDER, tag])
        pending: list[int] = []
        while len(pending) < n_batches * per_batch:
            pending.extend(rng.permutation(volumes).tolist())
        groups = []
        for _ in range(n_batches):
            group: list[int] = []
            while len(group) < per_batch:
                pick = next((k for k, v in enumerate(pending) if v not in group), 0)  # 0: fewer cases than slots
                group.append(pending.pop(pick))
            groups.append(group)
        return groups

    def _batch_volumes(self, epoch: int, n_batches: int, batch_size: int) -> list[list[int]]:
        """The volume index of every patch of every batch of ``epoch`` (a pure function of seed and epoch)."""
        if self.data_cfg.sampler == "per_case":
            order = self._visit_order(epoch, n_batches * batch_size)
            return [order[b * batch_size : (b + 1) * batch_size] for b in range(n_batches)]
        k = self.data_cfg.trusted_per_batch
        if not k:
            return self._stream(epoch, _ALL, list(range(len(self._volumes))), n_batches, batch_size)
        if k >= batch_size:
            raise ValueError(f"data.trusted_per_batch={k} leaves no room in batches of {batch_size}")
        trusted = self._stream(epoch, _TRUSTED, self._trusted, n_batches, k)
        others = self._stream(epoch, _OTHERS, self._others, n_batches, batch_size - k)
        return [t + o for t, o in zip(trusted, others, strict=True)]

    def _centre(self, volume: _Volume, rng: np.random.Generator) -> np.ndarray:
        """A voxel drawn from the foreground (probability pos_fraction) or the background."""
        n_voxels = volume.target[0].size
        n_foreground = volume.foreground.size
        positive = rng.random() < self.data_cfg.pos_fraction
        if (positive and n_foreground) or n_foreground == n_voxels:
            flat = int(volume.foreground[rng.integers(n_foreground)])
        else:
            flat = _nth_background(volume.foreground, int(rng.integers(n_voxels - n_foreground)))
        return np.array(np.unravel_index(flat, volume.target.shape[1:]))

    def _patch(self, volume: _Volume, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One augmented (image, target) patch pair: (C, h, w, d) and (n_outputs, h, w, d) float32."""
        patch = np.array(self.patch_size)
        start = np.clip(self._centre(volume, rng) - patch // 2, 0, np.array(volume.image.shape[1:]) - patch)
        window = (slice(None), *(slice(s, s + p) for s, p in zip(start, patch, strict=True)))
        image, target = volume.image[window], volume.target[window]
        if self.data_cfg.flips:
            axes = tuple(1 + a for a in range(3) if rng.random() < 0.5)
            if axes:
                image, target = np.flip(image, axes), np.flip(target, axes)
        image = image.astype(np.float32)  # a copy: the cached volume is never modified
        jitter = self.data_cfg.intensity_jitter
        if jitter > 0:
            scale = (1.0 + rng.uniform(-jitter, jitter, size=(image.shape[0], 1, 1, 1))).astype(np.float32)
            shift = rng.uniform(-jitter, jitter, size=(image.shape[0], 1, 1, 1)).astype(np.float32)
            image = np.clip(image * scale + shift, 0.0, 1.0)
        return image, target.astype(np.float32)

    def epoch(self, epoch: int, n_batches: int, batch_size: int) -> Iterator[dict[str, Any]]:
        """The batches of ``epoch``: identical for the same ``(seed, epoch)``, whatever came before.

        Batch ``b``'s patches depend only on ``(seed, epoch, b)`` and its cases; with ``per_case`` its
        cases do not depend on ``n_batches`` either.
        """
        if epoch < 0 or n_batches < 0 or batch_size < 1:
            raise ValueError(
                f"need epoch >= 0, n_batches >= 0, batch_size >= 1; got {epoch}, {n_batches}, {batch_size}"
            )
        for b, indices in enumerate(self._batch_volumes(epoch, n_batches, batch_size)):
            rng = np.random.default_rng([self.seed, epoch, _BATCH, b])
            volumes = [self._volumes[i] for i in indices]
            images, targets = zip(*(self._patch(v, rng) for v in volumes), strict=True)
            yield {
                "image": torch.from_numpy(np.stack(images)),  # (B, C, h, w, d)
                "label": torch.from_numpy(np.stack(targets)),  # (B, n_outputs, h, w, d)
                "case_id": [v.case_id for v in volumes],
            }


TRUSTED_STREAM = 7_919
"""Added to the run's seed for the trusted-batch sampler, so its patches are a stream of their own."""


class TrustedBatches:
    """Batches of trusted patches only, a stream of their own (SVL-DRL-T's reward, meta-reweight's weights).

    A pure function of (seed, epoch, step) like the training batches, so a resumed run draws the same.
    """

    def __init__(
        self, cases: Sequence[Case], labels: LabelSpec, data_cfg: DataConfig, seed: int, trusted_ids: frozenset[str]
    ) -> None:
        trusted = [c for c in cases if c.case_id in trusted_ids]
        if not trusted:
            raise ValueError("none of the training cases is trusted; this method needs trusted cases")
        data = dataclasses.replace(data_cfg, trusted_per_batch=0)
        self.sampler = PatchSampler(trusted, labels, data, seed=seed + TRUSTED_STREAM)
        self._epoch: int | None = None
        self._batches: Iterator[dict[str, Any]] = iter(())

    def next(self, epoch: int, batches_per_epoch: int, batch_size: int) -> dict[str, Any]:
        """The next trusted batch of ``epoch`` (a new epoch restarts the stream at its first batch; a stream
        asked for more than ``batches_per_epoch`` batches starts over)."""
        if epoch != self._epoch:
            self._epoch = epoch
            self._batches = self.sampler.epoch(epoch, batches_per_epoch, batch_size)
        batch = next(self._batches, None)
        if batch is None:
            self._batches = self.sampler.epoch(epoch, batches_per_epoch, batch_size)
            batch = next(self._batches)
        return batch
