"""MiniMax-M3 (`MiniMaxM3VLSparseMoeBlock`, the text model of `minimax_m3_vl`) against transformers: parity through the
multimodal wrapper (correction bias filled; gate_up weights large enough that the GLU clamps act), export, counts of the
MoE and dense blocks at the published size, the settings of MiniMax's own code that transformers hard-codes."""

from __future__ import annotations

import json

import pytest
import torch

from fastmoe_cfg.config.errors import ConfigError
from fastmoe_cfg.hf import convert
from fastmoe_cfg.schemas.counts import count_layer
from tests.conftest import ROOT
from tests.hf.parity import HIDDEN, IMPLEMENTATIONS, TOKENS, Family, block_output, check_block, check_export, eager, filled, transformers, whole_state

PUBLISHED = json.loads((ROOT / "tests" / "data" / "hf_families" / "minimax_m3_vl.json").read_text())


def route(block, x_TH):
    logits, _, experts = block.gate(x_TH)
    return logits.float().sigmoid() + block.gate.e_score_correction_bias, experts


@pytest.fixture(scope="module")
def family() -> Family:
    """Layer 0 dense (moe_layer_freq, as the real config spells it): the import takes layer 1's block."""
    from transformers.models.minimax_m3_vl.modeling_minimax_m3_vl import MiniMaxM3VLSparseMoeBlock

    text = eager(transformers.MiniMaxM3VLTextConfig(
        hidden_size=HIDDEN, intermediate_size=8, shared_intermediate_size=12, dense_intermediate_size=24, num_local_experts=8,
        num_experts_per_tok=2, num_hidden_layers=2, routed_scaling_factor=2.0, moe_layer_freq=[0, 1],
    ))
    assert text.mlp_layer_types == ["dense", "sparse"]
    block = filled(MiniMaxM3VLSparseMoeBlock(text))
    with torch.no_grad():
        block.gate.e_score_correction_bias.normal_(0, 0.1)
        block.experts.gate_up_proj.normal_(0, 2.5)  # pre-activations beyond swiglu_limit: the clamps act
        block.shared_experts.gate_up_proj.weight.normal_(0, 2.5)
    config = transformers.MiniMaxM3VLConfig(text_config={**text.to_dict(), "moe_layer_freq": [0, 1]})
    return Family("minimax_m3_vl", config, block, 2, block_output, route, whole_state)


@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_imported_block_equals_hugging_face(family, implementation, tokens):
    check_block(family, implementation, tokens)


def test_export_is_the_hf_state_dict(family):
    check_export(family)


def test_counts_at_the_published_size_equal_transformers_blocks():
    from transformers.models.minimax_m3_vl.modeling_minimax_m3_vl import MiniMaxM3VLDenseMLP, MiniMaxM3VLSparseMoeBlock

    text = transformers.MiniMaxM3VLConfig(**PUBLISHED).text_config
    with torch.device("meta"):
        moe, dense = MiniMaxM3VLSparseMoeBlock(text), MiniMaxM3VLDenseMLP(text)
    assert count_layer(convert(PUBLISHED).config, text.hidden_size).total_parameters == sum(p.numel() for p in moe.parameters())
    assert count_layer(convert(PUBLISHED, 0).config, text.hidden_size).total_parameters == sum(p.numel() for p in dense.parameters())


def test_the_published_config_converts():
    conversion = convert(PUBLISHED)
    assert conversion.family == "minimax_m3_vl_text" and conversion.layer == 3 and conversion.moe_layers == tuple(range(3, 60))
    expected = {
        "type": "moe", "experts": 129, "experts_per_token": 4, "shared_experts": 1, "shared_expert_intermediate_size": 3072,
        "intermediate_size": 3072, "activation": "gpt_oss_glu", "activation_limit": 7.0, "routing": "aux_free",
        "router_score_function": "sigmoid", "expert_weights_epsilon": 0.0, "routed_scaling_factor": 2.0,
    }
    assert {key: conversion.data[key] for key in expected} == expected
    dense = convert(PUBLISHED, 0).data
    assert (dense["type"], dense["intermediate_size"], dense["activation"]) == ("mlp", 12288, "gpt_oss_glu")
    types = ["dense"] * 2 + ["sparse"] * 58
    text = {key: value for key, value in PUBLISHED["text_config"].items() if key != "moe_layer_freq"}
    assert convert({**PUBLISHED, "text_config": {**text, "mlp_layer_types": types}}).moe_layers == tuple(range(2, 60))
    assert convert({**PUBLISHED, "text_config": text}).moe_layers == tuple(range(60))  # neither: every layer sparse


@pytest.mark.parametrize(("key", "value", "message"), [
    ("scoring_func", "softmax", "transformers' MiniMaxM3VLSparseMoeBlock scores with sigmoid"),
    ("use_routing_bias", False, "transformers' MiniMaxM3VLSparseMoeBlock always adds e_score_correction_bias"),
    ("n_shared_experts", 2, "transformers' MiniMaxM3VLSparseMoeBlock has one shared expert"),
    ("swiglu_alpha", 1.5, "our gpt_oss_glu has alpha 1.702"),
    ("moe_layer_freq", [1] * 10, r"has 10 entries: expected one per decoder layer \(60"),
])
def test_settings_transformers_hard_codes_are_refused_unless_they_agree(key, value, message):
    with pytest.raises(ConfigError, match=f"text_config.{key}: .*{message}"):
        convert({**PUBLISHED, "text_config": {**PUBLISHED["text_config"], key: value}})
