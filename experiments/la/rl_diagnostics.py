"""What the RL part of SVL-DRL runs actually did, read from their log.csv files.

Why: a segmentation score alone cannot tell "the policy learned nothing" from "the policy learned
something useless". Per stage, this prints the mean reward, the spread of the raw advantages
(the policy gradient's scale), the policy entropy (ln 3 = 1.0986 is a uniform policy over keep /
enhance / weaken), the share of each action and the seconds per epoch, averaged over the epochs of that stage.

    python experiments/la/rl_diagnostics.py runs/la2018            # every SVL-DRL run found there
    python experiments/la/rl_diagnostics.py runs/la2018 --markdown  # as a table for docs/results.md
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from svldrl.config import load_config
from svldrl.training import read_log

COLUMNS = (
    "reward", "advantage_std", "policy_entropy", "action_keep", "action_enhance", "action_weaken", "epoch_time",
)


def stage_means(run_dir: Path) -> dict[str, dict[str, float]]:
    """Stage -> column -> mean over that stage's epochs (columns a stage does not log are skipped)."""
    per_stage: dict[str, dict[str, list[float]]] = {}
    for row in read_log(run_dir):
        values = per_stage.setdefault(row["stage"], {})
        for column in COLUMNS:
            if row.get(column):
                values.setdefault(column, []).append(float(row[column]))
    return {stage: {c: sum(v) / len(v) for c, v in cols.items()} for stage, cols in per_stage.items()}


def svldrl_runs(root: Path) -> list[Path]:
    """Finished svl-drl run folders under ``root``."""
    return sorted(
        p.parent
        for p in root.rglob("metrics.json")
        if (p.parent / "config.yaml").is_file() and load_config(p.parent / "config.yaml").method == "svl-drl"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="a runs folder, e.g. runs/la2018")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = parser.parse_args()
    header = ("run", "stage", *COLUMNS)
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
    for run in svldrl_runs(args.root):
        for stage, values in stage_means(run).items():
            if stage == "warmup":
                continue  # no RL in Warmup
            cells = [run.name, stage, *(f"{values.get(c, math.nan):.4g}" for c in COLUMNS)]
            print("| " + " | ".join(cells) + " |" if args.markdown else "  ".join(cells))


if __name__ == "__main__":
    main()
