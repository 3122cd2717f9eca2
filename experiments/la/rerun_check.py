"""Whether run folders trained again reproduce the scores committed for runs of the same name.

For each run folder, its per-case mean Dice (``metrics.json``) against the rows of the same run in a
committed ``cases.csv``: how many cases, the largest per-case difference, both means, and whether
they are identical. Why: a grid grows over machines, and the rows it pairs by seed were trained
on another one. This says whether this machine trains what that one trained (bit for bit:
identical) or a run of its own (then pairing across machines adds that spread), e.g. with the
CPU kernels capped (README, "bit for bit"):

    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 SVLDRL_RUNS=/work/runs-check \\
        svldrl compare experiments/la/teacher_filter_short.yaml --index 15 --retrain
    python experiments/la/rerun_check.py docs/results/la-teacher-filter-short/cases.csv \\
        /work/runs-check/la2018/baseline__sfda-0.5__seed0
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paired import load_runs, per_case_dice  # noqa: E402  (one reader of cases.csv and metrics.json for all scripts)


def compare_run(
    run_dir: Path, cases_csv: Path, committed_runs: dict[str, dict[str, float]] | None = None
) -> dict[str, float | int | bool]:
    """The rerun's per-case mean Dice against the committed rows of the run of its name.

    ``committed_runs``: ``load_runs(cases_csv)`` read once by a caller that checks several folders."""
    runs = committed_runs if committed_runs is not None else load_runs(cases_csv)
    committed = runs.get(run_dir.name, {})
    if not committed:
        raise ValueError(f"{cases_csv}: no rows of run {run_dir.name}")
    new = per_case_dice(run_dir)
    if sorted(new) != sorted(committed):
        raise ValueError(f"{run_dir}: scored other cases than {cases_csv} holds for it (another split?)")
    differences = [abs(new[c] - committed[c]) for c in committed]
    return {
        "cases": len(committed),
        "max_abs_difference": 100.0 * max(differences),
        "mean_rerun": 100.0 * sum(new.values()) / len(new),
        "mean_committed": 100.0 * sum(committed.values()) / len(committed),
        "identical": max(differences) == 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cases_csv", type=Path, help="the committed cases.csv that holds the runs' rows")
    parser.add_argument("run_dirs", type=Path, nargs="+", help="run folders trained again (their names as committed)")
    args = parser.parse_args()
    print("run\tcases\tmax |diff| (Dice points)\trerun\tcommitted\tidentical")
    committed_runs = load_runs(args.cases_csv)
    for run_dir in args.run_dirs:
        r = compare_run(run_dir, args.cases_csv, committed_runs)
        print(f"{run_dir.name}\t{r['cases']}\t{r['max_abs_difference']:.4f}\t{r['mean_rerun']:.2f}\t"
              f"{r['mean_committed']:.2f}\t{'yes' if r['identical'] else 'no'}")  # fmt: skip


if __name__ == "__main__":
    main()
