"""Aria (`AriaTextMoELayer`, the text model of an `aria` wrapper) against transformers: parity through the wrapper, export,
counts at the published size; the shared experts' own activation and biases refused."""

from __future__ import annotations

import pytest

from fastmoe_cfg.config.errors import ConfigError
from fastmoe_cfg.hf import convert
from tests.hf.families.deepseek_like import assert_counts, modeling, published
from tests.hf.parity import (
    HIDDEN,
    IMPLEMENTATIONS,
    TOKENS,
    Family,
    block_output,
    check_block,
    check_export,
    eager,
    filled,
    gate_route,
    transformers,
    whole_state,
)

(AriaTextMoELayer,) = modeling("aria", "AriaTextMoELayer")


@pytest.fixture(scope="module")
def family() -> Family:
    """8 experts, top-3, two shared experts; imported through the aria wrapper (its text_config)."""
    text = eager(transformers.AriaTextConfig(
        hidden_size=HIDDEN, intermediate_size=8, moe_num_experts=8, moe_topk=3, moe_num_shared_experts=2, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1,
    ))
    wrapper = {"model_type": "aria", "text_config": text.to_dict(), "vision_config": {"model_type": "idefics3_vision"}}
    return Family("aria", wrapper, filled(AriaTextMoELayer(text)), 3, block_output, gate_route("router"), whole_state)


@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_imported_block_equals_hugging_face(family, implementation, tokens):
    check_block(family, implementation, tokens)


def test_export_is_the_hf_state_dict(family):
    check_export(family)


def test_counts_equal_transformers_block():
    data = published("aria")
    text = {key: value for key, value in data["text_config"].items() if key != "model_type"}
    assert_counts(data, 0, AriaTextMoELayer, transformers.AriaTextConfig(**text))


def test_config_json_converts_as_its_text_model():
    data = published("aria")
    conversion = convert(data)
    assert conversion.family == "aria_text" and conversion.moe_layers == tuple(range(28))
    expected = {
        "type": "moe", "experts": 66, "experts_per_token": 6, "shared_experts": 2, "intermediate_size": 1664, "activation": "silu",
        "routing": "aux_loss", "router_score_function": "softmax", "normalize_expert_weights": True, "router_dtype": "input",
        "auxiliary_loss_coefficient": 0.0,
    }
    assert {key: conversion.data[key] for key in expected} == expected
    assert convert(data["text_config"]).config == conversion.config  # the text model's own config.json


def with_text(**changes) -> dict:
    data = published("aria")
    return {**data, "text_config": {**data["text_config"], **changes}}


@pytest.mark.parametrize("change, message", [
    ({"hidden_act": "gelu_pytorch_tanh"}, "hidden_act: string 'gelu_pytorch_tanh' cannot be converted: it is the activation of Aria's shared experts only"),
    ({"mlp_bias": True}, "mlp_bias: true cannot be converted: it gives Aria's shared experts biases"),
])
def test_what_only_the_shared_experts_have_is_refused(change, message):
    with pytest.raises(ConfigError, match=message):
        convert(with_text(**change))
    config = convert(with_text(moe_num_shared_experts=0, **change)).config  # without shared experts, unused
    assert (config.shared_experts, config.activation, config.add_linear_biases) == (0, "silu", False)
    assert convert(with_text(hidden_act="swish")).config == convert(published("aria")).config
