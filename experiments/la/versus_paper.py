"""Our LA Table 1 or Table 5 rows next to the paper's (LA, Dice % and HD95 mm), for docs/results.md.

The paper's numbers are copied from the paper (SwinUNETR, 96^3 patches, 0.625 mm, 1000 epochs);
ours come from the finished run folders (mean ± std over the seeds found). A row whose runs are
not finished yet says so instead of a number.

    python experiments/la/versus_paper.py runs/la2018              # Table 1
    python experiments/la/versus_paper.py runs/la2018 --table 5    # Table 5 (ablations)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

# (noise, run-name prefix, row label) -> the paper's (Dice %, HD95 mm); None: a row of ours only
Rows = dict[tuple[str, str, str], tuple[float, float] | None]
TABLE1: Rows = {
    ("clean", "baseline", "Baseline"): (91.61, 2.58),
    ("mt-0.5", "baseline", "Baseline"): (88.97, 6.24),
    ("mt-0.5", "baseline-dice-ce", "Baseline (Dice+CE, ours)"): None,
    ("mt-0.5", "loss-correction", "Loss Correction"): (89.13, 5.63),
    ("mt-0.5", "co-teaching-oracle", "Co-Teaching (oracle)"): (90.39, 4.40),
    ("mt-0.5", "mtcl-oracle", "MTCL (oracle)"): (90.47, 4.57),
    ("mt-0.5", "adele", "ADELE"): (89.42, 5.05),
    ("mt-0.5", "jcas", "JCAS"): (90.28, 4.12),
    ("mt-0.5", "rsf-assisted-adele", "RSF-Assisted (ADELE)"): (90.14, 5.79),
    ("mt-0.5", "clcs", "CLCS"): (89.84, 5.54),
    ("mt-0.5", "svl-drl", "SVL-DRL"): (90.64, 3.80),
    ("sfda-0.5", "baseline", "Baseline"): (83.37, 13.68),
    ("sfda-0.5", "baseline-dice-ce", "Baseline (Dice+CE, ours)"): None,
    ("sfda-0.5", "loss-correction", "Loss Correction"): (84.06, 12.26),
    ("sfda-0.5", "co-teaching-oracle", "Co-Teaching (oracle)"): (85.69, 10.49),
    ("sfda-0.5", "mtcl-oracle", "MTCL (oracle)"): (86.47, 9.48),
    ("sfda-0.5", "adele", "ADELE"): (85.28, 10.05),
    ("sfda-0.5", "jcas", "JCAS"): (86.39, 9.93),
    ("sfda-0.5", "rsf-assisted-adele", "RSF-Assisted (ADELE)"): (85.92, 11.92),
    ("sfda-0.5", "clcs", "CLCS"): (87.09, 8.17),
    ("sfda-0.5", "svl-drl", "SVL-DRL"): (88.65, 6.55),
}
TABLE5: Rows = {
    ("sfda-0.5", "baseline", "Baseline"): (83.37, 13.68),
    ("sfda-0.5", "svl-drl-w-o-ws", "SVL-DRL w/o WS"): (80.34, 9.07),
    ("sfda-0.5", "svl-drl-w-o-ts", "SVL-DRL w/o TS"): (86.19, 7.92),
    ("sfda-0.5", "svl-drl-w-o-wat", "SVL-DRL w/o WAT"): (76.21, 23.52),
    ("sfda-0.5", "svl-drl-w-o-frl", "SVL-DRL w/o FRL"): (84.93, 8.63),
    ("sfda-0.5", "svl-drl", "SVL-DRL"): (88.65, 6.55),
    ("mt-0.5", "baseline", "Baseline"): (88.97, 6.24),
    ("mt-0.5", "svl-drl-w-o-ws", "SVL-DRL w/o WS"): (82.13, 13.58),
    ("mt-0.5", "svl-drl-w-o-ts", "SVL-DRL w/o TS"): (89.14, 5.84),
    ("mt-0.5", "svl-drl-w-o-wat", "SVL-DRL w/o WAT"): (80.47, 13.37),
    ("mt-0.5", "svl-drl-w-o-frl", "SVL-DRL w/o FRL"): (89.28, 5.42),
    ("mt-0.5", "svl-drl", "SVL-DRL"): (90.64, 3.80),
}
TABLES = {"1": TABLE1, "5": TABLE5}
NOISE_NAMES = {"clean": "clean", "mt-0.5": "MT 50 %", "sfda-0.5": "SFDA 50 %"}


def our_scores(root: Path, prefix: str, noise: str) -> tuple[list[float], list[float]]:
    """Dice (%) and HD95 (mm) of every finished seed of one method and noise."""
    dice, hd95 = [], []
    for run in sorted(root.glob(f"{prefix}__{noise}__seed*")):
        if (run / "metrics.json").exists():
            mean = json.loads((run / "metrics.json").read_text())["summary"]["mean"]["mean"]
            dice.append(100 * mean["dice"])
            hd95.append(mean["hd95"])
    return dice, hd95


def fmt(values: list[float]) -> str:
    if not values:
        return "not run yet"
    return f"{np.mean(values):.2f} (±{np.std(values):.2f}, n={len(values)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="runs folder, e.g. runs/la2018")
    parser.add_argument("--table", choices=sorted(TABLES), default="1", help="the paper's table to set ours beside")
    args = parser.parse_args()
    print("| noise | method | Dice [%] ours | Dice [%] paper | HD95 [mm] ours | HD95 [mm] paper |")
    print("|---|---|---|---|---|---|")
    for (noise, prefix, label), paper in TABLES[args.table].items():
        dice, hd95 = our_scores(args.root, prefix, noise)
        p_dice, p_hd = ("-", "-") if paper is None else (f"{paper[0]:.2f}", f"{paper[1]:.2f}")
        print(f"| {NOISE_NAMES[noise]} | {label} | {fmt(dice)} | {p_dice} | {fmt(hd95)} | {p_hd} |")


if __name__ == "__main__":
    main()
