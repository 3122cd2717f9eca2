"""Predict new volumes with a trained run, and score predictions against reference labels.

Backs ``svldrl predict`` and ``svldrl evaluate``. Predictions are always made on, written on and
scored on each input's own original grid, whatever spacing the model works at.
"""

from __future__ import annotations

import csv
import json
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from svldrl._io import atomic_write, write_json
from svldrl.config import TrainConfig
from svldrl.data import (
    Case,
    Dataset,
    DataWarning,
    LabelCodec,
    LabelSpec,
    Split,
    load_case,
    load_dataset,
    prepare_cases,
    read_nifti,
)
from svldrl.data.files import same_geometry, strip_nifti_ending
from svldrl.experiments.pipeline import DATA_FILE, SPLIT_FILE, score_cases, score_prediction
from svldrl.experiments.tables import noise_label
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
    run_or_checkpoint: Path,
    inputs: Path,
    output: Path,
    *,
    device: str = "auto",
    refine_steps: int | None = None,
    overwrite: bool = False,
) -> Iterator[Path]:
    """Predict every input and write its mask as NIfTI on the input's grid; yields written paths.

    A single input file with an ``output`` ending in ``.nii.gz``/``.nii`` is written to that file;
    otherwise ``output`` is a folder and masks are named after the case ids. Before the first
    mask is written, every input image is read (labels never are), and the outputs are checked:
    never an input file or the folder of one, never a file that exists unless ``overwrite``.
    """
    from svldrl.inference import predict_case, write_prediction
    from svldrl.training import load_trained

    files = input_files(inputs)  # fails on bad input before the model loads
    net, cfg, labels = load_trained(run_or_checkpoint, device=device)
    cfg = _with_device(cfg, device)
    modality = training_modality(run_dir_of(run_or_checkpoint))
    case_ids = [_checked_input(source, modality, net).case_id for source in files]
    targets = prediction_targets(files, case_ids, output)
    check_prediction_targets(files, targets, overwrite=overwrite)
    for source, target in zip(files, targets, strict=True):
        case = load_case(source, modality=modality, with_label=False)
        mask = predict_case(net, prepare_cases([case], cfg.data)[0], labels, cfg, refine_steps=refine_steps)
        yield write_prediction(mask, case, target)


def _checked_input(source: Path, modality: tuple[str, ...] | None, net: Any) -> Case:
    """Read one input image whole (a truncated file fails here, naming it) and check its channels."""
    case = load_case(source, modality=modality, with_label=False)
    _check_channels(case, net, source)
    return case


def prediction_targets(files: list[Path], case_ids: list[str], output: Path) -> list[Path]:
    """Where each input's mask goes: ``output`` itself for one input and a NIfTI name, else ``output/<id>.nii.gz``."""
    if output.name.endswith(NIFTI_ENDINGS) and not output.is_dir():
        if len(files) != 1:
            raise ValueError(f"{output}: a file name, but there are {len(files)} inputs; give an output folder")
        return [output]
    targets = [output / f"{case_id}.nii.gz" for case_id in case_ids]  # LA h5: named after the case folder
    seen: dict[Path, Path] = {}
    for source, target in zip(files, targets, strict=True):
        if target in seen:
            raise ValueError(f"{source}: its mask {target.name} would replace that of {seen[target]}")
        seen[target] = source
    return targets


def check_prediction_targets(files: list[Path], targets: list[Path], *, overwrite: bool) -> None:
    """Refuse outputs that would destroy data: an input, a file in an input's folder, or (without
    ``overwrite``) any existing file.

    Why: ``predict RUN data/labelsTr data/labelsTr`` used to replace the reference labels with
    predictions, after which ``evaluate`` reported 100 % Dice. Writing into the folder of an input
    is refused even with ``overwrite``: inputs and outputs side by side invite exactly that.
    """
    input_files_ = {f.resolve() for f in files}
    input_folders = {f.resolve().parent for f in files}
    for target in targets:
        resolved = target.resolve()
        if resolved in input_files_:
            raise ValueError(f"{target}: is one of the inputs; predict never writes over its own input")
        if resolved.parent in input_folders:
            raise ValueError(
                f"{target.parent}: is the folder of the inputs; predict never writes into its own input, "
                "give another output folder"
            )
    existing = [t for t in targets if t.exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"{existing[0].parent}: {len(existing)} file(s) would be replaced, e.g. {existing[0].name}; "
            "use --overwrite to replace them"
        )


def _with_device(cfg: TrainConfig, device: str) -> TrainConfig:
    from dataclasses import replace

    return replace(cfg, device=device)


