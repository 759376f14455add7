"""Mellum 2 (`mellum`): `MellumSparseMoeBlock`, Qwen3-MoE's block, against transformers: parity, export, counts at
the published size (Mellum2-12B-A2.5B), the layers mlp_layer_types makes dense."""

from __future__ import annotations

import pytest

from fastmoe_cfg.hf import convert
from tests.hf.families.deepseek_like import assert_counts, published
from tests.hf.parity import HIDDEN, IMPLEMENTATIONS, TOKENS, Family, block_output, check_block, check_export, eager, filled, gate_route, transformers, whole_state

from transformers.models.mellum.modeling_mellum import MellumMLP, MellumSparseMoeBlock  # noqa: E402


@pytest.fixture(scope="module")
def family() -> Family:
    """8 experts, top-2, not renormalised (its default is true)."""
    config = eager(transformers.MellumConfig(
        hidden_size=HIDDEN, moe_intermediate_size=8, intermediate_size=24, num_experts=8, num_experts_per_tok=2,
        norm_topk_prob=False, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, head_dim=8,
    ))
    return Family("mellum", config, filled(MellumSparseMoeBlock(config)), 2, block_output, gate_route(), whole_state)


@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_block_equals_transformers(family, implementation, tokens):
    check_block(family, implementation, tokens)


def test_export_is_the_hf_state_dict(family):
    check_export(family)


def hf_config(data: dict):
    return transformers.MellumConfig(**{key: value for key, value in data.items() if key != "model_type"})


def test_counts_equal_transformers_blocks():
    data = published("mellum")
    assert_counts(data, 0, MellumSparseMoeBlock, hf_config(data))
    dense = {**data, "mlp_layer_types": ["dense"] + ["sparse"] * 27}
    assert_counts(dense, 0, MellumMLP, hf_config(dense))
    assert convert(dense).moe_layers == tuple(range(1, 28))


def test_config_json_converts():
    conversion = convert(published("mellum"))
    assert conversion.moe_layers == tuple(range(28))
    config = conversion.config
    assert (config.experts, config.experts_per_token, config.intermediate_size, config.normalize_expert_weights) == (64, 8, 896, True)
    assert (config.routing, config.router_score_function, config.router_dtype) == ("aux_loss", "softmax", "input")
