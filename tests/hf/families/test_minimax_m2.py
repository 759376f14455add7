"""MiniMax-M2 (`MiniMaxM2SparseMoeBlock`) against transformers: parity (the correction bias filled, so that it changes
the choice), export, counts at the published size, the settings of MiniMax's own code that transformers hard-codes."""

from __future__ import annotations

import json

import pytest
import torch

from fastmoe_cfg.config.errors import ConfigError
from fastmoe_cfg.hf import convert
from fastmoe_cfg.schemas.counts import count_layer
from tests.conftest import ROOT
from tests.hf.parity import HIDDEN, IMPLEMENTATIONS, TOKENS, Family, block_output, check_block, check_export, eager, filled, transformers, whole_state

PUBLISHED = json.loads((ROOT / "tests" / "data" / "hf_families" / "minimax_m2.json").read_text())


def route(block, x_TH):
    logits, _, experts = block.gate(x_TH, block.e_score_correction_bias)
    return logits.float().sigmoid() + block.e_score_correction_bias, experts


@pytest.fixture(scope="module")
def family() -> Family:
    from transformers.models.minimax_m2.modeling_minimax_m2 import MiniMaxM2SparseMoeBlock

    config = eager(transformers.MiniMaxM2Config(hidden_size=HIDDEN, intermediate_size=8, num_local_experts=8, num_experts_per_tok=2, num_hidden_layers=2))
    block = filled(MiniMaxM2SparseMoeBlock(config))
    with torch.no_grad():
        block.e_score_correction_bias.normal_(0, 0.1)
    return Family("minimax_m2", config, block, 2, block_output, route, whole_state)


@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_imported_block_equals_hugging_face(family, implementation, tokens):
    check_block(family, implementation, tokens)


def test_export_is_the_hf_state_dict(family):
    check_export(family)


def test_counts_at_the_published_size_equal_transformers_block():
    from transformers.models.minimax_m2.modeling_minimax_m2 import MiniMaxM2SparseMoeBlock

    config = transformers.MiniMaxM2Config(**PUBLISHED)
    with torch.device("meta"):
        block = MiniMaxM2SparseMoeBlock(config)
    assert count_layer(convert(PUBLISHED).config, PUBLISHED["hidden_size"]).total_parameters == sum(p.numel() for p in block.parameters())


def test_the_published_config_converts():
    conversion = convert(PUBLISHED)
    assert conversion.moe_layers == tuple(range(62)) and conversion.quantization["quant_method"] == "fp8"
    expected = {
        "type": "moe", "experts": 256, "experts_per_token": 8, "intermediate_size": 1536, "routing": "aux_free",
        "router_score_function": "sigmoid", "normalize_expert_weights": True, "expert_weights_epsilon": 0.0,
    }
    assert {key: conversion.data[key] for key in expected} == expected
    assert conversion.config.routed_scaling_factor == 1 and conversion.config.expert_groups == 1 and conversion.config.shared_experts == 0


@pytest.mark.parametrize(("key", "value", "message"), [
    ("scoring_func", "softmax", "transformers' MiniMaxM2SparseMoeBlock scores with sigmoid"),
    ("use_routing_bias", False, "transformers' MiniMaxM2SparseMoeBlock always adds e_score_correction_bias"),
    ("shared_intermediate_size", 512, "transformers' MiniMaxM2SparseMoeBlock has no shared expert"),
    ("output_router_logits", True, "with it, MiniMaxM2ForCausalLM adds router_aux_loss_coef"),
])
def test_settings_transformers_hard_codes_are_refused_unless_they_agree(key, value, message):
    with pytest.raises(ConfigError, match=f"{key}: .*cannot be converted: {message}"):
        convert({**PUBLISHED, key: value})
