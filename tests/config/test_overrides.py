"""Dotted `--set key=value` overrides."""

from __future__ import annotations

import pytest

from fastmoe_cfg.config.overrides import OverrideSyntaxError, parse_override
from fastmoe_cfg.schemas import LayerNormalizationConfig, RMSNormalizationConfig
from tests.conftest import errors_of, load


def test_parse_override() -> None:
    assert parse_override("router.weight.lr_scale=0.5") == (("router", "weight", "lr_scale"), "0.5")
    assert parse_override("a=b=c") == (("a",), "b=c")
    for bad in ("experts", "=3", "a..b=1", ".a=1"):
        with pytest.raises(OverrideSyntaxError):
            parse_override(bad)


def test_overrides_set_nested_values_and_create_parents() -> None:
    config = load(
        "type: moe\nexperts: 4\n",
        overrides=("experts=8", "router.weight.lr_scale=0.5", "pre_norm.type=rms_norm", "routing=sinkhorn"),
    )
    assert config.experts == 8
    assert config.router.weight.lr_scale == 0.5
    assert config.pre_norm == RMSNormalizationConfig()
    assert config.routing == "sinkhorn"
    assert config.provenance("experts") == "set"


def test_override_values_are_yaml_flow() -> None:
    config = load("type: moe\n", overrides=("post_norm={type: layer_norm, epsilon: 1.0e-3}", "lr_scale=null"))
    assert config.post_norm == LayerNormalizationConfig(epsilon=1e-3)
    assert config.lr_scale is None
    assert errors_of("type: moe\n", overrides=("experts='8'",)) == (
        "--set experts='8': experts: expected an integer, got string '8'"
    )


def test_overrides_are_relative_to_key() -> None:
    config = load("model:\n  mlp:\n    type: moe\n    experts: 4\n", key="model.mlp", overrides=("experts=6",))
    assert config.experts == 6
    assert errors_of("model:\n  mlp:\n    type: moe\n", key="model.mlp", overrides=("experts=0",)) == (
        "--set experts=0: model.mlp.experts: must be >= 1, got 0"
    )


def test_problems_of_file_and_overrides_together() -> None:
    text = "type: moe\nrouting: sinkhorm\n"
    assert errors_of(text, overrides=("experts=x", "gated=yes")).splitlines() == [
        "moe.yaml:2:10: routing: expected one of aux_loss, sinkhorn, aux_free, balanced; got string 'sinkhorm' (did you mean sinkhorn?)",
        "--set experts=x: experts: expected an integer, got string 'x'",
        "--set gated=yes: gated: expected true or false, got string 'yes': YAML 1.2 reads yes, no, on and off as strings (did you mean true?)",
    ]


def test_override_tags_are_rejected() -> None:
    assert errors_of("type: moe\n", overrides=("experts=!!python/object:os.system 1",)) == (
        "--set experts=!!python/object:os.system 1: experts: tag !!python/object:os.system is not allowed "
        "(only the YAML core schema: strings, numbers, booleans, null, mappings, lists)"
    )


def test_override_problems_follow_the_command_line_and_name_the_file() -> None:
    from fastmoe_cfg.config.errors import ConfigError
    from fastmoe_cfg.config.loader import load_text
    from fastmoe_cfg.schemas import MLPBaseConfig

    with pytest.raises(ConfigError) as info:
        load_text(MLPBaseConfig, "type: moe\n", file="a.yaml", overrides=["a.b.c=1", "routing=x", "experts=["])
    assert [problem.override for problem in info.value.problems] == ["a.b.c=1", "routing=x", "experts=["]
    assert {problem.file for problem in info.value.problems} == {"a.yaml"}
    assert all(problem.line is None for problem in info.value.problems)


def test_a_single_override_string_is_one_override() -> None:
    assert load("type: moe\n", overrides="experts=6").experts == 6
