"""Paired comparison of two methods on the same held-out cases, seeds and noisy labels.

Why: the spread over seeds in the tables mixes two things, the training seed and the noise draw
(seed k corrupts other cases than seed k+1), and every method of a seed shares both. The fair
question is "on the same case, same seed, same labels, which method scores higher?". This prints
the mean per-run difference and a Wilcoxon signed-rank test over all (seed, case) pairs.

    python experiments/la/paired.py runs/la2018 baseline svl-drl --noise mt-0.5
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy.stats import wilcoxon


def per_case_dice(run_dir: Path) -> dict[str, float]:
    """Case id -> mean Dice over the foreground classes, from the run's metrics.json."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {case: float(values["mean"]["dice"]) for case, values in metrics["per_case"].items()}


def paired(root: Path, a: str, b: str, noise: str) -> dict[str, float]:
    """Differences b - a in Dice points over every seed both runs finished."""
    diffs, per_seed = [], []
    for run_a in sorted(root.glob(f"{a}__{noise}__seed*")):
        run_b = root / run_a.name.replace(f"{a}__", f"{b}__", 1)
        if not ((run_a / "metrics.json").exists() and (run_b / "metrics.json").exists()):
            continue
        da, db = per_case_dice(run_a), per_case_dice(run_b)
        d = [100 * (db[c] - da[c]) for c in sorted(da)]
        diffs += d
        per_seed.append(float(np.mean(d)))
    if not diffs:
        raise SystemExit(f"no finished pairs {a} / {b} with noise {noise} under {root}")
    return {
        "seeds": len(per_seed),
        "pairs": len(diffs),
        "mean_diff": float(np.mean(diffs)),
        "per_seed": per_seed,
        "b_better": int(np.sum(np.array(diffs) > 0)),
        "p_wilcoxon": float(wilcoxon(diffs).pvalue),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="runs folder, e.g. runs/la2018")
    parser.add_argument("a", help="run-name prefix of the reference method, e.g. baseline")
    parser.add_argument("b", help="run-name prefix of the compared method, e.g. svl-drl")
    parser.add_argument("--noise", default="mt-0.5", help="noise part of the run names: clean, mt-0.5, sfda-0.5, ...")
    args = parser.parse_args()
    r = paired(args.root, args.a, args.b, args.noise)
    seeds = ", ".join(f"{d:+.2f}" for d in r["per_seed"])
    print(
        f"{args.b} - {args.a} ({args.noise}): {r['mean_diff']:+.2f} Dice points over {r['pairs']} (seed, case) pairs "
        f"[per seed: {seeds}]; {args.b} higher on {r['b_better']}/{r['pairs']}; Wilcoxon p = {r['p_wilcoxon']:.2g}"
    )


if __name__ == "__main__":
    main()
