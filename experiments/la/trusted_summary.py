"""One table per noise of every trusted-case row against the reference rows, paired by seed (issue 15).

Why a script and a spec file: issue 15's rows grew over many sessions and machines, so one row's ten
seeds sit in two grids' ``cases.csv`` (seeds 0-4 in one, 5-9 in another), and which reference run a
seed pairs with is a decision: under SFDA the noisy labels come from a source model trained on the
machine, so seeds 5-9 of the rows trained on the AVX2 machine saw other labels than the
``la-reference`` runs of those seeds and pair with ``la-baseline-seeds5-9``'s baselines instead
(docs/results.md, Sessions 12 and 28). ``trusted_summary.yaml`` writes each of those decisions down
once, with its reason; this script only reads the committed ``cases.csv`` files it names and
computes, for each row:

- its seeds and mean Dice over them (each run's mean over its held-out cases, in points);
- the paired difference to the noisy baseline and to ``trusted-only`` (the model trained on the
  trusted cases alone): mean per-seed difference, 95 % t interval over seeds, seeds higher
  (``paired.run_level``: the run is the unit);
- the share of the noisy-to-clean gap it recovers, with a percentile-bootstrap interval over seeds
  (``gap.gap_share``).

Each cell pairs over the seeds its two rows share; a cell over fewer seeds than the row says how
many.

    python experiments/la/trusted_summary.py experiments/la/trusted_summary.yaml
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gap import gap_share  # noqa: E402
from paired import load_runs, run_level  # noqa: E402

REFERENCES = ("clean", "noisy", "trusted")
"""The reference rows every table needs: clean-label baseline, noisy baseline, trusted-only."""


@dataclass(frozen=True)
class Part:
    """Some seeds of a row: the runs ``<run>__seed<k>`` of one ``cases.csv``, trained on label set ``labels``."""

    cases: Path
    run: str
    seeds: tuple[int, ...] | None = None
    labels: str = ""


Series = dict[tuple[int, str], dict[str, float]]
"""(seed, label set) -> case id -> mean Dice over the foreground classes (0-1). Label set "": the run
does not depend on which noisy labels were made (clean labels, the trusted cases alone, MT noise)."""


def parse_part(entry: dict[str, Any], results: Path, where: str) -> Part:
    """A spec entry ``{source, run, seeds, labels}``; ``source`` is a folder of ``results`` holding ``cases.csv``."""
    missing = {"source", "run"} - set(entry)
    if missing:
        raise SystemExit(f"{where}: entry {entry} lacks {', '.join(sorted(missing))}")
    seeds = entry.get("seeds")
    return Part(
        results / entry["source"] / "cases.csv",
        entry["run"],
        None if seeds is None else tuple(seeds),
        str(entry.get("labels", "")),
    )


def read_cases(path: Path, cache: dict[Path, dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Run name -> case id -> mean Dice, from a compare ``cases.csv`` (read once)."""
    if path not in cache:
        if not path.is_file():
            raise SystemExit(f"{path}: no such cases.csv")
        cache[path] = load_runs(path)
    return cache[path]


def load_series(parts: list[Part], cache: dict[Path, dict[str, dict[str, float]]], name: str) -> Series:
    """The runs of a row gathered from its parts; one seed given twice on one label set is an error."""
    series: Series = {}
    for part in parts:
        runs = read_cases(part.cases, cache)
        found = {int(run.rsplit("__seed", 1)[1]): cases for run, cases in runs.items()
                 if run.startswith(f"{part.run}__seed") and run.rsplit("__seed", 1)[1].isdigit()}  # fmt: skip
        if part.seeds is not None:
            absent = sorted(set(part.seeds) - set(found))
            if absent:
                raise SystemExit(f"{name}: {part.cases} has no run {part.run}__seed{absent[0]}")
            found = {s: found[s] for s in part.seeds}
        if not found:
            raise SystemExit(f"{name}: {part.cases} has no run {part.run}__seed*")
        twice = sorted(s for s in found if (s, part.labels) in series)
        if twice:
            raise SystemExit(f"{name}: seed {twice[0]} given twice ({part.cases}); name the seeds of each part")
        series.update({(s, part.labels): cases for s, cases in found.items()})
    return series


def one_run_per_seed(series: Series, name: str) -> None:
    """A compared row has one run per seed (a reference row may have one per label set)."""
    seeds = [seed for seed, _ in series]
    if len(seeds) != len(set(seeds)):
        raise SystemExit(f"{name}: a seed on two label sets; only a reference row may have that")


