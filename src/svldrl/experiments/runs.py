"""Run folders that describe themselves.

``runs/<dataset>/<method>__<noise>-<ratio>__seed<k>/`` holds ``config.yaml`` (complete, resolved),
``env.json`` (versions, device, git commit), ``split.json``, ``noise_manifest.json``, the logs
(TensorBoard and ``log.csv``), ``checkpoints/`` and, once finished, ``metrics.json``. A finished
run is never overwritten without ``overwrite``; an interrupted one continues with ``resume``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from svldrl.config import TrainConfig, dump_config, load_config, settings_of

METRICS_FILE = "metrics.json"
CONFIG_FILE = "config.yaml"


class RunState(Enum):
    NEW = "new"
    INTERRUPTED = "interrupted"
    FINISHED = "finished"


class RunExistsError(ValueError):
    """Raised when a run folder already holds a run and neither resume nor overwrite was asked."""


def run_name(cfg: TrainConfig) -> str:
    """``<method>__<noise>-<ratio>__seed<k>``, e.g. ``svl-drl__mt-0.5__seed0`` (``__clean`` without noise)."""
    noise = "clean" if cfg.noise.kind == "none" else f"{cfg.noise.kind}-{cfg.noise.ratio:g}"
    return f"{cfg.method}__{noise}__seed{cfg.seed}"


def default_run_dir(dataset_name: str, cfg: TrainConfig, root: Path = Path("runs")) -> Path:
    return root / dataset_name / run_name(cfg)


def run_state(run_dir: Path) -> RunState:
    if (run_dir / METRICS_FILE).exists():
        return RunState.FINISHED
    if (run_dir / CONFIG_FILE).exists():
        return RunState.INTERRUPTED
    return RunState.NEW


@dataclass(frozen=True)
class RunPlan:
    """What to do with a run folder: start it, resume it, or nothing (already finished)."""

    run_dir: Path
    state: RunState
    resume: bool


def plan_run(run_dir: Path, cfg: TrainConfig, *, resume: bool, overwrite: bool) -> RunPlan:
    """Decide how to treat ``run_dir`` before any long work; raise with a clear message if unsafe.

    - finished run: refuse unless ``overwrite`` (then the folder is emptied);
    - interrupted run: continue with ``resume`` (the saved configuration must match), restart with
      ``overwrite``, otherwise refuse;
    - ``resume`` on a new folder is allowed and simply starts.
    """
    state = run_state(run_dir)
    if overwrite and state is not RunState.NEW:
        shutil.rmtree(run_dir)
        return RunPlan(run_dir, RunState.NEW, resume=False)
    if state is RunState.FINISHED:
        raise RunExistsError(f"{run_dir}: this run is finished (metrics.json exists); use --overwrite to train again")
    if state is RunState.INTERRUPTED:
        if not resume:
            raise RunExistsError(f"{run_dir}: an unfinished run is here; use --resume to continue it or --overwrite")
        saved = load_config(run_dir / CONFIG_FILE)
        if not same_settings(saved, cfg):
            raise RunExistsError(
                f"{run_dir / CONFIG_FILE}: the saved configuration differs from the requested one; "
                "resume with the same options or use --overwrite"
            )
        return RunPlan(run_dir, state, resume=True)
    return RunPlan(run_dir, state, resume=False)


def same_settings(a: TrainConfig, b: TrainConfig) -> bool:
    """Whether two configurations train the same model (``EXECUTION_KEYS`` may differ)."""
    return settings_of(a) == settings_of(b)


def check_existing_run(run_dir: Path, cfg: TrainConfig) -> None:
    """Refuse a run folder (finished or interrupted) that holds a run with other settings.

    Why: grids skip finished runs and resume interrupted ones by folder name, and two experiment
    files may share a runs folder (the LA tables share their MT-50 % runs). A name clash with
    other settings would otherwise put a foreign run's numbers into a table, or stop a long grid
    hours in; checking every folder first fails at once and names the file.
    """
    if not (run_dir / CONFIG_FILE).is_file():
        return
    saved = load_config(run_dir / CONFIG_FILE)
    if not same_settings(saved, cfg):
        state = "finished" if (run_dir / METRICS_FILE).exists() else "unfinished"
        raise RunExistsError(
            f"{run_dir / CONFIG_FILE}: a {state} run with other settings has this folder; "
            "give the experiment another runs_root, or delete the run to train it with these settings"
        )


@contextmanager
def claim_run(run_dir: Path) -> Iterator[bool]:
    """Try to take ``run_dir`` for this process; yields False if another process is training it.

    An OS file lock (``.<run>.lock`` beside the folder), released when the process ends however it
    ends, so several ``svldrl compare`` processes (``--jobs``, or other terminals/machines on a
    shared file system) split one grid without training a run twice.
    """
    from filelock import FileLock, Timeout

    run_dir.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(run_dir.parent / f".{run_dir.name}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()


def save_config(run_dir: Path, cfg: TrainConfig) -> None:
    from svldrl._io import write_text

    write_text(run_dir / CONFIG_FILE, dump_config(cfg))
