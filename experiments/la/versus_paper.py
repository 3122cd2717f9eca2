"""Our LA Table 1 or Table 5 rows next to the paper's (LA, Dice % and HD95 mm), for docs/results.md.

The paper's numbers are copied from the paper (SwinUNETR, 96^3 patches, 0.625 mm, 1000 epochs);
ours come from finished runs (mean ± std over the seeds found, one value per run: the mean over its
held-out cases). A row whose runs are not finished yet says so instead of a number.

    python experiments/la/versus_paper.py runs/la2018              # Table 1
    python experiments/la/versus_paper.py runs/la2018 --table 5    # Table 5 (ablations)
    python experiments/la/versus_paper.py docs/results/la-table1-long/cases.csv \
        docs/results/la-reference/cases.csv --table long --seeds 0 1 2 3 4   # the long Table 1 (issue 16)

A source is a runs folder (each run's metrics.json) or a ``cases.csv`` that ``svldrl compare``
writes beside its tables; the csv is committed, so a table made from it outlives the run folders.
Several sources are read together (the long table takes its baseline, trusted-only and clean rows
from experiments/la/reference.yaml's grid); a run found in two sources counts once, and a row
two sources score differently (two machines' SFDA runs) is taken whole from the first (``our_scores``).
A row that trains as another (``same_as`` in the experiment file, as ``families.py`` reads it) shows
the other row's runs, named so, where every run of its own scores case for case as the other's.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paired import load_runs, same_as_rows, seeds_scored_as_twin_both  # noqa: E402

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
TABLE1_LONG: Rows = {
    (noise, prefix, label): paper
    for noise in ("mt-0.5", "sfda-0.5")
    for prefix, label, paper in [
        ("baseline", "Baseline", TABLE1[(noise, "baseline", "Baseline")]),
        ("baseline-dice-ce", "Baseline (Dice+CE, ours)", None),
        ("trusted-only-6", "Trusted only 6 (ours)", None),
        ("loss-correction", "Loss Correction", TABLE1[(noise, "loss-correction", "Loss Correction")]),
        ("co-teaching", "Co-Teaching (trusted rates)", TABLE1[(noise, "co-teaching-oracle", "Co-Teaching (oracle)")]),
        ("mtcl-trusted-clean-stream", "MTCL (trusted clean stream)", TABLE1[(noise, "mtcl-oracle", "MTCL (oracle)")]),
        ("adele", "ADELE", TABLE1[(noise, "adele", "ADELE")]),
        ("adele-v4-patch-curve", "ADELE v4 (patch curve, superseded)", TABLE1[(noise, "adele", "ADELE")]),
        ("jcas", "JCAS", TABLE1[(noise, "jcas", "JCAS")]),
        ("rsf-assisted-adele", "RSF-Assisted (ADELE)", TABLE1[(noise, "rsf-assisted-adele", "RSF-Assisted (ADELE)")]),
        ("clcs", "CLCS", TABLE1[(noise, "clcs", "CLCS")]),
        ("svl-drl", "SVL-DRL", TABLE1[(noise, "svl-drl", "SVL-DRL")]),
    ]
}
TABLE1_LONG = {("clean", "baseline", "Baseline"): TABLE1[("clean", "baseline", "Baseline")], **TABLE1_LONG}
TABLES = {"1": TABLE1, "5": TABLE5, "long": TABLE1_LONG}
NOISE_NAMES = {"clean": "clean", "mt-0.5": "MT 50 %", "sfda-0.5": "SFDA 50 %"}


Cases = dict[str, tuple[dict[str, float], dict[str, float]]]
"""run name -> (Dice, HD95) of each held-out case"""


def our_scores(
    sources: list[Path], prefix: str, noise: str, seeds: list[int] | None = None
) -> tuple[list[float], list[float]]:
    """Dice (%) and HD95 (mm) of every finished seed (of ``seeds``, if given) of one method and noise.

    Each run's value is the mean over its held-out cases (``paired.load_runs`` reads both source
    kinds); ``row_runs`` says which runs."""
    return run_means(row_runs(sources, prefix, noise, seeds))


def run_means(chosen: Cases) -> tuple[list[float], list[float]]:
    """Each run's mean Dice (%) and HD95 (mm) over its cases, in run-name order."""
    runs = {name: (100 * float(np.mean(list(d.values()))), float(np.mean(list(h.values()))))
            for name, (d, h) in chosen.items()}  # fmt: skip
    return [runs[r][0] for r in sorted(runs)], [runs[r][1] for r in sorted(runs)]


