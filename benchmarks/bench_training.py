"""Cost of a Full-RL SVL-DRL training step relative to a baseline (Dice-only) step.

Issue target: at K = 3 a Full-RL step costs at most 2x a baseline step with the same backbone,
patch and batch. Both gradient estimators of ``training/svldrl.py`` are measured: "full" (every
state of the episode carries gradient, method.md) and "sampled" (the rollout runs without
gradient except at s(0) and one uniformly drawn state). ``--floor`` adds the episode alone, without
any gradient: K+1 forwards through the encoder and two decoders plus the rewards, which every
implementation of the method must compute, so no estimator can beat it.

On a shared machine use ``--threads 1``: two threads competing with other processes for two cores
run these convolutions many times slower and drown the ratios in noise.

The steps timed are the trainers' own ``train_step`` on one fixed batch (phantom patch), so the
numbers include everything a real step does (rollout, rewards with connected components, returns,
losses, backward, optimiser). Measurements of the baseline and the variants are interleaved, so a
change of machine load hits all of them alike; the minimum (least disturbed) and the median over
the repeats are reported.

    python benchmarks/bench_training.py --threads 1           # unet, 48^3 and 64^3, K = 1, 3, 5
    python benchmarks/bench_training.py --sizes 48 --ks 3 --floor  # plus the no-gradient episode alone
    python benchmarks/bench_training.py --threads 1 --quality 0 1   # estimators' Dice on noisy phantoms
    python benchmarks/bench_training.py --backbone swin-unetr --sizes 64 --ks 3 --repeats 2
    python benchmarks/bench_training.py --threads 1 --sizes 48 --ks 3 --heads full light  # model.heads
    python benchmarks/bench_training.py --device cuda --preset paper --sizes 96 --ks 3 --precision bf16

On CUDA every timed step ends with ``torch.cuda.synchronize()`` (kernels run asynchronously), and the
step runs inside the autocast of ``--precision`` exactly as ``Trainer.fit`` runs it.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from svldrl.config import TrainConfig, get_preset, merge
from svldrl.data import PHANTOM_LABELS, make_phantoms
from svldrl.training import METHODS, GradientPlan, SVLDRLTrainer, Trainer, episode_rewards
from svldrl.training.precision import autocast


def make_config(
    backbone: str, size: int, batch_size: int, k: int = 3, estimator: str = "full", heads: str = "full",
    preset: str = "cpu", device: str = "cpu", precision: str = "fp32",
) -> TrainConfig:
    """``preset`` with the benchmarked backbone, heads, patch, batch, episode, device and precision; every
    epoch is Full RL."""
    model = {"backbone": backbone, "heads": heads}
    if backbone == "swin-unetr":
        model["feature_size"] = 48
    return merge(
        get_preset(preset),
        {
            "device": device,
            "precision": precision,
            "model": model,
            "data": {"patch_size": [size] * 3},
            "optim": {"batch_size": batch_size, "epochs": 10},
            "rl": {"episode_length": k},
            "stages": {"skip_warmup": True, "skip_transition": True},
            "method_options": {"gradient_estimator": estimator},
        },
    )


def step_timer(
    method: str, cfg: TrainConfig, run_dir: Path, floor: bool = False, warmups: int = 1
) -> Callable[[], float]:
    """A function timing one ``train_step`` of ``method`` (epoch 0) on a fixed batch, in seconds.

    ``floor=True`` times only what any implementation of the episode must compute: the rollout
    without gradient (seg + policy decoders on s(0..K-1), seg + value on s(K)) and the rewards.
    """
    size = cfg.data.patch_size[0]
    cases = make_phantoms(2, size, seed=0)
    trainer: Trainer = METHODS.get(method)(cfg, cases, [], PHANTOM_LABELS, run_dir, progress=False)
    batch = trainer.batch_to_device(next(trainer.sampler.epoch(0, 1, cfg.optim.batch_size)))
    trainer.net.train()

    def episode_only() -> None:
        assert isinstance(trainer, SVLDRLTrainer)
        rollout = trainer.rollout(batch["image"], GradientPlan({}, {}), train_policy=False)
        episode_rewards(rollout.probs, trainer.foreground(batch["label"]), trainer.cfg)

    def run() -> float:
        synchronize(trainer.device)
        start = time.perf_counter()
        with autocast(trainer.precision, trainer.device):
            if floor:
                episode_only()
            else:
                trainer.train_step(batch, 0)
        synchronize(trainer.device)
        return time.perf_counter() - start

    for _ in range(warmups):  # allocator, oneDNN / cuDNN kernels; fp16: GradScaler's first (skipped) steps
        run()
    return run


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued kernels (CUDA runs them asynchronously; a CPU step is already done)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_size(
    backbone: str, size: int, batch_size: int, ks: list[int], estimators: list[str], repeats: int, floor: bool,
    heads: tuple[str, ...] = ("full",), preset: str = "cpu", device: str = "cpu", precision: str = "fp32",
) -> dict:
    """Median step times and ratios for one backbone and patch size."""
    tmp = Path(tempfile.mkdtemp(prefix="bench_training_"))
    execution = {"preset": preset, "device": device, "precision": precision}
    timers = {"baseline": step_timer("baseline", make_config(backbone, size, batch_size, **execution), tmp / "base")}
    for k in ks:
        for estimator in estimators:
            for form in heads:
                cfg = make_config(backbone, size, batch_size, k, estimator, form, **execution)
                name = f"K={k} {estimator}" + ("" if form == "full" else f" {form} heads")
                timers[name] = step_timer("svl-drl", cfg, tmp / f"k{k}_{estimator}_{form}")
        if floor:
            cfg = make_config(backbone, size, batch_size, k, **execution)
            timers[f"K={k} floor"] = step_timer("svl-drl", cfg, tmp / f"k{k}_floor", floor=True)
    times: dict[str, list[float]] = {name: [] for name in timers}
    for _ in range(repeats):
        for name, timer in timers.items():  # interleaved: load changes hit every variant alike
            times[name].append(timer())
    fastest = {name: min(values) for name, values in times.items()}
    medians = {name: statistics.median(values) for name, values in times.items()}
    return {
        "backbone": backbone,
        **execution,
        "patch": size,
        "batch": batch_size,
        "repeats": repeats,
        "threads": torch.get_num_threads(),
        "min_seconds": fastest,
        "median_seconds": medians,
        "all_seconds": times,
        "ratio_min": {name: t / fastest["baseline"] for name, t in fastest.items()},
        "ratio_median": {name: t / medians["baseline"] for name, t in medians.items()},
    }


def quality(seeds: list[int], epochs: int, size: int = 32) -> list[dict[str, Any]]:
    """Clean validation Dice after training with each estimator on phantoms with 50 % MT label noise.

    Same seed, data and noise for both estimators (and the baseline for reference): 6 phantoms,
    4 for training (2 corrupted), 2 for validation on clean labels; the cpu preset shortened to
    ``epochs`` epochs of 4 steps with the default stage fractions.
    """
    from svldrl.noise import corrupt_labels

    rows = []
    for seed in seeds:
        cases = make_phantoms(6, size, seed=seed)
        train, val = cases[:4], cases[4:]
        noisy, _ = corrupt_labels(train, "mt", 0.5, seed)
        train = [c.with_label(noisy[c.case_id]) for c in train]
        for method, estimator in (("baseline", "full"), ("svl-drl", "full"), ("svl-drl", "sampled")):
            cfg = merge(
                make_config("unet", size, 2, 3, estimator),
                {
                    "method": method,
                    "seed": seed,
                    "optim": {"epochs": epochs, "iters_per_epoch": 4},
                    "stages": {"skip_warmup": False, "skip_transition": False},
                    "val_every": epochs,
                },
            )
            run_dir = Path(tempfile.mkdtemp(prefix="bench_quality_"))
            start = time.perf_counter()
            result = METHODS.get(method)(cfg, train, val, PHANTOM_LABELS, run_dir, progress=False).fit()
            row = {
                "seed": seed,
                "method": method,
                "estimator": estimator if method == "svl-drl" else "-",
                "val_dice": result["val_dice"],
                "seconds": time.perf_counter() - start,
            }
            print(row, flush=True)
            rows.append(row)
    return rows


def print_table(result: dict) -> None:
    """Min (the run least disturbed by other processes) and median of the repeats, and their ratios."""
    where = f"{result.get('device', 'cpu')} {result.get('precision', 'fp32')}"
    print(f"\n{result['backbone']} {result['patch']}^3, batch {result['batch']}, {where}, {result['repeats']} repeats")
    print(f"{'step':<16}{'min s':>8}{'x base':>8}{'median s':>10}{'x base':>8}")
    for name in result["min_seconds"]:
        print(
            f"{name:<16}{result['min_seconds'][name]:>8.2f}{result['ratio_min'][name]:>8.2f}"
            f"{result['median_seconds'][name]:>10.2f}{result['ratio_median'][name]:>8.2f}"
        )


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="unet", choices=["unet", "swin-unetr"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[48, 64])
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 3, 5])
    parser.add_argument("--estimators", nargs="+", default=["full", "sampled"], choices=["full", "sampled", "single"])
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--floor", action="store_true", help="also time the no-gradient episode alone (the floor)")
    parser.add_argument("--heads", nargs="+", default=["full"], choices=["full", "light"],
                        help="value/policy head forms to time (model.heads)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--out", type=Path, default=None, help="append the results as JSON lines to this file")
    parser.add_argument("--preset", default="cpu", choices=["cpu", "paper"], help="the configuration timed")
    parser.add_argument("--device", default="cpu", help="'cpu', 'cuda' or 'cuda:N'")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument(
        "--quality",
        type=int,
        nargs="*",
        default=None,
        metavar="SEED",
        help="instead of timing: clean val Dice of each estimator on noisy phantoms, these seeds (CPU, fp32: "
        "--device, --preset and --precision do not apply)",
    )
    parser.add_argument("--quality-epochs", type=int, default=12)
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    if args.quality is not None:
        rows = quality(args.quality or [0], args.quality_epochs)
        if args.out is not None:
            with args.out.open("a") as handle:
                handle.writelines(json.dumps(row) + "\n" for row in rows)
        return rows
    results = []
    for size in args.sizes:
        result = bench_size(args.backbone, size, args.batch_size, args.ks, args.estimators, args.repeats, args.floor,
                            tuple(args.heads), args.preset, args.device, args.precision)
        result["torch"] = torch.__version__
        result["machine"] = (torch.cuda.get_device_name(torch.device(args.device)) if args.device.startswith("cuda")
                             else platform.processor() or platform.machine())  # fmt: skip
        print_table(result)
        results.append(result)
        if args.out is not None:
            with args.out.open("a") as handle:
                handle.write(json.dumps(result) + "\n")
    return results


if __name__ == "__main__":
    main()
