"""The noise manifest: which cases were corrupted, how, and how far from clean (saved with every run)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from svldrl._io import write_text

MANIFEST_NAME = "noise_manifest.json"
"""File name of the manifest inside a noisy data set copy or a run folder."""


@dataclass(frozen=True)
class CaseNoise:
    """One case's entry.

    Attributes:
        case_id: the case.
        corrupted: whether its training label was replaced by a noisy one.
        kind: the noise kind of this case (``"mt"``, ``"sfda"``, ``"border"``), ``"none"`` for a clean case.
        operation: ``"dilation"``/``"erosion"`` (mt), ``"source-model"`` (sfda), ``"border"``, None when clean.
        k: cube side in voxels (mt), the shift field's scale in voxels (border), else None.
        dice_noisy_vs_clean: Dice between the training label and the clean one (1.0 when clean).
        details: kind-specific facts (mt: k draws and fallback; border: grown share and halvings; sfda: role,
            gamma and shift).
    """

    case_id: str
    corrupted: bool
    kind: str
    operation: str | None
    k: int | None
    dice_noisy_vs_clean: float
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NoiseManifest:
    """Run-level facts plus one ``CaseNoise`` per case, in case-id order."""

    kind: str
    ratio: float
    seed: int
    cases: tuple[CaseNoise, ...]
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ids = [c.case_id for c in self.cases]
        if len(set(ids)) != len(ids):
            raise ValueError("NoiseManifest: duplicate case ids")

    @property
    def n_cases(self) -> int:
        return len(self.cases)

    @property
    def n_corrupted(self) -> int:
        return sum(c.corrupted for c in self.cases)

    @property
    def corrupted_ids(self) -> list[str]:
        return [c.case_id for c in self.cases if c.corrupted]

    def case(self, case_id: str) -> CaseNoise:
        """The entry of ``case_id``; the error names the manifest's ids if it is missing."""
        for entry in self.cases:
            if entry.case_id == case_id:
                return entry
        raise KeyError(f"case {case_id!r} is not in the noise manifest ({self.n_cases} cases)")

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "ratio": self.ratio,
            "seed": self.seed,
            "n_cases": self.n_cases,
            "n_corrupted": self.n_corrupted,
            "options": self.options,
            "cases": [asdict(c) for c in self.cases],
        }

    def save(self, path: str | Path) -> Path:
        """Write JSON atomically (temporary file in the same folder, then rename)."""
        path = Path(path)
        write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> NoiseManifest:
        """Read a manifest written by ``save``; errors name the file and the problem."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
            cases = tuple(CaseNoise(**entry) for entry in data["cases"])
            manifest = cls(data["kind"], data["ratio"], data["seed"], cases, data.get("options", {}))
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: noise manifest not found") from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}: not a valid noise manifest ({exc})") from exc
        for key in ("n_cases", "n_corrupted"):
            if data.get(key) != getattr(manifest, key):
                raise ValueError(f"{path}: {key} is {data.get(key)} but the case list gives {getattr(manifest, key)}")
        return manifest


def clean_entry(case_id: str, details: dict[str, Any] | None = None) -> CaseNoise:
    """The entry of a case that keeps its clean label."""
    return CaseNoise(case_id, False, "none", None, None, 1.0, dict(details or {}))


def sorted_entries(entries: Sequence[CaseNoise]) -> tuple[CaseNoise, ...]:
    """Entries in case-id order, so one seed gives one byte-identical manifest."""
    return tuple(sorted(entries, key=lambda c: c.case_id))
