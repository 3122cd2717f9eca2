"""Which way simulated noisy labels are wrong: false positives against false negatives.

A label-editing agent can set a voxel to background (undo a false positive) or to foreground
(undo a false negative). How much each action can recover depends on the noise: this script reads
frozen noisy labels (a ``_noise/<key>`` folder of a runs root: ``labels.npz`` and
``noise_manifest.json``) and, over the corrupted cases, prints the Dice of the noisy label to the
clean one, the share of wrong voxels that are false positives, and the Dice an ideal edit of one
kind alone would reach (every false positive set to background, or every false negative set to
foreground). Everything is on the original grid, as the manifests and ``volumes.py`` are.

    python experiments/la/noise_errors.py ../shared/data/la2018 runs/la2018/_noise/sfda-0.5-seed0-* [...]
    python experiments/la/noise_errors.py ../shared/data/la2018 runs/la2018/_noise/mt-0.5-seed0-* --rates

``--rates`` prints instead the voxel transition rates over every case of the folder (corrupted or
not): P(noisy background | clean foreground) and P(noisy foreground | clean background), the
off-diagonals of the transition matrix Loss Correction and JCAS estimate; and the share of each
class's labelled voxels that are wrong, P(clean background | noisy foreground) and P(clean
foreground | noisy background), which Co-Teaching's per-class forget rates estimate. These are
whole-volume rates; training patches oversample the foreground and its border, so rates within
patches differ.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from svldrl.data import load_dataset


@dataclass(frozen=True)
class CaseErrors:
    """Voxel counts of one noisy label against its clean one."""

    true_positive: int
    false_positive: int
    false_negative: int

    @classmethod
    def of(cls, noisy: np.ndarray, clean: np.ndarray) -> CaseErrors:
        noisy, clean = noisy > 0, clean > 0
        return cls(int((noisy & clean).sum()), int((noisy & ~clean).sum()), int((~noisy & clean).sum()))

    def dice(self) -> float:
        """Dice of the noisy label to the clean one."""
        return 2 * self.true_positive / max(2 * self.true_positive + self.false_positive + self.false_negative, 1)

    def false_positive_share(self) -> float:
        """Share of the wrong voxels that are labelled foreground but are background."""
        return self.false_positive / max(self.false_positive + self.false_negative, 1)

    def dice_after_removing_false_positives(self) -> float:
        """The best a policy that only sets voxels to background can do: the false negatives stay."""
        return 2 * self.true_positive / max(2 * self.true_positive + self.false_negative, 1)

    def dice_after_adding_false_negatives(self) -> float:
        """The best a policy that only sets voxels to foreground can do: the false positives stay."""
        clean = self.true_positive + self.false_negative
        return 2 * clean / max(2 * clean + self.false_positive, 1)


def corrupted_case_errors(noise_dir: Path, data: Path) -> list[CaseErrors]:
    """One ``CaseErrors`` per corrupted case of a frozen noise folder."""
    manifest = json.loads((noise_dir / "noise_manifest.json").read_text())
    noisy = np.load(noise_dir / "labels.npz")
    dataset = load_dataset(data)
    return [
        CaseErrors.of(noisy[c["case_id"]], dataset.get(c["case_id"]).label) for c in manifest["cases"] if c["corrupted"]
    ]


def pooled_counts(noise_dir: Path, data: Path) -> dict[str, int]:
    """Voxel counts of the clean / noisy label pairs of every case of the folder, pooled: clean
    fg and bg, noisy fg and bg, and the two kinds of disagreement."""
    noisy = np.load(noise_dir / "labels.npz")
    dataset = load_dataset(data)
    counts = dict.fromkeys(("clean_fg", "clean_bg", "noisy_fg", "noisy_bg", "fg_to_bg", "bg_to_fg"), 0)
    for case_id in noisy.files:
        clean, label = dataset.get(case_id).label > 0, noisy[case_id] > 0
        counts["clean_fg"] += int(clean.sum())
        counts["clean_bg"] += int((~clean).sum())
        counts["noisy_fg"] += int(label.sum())
        counts["noisy_bg"] += int((~label).sum())
        counts["fg_to_bg"] += int((clean & ~label).sum())
        counts["bg_to_fg"] += int((~clean & label).sum())
    return counts


def voxel_transition_rates(noise_dir: Path, data: Path, counts: dict[str, int] | None = None) -> tuple[float, float]:
    """(P(noisy bg | clean fg), P(noisy fg | clean bg)) pooled over the voxels of every case of the folder."""
    c = counts or pooled_counts(noise_dir, data)
    return c["fg_to_bg"] / max(c["clean_fg"], 1), c["bg_to_fg"] / max(c["clean_bg"], 1)


def label_error_shares(noise_dir: Path, data: Path, counts: dict[str, int] | None = None) -> tuple[float, float]:
    """(P(clean bg | noisy fg), P(clean fg | noisy bg)): the share of each class's labelled voxels that
    are wrong, pooled over every case of the folder; what Co-Teaching's per-class forget rates estimate."""
    c = counts or pooled_counts(noise_dir, data)
    return c["bg_to_fg"] / max(c["noisy_fg"], 1), c["fg_to_bg"] / max(c["noisy_bg"], 1)


def summary(errors: list[CaseErrors]) -> str:
    """One line: means over the corrupted cases, and the range of the false-positive share."""
    share = np.array([e.false_positive_share() for e in errors])
    mean = lambda f: 100 * float(np.mean([f(e) for e in errors]))  # noqa: E731
    return (
        f"{len(errors)} corrupted cases; Dice to clean {mean(CaseErrors.dice):.1f}; "
        f"false positives {100 * np.median(share):.0f} % of wrong voxels (median; range "
        f"{100 * share.min():.0f}-{100 * share.max():.0f} %); ideal set-background-only edit "
        f"{mean(CaseErrors.dice_after_removing_false_positives):.1f}, ideal set-foreground-only edit "
        f"{mean(CaseErrors.dice_after_adding_false_negatives):.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the LA folder the noise was simulated on")
    parser.add_argument("noise_dirs", type=Path, nargs="+", help="_noise/<key> folders of a runs root")
    parser.add_argument("--rates", action="store_true", help="voxel transition rates over all cases instead")
    args = parser.parse_args()
    for noise_dir in args.noise_dirs:
        if args.rates:
            counts = pooled_counts(noise_dir, args.data)  # one pass over the labels for both
            fg_to_bg, bg_to_fg = voxel_transition_rates(noise_dir, args.data, counts)
            wrong_fg, wrong_bg = label_error_shares(noise_dir, args.data, counts)
            print(f"{noise_dir.name}: P(noisy bg | clean fg) {fg_to_bg:.3f}, P(noisy fg | clean bg) {bg_to_fg:.4f}; "
                  f"P(clean bg | noisy fg) {wrong_fg:.3f}, P(clean fg | noisy bg) {wrong_bg:.4f}")
        else:
            print(f"{noise_dir.name}: {summary(corrupted_case_errors(noise_dir, args.data))}", flush=True)


if __name__ == "__main__":
    main()
