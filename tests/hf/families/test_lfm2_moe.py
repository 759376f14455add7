"""LFM2-MoE (`Lfm2MoeSparseMoeBlock`) against transformers: parity (with and without the expert bias), export,
counts at the published size."""

from __future__ import annotations

import json

import pytest
import torch

from fastmoe_cfg.hf import convert
from fastmoe_cfg.schemas.counts import count_layer
from tests.conftest import ROOT
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
    transformers,
    whole_state,
)

PUBLISHED = json.loads((ROOT / "tests" / "data" / "hf_families" / "lfm2_moe.json").read_text())


def route(block, x_TH):
    logits, _, experts = block.gate(x_TH, block.expert_bias if block.use_expert_bias else None)
    scores = logits.sigmoid()
    return (scores + block.expert_bias if block.use_expert_bias else scores), experts


def make(use_expert_bias: bool) -> Family:
    """16 experts, top-4, × 1.5, norm_topk_prob; layer 0 dense (num_dense_layers 1). The expert bias (a buffer) is filled."""
    from transformers.models.lfm2_moe.modeling_lfm2_moe import Lfm2MoeSparseMoeBlock

    config = eager(transformers.Lfm2MoeConfig(
        hidden_size=HIDDEN, intermediate_size=24, moe_intermediate_size=8, num_experts=16, num_experts_per_tok=4, num_dense_layers=1,
        num_hidden_layers=2, routed_scaling_factor=1.5, use_expert_bias=use_expert_bias, num_attention_heads=2, num_key_value_heads=1,
    ))
    block = filled(Lfm2MoeSparseMoeBlock(config))
    if use_expert_bias:
        with torch.no_grad():
            block.expert_bias.normal_(0, 0.1)
    return Family("lfm2_moe", config, block, 4, block_output, route, whole_state)


@pytest.fixture(scope="module", params=[True, False], ids=["expert_bias", "no_expert_bias"])
def family(request) -> Family:
    return make(request.param)


@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_imported_block_equals_hugging_face(family, implementation, tokens):
    check_block(family, implementation, tokens)


def test_export_is_the_hf_state_dict(family):
    check_export(family)


def test_counts_at_the_published_size_equal_transformers_blocks():
    from transformers.models.lfm2_moe.modeling_lfm2_moe import Lfm2MoeMLP, Lfm2MoeSparseMoeBlock

    config = transformers.Lfm2MoeConfig(**PUBLISHED)
    with torch.device("meta"):
        moe, mlp = Lfm2MoeSparseMoeBlock(config), Lfm2MoeMLP(config, intermediate_size=config.intermediate_size)
    for layer, block in ((2, moe), (0, mlp)):
        ours = convert(PUBLISHED, layer).config
        assert count_layer(ours, PUBLISHED["hidden_size"]).total_parameters == sum(p.numel() for p in block.parameters())


def test_the_published_config_converts():
    conversion = convert(PUBLISHED)
    assert conversion.moe_layers == tuple(range(2, 24)) and conversion.layer == 2
    expected = {
        "type": "moe", "experts": 32, "experts_per_token": 4, "intermediate_size": 1792, "activation": "silu", "routing": "aux_free",
        "router_score_function": "sigmoid", "normalize_expert_weights": True, "expert_weights_epsilon": 1e-6, "routed_scaling_factor": 1.0,
    }
    assert {key: conversion.data[key] for key in expected} == expected
    assert convert(PUBLISHED, 0).data["intermediate_size"] == 7168
    assert "layer_types" in conversion.unused
