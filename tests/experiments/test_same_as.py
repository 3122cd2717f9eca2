"""A row that trains as another (``same_as``): the check of its runs against its twin's (grid_outputs)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from svldrl.experiments.carry import same_scores
from svldrl.experiments.grid_outputs import same_as_checks, same_as_footnote


def folder_record(dice: float, hd95: float = 5.0) -> dict:
    """A run folder's metrics record: every score, plus what cases.csv does not keep (``empty_pred``)."""
    scores = {"dice": dice, "iou": dice / 2, "hd95": hd95, "asd": 1.0, "empty_pred": False}
    return {"per_case": {"c0": {"left atrium": dict(scores), "mean": dict(scores)}}}


def carried_record(dice: float, hd95: float = 5.0) -> dict:
    """The same run carried from cases.csv: the four scores only."""
    scores = {"dice": dice, "iou": dice / 2, "hd95": hd95, "asd": 1.0}
    return {"per_case": {"c0": {"left atrium": dict(scores), "mean": dict(scores)}}}


def test_same_scores_compares_the_scores_of_either_record_kind_and_matches_undefined_ones() -> None:
    assert same_scores(folder_record(0.8), carried_record(0.8)) and same_scores(carried_record(0.8), folder_record(0.8))
    assert not same_scores(folder_record(0.8), carried_record(0.8 + 1e-6))
    assert same_scores(folder_record(0.0, math.nan), carried_record(0.0, math.nan))  # HD95 of an empty prediction
    assert not same_scores(folder_record(0.0, math.nan), carried_record(0.0, 7.0))
    other_case = {"per_case": {"c1": carried_record(0.8)["per_case"]["c0"]}}
    assert not same_scores(folder_record(0.8), other_case)


def run(label: str, seed: int, same_as: str = "") -> SimpleNamespace:
    variant = SimpleNamespace(label=label, same_as=same_as, same_as_why="no correction")
    return SimpleNamespace(variant=variant, noise="mt", ratio=0.5, seed=seed, group="MT-Noise 50%")


def test_each_run_of_a_same_as_row_is_checked_against_its_twin_of_the_seed_whatever_the_record_kind() -> None:
    done = [
        (run("ADELE", 0), carried_record(0.80)),  # the twin carried from cases.csv ...
        (run("RSF", 0, "ADELE"), folder_record(0.80)),  # ... its check run in a folder
        (run("RSF", 1, "ADELE"), folder_record(0.70)),  # ADELE's seed 1 not finished
        (run("ADELE", 2), folder_record(0.75)),
    ]
    checks = same_as_checks(done)
    assert list(checks) == ["RSF"]
    assert checks["RSF"].checked == ["MT-Noise 50% seed 0"] and checks["RSF"].unchecked == ["MT-Noise 50% seed 1"]
    note = same_as_footnote("RSF", checks["RSF"])
    assert note == ("RSF: trains as ADELE (no correction); its other runs are not trained. Runs of its own that "
                    "score case for case as ADELE's: MT-Noise 50% seed 0; not checked yet (ADELE's run of the "
                    "seed not finished): MT-Noise 50% seed 1.")
    done.append((run("RSF", 2, "ADELE"), folder_record(0.75, hd95=6.0)))  # Dice equal, HD95 not
    with pytest.raises(ValueError, match=r"RSF \(MT-Noise 50%, seed 2\) scores differently from ADELE"):
        same_as_checks(done)
