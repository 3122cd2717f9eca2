"""The ``METHODS`` registry: method name -> Trainer class (``svldrl train --method NAME``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from svldrl.registry import Registry

if TYPE_CHECKING:
    from svldrl.training.trainer import Trainer

METHODS: Registry[type[Trainer]] = Registry("method")
"""Trainer classes by method name; the module defining a method registers it on import."""
