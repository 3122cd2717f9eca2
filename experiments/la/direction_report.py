"""What teacher-correction with direction=case decided, over runs: imbalance and direction per group.

Reads each run's ``teacher_directions.json`` (the teacher's confident edits of every whole training
case, counted by direction, and the direction chosen) and prints, per run, the threshold and, per
group of cases (trusted; corrupted and untouched by the noise, from the manifest flag the file
records as a diagnostic), the range of ``log10((to background + 1) / (to foreground + 1))`` and how
many cases went each way.

    python experiments/la/direction_report.py docs/results/la-teacher-direction-long/reports/*.json
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path


def group_of(case: dict) -> str:
    if case["direction"] == "trusted":
        return "trusted"
    return {True: "corrupted", False: "untouched"}.get(case.get("corrupted"), "unknown")


def summary(report: dict) -> dict[str, dict]:
    """Per group: imbalance range and direction counts."""
    groups: dict[str, list[dict]] = {}
    for case in report["cases"].values():
        groups.setdefault(group_of(case), []).append(case)
    return {g: {"n": len(cases), "imbalance": (min(c["imbalance"] for c in cases), max(c["imbalance"] for c in cases)),
                "directions": dict(Counter(c["direction"] for c in cases))}  # fmt: skip
            for g, cases in sorted(groups.items())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", type=Path, nargs="+", help="teacher_directions.json files (or copies of them)")
    args = parser.parse_args()
    for path in args.files:
        report = json.loads(path.read_text())
        parts = [f"{g} n={s['n']} imbalance {s['imbalance'][0]:+.2f}..{s['imbalance'][1]:+.2f} {s['directions']}"
                 for g, s in summary(report).items()]  # fmt: skip
        print(f"{path.stem}: threshold {report['threshold']:.2f}; " + "; ".join(parts))


if __name__ == "__main__":
    main()
