"""Llama-4 text (`Llama4TextMoe`) against transformers: parity, export, counts at the published size; the
multimodal `llama4` config.json (Maverick: MoE every second layer, dense MLPs between)."""

from __future__ import annotations

import json

import pytest
import torch

from fastmoe_cfg.config.errors import ConfigError
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

PUBLISHED = json.loads((ROOT / "tests" / "data" / "hf_families" / "llama4.json").read_text())
TEXT = PUBLISHED["text_config"]


def route(block, x_TH):
    _, logits = block.router(x_TH)
    return logits, logits.topk(block.top_k, dim=-1).indices


@pytest.fixture(scope="module")
def family() -> Family:
    """8 routed experts, top-1, the shared expert; relu would hide a weight of the input (silu does not: f(w·x) ≠ w·f(x))."""
    from transformers.models.llama4.modeling_llama4 import Llama4TextMoe

    config = eager(transformers.Llama4TextConfig(
        hidden_size=HIDDEN, intermediate_size=8, intermediate_size_mlp=24, num_local_experts=8, num_experts_per_tok=1,
        num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, head_dim=8,
    ))
    return Family("llama4_text", config, filled(Llama4TextMoe(config)), 1, block_output, route, whole_state)


@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_imported_block_equals_hugging_face(family, implementation, tokens):
    check_block(family, implementation, tokens)


def test_export_is_the_hf_state_dict(family):
    check_export(family)


def test_counts_at_the_published_size_equal_transformers_blocks():
    from transformers.models.llama4.modeling_llama4 import Llama4TextMLP, Llama4TextMoe

    config = transformers.Llama4Config(**PUBLISHED).text_config
    with torch.device("meta"):
        moe, mlp = Llama4TextMoe(config), Llama4TextMLP(config, intermediate_size=config.intermediate_size_mlp)
    for layer, block in ((1, moe), (0, mlp)):
        conversion = convert(PUBLISHED, layer)
        assert count_layer(conversion.config, TEXT["hidden_size"]).total_parameters == sum(p.numel() for p in block.parameters())


def test_the_published_config_converts():
    conversion = convert(PUBLISHED)
    assert conversion.family == "llama4_text" and conversion.moe_layers == tuple(range(1, 48, 2)) and conversion.layer == 1
    expected = {
        "type": "moe", "experts": 129, "experts_per_token": 1, "shared_experts": 1, "intermediate_size": 8192,
        "routing": "aux_loss", "router_score_function": "sigmoid", "normalize_expert_weights": False, "router_weight_on_input": True,
        "auxiliary_loss_coefficient": 0.0,
    }
    assert {key: conversion.data[key] for key in expected} == expected
    assert convert(PUBLISHED, 0).data["intermediate_size"] == 16384  # dense: intermediate_size_mlp
    listed = {**PUBLISHED, "text_config": {**TEXT, "moe_layers": list(range(1, 48, 2))}}
    assert convert(listed).moe_layers == conversion.moe_layers
    assert transformers.Llama4Config(**PUBLISHED).text_config.moe_layers == list(conversion.moe_layers)


def test_several_experts_per_token_are_refused_at_the_field():
    """The weight multiplies the input: our layer needs k = 1 (every published Llama-4)."""
    with pytest.raises(ConfigError, match="text_config.num_experts_per_tok: integer 2 cannot be converted: .*needs one expert per token"):
        convert({**PUBLISHED, "text_config": {**TEXT, "num_experts_per_tok": 2}})
