"""Lara-Mini (`LaraMiniSparseMoeBlock`) against transformers: parity, export, counts at a representative size."""

from __future__ import annotations

import pytest

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

(LaraMiniSparseMoeBlock,) = modeling("lara_mini", "LaraMiniSparseMoeBlock")


@pytest.fixture(scope="module")
def family() -> Family:
    """8 experts, top-2, norm_topk_prob left at Lara-Mini's default (true), a shared expert wider than the experts."""
    config = eager(transformers.LaraMiniConfig(
        hidden_size=HIDDEN, moe_intermediate_size=8, shared_expert_intermediate_size=12, num_experts=8, num_experts_per_tok=2,
        num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, head_dim=8,
    ))
    return Family("lara_mini", config, filled(LaraMiniSparseMoeBlock(config)), 2, block_output, gate_route(), whole_state)


@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_imported_block_equals_hugging_face(family, implementation, tokens):
    check_block(family, implementation, tokens)


def test_export_is_the_hf_state_dict(family):
    check_export(family)


def test_counts_equal_transformers_block_and_config_json_converts():
    data = published("lara_mini")
    assert_counts(data, 0, LaraMiniSparseMoeBlock, transformers.LaraMiniConfig(**data))
    conversion = convert(data)
    assert conversion.moe_layers == tuple(range(34)) and conversion.layer == 0
    expected = {
        "type": "moe", "experts": 129, "experts_per_token": 4, "shared_experts": 1, "shared_expert_intermediate_size": 512,
        "intermediate_size": 512, "normalize_expert_weights": True, "router_score_function": "softmax", "routing": "aux_loss",
        "router_dtype": "float32", "auxiliary_loss_coefficient": 0.001,
    }
    assert {key: conversion.data[key] for key in expected} == expected
    assert not conversion.config.shared_expert_gate.enabled
    assert convert({key: value for key, value in data.items() if key != "norm_topk_prob"}).config == conversion.config  # the default
