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


def parameter_table(preset: str = "cpu", overrides: list[str] | None = None, in_channels: int = 1) -> str:
    """Each method's model size in a configuration: what inference runs, and the RL heads beside it.

    Why: a method's claim of a smaller or larger model (PixelDRL-MG's "fewer parameters", the
    cost of SVL-DRL's three decoders) is checked on the module ``svldrl predict`` loads
    (``inference_network``), built for ``in_channels`` image channels and a binary label as LA's.
    Networks a method trains only on the side (Co-Teaching's peer, JCAS's affinity head and
    matrices, a mean teacher) are not in it; ``value + policy`` are counted whether or not the
    method trains them (the baselines build and ignore them).
    """
    from svldrl.config import resolve_config
    from svldrl.data import LabelSpec
    from svldrl.models import parameter_counts
    from svldrl.training import METHODS

    lines = [f"{'method':18s} {'at inference':>14s} {'segmentation':>14s} {'value + policy':>15s}"]
    for name in METHODS.names():
        cfg = resolve_config(preset, None, overrides, method=name)
        net = METHODS.get(name).inference_network(cfg, in_channels, LabelSpec())
        counts = parameter_counts(net, refine=cfg.rl.refine_steps > 0)
        heads = counts.get("value", 0) + counts.get("policy", 0)
        segmentation = counts.get("segmentation", counts["total"])
        lines.append(f"{name:18s} {counts['inference']:>14,d} {segmentation:>14,d} {heads:>15,d}")
    return "\n".join(lines)


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


def method_detail(name: str, overrides: list[str] | None = None) -> str:
    """One method in full, for ``svldrl methods NAME``: its description, note, and each ``method_options`` key
    with its default (or the value ``overrides`` give) and meaning (``--set method_options.KEY=VALUE``)."""
    from svldrl.training.methods import method_option_docs

    info = method_info(name)
    lines = [f"{info['name']} ({info['label']}): {info['description']}"]
    if info["footnote"]:
        lines.append(f"note: {info['footnote']}")
    rows = method_option_docs(name, overrides)
    if not rows:
        lines.append("method_options: none")
        return "\n".join(lines)
    lines.append("method_options (--set method_options.KEY=VALUE): key, value (default unless set), meaning")
    width = max(len(key) for key, _, _ in rows)
    for key, value, doc in rows:
        shown = repr(value) if isinstance(value, str) else str(value)
        lines.append(f"  {key:{width}s}  {shown:12s}  {doc}")
    return "\n".join(lines)


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
