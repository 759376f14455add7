"""Granite-MoE-Hybrid (the feed-forward of `GraniteMoeHybridDecoderLayer`: `block_sparse_moe` + `shared_mlp`) against
transformers: parity, export, counts at the published size; num_local_experts 0 is a dense layer."""

from __future__ import annotations

import json

import pytest
import torch

from fastmoe_cfg.hf import convert
from fastmoe_cfg.schemas.counts import count_layer
from tests.conftest import ROOT
from tests.hf.families.test_granitemoeshared import feed_forward, route, state
from tests.hf.parity import (
    HIDDEN,
    IMPLEMENTATIONS,
    TOKENS,
    Family,
    check_block,
    check_export,
    eager,
    filled,
    transformers,
)

PUBLISHED = json.loads((ROOT / "tests" / "data" / "hf_families" / "granitemoehybrid.json").read_text())


@pytest.fixture(scope="module")
def family() -> Family:
    """Attention layers (the Mamba ones are outside the MLP and need wider models)."""
    from transformers.models.granitemoehybrid.modeling_granitemoehybrid import GraniteMoeHybridDecoderLayer

    config = eager(transformers.GraniteMoeHybridConfig(
        hidden_size=HIDDEN, intermediate_size=8, num_local_experts=8, num_experts_per_tok=2, shared_intermediate_size=12,
        num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, layer_types=["attention"] * 2, mamba_n_heads=2,
    ))
    return Family("granitemoehybrid", config, filled(GraniteMoeHybridDecoderLayer(config, 0)), 2, feed_forward, route, state)


@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_imported_block_equals_hugging_face(family, implementation, tokens):
    check_block(family, implementation, tokens)


def test_export_is_the_hf_state_dict(family):
    check_export(family)


def test_counts_at_the_published_size_equal_transformers_blocks():
    from transformers.models.granitemoehybrid.modeling_granitemoehybrid import GraniteMoeHybridMLP, GraniteMoeHybridMoE

    config = transformers.GraniteMoeHybridConfig(**PUBLISHED)
    with torch.device("meta"):
        modules = (GraniteMoeHybridMoE(config), GraniteMoeHybridMLP(config))
    ours = convert(PUBLISHED).config
    assert count_layer(ours, PUBLISHED["hidden_size"]).total_parameters == sum(p.numel() for m in modules for p in m.parameters())
    dense = convert({**PUBLISHED, "num_local_experts": 0})
    assert dense.moe_layers == () and dense.data["type"] == "mlp" and dense.data["intermediate_size"] == 1536
    assert count_layer(dense.config, PUBLISHED["hidden_size"]).total_parameters == sum(p.numel() for p in modules[1].parameters())


def test_the_published_config_converts():
    conversion = convert(PUBLISHED)
    assert conversion.moe_layers == tuple(range(40))
    expected = {
        "type": "moe", "experts": 73, "experts_per_token": 10, "shared_experts": 1, "shared_expert_intermediate_size": 1536,
        "intermediate_size": 768, "normalize_expert_weights": True, "router_score_function": "softmax",
    }
    assert {key: conversion.data[key] for key in expected} == expected
