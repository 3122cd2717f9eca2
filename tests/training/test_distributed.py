"""One run over two processes (torchrun, gloo on CPU): DistributedDataParallel does the averaging (issue 17)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from svldrl.config import CPU, merge
from svldrl.data import PHANTOM_LABELS, make_phantoms, write_phantom_dataset
from svldrl.training import SVLDRLTrainer, resolve_device
from svldrl.training.distributed import Distributed, device_for, rank_gpu
from svldrl.training.svldrl import gradient_plan

WORKER = Path(__file__).with_name("ddp_worker.py")
TINY = ["--set", "data.patch_size=32", "--set", "optim.epochs=2", "--set", "optim.iters_per_epoch=2",
        "--set", "model.channels=[4,8]", "--set", "num_threads=1", "--set", "val_every=1"]  # fmt: skip


def torchrun_command(*args: str) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of a two-process torchrun on this machine."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR")}
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args], env


def torchrun(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Two processes on this machine; their output is returned, not printed."""
    command, env = torchrun_command(*args)
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_each_rank_gets_the_gpu_of_its_local_rank_and_a_rank_without_one_is_refused():
    assert rank_gpu(torch.device("cuda"), 1, gpus=2) == 1
    with pytest.raises(ValueError, match="names one GPU for every rank"):  # NCCL: "Duplicate GPU detected"
        rank_gpu(torch.device("cuda:0"), 1, gpus=2)
    with pytest.raises(ValueError, match="local rank 1 but this machine has 1 GPU.*--nproc_per_node=1"):
        rank_gpu(torch.device("cuda"), 1, gpus=1)
    assert resolve_device("cpu", with_index=False) == torch.device("cpu")
    assert device_for(torch.device("cuda"), Distributed(rank=1, world_size=2, local_rank=1)) == torch.device("cuda", 1)
    assert device_for(torch.device("cpu"), Distributed(rank=1, world_size=2, local_rank=1)) == torch.device("cpu")


def test_rank_seeds_batches_and_the_single_process_case():
    one, rank1 = Distributed(), Distributed(rank=1, world_size=2)
    assert one.rank_seed(7) == 7 and Distributed(rank=0, world_size=2).rank_seed(7) == 7  # rank 0 keeps the seed
    assert rank1.rank_seed(7) != 7 and rank1.rank_batch(4) == 2 and not rank1.is_main
    with pytest.raises(ValueError, match="must split evenly over 2 processes"):
        rank1.rank_batch(3)
    assert rank1.epoch_seed(7, 3) != rank1.epoch_seed(7, 4)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["straight", "resume"])
def test_two_processes_end_with_the_same_weights(tmp_path: Path, mode: str):
    result = torchrun(str(WORKER), str(tmp_path), mode, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    assert ranks[0].keys() == ranks[1].keys()
    for name in ranks[0]:  # DDP averaged every gradient: the replicas never drift apart
        assert torch.equal(ranks[0][name], ranks[1][name]), name
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "latest.pt", weights_only=False)
    assert checkpoint["epoch"] == 3  # the resumed run went on to the end
    for name, value in ranks[0].items():  # rank 0's checkpoint holds the network itself (no DDP prefix)
        assert torch.equal(checkpoint["model"][name], value)
    rows = (tmp_path / "run" / "log.csv").read_text().splitlines()[1:]
    assert [r.split(",")[0] for r in rows] == ["0", "1", "2"]  # one writer: each epoch logged once


