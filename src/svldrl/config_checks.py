"""The domain of every configuration value, checked before any work (``check_values``).

``train_run`` and ``compare`` call it before data is read; each failure is one line naming the key,
the rule and the value. The allowed names (optimisers, samplers, precisions, head forms...) are
defined here once and imported where they are used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from svldrl.config import TrainConfig

OPTIMIZERS = ("sgd", "adam")
SAMPLERS = ("mixed", "per_case")
LR_SCHEDULES = ("constant", "poly")
NOISE_KINDS = ("none", "mt", "morphological", "sfda", "border", "border-onesided")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")  # training.precision resolves them per device
HEAD_FORMS = ("full", "light")  # model.heads, built by models.network.ThreeHeadNet


def _require(ok: bool, key: str, rule: str, value: Any) -> None:
    if not ok:
        raise ValueError(f"{key} must be {rule}, got {value!r}")


def check_values(cfg: TrainConfig) -> None:
    """Refuse a configuration any key of which is outside its domain, naming the key.

    Why here: every value is known before a run folder is made, so an error found later (a
    batch size of 0 in the sampler, a negative learning rate in the optimiser) would leave a
    half-made run folder behind. Method-specific keys (``rl.*`` for SVL-DRL, ``method_options``)
    are checked by the method's ``check_config``; the patch against the backbone by
    ``svldrl.models.check_patch_size``.
    """
    d, m, o, n, st = cfg.data, cfg.model, cfg.optim, cfg.noise, cfg.stages
    _require(cfg.precision in PRECISIONS, "precision", f"one of {PRECISIONS}", cfg.precision)
    _require(m.heads in HEAD_FORMS, "model.heads", f"one of {HEAD_FORMS}", m.heads)
    _require(o.epochs >= 1, "optim.epochs", ">= 1 (0 would train nothing and score an untrained model)", o.epochs)
    _require(o.batch_size >= 1, "optim.batch_size", ">= 1", o.batch_size)
    _require(o.iters_per_epoch is None or o.iters_per_epoch >= 1, "optim.iters_per_epoch", ">= 1 or null",
             o.iters_per_epoch)  # fmt: skip
    _require(o.lr > 0, "optim.lr", "> 0", o.lr)
    _require(0 <= o.momentum < 1, "optim.momentum", "in [0, 1)", o.momentum)
    _require(o.weight_decay >= 0, "optim.weight_decay", ">= 0", o.weight_decay)
    _require(o.grad_clip is None or o.grad_clip > 0, "optim.grad_clip", "> 0 or null", o.grad_clip)
    _require(o.optimizer in OPTIMIZERS, "optim.optimizer", f"one of {OPTIMIZERS}", o.optimizer)
    _require(o.lr_schedule in LR_SCHEDULES, "optim.lr_schedule", f"one of {LR_SCHEDULES}", o.lr_schedule)
    _require(d.spacing is None or all(s > 0 for s in d.spacing), "data.spacing", "> 0 mm on every axis or null",
             d.spacing)  # fmt: skip
    _require(all(s >= 1 for s in d.patch_size), "data.patch_size", ">= 1 voxel on every axis", d.patch_size)
    _require(0 <= d.pos_fraction <= 1, "data.pos_fraction", "in [0, 1]", d.pos_fraction)
    _require(d.samples_per_volume >= 1, "data.samples_per_volume", ">= 1", d.samples_per_volume)
    _require(0 <= d.intensity_jitter < 1, "data.intensity_jitter", "in [0, 1)", d.intensity_jitter)
    _require(0 <= d.val_fraction < 1, "data.val_fraction", "in [0, 1)", d.val_fraction)
    _require(0 <= d.test_fraction < 1, "data.test_fraction", "in [0, 1)", d.test_fraction)
    _require(d.val_fraction + d.test_fraction < 1, "data.val_fraction + data.test_fraction", "< 1 (cases must be "
             "left for training)", d.val_fraction + d.test_fraction)  # fmt: skip
    _require(d.max_cases is None or d.max_cases >= 1, "data.max_cases", ">= 1 or null", d.max_cases)
    _require(d.sampler in SAMPLERS, "data.sampler", f"one of {SAMPLERS}", d.sampler)
    _require(d.trusted_count is None or d.trusted_count >= 1, "data.trusted_count", ">= 1 or null", d.trusted_count)
    _require(not (d.trusted_count and d.trusted_cases), "data.trusted_count and data.trusted_cases",
             "used one at a time", (d.trusted_count, d.trusted_cases))  # fmt: skip
    _require(d.trusted_per_batch >= 0, "data.trusted_per_batch", ">= 0", d.trusted_per_batch)
    _require(d.trusted_per_batch == 0 or d.sampler == "mixed", "data.trusted_per_batch",
             "0 with data.sampler=per_case (two-stream batches need the mixed sampler)",
             d.trusted_per_batch)  # fmt: skip
    _require(d.trusted_per_batch < o.batch_size or d.trusted_per_batch == 0, "data.trusted_per_batch",
             f"< optim.batch_size ({o.batch_size}), leaving room for the other cases", d.trusted_per_batch)  # fmt: skip
    _require(d.trusted_per_batch == 0 or bool(d.trusted_count or d.trusted_cases), "data.trusted_per_batch",
             "0 unless trusted cases are given (data.trusted_count or data.trusted_cases)",
             d.trusted_per_batch)  # fmt: skip
    _require(all(c >= 1 for c in m.channels) and len(m.channels) >= 2, "model.channels", "two or more levels of "
             ">= 1 channels", m.channels)  # fmt: skip
    _require(m.feature_size >= 12 and m.feature_size % 12 == 0, "model.feature_size", "a multiple of 12",
             m.feature_size)  # fmt: skip
    _require(0 <= m.dropout < 1, "model.dropout", "in [0, 1)", m.dropout)
    _require(m.pretrained is None or Path(m.pretrained).is_file(), "model.pretrained", "an existing file or null",
             m.pretrained)  # fmt: skip
    _require(0 <= cfg.rl.gamma <= 1, "rl.gamma", "in [0, 1]", cfg.rl.gamma)
    _require(cfg.rl.refine_steps >= 0, "rl.refine_steps", ">= 0", cfg.rl.refine_steps)
    for name in ("warmup", "transition"):
        fraction, explicit = getattr(st, f"{name}_fraction"), getattr(st, f"{name}_epochs")
        _require(0 <= fraction <= 1, f"stages.{name}_fraction", "in [0, 1]", fraction)
        _require(explicit is None or explicit >= 0, f"stages.{name}_epochs", ">= 0 or null", explicit)
    _require(st.warmup_fraction + st.transition_fraction <= 1, "stages.warmup_fraction + stages.transition_fraction",
             "<= 1", st.warmup_fraction + st.transition_fraction)  # fmt: skip
    _require(n.kind in NOISE_KINDS, "noise.kind", f"one of {NOISE_KINDS}", n.kind)
    _require(0 <= n.ratio <= 1, "noise.ratio", "in [0, 1]", n.ratio)
    _require(n.seed >= 0, "noise.seed", ">= 0", n.seed)
    _require(0 < n.sfda_budget <= 1, "noise.sfda_budget", "in (0, 1]", n.sfda_budget)
    _require(n.sfda_epochs is None or n.sfda_epochs >= 1, "noise.sfda_epochs", ">= 1 or null", n.sfda_epochs)
    _require(cfg.seed >= 0, "seed", ">= 0", cfg.seed)
    _require(cfg.val_every >= 0, "val_every", ">= 0 (0: no validation while training)", cfg.val_every)
    _require(cfg.sw_batch_size >= 1, "sw_batch_size", ">= 1", cfg.sw_batch_size)
    _require(0 <= cfg.sw_overlap < 1, "sw_overlap", "in [0, 1)", cfg.sw_overlap)
    _require(cfg.num_threads is None or cfg.num_threads >= 1, "num_threads", ">= 1 or null", cfg.num_threads)
