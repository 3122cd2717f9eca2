"""How far should a teacher correct? Label quality of the per-case direction rule against its confidence.

``teacher-correction --set method_options.direction=case`` (docs/results.md "Session 11") edits each
non-trusted case in one direction where a frozen teacher is more confident than ``confidence``
(0.8 by default). Under SFDA 50 % its corrections took the corrupted cases' labels from Dice 54.7 to
about 81 against the clean ones, while removing foreground alone could reach 91-94
(``noise_errors.py``): what the rule lacks is extent. This script asks, before any training run,
whether a lower confidence gives the student better labels: for a finished ``trusted-only`` run (the
teacher ``teacher_run`` names), each confidence gets the rule exactly as training applies it
(edit counts per case, ``imbalance=auto`` from the trusted cases, one direction per case or none;
``baselines/teacher_edits.py``), on whole-volume sliding-window probabilities (training applies it
patch by patch), and the labels are scored against the clean ones per group (corrupted by the noise,
untouched). Three reference lines: the teacher's own prediction in place of every non-trusted label
(pseudo-labels); the noisy label eroded to the teacher's volume, deepest voxels first (does the
teacher add more than the extent?); and the ideal one-direction edit (what a perfect rule could reach).

Nothing here trains; the clean labels and the manifest are read only to score.

    python experiments/la/correction_extent.py ../shared/data/la2018 \\
        /work/runs/la2018/trusted-only-6-teacher__sfda-0.5__seed0 --confidence 0.5 0.6 0.7 0.8 0.9
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import distance_transform_edt

from svldrl.baselines.teacher_edits import (
    BACKGROUND,
    FOREGROUND,
    case_directions,
    confident_correction,
    edit_counts,
    imbalance_threshold,
    one_direction,
)
from svldrl.data import load_dataset
from svldrl.experiments.run_labels import training_case_labels
from svldrl.inference import predict_probabilities
from svldrl.metrics import dice
from svldrl.training.checkpoint import load_trained


@dataclass(frozen=True)
class TeacherView:
    """One training case as the rule sees it: its label, its clean label (to score), the teacher's log-probabilities."""

    case_id: str
    group: str
    clean: np.ndarray
    noisy: torch.Tensor
    """(1, 2, H, W, D) one-hot noisy label."""
    logits: torch.Tensor
    """(1, 2, H, W, D) the teacher's log-probabilities, used as logits."""


FLIPS = ((), (1,), (2,), (3,))
"""Test-time flips of ``--tta``: none, then each spatial axis of a (C, H, W, D) image alone."""


def teacher_probabilities(net: torch.nn.Module, image: np.ndarray, cfg: object, tta: bool) -> np.ndarray:
    """(2, H, W, D) the teacher's whole-volume probabilities; with ``tta`` the mean over ``FLIPS``."""
    flips = FLIPS if tta else ((),)
    total = np.zeros((2, *image.shape[1:]), dtype=np.float32)
    for axes in flips:
        flipped = np.flip(image, axis=axes).copy() if axes else image
        prob = predict_probabilities(net, flipped, cfg.data.patch_size, overlap=cfg.sw_overlap, mode="classes")
        total += np.flip(prob, axis=axes) if axes else prob
    return total / len(flips)


def teacher_views(data: Path, teacher_run: Path, tta: bool = False) -> list[TeacherView]:
    """Every training case of ``teacher_run`` with the final network's whole-volume probabilities."""
    net, cfg, _ = load_trained(teacher_run, device="cpu")
    net.eval()
    views = []
    for case in training_case_labels(teacher_run, load_dataset(data), cfg.data):
        prob = teacher_probabilities(net, case.image, cfg, tta)
        logits = torch.from_numpy(np.log(np.clip(prob, 1e-6, 1.0)))[None]
        noisy = torch.from_numpy(np.stack([~case.noisy, case.noisy]).astype(np.float32))[None]
        views.append(TeacherView(case.case_id, case.group, case.clean, noisy, logits))
    return views


def labels_at(views: list[TeacherView], confidence: float) -> tuple[dict[str, np.ndarray], dict[str, str], float]:
    """``direction=case, imbalance=auto`` at ``confidence``: each case's label and direction, and the threshold."""
    fixed = {v.case_id: confident_correction(v.noisy, v.logits, "classes", confidence) for v in views}
    counts = {v.case_id: edit_counts(v.noisy, fixed[v.case_id], "classes") for v in views}
    trusted = [v.case_id for v in views if v.group == "trusted"]
    threshold = imbalance_threshold(counts, trusted, "auto")
    directions = case_directions(counts, trusted, threshold)
    labels = {}
    for v in views:
        chosen = directions.get(v.case_id, "none")
        labels[v.case_id] = one_direction(v.noisy, fixed[v.case_id], "classes", chosen)[0, 1].numpy() > 0.5
    return labels, directions, threshold


