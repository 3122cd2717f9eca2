"""An experiment file and its grid: variants x noise kinds x ratios x seeds, each a ``TrainConfig``.

``svldrl compare`` (``compare.py``) trains the grid and writes the tables; this module only reads
the file and lays out the runs, in a fixed order whose index is what ``compare --list`` prints and
``compare --index`` (a cluster job array) takes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from svldrl.config import TrainConfig, merge, parse_overrides, resolve_config
from svldrl.experiments.methods import method_info
from svldrl.experiments.runs import METRICS_FILE
from svldrl.experiments.tables import noise_label
from svldrl.experiments.trusted import pin_trusted_cases

EXPERIMENT_KEYS = {
    "name",
    "data",
    "preset",
    "config",
    "set",
    "methods",
    "noise",
    "ratios",
    "seeds",
    "clean_baseline",
    "clean_methods",
    "runs_root",
    "out",
    "description",
    "carry_from",
}


METHOD_ENTRY_KEYS = {"method", "label", "set", "superseded", "same_as"}


@dataclass(frozen=True)
class Variant:
    """A row of the tables: a method with optional configuration changes (e.g. 'SVL-DRL w/o WS')."""

    method: str
    label: str
    overrides: tuple[str, ...] = ()
    superseded: str = ""
    """Why this row is kept only for the runs it has (a setting replaced by a newer default): its
    unfinished runs keep their grid index but are not trained (``--index I --retrain`` trains one),
    and the tables say it in a footnote. Empty: a current row."""
    same_as: str = ""
    """The label of another row of the file that this row trains weight for weight as, for the reason
    in ``same_as_why`` (RSF-assisted ADELE, which only vets ADELE's corrections, where ADELE makes
    none). Like a superseded row, its unfinished runs keep their grid index but are not trained; the
    runs it has are a check of the claim: the tables compare them, seed by seed, with that row's and
    are not written if one scores differently (``grid_outputs.same_as_checks``). Empty: no such row."""
    same_as_why: str = ""

    @property
    def untrained_why(self) -> str:
        """Why the row's unfinished runs are not trained: "" for a row the grid trains."""
        if self.superseded:
            return f"superseded ({self.superseded}): the row is kept for the runs it has"
        if self.same_as:
            return f"trains as {self.same_as} ({self.same_as_why}): the runs it has check that"
        return ""

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.label.lower()).strip("-")


@dataclass(frozen=True)
class Experiment:
    name: str
    data: Path
    preset: str
    config: dict[str, Any]
    overrides: tuple[str, ...]
    variants: tuple[Variant, ...]
    noise: tuple[str, ...]
    ratios: tuple[float, ...]
    seeds: tuple[int, ...]
    clean_methods: tuple[str, ...]
    """Methods (names or labels) also trained on clean labels, the 0 % point of Fig. 6."""
    runs_root: Path
    out: Path
    description: str = ""
    source: Path = field(default=Path("."))
    carry_from: tuple[Path, ...] = ()
    """Other experiment files whose committed results may stand in for this grid's runs of the same
    name and settings (``carry.shared_carry``), e.g. the reference rows Table 1 shares with reference.yaml."""
    file_runs_root: Path | None = None
    """The file's own ``runs_root``, whatever ``--runs-root`` replaced it with: two files that name the
    same one share run folders (``carry.shared_carry``)."""


def load_experiment(path: Path, runs_root: Path | None = None) -> Experiment:
    """Read and check an experiment file (paths are relative to the file's folder).

    ``runs_root`` replaces the file's ``runs_root`` (``compare --runs-root``), so that a long grid can
    live outside a work tree that may be replaced between sessions.
    """
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot read experiment ({exc})") from exc
    unknown = set(raw) - EXPERIMENT_KEYS
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}; valid: {sorted(EXPERIMENT_KEYS)}")
    if "data" not in raw or "methods" not in raw:
        raise ValueError(f"{path}: 'data' and 'methods' are required")
    base = path.parent
    name = str(raw.get("name", path.stem))
    file_runs_root = _relative(base, raw.get("runs_root", "runs"))
    return Experiment(
        name=name,
        data=_relative(base, raw["data"]),
        preset=str(raw.get("preset", "cpu")),
        config=dict(raw.get("config") or {}),
        overrides=tuple(raw.get("set") or ()),
        variants=_check_same_as(_unique_rows(tuple(_variant(v, path, raw) for v in raw["methods"]), path), path),
        noise=tuple(raw.get("noise") or ("mt",)),
        ratios=tuple(float(r) for r in raw.get("ratios") or (0.5,)),
        seeds=tuple(int(s) for s in raw.get("seeds") or (0,)),
        clean_methods=_clean_methods(raw, path),
        runs_root=runs_root.resolve() if runs_root is not None else file_runs_root,
        out=_relative(base, raw.get("out", f"results/{name}")),
        description=str(raw.get("description", "")),
        source=path,
        carry_from=_carry_from(raw, path),
        file_runs_root=file_runs_root,
    )


