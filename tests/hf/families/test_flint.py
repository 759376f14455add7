"""Flint (`FlintSparseMoeBlock`) against transformers: parity, export, counts at a representative size."""

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

FlintSparseMoeBlock, FlintMLP = modeling("flint", "FlintSparseMoeBlock", "FlintMLP")


@pytest.fixture(scope="module")
def family() -> Family:
    """8 experts, top-3, sigmoid scores renormalised (Flint's default), a shared expert wider than the experts; layer 0
    dense (mlp_only_layers), layer 1 MoE."""
    config = eager(transformers.FlintConfig(
        hidden_size=HIDDEN, moe_intermediate_size=8, shared_expert_intermediate_size=12, intermediate_size=24, num_experts=8,
        num_experts_per_tok=3, num_hidden_layers=2, mlp_only_layers=[0], num_attention_heads=2, num_key_value_heads=1, head_dim=8,
    ))
    return Family("flint", config, filled(FlintSparseMoeBlock(config)), 3, block_output, gate_route(), whole_state)


@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_imported_block_equals_hugging_face(family, implementation, tokens):
    check_block(family, implementation, tokens)


def test_export_is_the_hf_state_dict(family):
    check_export(family)


def hf_config(data: dict):
    return transformers.FlintConfig(**data)


def test_counts_equal_transformers_blocks():
    data = published("flint")
    assert_counts(data, 2, FlintSparseMoeBlock, hf_config(data))
    config = hf_config(data)
    assert_counts(data, 0, lambda c: FlintMLP(c, intermediate_size=c.intermediate_size), config)


def test_config_json_converts():
    data = published("flint")
    conversion = convert(data)
    assert conversion.moe_layers == tuple(range(2, 49)) and conversion.layer == 2
    expected = {
        "type": "moe", "experts": 257, "experts_per_token": 6, "shared_experts": 1, "shared_expert_intermediate_size": 1024,
        "intermediate_size": 512, "routing": "aux_loss", "router_score_function": "sigmoid", "normalize_expert_weights": True,
        "expert_weights_epsilon": 0.0, "router_dtype": "float32", "auxiliary_loss_coefficient": 0.0,
    }
    assert {key: conversion.data[key] for key in expected} == expected
    assert convert(data, 0).data["intermediate_size"] == 6144
    without = {key: value for key, value in data.items() if key not in ("mlp_only_layers", "norm_topk_prob")}
    assert convert(without).config == conversion.config and convert(without).moe_layers == conversion.moe_layers  # the defaults
    unnormalized = convert({**data, "norm_topk_prob": False}).config
    assert unnormalized.normalize_expert_weights is False and unnormalized.expert_weights_epsilon is None
    with pytest.raises(ConfigError, match="output_router_logits: true cannot be converted: FlintForCausalLM"):
        convert({**data, "output_router_logits": True})
    assert convert({**data, "output_router_logits": True, "router_aux_loss_coef": 0.0}).config == conversion.config
