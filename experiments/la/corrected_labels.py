"""How good are the training labels a label-correcting method (ADELE, RSF-assisted) ended with?

ADELE-style methods rewrite their training labels with confident predictions while they train;
the final labels are kept in the run's checkpoint. This compares them, on the grid the method
trained on, with the clean labels and with the noisy labels it started from (mean Dice over the
corrupted and over the clean training cases, and the foreground volume ratio to the clean label).

    python experiments/la/corrected_labels.py ../shared/data/la2018 runs/la2018/adele__mt-0.5__seed0 [...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from svldrl.data import load_dataset, prepare_cases
from svldrl.metrics import dice
from svldrl.training.checkpoint import checkpoint_path, config_from_dict, load_checkpoint


def label_quality(run_dir: Path, data: Path) -> dict[str, dict[str, float]]:
    """Per group of training cases (corrupted / clean): Dice of noisy and of corrected labels to clean."""
    payload = load_checkpoint(checkpoint_path(run_dir), map_location="cpu")
    corrected = {k: v.numpy() for k, v in payload["adele"]["labels"].items()}
    if not corrected:
        raise SystemExit(f"{run_dir}: the run never corrected its labels")
    cfg = config_from_dict(payload["config"])
    dataset = load_dataset(data)
    noisy = np.load(json.loads((run_dir / "noisy_labels.json").read_text())["path"])
    manifest = {
        c["case_id"]: c["corrupted"] for c in json.loads((run_dir / "noise_manifest.json").read_text())["cases"]
    }
    rows: dict[str, list[tuple[float, float, float]]] = {"corrupted": [], "clean": []}
    for case_id, label in corrected.items():
        clean_case = dataset.get(case_id)
        clean = prepare_cases([clean_case], cfg.data)[0].label > 0
        noisy_label = prepare_cases([clean_case.with_label(noisy[case_id])], cfg.data)[0].label > 0
        fixed = label > 0
        group = "corrupted" if manifest[case_id] else "clean"
        rows[group].append((dice(noisy_label, clean), dice(fixed, clean), fixed.sum() / max(int(clean.sum()), 1)))
    return {
        g: {
            "n": len(r),
            "dice_noisy": float(np.mean([x[0] for x in r])),
            "dice_corrected": float(np.mean([x[1] for x in r])),
            "volume_ratio_median": float(np.median([x[2] for x in r])),
        }
        for g, r in rows.items()
        if r
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the LA folder the runs were trained on")
    parser.add_argument("runs", type=Path, nargs="+", help="run folders of ADELE or RSF-assisted ADELE")
    args = parser.parse_args()
    for run in args.runs:
        for group, q in label_quality(run, args.data).items():
            print(
                f"{run.name} {group} training cases (n={q['n']}): Dice to clean, noisy {100 * q['dice_noisy']:.1f}"
                f" -> corrected {100 * q['dice_corrected']:.1f};"
                f" corrected / clean volume median {q['volume_ratio_median']:.2f}"
            )


if __name__ == "__main__":
    main()
