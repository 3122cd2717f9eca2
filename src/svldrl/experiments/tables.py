"""Paper-style result tables (Tables 1-2 and 5): rows are methods, columns Dice, IoU, HD95, ASD.

Dice and IoU are shown in %, HD95 and ASD in mm, each as ``mean (± std)``. Every table says over
what the std is taken (cases of one run, or seeds of a grid) in its caption, and carries the
footnotes of oracle methods and reconstructions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

COLUMNS = (("dice", "Dice [%]", 100.0), ("iou", "IoU [%]", 100.0), ("hd95", "HD95 [mm]", 1.0), ("asd", "ASD [mm]", 1.0))


@dataclass
class TableRow:
    """One row: a group (e.g. 'MT-Noise 50%'), a method label, and mean/std per metric (fractions, mm)."""

    group: str
    method: str
    mean: Mapping[str, float]
    std: Mapping[str, float]
    n: int = 1


@dataclass
class Table:
    rows: list[TableRow]
    caption: str = ""
    footnotes: list[str] = field(default_factory=list)
    seeds: int = 0
    """The grid's seed count when the std is over seeds: a row with fewer finished runs says how many
    (``n=2``), and a row of one run shows no std. Why: a grid tabulated part-way (``--tables-only``)
    would otherwise print a one-run row's spread over test cases under a caption that says seeds."""

    def cells(self, row: TableRow) -> list[str]:
        if self.seeds > 1 and row.n < self.seeds:
            if row.n == 1:
                return [f"{row.mean[k] * scale:.2f} (n=1)" for k, _, scale in COLUMNS]
            return [f"{row.mean[k] * scale:.2f} (±{row.std[k] * scale:.2f}, n={row.n})" for k, _, scale in COLUMNS]
        return [f"{row.mean[k] * scale:.2f} (±{row.std[k] * scale:.2f})" for k, _, scale in COLUMNS]

    def best(self, group: str) -> dict[str, str]:
        """The best method per metric within a group (higher Dice/IoU, lower distances)."""
        rows = [r for r in self.rows if r.group == group]
        out = {}
        for key, _, _ in COLUMNS:
            pick = max if key in ("dice", "iou") else min
            out[key] = pick(rows, key=lambda r, k=key: r.mean[k]).method
        return out

    def to_markdown(self) -> str:
        header = "| noise | method | " + " | ".join(title for _, title, _ in COLUMNS) + " |"
        lines = [header, "|" + "---|" * (len(COLUMNS) + 2)]
        for group in dict.fromkeys(r.group for r in self.rows):
            best = self.best(group)
            for row in (r for r in self.rows if r.group == group):
                cells = [
                    f"**{c}**" if best[k] == row.method and len(self._group(group)) > 1 else c
                    for c, (k, _, _) in zip(self.cells(row), COLUMNS, strict=True)
                ]
                lines.append(f"| {group} | {row.method} | " + " | ".join(cells) + " |")
        text = "\n".join(lines)
        if self.caption:
            text = f"{self.caption}\n\n{text}"
        if self.footnotes:
            text += "\n\n" + "\n".join(f"{i + 1}. {note}" for i, note in enumerate(self.footnotes))
        return text

    def _group(self, group: str) -> list[TableRow]:
        return [r for r in self.rows if r.group == group]

    def to_csv_rows(self) -> list[dict[str, Any]]:
        out = []
        for row in self.rows:
            item: dict[str, Any] = {"noise": row.group, "method": row.method, "n": row.n}
            no_spread = self.seeds > 1 and row.n == 1  # one run of a seeds table: no std over seeds, not 0
            for key, _, scale in COLUMNS:
                item[f"{key}_mean"] = round(row.mean[key] * scale, 4)
                item[f"{key}_std"] = "" if no_spread else round(row.std[key] * scale, 4)
            out.append(item)
        return out

    def to_latex(self) -> str:
        cols = " & ".join(title.replace("%", r"\%") for _, title, _ in COLUMNS)
        lines = [
            r"\begin{table}[t]",
            r"\centering",
            r"\begin{tabular}{ll" + "c" * len(COLUMNS) + "}",
            r"\toprule",
            f"Noise & Method & {cols} \\\\",
            r"\midrule",
        ]
        groups = list(dict.fromkeys(r.group for r in self.rows))
        for gi, group in enumerate(groups):
            best = self.best(group)
            for row in self._group(group):
                cells = []
                for cell, (key, _, _) in zip(self.cells(row), COLUMNS, strict=True):
                    cell = cell.replace("±", r"$\pm$")
                    cells.append(
                        rf"\textbf{{{cell}}}" if best[key] == row.method and len(self._group(group)) > 1 else cell
                    )
                lines.append(f"{_tex(group)} & {_tex(row.method)} & " + " & ".join(cells) + r" \\")
            if gi < len(groups) - 1:
                lines.append(r"\midrule")
        lines += [r"\bottomrule", r"\end{tabular}"]
        if self.caption:
            lines.append(rf"\caption{{{_tex(self.caption)}}}")
        lines.append(r"\end{table}")
        if self.footnotes:
            lines += [f"% {i + 1}. {note}" for i, note in enumerate(self.footnotes)]
        return "\n".join(lines)


