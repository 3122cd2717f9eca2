"""What teacher-correction with direction=case decided, over runs: imbalance and direction per group.

Reads each run's ``teacher_directions.json`` (the teacher's confident edits of every whole training
case, counted by direction, and the direction chosen) and prints, per run, the threshold and, per
group of cases (trusted; corrupted and untouched by the noise, from the manifest flag the file
records as a diagnostic), the range of ``log10((to background + 1) / (to foreground + 1))`` and how
many cases went each way.

Under MT noise a corrupted case is dilated or eroded whole, so the direction its correction needs
is known: background for a dilated case (its wrong voxels are false positives), foreground for an
eroded one. Where a report records each corrupted case's ``operation`` (runs since session 12), or
the runs' ``noise_manifest.json`` files are given with ``--manifest`` (matched to a report by the
noise kind, ratio and seed in its file name), the report also counts how many corrupted cases were
corrected in that direction, the other one, or left alone.

    python experiments/la/direction_report.py docs/results/la-teacher-direction-long/reports/*.json
    python experiments/la/direction_report.py reports/*mt-0.5*.json \
        --manifest runs/la2018/_noise/mt-0.5-seed*/noise_manifest.json
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path

NEEDED = {"dilation": "background", "erosion": "foreground"}
"""The direction a corrupted case's correction needs, by the MT operation that corrupted it."""

NOISE_PART = re.compile(r"__(?P<kind>[a-z]+(?:-[a-z]+)*)-(?P<ratio>[0-9.]+)__seed(?P<seed>\d+)")


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


def direction_match(report: dict) -> dict[str, int]:
    """Corrupted cases with a known operation: corrected the needed way, the other way, or left alone."""
    out: Counter = Counter()
    for case in report["cases"].values():
        needed = NEEDED.get(case.get("operation") or "")
        if case.get("corrupted") and needed:
            out["needed" if case["direction"] == needed else "none" if case["direction"] == "none" else "opposite"] += 1
    return {k: out[k] for k in ("needed", "opposite", "none")} if out else {}


def manifests_by_noise(paths: list[Path]) -> dict[tuple[str, float, int], dict[str, str]]:
    """(kind, ratio, seed) -> case id -> operation of each corrupted case, from noise_manifest.json files."""
    out = {}
    for path in paths:
        m = json.loads(path.read_text())
        out[(m["kind"], float(m["ratio"]), int(m["seed"]))] = {
            c["case_id"]: c["operation"] for c in m["cases"] if c["corrupted"] and c.get("operation")}
    return out


def with_operations(report: dict, name: str, manifests: dict[tuple[str, float, int], dict[str, str]]) -> dict:
    """The report with each corrupted case's operation filled in from the manifest of its run's noise."""
    match = NOISE_PART.search(name)
    key = (match["kind"], float(match["ratio"]), int(match["seed"])) if match else None
    if key not in manifests:
        return report
    for case_id, case in report["cases"].items():
        if case.get("corrupted") and "operation" not in case:
            if case_id not in manifests[key]:
                raise SystemExit(f"{name}: corrupted case {case_id} is not corrupted in the manifest of {key}")
            case["operation"] = manifests[key][case_id]
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", type=Path, nargs="+", help="teacher_directions.json files (or copies of them)")
    parser.add_argument("--manifest", type=Path, nargs="+", default=[],
                        help="noise_manifest.json files naming each corrupted case's MT operation")
    args = parser.parse_args()
    manifests = manifests_by_noise(args.manifest)
    total: Counter = Counter()
    for path in args.files:
        report = with_operations(json.loads(path.read_text()), path.stem, manifests)
        parts = [f"{g} n={s['n']} imbalance {s['imbalance'][0]:+.2f}..{s['imbalance'][1]:+.2f} {s['directions']}"
                 for g, s in summary(report).items()]  # fmt: skip
        match = direction_match(report)
        total.update(match)
        extra = f"; corrupted cases by the direction their noise needs {match}" if match else ""
        print(f"{path.stem}: threshold {report['threshold']:.2f}; " + "; ".join(parts) + extra)
    if total:
        print(f"all: corrupted cases corrected the needed way {total['needed']}, the opposite way {total['opposite']}, "
              f"left alone {total['none']}")


if __name__ == "__main__":
    main()