def _check_channels(case: Case, net: Any, source: Path) -> None:
    expected = getattr(net, "in_channels", None)
    if expected is not None and case.n_channels != expected:
        raise ValueError(f"{source}: {case.n_channels} image channel(s), the model was trained on {expected}")


def prediction_files(pred_dir: Path) -> dict[str, Path]:
    """``{case id: file}`` of the NIfTI masks in a folder (``<case id>.nii.gz`` or ``.nii``)."""
    if not pred_dir.is_dir():
        raise FileNotFoundError(f"{pred_dir}: not a folder of predictions")
    found: dict[str, Path] = {}
    for path in sorted(pred_dir.iterdir()):
        case_id = strip_nifti_ending(path.name)
        if case_id is None or not path.is_file():
            continue
        if case_id in found:
            raise ValueError(f"{path}: a second prediction for case {case_id!r} (also {found[case_id].name})")
        found[case_id] = path
    return found


def evaluate_folder(
    pred_dir: Path,
    reference: Path,
    labels: LabelSpec | None = None,
    *,
    cases: Sequence[str] | None = None,
    allow_missing: bool = False,
) -> dict[str, Any]:
    """Score NIfTI masks named ``<case id>.nii.gz`` against the labels of a data set in any format.

    Every reference case (or every case of ``cases``) must have a prediction: a missing one is an
    error, or with ``allow_missing`` an empty prediction (the worst score, never a smaller mean),
    listed under ``"missing"`` and warned about. Each prediction must be a label map on its
    reference's grid with values of the label set (``read_prediction``).
    """
    dataset = load_dataset(reference)
    labels = labels or dataset.labels
    preds = prediction_files(pred_dir)
    unknown = sorted(set(preds) - set(dataset.case_ids))
    if unknown:
        raise ValueError(f"{pred_dir}: predictions without a reference case in {reference}: {', '.join(unknown[:5])}")
    expected = list(dataset.case_ids) if cases is None else _known_cases(cases, dataset, reference)
    missing = [c for c in expected if c not in preds]
    if missing and not allow_missing:
        raise ValueError(
            f"{pred_dir}: no prediction for {len(missing)} of {len(expected)} reference case(s), e.g. "
            f"{', '.join(missing[:3])}; name the cases to score with --cases, or score them as empty "
            "predictions (the worst score) with --allow-missing"
        )
    if not set(expected) - set(missing):
        raise FileNotFoundError(f"{pred_dir}: no .nii.gz predictions of the cases to score")
    for case_id in expected:  # every header first: a wrong grid fails before any long scoring
        if case_id in preds:
            check_prediction_header(preds[case_id], dataset.get(case_id))
    per_case = {}
    for case_id in expected:
        reference_case = dataset.get(case_id)
        warn_if_empty_reference(reference_case, labels)
        if case_id in preds:
            pred = read_prediction(preds[case_id], reference_case, dataset.codec)
        else:
            pred = np.zeros_like(reference_case.label)
        per_case[case_id] = score_prediction(pred, reference_case, labels)
    if missing:
        warnings.warn(
            f"{pred_dir}: {len(missing)} case(s) without a prediction counted as empty predictions (the worst "
            f"score): {', '.join(missing)}",
            UserWarning,
            stacklevel=2,
        )
    summary = summarise(list(per_case.values())).to_dict()
    return {"summary": summary, "per_case": per_case, "missing": missing}


def _known_cases(cases: Sequence[str], dataset: Dataset, reference: Path) -> list[str]:
    unknown = [c for c in cases if c not in dataset.case_ids]
    if unknown:
        raise ValueError(f"--cases: {len(unknown)} case(s) not in {reference}, e.g. {unknown[0]!r}")
    if not cases:
        raise ValueError("--cases: no case ids given")
    return list(dict.fromkeys(cases))


def warn_if_empty_reference(case: Case, labels: LabelSpec) -> None:
    """An all-empty reference scores HD95 as the volume diagonal and Dice 0 or 1 by convention: say so."""
    if case.label is not None and not case.label.any():
        source = case.meta.get("label_file") or case.case_id
        warnings.warn(
            f"{source}: the reference label of case {case.case_id!r} is empty (no foreground voxel); "
            "its distances are the worst-case values",
            DataWarning,
            stacklevel=3,
        )


def _reference_affine(reference: Case) -> np.ndarray:
    affine = reference.meta.get("original_affine", reference.affine)
    return np.asarray(affine if affine is not None else np.diag([*reference.spacing, 1.0]), dtype=np.float64)


