"""A finished run as the frozen teacher (``method_options.teacher_run``, issue 15): checked, adopted, gridded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cli_helpers import invoke, refused
from svldrl.training.checkpoint import load_trained

pytestmark = pytest.mark.slow
TINY = ["--set", "optim.epochs=2", "--set", "optim.iters_per_epoch=2", "--set", "data.patch_size=32",
        "--set", "model.channels=[4,8]", "--set", "val_every=0", "--noise", "mt", "--seed", "3", "-q"]  # fmt: skip


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the phantom data set, a finished trusted-only run on it with 2 trusted cases)."""
    root = tmp_path_factory.mktemp("teacher")
    invoke("phantom", root / "ph", "--n", "8", "--size", "32", "--seed", "2")
    invoke("train", root / "ph", "--method", "trusted-only", "--set", "data.trusted_count=2",
           "--out", root / "teacher", *TINY)  # fmt: skip
    return root / "ph", root / "teacher"


@pytest.mark.parametrize("method", ["case-filter", "teacher-correction", "svl-drl-trusted"])
def test_the_teacher_run_is_adopted_from_the_first_step_and_kept_in_the_checkpoint(teacher, tmp_path, method):
    data, teacher_run = teacher
    extra = ["--set", "method_options.reward=teacher", "--set", "stages.warmup_fraction=0",
             "--set", "rl.episode_length=1"] if method == "svl-drl-trusted" else []  # fmt: skip
    out = tmp_path / "student"
    invoke("train", data, "--method", method, "--set", "data.trusted_count=2", "--set", "data.trusted_per_batch=1",
           "--set", f"method_options.teacher_run={teacher_run}", "--out", out, *TINY, *extra)  # fmt: skip
    net, _, _ = load_trained(teacher_run, device="cpu")
    saved = torch.load(out / "checkpoints" / "latest.pt", weights_only=False)["teacher"]
    assert saved.keys() == net.state_dict().keys()
    assert all(torch.equal(saved[k], v) for k, v in net.state_dict().items())  # the teacher never trained
    if method == "case-filter":  # scored by the teacher before the first epoch
        report = json.loads((out / "case_filter.json").read_text())
        assert report["filter_epoch"] == 0 and report["teacher_run"] == str(teacher_run)
    if method == "teacher-correction":
        rows = (out / "log.csv").read_text().splitlines()[1:]
        header = (out / "log.csv").read_text().splitlines()[0].split(",")
        corrected = [float(r.split(",")[header.index("corrected")]) for r in rows]
        assert corrected[0] > 0  # corrections from the first epoch (the in-run teacher starts later)
    metrics = json.loads((out / "metrics.json").read_text())
    (out / "metrics.json").unlink()  # as if stopped after its last checkpoint: --resume finishes it the same way
    invoke("train", data, "--method", method, "--set", "data.trusted_count=2", "--set", "data.trusted_per_batch=1",
           "--set", f"method_options.teacher_run={teacher_run}", "--out", out, "--resume", *TINY, *extra)  # fmt: skip
    assert json.loads((out / "metrics.json").read_text())["summary"] == metrics["summary"]


def test_a_teacher_trained_with_other_noise_is_refused_unless_it_saw_only_trusted_cases(teacher, tmp_path):
    data, teacher_run = teacher
    other = [a if a != "mt" else "sfda" for a in TINY] + ["--set", "noise.sfda_epochs=1"]
    # trusted-only never saw a noisy label: the teacher of an SFDA run, trained under MT, is the same training
    invoke("train", data, "--method", "case-filter", "--set", "data.trusted_count=2",
           "--set", f"method_options.teacher_run={teacher_run}", "--out", tmp_path / "s", *other)  # fmt: skip
    noisy = tmp_path / "noisy-teacher"  # a baseline trained on MT labels: refused as the teacher of an SFDA run
    invoke("train", data, "--method", "baseline", "--set", "data.trusted_count=2", "--out", noisy, *TINY)
    message = refused("train", data, "--method", "case-filter", "--set", "data.trusted_count=2",
                      "--set", f"method_options.teacher_run={noisy}", "--out", tmp_path / "t", *other)  # fmt: skip
    assert "the teacher trained with other noise settings than this run" in message


