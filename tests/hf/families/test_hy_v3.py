"""Hunyuan 3 (`hy_v3`): `HYV3MoE` against transformers: parity, export, counts at a representative size, the shared
MLP's fallback width, the settings transformers does not read."""

from __future__ import annotations

import pytest
import torch

from fastmoe_cfg.config.errors import ConfigError
from fastmoe_cfg.hf import convert
from tests.hf.families.deepseek_like import HIDDEN, assert_counts, published
from tests.hf.parity import IMPLEMENTATIONS, TOKENS, Family, block_output, check_block, check_export, eager, filled, transformers, whole_state

from transformers.models.hy_v3.modeling_hy_v3 import HYV3MLP, HYV3MoE  # noqa: E402


def route(block, x_TH):
    """sigmoid(logits) + e_score_correction_bias: what HYV3TopKRouter selects on."""
    logits, _, experts = block.gate(x_TH, block.e_score_correction_bias)
    return logits.sigmoid() + block.e_score_correction_bias, experts


def hf_config(data: dict):
    return transformers.HYV3Config(**{key: value for key, value in data.items() if key != "model_type"})


@pytest.fixture(scope="module")
def family() -> Family:
    """16 routed experts, top-4, two shared experts, × 2.826 (its default); layer 0 dense."""
    config = eager(transformers.HYV3Config(
        hidden_size=HIDDEN, moe_intermediate_size=8, intermediate_size=24, num_experts=16, num_experts_per_tok=4,
        num_shared_experts=2, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, head_dim=8,
    ))
    block = filled(HYV3MoE(config))
    with torch.no_grad():
        block.e_score_correction_bias.normal_(0, 0.1)
    return Family("hy_v3", config, block, 4, block_output, route, whole_state)


@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_block_equals_transformers(family, implementation, tokens):
    check_block(family, implementation, tokens)


def test_export_is_the_hf_state_dict(family):
    check_export(family)


@pytest.mark.parametrize("layer, block_class", [(1, HYV3MoE), (0, HYV3MLP)])
def test_counts_equal_transformers_blocks(layer, block_class):
    data = published("hy_v3")
    assert_counts(data, layer, block_class, hf_config(data))


def test_without_shared_experts_the_shared_mlp_takes_intermediate_size():
    data = {**published("hy_v3"), "num_shared_experts": 0}
    assert_counts(data, 1, HYV3MoE, hf_config(data))
    config = convert(data).config
    assert (config.shared_experts, config.shared_expert_intermediate_size, config.experts) == (1, 13312, 193)


def test_config_json_converts():
    conversion = convert(published("hy_v3"))
    assert conversion.moe_layers == tuple(range(1, 80))
    config = conversion.config
    assert (config.experts, config.shared_experts, config.experts_per_token, config.intermediate_size) == (193, 1, 8, 1536)
    assert (config.routing, config.router_score_function, config.normalize_expert_weights) == ("aux_free", "sigmoid", True)
    assert (config.expert_groups, config.routed_scaling_factor, config.router_dtype) == (1, 2.826, "float32")


def test_settings_transformers_does_not_follow_are_refused():
    data = published("hy_v3")
    with pytest.raises(ConfigError, match="first_k_dense_replace: integer 3 cannot be converted: transformers' HYV3 model ignores it"):
        convert({**data, "first_k_dense_replace": 3})
    with pytest.raises(ConfigError, match="mlp_bias: true cannot be converted: HYV3MoE's shared expert then has biases"):
        convert({**data, "mlp_bias": True})
    assert convert({**data, "mlp_bias": True}, 0).config.add_linear_biases