def partner(ref: Series, seed: int, labels: str) -> dict[str, float] | None:
    """The reference run that pairs with a run of ``seed`` on ``labels``: same seed, same label set, or
    either independent of the labels (""); None if there is none."""
    found = [cases for (s, lab), cases in ref.items() if s == seed and (lab == labels or "" in (lab, labels))]
    if len(found) > 1:
        raise SystemExit(f"seed {seed}: several reference runs could pair with it; name the label set of each part")
    return found[0] if found else None


def mean_points(cases: dict[str, float]) -> float:
    """A run's mean Dice over its cases, in points."""
    return 100.0 * float(np.mean(list(cases.values())))


def paired_diffs(row: Series, ref: Series, name: str) -> list[float]:
    """Per seed: mean over cases of (row - reference), in points, for every seed with a partner."""
    diffs = []
    for (seed, labels), cases in sorted(row.items()):
        other = partner(ref, seed, labels)
        if other is None:
            continue
        if sorted(cases) != sorted(other):
            raise SystemExit(f"{name}: seed {seed} scored on other cases than its reference")
        diffs.append(100.0 * float(np.mean([cases[c] - other[c] for c in cases])))
    return diffs


def per_label_set(row: Series, ref: Series, reference_row: bool) -> list[tuple[str, Series]]:
    """The reference to pair a row with: once per label set when the row is a reference row that does
    not depend on the labels (clean baseline, trusted-only) and the reference has several (the SFDA
    noisy baseline); else whole (``partner`` then refuses a run that does not say which set it saw)."""
    sets = by_label_set(ref)
    if reference_row and len(sets) > 1 and all(labels == "" for _, labels in row):
        return [(f"labels {lab}: ", part) for lab, part in sets]
    return [("", ref)]


def paired_cell(row: Series, ref: Series, name: str, reference_row: bool = False) -> str:
    """``+d (lo to hi), k/n higher`` over the seeds with a partner (fewer than the row's: says how many)."""
    cells = []
    for prefix, part in per_label_set(row, ref, reference_row):
        diffs = paired_diffs(row, part, name)
        if not diffs:
            cells.append(prefix + "no shared seed")
            continue
        fewer = f", {n_seeds(len(diffs))}" if len(diffs) < len(row) else ""
        stats = run_level(diffs)
        if stats is None:
            cells.append(f"{prefix}{np.mean(diffs):+.2f}{fewer}, {sum(d > 0 for d in diffs)}/{len(diffs)} higher")
        else:
            cells.append(f"{prefix}{stats['mean']:+.2f} ({stats['ci_low']:+.2f} to {stats['ci_high']:+.2f}){fewer}, "
                         f"{stats['b_better']}/{stats['n']} higher")  # fmt: skip
    return "; ".join(cells)


def n_seeds(n: int) -> str:
    """``1 seed``, ``3 seeds``: how many seeds a paired cell rests on, when fewer than the row has."""
    return f"{n} seed" if n == 1 else f"{n} seeds"


def gap_cell(row: Series, noisy: Series, clean: Series, reference_row: bool = False) -> str:
    """The share of the noisy-to-clean gap over the seeds with both partners, with its interval."""
    cells = []
    for prefix, part in per_label_set(row, noisy, reference_row):
        triples = []
        for (seed, labels), cases in sorted(row.items()):
            n, c = partner(part, seed, labels), partner(clean, seed, labels)
            if n is not None and c is not None:
                triples.append((mean_points(cases), mean_points(n), mean_points(c)))
        if len(triples) < 2:
            cells.append(prefix + "too few seeds")
            continue
        m, n, c = (np.array(column) for column in zip(*triples, strict=True))
        share, low, high = gap_share(m, n, c)
        fewer = f", {n_seeds(len(triples))}" if len(triples) < len(row) else ""
        cells.append(f"{prefix}{share:+.2f} ({low:+.2f} to {high:+.2f}){fewer}")
    return "; ".join(cells)


