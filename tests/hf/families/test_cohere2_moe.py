"""Cohere2-MoE (`Cohere2MoeSparseMoeBlock`) against transformers: softmax with shared experts summed, sigmoid renormalised;
export; counts at the published size (North-Mini-Code's keys as a public test pins them); "average" refused."""

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

Cohere2MoeSparseMoeBlock, Cohere2MoeMLP = modeling("cohere2_moe", "Cohere2MoeSparseMoeBlock", "Cohere2MoeMLP")

VARIANTS = {
    "softmax": {"expert_selection_fn": "softmax", "num_shared_experts": 2, "shared_expert_combination_strategy": "sum"},
    "sigmoid": {"expert_selection_fn": "sigmoid", "norm_topk_prob": True},
}


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def family(request) -> Family:
    """8 experts, top-3; softmax over the chosen logits with two shared experts summed, or sigmoid renormalised."""
    config = eager(transformers.Cohere2MoeConfig(
        hidden_size=HIDDEN, intermediate_size=8, num_experts=8, num_experts_per_tok=3, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, head_dim=8, mlp_layer_types=["dense", "sparse"], **VARIANTS[request.param],
    ))
    return Family("cohere2_moe", config, filled(Cohere2MoeSparseMoeBlock(config)), 3, block_output, gate_route(), whole_state)


@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_imported_block_equals_hugging_face(family, implementation, tokens):
    check_block(family, implementation, tokens)


def test_export_is_the_hf_state_dict(family):
    check_export(family)


def hf_config(data: dict):
    return transformers.Cohere2MoeConfig(**data)


def test_counts_equal_transformers_blocks():
    data = published("cohere2_moe")
    assert_counts(data, 1, Cohere2MoeSparseMoeBlock, hf_config(data))
    assert_counts(data, 0, lambda c: Cohere2MoeMLP(c, c.prefix_dense_intermediate_size), hf_config(data))
    shared = {**data, "num_shared_experts": 2, "shared_expert_combination_strategy": "sum"}
    assert_counts(shared, 1, Cohere2MoeSparseMoeBlock, hf_config(shared))


def test_config_json_converts():
    data = published("cohere2_moe")
    conversion = convert(data)
    assert conversion.moe_layers == tuple(range(1, 49)) and conversion.layer == 1
    expected = {
        "type": "moe", "experts": 128, "experts_per_token": 8, "intermediate_size": 768, "routing": "aux_loss",
        "router_score_function": "sigmoid", "normalize_expert_weights": False, "router_dtype": "input", "auxiliary_loss_coefficient": 0.0,
    }
    assert {key: conversion.data[key] for key in expected} == expected
    assert "shared_experts" not in conversion.data
    assert convert(data, 0).data["intermediate_size"] == 3072
    listed = {**data, "mlp_layer_types": ["dense"] + ["sparse"] * 48}
    del listed["first_k_dense_replace"]
    assert convert(listed).moe_layers == conversion.moe_layers
    softmax = convert({**data, "expert_selection_fn": "softmax"}).config
    assert (softmax.router_score_function, softmax.normalize_expert_weights) == ("softmax", True)


@pytest.mark.parametrize("strategy", [None, "average"])
def test_shared_experts_averaged_are_refused(strategy):
    data = {**published("cohere2_moe"), "num_shared_experts": 1}
    if strategy is not None:
        data["shared_expert_combination_strategy"] = strategy
    with pytest.raises(ConfigError, match=r'shared_expert_combination_strategy: .*"average".* cannot be converted: .*\(routed \+ shared\) / 2'):
        convert(data)
