"""How good are the teacher's corrections? Label quality after the fact for runs with a frozen trusted teacher.

For a ``teacher-correction`` run, or an SVL-DRL-T run with ``method_options.reward=teacher``, the
teacher (the network trained on the trusted cases alone, frozen and kept in the checkpoint) is run
on every training case by sliding window, and its confident corrections are applied to the noisy
label by the rule training used (``confident_correction``, the run's confidence; training applies it
patch by patch, here it sees the blended whole-volume probabilities). Per group
of training cases (corrupted by the noise, untouched, trusted): Dice of the noisy and of the
corrected label against the clean one, and the share of voxels changed. For SVL-DRL-T this is the
correction its reward pays for; what the agents actually learned is ``label_agents_policy.py``'s.
The report also gives the Dice of the same correction kept to one direction (only labels set to
background, only labels set to foreground): how much of the teacher's gain, and of its damage, comes
from each kind of edit; and kept, per case, to the direction with more edits in that case (a
case's label noise is one-sided when it is systematic, a teacher's own errors go both ways). For a
run with ``direction=case`` it adds the labels as that run trained on them: each case corrected in
the direction its ``teacher_directions.json`` records, or not at all.

    python experiments/la/teacher_labels.py ../shared/data/la2018 runs/la2018/teacher-correction__sfda-0.5__seed0
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from svldrl.baselines.teacher_correction import confident_correction
from svldrl.data import load_dataset
from svldrl.experiments.run_labels import training_case_labels
from svldrl.inference import predict_probabilities
from svldrl.metrics import dice
from svldrl.training.checkpoint import checkpoint_path, load_checkpoint, load_trained


def teacher_of(run: Path) -> tuple[torch.nn.Module, object, float]:
    """The run's frozen teacher (from ``latest.pt``), its configuration and the correction's confidence."""
    net, cfg, _ = load_trained(run, device="cpu")  # the right architecture; its weights are replaced below
    payload = load_checkpoint(checkpoint_path(run), map_location="cpu")
    if "teacher" not in payload:
        raise SystemExit(f"{run}: its checkpoint holds no teacher (not a teacher-correction or reward=teacher run)")
    net.load_state_dict(payload["teacher"])
    options = cfg.method_options
    confidence = float(options.get("confidence", options.get("teacher_confidence", 0.8)))
    return net.eval(), cfg, confidence


def run_report(run: Path, data: Path) -> dict[str, dict[str, float]]:
    teacher, cfg, confidence = teacher_of(run)
    directions_file = run / "teacher_directions.json"
    directions = json.loads(directions_file.read_text())["cases"] if directions_file.is_file() else None
    rows: dict[str, list[dict[str, float]]] = {"corrupted": [], "untouched": [], "trusted": []}
    for case in training_case_labels(run, load_dataset(data), cfg.data):
        clean, label = case.clean, case.noisy
        prob = predict_probabilities(teacher, case.image, cfg.data.patch_size, overlap=cfg.sw_overlap,
                                     mode="classes")  # fmt: skip
        logits = torch.from_numpy(np.log(np.clip(prob, 1e-6, 1.0)))[None]  # log-probabilities as logits
        onehot = torch.from_numpy(np.stack([~label, label]).astype(np.float32))[None]
        fixed = confident_correction(onehot, logits, "classes", confidence)[0, 1].numpy() > 0.5
        background_only, foreground_only = label & fixed, label | fixed
        to_background, to_foreground = int((label & ~fixed).sum()), int((~label & fixed).sum())
        dominant = background_only if to_background >= to_foreground else foreground_only
        as_trained = {}
        if directions is not None:
            chosen = directions[case.case_id]["direction"]
            trained = {"background": background_only, "foreground": foreground_only}.get(chosen, label)
            corrected_case = float(chosen in ("background", "foreground"))
            as_trained = {"dice_as_trained": dice(trained, clean), "corrected_as_trained": corrected_case}
        rows[case.group].append({"dice_noisy": dice(label, clean), "dice_corrected": dice(fixed, clean),
                                 "dice_background_only": dice(background_only, clean),
                                 "dice_foreground_only": dice(foreground_only, clean),
                                 "dice_dominant_direction": dice(dominant, clean),
                                 "dominant_is_background": float(to_background >= to_foreground),
                                 **as_trained,
                            "changed": float((fixed != label).mean()),
                            "changes_toward_clean": float((fixed == clean)[fixed != label].mean())
                            if (fixed != label).any() else float("nan")})  # fmt: skip
    return {g: {"n": len(r), **{k: float(np.nanmean([x[k] for x in r])) for k in r[0]}} for g, r in rows.items() if r}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the LA folder the runs were trained on")
    parser.add_argument("runs", type=Path, nargs="+", help="teacher-correction or reward=teacher run folders")
    parser.add_argument("--json", type=Path, help="also write the reports here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    reports = {}
    for run in args.runs:
        reports[run.name] = report = run_report(run, args.data)
        for group, q in report.items():
            print(f"{run.name} {group} (n={q['n']}): Dice to clean {100 * q['dice_noisy']:.1f} -> "
                  f"{100 * q['dice_corrected']:.1f}; {100 * q['changed']:.2f} % of voxels changed, "
                  f"{100 * q['changes_toward_clean']:.0f} % of the changes agree with the clean label; only the "
                  f"edits to background {100 * q['dice_background_only']:.1f}, only those to foreground "
                  f"{100 * q['dice_foreground_only']:.1f}, only the case's more frequent direction "
                  f"{100 * q['dice_dominant_direction']:.1f} (background in {100 * q['dominant_is_background']:.0f} % "
                  "of the cases)"
                  + (f"; as trained (direction=case): {100 * q['dice_as_trained']:.1f}, "
                     f"{100 * q['corrected_as_trained']:.0f} % of the cases corrected"
                     if "dice_as_trained" in q else ""))
    if args.json:
        args.json.write_text(json.dumps(reports, indent=2) + "\n")


if __name__ == "__main__":
    main()
