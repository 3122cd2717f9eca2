"""experiments/la/side_report.py: what a side filter leaves out, against clean labels, by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cli_helpers import load_script

SCRIPT = Path(__file__).resolve().parents[2] / "experiments" / "la" / "side_report.py"


def test_side_counts_by_hand():
    module = load_script(SCRIPT, "la_side_report")
    clean = np.array([0, 1, 1, 0, 0, 0])
    over = np.array([1, 1, 1, 1, 0, 0])  # two false positives: an over-segmented label
    c = module.side_counts(over, clean, "background")  # its foreground (4 voxels) is left out
    assert (c["wrong"], c["wrong_left_out"], c["left_out"], c["right_left_out"]) == (2, 2, 4, 2)
    assert (c["right_fg"], c["right_fg_kept"], c["right_fg_kept_by_drop"]) == (2, 0, 0)
    assert (c["left_out_fg"], c["right_left_out_fg"]) == (4, 2)
    under = np.array([0, 1, 0, 0, 0, 0])  # one false negative
    c = module.side_counts(under, clean, "foreground")  # its background (5 voxels) is left out
    assert (c["wrong"], c["wrong_left_out"], c["left_out"], c["right_left_out"]) == (1, 1, 5, 4)
    assert (c["right_fg"], c["right_fg_kept"], c["right_fg_kept_by_drop"]) == (1, 1, 0)
    assert (c["left_out_fg"], c["right_left_out_fg"]) == (0, 0)
    c = module.side_counts(under, clean, None)  # not one-sided: nothing left out, the drop filter keeps it too
    assert (c["wrong"], c["wrong_left_out"], c["left_out"], c["wrong_in_flagged"]) == (1, 0, 0, 0)
    assert c["right_fg_kept"] == c["right_fg_kept_by_drop"] == 1
    with pytest.raises(ValueError, match="direction"):
        module.side_counts(under, clean, "none")
    line = module.format_line("r", {**c, "cases": 3, "one_sided": 1})
    assert "1 of 3 cases one-sided" in line and "left out 0 % of the wrong voxels" in line