@pytest.mark.slow
def test_the_cli_under_torchrun_writes_one_run_folder_and_resumes(tmp_path: Path):
    write_phantom_dataset(tmp_path / "ph", n=6, size=32, seed=1)
    result = torchrun("-m", "svldrl", "train", "ph", "--method", "baseline", "--out", "run", "-q", *TINY, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    env = json.loads((run / "env.json").read_text())
    assert metrics["epochs"] == 2 and env["processes"] == 2 and env["process_group_backend"] == "gloo"
    assert len((run / "log.csv").read_text().splitlines()) == 3
    assert not list(run.rglob("*.tmp*"))
    (run / "metrics.json").unlink()  # as if stopped after its last checkpoint: --resume finishes it on two ranks
    result = torchrun("-m", "svldrl", "train", "ph", "--method", "baseline", "--out", "run", "-q", "--resume",
                      *TINY, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((run / "metrics.json").read_text())["summary"] == metrics["summary"]


@pytest.mark.slow
def test_a_method_that_cannot_be_distributed_is_refused_before_any_work(tmp_path: Path):
    write_phantom_dataset(tmp_path / "ph", n=4, size=32, seed=1)
    result = torchrun("-m", "svldrl", "train", "ph", "--method", "co-teaching", "--out", "run", "-q", *TINY,
                      cwd=tmp_path)  # fmt: skip
    assert result.returncode != 0
    assert "co-teaching: cannot train over several processes" in result.stderr
    assert not (tmp_path / "run").exists()


def test_a_rank_other_than_0_leaves_the_run_folder_alone(tmp_path: Path, tiny_config, phantoms16, make_trainer):
    """Rank 0 may be mid-way through an atomic write when rank 1 starts: rank 1 must not sweep its temporary."""
    trainer = make_trainer(tiny_config({"method": "baseline", "optim": {"epochs": 1}}), phantoms16, tmp_path)
    writing = tmp_path / ".log.csv.x1y2z3.tmp.csv"  # the form atomic_path gives rank 0's log.csv temporary
    writing.write_text("epoch,stage\n")
    trainer.dist = Distributed(rank=1, world_size=2)  # no process group needed: rank 1 writes nothing
    trainer.fit()
    assert writing.exists()
    assert not (tmp_path / "log.csv").exists() and not (tmp_path / "checkpoints").exists()


@pytest.mark.parametrize("estimator", ["full", "sampled", "single"])
def test_the_replay_computes_what_the_interleaved_rollout_computes(tmp_path: Path, estimator: str):
    """SVL-DRL under DDP acts without gradient and replays the planned states in one pass: same outputs."""
    cfg = merge(CPU, {"method": "svl-drl", "data": {"patch_size": [32, 32, 32]}, "model": {"channels": [4, 8]},
                      "rl": {"episode_length": 3}, "method_options": {"gradient_estimator": estimator}})  # fmt: skip
    trainer = SVLDRLTrainer(cfg, make_phantoms(2, 32, seed=2), [], PHANTOM_LABELS, tmp_path, progress=False)
    image = torch.as_tensor(next(iter(trainer.sampler.epoch(0, 1, 2)))["image"], dtype=torch.float32)
    plan = gradient_plan(3, estimator, "all", torch.Generator().manual_seed(1))
    runs = []
    for world in (1, 2):  # world 2: the replay path, in this one process
        trainer.dist = Distributed(rank=0, world_size=world)
        trainer.generator.manual_seed(0)
        runs.append(trainer.rollout(image, plan, train_policy=True))
    interleaved, replayed = runs
    assert [torch.equal(a, b) for a, b in zip(interleaved.actions, replayed.actions, strict=True)] == [True] * 3
    for name in ("seg_logits", "values", "policy_logits"):
        a, b = getattr(interleaved, name), getattr(replayed, name)
        assert a.keys() == b.keys() and a
        for t in a:
            torch.testing.assert_close(a[t], b[t], rtol=1e-4, atol=1e-5)
            assert b[t].requires_grad


@pytest.mark.slow
def test_svl_drl_trains_under_torchrun(tmp_path: Path):
    write_phantom_dataset(tmp_path / "ph", n=4, size=32, seed=1)
    stages = ["--set", "stages.warmup_epochs=1", "--set", "stages.transition_epochs=0", "--set", "rl.episode_length=2"]
    result = torchrun("-m", "svldrl", "train", "ph", "--method", "svl-drl", "--out", "run", "-q", *TINY, *stages,
                      cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    rows = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert [r.split(",")[1] for r in rows[1:]] == ["warmup", "full_rl"]


def _rank_pids(launcher: subprocess.Popen) -> dict[int, int]:
    """``{local rank: pid}`` of the processes torchrun started: its children with ``LOCAL_RANK`` set (Linux /proc)."""
    pids = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) != launcher.pid:  # field 4: the parent's pid
                continue
            environ = (stat.parent / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):  # a process that ended meanwhile
            continue
        for entry in environ:
            if entry.startswith(b"LOCAL_RANK="):
                pids[int(entry.split(b"=", 1)[1])] = int(stat.parent.name)
    return pids


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the ranks' processes through /proc")
@pytest.mark.parametrize("killed_rank", [0, 1])
def test_a_killed_rank_leaves_no_half_written_file_and_the_run_resumes(tmp_path: Path, killed_rank: int):
    """Issue 17: a kill of any rank mid-run leaves only whole files, and ``--resume`` finishes the run.

    The kill lands wherever the rank is; the checks of whole files and no temporaries bite when it
    lands mid-write (the atomic writes' own tests plant that case), the rest on every run.
    """
    import signal
    import time

    write_phantom_dataset(tmp_path / "ph", n=6, size=32, seed=1)
    args = ["-m", "svldrl", "train", "ph", "--method", "baseline", "--out", "run", "-q", *TINY,
            "--set", "optim.epochs=12", "--set", "val_every=0"]  # fmt: skip
    command, env = torchrun_command(*args)
    launcher = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = tmp_path / "run" / "log.csv"
    try:
        deadline = time.monotonic() + 300
        while not (log.exists() and len(log.read_text().splitlines()) >= 3):  # two epochs done, the run going on
            assert launcher.poll() is None and time.monotonic() < deadline, "the run ended or stalled before the kill"
            time.sleep(0.05)
        ranks = _rank_pids(launcher)
        assert launcher.poll() is None and sorted(ranks) == [0, 1], f"ranks found: {ranks}"
        os.kill(ranks[killed_rank], signal.SIGKILL)
        assert launcher.wait(timeout=300) != 0
    finally:  # the ranks run in sessions of their own: never leave them behind a failed assertion
        if launcher.poll() is None:
            for pid in _rank_pids(launcher).values():
                os.kill(pid, signal.SIGKILL)
            launcher.kill()
            launcher.wait(timeout=60)
    run = tmp_path / "run"
    assert not (run / "metrics.json").exists()  # stopped mid-run: no result claimed
    checkpoint = torch.load(run / "checkpoints" / "latest.pt", weights_only=False)  # whole, loadable
    assert 1 <= checkpoint["epoch"] < 12
    rows = [row.split(",") for row in log.read_text().splitlines()]
    assert all(len(row) == len(rows[0]) for row in rows)  # no row cut short
    result = torchrun(*args, "--resume", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert not list(tmp_path.rglob("*.tmp*"))  # a temporary a kill left mid-write is swept on resume
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 12
    epochs = [int(r.split(",")[0]) for r in log.read_text().splitlines()[1:]]
    assert epochs == list(range(12))  # each epoch logged once, across the kill
