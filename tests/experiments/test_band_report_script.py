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
    from svldrl.config import CPU, dump_config, merge

    (tmp_path / "config.yaml").write_text(dump_config(merge(CPU, {"data": {"spacing": 2.0}})))
    (tmp_path / "case_filter.json").write_text(json.dumps({"leave_out": "band", "band_widths": {"a": 1.0, "b": 3.0}}))
    ratios, untouched = module.run_ratios(tmp_path, 0.5)
    assert ratios == {"dilation": [pytest.approx(1.0)]} and untouched == [6.0]
    (tmp_path / "case_filter.json").write_text(json.dumps({"leave_out": "side", "band_widths": {}}))
    with pytest.raises(ValueError, match="band"):
        module.run_ratios(tmp_path, 0.5)


def test_patch_leak_is_zero_for_whole_volume_patches_and_shows_for_small_ones():
    import numpy as np
    import torch

    module = load_script(SCRIPT, "la_band_report")
    fg = torch.zeros(12, 12, 12)
    fg[2:10, 2:10, 2:10] = 1.0
    label = torch.stack([1 - fg, fg])[None]  # an over-segmented case: its outer 2 foreground layers are the band
    band = 8**3 - 4**3
    in_band, missed = module.patch_leak(label, "background", 2.0, 12, 3, np.random.default_rng(0))
    assert (in_band, missed) == (3 * band, 0)
    # 4-voxel patches: a patch inside the cube cannot see the border two voxels away, so its own band misses
    in_band, missed = module.patch_leak(label, "background", 2.0, 4, 50, np.random.default_rng(0))
    assert 0 < missed < in_band
