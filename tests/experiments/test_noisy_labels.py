"""Frozen noisy labels: which settings may change them, and the SFDA source model's fixed loss."""

from __future__ import annotations

import yaml

from svldrl.config import CPU, merge
from svldrl.data import PHANTOM_LABELS, make_phantoms, split_cases
from svldrl.experiments.noisy_labels import make_source_trainer, noise_key

TINY = {"data": {"patch_size": [16, 16, 16], "samples_per_volume": 1}, "model": {"channels": [4, 8]},
        "optim": {"epochs": 5, "iters_per_epoch": 1, "batch_size": 2}, "num_threads": 1}


def test_sfda_labels_depend_on_the_source_training_but_not_on_the_methods_loss():
    split = split_cases([f"c{i}" for i in range(6)], 0.3)
    sfda = merge(CPU, {"noise": {"kind": "sfda", "ratio": 0.5}})
    assert noise_key(sfda, split) == noise_key(merge(sfda, {"optim": {"loss": "dice_ce"}}), split)
    assert noise_key(sfda, split) != noise_key(merge(sfda, {"optim": {"lr": 1e-3}}), split)
    assert noise_key(sfda, split) == noise_key(merge(sfda, {"sw_batch_size": 1, "method": "clcs"}), split)
    mt = merge(CPU, {"noise": {"kind": "mt", "ratio": 0.5}})
    assert noise_key(mt, split) == noise_key(merge(mt, {"optim": {"lr": 1e-3}}), split)


def test_the_source_model_trains_with_the_dice_loss_whatever_the_run_uses(tmp_path):
    cfg = merge(merge(CPU, TINY), {"optim": {"loss": "dice_ce"}, "noise": {"kind": "sfda"}})
    predict = make_source_trainer(cfg, PHANTOM_LABELS, tmp_path / "source", epochs=1)(make_phantoms(3, 16, seed=1))
    assert predict(make_phantoms(1, 16, seed=2)[0]).shape == (16, 16, 16)
    saved = yaml.safe_load((tmp_path / "source" / "config.yaml").read_text())
    assert saved["optim"]["loss"] == "dice" and saved["optim"]["epochs"] == 1