def test_a_teacher_with_other_trusted_cases_is_refused_before_training(teacher, tmp_path):
    data, teacher_run = teacher
    out = tmp_path / "student"
    message = refused("train", data, "--method", "case-filter", "--set", "data.trusted_count=3",
                      "--set", f"method_options.teacher_run={teacher_run}", "--out", out, *TINY)  # fmt: skip
    assert "trusted.json: the teacher's trusted cases" in message and "differ from this run's" in message
    assert not (out / "checkpoints").exists()


def test_a_teacher_of_another_split_or_unfinished_is_refused(teacher, tmp_path):
    data, teacher_run = teacher
    message = refused("train", data, "--method", "case-filter", "--set", "data.trusted_count=2",
                      "--set", f"method_options.teacher_run={teacher_run}", "--set", "data.val_fraction=0.4",
                      "--out", tmp_path / "s", *TINY)  # fmt: skip
    assert "the teacher run's split differs from this run's" in message
    message = refused("train", data, "--method", "case-filter", "--set", "data.trusted_count=2",
                      "--set", f"method_options.teacher_run={tmp_path}", "--out", tmp_path / "t", *TINY)  # fmt: skip
    assert f"method_options.teacher_run {tmp_path}: not a finished run" in message and not (tmp_path / "t").exists()


def test_a_grid_names_the_teacher_of_each_seed_once(teacher, tmp_path):
    from svldrl.experiments.compare import train_pending
    from svldrl.experiments.grid import grid, load_experiment, waits_for

    data, _ = teacher
    exp = tmp_path / "exp.yaml"
    exp.write_text(
        f"name: t\ndata: {data}\nruns_root: runs\n"
        "set: [data.trusted_count=2, data.patch_size=32, optim.epochs=1, optim.iters_per_epoch=1, val_every=0]\n"
        "methods: [{method: case-filter, label: filter,\n"
        "           set: ['method_options.teacher_run={runs_root}/phantom/trusted-only__{noise}__seed{seed}']},\n"
        "          trusted-only]\n"
        "noise: [mt]\nratios: [0.5]\nseeds: [0, 1]\n"
    )
    runs = grid(load_experiment(exp))
    teachers = [r.cfg.method_options["teacher_run"] for r in runs if r.variant.method == "case-filter"]
    assert teachers == [str(tmp_path / "runs" / "phantom" / f"trusted-only__mt-0.5__seed{s}") for s in (0, 1)]
    assert all(waits_for(r.cfg) for r in runs if r.variant.method == "case-filter")
    assert train_pending(exp, progress=False) == 2  # the teachers; the students wait for them
    assert not any(waits_for(r.cfg) for r in runs)
    assert train_pending(exp, progress=False) == 2  # now the students
    bad = tmp_path / "bad.yaml"
    bad.write_text(exp.read_text().replace("{seed}", "{sed}"))
    with pytest.raises(ValueError, match=r"only \{runs_root\}, \{noise\} and \{seed\} can be filled in"):
        grid(load_experiment(bad))


