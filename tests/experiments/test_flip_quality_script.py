"""experiments/la/flip_quality.py: MTCL's flips against the clean label (issue 16, point 3)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cli_helpers import load_script

SCRIPT = Path(__file__).resolve().parents[2] / "experiments" / "la" / "flip_quality.py"


def test_flips_that_undo_a_planted_dilation_are_counted_right_and_to_background() -> None:
    """A cube labelled two voxels too wide, and a teacher sure of the true cube: confident learning flags
    the planted shell, so every flip is right, sets background, and fixes every wrong voxel."""
    module = load_script(SCRIPT, "la_flip_quality")
    clean = np.zeros((16, 16, 16), bool)
    clean[5:11, 5:11, 5:11] = True
    noisy = np.zeros_like(clean)
    noisy[3:13, 3:13, 3:13] = True
    fg = np.where(clean, 0.95, 0.05)
    probs = np.stack([1 - fg, fg])
    counts = module.flip_counts(noisy, clean, probs)
    assert counts["wrong"] == noisy.sum() - clean.sum()
    assert counts["flipped"] == counts["wrong"] == counts["flipped_right"] == counts["flipped_to_background"]
    assert counts["wrong_fixed"] == counts["wrong"] and counts["dice_flipped"] == pytest.approx(1.0)
    summary = module.group_summary([counts, counts])
    assert summary["precision"] == summary["recall"] == summary["to_background"] == pytest.approx(100.0)
    assert summary["dice_noisy"] == pytest.approx(100 * counts["dice_noisy"]) and summary["n"] == 2
    wrong_teacher = np.stack([fg, 1 - fg])  # sure of the opposite everywhere: its flips are wrong where it flips
    bad = module.flip_counts(clean, clean, wrong_teacher)
    assert bad["wrong"] == 0 and bad["flipped_right"] == 0 and bad["dice_flipped"] < 1.0
