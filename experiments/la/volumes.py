"""Predicted against reference volume on a run's held-out cases (over- or under-segmentation).

Dice and HD95 say how far off a mask is, not in which direction. This script predicts each
held-out case of a run folder (as its metrics.json does: original grid, final model) and prints
the median and range of predicted / reference foreground volume, and the same for the run's
noisy training labels against their clean ones (the direction of the noise it learned from).

    python experiments/la/volumes.py ../shared/data/la2018 runs/la2018/baseline__sfda-0.5__seed0 [...]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

from svldrl.data import load_dataset, prepare_cases
from svldrl.data.split import Split
from svldrl.experiments.pipeline import held_out_ids
from svldrl.inference import predict_case
from svldrl.training import load_trained


def volume_ratios(run_dir: Path, data: Path) -> np.ndarray:
    """Predicted / reference foreground voxels per held-out case (the original grid)."""
    net, cfg, labels = load_trained(run_dir, device="cpu")
    cfg = dataclasses.replace(cfg, sw_batch_size=4)  # an execution setting: same masks, faster
    dataset = load_dataset(data)
    _, ids = held_out_ids(Split.load(run_dir / "split.json"))
    ratios = []
    for case_id in ids:
        original = dataset.get(case_id)
        pred = predict_case(net, prepare_cases([original], cfg.data)[0], labels, cfg)
        ratios.append((pred > 0).sum() / max(int((original.label > 0).sum()), 1))
    return np.array(ratios)


def noisy_label_ratios(run_dir: Path, data: Path) -> np.ndarray | None:
    """Noisy / clean foreground voxels on the run's corrupted training cases (None for a clean run)."""
    pointer = run_dir / "noisy_labels.json"
    if not pointer.is_file():
        return None
    noisy = np.load(json.loads(pointer.read_text())["path"])
    manifest = json.loads((run_dir / "noise_manifest.json").read_text())
    dataset = load_dataset(data)
    corrupted = [c["case_id"] for c in manifest["cases"] if c["corrupted"]]
    return np.array([(noisy[i] > 0).sum() / max(int((dataset.get(i).label > 0).sum()), 1) for i in corrupted])


def describe(r: np.ndarray) -> str:
    return f"median {np.median(r):.2f} (range {r.min():.2f}-{r.max():.2f}), larger in {int((r > 1).sum())}/{len(r)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the LA folder the runs were trained on")
    parser.add_argument("runs", type=Path, nargs="+", help="run folders")
    args = parser.parse_args()
    for run in args.runs:
        line = f"{run.name}: predicted / reference {describe(volume_ratios(run, args.data))}"
        noisy = noisy_label_ratios(run, args.data)
        if noisy is not None:
            line += f"; noisy / clean training labels {describe(noisy)}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
