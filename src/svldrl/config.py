"""Typed, frozen run configuration, presets, and the preset -> YAML -> ``--set`` override chain.

Every field has a one-line doc in its ``metadata``; ``describe()`` prints them. The resolved
configuration is written to every run folder (``config.yaml``) so a run can be repeated exactly.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from svldrl.config_history import DEFAULTS_VERSION, with_legacy_values


def _f(default: Any, doc: str) -> Any:
    """A dataclass field with a default and a one-line doc."""
    if isinstance(default, (list, dict, set)):
        return field(default_factory=lambda: type(default)(default), metadata={"doc": doc})
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class DataConfig:
    """How volumes are prepared and sampled."""

    spacing: tuple[float, float, float] | None = _f(None, "target voxel spacing in mm; None keeps the native one")
    patch_size: tuple[int, int, int] = _f((96, 96, 96), "training patch size (H, W, D) in voxels")
    pos_fraction: float = _f(0.5, "share of patches centred on a foreground voxel of the training label")
    samples_per_volume: int = _f(1, "patches drawn from a volume each time it is visited")
    flips: bool = _f(True, "random flips along each axis")
    intensity_jitter: float = _f(0.1, "max relative scale/shift of intensities (0 disables)")
    val_fraction: float = _f(0.2, "share of cases held out for validation (clean labels)")
    test_fraction: float = _f(0.0, "share of cases held out for testing (clean labels)")
    split_seed: int = _f(0, "seed of the train/val/test split (independent of the training seed)")
    cache: bool = _f(True, "keep prepared volumes in memory for the whole run")
    max_cases: int | None = _f(None, "use at most this many cases (quick studies); None = all")
    sampler: str = _f(
        "mixed",
        "'mixed': the patches of a batch come from different cases (nnU-Net, MONAI); 'per_case': "
        "samples_per_volume patches of one case side by side (svldrl before issue 14, the old tables)",
    )
    trusted_cases: tuple[str, ...] = _f(
        (), "expert-checked training cases (ids, or '@file.txt' with one id per line): never corrupted"
    )
    trusted_count: int | None = _f(
        None, "simulations: draw this many trusted cases (run seed) among the training cases the noise leaves clean"
    )
    trusted_per_batch: int = _f(0, "two-stream batches: this many patches of trusted cases in every batch (0: off)")


@dataclass(frozen=True)
class ModelConfig:
    """The three-decoder network."""

    backbone: str = _f("unet", "'unet' (small 3D U-Net, CPU-friendly) or 'swin-unetr' (the paper's)")
    channels: tuple[int, ...] = _f((16, 32, 64, 128), "unet: feature channels per level")
    feature_size: int = _f(48, "swin-unetr: embedding size (multiple of 12)")
    dropout: float = _f(0.0, "dropout in the decoders")
    pretrained: str | None = _f(None, "path of SwinUNETR weights to load into the shared encoder")
    heads: str = _f(
        "full", "value and policy heads: 'full' (each a decoder like the segmentation one, method.md) or 'light' "
        "(a conv block on the segmentation decoder's last features: one decoder pass per state)"
    )


@dataclass(frozen=True)
class RLConfig:
    """Voxel-level actor-critic (method.md 'Actions', 'Reward', 'Returns')."""

    episode_length: int = _f(3, "K, steps of voxel actions per episode")
    gamma: float = _f(0.95, "discount factor of the n-step return")
    tau: float = _f(1.0, "softmax temperature for sampling actions during training")
    entropy_coef: float = _f(0.01, "weight of the entropy bonus in the policy loss")
    action_scale: float = _f(0.3, "the 0.3 of Eq. 10: max relative intensity change per step")
    reward: str = _f("global", "'global' (one scalar per sample, the paper) or 'voxel' (per-voxel agreement change)")
    penalty_weight: float = _f(0.1, "w_c, weight of the anatomical penalty C~")
    penalty_form: str = _f("difference", "'difference' (potential-based, ours) or 'level' (paper's literal, each step)")
    seg_loss_states: str = _f("all", "Dice loss in RL stages on 'all' states s(0..K) (ours) or 'last' (Algorithm 1)")
    advantage_norm: bool = _f(False, "standardise advantages over the batch for the policy loss (ours; paper: raw)")
    refine_steps: int = _f(0, "greedy policy steps applied to the image before segmenting at inference")


@dataclass(frozen=True)
class StageConfig:
    """Warmup -> Transition -> Full RL schedule and the stage loss weights (Eqs. 1, 4, 7)."""

    warmup_fraction: float = _f(0.5, "share of epochs in Warmup")
    transition_fraction: float = _f(0.2, "share of epochs in Transition (Full RL takes the rest)")
    warmup_epochs: int | None = _f(None, "explicit Warmup length in epochs (overrides the fraction)")
    transition_epochs: int | None = _f(None, "explicit Transition length in epochs (overrides the fraction)")
    lambda_value: float = _f(0.3, "lambda of Eq. 4 (value loss weight in Transition)")
    alpha: float = _f(0.2, "alpha of Eq. 7 (value loss weight in Full RL)")
    beta: float = _f(0.2, "beta of Eq. 7 (policy loss weight in Full RL)")
    skip_warmup: bool = _f(False, "ablation 'w/o WS': no Warmup stage")
    skip_transition: bool = _f(False, "ablation 'w/o TS': no Transition stage")
    skip_full_rl: bool = _f(False, "ablation 'w/o FRL': no Full RL stage")


@dataclass(frozen=True)
class OptimConfig:
    """Optimiser and budget."""

    optimizer: str = _f("sgd", "'sgd' or 'adam'")
    lr: float = _f(1e-4, "learning rate")
    momentum: float = _f(0.9, "SGD momentum")
    weight_decay: float = _f(0.0, "weight decay")
    epochs: int = _f(1000, "number of epochs")
    batch_size: int = _f(1, "patches per optimisation step")
    iters_per_epoch: int | None = _f(None, "optimisation steps per epoch; None = one pass over the training cases")
    lr_schedule: str = _f("constant", "'constant' or 'poly' (nnU-Net's (1 - e/E)^0.9)")
    grad_clip: float | None = _f(None, "clip the gradient norm to this value; None = no clipping")
    loss: str = _f("dice", "segmentation loss: 'dice' (the paper's Eq. 1) or 'dice_ce' (Dice + cross-entropy)")


@dataclass(frozen=True)
class NoiseConfig:
    """Label noise applied to the training cases (never to validation or test)."""

    kind: str = _f(
        "none",
        "'none', 'mt' (morphological), 'sfda' (labels from a source model), 'border' (the border moved out here,"
        " in there) or 'border-onesided' (its shifts all out or all in per case)",
    )
    ratio: float = _f(0.5, "share of training cases whose label is corrupted")
    seed: int = _f(0, "seed of the corruption (which cases, which operation)")
    sfda_budget: float = _f(0.2, "sfda: the source model trains for this share of the run's epochs")
    sfda_epochs: int | None = _f(
        None, "sfda: the source model's epochs, whatever the run's budget (None: sfda_budget x optim.epochs)"
    )
    sfda_gamma: tuple[float, float] | None = _f((0.7, 1.4), "sfda: range of the gamma change on target images")
    sfda_shift: tuple[float, float] | None = _f((-0.1, 0.1), "sfda: range of the intensity shift on target images")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run."""

    method: str = _f("svl-drl", "training method (see `svldrl train --help` for the list)")
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    rl: RLConfig = field(default_factory=RLConfig)
    stages: StageConfig = field(default_factory=StageConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    method_options: dict[str, Any] = _f({}, "method-specific hyperparameters (baselines), by name")
    seed: int = _f(0, "seed of model initialisation, sampling and augmentation")
    val_every: int = _f(10, "validate on clean labels every N epochs and after the last; 0: never (no best.pt)")
    # 4 as in MONAI's SwinUNETR tutorials. On CPU it also avoids torch's slow path: a batch of one 3D
    # window runs through slow_conv3d (im2col), two or more through oneDNN, about 4x faster per
    # window for the cpu preset's unet (benchmarks/bench_sliding_window.py).
    sw_batch_size: int = _f(4, "windows per forward pass in sliding-window inference (speed only)")
    sw_overlap: float = _f(0.5, "overlap of sliding windows")
    device: str = _f("auto", "'auto', 'cpu', 'cuda' or 'cuda:N'")
    num_threads: int | None = _f(None, "torch CPU threads; None = torch's default")
    precision: str = _f(
        "auto", "'auto' (CUDA: bf16 autocast where supported, else fp16; CPU: fp32), 'fp32', 'bf16' or 'fp16' (CUDA)"
    )
    defaults_version: int = _f(
        DEFAULTS_VERSION, "version of the method-option defaults a run was made with (config_history.DEFAULT_CHANGES)"
    )


# ----------------------------------------------------------------------------- presets

PAPER = TrainConfig(
    model=ModelConfig(backbone="swin-unetr", feature_size=48),
    data=DataConfig(patch_size=(96, 96, 96)),
    optim=OptimConfig(optimizer="sgd", lr=1e-4, momentum=0.9, epochs=1000, batch_size=1),
    val_every=50,
)
"""Section 4.1 of the paper: SwinUNETR, 96^3 patches, SGD 1e-4, batch 1, 1000 epochs."""

CPU = TrainConfig(
    model=ModelConfig(backbone="unet", channels=(16, 32, 64, 128)),
    data=DataConfig(patch_size=(32, 32, 32), samples_per_volume=2),
    optim=OptimConfig(optimizer="adam", lr=3e-3, epochs=30, batch_size=2, iters_per_epoch=8, lr_schedule="poly"),
    val_every=10,
)
"""Small U-Net, small patches, Adam: a useful model in minutes on 2 CPU cores."""

PRESETS: dict[str, TrainConfig] = {"paper": PAPER, "cpu": CPU}


def get_preset(name: str) -> TrainConfig:
    """The named preset; the error lists the valid names."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; valid: {', '.join(PRESETS)}") from None


# ----------------------------------------------------------------------------- dict <-> config


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain nested dict (tuples as lists) suitable for YAML/JSON."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (tuple, list)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(cfg)


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Convert a YAML/CLI value to the annotated type, or raise a clear error."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except (TypeError, ValueError) as exc:
                errors.append(str(exc))
        raise ValueError(f"{where}: cannot use {value!r} ({'; '.join(errors)})")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected a mapping, got {value!r}")
        return _from_dict(tp, value, where)
    if origin is tuple:
        if isinstance(value, str):
            value = [v for v in value.replace("(", "").replace(")", "").replace("[", "").replace("]", "").split(",")]
        if not isinstance(value, (list, tuple)):
            value = [value]
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], where) for v in value)
        if len(value) == 1 and len(args) > 1:  # "96" -> (96, 96, 96)
            value = list(value) * len(args)
        if len(value) != len(args):
            raise ValueError(f"{where}: expected {len(args)} values, got {value!r}")
        return tuple(_coerce(v, a, where) for v, a in zip(value, args, strict=True))
    if origin is dict or tp is dict:
        if isinstance(value, str):
            value = yaml.safe_load(value)
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on", "false", "no", "0", "off"):
            return value.lower() in ("true", "yes", "1", "on")
        raise ValueError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError(f"{where}: expected an integer, got {value!r}")
        if isinstance(value, str):  # "3" from --set; "abc" or "2.5" is an error naming the key
            value = value.strip()
            if not value.lstrip("+-").isdigit():
                raise ValueError(f"{where}: expected an integer, got {value!r}")
        if not isinstance(value, (int, float)):
            raise ValueError(f"{where}: expected an integer, got {value!r}")
        return int(value)
    if tp is float:
        if isinstance(value, bool):
            raise ValueError(f"{where}: expected a number, got {value!r}")
        try:
            number = float(value) if isinstance(value, (int, float, str)) else None
        except ValueError:
            number = None
        if number is None or number != number:  # lists, mappings, "abc", "nan"
            raise ValueError(f"{where}: expected a number, got {value!r}")
        return number
    if tp is str:
        if isinstance(value, (list, dict)):
            raise ValueError(f"{where}: expected a word, got {value!r}")
        return str(value)
    if tp is Any:
        return value
    raise TypeError(f"{where}: unsupported type {tp!r}")


def _from_dict(cls: type, data: dict[str, Any], where: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        import difflib

        key = sorted(unknown)[0]
        close = difflib.get_close_matches(key, sorted(names), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown configuration key {(where + '.' if where else '') + key!r}{hint}")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}" if where else k) for k, v in data.items()}
    return cls(**kwargs)


EXECUTION_KEYS = ("device", "num_threads", "sw_batch_size", "precision")
"""Top-level keys that choose how a run executes, not what it computes: they may differ between a
run and its resumption, or between a grid and its runs. Not bit-neutral: another thread count or
device sums in another order, and training amplifies the rounding (docs/results.md)."""


def settings_of(cfg: TrainConfig | dict[str, Any]) -> dict[str, Any]:
    """What a run computes: the full configuration without ``EXECUTION_KEYS``.

    A saved mapping is first completed with today's defaults, so that a run saved before an
    option existed compares equal to the same run now (an option is only ever added with a
    default that keeps the old behaviour).
    """
    full = to_dict(merge(TrainConfig(), with_legacy_values(cfg)) if isinstance(cfg, dict) else cfg)
    return {k: v for k, v in full.items() if k not in EXECUTION_KEYS}


def merge(cfg: TrainConfig, data: dict[str, Any]) -> TrainConfig:
    """``cfg`` with the (nested, partial) mapping ``data`` applied on top."""
    base = to_dict(cfg)

    def deep_update(dst: dict[str, Any], src: dict[str, Any]) -> None:
        for k, v in src.items():
            if isinstance(v, dict) and isinstance(dst.get(k), dict) and k != "method_options":
                deep_update(dst[k], v)
            elif k == "method_options" and isinstance(v, dict):
                dst.setdefault(k, {}).update(v)
            else:
                dst[k] = v

    deep_update(base, data)
    return _from_dict(TrainConfig, base)


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["rl.gamma=0.9", "data.patch_size=64"]`` -> nested dict (values parsed as YAML scalars)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"--set expects key=value, got {pair!r}")
        key, raw = pair.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:  # e.g. "@ids.txt": not YAML, meant as the word it is
            value = raw.strip()
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def resolve_config(
    preset: str = "cpu", config_file: str | Path | None = None, overrides: list[str] | None = None, **top: Any
) -> TrainConfig:
    """Preset, then YAML file, then ``--set`` overrides, then explicit keyword fields (CLI flags)."""
    cfg = get_preset(preset)
    if config_file is not None:
        path = Path(config_file)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ValueError(f"{path}: cannot read configuration ({exc})") from exc
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping at the top level")
        try:
            cfg = merge(cfg, data)
        except ValueError as exc:  # the key is in the message; the file is added here
            raise ValueError(f"{path}: {exc}") from exc
    if overrides:
        try:
            cfg = merge(cfg, parse_overrides(overrides))
        except ValueError as exc:
            raise ValueError(f"--set: {exc}") from exc
    explicit = {k: v for k, v in top.items() if v is not None}
    if explicit:
        nested: dict[str, Any] = {}
        for key, value in explicit.items():
            node = nested
            parts = key.split(".")
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            node[parts[-1]] = value
        cfg = merge(cfg, nested)
    return cfg


def load_config(path: str | Path) -> TrainConfig:
    """A complete configuration saved by a run (``config.yaml``)."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    return _from_dict(TrainConfig, with_legacy_values(data))


def dump_config(cfg: TrainConfig) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


# ----------------------------------------------------------------------------- documentation


def preset_values(name: str) -> dict[str, str]:
    """``{dotted key: repr(value)}`` of a preset, for ``svldrl config-keys``."""

    def flatten(obj: Any, prefix: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                out.update(flatten(value, f"{prefix}{f.name}."))
            else:
                out[f"{prefix}{f.name}"] = repr(value)
        return out

    return flatten(get_preset(name), "")


def describe(cls: type = TrainConfig, prefix: str = "") -> list[tuple[str, str, str]]:
    """(dotted key, default, doc) for every field, for `--help` and the docs."""
    rows = []
    instance = cls()
    for f in dataclasses.fields(cls):
        value = getattr(instance, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            rows.extend(describe(type(value), key + "."))
        else:
            rows.append((key, repr(value), f.metadata.get("doc", "")))
    return rows
