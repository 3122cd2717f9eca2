"""Bad input as a new user gives it (issue 13), part 1: nothing lost. Predict never overwrites, --overwrite
deletes last, stale temporaries and foreign files, options checked before a run folder exists, the umask.

One test (or a few) per point of the issue, numbered as there; ``docs/reliability.md`` is the
catalogue of every bad input tried and what it now gets. Each test failed before its fix.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest
from reliability_helpers import TINY, files_of

from cli_helpers import invoke, refused

pytestmark = pytest.mark.slow


# ----------------------------------------------------------------------------- 1. predict never overwrites


def test_1_predict_refuses_to_write_into_its_own_input(finished_run: Path, data_copy: Path) -> None:
    before = files_of(data_copy / "labelsTr")
    message = refused("predict", finished_run, data_copy / "labelsTr", data_copy / "labelsTr")
    assert "labelsTr" in message and "input" in message
    message = refused("predict", finished_run, data_copy / "labelsTr", data_copy / "labelsTr", "--overwrite")
    assert "input" in message  # not even with --overwrite
    single = sorted((data_copy / "imagesTr").glob("*.nii.gz"))[0]
    assert "input" in refused("predict", finished_run, single, single, "--overwrite")
    assert files_of(data_copy / "labelsTr") == before


def test_1_predict_refuses_to_replace_files_without_overwrite(finished_run: Path, data_copy: Path) -> None:
    before = files_of(data_copy / "labelsTr")
    message = refused("predict", finished_run, data_copy / "imagesTr", data_copy / "labelsTr")
    assert "--overwrite" in message and ".nii.gz" in message
    assert files_of(data_copy / "labelsTr") == before  # the reference labels are untouched


def test_1_predict_writes_beside_other_files_and_replaces_with_overwrite(
    finished_run: Path, data_copy: Path, tmp_path: Path
) -> None:
    out = tmp_path / "preds"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    invoke("predict", finished_run, data_copy / "imagesTr", out)  # nothing it would replace: allowed
    assert len(list(out.glob("*.nii.gz"))) == 5 and (out / "notes.txt").read_text() == "mine"
    assert "--overwrite" in refused("predict", finished_run, data_copy / "imagesTr", out)
    invoke("predict", finished_run, data_copy / "imagesTr", out, "--overwrite")


# ----------------------------------------------------------------------------- 2. --overwrite deletes last


def test_2_overwrite_with_an_invalid_option_keeps_the_finished_run(phantoms: Path, finished_run: Path) -> None:
    before = files_of(finished_run)
    message = refused(
        "train", phantoms, "--method", "baseline", "--out", finished_run, *TINY, "--overwrite",
        "--set", "optim.optimizer=adamw",
    )  # fmt: skip
    assert "optim.optimizer" in message
    assert files_of(finished_run) == before


def test_2_overwrite_restores_the_old_run_when_the_new_one_fails_to_start(
    phantoms: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run"
    invoke("train", phantoms, "--method", "baseline", "--out", out, *TINY)
    before = files_of(out)

    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("simulated failure while setting up the new run")

    monkeypatch.setattr("svldrl.training.trainer.Trainer.__init__", broken)
    assert "simulated failure" in refused("train", phantoms, "--method", "baseline", "--out", out, *TINY, "--overwrite")
    assert files_of(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no folder moved aside is left behind


def test_2_a_kill_during_an_overwrite_setup_loses_nothing(phantoms: Path, tmp_path: Path) -> None:
    """Killed after the old run was moved aside and before the new one saved an epoch: the next
    command finds the old run back in place."""
    out = tmp_path / "run"
    invoke("train", phantoms, "--method", "baseline", "--out", out, *TINY)
    before = files_of(out)
    out.rename(tmp_path / ".run.replaced")  # what --overwrite does first
    out.mkdir()
    (out / "config.yaml").write_text((tmp_path / ".run.replaced" / "config.yaml").read_text())  # then the kill
    assert "this run is finished" in refused("train", phantoms, "--method", "baseline", "--out", out, *TINY)
    assert files_of(out) == before and not (tmp_path / ".run.replaced").exists()


def test_4_a_folder_with_foreign_files_is_not_restarted(phantoms: Path, tmp_path: Path) -> None:
    out = tmp_path / "project"
    out.mkdir()
    (out / "config.yaml").write_text("method: baseline\n")
    (out / "notes.md").write_text("my notes")
    message = refused("train", phantoms, "--method", "baseline", "--out", out, *TINY)
    assert "notes.md" in message and (out / "notes.md").read_text() == "my notes"


# ----------------------------------------------------------------------------- 3. stale temporaries


def test_3_resume_removes_stale_checkpoint_temporaries(phantoms: Path, tmp_path: Path) -> None:
    from svldrl.config import resolve_config
    from svldrl.experiments.pipeline import train_run

    out = tmp_path / "run"
    overrides = [*TINY[1:-1:2], "optim.epochs=2"]
    cfg = resolve_config("cpu", None, overrides, method="baseline")
    train_run(phantoms, cfg, out=out, progress=False, stop_after=1)
    stale = out / "checkpoints" / ".latest.pt.k1ll3d.tmp.pt"
    stale.write_bytes(b"\0" * 1024)
    train_run(phantoms, cfg, out=out, resume=True, progress=False)
    assert (out / "metrics.json").exists()
    assert not stale.exists()
    assert not [p for p in out.rglob(".*tmp*")]


# ----------------------------------------------------------------------------- 4. options checked first


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("optim.batch_size=0", "optim.batch_size"),
        ("optim.iters_per_epoch=-2", "optim.iters_per_epoch"),
        ("optim.lr=-1", "optim.lr"),
        ("data.patch_size=12", "data.patch_size"),
        ("optim.optimizer=adamw", "optim.optimizer"),
        ("rl.gamma=1.5", "rl.gamma"),
        ("data.val_fraction=0.7", "data.val_fraction"),
        ("sw_overlap=1.0", "sw_overlap"),
    ],
)
def test_4_option_errors_leave_no_run_folder(phantoms: Path, tmp_path: Path, override: str, key: str) -> None:
    out = tmp_path / "run"
    message = refused("train", phantoms, "--method", "baseline", "--out", out, *TINY, "--set", override)
    assert key in message
    assert not out.exists()


def test_4_a_run_without_checkpoint_restarts_under_the_corrected_command(phantoms: Path, tmp_path: Path) -> None:
    """A kill before the first checkpoint leaves config.yaml, env.json, split.json, data.json: the
    same command (with or without --resume) starts the run again instead of refusing."""
    out = tmp_path / "run"
    invoke("train", phantoms, "--method", "baseline", "--out", out, *TINY)
    shutil.rmtree(out / "checkpoints")
    (out / "metrics.json").unlink()
    (out / "log.csv").unlink()
    invoke("train", phantoms, "--method", "baseline", "--out", out, *TINY, "--set", "optim.lr=0.001")
    assert json.loads((out / "metrics.json").read_text())["config"]["optim"]["lr"] == 0.001
    shutil.rmtree(out / "checkpoints")
    (out / "metrics.json").unlink()
    invoke("train", phantoms, "--method", "baseline", "--out", out, *TINY, "--resume")
    assert (out / "metrics.json").exists()


# ----------------------------------------------------------------------------- 13. the umask is respected


def test_13_written_files_follow_the_umask(phantoms: Path, tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        out = tmp_path / "run"
        invoke("train", phantoms, "--method", "baseline", "--out", out, *TINY)
        invoke("phantom", tmp_path / "ph", "--n", "2", "--size", "16")
    finally:
        os.umask(old)
    written = [*out.rglob("*"), *(tmp_path / "ph").rglob("*")]
    modes = {str(p): stat.S_IMODE(p.stat().st_mode) for p in written if p.is_file()}
    assert {"config.yaml", "metrics.json", "latest.pt", "dataset.json"} <= {Path(p).name for p in modes}
    assert set(modes.values()) == {0o644}, modes


def test_13_a_hard_linked_copy_keeps_its_source_mode(tmp_path: Path) -> None:
    from svldrl.data.files import link_or_copy

    src = tmp_path / "image.nii.gz"
    src.write_bytes(b"data")
    src.chmod(0o440)
    dst = link_or_copy(src, tmp_path / "copy" / "image.nii.gz")
    assert dst.read_bytes() == b"data" and src.stat().st_nlink == 2  # a link, not a copy
    assert stat.S_IMODE(src.stat().st_mode) == 0o440
    link_or_copy(src, dst)  # again onto the same file: nothing to do, no temporary left behind
    assert [p.name for p in dst.parent.iterdir()] == ["image.nii.gz"]
