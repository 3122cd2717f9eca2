"""Predict new volumes with a trained run, and score predictions against reference labels.

Backs ``svldrl predict`` and ``svldrl evaluate``. Predictions are always made on, written on and
scored on each input's own original grid, whatever spacing the model works at.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from svldrl._io import atomic_write, write_json
from svldrl.config import TrainConfig
from svldrl.data import Case, LabelSpec, Split, load_case, load_dataset, prepare_cases
from svldrl.experiments.pipeline import DATA_FILE, SPLIT_FILE, score_cases, score_prediction
from svldrl.metrics import summarise

NIFTI_ENDINGS = (".nii.gz", ".nii")


def run_dir_of(run_or_checkpoint: Path) -> Path:
    """The run folder of a run folder or of a checkpoint inside it (``<run>/checkpoints/x.pt``)."""
    if run_or_checkpoint.is_dir():
        return run_or_checkpoint
    return run_or_checkpoint.parent.parent


def training_modality(run_dir: Path) -> tuple[str, ...] | None:
    """The modality of the training data (from the run's ``data.json``), to normalise inputs alike."""
    record = run_dir / DATA_FILE
    if not record.exists():
        return None
    return tuple(json.loads(record.read_text())["modality"])


def input_files(path: Path) -> list[Path]:
    """Prediction inputs: one NIfTI/h5 file, an LA case folder, or a folder of them."""
    if path.is_file():
        return [path]
    if (path / "mri_norm2.h5").exists():
        return [path / "mri_norm2.h5"]
    files = sorted(p for p in path.iterdir() if p.name.endswith(NIFTI_ENDINGS) or p.suffix == ".h5")
    files += sorted(p / "mri_norm2.h5" for p in path.iterdir() if (p / "mri_norm2.h5").exists())
    if not files:
        raise FileNotFoundError(f"{path}: no .nii.gz, .nii or LA .h5 inputs found")
    return files


def predict_inputs(
    run_or_checkpoint: Path, inputs: Path, output: Path, *, device: str = "auto", refine_steps: int | None = None
) -> Iterator[Path]:
    """Predict every input and write its mask as NIfTI on the input's grid; yields written paths.

    A single input file with an ``output`` ending in ``.nii.gz``/``.nii`` is written to that file;
    otherwise ``output`` is a folder and masks are named after the case ids.
    """
    from svldrl.inference import predict_case, write_prediction
    from svldrl.training import load_trained

    files = input_files(inputs)  # fails on bad input before the model loads
    net, cfg, labels = load_trained(run_or_checkpoint, device=device)
    cfg = _with_device(cfg, device)
    modality = training_modality(run_dir_of(run_or_checkpoint))
    single_file = len(files) == 1 and output.name.endswith(NIFTI_ENDINGS)
    for source in files:
        case = load_case(source, modality=modality)
        _check_channels(case, net, source)
        mask = predict_case(net, prepare_cases([case], cfg.data)[0], labels, cfg, refine_steps=refine_steps)
        target = output if single_file else output / f"{case.case_id}.nii.gz"  # LA h5: named after the case folder
        yield write_prediction(mask, case, target)


def _with_device(cfg: TrainConfig, device: str) -> TrainConfig:
    from dataclasses import replace

    return replace(cfg, device=device)


def _check_channels(case: Case, net: Any, source: Path) -> None:
    expected = getattr(net, "in_channels", None)
    if expected is not None and case.n_channels != expected:
        raise ValueError(f"{source}: {case.n_channels} image channel(s), the model was trained on {expected}")


def evaluate_folder(pred_dir: Path, reference: Path, labels: LabelSpec | None = None) -> dict[str, Any]:
    """Score NIfTI masks named ``<case id>.nii.gz`` against the labels of a data set in any format."""
    dataset = load_dataset(reference)
    labels = labels or dataset.labels
    preds = {p.name[: -len(e)]: p for p in pred_dir.iterdir() for e in NIFTI_ENDINGS if p.name.endswith(e)}
    if not preds:
        raise FileNotFoundError(f"{pred_dir}: no .nii.gz predictions found")
    missing = sorted(set(preds) - set(dataset.case_ids))
    if missing:
        raise ValueError(f"{pred_dir}: predictions without a reference case in {reference}: {', '.join(missing[:5])}")
    per_case = {}
    for case_id in sorted(preds):
        reference_case = dataset.get(case_id)
        pred = _read_mask(preds[case_id], reference_case, labels)
        per_case[case_id] = score_prediction(pred, reference_case, labels)
    return {"summary": summarise(list(per_case.values())).to_dict(), "per_case": per_case}


def _read_mask(path: Path, reference: Case, labels: LabelSpec) -> Any:
    import nibabel as nib
    import numpy as np

    mask = np.asarray(nib.load(str(path)).dataobj)
    if mask.shape[-3:] != reference.shape and mask.shape[:3] != reference.shape:
        raise ValueError(f"{path}: shape {mask.shape} differs from the reference's {reference.shape}")
    if labels.mode == "regions" and mask.ndim == 4 and mask.shape[:3] == reference.shape:
        mask = np.moveaxis(mask, -1, 0)
    return mask.astype(np.uint8)


def evaluate_run(
    run_dir: Path, data: Path, *, device: str = "auto", refine_steps: int | None = None, held_out: bool = False
) -> dict[str, Any]:
    """Predict the cases of the data set at ``data`` with a trained run and score them (one command).

    ``held_out``: only the run's held-out cases (its ``split.json``: test, else validation), the
    cases ``train`` scored into ``metrics.json``; without it, every case of ``data`` (e.g. a
    separate test set in the same layout).
    """
    from svldrl.experiments.pipeline import held_out_ids
    from svldrl.training import load_trained

    dataset = load_dataset(data)
    ids = list(dataset.case_ids)
    if held_out:
        split_file = run_dir_of(run_dir) / SPLIT_FILE
        if not split_file.is_file():
            raise FileNotFoundError(f"{split_file}: --held-out needs the run's split file")
        _, ids = held_out_ids(Split.load(split_file))
        if missing := sorted(set(ids) - set(dataset.case_ids)):
            raise ValueError(f"{split_file}: {len(missing)} held-out case(s) are not in {data}, e.g. {missing[0]!r}")
    net, cfg, labels = load_trained(run_dir, device=device)
    cfg = _with_device(cfg, device)
    return score_cases(net, dataset, ids, labels, cfg, refine_steps=refine_steps)


def write_evaluation(result: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """``<out>.csv`` (one row per case and class) and ``<out>.json`` (summary and per-case values)."""
    stem = out.with_suffix("") if out.suffix in (".json", ".csv") else out
    # not with_suffix: a stem such as "svl-drl__mt-0.5__seed0" would lose everything after its dot
    json_path, csv_path = stem.with_name(stem.name + ".json"), stem.with_name(stem.name + ".csv")
    write_json(json_path, result)
    rows = [
        {"case_id": case_id, "class": name, **values}
        for case_id, per_class in result["per_case"].items()
        for name, values in per_class.items()
    ]
    fields = ["case_id", "class"] + sorted({k for r in rows for k in r} - {"case_id", "class"})

    def write(fh: Any) -> None:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)

    atomic_write(csv_path, write)
    return csv_path, json_path
