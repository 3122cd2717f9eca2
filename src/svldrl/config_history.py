"""What saved configurations meant: every default that changed, so old run folders keep their meaning.

A run folder is reused or resumed when its saved configuration equals the requested one. A key or
method option saved before its default changed meant the old default; ``with_legacy_values`` reads
a saved mapping with those old values written out, so it equals a request that pins them and
differs from one that takes today's defaults. ``config.py`` imports what it needs from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DefaultChange:
    """A method option whose default changed at ``version``: runs saved before it meant ``old``.

    ``methods`` are method names; ``rsf-assisted:adele`` is rsf-assisted with that correction base
    (it carries its base's options).
    """

    version: int
    methods: tuple[str, ...]
    option: str
    old: Any
    new: Any
    why: str


DEFAULT_CHANGES: tuple[DefaultChange, ...] = (
    DefaultChange(1, ("mtcl", "rsf-assisted:mtcl"), "ema_decay", 0.99, "auto",
                  "issue 16: the teacher keeps the reference's horizon as a share of the run"),
    DefaultChange(1, ("adele", "rsf-assisted:adele"), "curve_unit", "epoch", "pass",
                  "issue 16: one IoU point per pass over the data, the reference's unit"),
    DefaultChange(1, ("jcas",), "transition_lr_factor", 10.0, 1.0,
                  "issue 16: the matrices train at the base learning rate, as in the reference"),
    DefaultChange(2, ("jcas",), "coarse_factor", 8, 4,
                  "issue 16: 8^3 affinity cells of a 32^3 patch instead of 4^3"),
    DefaultChange(2, ("jcas",), "affinity_warmup", False, True,
                  "issue 16: the affinity head trains in the warmup, as the reference's first stage"),
    DefaultChange(3, ("adele", "rsf-assisted:adele"), "start_rule", "shifted", "reference",
                  "issue 16: when a class starts correction, as the reference's label_update_epoch and if_update"),
    DefaultChange(4, ("adele", "rsf-assisted:adele"), "correction_scales", None, (1.0,),
                  "issue 16: the correction predicts at one scale, as the 3D reference (9.4x less work)"),
    DefaultChange(4, ("adele", "rsf-assisted:adele"), "flips", True, False,
                  "issue 16: no flipped prediction in the correction, as the 3D reference"),
    DefaultChange(5, ("adele", "rsf-assisted:adele"), "curve_source", "patches", "volumes",
                  "issue 16: the IoU curve from the whole-volume predictions the correction uses, as the reference"),
    DefaultChange(5, ("adele", "rsf-assisted:adele"), "skip_flat_start", False, True,
                  "issue 16: the reference's if_update drops the leading points that rise by less than 0.1"),
    DefaultChange(6, ("jcas",), "volume_weight", 0.5, 0.0,
                  "issue 16: on LA the reference's minimum-volume term, not the data, sets the class matrix "
                  "(over-segmenting under SFDA); without it the matrix follows the data"),
)
"""Every change of a method option's default, oldest first.

Why: a run folder is reused or resumed when its saved configuration equals the requested one.
``method_options: {}`` saved before a change meant the old default; read as today's, ``compare``
would put runs of two settings in one row (or resume a run with another setting). A saved
configuration is therefore read with its version's defaults written out (``with_legacy_values``),
so it equals a request that pins the old value and differs from one that takes the new default.
Changing a default means adding an entry here, with the version one above the last."""

DEFAULTS_VERSION = max(change.version for change in DEFAULT_CHANGES)
"""The version of today's defaults, saved in every new run's ``config.yaml``."""


LEGACY_VALUES: dict[tuple[str, str], Any] = {("data", "sampler"): "per_case"}
"""Keys whose default changed: a configuration saved before the key existed meant this value.

Every other key was added with a default that keeps the old behaviour; these could not be (the
mixed-case batches of issue 14 are the new default), so a saved run without the key is read with
the value it was trained with, and resuming or reusing it stays exact."""


def _canonical_method(method: str) -> str:
    """The registered name of ``method`` (aliases resolved) when the registry knows it."""
    import svldrl.baselines  # noqa: F401  (registers the baselines and, through them, the trainers)
    from svldrl.registry import UnknownNameError
    from svldrl.training.methods import METHODS

    try:
        return METHODS.canonical(str(method))
    except UnknownNameError:  # not registered in this process, or not a method: compare as written
        return str(method).strip().lower().replace("_", "-")


def _changes_for(method: str, method_options: dict[str, Any]) -> list[DefaultChange]:
    name = _canonical_method(method)
    keys = {name}
    if name == "rsf-assisted":  # it carries the options of its correction base
        keys.add(f"{name}:{str(method_options.get('base', 'adele')).lower()}")
    return [change for change in DEFAULT_CHANGES if keys & set(change.methods)]


def with_version_defaults(data: dict[str, Any]) -> dict[str, Any]:
    """A saved mapping of an older ``defaults_version`` with the defaults of its version written out.

    A mapping without the key predates the versioning (version 0). The result is of today's
    version: it trains exactly what the saved run trained.
    """
    version = int(data.get("defaults_version", 0))
    if version == DEFAULTS_VERSION:
        return data
    if version > DEFAULTS_VERSION:
        raise ValueError(f"defaults_version {version} is newer than this svldrl's ({DEFAULTS_VERSION}); update svldrl")
    out = dict(data)
    options = dict(out.get("method_options") or {})
    for change in sorted(_changes_for(out.get("method", "svl-drl"), options), key=lambda c: c.version):
        if change.version > version:
            options.setdefault(change.option, change.old)  # the earliest later change knows what it meant
    out["method_options"] = options
    out["defaults_version"] = DEFAULTS_VERSION
    return out


def with_legacy_values(data: dict[str, Any]) -> dict[str, Any]:
    """A saved configuration mapping completed with ``LEGACY_VALUES`` for the keys it lacks, and the
    method-option defaults of its ``defaults_version`` written out."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for (section, key), value in LEGACY_VALUES.items():
        if isinstance(out.get(section), dict) and key not in out[section]:
            out[section][key] = value
    return with_version_defaults(out)