def _carry_from(raw: dict[str, Any], path: Path) -> tuple[Path, ...]:
    """``carry_from: [reference.yaml]``: experiment files (relative to this one) that must exist now,
    not when a table is written hours later."""
    value = raw.get("carry_from") or ()
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{path}: carry_from must be a list of experiment files, got {value!r}")
    files = tuple(_relative(path.parent, v) for v in value)
    for file in files:
        if not file.is_file():
            raise ValueError(f"{path}: carry_from: {file} is not an experiment file")
        if file == path.resolve():
            raise ValueError(f"{path}: carry_from names the file itself; its own results are carried anyway")
    return files


def _clean_methods(raw: dict[str, Any], path: Path) -> tuple[str, ...]:
    """``clean_methods: [baseline, svl-drl]``; ``clean_baseline: true`` is short for ``[baseline]``."""
    methods = raw.get("clean_methods")
    if methods is None:
        return ("baseline",) if raw.get("clean_baseline", False) else ()
    if isinstance(methods, str) or not all(isinstance(m, str) for m in methods):
        raise ValueError(f"{path}: clean_methods must be a list of method names or labels, got {methods!r}")
    return tuple(methods)


def _relative(base: Path, value: str) -> Path:
    p = Path(value)
    return p if p.is_absolute() else (base / p).resolve()


def _variant(entry: Any, path: Path, raw: dict[str, Any]) -> Variant:
    """A method entry of the file; its default label knows the method's options and whether the
    runs have trusted cases (MTCL is an oracle without them)."""
    from svldrl.training import METHODS

    if isinstance(entry, str):
        cfg = _entry_config(raw, ())
        return Variant(METHODS.canonical(entry), method_info(entry, cfg.method_options, _has_trusted(cfg))["label"])
    if isinstance(entry, dict) and "method" in entry:
        unknown = set(entry) - METHOD_ENTRY_KEYS
        if unknown:
            raise ValueError(f"{path}: method entry {entry['method']!r}: unknown keys {sorted(unknown)}; "
                             f"valid: {sorted(METHOD_ENTRY_KEYS)}")
        superseded = entry.get("superseded", "")
        if not isinstance(superseded, str) or ("superseded" in entry and not superseded.strip()):
            raise ValueError(f"{path}: method entry {entry['method']!r}: superseded must say why, in words "
                             f"(e.g. \"defaults v4; v5 changed the curve\"), got {superseded!r}")
        method = METHODS.canonical(entry["method"])
        overrides = tuple(entry.get("set") or ())
        cfg = _entry_config(raw, overrides)
        label = entry.get("label") or method_info(method, cfg.method_options, _has_trusted(cfg))["label"]
        same_as, why = _same_as(entry, path)
        if same_as and superseded.strip():
            raise ValueError(f"{path}: method entry {entry['method']!r}: a row is either superseded or same_as "
                             "another, not both")
        return Variant(method, label, overrides, superseded.strip(), same_as, why)
    raise ValueError(f"{path}: a method entry is a name or a mapping with 'method' (and 'label', 'set', "
                     f"'superseded', 'same_as'), got {entry!r}")


def _same_as(entry: dict[str, Any], path: Path) -> tuple[str, str]:
    """``same_as: {row: ADELE, why: "..."}``: the other row's label and the reason, both required."""
    if "same_as" not in entry:
        return "", ""
    value = entry["same_as"]
    if (not isinstance(value, dict) or set(value) != {"row", "why"}
            or not all(isinstance(v, str) and v.strip() for v in value.values())):
        raise ValueError(f"{path}: method entry {entry['method']!r}: same_as must be {{row: <another row's "
                         f"label>, why: <why its runs are that row's, in words>}}, got {value!r}")
    return value["row"].strip(), value["why"].strip()


def _unique_rows(variants: tuple[Variant, ...], path: Path) -> tuple[Variant, ...]:
    """Two rows may not share a slug: their runs would share run folders (e.g. labels "B x" and "B-x")."""
    seen: dict[str, str] = {}
    for v in variants:
        if v.slug in seen:
            raise ValueError(f"{path}: rows {seen[v.slug]!r} and {v.label!r} would share run folders "
                             f"({v.slug}__...); give one another label")
        seen[v.slug] = v.label
    return variants


def _check_same_as(variants: tuple[Variant, ...], path: Path) -> tuple[Variant, ...]:
    """A same_as row names one other row of the file (by label or slug) that is itself trained; the
    name is replaced by that row's label, the one name the tables and scripts then match on."""
    resolved = []
    for v in variants:
        if not v.same_as:
            resolved.append(v)
            continue
        targets = [x for x in variants if v.same_as in (x.label, x.slug)]
        if len(targets) != 1 or targets[0] is v or targets[0].same_as or targets[0].superseded:
            raise ValueError(f"{path}: row {v.label!r}: same_as names {v.same_as!r}, which is not one other "
                             f"trained row of the file; rows: {[x.label for x in variants]}")
        resolved.append(replace(v, same_as=targets[0].label))
    return tuple(resolved)


