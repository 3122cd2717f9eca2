"""A changed method-option default must not change what an old run folder means.

``config_history.DEFAULT_CHANGES`` lists every changed default; a saved configuration is read with its
version's defaults written out. The snapshot test below fails when a default changes without an
entry there (update the snapshot with ``python tests/experiments/test_default_changes.py``).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from svldrl.config import CPU, load_config, merge, settings_of
from svldrl.config_history import DEFAULT_CHANGES, DEFAULTS_VERSION
from svldrl.experiments.runs import RunExistsError, check_existing_run

SNAPSHOT = Path(__file__).with_name("method_defaults.json")


def method_defaults() -> dict[str, dict[str, Any]]:
    """Today's default of every option of every registered method (rsf-assisted per base)."""
    import svldrl.baselines  # noqa: F401  (registers the methods)
    from svldrl.training import METHODS
    from svldrl.training.label_agent_options import LabelAgentOptions
    from svldrl.training.svldrl import METHOD_OPTIONS

    out: dict[str, dict[str, Any]] = {"svl-drl": dict(METHOD_OPTIONS)}
    for name in METHODS.names():
        cls = METHODS.get(name)
        classes = {name: getattr(cls, "OPTIONS", None)}
        if name == "rsf-assisted":
            classes = {f"{name}:{base}": cls.options_class({"base": base}) for base in ("adele", "mtcl")}
        if name == "svl-drl-trusted":
            classes = {name: LabelAgentOptions}
        for key, options in classes.items():
            if dataclasses.is_dataclass(options):
                out[key] = {f.name: f.default for f in dataclasses.fields(options)}
    return json.loads(json.dumps(out, sort_keys=True, default=list))


def test_every_default_change_is_recorded() -> None:
    saved = json.loads(SNAPSHOT.read_text())
    now = method_defaults()
    changed = sorted(
        f"{method}.{option}: {saved[method][option]!r} -> {value!r}"
        for method, options in now.items() if method in saved
        for option, value in options.items() if option in saved[method] and saved[method][option] != value
    )
    assert not changed, (
        f"method defaults changed: {changed}. Add a DefaultChange to svldrl/config_history.py (old run folders keep "
        f"their meaning), then update {SNAPSHOT.name}: python {Path(__file__).relative_to(Path.cwd())}"
    )


def test_each_recorded_change_ends_at_todays_default() -> None:
    now = method_defaults()
    latest = {(m, c.option): c for c in sorted(DEFAULT_CHANGES, key=lambda c: c.version) for m in c.methods}
    for (method, option), change in latest.items():
        today = now[method][option]
        recorded = json.loads(json.dumps(change.new))  # as method_defaults() reads it (tuples as lists)
        assert today == recorded, f"{method}.{option}: today {today!r}, recorded {change.new!r}"
        assert change.old != change.new
    assert all(1 <= c.version <= DEFAULTS_VERSION for c in DEFAULT_CHANGES)


