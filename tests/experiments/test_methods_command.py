"""``svldrl methods NAME``: one method with each of its ``method_options``, value and meaning."""

from __future__ import annotations

import dataclasses

from cli_helpers import invoke, refused
from svldrl.baselines.mtcl import MTCLOptions
from svldrl.training import METHODS
from svldrl.training.label_agent_options import LabelAgentOptions
from svldrl.training.methods import method_option_docs


def test_every_option_of_every_method_has_its_one_line_meaning() -> None:
    for name in METHODS.names():
        missing = [key for key, _, doc in method_option_docs(name) if not doc]
        assert not missing, f"{name}: options without a meaning for `svldrl methods {name}`: {missing}"


def test_svl_drl_t_lists_its_options_and_says_what_it_uses() -> None:
    text = invoke("methods", "svl-drl-trusted")
    assert "trusted cases" in text and "never the noise manifest" in text  # issue 15: what information it uses
    for field in dataclasses.fields(LabelAgentOptions):
        assert f"  {field.name} " in text, field.name


def test_options_that_follow_another_option_show_for_the_value_given() -> None:
    adele_base = invoke("methods", "rsf-assisted")
    mtcl_base = invoke("methods", "rsf-assisted", "--set", "method_options.base=mtcl")
    assert "ema_decay" in {f.name for f in dataclasses.fields(MTCLOptions)}  # an MTCL option ADELE has not
    assert "  ema_decay " in mtcl_base and "  ema_decay " not in adele_base
    assert "'mtcl'" in mtcl_base.split("  base ", 1)[1].splitlines()[0]  # the given value, not the default


def test_aliases_none_and_unknown_names() -> None:
    assert invoke("methods", "l2rw").startswith("meta-reweight ")
    assert "method_options: none" in invoke("methods", "baseline")
    assert "unknown method 'svl-drl-t'" in refused("methods", "svl-drl-t")
