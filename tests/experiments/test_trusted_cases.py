"""Trusted cases (issue 14): validated before any work, never corrupted, recorded, shared, used.

Also the keys whose meaning changed with that issue: the mixed-case sampler (old runs keep the
old one) and the SFDA source model's own budget.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from cli_helpers import invoke, refused
from svldrl.config import CPU, load_config, merge, settings_of
from svldrl.data import PHANTOM_LABELS, make_phantoms, split_cases
from svldrl.experiments.noisy_labels import noise_key, source_epochs

pytestmark = pytest.mark.slow
TINY = ["--set", "optim.epochs=1", "--set", "optim.iters_per_epoch=1", "--set", "data.patch_size=32", "-q"]


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("trusted") / "phantoms"
    invoke("phantom", root, "--n", "8", "--size", "32", "--seed", "2")
    return root


@pytest.fixture(scope="module")
def split() -> dict:
    ids = [f"phantom_{i:03d}" for i in range(8)]
    s = split_cases(ids, 0.2, 0.0, 0)  # the split a run with the default data keys makes
    return {"train": list(s.train), "val": list(s.val)}


def ids_file(tmp_path: Path, ids: list[str]) -> Path:
    path = tmp_path / "trusted.txt"
    path.write_text("# checked by an expert\n" + "\n".join(ids) + "\n")
    return path


# ----------------------------------------------------------------------------- checked before any work


def test_an_unknown_trusted_id_is_refused(phantoms: Path, tmp_path: Path) -> None:
    message = refused("train", phantoms, "--trusted", ids_file(tmp_path, ["phantom_999"]), "--out", tmp_path / "r")
    assert "'phantom_999' is not a case" in message and not (tmp_path / "r").exists()


def test_a_held_out_trusted_id_is_refused(phantoms: Path, tmp_path: Path, split: dict) -> None:
    held_out = split["val"][0]
    message = refused("train", phantoms, "--trusted", ids_file(tmp_path, [held_out]), "--out", tmp_path / "r")
    assert f"{held_out!r} is held out for validation" in message and not (tmp_path / "r").exists()


def test_a_ratio_that_would_corrupt_a_trusted_case_is_refused(phantoms: Path, tmp_path: Path, split: dict) -> None:
    trusted = ids_file(tmp_path, split["train"][:3])
    message = refused("train", phantoms, "--trusted", trusted, "--noise", "mt", "--noise-ratio", "0.6",
                      "--out", tmp_path / "r")  # fmt: skip
    assert "corrupts 4 of 6 training cases, but only 3 are not trusted" in message


def test_a_trusted_count_larger_than_the_clean_cases_is_refused(phantoms: Path, tmp_path: Path) -> None:
    message = refused("train", phantoms, "--noise", "mt", "--set", "data.trusted_count=4", "--out", tmp_path / "r")
    assert "data.trusted_count 4 exceeds the 3 training cases the noise leaves clean" in message


@pytest.mark.parametrize(
    ("args", "wanted"),
    [
        (["--method", "trusted-only"], "trusted-only: needs trusted cases"),
        (["--set", "data.trusted_per_batch=1"], "data.trusted_per_batch must be 0 unless trusted cases"),
        (["--set", "data.trusted_count=2", "--set", "data.trusted_cases=[phantom_000]"], "one at a time"),
        (["--method", "mtcl", "--set", "method_options.clean_cases=trusted"], "clean_cases=trusted needs trusted"),
    ],
)
def test_settings_that_need_trusted_cases_are_refused(phantoms: Path, tmp_path: Path, args, wanted) -> None:
    assert wanted in refused("train", phantoms, *args, "--out", tmp_path / "r")
    assert not (tmp_path / "r").exists()


# ----------------------------------------------------------------------------- never corrupted, recorded, shared


def test_listed_trusted_cases_are_never_corrupted_and_are_recorded(phantoms: Path, tmp_path: Path, split) -> None:
    trusted = split["train"][:3]
    out = tmp_path / "run"
    invoke("train", phantoms, "--method", "baseline", "--noise", "mt", "--noise-ratio", "0.5",
           "--trusted", ids_file(tmp_path, trusted), "--out", out, *TINY)  # fmt: skip
    manifest = json.loads((out / "noise_manifest.json").read_text())
    corrupted = {c["case_id"] for c in manifest["cases"] if c["corrupted"]}
    assert len(corrupted) == 3 and not corrupted & set(trusted)
    assert manifest["options"]["protected"] == sorted(trusted)
    assert json.loads((out / "trusted.json").read_text())["cases"] == sorted(trusted)
    assert json.loads((out / "metrics.json").read_text())["trusted_cases"] == sorted(trusted)


def test_a_trusted_count_is_drawn_among_clean_cases_and_shared_by_methods(phantoms: Path, tmp_path: Path) -> None:
    picked = {}
    for method in ("baseline", "trusted-only"):
        out = tmp_path / method
        invoke("train", phantoms, "--method", method, "--noise", "mt", "--seed", "4",
               "--set", "data.trusted_count=2", "--out", out, *TINY)  # fmt: skip
        picked[method] = json.loads((out / "trusted.json").read_text())["cases"]
        manifest = json.loads((out / "noise_manifest.json").read_text())
        clean = {c["case_id"] for c in manifest["cases"] if not c["corrupted"]}
        assert len(picked[method]) == 2 and set(picked[method]) <= clean
    assert picked["baseline"] == picked["trusted-only"]  # same seed, same trusted cases
    other = tmp_path / "other-seed"
    invoke("train", phantoms, "--method", "baseline", "--noise", "mt", "--seed", "5",
           "--set", "data.trusted_count=2", "--out", other, *TINY)  # fmt: skip
    assert len(json.loads((other / "trusted.json").read_text())["cases"]) == 2


# ----------------------------------------------------------------------------- the methods that use them


def _trainer(cls, cfg, trusted, tmp_path, manifest=None):
    cases = make_phantoms(5, 32, seed=1)
    return cls(cfg, cases, [], PHANTOM_LABELS, tmp_path, progress=False, trusted_ids=trusted,
               noise_manifest=manifest)  # fmt: skip


def test_trusted_only_trains_on_exactly_the_trusted_cases(tmp_path: Path) -> None:
    import svldrl.baselines  # noqa: F401
    from svldrl.baselines import TrustedOnlyTrainer

    cfg = merge(CPU, {"method": "trusted-only", "data": {"trusted_count": 2}, "val_every": 0})
    ids = [c.case_id for c in make_phantoms(5, 32, seed=1)]
    trainer = _trainer(TrustedOnlyTrainer, cfg, ids[1:3], tmp_path)
    assert [c.case_id for c in trainer.train_cases] == ids[1:3]
    assert set(trainer.sampler.case_ids) == set(ids[1:3])


def test_mtcl_takes_the_trusted_cases_as_its_clean_stream(tmp_path: Path) -> None:
    from svldrl.baselines import MTCLTrainer
    from svldrl.experiments.methods import method_info

    cfg = merge(CPU, {"method": "mtcl", "data": {"trusted_count": 2, "trusted_per_batch": 1}, "val_every": 0})
    ids = [c.case_id for c in make_phantoms(5, 32, seed=1)]
    trainer = _trainer(MTCLTrainer, cfg, ids[:2], tmp_path)
    assert trainer.clean_ids == frozenset(ids[:2])
    for batch in trainer.sampler.epoch(0, 4, 2):  # every batch: one trusted (clean) and one other case
        assert batch["case_id"][0] in ids[:2] and batch["case_id"][1] not in ids[:2]
    assert method_info("mtcl", {}, trusted=True)["label"] == "MTCL"
    assert method_info("mtcl", {}, trusted=False)["label"] == "MTCL (oracle)"
    assert method_info("mtcl", {"clean_cases": "oracle"}, trusted=True)["label"] == "MTCL (oracle)"


def test_an_experiment_with_trusted_cases_labels_mtcl_without_oracle(phantoms: Path, tmp_path: Path) -> None:
    from svldrl.experiments.grid import grid, load_experiment

    exp = tmp_path / "exp.yaml"
    exp.write_text(
        f"name: t\ndata: {phantoms}\nset: [data.trusted_count=2]\n"
        "methods: [baseline, trusted-only, mtcl,\n"
        "          {method: mtcl, label: old, set: [method_options.clean_cases=oracle]}]\n"
        "noise: [mt]\nratios: [0.5]\nseeds: [0]\n"
    )
    labels = [v.label for v in load_experiment(exp).variants]
    assert labels == ["Baseline", "Trusted only", "MTCL", "old"]
    assert len(grid(load_experiment(exp))) == 4


# ----------------------------------------------------------------------------- changed meanings


def test_a_saved_run_without_the_sampler_key_keeps_the_per_case_sampler(tmp_path: Path) -> None:
    saved = yaml.safe_load(yaml.safe_dump({"method": "baseline", "data": {"patch_size": [32, 32, 32]}}))
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(saved))
    assert load_config(tmp_path / "config.yaml").data.sampler == "per_case"
    assert settings_of(saved)["data"]["sampler"] == "per_case"
    assert CPU.data.sampler == "mixed"


def test_the_sfda_source_budget_has_its_own_key() -> None:
    split = split_cases([f"c{i}" for i in range(6)], 0.3)
    short = merge(CPU, {"optim": {"epochs": 40}, "noise": {"kind": "sfda"}})
    long = merge(CPU, {"optim": {"epochs": 160}, "noise": {"kind": "sfda"}})
    assert (source_epochs(short), source_epochs(long)) == (8, 32)  # a fifth of the run: milder noise when long
    fixed = merge(long, {"noise": {"sfda_epochs": 8}})
    assert source_epochs(fixed) == 8
    assert noise_key(fixed, split) == noise_key(short, split)  # the same source model, the same labels
    assert noise_key(long, split) != noise_key(short, split)
    trusted = merge(short, {"data": {"trusted_count": 3}})
    assert noise_key(trusted, split) == noise_key(short, split)  # a count picks trusted cases after the noise
    assert noise_key(short, split, ["c0"]) != noise_key(short, split)  # listed ones change the draw


def test_co_teaching_estimates_its_forget_rates_from_the_trusted_cases() -> None:
    import numpy as np

    from svldrl.baselines.co_teaching import CoTeachingTrainer, excess_disagreement
    from svldrl.experiments.methods import method_info

    # the network disagrees with 5 % of foreground labels where they are right (its own error) and with
    # 30 % on the other cases: 25 % of their foreground labels are wrong
    rates = excess_disagreement(np.array([[10.0, 30.0]]), np.array([[100.0, 100.0]]),
                                np.array([[10.0, 5.0]]), np.array([[100.0, 100.0]]))  # fmt: skip
    np.testing.assert_allclose(rates, [[0.0, 0.25]])
    assert excess_disagreement(np.array([[1.0]]), np.array([[10.0]]), np.array([[5.0]]), np.array([[10.0]])) == 0
    assert method_info("co-teaching", {}, trusted=True)["label"] == "Co-Teaching"
    assert method_info("co-teaching", {}, trusted=False)["label"] == "Co-Teaching (oracle)"
    assert not CoTeachingTrainer.uses_oracle(CoTeachingTrainer.OPTIONS(forget_rate="estimate"))


# ----------------------------------------------------------------------------- found in review


def test_a_trusted_file_through_set_is_read_and_pinned_in_the_config(phantoms: Path, tmp_path: Path, split) -> None:
    trusted = sorted(split["train"][:2])
    ids = ids_file(tmp_path, trusted[::-1])
    out = tmp_path / "run"
    invoke("train", phantoms, "--method", "trusted-only", "--set", f"data.trusted_cases=@{ids}", "--out", out, *TINY)
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["data"]["trusted_cases"] == trusted  # the ids themselves, not the file that may change


def test_two_stream_batches_need_the_mixed_sampler(phantoms: Path, tmp_path: Path) -> None:
    message = refused("train", phantoms, "--set", "data.trusted_count=2", "--set", "data.trusted_per_batch=1",
                      "--set", "data.sampler=per_case", "--out", tmp_path / "r")  # fmt: skip
    assert "data.trusted_per_batch must be 0 with data.sampler=per_case" in message


def test_adele_keeps_the_two_streams_when_it_corrects_labels(tmp_path: Path) -> None:
    from svldrl.baselines import ADELETrainer

    cfg = merge(CPU, {"method": "adele", "data": {"trusted_count": 1, "trusted_per_batch": 1}, "val_every": 0})
    cases = make_phantoms(4, 32, seed=1)
    trainer = _trainer(ADELETrainer, cfg, [cases[0].case_id], tmp_path)
    trainer.set_training_labels(list(trainer.train_cases))  # what a label correction does
    for batch in trainer.sampler.epoch(0, 3, 2):
        assert batch["case_id"][0] == cases[0].case_id and batch["case_id"][1] != cases[0].case_id


def test_compare_refuses_an_impossible_trusted_count_before_training(phantoms: Path, tmp_path: Path) -> None:
    exp = tmp_path / "exp.yaml"
    exp.write_text(
        f"name: t\ndata: {phantoms}\nset: [optim.epochs=1, data.patch_size=32]\n"
        "methods: [{method: trusted-only, set: [data.trusted_count=5]}]\nnoise: [mt]\nratios: [0.5]\nseeds: [0]\n"
        "runs_root: runs\n"
    )
    assert "data.trusted_count 5 exceeds" in refused("compare", exp, "-q")
    assert not (tmp_path / "runs").exists()
