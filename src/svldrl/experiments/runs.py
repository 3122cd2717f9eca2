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

from svldrl.config import TrainConfig, dump_config, load_config
from svldrl.training.methods import compared_settings

METRICS_FILE = "metrics.json"
CONFIG_FILE = "config.yaml"


class RunState(Enum):
    NEW = "new"
    UNSTARTED = "unstarted"
    """The folder was made but no epoch was saved (a kill or an error before the first checkpoint)."""
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


LATEST_CHECKPOINT = "checkpoints/latest.pt"
RUN_FILES = frozenset(
    {"config.yaml", "env.json", "data.json", "split.json", "noise_manifest.json", "noisy_labels.json",
     "trusted.json", "log.csv", "tensorboard", "checkpoints"}
)  # fmt: skip
"""What a run folder holds before its first checkpoint (and more later): nothing else is ours to delete."""


def run_state(run_dir: Path) -> RunState:
    if (run_dir / METRICS_FILE).exists():
        return RunState.FINISHED
    if (run_dir / LATEST_CHECKPOINT).is_file():
        return RunState.INTERRUPTED
    if (run_dir / CONFIG_FILE).exists():
        return RunState.UNSTARTED
    return RunState.NEW


def aside_folder(run_dir: Path) -> Path:
    """Where ``--overwrite`` keeps the run it replaces until the new run has started."""
    return run_dir.parent / f".{run_dir.name}.replaced"


def recover_replaced_run(run_dir: Path) -> bool:
    """Put back a run that a killed ``--overwrite`` moved aside; True if one was put back.

    A kill during the new run's setup (an SFDA source model trains there) leaves the old run in
    ``.<name>.replaced`` and the new folder without a checkpoint; the old run must not be lost.
    """
    aside = aside_folder(run_dir)
    if not aside.is_dir() or run_state(run_dir) not in (RunState.NEW, RunState.UNSTARTED):
        return False
    if run_dir.exists():
        shutil.rmtree(run_dir)
    aside.rename(run_dir)
    return True


def check_unstarted_run(run_dir: Path) -> None:
    """Refuse to restart a folder with ``config.yaml`` that holds anything a run does not write."""
    foreign = sorted(p.name for p in run_dir.iterdir() if p.name not in RUN_FILES and not p.name.startswith("."))
    checkpoints = run_dir / "checkpoints"
    if checkpoints.is_dir():
        foreign += [f"checkpoints/{p.name}" for p in checkpoints.iterdir() if not p.name.startswith(".")]
    try:
        load_config(run_dir / CONFIG_FILE)
    except (ValueError, TypeError, OSError) as exc:
        raise RunExistsError(
            f"{run_dir / CONFIG_FILE}: not a run's configuration ({exc}); choose another --out"
        ) from exc
    if foreign:
        raise RunExistsError(
            f"{run_dir}: holds {', '.join(foreign[:3])}, which no run writes; choose another --out or remove them"
        )


def differing_keys(saved: TrainConfig, requested: TrainConfig) -> list[str]:
    """Dotted keys whose values differ between two configurations (execution keys left out)."""

    def flat(tree: dict, prefix: str = "") -> dict[str, object]:
        out: dict[str, object] = {}
        for key, value in tree.items():
            if isinstance(value, dict) and key != "method_options":
                out.update(flat(value, f"{prefix}{key}."))
            else:
                out[f"{prefix}{key}"] = value
        return out

    a, b = flat(compared_settings(saved)), flat(compared_settings(requested))
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


@dataclass(frozen=True)
class RunPlan:
    """What to do with a run folder: start it, resume it, or replace what it holds.

    Attributes:
        replace: the folder holds a run to be replaced (``overwrite``, or a run that never saved
            an epoch); ``fresh_run_folder`` moves it aside and deletes it only once the new run
            has started.
    """

    run_dir: Path
    state: RunState
    resume: bool
    replace: bool = False