def row_runs(sources: list[Path], prefix: str, noise: str, seeds: list[int] | None = None) -> Cases:
    """The per-case scores of every finished run of one row (method and noise, ``seeds`` if given).

    The seeds of a row join across sources (seeds 0-4 in one grid, 5-9 in another), unless
    two sources score one of its runs differently: then they are two runs under one name (the SFDA
    reference rows of two machines, whose source models, and so labels, differ), and the row is
    taken whole from the first source that has it, so that it never mixes the two; stderr says so.
    """
    per_source: list[dict[str, tuple[dict[str, float], dict[str, float]]]] = []  # run -> (Dice, HD95 per case)
    for source in sources:
        dice, hd95 = load_runs(source, "dice"), load_runs(source, "hd95")
        found = {}
        for name, cases in dice.items():
            match = re.fullmatch(rf"{re.escape(prefix)}__{re.escape(noise)}__seed(\d+)", name)
            if match and (seeds is None or int(match.group(1)) in seeds):
                found[name] = (cases, hd95[name])
        per_source.append(found)
    chosen: dict[str, tuple[dict[str, float], dict[str, float]]] = {}
    origin: dict[str, Path] = {}
    for source, found in zip(sources, per_source, strict=True):
        clash = next((name for name, value in found.items() if name in chosen and chosen[name] != value), None)
        if clash is not None:
            first = next(i for i, f in enumerate(per_source) if f)
            print(f"{clash}: scored differently in {origin[clash]} and {source}; the row {prefix} ({noise}) "
                  f"is taken from {sources[first]} alone", file=sys.stderr)
            chosen = dict(per_source[first])
            break
        for name, value in found.items():
            chosen.setdefault(name, value)
            origin.setdefault(name, source)
    return chosen


def twin_seeds(own: Cases, twin: Cases, prefix: str, twin_prefix: str, noise: str) -> list[int] | None:
    """The seeds of a row if every run of it scores case for case (Dice and HD95) as the run of the same
    seed of its twin row (``paired.seeds_scored_as_twin_both``), else None."""
    both = {**own, **twin}
    dice, hd95 = {n: d for n, (d, _) in both.items()}, {n: h for n, (_, h) in both.items()}
    return seeds_scored_as_twin_both(dice, hd95, prefix, twin_prefix, noise)


def fmt(values: list[float]) -> str:
    if not values:
        return "not run yet"
    return f"{np.mean(values):.2f} (±{np.std(values):.2f}, n={len(values)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", type=Path, nargs="+", help="runs folders (runs/la2018) or compare cases.csv files")
    parser.add_argument("--table", choices=sorted(TABLES), default="1", help="the paper's table to set ours beside")
    parser.add_argument("--seeds", type=int, nargs="+", help="only these seeds (the long table's grid has 0-4, "
                        "reference.yaml's rows 0-9)")
    args = parser.parse_args()
    print("| noise | method | Dice [%] ours | Dice [%] paper | HD95 [mm] ours | HD95 [mm] paper |")
    print("|---|---|---|---|---|---|")
    same_as = same_as_rows(args.sources)
    for (noise, prefix, label), paper in TABLES[args.table].items():
        own = row_runs(args.sources, prefix, noise, args.seeds)
        dice, hd95 = run_means(own)
        if not dice and "superseded" in label:
            continue  # kept for the runs it has; a superseded setting is not run again
        if prefix in same_as and own:  # a row that trains as another: its twin's runs, if its own agree
            twin_prefix, why = same_as[prefix]
            twin = row_runs(args.sources, twin_prefix, noise, args.seeds)
            if (seeds := twin_seeds(own, twin, prefix, twin_prefix, noise)) is not None:
                label = f"{label} = {twin_prefix}'s runs ({why}; own runs identical: seed {', '.join(map(str, seeds))})"
                dice, hd95 = run_means(twin)
            else:
                print(f"{prefix} ({noise}): its runs do not all score as {twin_prefix}'s; its own shown",
                      file=sys.stderr)
        p_dice, p_hd = ("-", "-") if paper is None else (f"{paper[0]:.2f}", f"{paper[1]:.2f}")
        print(f"| {NOISE_NAMES[noise]} | {label} | {fmt(dice)} | {p_dice} | {fmt(hd95)} | {p_hd} |")


if __name__ == "__main__":
    main()
