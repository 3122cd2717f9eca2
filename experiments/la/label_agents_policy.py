"""What the label agents of an SVL-DRL-T run learned, measured against the clean labels after the fact.

The trained policy is run on every training case's noisy label, state (image, noisy label), by
sliding window (the policy probabilities averaged where windows overlap), and a voxel's label is
changed where the likelier edit's probability passes the run's ``correction_threshold``: the
correction the Dice loss would have used at the end. Per group of training cases (corrupted by the
noise, untouched, trusted):

- Dice of the noisy and of the corrected label against the clean label (does it get closer?);
- the share of voxels changed, inside the boundary band (within 2 voxels of the clean border) and
  outside it (does it act where label noise lives?);
- the share of the changes that set foreground (which way does it correct?);
- the mean action probabilities (did the policy leave its start, keep 0.9 / 0.05 / 0.05?).

Under MT noise the corrupted cases are reported by operation ("corrupted, dilation" and "corrupted,
erosion"): a correction must set background on the first and foreground on the second, and pooling
them would hide a policy that acts one way on both.

``--thresholds 0.4 0.3 ...`` adds the Dice of the label corrected at other thresholds than the run's
(how much better could a label be made from the same policy, after training, by a looser rule?).

    python experiments/la/label_agents_policy.py ../shared/data/la2018 runs/la2018/svl-drl-t__sfda-0.5__seed0 [...]
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np
import torch
from monai.inferers import sliding_window_inference
from scipy import ndimage

from svldrl.data import load_dataset
from svldrl.experiments.run_labels import training_case_labels
from svldrl.metrics import dice
from svldrl.rl.mask_actions import KEEP, SET_BACKGROUND, SET_FOREGROUND
from svldrl.training.checkpoint import load_trained

BAND = 2
"""Voxels within this distance of the clean label's border form the boundary band."""


@torch.no_grad()
def policy_probabilities(net: torch.nn.Module, image: np.ndarray, mask: np.ndarray, patch: tuple, overlap: float):
    """(3, H, W, D) action probabilities of the state (image, mask), windows averaged (Gaussian weights)."""
    state = torch.from_numpy(np.concatenate([image, mask[None].astype(np.float32)]))[None]  # (1, C + 1, H, W, D)
    out = sliding_window_inference(
        state, patch, 1, lambda x: torch.softmax(net(x, heads=("policy",)).policy, dim=1), overlap=overlap,
        mode="gaussian",
    )  # fmt: skip
    return out[0].numpy()


def corrected(mask: np.ndarray, probs: np.ndarray, threshold: float) -> np.ndarray:
    """The label after the edits whose probability passes ``threshold`` (two classes: LA)."""
    best = np.where(probs[SET_FOREGROUND] >= probs[SET_BACKGROUND], SET_FOREGROUND, SET_BACKGROUND)
    confident = np.maximum(probs[SET_FOREGROUND], probs[SET_BACKGROUND]) > threshold
    out = mask.copy()
    out[confident & (best == SET_FOREGROUND)] = True
    out[confident & (best == SET_BACKGROUND)] = False
    return out


def report_group(group: str, operation: str | None) -> str:
    """The report row of a case: its group, with the MT operation split out for corrupted cases."""
    if group == "corrupted" and operation in ("dilation", "erosion"):
        return f"corrupted, {operation}"
    return group


def case_row(
    label: np.ndarray, clean: np.ndarray, probs: np.ndarray, threshold: float, extra_thresholds: tuple[float, ...] = ()
) -> dict[str, float]:
    """One case's measures: Dice to clean before and after the correction, where and which way it changed."""
    fixed = corrected(label, probs, threshold)
    band = ndimage.binary_dilation(clean, iterations=BAND) & ~ndimage.binary_erosion(clean, iterations=BAND)
    changed = fixed != label
    nan = float("nan")
    return {
        "dice_noisy": dice(label, clean), "dice_corrected": dice(fixed, clean),
        "changed_band": float(changed[band].mean()), "changed_outside": float(changed[~band].mean()),
        "changed_toward_clean": float((fixed == clean)[changed].mean()) if changed.any() else nan,
        "changed_to_foreground": float(fixed[changed].mean()) if changed.any() else nan,
        "p_keep": float(probs[KEEP].mean()), "p_set_foreground": float(probs[SET_FOREGROUND].mean()),
        "p_set_background": float(probs[SET_BACKGROUND].mean()),
        **{f"dice_corrected@{t:g}": dice(corrected(label, probs, t), clean) for t in extra_thresholds},
    }  # fmt: skip


def summarise(rows: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Per report row, the case count and the mean of each measure over its cases (NaN where none changed)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a group where no case changed: its means are NaN
        return {g: {"n": len(r), **{k: float(np.nanmean([x[k] for x in r])) for k in r[0]}} for g, r in rows.items()}


GROUP_ORDER = ("corrupted", "untouched", "trusted")


def run_report(run: Path, data: Path, extra_thresholds: tuple[float, ...] = ()) -> dict[str, dict[str, float]]:
    """The report of one run: its policy applied to every training case's label, per report row."""
    net, cfg, _ = load_trained(run, device="cpu")
    threshold = float(cfg.method_options.get("correction_threshold", 0.5))
    rows: dict[str, list[dict[str, float]]] = {}
    for case in training_case_labels(run, load_dataset(data), cfg.data):
        probs = policy_probabilities(net, case.image, case.noisy, tuple(cfg.data.patch_size), cfg.sw_overlap)
        row = case_row(case.noisy, case.clean, probs, threshold, extra_thresholds)
        rows.setdefault(report_group(case.group, case.operation), []).append(row)
    order = sorted(rows, key=lambda g: (GROUP_ORDER.index(g.split(",")[0]), g))
    return summarise({g: rows[g] for g in order})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the LA folder the runs were trained on")
    parser.add_argument("runs", type=Path, nargs="+", help="run folders of svl-drl-trusted")
    parser.add_argument("--json", type=Path, help="also write the reports here")
    parser.add_argument("--thresholds", type=float, nargs="*", default=(), help="also correct at these thresholds")
    args = parser.parse_args()
    reports = {}
    for run in args.runs:
        reports[run.name] = report = run_report(run, args.data, tuple(args.thresholds))
        for group, q in report.items():
            print(
                f"{run.name} {group} (n={q['n']}): Dice to clean {100 * q['dice_noisy']:.1f} -> "
                f"{100 * q['dice_corrected']:.1f}; changed {100 * q['changed_band']:.2f} % of the boundary band, "
                f"{100 * q['changed_outside']:.3f} % elsewhere; {100 * q['changed_toward_clean']:.0f} % of the "
                f"changes agree with the clean label, {100 * q['changed_to_foreground']:.0f} % set foreground; "
                f"mean policy keep/fg/bg "
                f"{q['p_keep']:.2f}/{q['p_set_foreground']:.2f}/{q['p_set_background']:.2f}"
                + "".join(f"; at {t:g}: {100 * q[f'dice_corrected@{t:g}']:.1f}" for t in args.thresholds)
            )
    if args.json:
        args.json.write_text(json.dumps(reports, indent=2) + "\n")


if __name__ == "__main__":
    main()
