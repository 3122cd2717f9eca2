"""Per-epoch logs: ``log.csv`` with stable columns and the same scalars in TensorBoard."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter

from svldrl.training.checkpoint import atomic_write_text

LOG_FILE = "log.csv"
TENSORBOARD_DIR = "tensorboard"


class ScalarMeans:
    """Running means of the scalars a training step returns (each key averaged over the steps that gave it).

    A NaN counts as "not given": a step whose batch had no voxel of some kind (no corrupted case, no
    foreground) reports NaN for that scalar, and one such step must not blank the epoch's mean.
    """

    def __init__(self) -> None:
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}

    def add(self, scalars: dict[str, float]) -> None:
        for key, value in scalars.items():
            if math.isnan(float(value)):
                continue
            self._sums[key] = self._sums.get(key, 0.0) + float(value)
            self._counts[key] = self._counts.get(key, 0) + 1

    def means(self) -> dict[str, float]:
        return {key: self._sums[key] / self._counts[key] for key in self._sums}


class EpochLogger:
    """One CSV row and one set of TensorBoard scalars per epoch.

    The columns are fixed when the logger is made, so every row of a run (and of runs of the same
    method) lines up; a value the epoch did not produce (RL terms during Warmup, validation metrics
    between validations) is an empty cell. A key outside the columns is an error: it is a typo or
    a variant that forgot to declare its scalars. A run resumed by a newer svldrl whose method logs
    more columns keeps its rows, the new columns empty before the resume (a column it no longer
    logs is refused: its rows would lose what they recorded).

    Args:
        run_dir: the run folder.
        columns: column names after ``epoch`` and ``stage``.
        start_epoch: first epoch this logger will write; on resume, rows from this epoch on (written
            after the last checkpoint) are dropped so the file holds each epoch once.
    """

    def __init__(self, run_dir: Path, columns: Sequence[str], start_epoch: int = 0) -> None:
        self.path = run_dir / LOG_FILE
        self.columns = ["epoch", "stage", *columns]
        if len(set(self.columns)) != len(self.columns):
            raise ValueError(f"log columns must be unique, got {self.columns}")
        self._truncate_or_create(start_epoch)
        self._writer = SummaryWriter(log_dir=str(run_dir / TENSORBOARD_DIR), purge_step=start_epoch)

    def _truncate_or_create(self, start_epoch: int) -> None:
        kept: list[dict[str, str]] = []
        if self.path.is_file() and start_epoch > 0:
            with self.path.open(newline="") as handle:
                reader = csv.DictReader(handle)
                dropped = [c for c in reader.fieldnames or [] if c not in self.columns]
                if dropped:
                    raise ValueError(f"{self.path}: columns {dropped} are not among this run's {self.columns}")
                kept = [row for row in reader if int(row["epoch"]) < start_epoch]
        self._write_rows(kept)

    def _write_rows(self, rows: list[dict[str, str]]) -> None:
        lines = [",".join(self.columns)]
        for row in rows:
            lines.append(",".join(str(row.get(c, "")) for c in self.columns))
        atomic_write_text("\n".join(lines) + "\n", self.path)

    def log(self, epoch: int, stage: str, scalars: dict[str, float]) -> None:
        """Append the row of ``epoch`` and write its scalars to TensorBoard."""
        unknown = sorted(set(scalars) - set(self.columns))
        if unknown:
            raise KeyError(f"log: scalars {unknown} are not log columns; declare them in the trainer's log_columns()")
        row = {"epoch": str(epoch), "stage": stage}
        row.update({k: _cell(v) for k, v in scalars.items()})
        with self.path.open("a", newline="") as handle:
            csv.DictWriter(handle, fieldnames=self.columns, lineterminator="\n").writerow(row)
        for key, value in scalars.items():
            self._writer.add_scalar(key, value, global_step=epoch)
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


def _cell(value: float) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else repr(float(value))


def read_log(run_dir: Path) -> list[dict[str, str]]:
    """The rows of a run's ``log.csv`` (for tests, reports and plots)."""
    with (run_dir / LOG_FILE).open(newline="") as handle:
        return list(csv.DictReader(handle))
