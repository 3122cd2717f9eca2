"""Each method of a Table 1 grid against the baseline of its own loss family, run level, paired by seed.

Issue 16's rule for a fair table: a method is compared with the plain network trained with the same
kind of loss, since the loss alone moves LA Dice by more than most methods do (Dice + CE is 1.45
points above Dice under MT 50 % and 4.09 under SFDA 50 %, docs/results.md). The families:

- **Dice**: ``baseline`` (the reference row), ``svl-drl`` and its variants (the paper's Dice loss),
  ``trusted-only-*`` (a reference row: the baseline on the trusted cases alone);
- **Dice + CE**: ``baseline-dice-ce``, and every other method: Loss Correction, Co-Teaching, MTCL,
  ADELE, RSF-assisted and CLCS train a cross-entropy term plus Dice, JCAS cross-entropy alone (its
  nearest baseline).

For each method and noise: its seeds, mean Dice, the paired difference to its family's baseline
with a 95 % t interval over seeds (``paired.run_level``; the run is the unit), how many seeds it is
higher in, the same for HD95, and whether it falls below the baseline by more than the run-to-run
spread (the baseline's sd over seeds): the target of issue 16.

    python experiments/la/families.py docs/results/la-table1-long/cases.csv \\
        --reference docs/results/la-reference/cases.csv --seeds 0 1 2 3 4

A row whose runs read the noise manifest (an oracle: Co-Teaching's manifest or given rates, MTCL
without trusted cases) is marked "(oracle)" in the last column: its "beyond the spread" is not a
fault of the method as a user can run it. Whether a row is an oracle comes from the experiment file
its ``cases.csv`` was made by (``grid.json`` beside it names it), read with the same rule as the
grid's own labels; a runs folder or a ``cases.csv`` without ``grid.json`` marks nothing.

A row that trains weight for weight as another (``same_as`` in its experiment file: RSF-assisted
ADELE, where ADELE makes no correction for RSF to vet) is shown with the other row's runs, and named
so, when every run of its own scores case for case as the other's run of that seed; else with its own.

Sources are ``cases.csv`` files (or runs folders) read in order, the grids first; a run two
sources score differently (two machines' SFDA runs share names) is taken from the first, and stderr
says so. A ``--reference`` source gives baseline rows only (``baseline__*``, ``baseline-dice-ce__*``):
a grid's methods are paired only with baselines trained on the same noisy labels, and a reference
grid trained elsewhere shares them only for noise that does not depend on the machine (MT; SFDA
labels come from a source model trained on the machine, docs/results.md, "Session 18").
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paired import load_runs, paired, run_level, same_as_rows, seeds_scored_as_twin_both, source_experiment  # noqa: E402

DICE_BASELINE, DICE_CE_BASELINE = "baseline", "baseline-dice-ce"
RUN_NAME = re.compile(r"^(?P<method>.+)__(?P<noise>[a-z]+(?:-[a-z]+)*(?:-[0-9.]+)?)__seed(?P<seed>\d+)$")


def oracle_methods(sources: list[Path]) -> set[str]:
    """Run-name prefixes of the rows that read the noise manifest, from each source's experiment file."""
    from svldrl.experiments.grid import grid

    found: set[str] = set()
    for exp in filter(None, map(source_experiment, sources)):
        for run in grid(exp):
            match = RUN_NAME.match(run.run_dir(exp, "any").name)
            if match and run.uses_oracle:
                found.add(match["method"])
    return found


def family_baseline(method: str) -> str:
    """The run-name prefix of the baseline a method is compared with (its loss family)."""
    if method.startswith(("svl-drl", "trusted-only")) or method == DICE_BASELINE:
        return DICE_BASELINE
    return DICE_CE_BASELINE


def read_sources(
    sources: list[Path], metric: str, seeds: set[int] | None, references: list[Path] = ()
) -> dict[str, dict[str, float]]:
    """Runs of every source, first source first, then the baseline rows of the references; a run
    scored differently by a later source is left out (said on stderr)."""
    runs: dict[str, dict[str, float]] = {}
    for source, baselines_only in [(s, False) for s in sources] + [(r, True) for r in references]:
        if not source.exists():
            raise SystemExit(f"{source}: no such runs folder or cases.csv")
        for name, cases in load_runs(source, metric).items():
            match = RUN_NAME.match(name)
            if match is None or (seeds is not None and int(match["seed"]) not in seeds):
                continue
            if baselines_only and match["method"] not in (DICE_BASELINE, DICE_CE_BASELINE):
                continue
            if name in runs:
                if runs[name] != cases and metric == "dice":
                    print(f"{name}: scored differently in {source}; kept from an earlier source", file=sys.stderr)
                continue
            runs[name] = cases
    return runs


def methods_by_noise(runs: dict[str, dict[str, float]]) -> dict[str, list[str]]:
    """Method prefixes per noise part, in first-seen order, the clean rows left out."""
    found: dict[str, list[str]] = {}
    for name in runs:
        match = RUN_NAME.match(name)
        if match and match["noise"] != "clean" and match["method"] not in found.setdefault(match["noise"], []):
            found[match["noise"]].append(match["method"])
    return found


