"""Paired comparison of two methods on the same held-out cases, seeds and noisy labels.

Why: the spread over seeds in the tables mixes two things, the training seed and the noise draw
(seed k corrupts other cases than seed k+1), and every method of a seed shares both. The fair
question is "on the same case, same seed, same labels, which method scores higher?". This prints
the mean per-run difference and a Wilcoxon signed-rank test over all (seed, case) pairs.

Read the p-value with care: it treats the cases as independent, but the cases of one run share
that run's luck. Two replicates of the same run (same seed and labels, only the floating-point
summation order changed by the thread count) differed by +3.4 Dice points on LA, higher on 19 of
20 cases, "p = 0.0003" (docs/results.md, "Run-to-run spread"). The unit of replication is the run:
a difference is real only when the per-seed differences exceed that spread. With three or more
seeds the script therefore also prints run-level statistics: the mean of the per-seed differences,
its 95 % t interval and an exact Wilcoxon test over the seeds (one number per seed).

    python experiments/la/paired.py runs/la2018 baseline svl-drl --noise mt-0.5
    python experiments/la/paired.py docs/results/la-table1/cases.csv baseline clcs --noise mt-0.5
    python experiments/la/paired.py docs/results/la-reference/cases.csv trusted-only-6 teacher-correction-... \
        --noise sfda-0.5 --also docs/results/la-teacher-direction-long/cases.csv   # rows of several grids
    python experiments/la/paired.py runs/replicates baseline__mt-0.5__seed0__threads1 \
        baseline__mt-0.5__seed0__threads2 --exact      # two replicates of one run: the null

The source is a runs folder (each run's metrics.json) or the ``cases.csv`` that ``svldrl compare``
writes next to its tables, which is committed and so outlives the run folders. ``--metric hd95``
(or ``iou``, ``asd``) compares that score instead of Dice (HD95 and ASD in mm: lower is better).
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import t as student_t
from scipy.stats import wilcoxon

METRICS = {"dice": ("Dice points", 100.0), "iou": ("IoU points", 100.0), "hd95": ("mm of HD95", 1.0),
           "asd": ("mm of ASD", 1.0)}
"""Each score: how a difference is named, and the factor from stored values to those units."""


def per_case_dice(run_dir: Path, metric: str = "dice") -> dict[str, float]:
    """Case id -> mean Dice (or ``metric``) over the foreground classes, from the run's metrics.json."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {case: float(values["mean"][metric]) for case, values in metrics["per_case"].items()}


def load_runs(source: Path, metric: str = "dice") -> dict[str, dict[str, float]]:
    """Run name -> (case id -> mean Dice or ``metric``), from a runs folder or from a compare ``cases.csv``."""
    if source.is_file():
        runs: dict[str, dict[str, float]] = {}
        with source.open(newline="") as fh:
            for row in csv.DictReader(fh):
                if row["class"] == "mean":
                    runs.setdefault(row["run"], {})[row["case_id"]] = float(row[metric])
        return runs
    return {m.parent.name: per_case_dice(m.parent, metric) for m in sorted(source.glob("*/metrics.json"))}


REPO = Path(__file__).resolve().parents[2]
"""``grid.json`` names its experiment file relative to the repository root."""


def source_experiment(source: Path) -> Any | None:
    """The experiment file that made a ``cases.csv`` (named by the ``grid.json`` beside it), loaded; None
    for a runs folder or a csv without ``grid.json``."""
    import svldrl.baselines  # noqa: F401  (registers the methods the experiment names)
    from svldrl.experiments.grid import load_experiment

    record = source.parent / "grid.json" if source.is_file() else None
    if record is None or not record.is_file():
        return None
    return load_experiment(REPO / json.loads(record.read_text())["experiment"])


def same_as_rows(sources: list[Path]) -> dict[str, tuple[str, str]]:
    """Rows that train weight for weight as another row (``same_as`` in a source's experiment file):
    run-name prefix -> (the other row's prefix, why)."""
    found: dict[str, tuple[str, str]] = {}
    for exp in filter(None, map(source_experiment, sources)):
        slugs = {v.label: v.slug for v in exp.variants}  # the loader resolved same_as to the other row's label
        found.update({v.slug: (slugs[v.same_as], v.same_as_why) for v in exp.variants if v.same_as})
    return found


