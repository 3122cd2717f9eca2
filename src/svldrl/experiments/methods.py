"""How methods are shown to people: names, oracle marks, reconstruction footnotes."""

from __future__ import annotations

from typing import Any


def method_info(name: str, method_options: dict[str, Any] | None = None, trusted: bool = False) -> dict[str, Any]:
    """Description, oracle flag, footnote and table label of a registered method (with these options,
    in a run with or without trusted cases: MTCL uses them instead of the noise manifest)."""
    from svldrl.training import METHODS

    cls = METHODS.get(name)
    canonical = METHODS.canonical(name)
    doc = (cls.__doc__ or "").strip().splitlines()
    description = getattr(cls, "DESCRIPTION", None) or (doc[0] if doc else canonical)
    if hasattr(cls, "table_label"):  # the baselines know whether their options make them oracles
        label = cls.table_label(method_options or {}, trusted)
    else:
        label = DISPLAY_NAMES.get(canonical, canonical)
    return {
        "name": canonical,
        "description": description,
        "oracle": label.endswith("(oracle)"),
        "label": label,
        "footnote": getattr(cls, "FOOTNOTE", None),
    }


DISPLAY_NAMES = {
    "baseline": "Baseline",
    "svl-drl": "SVL-DRL",
    "loss-correction": "Loss Correction",
    "co-teaching": "Co-Teaching",
    "mtcl": "MTCL",
    "adele": "ADELE",
    "jcas": "JCAS",
    "rsf-assisted": "RSF-Assisted",
    "clcs": "CLCS",
    "pixeldrl-mg": "PixelDRL-MG",
    "trusted-only": "Trusted only",
}
"""The names the paper's tables use."""


def method_table() -> str:
    from svldrl.training import METHODS

    lines = []
    for name in METHODS.names():
        info = method_info(name)
        flags = " [oracle]" if info["oracle"] else ""
        lines.append(f"{name:18s}{flags} {info['description']}")
        if info["footnote"]:
            lines.append(f"{'':18s} note: {info['footnote']}")
    return "\n".join(lines)