def _entry_config(raw: dict[str, Any], overrides: tuple[str, ...]) -> TrainConfig:
    """The configuration a method entry of an experiment file trains with (before noise and seed)."""
    cfg = resolve_config(str(raw.get("preset", "cpu")))
    if raw.get("config"):
        cfg = merge(cfg, dict(raw["config"]))
    return merge(cfg, parse_overrides(list(raw.get("set") or ()) + list(overrides)))


def _has_trusted(cfg: TrainConfig) -> bool:
    return bool(cfg.data.trusted_cases or cfg.data.trusted_count)


@dataclass(frozen=True)
class GridRun:
    variant: Variant
    noise: str
    ratio: float
    seed: int
    cfg: TrainConfig

    @property
    def group(self) -> str:
        return noise_label(self.noise, self.ratio)

    @property
    def uses_oracle(self) -> bool:
        """Whether this run reads the noise manifest (an oracle row), whatever label the experiment gave it."""
        return bool(method_info(self.variant.method, self.cfg.method_options, _has_trusted(self.cfg))["oracle"])

    def run_dir(self, exp: Experiment, dataset_name: str) -> Path:
        noise = noise_slug(self.noise, self.ratio)
        return exp.runs_root / dataset_name / f"{self.variant.slug}__{noise}__seed{self.seed}"


def noise_slug(noise: str, ratio: float) -> str:
    """The noise part of a grid run's folder name: ``clean`` or ``sfda-0.5``."""
    return "clean" if noise == "none" else f"{noise}-{ratio:g}"


def fill_placeholders(cfg: TrainConfig, exp: Experiment, noise: str, ratio: float, seed: int) -> TrainConfig:
    """``{runs_root}``, ``{noise}`` and ``{seed}`` in string method options, filled in for one grid run.

    Why: a method that reads another run of the grid (``method_options.teacher_run``, the
    ``trusted-only`` run of the same seed and noise) names it once for every run, e.g.
    ``{runs_root}/la2018/trusted-only-6__{noise}__seed{seed}``.
    """
    values = {"runs_root": str(exp.runs_root), "noise": noise_slug(noise, ratio), "seed": seed}
    filled = {}
    for key, value in cfg.method_options.items():
        if isinstance(value, str) and "{" in value:
            try:
                value = value.format(**values)
            except (KeyError, IndexError, ValueError, AttributeError) as exc:
                raise ValueError(f"{exp.source}: method_options.{key} {value!r}: only {{runs_root}}, {{noise}} and "
                                 f"{{seed}} can be filled in ({exc})") from None
        filled[key] = value
    return replace(cfg, method_options=filled)


def waits_for(cfg: TrainConfig) -> str | None:
    """The unfinished run this run must wait for (its teacher run), or None."""
    teacher = cfg.method_options.get("teacher_run")
    return teacher if teacher and not (Path(teacher) / METRICS_FILE).exists() else None


def grid(exp: Experiment) -> list[GridRun]:
    """Every run of the experiment, in a stable order (the clean row first).

    ``noise: [none, ...]`` trains every method on clean labels; ``clean_methods`` adds a clean row
    for the methods it names only.
    """
    combos = [(n, r) for n in exp.noise for r in exp.ratios]
    clean_row = bool(exp.clean_methods) and "none" not in exp.noise
    if exp.clean_methods:
        known = {v.label for v in exp.variants} | {v.method for v in exp.variants if not v.overrides}
        if missing := sorted(set(exp.clean_methods) - known):
            raise ValueError(f"{exp.source}: clean_methods {missing} are not among the methods of the experiment")
    if clean_row:
        combos = [("none", 0.0)] + combos
    runs, seen = [], set()
    for noise, ratio in combos:
        ratio = 0.0 if noise == "none" else ratio
        for variant in exp.variants:
            if noise == "none" and clean_row and not _in_clean_row(variant, exp.clean_methods):
                continue
            for seed in exp.seeds:
                if (key := (variant, noise, ratio, seed)) in seen:
                    continue
                seen.add(key)
                runs.append(GridRun(variant, noise, ratio, seed, _config(exp, variant, noise, ratio, seed)))
    return runs


def _in_clean_row(variant: Variant, clean_methods: tuple[str, ...]) -> bool:
    return variant.label in clean_methods or (not variant.overrides and variant.method in clean_methods)


def _config(exp: Experiment, variant: Variant, noise: str, ratio: float, seed: int) -> TrainConfig:
    cfg = resolve_config(exp.preset)
    if exp.config:
        cfg = merge(cfg, exp.config)
    cfg = merge(cfg, parse_overrides(list(exp.overrides) + list(variant.overrides)))
    cfg = pin_trusted_cases(cfg, exp.source.parent)  # '@file' relative to the experiment file
    cfg = fill_placeholders(cfg, exp, noise, ratio, seed)
    return replace(cfg, method=variant.method, seed=seed, noise=replace(cfg.noise, kind=noise, ratio=ratio, seed=seed))