def baseline_spread(runs: dict[str, dict[str, float]], baseline: str, noise: str) -> float | None:
    """Sd over seeds (ddof 1) of the baseline's run means, in Dice points: the run-to-run spread."""
    means = [100 * float(np.mean(list(v.values()))) for n, v in runs.items() if n.startswith(f"{baseline}__{noise}__")]
    return float(np.std(means, ddof=1)) if len(means) >= 2 else None


def family_rows(
    dice: dict[str, dict[str, float]], hd95: dict[str, dict[str, float]], noises: list[str] | None = None,
    oracles: set[str] = frozenset(), same_as: dict[str, tuple[str, str]] | None = None,
) -> list[dict]:
    """One row per (noise, method) that has at least one seed paired with its family's baseline; ``oracles``:
    the methods that read the noise manifest; ``same_as``: rows that train as another (``paired.same_as_rows``),
    shown with that row's runs where every run of their own scores as its twin's, case for case."""
    rows = []
    for noise, methods in methods_by_noise(dice).items():
        if noises and noise not in noises:
            continue
        for method in methods:
            if method == family_baseline(method):
                continue
            source, shown = _row_source(dice, hd95, method, noise, same_as or {})
            base = family_baseline(source)  # a same_as row shown with its twin's runs: the twin's family
            try:
                d = paired(dice, base, source, noise)
                h = paired(hd95, base, source, noise, scale=1.0)
            except SystemExit:  # no seed of this method paired with its baseline
                continue
            spread = baseline_spread(dice, base, noise)
            level, level_h = run_level(d["per_seed"]), run_level(h["per_seed"])
            mine = [100 * float(np.mean(list(dice[n].values())))
                    for n in dice if n.startswith(f"{source}__{noise}__")]  # fmt: skip
            rows.append({
                "noise": noise, "method": shown, "baseline": base, "seeds": d["seeds"],
                "dice": float(np.mean(mine)), "diff": float(np.mean(d["per_seed"])), "per_seed": d["per_seed"],
                "level": level, "level_hd95": level_h, "hd95_diff": float(np.mean(h["per_seed"])),
                "spread": spread,
                "below_spread": spread is not None and float(np.mean(d["per_seed"])) < -spread,
                "oracle": method in oracles,
            })  # fmt: skip
    return rows


def _row_source(
    dice: dict[str, dict[str, float]], hd95: dict[str, dict[str, float]], method: str, noise: str,
    same_as: dict[str, tuple[str, str]],
) -> tuple[str, str]:
    """Whose runs a row shows, and its name: a same_as row whose runs all score as its twin's shows the
    twin's (all seeds), named so; any other row, its own."""
    if method not in same_as:
        return method, method
    twin, _ = same_as[method]
    seeds = seeds_scored_as_twin_both(dice, hd95, method, twin, noise)
    if seeds is None:
        print(f"{method} ({noise}): its runs do not all score as {twin}'s; its own shown", file=sys.stderr)
        return method, method
    return twin, f"{method} = {twin}'s runs (own runs identical: seed {', '.join(map(str, seeds))})"


def _interval(level: dict | None, diff: float, unit: str = "") -> str:
    if level is None:
        return f"{diff:+.2f}{unit} (under 3 seeds: no interval)"
    return (f"{level['mean']:+.2f}{unit} ({level['ci_low']:+.2f} to {level['ci_high']:+.2f}), "
            f"higher in {level['b_better']}/{level['n']}")  # fmt: skip


def to_markdown(rows: list[dict]) -> str:
    lines = [
        "| noise | method | seeds | Dice [%] | its baseline | Dice difference, run level (95 % CI) | per seed "
        "| HD95 difference [mm] (95 % CI) | below by more than the spread (baseline sd) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        spread = "-" if r["spread"] is None else f"{'**yes**' if r['below_spread'] else 'no'} ({r['spread']:.2f})"
        spread += " (oracle)" if r.get("oracle") else ""
        lines.append(
            f"| {r['noise']} | {r['method']} | {r['seeds']} | {r['dice']:.2f} | {r['baseline']} | "
            f"{_interval(r['level'], r['diff'])} | {', '.join(f'{v:+.2f}' for v in r['per_seed'])} | "
            f"{_interval(r['level_hd95'], r['hd95_diff'], ' mm')} | {spread} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="+", type=Path, help="grids: compare cases.csv files or runs folders")
    parser.add_argument("--reference", action="append", type=Path, default=[],
                        help="a source whose baseline rows only are read, after the grids (repeatable)")
    parser.add_argument("--seeds", nargs="+", type=int, help="only these seeds")
    parser.add_argument("--noise", action="append", help="only this noise part (e.g. sfda-0.5); repeatable")
    args = parser.parse_args()
    seeds = set(args.seeds) if args.seeds else None
    dice = read_sources(args.sources, "dice", seeds, args.reference)
    hd95 = read_sources(args.sources, "hd95", seeds, args.reference)
    print(to_markdown(family_rows(dice, hd95, args.noise, oracle_methods(args.sources), same_as_rows(args.sources))))


if __name__ == "__main__":
    main()
