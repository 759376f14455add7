"""Granite-MoE-Shared (the feed-forward of `GraniteMoeSharedDecoderLayer`: `block_sparse_moe` + `shared_mlp`) against
transformers: parity, export, counts at the published size."""

from __future__ import annotations

import json

import pytest
import torch

from fastmoe_cfg.hf import convert, import_moe_block
from fastmoe_cfg.schemas.counts import count_layer
from tests.conftest import ROOT
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

PUBLISHED = json.loads((ROOT / "tests" / "data" / "hf_families" / "granitemoeshared.json").read_text())
MODULES = ("block_sparse_moe", "shared_mlp")


def feed_forward(layer, x):
    """GraniteMoeSharedDecoderLayer.forward's MLP part (transformers 5.x): the MoE block and the shared MLP, summed."""
    return layer.block_sparse_moe(x) + layer.shared_mlp(x)


def route(layer, x_TH):
    logits, _, experts = layer.block_sparse_moe.router(x_TH)
    return logits, experts


def state(layer):
    return {f"{name}.{key}": value for name in MODULES for key, value in getattr(layer, name).state_dict().items()}


@pytest.fixture(scope="module")
def family() -> Family:
    from transformers.models.granitemoeshared.modeling_granitemoeshared import GraniteMoeSharedDecoderLayer

    config = eager(transformers.GraniteMoeSharedConfig(
        hidden_size=HIDDEN, intermediate_size=8, num_local_experts=8, num_experts_per_tok=2, shared_intermediate_size=12,
        num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
    ))
    return Family("granitemoeshared", config, filled(GraniteMoeSharedDecoderLayer(config, 0)), 2, feed_forward, route, state)


@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_imported_block_equals_hugging_face(family, implementation, tokens):
    check_block(family, implementation, tokens)


def test_export_is_the_hf_state_dict(family):
    check_export(family)


@pytest.mark.parametrize("tokens", TOKENS)
def test_granitemoe_swa_has_the_same_feed_forward(tokens):
    """Granite-MoE-SWA (sliding-window attention with sinks): the same block_sparse_moe and shared_mlp."""
    from transformers.models.granitemoe_swa.modeling_granitemoe_swa import GraniteMoeSWADecoderLayer

    config = eager(transformers.GraniteMoeSWAConfig(
        hidden_size=HIDDEN, intermediate_size=8, num_local_experts=8, num_experts_per_tok=2, shared_intermediate_size=12,
        num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
    ))
    swa = Family("granitemoe_swa", config, filled(GraniteMoeSWADecoderLayer(config, 0)), 2, feed_forward, route, state)
    check_block(swa, "dropless", tokens)
    if tokens == 1:
        check_export(swa)


def test_without_a_shared_mlp_the_block_is_granite_moe(family):
    """shared_intermediate_size 0 (transformers' default): no shared_mlp; the decoder layer's MoE block alone."""
    from transformers.models.granitemoeshared.modeling_granitemoeshared import GraniteMoeSharedDecoderLayer

    config = transformers.GraniteMoeSharedConfig(**{**family.config.to_dict(), "shared_intermediate_size": 0})
    layer = filled(GraniteMoeSharedDecoderLayer(eager(config), 0))
    ours = import_moe_block(layer, config)
    assert ours.config.shared_experts == 0 and ours.config.experts == 8
    x = torch.randn(1, 5, HIDDEN)
    torch.testing.assert_close(ours(x), layer.block_sparse_moe(x), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="no block_sparse_moe"):
        import_moe_block(layer.block_sparse_moe, config)


def test_counts_at_the_published_size_equal_transformers_block():
    from transformers.models.granitemoeshared.modeling_granitemoeshared import GraniteMoeSharedMLP, GraniteMoeSharedMoE

    config = transformers.GraniteMoeSharedConfig(**PUBLISHED)
    with torch.device("meta"):
        modules = (GraniteMoeSharedMoE(config), GraniteMoeSharedMLP(config))
    ours = convert(PUBLISHED).config
    assert count_layer(ours, PUBLISHED["hidden_size"]).total_parameters == sum(p.numel() for m in modules for p in m.parameters())


def test_the_published_config_converts():
    conversion = convert(PUBLISHED)
    expected = {
        "type": "moe", "experts": 33, "experts_per_token": 8, "shared_experts": 1, "shared_expert_intermediate_size": 1024,
        "intermediate_size": 512, "normalize_expert_weights": True, "router_score_function": "softmax",
    }
    assert {key: conversion.data[key] for key in expected} == expected
