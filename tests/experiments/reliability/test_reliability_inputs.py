"""Bad input as a new user gives it (issue 13), part 2: nothing scored wrong, one clear line. Evaluate
scores what it is given, empty references are warned about, inputs are checked before work, errors
name their key and file, help and summaries say what a run is.

One test (or a few) per point of the issue, numbered as there; ``docs/reliability.md`` is the
catalogue of every bad input tried and what it now gets. Each test failed before its fix.
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
from reliability_helpers import TINY, reference_preds, rewrite, run_main

from cli_helpers import invoke, refused, runner
from svldrl.cli import app
from svldrl.data import check_dataset

pytestmark = pytest.mark.slow


# ----------------------------------------------------------------------------- 5. evaluate scores what it is given


def test_5_a_probability_mask_is_refused(phantoms: Path, tmp_path: Path) -> None:
    preds = reference_preds(phantoms, tmp_path / "preds")
    target = sorted(preds.glob("*.nii.gz"))[0]
    rewrite(target, lambda d, a: ((d * 0.9).astype(np.float32), a))
    message = refused("evaluate", preds, phantoms)
    assert target.name in message and "float" in message


def test_5_a_prediction_on_another_grid_is_refused(phantoms: Path, tmp_path: Path) -> None:
    preds = reference_preds(phantoms, tmp_path / "preds")
    target = sorted(preds.glob("*.nii.gz"))[1]

    def shift(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        affine[:3, 3] += 5.0
        return data, affine

    rewrite(target, shift)
    message = refused("evaluate", preds, phantoms)
    assert target.name in message and "affine" in message


def test_5_label_values_outside_the_label_set_are_refused(phantoms: Path, tmp_path: Path) -> None:
    preds = reference_preds(phantoms, tmp_path / "preds")
    target = sorted(preds.glob("*.nii.gz"))[2]

    def paint(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        data[data == 1] = 3
        return data, affine

    rewrite(target, paint)
    message = refused("evaluate", preds, phantoms)
    assert target.name in message and "values [3]" in message


def test_5_a_missing_prediction_is_an_error_unless_allowed(phantoms: Path, tmp_path: Path) -> None:
    preds = reference_preds(phantoms, tmp_path / "preds")
    missing = sorted(preds.glob("*.nii.gz"))[0]
    missing.unlink()
    message = refused("evaluate", preds, phantoms)
    assert missing.name.replace(".nii.gz", "") in message and "--allow-missing" in message
    with pytest.warns(UserWarning, match="worst"):
        invoke("evaluate", preds, phantoms, "--allow-missing", "--out", tmp_path / "scores")
    result = json.loads((tmp_path / "scores.json").read_text())
    assert result["summary"]["n_cases"] == 5
    assert result["missing"] == [missing.name.replace(".nii.gz", "")]
    dices = sorted(row["mean"]["dice"] for row in result["per_case"].values())
    assert dices[0] == 0.0 and dices[1:] == pytest.approx([1.0] * 4)  # counted as the worst score


def test_5_cases_limits_the_reference(phantoms: Path, tmp_path: Path) -> None:
    """The honest way to score a subset (e.g. a run's test cases): name the cases."""
    preds = reference_preds(phantoms, tmp_path / "preds")
    kept = sorted(preds.glob("*.nii.gz"))[:2]
    for path in sorted(preds.glob("*.nii.gz"))[2:]:
        path.unlink()
    ids = [p.name.replace(".nii.gz", "") for p in kept]
    (tmp_path / "ids.txt").write_text("\n".join(ids) + "\n")
    invoke("evaluate", preds, phantoms, "--cases", tmp_path / "ids.txt", "--out", tmp_path / "scores")
    assert sorted(json.loads((tmp_path / "scores.json").read_text())["per_case"]) == ids


# ----------------------------------------------------------------------------- 6. empty references warned


@pytest.fixture
def empty_label_data(data_copy: Path) -> tuple[Path, Path]:
    target = sorted((data_copy / "labelsTr").glob("*.nii.gz"))[-1]
    rewrite(target, lambda d, a: (np.zeros_like(d), a))
    return data_copy, target


def test_6_evaluate_warns_about_an_empty_reference(empty_label_data: tuple[Path, Path], tmp_path: Path) -> None:
    data, target = empty_label_data
    preds = reference_preds(data, tmp_path / "preds")
    with pytest.warns(UserWarning, match=target.name.replace(".nii.gz", "")):
        invoke("evaluate", preds, data)


def test_6_noise_warns_about_an_empty_reference(empty_label_data: tuple[Path, Path], tmp_path: Path) -> None:
    data, target = empty_label_data
    with pytest.warns(UserWarning, match="empty"):
        invoke("noise", data, "--kind", "mt", "--ratio", "0.5", "--out", tmp_path / "noisy")


def test_6_train_warns_about_an_empty_reference(empty_label_data: tuple[Path, Path], tmp_path: Path) -> None:
    data, target = empty_label_data
    with pytest.warns(UserWarning, match=target.name):
        invoke("train", data, "--method", "baseline", "--out", tmp_path / "run", *TINY)


def test_6_the_console_shows_a_warning_as_one_line(
    empty_label_data: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, target = empty_label_data
    preds = reference_preds(data, tmp_path / "preds")
    with warnings.catch_warnings():
        code, err = run_main(capsys, "evaluate", preds, data)
    assert code == 0
    lines = [line for line in err.splitlines() if "empty" in line]
    assert lines and lines[0].startswith("warning:") and "warnings.warn" not in err


# ----------------------------------------------------------------------------- 7. no training, no metrics


@pytest.mark.parametrize("epochs", ["0", "-1"])
def test_7_zero_or_negative_epochs_are_refused(phantoms: Path, tmp_path: Path, epochs: str) -> None:
    out = tmp_path / "run"
    message = refused("train", phantoms, "--method", "baseline", "--out", out, *TINY, "--set", f"optim.epochs={epochs}")
    assert "optim.epochs" in message and not out.exists()


# ----------------------------------------------------------------------------- 8. a case folder without image


def test_8_a_case_folder_without_image_is_reported(make_la, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_la("la", n_cases=3)
    (root / "LA_CASE_9").mkdir()
    (root / "LA_CASE_9" / "notes.txt").write_text("the h5 file was not copied")
    problems = check_dataset(root)
    assert [p.path.name for p in problems] == ["LA_CASE_9"]
    assert not problems[0].blocking and "no image" in problems[0].message
    code, err = run_main(capsys, "check-data", root)
    assert code == 0 and "LA_CASE_9" in err and "1 warning" in err


def test_8_a_brats_folder_without_images_is_reported(make_brats) -> None:
    root = make_brats("brats", n_cases=2)
    (root / "BraTS2021_00009").mkdir()
    problems = check_dataset(root)
    assert [p.path.name for p in problems] == ["BraTS2021_00009"]


# ----------------------------------------------------------------------------- 9. predict checks all inputs first


def test_9_predict_checks_every_input_before_writing(finished_run: Path, data_copy: Path, tmp_path: Path) -> None:
    images = data_copy / "imagesTr"
    last = sorted(images.glob("*.nii.gz"))[-1]
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # truncated
    out = tmp_path / "preds"
    message = refused("predict", finished_run, images, out)
    assert last.name in message
    assert not out.exists() or not list(out.iterdir())  # not 4 of 5 masks


def test_9_predict_ignores_labels(finished_run: Path, make_la, tmp_path: Path) -> None:
    """An LA h5 input whose label is broken (values 7) still predicts: predict never reads labels."""
    root = make_la("la", n_cases=1)
    h5 = next(root.glob("*/mri_norm2.h5"))
    with h5py.File(h5, "r+") as f:
        label = f["label"][()]
        label[label == 1] = 7
        del f["label"]
        f.create_dataset("label", data=label)
    invoke("predict", finished_run, h5.parent, tmp_path / "pred.nii.gz")
    assert (tmp_path / "pred.nii.gz").exists()


# ----------------------------------------------------------------------------- 10. noise checks the data


def test_10_noise_refuses_a_broken_held_out_case(data_copy: Path, tmp_path: Path) -> None:
    from svldrl.data import split_cases

    ids = sorted(p.name.replace(".nii.gz", "") for p in (data_copy / "imagesTr").glob("*.nii.gz"))
    held_out = split_cases(ids, 0.2, 0.0, 0).val[0]
    broken = data_copy / "imagesTr" / f"{held_out}.nii.gz"
    broken.write_bytes(broken.read_bytes()[:100])
    message = refused("noise", data_copy, "--kind", "mt", "--out", tmp_path / "noisy")
    assert broken.name in message
    assert not (tmp_path / "noisy").exists()


# ----------------------------------------------------------------------------- 11. no tracebacks


def test_11_evaluate_a_prediction_that_is_not_gzip(
    phantoms: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    preds = reference_preds(phantoms, tmp_path / "preds")
    target = sorted(preds.glob("*.nii.gz"))[0]
    target.write_bytes(gzip.decompress(target.read_bytes()))  # an uncompressed NIfTI named .nii.gz
    code, err = run_main(capsys, "evaluate", preds, phantoms)
    assert code == 2 and "Traceback" not in err and target.name in err
    assert len(err.strip().splitlines()) == 1


def test_11_a_yaml_value_of_the_wrong_type(phantoms: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("optim:\n  lr: [0.1]\n")
    code, err = run_main(capsys, "train", phantoms, "--config", config, "--out", tmp_path / "run")
    assert code == 2 and "Traceback" not in err
    assert "optim.lr" in err and "bad.yaml" in err
    assert not (tmp_path / "run").exists()


def test_11_phantom_into_an_existing_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    invoke("phantom", tmp_path / "ph", "--n", "2", "--size", "16")
    code, err = run_main(capsys, "phantom", tmp_path / "ph", "--n", "2", "--size", "16")
    assert code == 2 and "Traceback" not in err and "--overwrite" in err and "overwrite=True" not in err
    invoke("phantom", tmp_path / "ph", "--n", "2", "--size", "16", "--overwrite")


def test_11_an_unexpected_error_is_still_one_line(capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("something nobody foresaw")

    monkeypatch.setattr("svldrl.config.describe", crash)
    code, err = run_main(capsys, "config-keys")
    assert code == 1 and "Traceback" not in err and "something nobody foresaw" in err and "--debug" in err


# ----------------------------------------------------------------------------- 12. type errors name key and file


def test_12_a_bad_value_names_its_key(phantoms: Path, tmp_path: Path) -> None:
    message = refused("train", phantoms, "--out", tmp_path / "run", "--set", "optim.epochs=abc")
    assert "optim.epochs" in message and "abc" in message


def test_12_a_bad_value_in_a_file_names_the_file(phantoms: Path, tmp_path: Path) -> None:
    config = tmp_path / "exp.yaml"
    config.write_text("data:\n  patch_size: [32, 32, big]\n")
    message = refused("train", phantoms, "--config", config, "--out", tmp_path / "run")
    assert "exp.yaml" in message and "data.patch_size" in message


# ----------------------------------------------------------------------------- 14. help and summaries


def test_14_train_help_shows_the_default_run_folder() -> None:
    result = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    text = " ".join(result.output.split())
    assert "runs//__-__seed" not in text
    assert "<method>__<noise>-<ratio>__seed<k>" in text.replace(" ", "")


def test_14_config_keys_shows_both_presets() -> None:
    lines = invoke("config-keys").splitlines()
    assert "cpu" in lines[0] and "paper" in lines[0]
    epochs = next(line for line in lines if line.startswith("optim.epochs"))
    assert "30" in epochs.split() and "1000" in epochs.split()


def test_14_evaluate_on_a_run_folder_names_method_noise_and_cases(phantoms: Path, finished_run: Path) -> None:
    text = invoke("evaluate", finished_run, phantoms, "--held-out")
    row = next(line for line in text.splitlines() if line.startswith("| clean"))
    assert "| baseline |" in row
    assert "test cases" in text  # the run holds out a test set (data.test_fraction=0.2)
    val_run = json.loads((finished_run / "metrics.json").read_text())
    assert val_run["evaluated_on"] == "test"


def test_14_train_summary_says_validation_cases_when_there_is_no_test_set(phantoms: Path, tmp_path: Path) -> None:
    text = invoke("train", phantoms, "--method", "baseline", "--out", tmp_path / "run", *TINY[:-3],
                  "--set", "data.test_fraction=0", "-q")  # fmt: skip
    assert "validation case" in text and "test case" not in text


def test_14_debug_works_after_the_subcommand(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "svldrl.cli", "check-data", str(tmp_path / "missing"), "--debug"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert "No such option" not in proc.stderr
    assert "Traceback" in proc.stderr and "missing" in proc.stderr


def test_5_brats_region_predictions_are_decoded_before_scoring(make_brats, tmp_path: Path) -> None:
    """Found on the way: `predict` writes BraTS masks as file values 1/2/4, which `evaluate` compared
    with the (WT, TC, ET) regions as they were, and failed with a shape error."""
    root = make_brats("brats", n_cases=2)
    preds = tmp_path / "preds"
    preds.mkdir()
    for case in sorted(root.iterdir()):
        shutil.copy(case / f"{case.name}_seg.nii.gz", preds / f"{case.name}.nii.gz")
    invoke("evaluate", preds, root, "--out", tmp_path / "scores")
    per_case = json.loads((tmp_path / "scores.json").read_text())["per_case"]
    assert {c: round(v["mean"]["dice"], 6) for c, v in per_case.items()} == {c: 1.0 for c in per_case}
    assert set(next(iter(per_case.values()))) == {"WT", "TC", "ET", "mean"}