def saved_run(tmp_path: Path, method: str, method_options: dict, version: int | None) -> Path:
    """A finished run folder as an svldrl of ``version`` would have saved it (None: before versions)."""
    run = tmp_path / f"{method}__run"
    run.mkdir()
    data = yaml.safe_load(yaml.safe_dump(dataclasses.asdict(merge(CPU, {"method": method}))))
    data["method_options"] = method_options
    if version is None:
        data.pop("defaults_version")
    else:
        data["defaults_version"] = version
    (run / "config.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    (run / "metrics.json").write_text("{}")
    return run


@pytest.mark.parametrize(("method", "old"), [
    ("mtcl", {"ema_decay": 0.99}),
    ("adele", {"curve_unit": "epoch", "start_rule": "shifted", "correction_scales": None, "flips": True,
               "curve_source": "patches", "skip_flat_start": False}),
    ("jcas", {"transition_lr_factor": 10.0, "coarse_factor": 8, "affinity_warmup": False, "volume_weight": 0.5}),
])  # fmt: skip
def test_an_old_run_means_its_old_default(tmp_path: Path, method: str, old: dict[str, Any]) -> None:
    run = saved_run(tmp_path, method, {}, version=None)
    assert load_config(run / "config.yaml").method_options == old
    pinned = merge(CPU, {"method": method, "method_options": old})
    check_existing_run(run, pinned)  # the same training: reused
    with pytest.raises(RunExistsError, match="method_options"):
        check_existing_run(run, merge(CPU, {"method": method}))  # today's default: another training, refused


def test_a_run_of_todays_version_takes_todays_defaults(tmp_path: Path) -> None:
    run = saved_run(tmp_path, "mtcl", {}, version=DEFAULTS_VERSION)
    assert load_config(run / "config.yaml").method_options == {}
    check_existing_run(run, merge(CPU, {"method": "mtcl"}))
    with pytest.raises(RunExistsError):
        check_existing_run(run, merge(CPU, {"method": "mtcl", "method_options": {"ema_decay": 0.99}}))


def test_an_option_set_to_todays_default_is_the_same_run_as_the_option_left_out(tmp_path: Path) -> None:
    """A folder made with ``volume_weight: 0`` set is reused by a request that takes the default 0 (and the
    other way round), but not by one that sets the reference's 0.5."""
    run = saved_run(tmp_path, "jcas", {"volume_weight": 0.0}, version=DEFAULTS_VERSION)
    check_existing_run(run, merge(CPU, {"method": "jcas"}))
    with pytest.raises(RunExistsError, match="method_options"):
        check_existing_run(run, merge(CPU, {"method": "jcas", "method_options": {"volume_weight": 0.5}}))
    (tmp_path / "default").mkdir()
    left_out = saved_run(tmp_path / "default", "mtcl", {}, version=DEFAULTS_VERSION)
    check_existing_run(left_out, merge(CPU, {"method": "mtcl", "method_options": {"ema_decay": "auto"}}))


def test_an_explicit_option_of_an_old_run_is_kept(tmp_path: Path) -> None:
    run = saved_run(tmp_path, "mtcl", {"ema_decay": 0.999}, version=None)
    assert load_config(run / "config.yaml").method_options == {"ema_decay": 0.999}


def test_unchanged_methods_and_options_are_untouched(tmp_path: Path) -> None:
    for method in ("baseline", "svl-drl", "co-teaching"):
        (tmp_path / method).mkdir()
        run = saved_run(tmp_path / method, method, {}, version=None)
        assert settings_of(load_config(run / "config.yaml")) == settings_of(merge(CPU, {"method": method}))


def test_rsf_takes_the_change_of_its_base(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    adele = saved_run(tmp_path / "a", "rsf-assisted", {}, version=None)
    mtcl = saved_run(tmp_path / "b", "rsf-assisted", {"base": "mtcl"}, version=None)
    assert load_config(adele / "config.yaml").method_options == {
        "curve_unit": "epoch", "start_rule": "shifted", "correction_scales": None, "flips": True,
        "curve_source": "patches", "skip_flat_start": False}
    assert load_config(mtcl / "config.yaml").method_options == {"base": "mtcl", "ema_decay": 0.99}


def test_a_run_from_a_newer_svldrl_is_refused(tmp_path: Path) -> None:
    run = saved_run(tmp_path, "baseline", {}, version=DEFAULTS_VERSION + 1)
    with pytest.raises(ValueError, match="newer than this svldrl"):
        load_config(run / "config.yaml")


if __name__ == "__main__":  # write the snapshot after recording a change in DEFAULT_CHANGES
    SNAPSHOT.write_text(json.dumps(method_defaults(), indent=1, sort_keys=True) + "\n")
    sys.stdout.write(f"wrote {SNAPSHOT}\n")


def test_a_run_between_two_changes_means_the_defaults_of_its_version(tmp_path: Path) -> None:
    run = saved_run(tmp_path, "jcas", {}, version=1)  # after the learning-rate change, before the grid's
    assert load_config(run / "config.yaml").method_options == {"coarse_factor": 8, "affinity_warmup": False,
                                                                "volume_weight": 0.5}
    (tmp_path / "v5").mkdir()
    run = saved_run(tmp_path / "v5", "jcas", {}, version=5)
    assert load_config(run / "config.yaml").method_options == {"volume_weight": 0.5}  # the JCAS rows of Session 19
    adele = tmp_path / "adele"
    adele.mkdir()
    run = saved_run(adele, "adele", {}, version=3)  # after the start rule, before the single-scale correction
    assert load_config(run / "config.yaml").method_options == {"correction_scales": None, "flips": True,
                                                                 "curve_source": "patches", "skip_flat_start": False}
    v4 = tmp_path / "adele-v4"
    v4.mkdir()
    run = saved_run(v4, "adele", {}, version=4)  # the first rows of table1_long.yaml: patch curve, no flat-start drop
    assert load_config(run / "config.yaml").method_options == {"curve_source": "patches", "skip_flat_start": False}
