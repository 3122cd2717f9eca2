"""Does the trusted credit single out the wrong label voxels of real LA cases? (issue 15)

SVL-DRL-T rewards each label edit by its trusted credit (C2, ``rl/credit.py``). On phantoms with a
planted dilation the credit of changing a label separates wrong voxels from right ones (AUC 0.83,
``experiments/phantoms/credit_calibration_probe.py``); on LA the trained agents edited clean labels
as readily as wrong ones. This script asks the credit itself, without any policy: with a trained
run's network and its trusted cases, for every corrupted training case, it computes every voxel's
credit for changing its noisy label (sliding windows of the run's patch size, the logit change
along one descent step on a trusted batch, by ``torch.func.jvp``) and reports the AUC of the wrong
voxels (noisy label != clean label) against the right ones near the borders (within ``BAND`` voxels
of the noisy or the clean border), averaged over ``--batches`` trusted batches. 0.5: the credit
carries no information about which voxels are wrong. Beside it, the same AUC for the simplest
other signal a trusted-supervised network gives: its own disagreement with the noisy label (the
predicted probability of the other class), which is what MTCL's and ADELE's corrections use.

    python experiments/la/credit_auc.py ../shared/data/la2018 /work/runs-short/la2018/svl-drl-t__sfda-0.5__seed0
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import torch
from monai.inferers import sliding_window_inference
from scipy import ndimage
from scipy.stats import mannwhitneyu

from svldrl.data import PatchSampler, load_dataset, prepare_cases
from svldrl.experiments.run_labels import run_trusted_ids, training_case_labels
from svldrl.inference import predict_probabilities
from svldrl.rl.credit import descent_logit_change, group_delta, relabel_credit, trusted_gradient
from svldrl.training import build_seg_loss
from svldrl.training.checkpoint import load_trained

BAND = 4
"""Right voxels count when within this many voxels of the noisy or the clean label's border."""


def segment(net: torch.nn.Module, image: torch.Tensor) -> torch.Tensor:
    """Segmentation logits of any svldrl network (the seg head of a multi-head one)."""
    try:
        return net(image, heads=("seg",)).seg
    except TypeError:
        return net(image)


def flip_credit(net, g, image: np.ndarray, label: np.ndarray, patch: tuple) -> np.ndarray:
    """(H, W, D) every voxel's credit (C2) for changing its label, windows stitched, scaled to unit RMS."""

    def window(x: torch.Tensor) -> torch.Tensor:
        return descent_logit_change(net, segment, x, g)[1]

    with torch.no_grad():
        delta = sliding_window_inference(torch.from_numpy(image[None]).float(), patch, 4, window, overlap=0.0)
    groups = group_delta(delta, "classes")
    y = torch.from_numpy(label.astype(np.float32))[None, None]
    old = torch.stack([1 - y, y], dim=2)
    credit = relabel_credit(groups, old, 1 - old)[0, 0].numpy()
    return credit / max(float(np.sqrt(np.mean(credit**2))), 1e-12)


@torch.no_grad()
def disagreement(net, image: np.ndarray, label: np.ndarray, patch: tuple) -> np.ndarray:
    """(H, W, D) the network's probability of the class the noisy label does not give (two classes)."""
    fg = predict_probabilities(net, image, patch, overlap=0.25, sw_batch_size=4)[1]
    return np.where(label, 1.0 - fg, fg)


def auc(wrong: np.ndarray, right: np.ndarray) -> float:
    return float(mannwhitneyu(wrong, right).statistic / (wrong.size * right.size))


def run_report(run: Path, data: Path, batches: int) -> list[dict[str, float]]:
    net, cfg, labels = load_trained(run, device="cpu")
    dataset = load_dataset(data)
    trusted = prepare_cases([dataset.get(i) for i in run_trusted_ids(run)], cfg.data)
    loss_fn = build_seg_loss(labels)
    gradients = [trusted_gradient(net, segment, b["image"], b["label"], loss_fn)
                 for b in PatchSampler(trusted, labels, dataclasses.replace(cfg.data, trusted_per_batch=0),
                                       seed=cfg.seed).epoch(0, batches, 2)]
    patch = tuple(cfg.data.patch_size)
    rows = []
    for case in training_case_labels(run, dataset, cfg.data, groups=("corrupted",)):
        case_id, image, clean, label = case.case_id, case.image, case.clean, case.noisy
        near = np.zeros_like(clean)
        for mask in (clean, label):
            near |= ndimage.binary_dilation(mask, iterations=BAND) & ~ndimage.binary_erosion(mask, iterations=BAND)
        wrong, right = label != clean, (label == clean) & near
        aucs, pos_wrong, pos_right = [], [], []
        for g in gradients:
            credit = flip_credit(net, g, image, label, patch)
            aucs.append(auc(credit[wrong], credit[right]))
            pos_wrong.append(float((credit[wrong] > 0).mean()))
            pos_right.append(float((credit[right] > 0).mean()))
        other = disagreement(net, image, label, patch)
        rows.append({"case_id": case_id, "wrong_voxels": int(wrong.sum()), "auc": float(np.mean(aucs)),
                     "positive_wrong": float(np.mean(pos_wrong)), "positive_right": float(np.mean(pos_right)),
                     "auc_disagreement": auc(other[wrong], other[right])})
        print(f"{run.name} {case_id}: AUC {rows[-1]['auc']:.3f} (disagreement "
              f"{rows[-1]['auc_disagreement']:.3f}), credit > 0 on {rows[-1]['positive_wrong']:.2f} "
              f"of {int(wrong.sum())} wrong voxels and {rows[-1]['positive_right']:.2f} of the right ones near "
              f"the borders", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the LA folder the runs were trained on")
    parser.add_argument("runs", type=Path, nargs="+", help="run folders with trusted cases and a noise manifest")
    parser.add_argument("--batches", type=int, default=4, help="trusted batches (of 2 patches) to average over")
    parser.add_argument("--json", type=Path, help="also write the per-case rows here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    reports = {}
    for run in args.runs:
        rows = reports[run.name] = run_report(run, args.data, args.batches)
        values = np.array([r["auc"] for r in rows])
        other = np.array([r["auc_disagreement"] for r in rows])
        positive_wrong = np.mean([r["positive_wrong"] for r in rows])
        positive_right = np.mean([r["positive_right"] for r in rows])
        print(f"{run.name}: AUC over {len(rows)} corrupted cases {values.mean():.3f} (min {values.min():.3f}, "
              f"max {values.max():.3f}); the network's disagreement with the label {other.mean():.3f} (min "
              f"{other.min():.3f}, max {other.max():.3f}); credit > 0 on {positive_wrong:.2f} of wrong, "
              f"{positive_right:.2f} of right voxels")
    if args.json:
        args.json.write_text(json.dumps(reports, indent=2) + "\n")


if __name__ == "__main__":
    main()