def seeds_scored_as_twin(
    runs: dict[str, dict[str, float]], prefix: str, twin: str, noise: str
) -> list[int] | None:
    """The seeds of row ``prefix`` (under ``noise``) if every run of it scores case for case as the run of
    the same seed of row ``twin``; None if it has no run or one differs (or has no twin run)."""
    seeds = []
    for name, cases in runs.items():
        head, sep, seed = name.partition(f"__{noise}__seed")
        if head != prefix or not sep:
            continue
        other = runs.get(f"{twin}__{noise}__seed{seed}")
        if other is None or sorted(other) != sorted(cases) or not all(
                np.isclose(cases[c], other[c], rtol=1e-9, atol=1e-12, equal_nan=True) for c in cases):
            return None
        seeds.append(int(seed))
    return sorted(seeds) or None


def seeds_scored_as_twin_both(
    dice: dict[str, dict[str, float]], hd95: dict[str, dict[str, float]], prefix: str, twin: str, noise: str
) -> list[int] | None:
    """``seeds_scored_as_twin`` in Dice and in HD95 alike, else None."""
    seeds = seeds_scored_as_twin(dice, prefix, twin, noise)
    return seeds if seeds is not None and seeds_scored_as_twin(hd95, prefix, twin, noise) == seeds else None


def load_sources(
    sources: list[Path], metric: str = "dice", prefixes: tuple[str, ...] | None = None
) -> dict[str, dict[str, float]]:
    """The runs of several sources together (``--also``), refusing a run two sources score differently.

    Why: a row grown over sessions has its seeds in several grids' ``cases.csv`` (seeds 0-4 in one
    file, 5-9 in another), and the reference rows in a third. A run name that two sources share must
    carry the same per-case scores (a grid's reference rows copied beside its own); if they differ,
    the two are different runs under one name (a retrained teacher, say), and pairing either would
    be a silent choice. ``prefixes``: only runs whose names start with one of them are read (the
    methods compared), so a clash elsewhere in the files does not stop a comparison it cannot touch.
    """
    runs: dict[str, dict[str, float]] = {}
    origin: dict[str, Path] = {}
    for source in sources:
        if not source.exists():
            raise SystemExit(f"{source}: no such runs folder or cases.csv")
        for name, cases in load_runs(source, metric).items():
            if prefixes is not None and not name.startswith(prefixes):
                continue
            if name in runs and runs[name] != cases:
                raise SystemExit(f"{name}: scored differently in {origin[name]} and {source}; pass only one of them")
            runs[name], origin[name] = cases, origin.get(name, source)
    return runs


def run_pairs(
    runs: dict[str, dict[str, float]], a: str, b: str, noise: str | None, noise_b: str | None = None
) -> list[tuple[str, str]]:
    """(run of a, run of b) for every seed both finished; with ``noise`` None, a and b are whole run names.

    ``noise_b``: b's noise part when it differs from a's (the clean baseline against a method on
    noisy labels, paired by seed).
    """
    if noise is None:
        return [(a, b)] if a in runs and b in runs else []
    names_a = sorted(n for n in runs if n.startswith(f"{a}__{noise}__seed"))
    prefix_a, prefix_b = f"{a}__{noise}__", f"{b}__{noise_b or noise}__"
    pairs = [(n, prefix_b + n[len(prefix_a) :]) for n in names_a]
    return [(name_a, name_b) for name_a, name_b in pairs if name_b in runs]


def paired(
    runs: dict[str, dict[str, float]], a: str, b: str, noise: str | None, noise_b: str | None = None,
    scale: float = 100.0,
) -> dict[str, float]:
    """Differences b - a (times ``scale``: Dice points by default) over every seed both runs finished."""
    diffs, per_seed = [], []
    for name_a, name_b in run_pairs(runs, a, b, noise, noise_b):
        da, db = runs[name_a], runs[name_b]
        if sorted(da) != sorted(db):
            raise SystemExit(f"{name_a} and {name_b} were scored on different cases")
        d = [scale * (db[c] - da[c]) for c in sorted(da)]
        diffs += d
        per_seed.append(float(np.mean(d)))
    if not diffs:
        raise SystemExit(f"no finished pairs {a} / {b} with noise {noise}")
    return {
        "seeds": len(per_seed),
        "pairs": len(diffs),
        "mean_diff": float(np.mean(diffs)),
        "per_seed": per_seed,
        "b_better": int(np.sum(np.array(diffs) > 0)),
        "p_wilcoxon": float(wilcoxon(diffs).pvalue),
    }


