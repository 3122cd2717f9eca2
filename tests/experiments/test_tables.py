"""Result tables say over what each row's spread is taken."""

from __future__ import annotations

from svldrl.experiments.tables import Table, rows_from_runs


def _run(group: str, label: str, dice: float, case_std: float) -> dict:
    mean = {"dice": dice, "iou": dice - 0.1, "hd95": 5.0, "asd": 1.0}
    std = {"dice": case_std, "iou": case_std, "hd95": 2.0, "asd": 0.5}
    return {"summary": {"mean": {"mean": mean}, "std": {"mean": std}}, "_group": group, "_label": label}


def _rows(runs: list[dict], over_seeds: bool):
    return rows_from_runs(runs, lambda m: m["_group"], lambda m: m["_label"], over_seeds)


def test_a_row_with_fewer_finished_seeds_than_the_grid_says_how_many():
    runs = [_run("MT", "A", 0.80, 0.07), _run("MT", "A", 0.84, 0.06), _run("MT", "A", 0.82, 0.05),
            _run("MT", "B", 0.83, 0.05), _run("MT", "B", 0.85, 0.04), _run("MT", "C", 0.82, 0.0758)]  # fmt: skip
    table = Table(_rows(runs, over_seeds=True), caption="x: mean (± std over seeds)", seeds=3)
    lines = {line.split(" | ")[1]: line for line in table.to_markdown().splitlines() if line.startswith("| MT")}
    assert "82.00 (±1.63)" in lines["A"] and "n=" not in lines["A"]  # all three seeds: the std over them
    assert "84.00 (±1.00, n=2)" in lines["B"]
    assert "82.00 (n=1)" in lines["C"] and "7.58" not in lines["C"]  # not the spread over its test cases
    csv = {row["method"]: row for row in table.to_csv_rows()}
    assert csv["C"]["n"] == 1 and csv["C"]["dice_std"] == "" and csv["B"]["dice_std"] == 1.0


def test_a_one_seed_table_keeps_the_spread_over_test_cases():
    table = Table(_rows([_run("MT", "A", 0.82, 0.0758)], over_seeds=False), caption="x: mean (± std over test cases)")
    assert "82.00 (±7.58)" in table.to_markdown()
