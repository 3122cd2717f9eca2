"""Does a label-correcting policy that brings the labels closer to clean also give a better network?

Per seed: the Dice to clean of the non-trusted training labels before and after the run's final
policy (case-weighted over ``label_agents_policy.py``'s groups), and the run's mean held-out Dice
against the noisy baseline of the same seed; then Spearman's rho of the two gains over seeds.

    python experiments/la/label_gain_vs_score.py docs/results/la-teacher-run-long/label_agents_policy_mt.json \
        docs/results/la-teacher-run-seeds5-9/label_agents_policy_mt.json -- docs/results/la-reference/cases.csv \
        docs/results/la-teacher-run-long/cases.csv docs/results/la-teacher-run-seeds5-9/cases.csv
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paired import load_sources  # noqa: E402


def weighted_dice(groups: dict[str, dict], key: str) -> float:
    """Case-weighted mean of ``key`` (dice_noisy or dice_corrected) over the groups, in points."""
    return 100.0 * sum(g["n"] * g[key] for g in groups.values()) / sum(g["n"] for g in groups.values())


def seed_rows(reports: dict[str, dict], scores: dict[str, dict[str, float]], baseline: str) -> list[dict]:
    """One row per reported run: label Dice before/after (trusted cases left out) and score minus baseline."""
    rows = []
    for run, groups in sorted(reports.items()):
        prefix, seed = run.rsplit("__seed", 1)
        noise = prefix.rsplit("__", 1)[1]
        training = {k: v for k, v in groups.items() if k != "trusted"}
        corrupted = {k: v for k, v in training.items() if k.startswith("corrupted")}
        base = scores[f"{baseline}__{noise}__seed{seed}"]
        rows.append({
            "seed": int(seed),
            "corrupted": (weighted_dice(corrupted, "dice_noisy"), weighted_dice(corrupted, "dice_corrected")),
            "untouched": 100.0 * training["untouched"]["dice_corrected"],
            "all": (weighted_dice(training, "dice_noisy"), weighted_dice(training, "dice_corrected")),
            "score_gain": 100.0 * (np.mean(list(scores[run].values())) - np.mean(list(base.values()))),
        })
    return rows


def main() -> None:
    args = sys.argv[1:]
    if "--" not in args:
        raise SystemExit("usage: label_gain_vs_score.py REPORT.json... -- CASES.csv...")
    split = args.index("--")
    reports: dict[str, dict] = {}
    for path in args[:split]:
        reports.update(json.loads(Path(path).read_text()))
    sources = [Path(p) for p in args[split + 1:]]
    scores = load_sources(sources, prefixes=("baseline__", *reports))
    rows = seed_rows(reports, scores, "baseline")
    print("| seed | corrupted cases, Dice to clean | untouched cases | all training labels"
          " | network against the noisy baseline |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['seed']} | {r['corrupted'][0]:.1f} -> {r['corrupted'][1]:.1f} | 100 -> {r['untouched']:.1f} | "
              f"{r['all'][0]:.1f} -> {r['all'][1]:.1f} | {r['score_gain']:+.2f} |")
    rho, p = spearmanr([r["all"][1] - r["all"][0] for r in rows], [r["score_gain"] for r in rows])
    print(f"Spearman, label gain against score gain over {len(rows)} seeds: {rho:+.2f} (p = {p:.2f})")


if __name__ == "__main__":
    main()
