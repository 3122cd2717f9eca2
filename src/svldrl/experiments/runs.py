"""Run folders that describe themselves.

``runs/<dataset>/<method>__<noise>-<ratio>__seed<k>/`` holds ``config.yaml`` (complete, resolved),
``env.json`` (versions, device, git commit), ``split.json``, ``noise_manifest.json``, the logs
(TensorBoard and ``log.csv``), ``checkpoints/`` and, once finished, ``metrics.json``. A finished
run is never overwritten without ``overwrite``; an interrupted one continues with ``resume``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from svldrl.config import TrainConfig, dump_config, load_config, to_dict

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
        if _without_device(saved) != _without_device(cfg):
            raise RunExistsError(
                f"{run_dir / CONFIG_FILE}: the saved configuration differs from the requested one; "
                "resume with the same options or use --overwrite"
            )
        return RunPlan(run_dir, state, resume=True)
    return RunPlan(run_dir, state, resume=False)


def _without_device(cfg: TrainConfig) -> dict:
    """Configuration as compared on resume: the device may change between sessions."""
    data = to_dict(cfg)
    data.pop("device", None)
    data.pop("num_threads", None)
    return data


def save_config(run_dir: Path, cfg: TrainConfig) -> None:
    from svldrl._io import write_text

    write_text(run_dir / CONFIG_FILE, dump_config(cfg))
