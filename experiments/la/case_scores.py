"""Can a model trained on the trusted cases tell the corrupted training cases from the others?

The case filter (and any method that trusts a teacher) rests on this. For each run folder, every
non-trusted training case is segmented by the run's final network (sliding window) and scored by
the Dice between that prediction and the case's training label, as ``case-filter`` scores it.
Against the noise manifest (a diagnostic: nothing trains on it) the script reports the AUC of
"low score = corrupted", the mean score of the corrupted and of the untouched cases, and the
network's own Dice against the clean labels. For a ``case-filter`` run the scores are read from
its ``case_filter.json`` instead: those of the in-run model the filter used.

    python experiments/la/case_scores.py ../shared/data/la2018 runs/la2018/trusted-only-6__sfda-0.5__seed{0,1,2,3,4}
    python experiments/la/case_scores.py ../shared/data/la2018 runs/la2018/case-filter__sfda-0.5__seed0
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from scipy.stats import mannwhitneyu

from svldrl.baselines.case_filter import FILTER_FILE
from svldrl.data import load_dataset
from svldrl.experiments.run_labels import training_case_labels
from svldrl.inference import predict_probabilities
from svldrl.metrics import dice
from svldrl.training.checkpoint import load_trained


def network_scores(run: Path, data: Path) -> dict[str, dict[str, float | str]]:
    """Per non-trusted training case: its group, the score (Dice of prediction vs training label), Dice to clean."""
    net, cfg, _ = load_trained(run, device="cpu")
    rows: dict[str, dict[str, float | str]] = {}
    for case in training_case_labels(run, load_dataset(data), cfg.data, groups=("corrupted", "untouched")):
        prob = predict_probabilities(net, case.image, cfg.data.patch_size, overlap=cfg.sw_overlap, mode="classes")
        pred = prob[1] > 0.5
        rows[case.case_id] = {"group": case.group, "score": dice(pred, case.noisy),
                              "pred_vs_clean": dice(pred, case.clean)}  # fmt: skip
    return rows


def report_scores(run: Path) -> dict[str, dict[str, float | str]]:
    """The scores a case-filter run filtered on, with each case's group from the run's manifest."""
    scores = json.loads((run / FILTER_FILE).read_text())["scores"]
    manifest = {c["case_id"]: c["corrupted"] for c in json.loads((run / "noise_manifest.json").read_text())["cases"]}
    return {cid: {"group": "corrupted" if manifest[cid] else "untouched", "score": s} for cid, s in scores.items()}


def summary(rows: dict[str, dict[str, float | str]]) -> dict[str, float]:
    corrupted = np.array([r["score"] for r in rows.values() if r["group"] == "corrupted"], dtype=float)
    untouched = np.array([r["score"] for r in rows.values() if r["group"] == "untouched"], dtype=float)
    out = {  # AUC of "a lower score means corrupted": P(score of a corrupted case < score of an untouched one)
        "auc": float(mannwhitneyu(untouched, corrupted).statistic / (corrupted.size * untouched.size)),
        "score_corrupted": float(corrupted.mean()), "score_untouched": float(untouched.mean()),
        "n_corrupted": int(corrupted.size), "n_untouched": int(untouched.size),
    }  # fmt: skip
    clean = [r["pred_vs_clean"] for r in rows.values() if "pred_vs_clean" in r]
    if clean:
        out["pred_vs_clean"] = float(np.mean(clean))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the LA folder the runs were trained on")
    parser.add_argument("runs", type=Path, nargs="+", help="run folders (trusted-only, or case-filter runs)")
    parser.add_argument("--json", type=Path, help="also write every case's score here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    reports = {}
    for run in args.runs:
        rows = report_scores(run) if (run / FILTER_FILE).exists() else network_scores(run, args.data)
        reports[str(run)] = s = {**summary(rows), "cases": rows}
        clean = f"; the network's Dice to clean {100 * s['pred_vs_clean']:.1f}" if "pred_vs_clean" in s else ""
        print(f"{run}: AUC {s['auc']:.3f}; score corrupted {100 * s['score_corrupted']:.1f} "
              f"(n={s['n_corrupted']}), untouched {100 * s['score_untouched']:.1f} (n={s['n_untouched']}){clean}",
              flush=True)  # fmt: skip
    aucs = [r["auc"] for r in reports.values()]
    print(f"mean AUC over {len(aucs)} runs: {np.mean(aucs):.3f} (min {min(aucs):.3f}, max {max(aucs):.3f})")
    if args.json:
        args.json.write_text(json.dumps(reports, indent=1) + "\n")


if __name__ == "__main__":
    main()
