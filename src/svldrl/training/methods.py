"""The ``METHODS`` registry: method name -> Trainer class (``svldrl train --method NAME``), and what
a method's options resolve to, by which two configurations are told to be the same run or not."""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any

from svldrl.config import TrainConfig, merge, settings_of
from svldrl.config_history import with_legacy_values
from svldrl.registry import Registry

if TYPE_CHECKING:
    from svldrl.training.trainer import Trainer

METHODS: Registry[type[Trainer]] = Registry("method")
"""Trainer classes by method name; the module defining a method registers it on import."""


def compared_settings(cfg: TrainConfig | dict[str, Any]) -> dict[str, Any]:
    """``settings_of(cfg)`` with the method's options resolved: every default written out.

    Why: ``method_options: {volume_weight: 0}`` and ``{}`` train the same JCAS once 0 is the default,
    so a run folder made with one is reused, and resumed, by a request with the other. A saved
    mapping first gets the defaults of its own version written out (``with_legacy_values``), so
    today's fill in only options unchanged since. Used by ``compare``'s and ``train``'s folder checks
    (``experiments/runs.py``) and by the trainer's resume check.
    """
    if isinstance(cfg, dict):
        cfg = merge(TrainConfig(), with_legacy_values(cfg))
    settings = settings_of(cfg)
    settings["method_options"] = resolved_method_options(cfg)
    return settings


def resolved_method_options(cfg: TrainConfig) -> dict[str, Any]:
    """``cfg.method_options`` completed with the defaults of ``cfg.method``, as its trainer parses them;
    options the method cannot parse (a typo, an option since removed) are returned as given."""
    given = dict(cfg.method_options)
    try:
        options = parsed_method_options(cfg)
    except (KeyError, ValueError, TypeError):
        return given
    if options is None:
        return given
    resolved = dataclasses.asdict(options) if dataclasses.is_dataclass(options) else dict(options)
    return json.loads(json.dumps(resolved, sort_keys=True, default=list))  # tuples and lists alike


def parsed_method_options(cfg: TrainConfig) -> Any:
    """``cfg.method_options`` as ``cfg.method``'s trainer parses them: its options dataclass (the baselines,
    SVL-DRL-T), a mapping with defaults (SVL-DRL, PixelDRL-MG), or None for a method without options.
    Bad keys or values raise as in training (``KeyError`` for an unknown method)."""
    import svldrl.baselines  # noqa: F401  (registers the methods)
    from svldrl.baselines.common import parse_method_options

    given = dict(cfg.method_options)
    cls: Any = METHODS.get(cfg.method)
    if hasattr(cls, "options_class"):
        return parse_method_options(cls.options_class(given), given, cfg.method)
    if hasattr(cls, "parse_options"):
        return cls.parse_options(cfg)
    return None


def method_option_docs(name: str, overrides: list[str] | None = None) -> list[tuple[str, Any, str]]:
    """(key, value, one-line meaning) of each ``method_options`` key a method takes, for ``svldrl methods NAME``.

    Read from what training parses (``parsed_method_options`` of the cpu preset with ``overrides``), so the
    keys are the ones a run accepts and the values its defaults, or the given values. Options that depend
    on another option show for the given one: rsf-assisted lists MTCL's keys with
    ``method_options.base=mtcl``. Meanings from the dataclass fields' ``doc`` or ``OPTION_DOCS``.
    """
    from svldrl.config import resolve_config

    cls: Any = METHODS.get(name)
    options = parsed_method_options(resolve_config("cpu", None, overrides, method=name))
    if options is None:
        return []
    if dataclasses.is_dataclass(options):
        return [(f.name, getattr(options, f.name), f.metadata.get("doc", "")) for f in dataclasses.fields(options)]
    docs = getattr(cls, "OPTION_DOCS", {})
    return [(key, value, docs.get(key, "")) for key, value in sorted(dict(options).items())]
