"""End-to-end runs of train, predict, evaluate, noise, check-data and the demo on tiny phantoms (32^3, a
few epochs), checking their outputs; ``compare`` grids are in test_compare_grid.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from cli_helpers import invoke, runner
from svldrl.cli import app
from svldrl.noise import n_noisy_cases

pytestmark = pytest.mark.slow
TINY = [
    "--set",
    "optim.epochs=3",
    "--set",
    "optim.iters_per_epoch=2",
    "--set",
    "data.patch_size=32",
    "--set",
    "val_every=3",
    "--set",
    "data.val_fraction=0.2",
    "--set",
    "data.test_fraction=0.2",
    "-q",
]


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    invoke("phantom", root / "phantoms", "--n", "6", "--size", "32", "--seed", "1")
    return root / "phantoms"


@pytest.fixture(scope="module")
def trained_run(phantoms: Path) -> Path:
    out = phantoms.parent / "runs" / "svl"
    invoke("train", phantoms, "--method", "svl-drl", "--noise", "mt", "--noise-ratio", "0.5", "--out", out, *TINY)
    return out


def test_phantom_and_check_data(phantoms: Path) -> None:
    assert (phantoms / "dataset.json").exists()
    assert len(list((phantoms / "imagesTr").glob("*.nii.gz"))) == 6
    assert "OK" in invoke("check-data", phantoms)


def test_check_data_fails_on_bad_label(phantoms: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    invoke("phantom", bad, "--n", "2", "--size", "32")
    label_path = sorted((bad / "labelsTr").glob("*.nii.gz"))[0]
    img = nib.load(label_path)
    data = np.asarray(img.dataobj).copy()
    data[0, 0, 0] = 7
    nib.save(nib.Nifti1Image(data, img.affine), label_path)
    result = runner.invoke(app, ["check-data", str(bad)])
    assert result.exit_code == 1
    assert label_path.name in result.output.replace("\n", "")


def test_noise_command_writes_copy_and_manifest(phantoms: Path, tmp_path: Path) -> None:
    out = tmp_path / "noisy"
    invoke("noise", phantoms, "--kind", "mt", "--ratio", "0.5", "--seed", "0", "--out", out)
    manifest = json.loads((out / "noise_manifest.json").read_text())
    assert manifest["kind"] == "mt"
    corrupted = [c for c in manifest["cases"] if c["corrupted"]]
    assert len(corrupted) == n_noisy_cases(len(manifest["cases"]), 0.5)
    assert all(0.0 < c["dice_noisy_vs_clean"] < 1.0 for c in corrupted)


def test_train_writes_a_complete_run_folder(trained_run: Path) -> None:
    for name in (
        "config.yaml",
        "env.json",
        "split.json",
        "noise_manifest.json",
        "log.csv",
        "metrics.json",
        "data.json",
        "checkpoints/latest.pt",
    ):
        assert (trained_run / name).exists(), name
    assert list((trained_run / "tensorboard").glob("events.*"))
    metrics = json.loads((trained_run / "metrics.json").read_text())
    mean = metrics["summary"]["mean"]["mean"]
    assert 0.0 <= mean["dice"] <= 1.0 and 0.0 <= mean["iou"] <= mean["dice"] + 1e-9
    assert mean["hd95"] >= 0.0 and mean["asd"] >= 0.0
    params = metrics["parameters"]  # the deployed model: encoder and segmentation decoder
    assert params["inference"] == params["segmentation"] < params["total"]
    env = json.loads((trained_run / "env.json").read_text())
    assert env["packages"]["torch"] and env["device"] == "cpu"
    assert env["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()


def test_second_train_into_finished_run_refuses_without_overwrite(phantoms: Path, trained_run: Path) -> None:
    result = runner.invoke(
        app, ["train", str(phantoms), "--method", "svl-drl", "--noise", "mt", "--out", str(trained_run), *TINY]
    )
    assert result.exit_code != 0
    assert "overwrite" in str(result.exception)


def test_predict_writes_nifti_on_the_input_grid(phantoms: Path, trained_run: Path, tmp_path: Path) -> None:
    images = phantoms / "imagesTr"
    invoke("predict", trained_run, images, tmp_path / "preds")
    for source in sorted(images.glob("*.nii.gz"))[:2]:
        case_id = source.name.replace("_0000.nii.gz", "").replace(".nii.gz", "")
        pred = nib.load(tmp_path / "preds" / f"{case_id}.nii.gz")
        ref = nib.load(source)
        assert pred.shape == ref.shape[:3]
        np.testing.assert_allclose(pred.affine, ref.affine)
        assert set(np.unique(np.asarray(pred.dataobj))) <= {0, 1}


def test_evaluate_folder_and_run(phantoms: Path, trained_run: Path, tmp_path: Path) -> None:
    invoke("predict", trained_run, phantoms / "imagesTr", tmp_path / "preds")
    invoke("evaluate", tmp_path / "preds", phantoms, "--out", tmp_path / "scores")
    summary = json.loads((tmp_path / "scores.json").read_text())["summary"]
    assert summary["n_cases"] == 6
    assert (tmp_path / "scores.csv").read_text().count("\n") >= 6
    direct = tmp_path / "direct"
    invoke("evaluate", trained_run, phantoms, "--out", direct)
    same = json.loads(direct.with_suffix(".json").read_text())["summary"]
    assert same["mean"]["mean"]["dice"] == pytest.approx(summary["mean"]["mean"]["dice"], abs=1e-6)


def test_evaluate_held_out_reproduces_the_runs_metrics(phantoms: Path, trained_run: Path, tmp_path: Path) -> None:
    invoke("evaluate", trained_run, phantoms, "--held-out", "--out", tmp_path / "svl__mt-0.5__again")
    again = json.loads((tmp_path / "svl__mt-0.5__again.json").read_text())
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert sorted(again["per_case"]) == sorted(metrics["per_case"])  # the held-out cases only
    assert again["summary"]["n_cases"] == metrics["summary"]["n_cases"] < 6
    assert again["summary"]["mean"]["mean"] == pytest.approx(metrics["summary"]["mean"]["mean"], abs=1e-9)
    result = runner.invoke(app, ["evaluate", str(tmp_path), str(phantoms), "--held-out"])
    assert result.exit_code != 0 and "run folder" in str(result.exception)


def test_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "svldrl.cli", "train", str(tmp_path / "missing")], capture_output=True, text=True
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert "missing" in proc.stderr


def test_killed_run_resumes_and_finishes(phantoms: Path, tmp_path: Path) -> None:
    out = tmp_path / "killed"
    args = [
        sys.executable,
        "-m",
        "svldrl.cli",
        "train",
        str(phantoms),
        "--method",
        "baseline",
        "--out",
        str(out),
        "--set",
        "optim.epochs=12",
        "--set",
        "optim.iters_per_epoch=1",
        "--set",
        "data.patch_size=32",
        "--set",
        "val_every=12",
        "--set",
        "data.test_fraction=0.2",
        "-q",
    ]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 300
    latest = out / "checkpoints" / "latest.pt"
    while not latest.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert latest.exists(), "no checkpoint appeared"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "metrics.json").exists()
    import torch

    torch.load(latest, map_location="cpu", weights_only=False)  # the checkpoint under its final name is whole
    result = runner.invoke(app, ["train", str(phantoms), "--method", "baseline", "--out", str(out)] + args[9:])
    assert result.exit_code != 0 and "--resume" in str(result.exception)
    invoke("train", phantoms, "--method", "baseline", "--out", out, "--resume", *args[9:])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs"] == 12


@pytest.mark.slow
def test_the_demo_trains_both_methods_and_writes_its_report(tmp_path: Path) -> None:
    """`svldrl demo`'s whole path at a tiny size (its real size is timed in benchmarks/README.md, not here)."""
    from dataclasses import replace

    from svldrl.experiments.demo import DemoSettings, run_demo

    settings = replace(DemoSettings(), n_cases=6, size=32, epochs=3, iters_per_epoch=1)
    report = run_demo(tmp_path, settings, progress=False)
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results["methods"]) == {"baseline", "svl-drl"} and report["verdict"]
    assert (tmp_path / "report.md").exists() and (tmp_path / "training_curves.png").exists()
    config = (tmp_path / "runs" / "svl-drl" / "config.yaml").read_text()
    assert "heads: light" in config and "gradient_estimator: sampled" in config  # the demo's faster settings


def test_methods_lists_descriptions_and_model_sizes() -> None:
    assert "pixeldrl-mg" in invoke("methods") and "[oracle]" in invoke("methods")

    def sizes(*extra: str) -> dict[str, list[int]]:
        lines = invoke("methods", "--parameters", *extra).splitlines()[1:]
        return {line.split()[0]: [int(v.replace(",", "")) for v in line.split()[1:]] for line in lines}

    cpu = sizes()
    # PixelDRL-MG's mask input channel adds one 3^3 kernel to each of the cpu U-Net's 16 first filters, nothing else
    assert cpu["pixeldrl-mg"][0] - cpu["baseline"][0] == 16 * 3**3
    assert cpu["svl-drl"][0] == cpu["baseline"][0]  # the value and policy decoders are not run at inference
    light = sizes("--set", "model.heads=light")
    assert light["svl-drl"][1] == cpu["svl-drl"][1] and light["svl-drl"][2] < cpu["svl-drl"][2] / 5
