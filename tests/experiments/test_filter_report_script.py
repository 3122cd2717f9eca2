"""experiments/la/filter_report.py: a case filter's kept and dropped cases against the noise manifest."""

from __future__ import annotations

import json
from pathlib import Path

from cli_helpers import load_script
from svldrl.noise.manifest import CaseNoise, NoiseManifest

SCRIPT = Path(__file__).resolve().parents[2] / "experiments" / "la" / "filter_report.py"


def make_run(folder: Path, dropped: list[str]) -> Path:
    """Trusted t; a and b corrupted (label Dice 0.5 and 0.7), c and d untouched; the filter scored a-d."""
    folder.mkdir()
    entries = [CaseNoise("a", True, "sfda", "source-model", None, 0.5),
               CaseNoise("b", True, "sfda", "source-model", None, 0.7),
               *(CaseNoise(c, False, "none", None, None, 1.0) for c in "cdt")]
    NoiseManifest("sfda", 0.5, 0, tuple(entries)).save(folder / "noise_manifest.json")
    (folder / "trusted.json").write_text(json.dumps({"cases": ["t"], "n": 1}))
    scores = {"a": 1.2, "b": 0.1, "c": 0.0, "d": 0.9}
    (folder / "case_filter.json").write_text(json.dumps({"scores": scores, "dropped": dropped, "threshold": 0.5}))
    return folder


def test_counts_and_label_quality_before_and_after_the_filter(tmp_path: Path):
    module = load_script(SCRIPT, "la_filter_report")
    s = module.filter_summary(make_run(tmp_path / "r0", ["a", "d"]))
    assert (s["dropped_corrupted"], s["dropped_untouched"], s["kept_corrupted"], s["kept_untouched"]) == (1, 1, 1, 1)
    assert s["label_dice_all"] == 100.0 * (1 + 0.5 + 0.7 + 1 + 1) / 5
    assert s["label_dice_kept"] == 100.0 * (1 + 0.7 + 1) / 3  # t, b, c
    line = module.format_line("r0", s)
    assert "dropped 1 corrupted + 1 untouched" in line and "84.0 -> 90.0" in line