def run_level(per_seed: list[float]) -> dict[str, float] | None:
    """Mean per-seed difference, its 95 % t interval and an exact Wilcoxon p over seeds (None below 3 seeds).

    Why: each seed is one independent run (its own initialisation, patches and noise draw), so this
    is the test whose unit is the run, unlike the case-level one.
    """
    n = len(per_seed)
    if n < 3:
        return None
    d = np.asarray(per_seed, dtype=float)
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    half = float(student_t.ppf(0.975, n - 1)) * sd / np.sqrt(n)
    return {
        "n": n,
        "mean": mean,
        "sd": sd,
        "ci_low": mean - half,
        "ci_high": mean + half,
        "b_better": int(np.sum(d > 0)),
        "p_wilcoxon": float(wilcoxon(d, method="exact").pvalue),
    }


def compared_prefixes(a: str, b: str, noise: str, noise_b: str | None, exact: bool) -> tuple[str, ...]:
    """The run-name prefixes a comparison reads: its two methods under their noise parts only.

    Why the noise: two grids share the names of their reference rows (``baseline__sfda-0.5__seed0``)
    and, trained on two machines, may score one of them differently; an MT comparison must not be
    stopped by a clash among SFDA runs it never reads (``load_sources``).
    """
    if exact:
        return (a, b)
    return (f"{a}__{noise}__", f"{b}__{noise_b or noise}__")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="runs folder (runs/la2018) or a compare cases.csv")
    parser.add_argument("--also", type=Path, action="append", default=[], metavar="SOURCE",
                        help="another runs folder or cases.csv whose runs join the first's (repeatable)")
    parser.add_argument("a", help="run-name prefix of the reference method, e.g. baseline")
    parser.add_argument("b", help="run-name prefix of the compared method, e.g. svl-drl")
    parser.add_argument("--noise", default="mt-0.5", help="noise part of the run names: clean, mt-0.5, sfda-0.5, ...")
    parser.add_argument("--noise-b", help="b's noise part if not --noise's (e.g. clean baseline vs mt-0.5 runs)")
    parser.add_argument("--exact", action="store_true", help="a and b are whole run names (two replicates, say)")
    parser.add_argument("--metric", choices=sorted(METRICS), default="dice", help="the score compared (default dice)")
    args = parser.parse_args()
    unit, scale = METRICS[args.metric]
    wanted = compared_prefixes(args.a, args.b, args.noise, args.noise_b, args.exact)
    scores = load_sources([args.source, *args.also], args.metric, wanted)
    r = paired(scores, args.a, args.b, None if args.exact else args.noise, args.noise_b, scale)
    seeds = ", ".join(f"{d:+.2f}" for d in r["per_seed"])
    what = "exact" if args.exact else (f"{args.noise} vs {args.noise_b}" if args.noise_b else args.noise)
    print(
        f"{args.b} - {args.a} ({what}): {r['mean_diff']:+.2f} {unit} over {r['pairs']} (seed, case) pairs "
        f"[per seed: {seeds}]; {args.b} higher on {r['b_better']}/{r['pairs']}; "
        f"case-level Wilcoxon p = {r['p_wilcoxon']:.2g} (ignores run-to-run variation)"
    )
    runs = run_level(r["per_seed"])
    if runs is not None:
        print(
            f"run level ({runs['n']} seeds): {runs['mean']:+.2f} (sd {runs['sd']:.2f}, 95 % CI "
            f"{runs['ci_low']:+.2f} to {runs['ci_high']:+.2f}); {args.b} higher in {runs['b_better']}/{runs['n']} "
            f"seeds; exact Wilcoxon over seeds p = {runs['p_wilcoxon']:.2g}"
        )


if __name__ == "__main__":
    main()
