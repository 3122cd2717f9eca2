"""experiments/la/direction_report.py: whether each corrupted case was corrected the way its noise needs."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from cli_helpers import load_script
from svldrl.noise.manifest import CaseNoise, NoiseManifest

SCRIPT = Path(__file__).resolve().parents[2] / "experiments" / "la" / "direction_report.py"


@pytest.fixture(scope="module")
def report_module():
    return load_script(SCRIPT, "la_direction_report")


def manifest(seed: int) -> NoiseManifest:
    """a dilated, b eroded, c eroded, d untouched."""
    entries = [CaseNoise("a", True, "mt", "dilation", 5, 0.7), CaseNoise("b", True, "mt", "erosion", 5, 0.7),
               CaseNoise("c", True, "mt", "erosion", 3, 0.8), CaseNoise("d", False, "none", None, None, 1.0)]
    return NoiseManifest("mt", 0.5, seed, tuple(entries))


def report(directions: dict[str, str]) -> dict:
    return {"imbalance": "auto", "threshold": 0.4, "cases": {
        case: {"to_background": 1, "to_foreground": 1, "imbalance": 0.0, "direction": d, "corrupted": case != "d"}
        for case, d in directions.items()}}  # fmt: skip


def test_dilation_needs_background_and_erosion_foreground(report_module):
    r = report(dict(a="background", b="background", c="none", d="foreground"))
    for case, op in (("a", "dilation"), ("b", "erosion"), ("c", "erosion")):
        r["cases"][case]["operation"] = op
    assert report_module.direction_match(r) == {"needed": 1, "opposite": 1, "none": 1}


def test_operations_come_from_the_manifest_of_the_runs_own_seed(report_module, tmp_path):
    paths = []
    for seed in (0, 1):
        paths.append(tmp_path / f"m{seed}.json")
        manifest(seed).save(paths[-1])
    manifests = report_module.manifests_by_noise(paths)
    r = report_module.with_operations(report(dict(a="background", b="foreground", c="foreground", d="none")),
                                      "teacher-correction__mt-0.5__seed1", manifests)  # fmt: skip
    assert report_module.direction_match(r) == {"needed": 3, "opposite": 0, "none": 0}
    untouched = report_module.with_operations(report(dict(a="background", d="none")), "x__sfda-0.5__seed1", manifests)
    assert report_module.direction_match(untouched) == {}  # no MT manifest for that noise: nothing counted
    wrong = report(dict(d="none"))
    wrong["cases"]["d"]["corrupted"] = True  # corrupted in the report, clean in the manifest: a mismatched seed
    with pytest.raises(SystemExit, match="is not corrupted in the manifest"):
        report_module.with_operations(wrong, "x__mt-0.5__seed0", manifests)


def test_the_run_records_the_operation_of_its_corrupted_cases():
    from svldrl.baselines.teacher_correction import TeacherCorrectionTrainer

    trainer = SimpleNamespace(noise_manifest=manifest(0), corrupted_ids=frozenset(manifest(0).corrupted_ids))
    assert TeacherCorrectionTrainer.noise_diagnostics(trainer, "b") == {"corrupted": True, "operation": "erosion"}
    assert TeacherCorrectionTrainer.noise_diagnostics(trainer, "d") == {"corrupted": False}
    clean_run = SimpleNamespace(noise_manifest=None, corrupted_ids=None)
    assert TeacherCorrectionTrainer.noise_diagnostics(clean_run, "b") == {}
    assert json.dumps(TeacherCorrectionTrainer.noise_diagnostics(trainer, "a"))  # JSON-ready