def plan_run(run_dir: Path, cfg: TrainConfig, *, resume: bool, overwrite: bool) -> RunPlan:
    """Decide how to treat ``run_dir`` before any long work; raise with a clear message if unsafe.

    Deletes nothing: a refused or failing command must leave the folder as it was.

    - finished run: refuse unless ``overwrite``;
    - interrupted run (it has a checkpoint): continue with ``resume`` (the saved configuration
      must match), restart with ``overwrite``, otherwise refuse;
    - a run that never saved an epoch: started again, whatever its saved configuration (there
      is nothing to resume, and the corrected command must just work);
    - ``resume`` on a new folder is allowed and simply starts;
    - a folder that holds other files is refused (``--out`` pointing at a data folder).
    """
    recover_replaced_run(run_dir)
    state = run_state(run_dir)
    if state is RunState.UNSTARTED:
        check_unstarted_run(run_dir)
    if state is RunState.NEW and run_dir.is_dir() and any(run_dir.iterdir()):
        raise RunExistsError(f"{run_dir}: not a run folder (no {CONFIG_FILE}) and not empty; choose another --out")
    if state is RunState.UNSTARTED or (overwrite and state is not RunState.NEW):
        return RunPlan(run_dir, state, resume=False, replace=True)
    if state is RunState.FINISHED:
        raise RunExistsError(f"{run_dir}: this run is finished (metrics.json exists); use --overwrite to train again")
    if state is RunState.INTERRUPTED:
        if not resume:
            raise RunExistsError(f"{run_dir}: an unfinished run is here; use --resume to continue it or --overwrite")
        saved = load_config(run_dir / CONFIG_FILE)
        if not same_settings(saved, cfg):
            raise RunExistsError(
                f"{run_dir / CONFIG_FILE}: the saved configuration differs from the requested one in "
                f"{', '.join(differing_keys(saved, cfg)[:6])}; resume with the same options or use --overwrite"
            )
        return RunPlan(run_dir, state, resume=True)
    return RunPlan(run_dir, state, resume=False)


@contextmanager
def fresh_run_folder(plan: RunPlan) -> Iterator[Path]:
    """The run folder for the setup of a run (data, split, noisy labels, model), made safely.

    A folder to replace is first moved aside (``.<name>.replaced``) and deleted only when the
    block succeeds; if the setup fails, the new folder is removed and the old one put back, so
    ``--overwrite`` with an option that fails late loses nothing. A new folder that fails is
    removed, so the corrected command starts cleanly.
    """
    run_dir = plan.run_dir
    aside = aside_folder(run_dir)
    if plan.replace:
        if aside.exists():
            raise RunExistsError(
                f"{aside}: a run moved aside by an earlier --overwrite is still here; look at it first"
            )
        run_dir.rename(aside)
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        yield run_dir
    except BaseException:
        if created:
            shutil.rmtree(run_dir, ignore_errors=True)
        if plan.replace:
            aside.rename(run_dir)
        raise
    if plan.replace:
        shutil.rmtree(aside, ignore_errors=True)


def same_settings(a: TrainConfig, b: TrainConfig) -> bool:
    """Whether two configurations train the same model (``EXECUTION_KEYS`` may differ; an option set
    to its method's default is the same as the option left out)."""
    return compared_settings(a) == compared_settings(b)


def check_existing_run(run_dir: Path, cfg: TrainConfig) -> None:
    """Refuse a run folder (finished or interrupted) that holds a run with other settings.

    Why: grids skip finished runs and resume interrupted ones by folder name, and two experiment
    files may share a runs folder (the LA tables share their MT-50 % runs). A name clash with
    other settings would otherwise put a foreign run's numbers into a table, or stop a long grid
    hours in; checking every folder first fails at once and names the file.
    """
    if not holds_other_settings(run_dir, cfg):
        return
    saved = load_config(run_dir / CONFIG_FILE)
    state = "a finished" if (run_dir / METRICS_FILE).exists() else "an unfinished"
    raise RunExistsError(
        f"{run_dir / CONFIG_FILE}: {state} run with other settings ({', '.join(differing_keys(saved, cfg)[:6])}) "
        "has this folder; give the experiment another runs_root, or delete the run to train it with these settings"
    )


def holds_other_settings(run_dir: Path, cfg: TrainConfig) -> bool:
    """True if ``run_dir`` holds a run (finished, or with a checkpoint to resume) made with settings other than ``cfg``.

    A folder with no saved epoch holds nothing a table or a resume would use, so it never conflicts.
    """
    if run_state(run_dir) in (RunState.NEW, RunState.UNSTARTED):
        return False
    return not same_settings(load_config(run_dir / CONFIG_FILE), cfg)


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


def is_claimed(run_dir: Path) -> bool:
    """Whether another process holds ``run_dir``'s lock now (``claim_run``); creates no lock file."""
    from filelock import FileLock, Timeout

    path = run_dir.parent / f".{run_dir.name}.lock"
    if not path.exists():
        return False
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return True
    lock.release()
    return False


def save_config(run_dir: Path, cfg: TrainConfig) -> None:
    from svldrl._io import write_text

    write_text(run_dir / CONFIG_FILE, dump_config(cfg))
