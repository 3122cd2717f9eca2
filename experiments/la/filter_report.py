"""What a case filter kept and dropped, over runs: corrupted and clean cases, and how good the kept labels are.

Reads each run's ``case_filter.json`` (the cases it scored and dropped), ``trusted.json`` and
``noise_manifest.json`` (which training cases the noise corrupted, and each label's Dice to the
clean one: what the filter never reads) and prints, per run, how many corrupted and untouched cases
it dropped and kept, and the mean Dice to clean of the training labels before and after the filter
(trusted cases count as 1). Why: a filter's Dice alone cannot say whether it dropped the wrong
labels or just fewer cases; this says which, after the fact.

    python experiments/la/filter_report.py /work/runs/la2018/case-filter-per-case-direction__sfda-0.5__seed*
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from svldrl.noise.manifest import NoiseManifest


def filter_summary(run_dir: Path) -> dict[str, float]:
    """Counts of dropped and kept cases by group, and the training labels' mean Dice to clean before and after."""
    report = json.loads((run_dir / "case_filter.json").read_text())
    trusted = json.loads((run_dir / "trusted.json").read_text())["cases"]
    manifest = NoiseManifest.load(run_dir / "noise_manifest.json")
    scored, dropped = set(report["scores"]), set(report["dropped"])
    kept = scored - dropped
    corrupted = set(manifest.corrupted_ids)

    def label_dice(cases: set[str]) -> float:
        values = [1.0] * len(trusted) + [manifest.case(c).dice_noisy_vs_clean for c in sorted(cases)]
        return 100.0 * sum(values) / len(values)

    return {"dropped_corrupted": len(dropped & corrupted), "dropped_untouched": len(dropped - corrupted),
            "kept_corrupted": len(kept & corrupted), "kept_untouched": len(kept - corrupted),
            "trusted": len(trusted), "label_dice_all": label_dice(scored),
            "label_dice_kept": label_dice(kept)}  # fmt: skip


def format_line(name: str, s: dict[str, float]) -> str:
    return (f"{name}: dropped {s['dropped_corrupted']} corrupted + {s['dropped_untouched']} untouched; "
            f"kept {s['kept_corrupted']} corrupted + {s['kept_untouched']} untouched (+ {s['trusted']} trusted); "
            f"training labels' Dice to clean {s['label_dice_all']:.1f} -> {s['label_dice_kept']:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders of case-filter runs")
    args = parser.parse_args()
    summaries = {run.name: filter_summary(run) for run in args.runs}
    for name, summary in summaries.items():
        print(format_line(name, summary))
    if len(summaries) > 1:
        total = {k: sum(s[k] for s in summaries.values()) for k in next(iter(summaries.values()))}
        total["label_dice_all"] /= len(summaries)
        total["label_dice_kept"] /= len(summaries)
        print(format_line(f"all {len(summaries)} runs (Dice: mean of the runs')", total))


if __name__ == "__main__":
    main()
