"""Laguna (`LagunaSparseMoeBlock`) against transformers: parity, export, counts at the published size (as a public test
pins it); the router-logit softcap refused."""

from __future__ import annotations

import pytest
import torch

from fastmoe_cfg.config.errors import ConfigError
from fastmoe_cfg.hf import convert
from fastmoe_cfg.schemas.counts import count_layer
from tests.hf.families.deepseek_like import HIDDEN, assert_counts, modeling, published, small_block
from tests.hf.parity import IMPLEMENTATIONS, TOKENS, check_block, check_export, transformers

LagunaSparseMoeBlock, LagunaMLP = modeling("laguna", "LagunaSparseMoeBlock", "LagunaMLP")


@pytest.fixture(scope="module")
def family():
    """8 experts, top-3, × 2.5, a shared expert wider than the experts, e_score_correction_bias filled; layer 0 dense."""
    config = transformers.LagunaConfig(
        hidden_size=HIDDEN, moe_intermediate_size=8, shared_expert_intermediate_size=12, intermediate_size=24, num_experts=8,
        num_experts_per_tok=3, moe_routed_scaling_factor=2.5, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
        head_dim=8, mlp_layer_types=["dense", "sparse"],
    )
    return small_block(LagunaSparseMoeBlock, config, name="laguna", k=3)


@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_block_equals_transformers(family, implementation, tokens):
    check_block(family, implementation, tokens)


def test_export_is_the_hf_state_dict(family):
    check_export(family)


def test_counts_equal_transformers_blocks():
    """e_score_correction_bias is an nn.Parameter without gradient in transformers, a buffer of ours: not counted."""
    data = published("laguna")
    config = transformers.LagunaConfig(**data)
    with torch.device("meta"):
        block = LagunaSparseMoeBlock(config)
    trained = sum(parameter.numel() for parameter in block.parameters() if parameter.requires_grad)
    assert trained == sum(parameter.numel() for parameter in block.parameters()) - block.gate.e_score_correction_bias.numel()
    conversion = convert(data)
    assert count_layer(conversion.config, conversion.hidden_size).total_parameters == trained
    assert_counts(data, 0, lambda c: LagunaMLP(c, intermediate_size=c.intermediate_size), config)


def test_config_json_converts():
    data = published("laguna")
    conversion = convert(data)
    assert conversion.moe_layers == tuple(range(1, 40)) and conversion.layer == 1
    expected = {
        "type": "moe", "experts": 257, "experts_per_token": 8, "shared_experts": 1, "shared_expert_intermediate_size": 512,
        "intermediate_size": 512, "routing": "aux_free", "router_score_function": "sigmoid", "normalize_expert_weights": True,
        "expert_weights_epsilon": 0.0, "routed_scaling_factor": 2.5, "router_dtype": "input",
    }
    assert {key: conversion.data[key] for key in expected} == expected
    assert convert(data, 0).data["intermediate_size"] == 8192
    bare = {key: value for key, value in data.items() if key not in ("mlp_layer_types", "mlp_only_layers", "norm_topk_prob")}
    assert convert(bare).moe_layers == conversion.moe_layers and convert(bare).config == conversion.config  # the defaults


@pytest.mark.parametrize("change, message", [
    ({"moe_router_logit_softcapping": 30.0}, "moe_router_logit_softcapping: number 30.0 cannot be converted: LagunaTopKRouter then softcaps"),
    ({"moe_apply_router_weight_on_input": True}, "moe_apply_router_weight_on_input: true cannot be converted"),
    ({"output_router_logits": True}, "output_router_logits: true cannot be converted: LagunaForCausalLM"),
    ({"norm_topk_prob": False}, "norm_topk_prob: false cannot be converted"),
    ({"mlp_only_layers": [0, 1]}, "mlp_only_layers: .* cannot be converted: transformers' Laguna places its dense layers"),
])
def test_what_the_schema_lacks_is_refused(change, message):
    with pytest.raises(ConfigError, match=message):
        convert({**published("laguna"), **change})