def seeds_text(series: Series) -> str:
    """``10 (0-9)``, or with label sets ``10 (0-4 A, 5-9 B)``."""
    groups: dict[str, list[int]] = {}
    for seed, labels in sorted(series):
        groups.setdefault(labels, []).append(seed)

    def span(seeds: list[int]) -> str:
        contiguous = seeds == list(range(seeds[0], seeds[-1] + 1)) and len(seeds) > 1
        return f"{seeds[0]}-{seeds[-1]}" if contiguous else ", ".join(map(str, seeds))

    parts = [span(s) + (f" {lab}" if lab else "") for lab, s in sorted(groups.items(), key=lambda g: g[1][0])]
    return f"{len(series)} ({'; '.join(parts)})"


def by_label_set(series: Series) -> list[tuple[str, Series]]:
    """A reference row split by label set, for display (one line each)."""
    sets = sorted({labels for _, labels in series})
    return [(lab, {k: v for k, v in series.items() if k[1] == lab}) for lab in sets]


def table_markdown(table: dict[str, Any], results: Path, cache: dict[Path, dict[str, dict[str, float]]]) -> str:
    """One noise's table: the reference rows, then each compared row, as Markdown; a focus row (the
    method the table is about) adds a column of its paired difference to every other row."""
    title = table.get("title", "table")
    refs_spec = table.get("references", {})
    missing = [r for r in REFERENCES if r not in refs_spec]
    if missing:
        raise SystemExit(f"{title}: references lack {', '.join(missing)}")
    refs = {r: load_series([parse_part(e, results, title) for e in refs_spec[r]], cache, f"{title}, {r}")
            for r in REFERENCES}  # fmt: skip
    for r in ("clean", "trusted"):
        one_run_per_seed(refs[r], f"{title}, {r}")
    names = {"clean": "Baseline, clean labels", "noisy": "Baseline, noisy labels", "trusted": "Trusted only"}
    shown: list[tuple[str, Series, str | None]] = []
    for r in REFERENCES:
        for labels, part in by_label_set(refs[r]):
            shown.append((names[r] + (f" (labels {labels})" if labels else ""), part, r))
    compared: dict[str, Series] = {}
    for row in table.get("rows", []):
        name = f"{title}, {row['label']}"
        compared[row["label"]] = load_series([parse_part(e, results, name) for e in row["parts"]], cache, name)
        one_run_per_seed(compared[row["label"]], name)
        shown.append((row["label"], compared[row["label"]], None))
    focus = table.get("focus")
    if focus is not None and focus not in compared:
        raise SystemExit(f"{title}: focus {focus!r} is not one of its rows")
    header = ["row", "seeds", "Dice [%]", "vs noisy baseline (95 % CI)", "vs trusted-only (95 % CI)",
              "gap share (95 % CI)"]  # fmt: skip
    if focus is not None:
        header.append(f"{focus} minus this row (95 % CI)")
    lines = [f"**{title}**", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, series, ref_name in shown:
        means = np.array([mean_points(c) for c in series.values()])
        spread = f" ± {means.std(ddof=1):.2f}" if len(means) > 1 else ""  # no spread from one seed
        cells = [label, seeds_text(series), f"{means.mean():.2f}{spread}"]
        is_ref = ref_name is not None
        cells.append("" if ref_name == "noisy" else paired_cell(series, refs["noisy"], label, is_ref))
        cells.append("" if ref_name == "trusted" else paired_cell(series, refs["trusted"], label, is_ref))
        cells.append(
            {"clean": "1", "noisy": "0"}.get(ref_name or "") or gap_cell(series, refs["noisy"], refs["clean"], is_ref)
        )
        if focus is not None:
            cells.append("" if label == focus else paired_cell(compared[focus], series, label))
        lines.append("| " + " | ".join(cells) + " |")
    notes = table.get("label_sets") or {}
    lines += [""] + [f"Labels {k}: {v}" for k, v in notes.items()] if notes else []
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", type=Path, help="the spec file, e.g. experiments/la/trusted_summary.yaml")
    parser.add_argument(
        "--results",
        type=Path,
        default=Path(__file__).resolve().parents[2] / "docs" / "results",
        help="the folder holding each source's cases.csv (default: docs/results)",
    )
    args = parser.parse_args()
    if not args.spec.is_file():
        raise SystemExit(f"{args.spec}: no such spec file")
    spec = yaml.safe_load(args.spec.read_text()) or {}
    tables = spec.get("tables")
    if not tables:
        raise SystemExit(f"{args.spec}: no 'tables' list")
    cache: dict[Path, dict[str, dict[str, float]]] = {}
    print("\n\n".join(table_markdown(t, args.results, cache) for t in tables))


if __name__ == "__main__":
    main()
