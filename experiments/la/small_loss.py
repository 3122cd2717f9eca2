"""Does Co-Teaching's small-loss rule single out the wrong label voxels of real LA cases? (issue 16)

Co-Teaching drops, per class, the share ``forget rate`` of the voxels with the largest loss against
their (noisy) label, on the premise that wrong labels are learnt late and so keep a large loss. This
script asks whether that holds for a finished run's network: over the run's non-trusted training
cases (on the run's grid, ``run_labels.training_case_labels``), it ranks the voxels labelled one
class (foreground by default, ``--label-class bg`` for background) by their cross-entropy against the
noisy label, drops the largest ``forget`` share (pooled over the whole volumes of the cases: an
approximation of the run's per-batch, per-class selection on patches) and reports

- ``wrong_share``: the share of those voxels whose clean label is the other class, the rate a
  perfect rule would drop;
- ``precision``: the share of the dropped voxels that are wrong (``wrong_share`` for a random rule);
- ``recall``: the share of the wrong voxels that are dropped;
- ``auc``: the AUC of the loss of the wrong voxels against that of the right ones (0.5: the loss says
  nothing about which voxels are wrong).

The network is the run's last one, not the one that made each selection during training. The
loss is monotone in the network's probability of the class the label does not give, so the AUC is
also that of ``credit_auc.py``'s disagreement signal.

    python experiments/la/small_loss.py ../shared/data/la2018 \
        /work/runs/la2018/co-teaching-oracle-forget-rate__sfda-0.5__seed0
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import torch
from scipy.stats import mannwhitneyu

from svldrl.data import load_dataset
from svldrl.experiments.run_labels import training_case_labels
from svldrl.inference import predict_probabilities
from svldrl.training.checkpoint import load_trained


def final_forget_rate(run: Path) -> float:
    """The foreground forget rate of the run's last logged epoch (``log.csv``'s ``forget_rate_fg``; the log has
    no background rate, so ``--label-class bg`` needs ``--forget``)."""
    with (run / "log.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or "forget_rate_fg" not in rows[-1]:
        raise ValueError(f"{run / 'log.csv'}: no forget_rate_fg column (not a Co-Teaching run); pass --forget")
    return float(rows[-1]["forget_rate_fg"])


@torch.no_grad()
def foreground_probability(net: torch.nn.Module, image: np.ndarray, patch: tuple[int, ...]) -> np.ndarray:
    """(H, W, D) the network's foreground probability (two classes), Gaussian-blended sliding windows."""
    return predict_probabilities(net, image, patch, overlap=0.25, sw_batch_size=4)[1]


def selection_quality(loss: np.ndarray, wrong: np.ndarray, forget: float) -> dict[str, float]:
    """How well dropping the ``forget`` share of largest ``loss`` picks out the ``wrong`` voxels.

    Args:
        loss: (N,) each voxel's loss against its label.
        wrong: (N,) bool, whether the label is wrong.
        forget: share of the voxels dropped, in [0, 1].
    """
    if loss.shape != wrong.shape or loss.ndim != 1 or not 0.0 <= forget <= 1.0:
        raise ValueError("selection_quality: loss and wrong must be 1-D of one length, forget in [0, 1]")
    n_drop = int(forget * loss.size)  # int() rounds down, as the training selection does
    dropped = np.zeros(loss.size, dtype=bool)
    dropped[np.argsort(-loss, kind="stable")[:n_drop]] = True
    n_wrong = int(wrong.sum())
    auc = (float(mannwhitneyu(loss[wrong], loss[~wrong]).statistic / (n_wrong * (loss.size - n_wrong)))
           if 0 < n_wrong < loss.size else float("nan"))
    return {
        "voxels": float(loss.size),
        "wrong_share": n_wrong / max(loss.size, 1),
        "forget": forget,
        "precision": float(wrong[dropped].mean()) if n_drop else float("nan"),
        "recall": float(dropped[wrong].mean()) if n_wrong else float("nan"),
        "auc": auc,
    }


def run_report(run: Path, data: Path, forget: float | None = None, label_class: str = "fg") -> dict[str, float]:
    """``selection_quality`` of the run's network over the voxels of its non-trusted cases labelled ``label_class``."""
    if label_class not in ("fg", "bg") or (label_class == "bg" and forget is None):
        raise ValueError("label_class must be 'fg' or 'bg', and 'bg' needs forget (the log has no background rate)")
    net, cfg, _ = load_trained(run, device="cpu")
    rate = final_forget_rate(run) if forget is None else forget
    losses, wrongs = [], []
    for case in training_case_labels(run, load_dataset(data), cfg.data, groups=("corrupted", "untouched")):
        fg = foreground_probability(net, case.image, tuple(cfg.data.patch_size))
        labelled = case.noisy if label_class == "fg" else ~case.noisy
        p_label = fg[labelled] if label_class == "fg" else 1.0 - fg[labelled]
        losses.append(-np.log(np.clip(p_label, 1e-7, 1.0)))  # voxel cross-entropy against the noisy label
        wrongs.append(case.clean[labelled] != (label_class == "fg"))
    return selection_quality(np.concatenate(losses), np.concatenate(wrongs), rate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="the data folder the runs trained on")
    parser.add_argument("runs", type=Path, nargs="+", help="finished run folders")
    parser.add_argument("--forget", type=float, default=None,
                        help="share of the voxels labelled that class to drop (default: the run's final forget rate)")
    parser.add_argument("--label-class", choices=("fg", "bg"), default="fg",
                        help="rank the voxels labelled foreground (default) or background")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("run\tforget\twrong_share\tprecision\trecall\tauc")
    for run in args.runs:
        q = run_report(run, args.data, args.forget, args.label_class)
        print(f"{run.name}\t{q['forget']:.3f}\t{q['wrong_share']:.3f}\t{q['precision']:.3f}\t{q['recall']:.3f}"
              f"\t{q['auc']:.3f}", flush=True)


if __name__ == "__main__":
    main()
