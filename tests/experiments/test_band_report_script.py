"""experiments/la/band_report.py: band widths against the planted MT margin, by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_helpers import load_script

SCRIPT = Path(__file__).resolve().parents[2] / "experiments" / "la" / "band_report.py"


def test_band_over_margin_and_a_run_folder(tmp_path: Path):
    module = load_script(SCRIPT, "la_band_report")
    # a 2-voxel band at 2 mm against a k=8 dilation at 0.5 mm (margin 4 voxels = 2 mm): twice the margin
    assert module.band_over_margin(2.0, 8, 2.0, 0.5) == pytest.approx(2.0)
    cases = [{"case_id": "a", "corrupted": True, "operation": "dilation", "k": 8},
             {"case_id": "b", "corrupted": False, "operation": None, "k": None}]
    (tmp_path / "noise_manifest.json").write_text(json.dumps({"cases": cases}))
    (tmp_path / "config.yaml").write_text("data:\n  spacing: 2.0\n")
    (tmp_path / "case_filter.json").write_text(json.dumps({"leave_out": "band", "band_widths": {"a": 1.0, "b": 3.0}}))
    ratios, untouched = module.run_ratios(tmp_path, 0.5)
    assert ratios == {"dilation": [pytest.approx(1.0)]} and untouched == [6.0]
    (tmp_path / "case_filter.json").write_text(json.dumps({"leave_out": "side", "band_widths": {}}))
    with pytest.raises(ValueError, match="band"):
        module.run_ratios(tmp_path, 0.5)
