"""Would a trusted baseline sharpen SVL-DRL-T's credit? A probe on phantoms with a planted dilation (issue 15).

The LA pilot's agents edited clean labels as readily as wrong ones, and the docs read that as the
first-order credit following the model's bias. A natural fix subtracts from each edit's credit what
the same edit earns on trusted voxels (labels known right) of the same kind. This probe measures,
before building it into the trainer, whether that separates wrong label voxels from right ones
better than the raw credit.

Setup (as ``tests/training/test_label_agents.py``'s planted-dilation test): a small U-Net trained
30 steps on phantoms whose labels are dilated by two voxels; trusted gradient batches from two
clean phantoms; the baseline from two more clean phantoms (not in the gradient batch); scored on a
held-out phantom labelled with its dilated mask. For every voxel: the credit (C2) of changing its
label, raw and less the trusted baseline, stratified by the predicted foreground probability (10
bins) or by the signed distance to the label's border (-5..5 voxels). Separation: the AUC of wrong
voxels (the added band) against right voxels within 4 voxels of the label's border (a wrong voxel
should earn more than a right one).

Run:  python experiments/phantoms/credit_calibration_probe.py   (about a minute on 2 cores)
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from scipy import ndimage
from scipy.stats import mannwhitneyu

from svldrl.config import CPU, merge
from svldrl.data import PHANTOM_LABELS, PatchSampler, make_phantoms
from svldrl.models import build_network
from svldrl.rl.credit import descent_logit_change, group_delta, relabel_credit, trusted_gradient
from svldrl.training import build_seg_loss

SMALL = {"data": {"patch_size": [32, 32, 32], "samples_per_volume": 1}, "model": {"channels": [8, 16, 32]}}


def segment(net: torch.nn.Module, image: torch.Tensor) -> torch.Tensor:
    return net(image, heads=("seg",)).seg


def signed_distance_bin(label: np.ndarray) -> np.ndarray:
    """0..10: signed distance to the label's border (+ inside), rounded and clipped to -5..5."""
    inside = ndimage.distance_transform_edt(label)
    outside = ndimage.distance_transform_edt(~label)
    return np.clip(np.rint(np.where(label, inside, -outside)), -5, 5).astype(int) + 5


def flip_credit(net, g, image: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Every voxel's credit (C2) for changing its label, the predicted foreground probability, the RMS scale."""
    logits, delta = descent_logit_change(net, segment, torch.from_numpy(image[None]).float(), g)
    groups = group_delta(delta, "classes")
    y = torch.from_numpy(label.astype(np.float32))[None, None]
    old = torch.stack([1 - y, y], dim=2)
    credit = relabel_credit(groups, old, 1 - old)[0, 0].numpy()
    prob = (1 - torch.softmax(logits, dim=1)[0, 0]).numpy()
    return credit, prob, float(groups.square().mean().sqrt())


def stratified_mean(values: list[np.ndarray], strata: list[np.ndarray], n: int) -> np.ndarray:
    sums = sum(np.bincount(s.ravel(), v.ravel(), n) for v, s in zip(values, strata, strict=True))
    counts = sum(np.bincount(s.ravel(), minlength=n) for s in strata)
    return np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)


def auc(wrong: np.ndarray, right: np.ndarray) -> float:
    return float(mannwhitneyu(wrong, right).statistic / (wrong.size * right.size))


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    cases = make_phantoms(10, 32, seed=3)
    dilated = [dataclasses.replace(c, label=ndimage.binary_dilation(c.label > 0, iterations=2).astype(np.uint8))
               for c in cases[:5]]  # fmt: skip
    cfg = merge(CPU, SMALL)
    net = build_network(cfg.model, 1, 2)
    loss_fn = build_seg_loss(PHANTOM_LABELS)
    optimizer = torch.optim.Adam(net.parameters(), 3e-3)
    for batch in PatchSampler(dilated, PHANTOM_LABELS, cfg.data, seed=0).epoch(0, 30, 2):
        optimizer.zero_grad()
        loss_fn(segment(net, batch["image"]), batch["label"]).backward()
        optimizer.step()
    held = cases[9]
    truth = held.label > 0
    noisy = ndimage.binary_dilation(truth, iterations=2)
    dist = signed_distance_bin(noisy)
    wrong = noisy != truth
    right = (noisy == truth) & (np.abs(dist - 5) <= 4)
    rows = {"raw": [], "less baseline by probability bin": [], "less baseline by border distance": []}
    for batch in PatchSampler(cases[5:7], PHANTOM_LABELS, cfg.data, seed=1).epoch(0, 4, 2):
        g = trusted_gradient(net, segment, batch["image"], batch["label"], loss_fn)
        raw, prob, scale = flip_credit(net, g, held.image, noisy)
        calib = [flip_credit(net, g, c.image, c.label > 0) for c in cases[7:9]]
        by_prob = [np.clip((p * 10).astype(int), 0, 9) + 10 * (c.label > 0) for (_, p, _), c in zip(calib, cases[7:9],
                                                                                               strict=True)]
        base_prob = stratified_mean([v / scale for v, _, _ in calib], by_prob, 20)
        base_dist = stratified_mean([v / scale for v, _, _ in calib], [signed_distance_bin(c.label > 0)
                                                                       for c in cases[7:9]], 11)
        raw = raw / scale
        versions = {"raw": raw,
                    "less baseline by probability bin": raw - base_prob[np.clip((prob * 10).astype(int), 0, 9)
                                                                       + 10 * noisy],
                    "less baseline by border distance": raw - base_dist[dist]}  # fmt: skip
        for name, credit in versions.items():
            rows[name].append((credit[wrong].mean(), (credit[wrong] > 0).mean(), credit[right].mean(),
                               (credit[right] > 0).mean(), auc(credit[wrong], credit[right])))
    print("credit of changing the label, 4 trusted batches (mean over batches):")
    print(f"{'':34s} {'wrong: mean':>11s} {'> 0':>5s} {'right: mean':>11s} {'> 0':>5s} {'AUC':>5s}")
    for name, values in rows.items():
        m = np.mean(values, axis=0)
        print(f"{name:34s} {m[0]:+11.2f} {m[1]:5.2f} {m[2]:+11.2f} {m[3]:5.2f} {m[4]:5.2f}")


if __name__ == "__main__":
    main()