def _reference_shape(reference: Case) -> tuple[int, ...]:
    return tuple(int(s) for s in reference.meta.get("original_shape", reference.shape))


def check_prediction_header(path: Path, reference: Case) -> None:
    """Shape and affine of a prediction against its reference, from the header alone (cheap)."""
    import nibabel as nib

    try:
        image = nib.load(str(path))
    except Exception as exc:  # nibabel raises many kinds for foreign or damaged files
        raise ValueError(f"{path}: cannot read NIfTI file ({type(exc).__name__}: {exc})") from exc
    shape, expected = tuple(image.shape), _reference_shape(reference)
    if shape[:3] != expected and shape[-3:] != expected:
        raise ValueError(f"{path}: shape {shape} differs from the reference's {expected}")
    if not same_geometry(np.asarray(image.affine), _reference_affine(reference)):
        raise ValueError(
            f"{path}: affine (spacing/orientation/origin) differs from the reference of case "
            f"{reference.case_id!r}; resample the prediction onto the reference's grid first"
        )


def read_prediction(path: Path, reference: Case, codec: LabelCodec) -> np.ndarray:
    """A prediction file as a label in the ``Case`` layout, refused unless it is a label map.

    Refused, naming the file: unreadable or not NIfTI; another shape or affine than the
    reference; non-integer values (a probability map, which a cast to uint8 would score as
    Dice 0); values outside the label set. Regions may also come as a 4D stack of binary masks.
    """
    check_prediction_header(path, reference)
    data, _, _ = read_nifti(path)  # a truncated or non-gzip file fails here, naming it
    data = np.asarray(data)
    if np.issubdtype(data.dtype, np.floating):
        if not np.all(np.isfinite(data)) or not np.array_equal(data, np.round(data)):
            raise ValueError(
                f"{path}: holds non-integer values ({data.dtype}, e.g. {_first_fraction(data)}): a probability "
                "map? Threshold it into a label map first"
            )
    shape = _reference_shape(reference)
    if data.ndim == 3:
        return codec.decode(data.astype(np.int64), source=str(path))
    if codec.spec.mode != "regions" or codec.spec.n_outputs not in (data.shape[0], data.shape[-1]):
        raise ValueError(f"{path}: a 4D prediction of shape {data.shape} does not fit labels {codec.spec.names}")
    stack = data if data.shape[1:] == shape else np.moveaxis(data, -1, 0)
    outside = sorted(set(np.unique(stack).tolist()) - {0, 1})
    if outside:
        raise ValueError(f"{path}: region masks must be 0/1, got values {outside[:5]}")
    return stack.astype(np.uint8)


def _first_fraction(data: np.ndarray) -> float:
    fractional = data[np.isfinite(data) & (data != np.round(data))]
    return float(fractional.flat[0]) if fractional.size else float("nan")


def evaluate_run(
    run_dir: Path,
    data: Path,
    *,
    device: str = "auto",
    refine_steps: int | None = None,
    held_out: bool = False,
    cases: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Predict the cases of the data set at ``data`` with a trained run and score them (one command).

    ``held_out``: only the run's held-out cases (its ``split.json``: test, else validation), the
    cases ``train`` scored into ``metrics.json``; ``cases``: only these; otherwise every case of
    ``data`` (e.g. a separate test set in the same layout). The result also says which method,
    noise and cases it scored (``method``, ``noise``, ``evaluated_on``), for the table.
    """
    from svldrl.experiments.pipeline import held_out_ids
    from svldrl.training import load_trained

    dataset = load_dataset(data)
    ids, part = list(dataset.case_ids), "all"
    if held_out:
        split_file = run_dir_of(run_dir) / SPLIT_FILE
        if not split_file.is_file():
            raise FileNotFoundError(f"{split_file}: --held-out needs the run's split file")
        part, ids = held_out_ids(Split.load(split_file))
        if missing := sorted(set(ids) - set(dataset.case_ids)):
            raise ValueError(f"{split_file}: {len(missing)} held-out case(s) are not in {data}, e.g. {missing[0]!r}")
    if cases is not None:
        ids, part = _known_cases(cases, dataset, data), "chosen"
    net, cfg, labels = load_trained(run_dir, device=device)
    cfg = _with_device(cfg, device)
    for case_id in ids:
        warn_if_empty_reference(dataset.get(case_id), labels)
    scores = score_cases(net, dataset, ids, labels, cfg, refine_steps=refine_steps)
    return {"method": cfg.method, "noise": noise_label(cfg.noise.kind, cfg.noise.ratio), "evaluated_on": part,
            **scores}  # fmt: skip


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
