"""Give svldrl the bad inputs a new user gives it and print what each gets (docs/reliability.md).

Every case runs the real console command in a fresh process on tiny phantoms, in a temporary
folder, and records its exit status and what it printed on stderr (the first error line and any
warning lines). To extend the catalogue, add a case to ``cases()`` and paste the new table into
``docs/reliability.md``.

    python experiments/reliability/bad_inputs.py > /tmp/catalogue.md
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np

TINY = ["--set", "optim.epochs=1", "--set", "optim.iters_per_epoch=1", "--set", "data.patch_size=32",
        "--set", "data.test_fraction=0.2", "-q"]  # fmt: skip


@dataclass
class Case:
    """One bad input: what it is, how to make it (returns the command's arguments), what we want."""

    area: str
    what: str
    make: Callable[[Path], list[str]]
    expect: str


def svldrl(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "svldrl.cli", *(str(a) for a in args)], capture_output=True, text=True, check=False
    )


def copy_of(work: Path, name: str) -> Path:
    return Path(shutil.copytree(work / "phantoms", work / name))


def rewrite(path: Path, change: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]) -> None:
    img = nib.load(path)
    data, affine = change(np.asarray(img.dataobj).copy(), img.affine.copy())
    nib.save(nib.Nifti1Image(data, affine), path)


def first(folder: Path, pattern: str = "*.nii.gz", index: int = 0) -> Path:
    return sorted(folder.glob(pattern))[index]


def preds_of(work: Path, name: str) -> Path:
    """Perfect predictions (the reference labels) in a folder of their own."""
    out = work / name
    shutil.copytree(work / "phantoms" / "labelsTr", out)
    return out


def with_label_value(work: Path) -> list[str]:
    data = copy_of(work, "value7")
    rewrite(first(data / "labelsTr"), lambda d, a: (np.where(d > 0, 7, 0).astype(d.dtype), a))
    return ["check-data", data]


