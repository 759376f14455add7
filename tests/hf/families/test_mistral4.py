"""Mistral 4 (`mistral4`, `Mistral4MoE`; Mistral Small 4 is its text model under a `mistral3` wrapper): softmax top-k,
group-limited by the top-2 sum when n_group > 1, renormalised with norm_topk_prob, × routed_scaling_factor, shared experts."""

from __future__ import annotations

import pytest

from fastmoe_cfg.hf import convert
from tests.hf.families.deepseek_like import HIDDEN, assert_counts, modeling, published, small_block, softmax_route
from tests.hf.parity import IMPLEMENTATIONS, TOKENS, check_block, check_export, transformers

Mistral4MoE, Mistral4MLP = modeling("mistral4", "Mistral4MoE", "Mistral4MLP")


@pytest.fixture(scope="module")
def family():
    """16 routed experts in 4 groups (keep 2), top-3, × 1.5, one shared expert; layer 0 dense; imported through the
    mistral3 wrapper."""
    text = transformers.Mistral4Config(
        hidden_size=HIDDEN, moe_intermediate_size=8, intermediate_size=24, n_routed_experts=16, n_shared_experts=1,
        num_experts_per_tok=3, n_group=4, topk_group=2, routed_scaling_factor=1.5, first_k_dense_replace=1,
        num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
    )
    wrapper = {"model_type": "mistral3", "text_config": text.to_dict(), "vision_config": {"model_type": "pixtral"}}
    return small_block(Mistral4MoE, text, name="mistral3", k=3, hf_config=wrapper, route=softmax_route)


@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_block_equals_transformers(family, implementation, tokens):
    check_block(family, implementation, tokens)


def test_export_is_the_hf_state_dict(family):
    check_export(family)


def hf_config(data: dict):
    return transformers.Mistral4Config(**{key: value for key, value in data["text_config"].items() if key != "model_type"})


@pytest.mark.parametrize("layer, block_class", [(0, Mistral4MoE)])
def test_counts_equal_transformers_blocks(layer, block_class):
    data = published("mistral4")
    assert_counts(data, layer, block_class, hf_config(data))
    dense = {**data, "text_config": {**data["text_config"], "first_k_dense_replace": 1}}
    assert_counts(dense, 0, Mistral4MLP, hf_config(dense))


def test_config_json_converts_as_its_text_model():
    conversion = convert(published("mistral4"))
    assert conversion.family == "mistral4" and conversion.moe_layers == tuple(range(36))
    config = conversion.config
    assert (config.experts, config.shared_experts, config.experts_per_token, config.intermediate_size) == (129, 1, 4, 2048)
    assert (config.routing, config.router_score_function, config.normalize_expert_weights, config.expert_groups) == (
        "aux_loss", "softmax", True, 1
    )
    assert (config.router_dtype, config.auxiliary_loss_coefficient) == ("input", 0.0)
