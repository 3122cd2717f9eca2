"""NoiseManifest: JSON round trip, run-level counts, atomic write, errors naming the file."""

import json
from pathlib import Path

import pytest

from svldrl.noise import CaseNoise, NoiseManifest


def _manifest() -> NoiseManifest:
    cases = (
        CaseNoise("a", True, "mt", "erosion", 7, 0.71, {"draws": 2, "fallback": None}),
        CaseNoise("b", False, "none", None, None, 1.0),
        CaseNoise("c", True, "mt", "dilation", 3, 0.9),
    )
    return NoiseManifest("mt", 0.5, 4, cases, {"k_range": [3, 15]})


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    manifest = _manifest()
    path = manifest.save(tmp_path / "sub" / "noise_manifest.json")
    assert NoiseManifest.load(path) == manifest
    data = json.loads(path.read_text())
    assert data["n_cases"] == 3 and data["n_corrupted"] == 2
    assert {k: data[k] for k in ("kind", "ratio", "seed")} == {"kind": "mt", "ratio": 0.5, "seed": 4}
    assert data["cases"][0] == {
        "case_id": "a",
        "corrupted": True,
        "kind": "mt",
        "operation": "erosion",
        "k": 7,
        "dice_noisy_vs_clean": 0.71,
        "details": {"draws": 2, "fallback": None},
    }
    assert [p.name for p in path.parent.iterdir()] == ["noise_manifest.json"]  # no temporary file left


def test_accessors() -> None:
    manifest = _manifest()
    assert manifest.corrupted_ids == ["a", "c"]
    assert manifest.case("b").corrupted is False
    with pytest.raises(KeyError, match="'z'"):
        manifest.case("z")
    with pytest.raises(ValueError, match="duplicate"):
        NoiseManifest("mt", 0.5, 0, (manifest.cases[0], manifest.cases[0]))


def test_load_rejects_inconsistent_or_broken_files(tmp_path: Path) -> None:
    path = _manifest().save(tmp_path / "m.json")
    data = json.loads(path.read_text())
    data["n_corrupted"] = 3
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"m\.json: n_corrupted is 3 but the case list gives 2"):
        NoiseManifest.load(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match=r"m\.json: not a valid noise manifest"):
        NoiseManifest.load(path)
    with pytest.raises(FileNotFoundError, match="missing.json"):
        NoiseManifest.load(tmp_path / "missing.json")
