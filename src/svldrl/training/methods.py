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
    import svldrl.baselines  # noqa: F401  (registers the methods)
    from svldrl.baselines.common import parse_method_options

    given = dict(cfg.method_options)
    try:
        cls: Any = METHODS.get(cfg.method)
        if hasattr(cls, "options_class"):
            options: Any = parse_method_options(cls.options_class(given), given, cfg.method)
        elif hasattr(cls, "parse_options"):
            options = cls.parse_options(cfg)
        else:
            return given
    except (KeyError, ValueError, TypeError):
        return given
    resolved = dataclasses.asdict(options) if dataclasses.is_dataclass(options) else dict(options)
    return json.loads(json.dumps(resolved, sort_keys=True, default=list))  # tuples and lists alike