def truncated_image(work: Path) -> list[str]:
    data = copy_of(work, "truncated")
    image = first(data / "imagesTr", index=-1)
    image.write_bytes(image.read_bytes()[: image.stat().st_size // 2])
    return ["train", data, "--method", "baseline", "--out", work / "runs" / "t", *TINY]


def label_shape(work: Path) -> list[str]:
    data = copy_of(work, "shape")
    rewrite(first(data / "labelsTr"), lambda d, a: (d[:-2], a))
    return ["check-data", data]


def label_affine(work: Path) -> list[str]:
    data = copy_of(work, "affine")

    def shift(d: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a[:3, 3] += 4.0
        return d, a

    rewrite(first(data / "labelsTr"), shift)
    return ["check-data", data]


def nan_image(work: Path) -> list[str]:
    data = copy_of(work, "nan")
    rewrite(first(data / "imagesTr"), lambda d, a: (np.where(d > 0.5, np.nan, d).astype(np.float32), a))
    return ["check-data", data]


def missing_label(work: Path) -> list[str]:
    data = copy_of(work, "nolabel")
    first(data / "labelsTr").unlink()
    return ["check-data", data]


def empty_label(work: Path) -> list[str]:
    data = copy_of(work, "empty")
    rewrite(first(data / "labelsTr"), lambda d, a: (np.zeros_like(d), a))
    return ["check-data", data]


def bad_json(work: Path) -> list[str]:
    data = copy_of(work, "json")
    (data / "dataset.json").write_text("{ not json")
    return ["train", data]


def la_folder_without_image(work: Path) -> list[str]:
    root = work / "la"
    for i in range(2):
        (root / f"LA_{i}").mkdir(parents=True)
        with h5py.File(root / f"LA_{i}" / "mri_norm2.h5", "w") as f:
            f["image"] = np.random.default_rng(i).normal(size=(32, 32, 16)).astype(np.float32)
            label = np.zeros((32, 32, 16), np.uint8)
            label[8:24, 8:24, 4:12] = 1
            f["label"] = label
    (root / "LA_9").mkdir()
    return ["check-data", root]


def finished_run(work: Path) -> Path:
    return work / "runs" / "finished"


def config_file(work: Path, text: str) -> Path:
    path = work / "bad.yaml"
    path.write_text(text)
    return path


def overwrite_invalid(work: Path) -> list[str]:
    return ["train", work / "phantoms", "--method", "baseline", "--out", finished_run(work), *TINY, "--overwrite",
            "--set", "optim.optimizer=adamw"]  # fmt: skip


def resume_other(work: Path) -> list[str]:
    run = work / "runs" / "interrupted"
    svldrl("train", work / "phantoms", "--method", "baseline", "--out", run, *TINY)
    (run / "metrics.json").unlink()
    return ["train", work / "phantoms", "--method", "baseline", "--out", run, *TINY, "--resume", "--set",
            "optim.lr=0.1"]  # fmt: skip


def predict_into_input(work: Path) -> list[str]:
    data = copy_of(work, "ownin")
    return ["predict", finished_run(work), data / "labelsTr", data / "labelsTr", "--overwrite"]


def predict_over_labels(work: Path) -> list[str]:
    data = copy_of(work, "over")
    return ["predict", finished_run(work), data / "imagesTr", data / "labelsTr"]


def predict_truncated(work: Path) -> list[str]:
    data = copy_of(work, "predtrunc")
    image = first(data / "imagesTr", index=-1)
    image.write_bytes(image.read_bytes()[:200])
    return ["predict", finished_run(work), data / "imagesTr", work / "preds_trunc"]


def predict_la_bad_label(work: Path) -> list[str]:
    root = work / "la_bad"
    (root / "LA_0").mkdir(parents=True)
    with h5py.File(root / "LA_0" / "mri_norm2.h5", "w") as f:
        f["image"] = np.random.default_rng(0).normal(size=(32, 32, 32)).astype(np.float32)
        f["label"] = np.full((32, 32, 32), 7, np.uint8)
    return ["predict", finished_run(work), root / "LA_0", work / "la_pred.nii.gz"]


def run_without_checkpoint(work: Path) -> list[str]:
    run = work / "runs" / "nocheckpoint"
    shutil.copytree(finished_run(work), run)
    shutil.rmtree(run / "checkpoints")
    return ["predict", run, work / "phantoms" / "imagesTr", work / "preds_nock"]


def probability_map(work: Path) -> list[str]:
    preds = preds_of(work, "prob")
    rewrite(first(preds), lambda d, a: ((d * 0.9).astype(np.float32), a))
    return ["evaluate", preds, work / "phantoms"]


def other_grid(work: Path) -> list[str]:
    preds = preds_of(work, "grid")

    def shift(d: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a[:3, 3] += 5.0
        return d, a

    rewrite(first(preds), shift)
    return ["evaluate", preds, work / "phantoms"]


def value_three(work: Path) -> list[str]:
    preds = preds_of(work, "three")
    rewrite(first(preds), lambda d, a: (np.where(d > 0, 3, 0).astype(d.dtype), a))
    return ["evaluate", preds, work / "phantoms"]


def missing_prediction(work: Path) -> list[str]:
    preds = preds_of(work, "missing")
    first(preds).unlink()
    return ["evaluate", preds, work / "phantoms"]


def missing_allowed(work: Path) -> list[str]:
    preds = preds_of(work, "missing_ok")
    first(preds).unlink()
    return ["evaluate", preds, work / "phantoms", "--allow-missing"]


def not_gzip(work: Path) -> list[str]:
    preds = preds_of(work, "plain")
    target = first(preds)
    target.write_bytes(gzip.decompress(target.read_bytes()))
    return ["evaluate", preds, work / "phantoms"]


def unknown_case(work: Path) -> list[str]:
    preds = preds_of(work, "unknown")
    shutil.copy(first(preds), preds / "someone_else.nii.gz")
    return ["evaluate", preds, work / "phantoms"]


def empty_reference(work: Path) -> list[str]:
    data = copy_of(work, "emptyref")
    rewrite(first(data / "labelsTr"), lambda d, a: (np.zeros_like(d), a))
    preds = work / "emptyref_preds"
    shutil.copytree(data / "labelsTr", preds)
    return ["evaluate", preds, data]


def noise_broken_held_out(work: Path) -> list[str]:
    data = copy_of(work, "noisebroken")
    from svldrl.data import split_cases

    ids = sorted(p.name.replace(".nii.gz", "") for p in (data / "imagesTr").glob("*.nii.gz"))
    image = data / "imagesTr" / f"{split_cases(ids, 0.2, 0.0, 0).val[0]}.nii.gz"
    image.write_bytes(image.read_bytes()[:100])
    return ["noise", data, "--kind", "mt", "--out", work / "noisy_broken"]


def noise_nonempty(work: Path) -> list[str]:
    out = work / "noisy_full"
    out.mkdir()
    (out / "x.txt").write_text("x")
    return ["noise", work / "phantoms", "--out", out]


def experiment(work: Path, text: str) -> list[str]:
    path = work / "exp.yaml"
    path.write_text(text)
    return ["compare", path, "-q"]


def train_with(*args: str) -> Callable[[Path], list[object]]:
    """The ``svldrl train`` command line on the phantoms with ``args``: for cases that need no file of their own."""
    return lambda work: ["train", work / "phantoms", *args]


def cases() -> list[Case]:
    phantoms: Callable[[Path], Path] = lambda w: w / "phantoms"  # noqa: E731
    return [
        Case("data", "data folder does not exist", lambda w: ["train", w / "nowhere"], "error naming the path"),
        Case("data", "folder that is no data set", lambda w: ["train", w / "runs"], "error listing the layouts"),
        Case("data", "dataset.json is not JSON", bad_json, "error naming dataset.json"),
        Case("data", "label value outside the label set (7)", with_label_value, "blocking problem naming the file"),
        Case("data", "truncated image (train)", truncated_image, "error naming the file, before any folder"),
        Case("data", "label shape differs from the image", label_shape, "blocking problem naming the file"),
        Case("data", "label affine differs from the image", label_affine, "blocking problem naming the file"),
        Case("data", "NaN intensities", nan_image, "blocking problem naming the file"),
        Case("data", "label file missing", missing_label, "blocking problem naming the case"),
        Case("data", "all-empty label", empty_label, "warning naming the file"),
        Case("data", "LA case folder without its h5 file", la_folder_without_image, "warning naming the folder"),
        Case("options", "--set optim.epochs=abc", train_with("--set", "optim.epochs=abc"), "error naming the key"),
        Case("options", "--set optim.epochs=0", train_with("--set", "optim.epochs=0"), "error naming the key"),
        Case("options", "--set optim.batch_size=0", train_with("--set", "optim.batch_size=0"),
             "error naming the key, no run folder"),
        Case("options", "--set optim.iters_per_epoch=-2", train_with("--set", "optim.iters_per_epoch=-2"),
             "error naming the key"),
        Case("options", "--set optim.lr=-1", train_with("--set", "optim.lr=-1"), "error naming the key"),
        Case("options", "patch too small for the backbone (12)", train_with("--set", "data.patch_size=12"),
             "error naming the key and a fix"),
        Case("options", "--set optim.optimizer=adamw", train_with("--set", "optim.optimizer=adamw"),
             "error naming the key"),
        Case("options", "misspelt key optm.lr", train_with("--set", "optm.lr=0.1"), "error with the nearest key"),
        Case(
            "options",
            "YAML value of the wrong type (lr: [0.1])",
            lambda w: ["train", phantoms(w), "--config", config_file(w, "optim:\n  lr: [0.1]\n")],
            "error naming the file and key",
        ),
        Case(
            "options",
            "--config file does not exist",
            lambda w: ["train", phantoms(w), "--config", w / "no.yaml"],
            "error naming the file",
        ),
        Case("options", "unknown method", train_with("--method", "unet-magic"), "error listing the methods"),
        Case("options", "--device cuda on a machine without CUDA", train_with("--device", "cuda"),
             "error naming the device"),
        Case("options", "val + test fractions leave no training case",
             train_with("--set", "data.val_fraction=0.5", "--set", "data.test_fraction=0.5"), "error naming the keys"),
        Case("options", "--noise-ratio 1.5", train_with("--noise-ratio", "1.5"), "usage error naming the flag"),
        Case(
            "runs",
            "train into a finished run",
            lambda w: ["train", phantoms(w), "--method", "baseline", "--out", finished_run(w), *TINY],
            "error suggesting --overwrite",
        ),
        Case("runs", "--overwrite with an invalid option", overwrite_invalid, "error; the finished run is kept"),
        Case("runs", "--resume with another configuration", resume_other, "error naming the differing keys"),
        Case(
            "runs",
            "--out is a data folder",
            lambda w: ["train", phantoms(w), "--out", phantoms(w) / "imagesTr"],
            "error: not a run folder",
        ),
        Case(
            "predict",
            "output is its own input folder (even with --overwrite)",
            predict_into_input,
            "error, nothing written",
        ),
        Case("predict", "output holds the reference labels", predict_over_labels, "error suggesting --overwrite"),
        Case("predict", "last input truncated", predict_truncated, "error naming it before any mask"),
        Case("predict", "LA input whose label is broken", predict_la_bad_label, "predicts (labels are not read)"),
        Case("predict", "run folder without checkpoint", run_without_checkpoint, "error naming the folder"),
        Case(
            "predict",
            "one .nii.gz output for many inputs",
            lambda w: ["predict", finished_run(w), phantoms(w) / "imagesTr", w / "one.nii.gz"],
            "error asking for a folder",
        ),
        Case("evaluate", "probability map (0.9 = foreground)", probability_map, "error naming the file"),
        Case("evaluate", "prediction on another grid (affine)", other_grid, "error naming the file"),
        Case("evaluate", "label value 3 in a binary task", value_three, "error naming the file"),
        Case("evaluate", "a reference case without prediction", missing_prediction, "error suggesting --allow-missing"),
        Case("evaluate", "the same with --allow-missing", missing_allowed, "scored as worst, with a warning"),
        Case("evaluate", "prediction not gzip but named .nii.gz", not_gzip, "error naming the file"),
        Case("evaluate", "prediction for a case the reference lacks", unknown_case, "error naming the case"),
        Case("evaluate", "all-empty reference label", empty_reference, "warning naming the case"),
        Case("noise", "broken held-out case", noise_broken_held_out, "error naming the file, nothing copied"),
        Case("noise", "non-empty output folder", noise_nonempty, "error naming the folder"),
        Case(
            "noise",
            "unknown noise kind",
            lambda w: ["noise", phantoms(w), "--kind", "gaussian", "--out", w / "noisy_kind"],
            "error listing the kinds",
        ),  # fmt: skip
        Case(
            "phantom",
            "into an existing folder",
            lambda w: ["phantom", phantoms(w), "--n", "2"],
            "error suggesting --overwrite",
        ),
        Case(
            "compare",
            "experiment names an unknown method",
            lambda w: experiment(
                w, f"name: x\ndata: {phantoms(w)}\nmethods: [baseline, magic]\nnoise: [mt]\nratios: [0.5]\nseeds: [0]\n"
            ),
            "error listing the methods",
        ),  # fmt: skip
        Case(
            "compare",
            "experiment data folder missing",
            lambda w: experiment(
                w, f"name: x\ndata: {w / 'gone'}\nmethods: [baseline]\nnoise: [mt]\nratios: [0.5]\nseeds: [0]\n"
            ),
            "error naming the folder",
        ),  # fmt: skip
        Case("cli", "--debug after the command", lambda w: ["check-data", w / "nowhere", "--debug"], "the traceback"),
    ]


def shown(proc: subprocess.CompletedProcess[str], work: Path) -> str:
    """What a user reads: the error line or, for a success, the warnings (paths made relative)."""
    lines = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
    if any("Traceback" in line for line in lines):
        text = "traceback, ending: " + lines[-1]
    else:
        picked = [line for line in lines if line.startswith(("error", "warning", "ERROR", "│ Invalid", "│ No such"))]
        text = " / ".join(picked[:3]) if picked else (lines[-1] if lines else "(nothing on stderr)")
    return text.replace(str(work) + "/", "").replace("|", "\\|")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp).resolve()
        os.chdir(work)  # runs without --out go to ./runs: keep them in the temporary folder
        subprocess.run([sys.executable, "-m", "svldrl.cli", "phantom", work / "phantoms", "--n", "5", "--size", "32"],
                       check=True, capture_output=True)  # fmt: skip
        subprocess.run([sys.executable, "-m", "svldrl.cli", "train", work / "phantoms", "--method", "baseline",
                        "--out", finished_run(work), *TINY], check=True, capture_output=True)  # fmt: skip
        kept = {p: p.read_bytes() for p in finished_run(work).rglob("*") if p.is_file()}
        print("| area | bad input | wanted | exit | what svldrl says |")
        print("|---|---|---|---|---|")
        for case in cases():
            proc = svldrl(*case.make(work))
            row = [case.area, case.what, case.expect, str(proc.returncode), shown(proc, work)]
            print("| " + " | ".join(row) + " |", flush=True)
        intact = kept == {p: p.read_bytes() for p in finished_run(work).rglob("*") if p.is_file()}
        print(f"\nThe finished run survived every command above unchanged: {intact}.")
        print(json.dumps({"cases": len(cases())}))


if __name__ == "__main__":
    main()
