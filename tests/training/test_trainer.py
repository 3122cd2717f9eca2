"""The Trainer engine: resume equivalence, checkpoints, logs, validation, the baseline method, input errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from svldrl.data import PHANTOM_LABELS, LabelSpec
from svldrl.inference import predict_probabilities
from svldrl.training import (
    METHODS,
    SVLDRLTrainer,
    Trainer,
    build_seg_loss,
    load_checkpoint,
    load_trained,
    read_log,
    resolve_device,
)
from svldrl.training.logs import EpochLogger

# 4 epochs: Warmup, Transition, Full RL, Full RL; validation after epochs 1 and 3.
RESUME = {
    "optim": {"epochs": 4, "iters_per_epoch": 2},
    "stages": {"warmup_epochs": 1, "transition_epochs": 1},
    "val_every": 2,
}


def test_resume_reaches_the_uninterrupted_result(tiny_config, phantoms16, make_trainer, tmp_path):
    cfg = tiny_config(RESUME)
    train, val = phantoms16[:1], phantoms16[1:]
    straight = make_trainer(cfg, train, tmp_path / "straight", val)
    straight_result = straight.fit()

    first = make_trainer(cfg, train, tmp_path / "resumed", val)
    first.fit(stop_after=2)
    assert first.epoch == 2
    second = make_trainer(cfg, train, tmp_path / "resumed", val)  # a fresh process would do the same
    resumed_result = second.fit(resume=True)

    assert resumed_result == straight_result
    a = load_checkpoint(tmp_path / "straight" / "checkpoints" / "latest.pt")
    b = load_checkpoint(tmp_path / "resumed" / "checkpoints" / "latest.pt")
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    assert torch.equal(a["rng"]["generator"], b["rng"]["generator"])
    rows_a, rows_b = read_log(tmp_path / "straight"), read_log(tmp_path / "resumed")
    assert [r["epoch"] for r in rows_b] == ["0", "1", "2", "3"]
    for ra, rb in zip(rows_a, rows_b, strict=True):
        ra.pop("epoch_time"), rb.pop("epoch_time")
        assert ra == rb


def test_checkpoint_holds_everything_to_resume_and_predict(tiny_config, phantoms16, make_trainer, tmp_path):
    cfg = tiny_config({"optim": {"epochs": 2}, "val_every": 1})
    trainer = make_trainer(cfg, phantoms16[:1], tmp_path, phantoms16[1:])
    trainer.fit()
    payload = load_checkpoint(tmp_path / "checkpoints" / "latest.pt")
    assert {"model", "optimizer", "lr_scheduler", "epoch", "rng", "config", "labels", "in_channels"} <= set(payload)
    assert set(payload["rng"]) >= {"python", "numpy", "torch", "generator"}
    assert payload["epoch"] == 2
    assert payload["in_channels"] == 1
    assert payload["labels"] == {"names": ["background", "organ"], "mode": "classes"}
    assert (tmp_path / "checkpoints" / "best.pt").is_file()
    assert (tmp_path / "config.yaml").is_file()
    assert not list((tmp_path / "checkpoints").glob("*.tmp"))  # atomic writes leave no temporary files

    net, loaded_cfg, labels = load_trained(tmp_path / "checkpoints" / "latest.pt", device="cpu")
    assert loaded_cfg == cfg
    assert labels == PHANTOM_LABELS
    assert not net.training
    for name, tensor in net.state_dict().items():
        assert torch.equal(tensor, trainer.net.state_dict()[name]), name
    final_net, _, _ = load_trained(tmp_path, device="cpu")  # a run folder loads its final model, as train scored it
    assert all(torch.equal(t, trainer.net.state_dict()[n]) for n, t in final_net.state_dict().items())
    (tmp_path / "checkpoints" / "latest.pt").unlink()  # without it (e.g. copied folders), best.pt
    best_net, _, _ = load_trained(tmp_path, device="cpu")
    best = load_checkpoint(tmp_path / "checkpoints" / "best.pt")
    assert all(torch.equal(t, best["model"][n]) for n, t in best_net.state_dict().items())


def test_best_checkpoint_follows_the_best_validation_dice(tiny_config, phantoms16, make_trainer, tmp_path):
    trainer = make_trainer(tiny_config({"optim": {"epochs": 3}}), phantoms16[:1], tmp_path, phantoms16[1:])
    result = trainer.fit()
    scores = [float(r["val_dice"]) for r in read_log(tmp_path)]
    assert result["best_val_dice"] == pytest.approx(max(scores))
    assert load_checkpoint(tmp_path / "checkpoints" / "best.pt")["epoch"] == 1 + int(np.argmax(scores))


def test_val_every_zero_never_validates(tiny_config, phantoms16, make_trainer, tmp_path):
    cfg = tiny_config({"optim": {"epochs": 2}, "val_every": 0})
    trainer = make_trainer(cfg, phantoms16[:1], tmp_path, phantoms16[1:])
    trainer.fit()
    assert [r["val_dice"] for r in read_log(tmp_path)] == ["", ""]
    assert not (tmp_path / "checkpoints" / "best.pt").exists()
    assert (tmp_path / "checkpoints" / "latest.pt").is_file()


def test_log_has_stable_columns_and_one_row_per_epoch(tiny_config, phantoms16, make_trainer, tmp_path):
    cfg = tiny_config(RESUME)
    make_trainer(cfg, phantoms16[:1], tmp_path, phantoms16[1:]).fit()
    rows = read_log(tmp_path)
    assert list(rows[0]) == [
        "epoch", "stage", "loss", "loss_dice", "loss_value", "loss_policy", "reward", "reward_dice_gain",
        "reward_penalty_change", "action_keep", "action_enhance", "action_weaken", "value_mean",
        "policy_entropy", "advantage_std", "val_dice", "val_dice_organ", "lr", "epoch_time",
    ]  # fmt: skip
    assert [r["stage"] for r in rows] == ["warmup", "transition", "full_rl", "full_rl"]
    assert rows[0]["loss_value"] == "" and rows[1]["loss_policy"] == "" and rows[2]["loss_policy"] != ""
    assert [r["val_dice"] != "" for r in rows] == [False, True, False, True]
    lr0 = cfg.optim.lr
    assert [float(r["lr"]) for r in rows] == pytest.approx([lr0 * (1 - e / 4) ** 0.9 for e in range(4)])
    assert (tmp_path / "tensorboard").is_dir()


def test_logger_drops_rows_written_after_the_last_checkpoint(tmp_path):
    logger = EpochLogger(tmp_path, ["loss"])
    for epoch in range(4):
        logger.log(epoch, "warmup", {"loss": float(epoch)})
    logger.close()
    EpochLogger(tmp_path, ["loss"], start_epoch=2).close()
    assert [r["epoch"] for r in read_log(tmp_path)] == ["0", "1"]
    with pytest.raises(KeyError, match="not log columns"):
        EpochLogger(tmp_path, ["loss"]).log(0, "warmup", {"los": 1.0})


def test_a_resume_that_logs_a_new_column_keeps_the_old_rows_and_one_that_drops_a_column_is_refused(tmp_path):
    logger = EpochLogger(tmp_path, ["loss", "flipped_fraction"])
    for epoch in range(3):
        logger.log(epoch, "supervised", {"loss": 1.0, "flipped_fraction": 0.02})
    logger.close()
    newer = EpochLogger(tmp_path, ["loss", "flipped_fraction", "flipped_to_background"], start_epoch=2)
    newer.log(2, "supervised", {"loss": 0.5, "flipped_fraction": 0.03, "flipped_to_background": 0.9})
    newer.close()
    rows = read_log(tmp_path)
    assert [(r["epoch"], r["flipped_fraction"], r["flipped_to_background"]) for r in rows] == [
        ("0", "0.02", ""), ("1", "0.02", ""), ("2", "0.03", "0.9")]  # fmt: skip
    with pytest.raises(ValueError, match=r"columns \['flipped_to_background'\] are not among"):
        EpochLogger(tmp_path, ["loss", "flipped_fraction"], start_epoch=2)


def test_validation_is_the_dice_of_the_sliding_window_prediction(tiny_config, phantoms16, make_trainer, tmp_path):
    cfg = tiny_config()
    trainer = make_trainer(cfg, phantoms16[:1], tmp_path, phantoms16)
    for epoch in range(2):
        trainer.train_step(trainer.batch_to_device(next(trainer.sampler.epoch(epoch, 1, 2))), epoch)
    metrics = trainer.validate()
    scores = []
    for case in phantoms16:
        prob = predict_probabilities(trainer.net, case.image, cfg.data.patch_size, overlap=cfg.sw_overlap)
        pred, ref = prob[1] > prob[0], case.label == 1
        scores.append(2 * np.sum(pred & ref) / (pred.sum() + ref.sum()))
    assert metrics["val_dice_organ"] == pytest.approx(np.mean(scores))
    assert metrics["val_dice"] == metrics["val_dice_organ"]


def test_baseline_is_the_dice_only_trainer(tiny_config, phantoms16, make_trainer, tmp_path):
    assert METHODS.get("baseline") is Trainer
    assert METHODS.get("svl_drl") is SVLDRLTrainer
    trainer = make_trainer(tiny_config({"method": "baseline"}), phantoms16, tmp_path)
    assert type(trainer) is Trainer
    trainer.train_step(trainer.batch_to_device(next(trainer.sampler.epoch(0, 1, 2))), 9)
    assert any(p.grad is not None for p in trainer.net.seg_parameters())
    assert all(p.grad is None for p in [*trainer.net.value_parameters(), *trainer.net.policy_parameters()])
    assert trainer.stage_name(0) == "supervised"


@pytest.mark.parametrize("mode", ["classes", "regions"])
def test_dice_ce_loss_is_dice_plus_cross_entropy(mode):
    """optim.loss=dice_ce adds the plain (binary) cross-entropy, weight 1, to the same Dice term."""
    torch.manual_seed(0)
    labels = PHANTOM_LABELS if mode == "classes" else LabelSpec(names=("a", "b"), mode="regions")
    n = labels.n_outputs
    logits = torch.randn(2, n, 6, 6, 6)
    if mode == "classes":
        target = torch.nn.functional.one_hot(torch.randint(0, n, (2, 6, 6, 6)), n).permute(0, 4, 1, 2, 3).float()
        ce = torch.nn.functional.cross_entropy(logits, target.argmax(1))
    else:
        target = (torch.rand(2, n, 6, 6, 6) > 0.5).float()
        ce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
    dice_only = build_seg_loss(labels, "dice")(logits, target)
    assert build_seg_loss(labels, "dice_ce")(logits, target).item() == pytest.approx((dice_only + ce).item(), rel=1e-5)


def test_batches_per_epoch_defaults_to_one_pass(tiny_config, phantoms16, make_trainer, tmp_path):
    cfg = tiny_config({"optim": {"iters_per_epoch": None, "batch_size": 2}, "data": {"samples_per_volume": 3}})
    trainer = make_trainer(cfg, phantoms16, tmp_path)
    assert trainer.batches_per_epoch == math.ceil(2 * 3 / 2)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"optim": {"optimizer": "rmsprop"}}, "optim.optimizer"),
        ({"optim": {"lr_schedule": "cosine"}}, "optim.lr_schedule"),
        ({"optim": {"loss": "focal"}}, "optim.loss"),
        ({"data": {"patch_size": [15, 16, 16]}}, "data.patch_size"),
        ({"val_every": -1}, "val_every"),
        ({"rl": {"seg_loss_states": "first"}}, "rl.seg_loss_states"),
        ({"stages": {"alpha": 0.7, "beta": 0.5}}, "alpha"),
    ],
)
def test_bad_configuration_is_rejected_early(tiny_config, phantoms16, make_trainer, tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        make_trainer(tiny_config(overrides), phantoms16, tmp_path)


def test_bad_cases_are_rejected_early(tiny_config, phantoms16, make_trainer, tmp_path):
    with pytest.raises(ValueError, match="train_cases: need at least one"):
        make_trainer(tiny_config(), [], tmp_path)
    unlabelled = phantoms16[0].with_label(None)
    with pytest.raises(ValueError, match="val_cases: cases without a label"):
        make_trainer(tiny_config(), phantoms16, tmp_path, [unlabelled])


def test_device_resolution():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
    with pytest.raises(ValueError, match="device"):
        resolve_device("tpu")


def test_resuming_with_another_configuration_is_refused(tiny_config, phantoms16, make_trainer, tmp_path):
    make_trainer(tiny_config({"optim": {"epochs": 2}}), phantoms16, tmp_path).fit(stop_after=1)
    other = make_trainer(tiny_config({"optim": {"epochs": 2}, "rl": {"gamma": 0.9}}), phantoms16, tmp_path)
    with pytest.raises(ValueError, match="configuration differs in rl"):
        other.fit(resume=True)
    execution_only = {"optim": {"epochs": 2}, "num_threads": 2, "sw_batch_size": 3, "device": "cpu"}
    same_but_execution = make_trainer(tiny_config(execution_only), phantoms16, tmp_path)
    torch.set_num_threads(1)
    assert same_but_execution.fit(resume=True)["epochs_done"] == 2


def test_a_method_option_set_to_its_default_resumes_the_run_made_without_it(
    tiny_config, phantoms16, make_trainer, tmp_path
):
    """``{gradient_estimator: <default>}`` and ``{}`` are the same training: the resume goes on, as the
    folder check of ``train --resume`` / ``compare`` lets it (``training.methods.compared_settings``)."""
    from svldrl.training.svldrl import METHOD_OPTIONS

    cfg = tiny_config({"optim": {"epochs": 2}})
    assert cfg.method == "svl-drl" and not cfg.method_options
    make_trainer(cfg, phantoms16, tmp_path).fit(stop_after=1)
    default = {"gradient_estimator": METHOD_OPTIONS["gradient_estimator"]}
    other = next(e for e in ("full", "sampled") if e != default["gradient_estimator"])
    refused = make_trainer(tiny_config({"optim": {"epochs": 2}, "method_options": {"gradient_estimator": other}}),
                           phantoms16, tmp_path)
    with pytest.raises(ValueError, match="configuration differs in method_options"):
        refused.fit(resume=True)
    resumed = make_trainer(tiny_config({"optim": {"epochs": 2}, "method_options": default}), phantoms16, tmp_path)
    assert resumed.fit(resume=True)["epochs_done"] == 2


def test_a_checkpoint_saved_before_an_option_existed_resumes(tiny_config, phantoms16, make_trainer, tmp_path):
    """A run interrupted under an older version (its config lacks optim.loss) resumes with the default."""
    trainer = make_trainer(tiny_config({"optim": {"epochs": 2}}), phantoms16, tmp_path)
    trainer.fit(stop_after=1)
    payload = torch.load(trainer.latest_path, weights_only=False)
    del payload["config"]["optim"]["loss"]
    torch.save(payload, trainer.latest_path)
    resumed = make_trainer(tiny_config({"optim": {"epochs": 2}}), phantoms16, tmp_path)
    assert resumed.fit(resume=True)["epochs_done"] == 2
    dice_ce = make_trainer(tiny_config({"optim": {"epochs": 2, "loss": "dice_ce"}}), phantoms16, tmp_path)
    with pytest.raises(ValueError, match="configuration differs in optim"):
        dice_ce.fit(resume=True)


def test_region_labels_train_with_sigmoid_outputs(tiny_config, phantoms16, make_trainer, tmp_path):
    """Overlapping regions (BraTS-like): two nested channels, every stage runs, Dice per region."""
    from scipy import ndimage

    from svldrl.data import LabelSpec

    def nested(case):
        inner = ndimage.binary_erosion(case.label, iterations=1)
        return case.with_label(np.stack([case.label, inner]).astype(np.uint8))

    cases = [nested(c) for c in phantoms16]
    labels = LabelSpec(("whole", "core"), mode="regions")
    trainer = SVLDRLTrainer(tiny_config(), cases[:1], cases[1:], labels, tmp_path, progress=False)
    batch = trainer.batch_to_device(next(trainer.sampler.epoch(0, 1, 2)))
    assert batch["label"].shape[1] == 2
    for epoch in (0, 5, 7):  # Warmup, Transition, Full RL
        assert all(math.isfinite(v) for v in trainer.train_step(batch, epoch).values())
    metrics = trainer.validate()
    assert set(metrics) == {"val_dice", "val_dice_whole", "val_dice_core"}


def test_load_trained_rebuilds_the_methods_own_network(tiny_config, phantoms16, make_trainer, tmp_path, monkeypatch):
    """A method whose saved module is not the plain network (e.g. extra heads) is rebuilt by its class."""
    from torch import nn

    from svldrl.training import checkpoint

    class Wrapped(nn.Module):
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner
            self.extra = nn.Parameter(torch.full((3,), 7.0))

        def forward(self, x, heads=("seg", "value", "policy")):
            return self.inner(x, heads=heads)

        def segment(self, x):
            return self.inner.segment(x)

    class WrappedTrainer(Trainer):
        @classmethod
        def inference_network(cls, cfg, in_channels, labels):
            return Wrapped(super().inference_network(cfg, in_channels, labels))

    trainer = WrappedTrainer(tiny_config({"optim": {"epochs": 1}}), phantoms16, [], PHANTOM_LABELS, tmp_path,
                             progress=False)
    trainer.fit()
    monkeypatch.setattr(checkpoint, "method_class", lambda name: WrappedTrainer)
    net, _, _ = load_trained(tmp_path, device="cpu")
    assert isinstance(net, Wrapped) and torch.equal(net.extra, torch.full((3,), 7.0))


def test_method_class_finds_registered_and_baseline_methods():
    from svldrl.training.checkpoint import method_class

    assert method_class("svl-drl") is SVLDRLTrainer
    assert method_class("baseline") is Trainer
    assert issubclass(method_class("pixeldrl-mg"), SVLDRLTrainer)  # registered when svldrl.baselines is imported


def test_scalar_means_skip_steps_that_did_not_give_a_value():
    from svldrl.training.logs import ScalarMeans

    means = ScalarMeans()
    means.add({"loss": 1.0, "changed_corrupted": float("nan")})  # a batch without a corrupted case
    means.add({"loss": 3.0, "changed_corrupted": 0.2})
    assert means.means() == {"loss": 2.0, "changed_corrupted": 0.2}