def _tex(text: str) -> str:
    return text.replace("%", r"\%").replace("_", r"\_").replace("&", r"\&")


CASE_WORDS = {"test": "test cases", "val": "validation cases", "all": "cases", "chosen": "chosen cases"}
"""How a summary's caption names the cases it was taken over (``metrics.json`` ``evaluated_on``)."""


def noise_label(kind: str, ratio: float) -> str:
    """The row group of a run: ``clean`` or ``MT-Noise 50%`` (as in the paper's tables)."""
    if kind == "none":
        return "clean"
    name = kind.upper() if kind in ("mt", "sfda") else kind.capitalize()  # acronyms as the paper writes them
    return f"{name}-Noise {ratio:.0%}"


def summary_table(summaries: Mapping[str, Mapping[str, Any]], group: str = "", cases: str = "test") -> str:
    """A quick Markdown table from ``{label: Summary.to_dict()}`` (mean over classes, std over cases).

    ``group`` fills the noise column; ``cases`` names what the std is over (a key of ``CASE_WORDS``,
    e.g. ``"val"`` when a run without a test set was scored on its validation cases).
    """
    rows = [TableRow(group, label, s["mean"]["mean"], s["std"]["mean"], s["n_cases"]) for label, s in summaries.items()]
    n = ", ".join(sorted({str(r.n) for r in rows}))
    return Table(rows, caption=f"mean (± std over {n} {CASE_WORDS.get(cases, cases)})").to_markdown()


def rows_from_runs(runs: Sequence[Mapping[str, Any]], group_of, label_of, over_seeds: bool = False) -> list[TableRow]:
    """Aggregate finished runs' ``metrics.json`` into rows: mean over seeds of each run's case mean.

    With several seeds the std is over seeds (of the per-run means); a row of one run has the std
    over its test cases, unless ``over_seeds`` (a grid of several seeds): then it has none (0, n=1),
    so that no row of a table shows a spread of another kind than its caption names.
    """
    import numpy as np

    grouped: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for run in runs:
        grouped.setdefault((group_of(run), label_of(run)), []).append(run)
    rows = []
    for (group, label), members in grouped.items():
        if len(members) == 1:
            summary = members[0]["summary"]
            std = {k: 0.0 for k in summary["std"]["mean"]} if over_seeds else summary["std"]["mean"]
            rows.append(TableRow(group, label, summary["mean"]["mean"], std, 1))
            continue
        keys = [k for k, _, _ in COLUMNS]
        values = {k: np.array([m["summary"]["mean"]["mean"][k] for m in members]) for k in keys}
        rows.append(
            TableRow(
                group,
                label,
                {k: float(v.mean()) for k, v in values.items()},
                {k: float(v.std()) for k, v in values.items()},
                len(members),
            )
        )
    return rows
