"""experiments/la/mechanisms.py: the last epoch's mechanism columns of a run, losses and validation left out."""

from __future__ import annotations

import json
from pathlib import Path

from cli_helpers import load_script

SCRIPT = Path(__file__).resolve().parents[2] / "experiments" / "la" / "mechanisms.py"


def test_final_state_keeps_the_mechanism_columns_of_the_last_epoch(tmp_path: Path) -> None:
    module = load_script(SCRIPT, "la_mechanisms")
    (tmp_path / "log.csv").write_text(
        "epoch,stage,loss,loss_sup,flipped_fraction,kept_fraction_fg,val_dice,lr,epoch_time\n"
        "0,supervised,0.5,0.4,0.16,,,0.003,8.0\n"
        "1,supervised,0.2,0.1,0.0155,0.92,0.8,0.002,8.1\n"
    )
    (tmp_path / "adele.json").write_text(json.dumps({"iou": [], "start_epoch": [], "corrections": [79, 159]}))
    state = module.final_state(tmp_path)
    assert state == {"epochs": "2", "flipped_fraction": "0.0155", "kept_fraction_fg": "0.92",
                     "corrections": "[79, 159]"}