def test_co_teaching_takes_its_forget_rates_from_the_teacher_run(teacher, tmp_path):
    """forget_rate=teacher: the rates are the disagreement of the teacher's network with the non-trusted labels,
    known before the first step (ramped from epoch 0); the option and its run go together."""
    import numpy as np

    from svldrl.baselines.co_teaching import disagreement_counts
    from svldrl.data import load_dataset, prepare_cases
    from svldrl.inference import predict_probabilities

    data, teacher_run = teacher
    out = tmp_path / "co-teaching"
    invoke("train", data, "--method", "co-teaching", "--set", "data.trusted_count=2",
           "--set", "method_options.forget_rate=teacher", "--set", f"method_options.teacher_run={teacher_run}",
           "--out", out, *TINY)  # fmt: skip
    final = torch.load(out / "checkpoints" / "latest.pt", weights_only=False)["final_forget"].numpy()
    net, cfg, _ = load_trained(teacher_run, device="cpu")  # independent route: the teacher's argmax, case by case
    noisy = np.load(json.loads((out / "noisy_labels.json").read_text())["path"])
    trusted = set(json.loads((out / "trusted.json").read_text())["cases"])
    dataset = load_dataset(data)
    wrong, total = np.zeros((1, 2)), np.zeros((1, 2))
    for case_id in json.loads((out / "split.json").read_text())["train"]:
        if case_id in trusted:
            continue
        case = prepare_cases([dataset.get(case_id).with_label(noisy[case_id])], cfg.data)[0]
        pred = predict_probabilities(net, case.image, cfg.data.patch_size, overlap=cfg.sw_overlap).argmax(axis=0)
        w, t = disagreement_counts(case.label[None], pred[None], 2)
        wrong, total = wrong + w, total + t
    np.testing.assert_allclose(final, wrong / total, rtol=1e-6)
    assert final[0, 1] > 0  # the 2-epoch teacher disagrees with some foreground labels
    rates = json.loads((out / "co_teaching_rates.json").read_text())
    assert rates["source"] == "teacher" and np.allclose(rates["final_forget"], final, atol=1e-6)
    message = refused("train", data, "--method", "co-teaching", "--set", "data.trusted_count=2",
                      "--set", "method_options.forget_rate=teacher", "--out", tmp_path / "no-teacher", *TINY)
    assert "forget_rate=teacher needs it" in message


def test_a_resumed_co_teaching_run_takes_the_teacher_rates_from_its_checkpoint(teacher, tmp_path, monkeypatch):
    """The teacher's rates are measured once, when the first epoch starts: a resumed run reads them back rather
    than running the teacher over every training case again (and ends where an uninterrupted run ends)."""
    from svldrl.baselines.co_teaching import CoTeachingTrainer
    from svldrl.config import load_config
    from svldrl.experiments.pipeline import train_run

    data, teacher_run = teacher
    whole = tmp_path / "whole"
    invoke("train", data, "--method", "co-teaching", "--set", "data.trusted_count=2",
           "--set", "method_options.forget_rate=teacher", "--set", f"method_options.teacher_run={teacher_run}",
           "--out", whole, *TINY)  # fmt: skip
    cfg = load_config(whole / "config.yaml")
    out = tmp_path / "stopped"
    assert train_run(data, cfg, out=out, progress=False, stop_after=1).metrics["finished"] is False

    def not_again(self, run):
        raise AssertionError("the teacher's rates were measured again on resume")

    monkeypatch.setattr(CoTeachingTrainer, "teacher_rates", not_again)
    resumed = train_run(data, cfg, out=out, progress=False, resume=True).metrics
    assert resumed["summary"] == json.loads((whole / "metrics.json").read_text())["summary"]


def test_the_run_labels_name_each_corrupted_case_s_mt_operation(teacher) -> None:
    """After-the-fact studies split MT's dilated from its eroded cases: the groups come from the run's own files."""
    from svldrl.data import load_dataset
    from svldrl.experiments.run_labels import run_trusted_ids, training_case_labels

    data, run = teacher
    _, cfg, _ = load_trained(run, device="cpu")
    cases = list(training_case_labels(run, load_dataset(data), cfg.data))
    manifest = {c["case_id"]: c for c in json.loads((run / "noise_manifest.json").read_text())["cases"]}
    assert {c.case_id for c in cases if c.group == "trusted"} == set(run_trusted_ids(run))
    for case in cases:
        if case.group == "corrupted":
            assert case.operation == manifest[case.case_id]["operation"] in ("dilation", "erosion")
            assert (case.noisy != case.clean).any()
        else:
            assert case.operation is None
    assert any(c.group == "corrupted" for c in cases) and any(c.group != "corrupted" for c in cases)
