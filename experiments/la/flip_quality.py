"""How right are MTCL's label flips? Measured after the fact against the clean labels (issue 16, point 3).

MTCL (and RSF-assisted MTCL) flips, at every step, the voxels of the noisy cases' patches that
confident learning flags under the teacher's probabilities (``mtcl.corrected_targets``); the flipped
labels are used once and not kept, so ``corrected_labels.py`` has nothing to read. This applies the
same rule (``find_noisy_voxels``, ``flip_flagged``) with the run's final teacher to each whole
noisy-stream training case and compares with the clean label. Two departures from a training step,
both stated in the output's header: one case's voxels are pooled where training pools a batch's
patches (confident learning's per-class thresholds come from the pool), and RSF's veto is not applied
(for RSF-assisted MTCL its log's ``rsf_accepted`` says how much of this it let through).

Per run and case group (corrupted by the noise / untouched): the mean Dice to the clean label of the
noisy and of the flipped labels, the share of voxels flipped, of the flips the share that set a voxel
to its clean class (precision) and that set background, and of the noisy label's wrong voxels the
share flipped right (recall).

    python experiments/la/flip_quality.py ../shared/data/la2018 \
        runs/long/la2018/rsf-assisted-mtcl-trusted-clean-stream__sfda-0.5__seed2
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from svldrl.baselines.mtcl import find_noisy_voxels, flip_flagged
from svldrl.data import load_dataset
from svldrl.experiments.run_labels import training_case_labels
from svldrl.inference import predict_probabilities
from svldrl.metrics import dice
from svldrl.training.checkpoint import checkpoint_path, load_checkpoint, load_trained


def flip_counts(noisy: np.ndarray, clean: np.ndarray, probs: np.ndarray, filter_by: str = "both") -> dict[str, float]:
    """MTCL's flips of one binary label under ``probs`` (2, ...) and how they relate to the clean label.

    Returns the Dice of the noisy and flipped labels to the clean one and the voxel counts a group sums:
    ``flipped``, ``flipped_right`` (set to the clean class), ``flipped_to_background``, ``wrong`` (noisy
    voxels whose label differs from the clean one), ``wrong_fixed`` and ``voxels``.
    """
    labels = noisy.reshape(-1).astype(np.int64)
    pooled = np.moveaxis(probs, 0, -1).reshape(-1, probs.shape[0]).astype(np.float64)  # (N, 2)
    flipped_labels = flip_flagged(labels, pooled, find_noisy_voxels(labels, pooled, filter_by))
    truth = clean.reshape(-1).astype(np.int64)
    changed = flipped_labels != labels
    wrong = labels != truth
    return {
        "dice_noisy": dice(noisy, clean),
        "dice_flipped": dice(flipped_labels.reshape(noisy.shape) > 0, clean),
        "flipped": int(changed.sum()),
        "flipped_right": int((changed & (flipped_labels == truth)).sum()),
        "flipped_to_background": int((changed & (flipped_labels == 0)).sum()),
        "wrong": int(wrong.sum()),
        "wrong_fixed": int((wrong & changed & (flipped_labels == truth)).sum()),
        "voxels": int(labels.size),
    }


def group_summary(rows: list[dict[str, float]]) -> dict[str, float]:
    """One case group's means (Dice) and pooled shares (voxel counts summed over its cases)."""
    total = {k: sum(r[k] for r in rows) for k in ("flipped", "flipped_right", "flipped_to_background", "wrong",
                                                   "wrong_fixed", "voxels")}  # fmt: skip
    flipped = max(total["flipped"], 1)
    return {
        "n": len(rows),
        "dice_noisy": 100 * float(np.mean([r["dice_noisy"] for r in rows])),
        "dice_flipped": 100 * float(np.mean([r["dice_flipped"] for r in rows])),
        "flipped_share": 100 * total["flipped"] / total["voxels"],
        "precision": 100 * total["flipped_right"] / flipped,
        "to_background": 100 * total["flipped_to_background"] / flipped,
        "recall": 100 * total["wrong_fixed"] / max(total["wrong"], 1),
    }


def run_report(run: Path, data: Path) -> dict[str, dict[str, float]]:
    """Per group of the run's noisy-stream training cases, ``group_summary`` of the final teacher's flips."""
    net, cfg, labels = load_trained(run, device="cpu")
    payload = load_checkpoint(checkpoint_path(run), map_location="cpu")
    if "teacher" not in payload:
        raise SystemExit(f"{run}: no teacher in its checkpoint (not an MTCL run)")
    if labels.mode != "classes" or labels.n_outputs != 2:
        raise SystemExit(f"{run}: flip_quality.py reads one foreground class (LA); this run has {labels}")
    net.load_state_dict(payload["teacher"])
    filter_by = str(cfg.method_options.get("filter_by", "both"))
    rows: dict[str, list[dict[str, float]]] = {}
    for case in training_case_labels(run, load_dataset(data), cfg.data, groups=("corrupted", "untouched")):
        probs = predict_probabilities(net, case.image, cfg.data.patch_size, overlap=cfg.sw_overlap, mode="classes")
        rows.setdefault(case.group, []).append(flip_counts(case.noisy, case.clean, probs, filter_by))
    return {group: group_summary(r) for group, r in sorted(rows.items())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the LA folder the runs were trained on")
    parser.add_argument("runs", type=Path, nargs="+", help="run folders of MTCL or RSF-assisted MTCL")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("final teacher, whole cases (one case pooled), no RSF veto; shares in % of voxels / flips / wrong voxels")
    print("run\tgroup\tn\tDice noisy\tDice flipped\tflipped\tprecision\tto background\trecall")
    for run in args.runs:
        for group, s in run_report(run, args.data).items():
            print(f"{run.name}\t{group}\t{s['n']}\t{s['dice_noisy']:.1f}\t{s['dice_flipped']:.1f}\t"
                  f"{s['flipped_share']:.2f}\t{s['precision']:.1f}\t{s['to_background']:.1f}\t{s['recall']:.1f}",
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
