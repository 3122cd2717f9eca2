"""What would one ADELE correction do at each epoch? Per snapshot of a run (``snapshots.py``): the
whole-volume IoU of its prediction to the noisy labels (pooled over the training cases, as the ADELE
reference's training IoU), the Dice and volume of its prediction against the clean labels, and the
same for the labels after one ADELE correction (``correct_labels``, tau 0.7 both ways), per group of
training cases (corrupted by the noise / untouched). Volumes are medians of the ratio to the clean label.

    python experiments/la/correction_timing.py ../shared/data/la2018 runs/probe/base \\
        runs/probe/base/snapshots/e{32,40,48,56,64,80,96,128}.pt
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from svldrl.baselines.adele import correct_labels
from svldrl.data import load_dataset
from svldrl.experiments.run_labels import training_case_labels
from svldrl.inference import predict_probabilities
from svldrl.metrics import dice
from svldrl.training.checkpoint import load_trained


def snapshot_report(net: torch.nn.Module, cases: list, cfg: object, tau: float) -> str:
    """One line: pooled whole-volume IoU to the noisy labels, then per group the prediction's and the
    corrected labels' mean Dice and median volume ratio against the clean labels."""
    inter = union = 0
    rows: dict[str, list[tuple[float, float, float, float]]] = {}
    for case in cases:
        prob = predict_probabilities(net, case.image, cfg.data.patch_size, overlap=cfg.sw_overlap, mode="classes")
        pred = prob.argmax(0) > 0
        inter += (pred & case.noisy).sum()
        union += (pred | case.noisy).sum()
        noisy = case.noisy[None].astype(np.int64)
        fixed = correct_labels(noisy, prob[None], np.array([[False, True]]), tau, tau)[0] > 0
        rows.setdefault(case.group, []).append((dice(pred, case.clean), pred.sum() / case.clean.sum(),
                                                dice(fixed, case.clean), fixed.sum() / case.clean.sum()))
    groups = " ".join(
        f"{g}: pred {100 * np.mean([r[0] for r in v]):.1f} vol {np.median([r[1] for r in v]):.2f} "
        f"corrected {100 * np.mean([r[2] for r in v]):.1f} vol {np.median([r[3] for r in v]):.2f};"
        for g, v in rows.items()
    )
    return f"whole-volume IoU to noisy {inter / union:.3f}; {groups}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the data folder the run was trained on")
    parser.add_argument("run", type=Path, help="the run folder (its noisy labels, split and configuration)")
    parser.add_argument("snapshots", type=Path, nargs="+", help="checkpoints of the run at several epochs")
    parser.add_argument("--tau", type=float, default=0.7, help="ADELE's confidence, both ways (reference: 0.7)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    _, cfg, _ = load_trained(args.run, device="cpu")
    cases = list(training_case_labels(args.run, load_dataset(args.data), cfg.data))
    for snapshot in args.snapshots:
        net, _, _ = load_trained(snapshot, device="cpu")
        print(snapshot.name, snapshot_report(net, cases, cfg, args.tau), flush=True)


if __name__ == "__main__":
    main()
