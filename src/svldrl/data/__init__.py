"""Data: the Case currency, loaders for every supported format, phantoms, validation, preparation."""

from svldrl.data.case import BINARY, Case, LabelSpec

__all__ = ["BINARY", "Case", "LabelSpec"]
