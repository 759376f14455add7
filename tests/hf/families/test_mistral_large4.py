"""Mistral Large 4 (`mistral_large4_text` under the `text_config` of `mistral_large4`): `MistralLarge4TextMoE`, softmax
top-k (router in float32), group-limited by the top-2 sum, always renormalised, × routed_scaling_factor, shared experts."""

from __future__ import annotations

import pytest

from fastmoe_cfg.config.errors import ConfigError
from fastmoe_cfg.hf import convert
from tests.hf.families.deepseek_like import HIDDEN, assert_counts, modeling, published, small_block, softmax_route
from tests.hf.parity import IMPLEMENTATIONS, TOKENS, check_block, check_export, transformers

MistralLarge4TextMoE, MistralLarge4TextMLP = modeling("mistral_large4", "MistralLarge4TextMoE", "MistralLarge4TextMLP")


@pytest.fixture(scope="module")
def family():
    """16 routed experts in 4 groups (keep 2), top-3, × 2.0, one shared expert; layer 0 dense by mlp_layer_types;
    imported through the mistral_large4 wrapper."""
    text = transformers.MistralLarge4TextConfig(
        hidden_size=HIDDEN, moe_intermediate_size=8, intermediate_size=24, n_routed_experts=16, n_shared_experts=1,
        num_experts_per_tok=3, n_group=4, topk_group=2, routed_scaling_factor=2.0, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, mlp_layer_types=["dense", "sparse"],
    )
    wrapper = {"model_type": "mistral_large4", "text_config": text.to_dict()}
    return small_block(MistralLarge4TextMoE, text, name="mistral_large4", k=3, hf_config=wrapper, route=softmax_route)


@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_block_equals_transformers(family, implementation, tokens):
    check_block(family, implementation, tokens)


def test_export_is_the_hf_state_dict(family):
    check_export(family)


def hf_config(data: dict):
    return transformers.MistralLarge4TextConfig(**{key: value for key, value in data["text_config"].items() if key != "model_type"})


@pytest.mark.parametrize("layer, block_class", [(1, MistralLarge4TextMoE), (0, MistralLarge4TextMLP)])
def test_counts_equal_transformers_blocks(layer, block_class):
    data = published("mistral_large4")
    assert_counts(data, layer, block_class, hf_config(data))


def test_config_json_converts_as_its_text_model():
    data = published("mistral_large4")
    conversion = convert(data)
    assert conversion.family == "mistral_large4_text" and conversion.moe_layers == tuple(range(1, 72))
    config = conversion.config
    assert (config.experts, config.shared_experts, config.experts_per_token, config.intermediate_size) == (129, 1, 4, 6144)
    assert (config.routing, config.normalize_expert_weights, config.router_dtype) == ("aux_loss", True, "float32")
    with pytest.raises(ConfigError, match="norm_topk_prob: false cannot be converted"):
        convert({**data, "text_config": {**data["text_config"], "norm_topk_prob": False}})