def ideal_one_direction(view: TeacherView) -> np.ndarray:
    """The best label an edit in one direction can give: the noisy label cut to the clean one, or grown to it."""
    noisy = view.noisy[0, 1].numpy() > 0.5
    cut, grown = noisy & view.clean, noisy | view.clean
    return cut if dice(cut, view.clean) >= dice(grown, view.clean) else grown


def depth_cut(view: TeacherView) -> np.ndarray:
    """The noisy label eroded, deepest voxels first, to the teacher's foreground volume inside it.

    A reference for the shape of the noise: if a corrupted label were the clean one grown by a band,
    this cut (which takes only the volume from the teacher) would find it; SFDA's errors are
    blobs where a source model leaked, so it does not (docs/results.md, "Session 23").
    """
    noisy = view.noisy[0, 1].numpy() > 0.5
    volume = int((noisy & (view.logits[0, 1].numpy() > view.logits[0, 0].numpy())).sum())
    if volume == 0:
        return np.zeros_like(noisy)
    depth = distance_transform_edt(noisy)
    return noisy & (depth >= np.sort(depth[noisy])[::-1][min(volume, int(noisy.sum())) - 1])


def group_means(views: list[TeacherView], labels: dict[str, np.ndarray]) -> dict[str, float]:
    """Mean Dice to clean per group, and over every non-trusted case."""
    scores: dict[str, list[float]] = {}
    for v in views:
        if v.group == "trusted":
            continue
        value = dice(labels[v.case_id], v.clean)
        scores.setdefault(v.group, []).append(value)
        scores.setdefault("non-trusted", []).append(value)
    return {g: float(np.mean(s)) for g, s in scores.items()}


def extent_report(views: list[TeacherView], confidences: list[float]) -> dict[str, dict[str, float]]:
    """Per setting (noisy labels, each confidence, pseudo-labels, the ideal edit): mean Dice to clean by group."""
    report = {"noisy labels": group_means(views, {v.case_id: v.noisy[0, 1].numpy() > 0.5 for v in views})}
    for confidence in confidences:
        labels, directions, threshold = labels_at(views, confidence)
        row = group_means(views, labels)
        row["threshold"] = threshold
        for group in ("corrupted", "untouched"):
            chosen = [directions[v.case_id] for v in views if v.group == group]
            row[f"{group}_to_background"] = float(chosen.count(BACKGROUND))
            row[f"{group}_to_foreground"] = float(chosen.count(FOREGROUND))
        report[f"confidence {confidence:g}"] = row
    report["teacher prediction (pseudo-labels)"] = group_means(
        views, {v.case_id: v.logits[0, 1].numpy() > v.logits[0, 0].numpy() for v in views})
    report["noisy label cut to the teacher's volume"] = group_means(views, {v.case_id: depth_cut(v) for v in views})
    report["ideal one-direction edit"] = group_means(views, {v.case_id: ideal_one_direction(v) for v in views})
    return report


def format_report(name: str, report: dict[str, dict[str, float]]) -> str:
    lines = [f"{name}: mean Dice of the training labels to the clean ones [%]",
             f"  {'labels':38s} {'corrupted':>9s} {'untouched':>9s} {'all':>6s}  "
             "directions (corrupted bg/fg, untouched bg/fg)"]
    for setting, row in report.items():
        directions = (f"  {row['corrupted_to_background']:.0f}/{row['corrupted_to_foreground']:.0f}, "
                      f"{row['untouched_to_background']:.0f}/{row['untouched_to_foreground']:.0f} "
                      f"(threshold {row['threshold']:.2f})" if "threshold" in row else "")
        corrupted, untouched = 100 * row.get("corrupted", np.nan), 100 * row.get("untouched", np.nan)
        lines.append(f"  {setting:38s} {corrupted:9.1f} {untouched:9.1f} {100 * row['non-trusted']:6.1f}{directions}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the LA folder the runs were trained on")
    parser.add_argument("teachers", type=Path, nargs="+", help="finished trusted-only run folders (the teachers)")
    parser.add_argument("--confidence", type=float, nargs="+", default=[0.5, 0.6, 0.7, 0.8, 0.9])
    parser.add_argument("--tta", action="store_true", help="average the teacher over flips of each axis (4x the cost)")
    parser.add_argument("--json", type=Path, help="also write the reports here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    reports = {}
    for run in args.teachers:
        reports[run.name] = extent_report(teacher_views(args.data, run, args.tta), args.confidence)
        print(format_report(run.name, reports[run.name]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(reports, indent=2) + "\n")


if __name__ == "__main__":
    main()
