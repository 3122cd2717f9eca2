"""experiments/la/small_loss.py: the selection quality of Co-Teaching's small-loss rule, on made-up losses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cli_helpers import load_script

SCRIPT = Path(__file__).parents[2] / "experiments" / "la" / "small_loss.py"


@pytest.fixture(scope="module")
def small_loss():
    return load_script(SCRIPT, "la_small_loss")


def test_a_loss_that_ranks_the_wrong_voxels_first_drops_exactly_them(small_loss) -> None:
    wrong = np.array([False] * 6 + [True] * 4)
    loss = np.where(wrong, 2.0, 0.1) + np.linspace(0, 0.01, 10)
    q = small_loss.selection_quality(loss, wrong, forget=0.4)
    assert q["wrong_share"] == pytest.approx(0.4)
    assert (q["precision"], q["recall"], q["auc"]) == (1.0, 1.0, 1.0)
    q = small_loss.selection_quality(loss, wrong, forget=0.2)  # drops fewer: all right ones, half of them
    assert (q["precision"], q["recall"]) == (1.0, 0.5)


def test_a_loss_that_ranks_the_wrong_voxels_last_drops_only_right_ones(small_loss) -> None:
    wrong = np.array([True] * 3 + [False] * 7)
    loss = np.where(wrong, 0.01, 1.0)
    q = small_loss.selection_quality(loss, wrong, forget=0.3)
    assert (q["precision"], q["recall"], q["auc"]) == (0.0, 0.0, 0.0)


def test_a_loss_unrelated_to_the_labels_drops_at_the_base_rate(small_loss) -> None:
    rng = np.random.default_rng(0)
    wrong = rng.random(20000) < 0.35
    q = small_loss.selection_quality(rng.random(20000), wrong, forget=0.3)
    assert q["precision"] == pytest.approx(0.35, abs=0.02) and q["auc"] == pytest.approx(0.5, abs=0.02)
    with pytest.raises(ValueError, match="forget in"):
        small_loss.selection_quality(np.ones(3), np.zeros(3, bool), forget=1.5)


def test_the_forget_rate_is_read_from_the_last_epoch_of_the_log(small_loss, tmp_path: Path) -> None:
    (tmp_path / "log.csv").write_text("epoch,loss,forget_rate_fg\n0,1.0,0.0\n1,0.9,0.31\n")
    assert small_loss.final_forget_rate(tmp_path) == pytest.approx(0.31)
    (tmp_path / "log.csv").write_text("epoch,loss\n0,1.0\n")
    with pytest.raises(ValueError, match="not a Co-Teaching run"):
        small_loss.final_forget_rate(tmp_path)


def test_background_needs_a_given_rate_before_any_work(small_loss, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'bg' needs forget"):
        small_loss.run_report(tmp_path / "no-run", tmp_path, forget=None, label_class="bg")
