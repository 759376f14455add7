"""AFMoE (`afmoe`, Arcee's Trinity): `AfmoeSparseMoeBlock` against transformers: parity, export, counts at the
published size (Trinity-Mini), the config.json keys its block ignores."""

from __future__ import annotations

import pytest
import torch

from fastmoe_cfg.config.errors import ConfigError
from fastmoe_cfg.hf import convert
from fastmoe_cfg.schemas.counts import count_layer
from tests.hf.families.deepseek_like import HIDDEN, assert_counts, published
from tests.hf.parity import IMPLEMENTATIONS, TOKENS, Family, block_output, check_block, check_export, eager, filled, transformers, whole_state

from transformers.models.afmoe.modeling_afmoe import AfmoeMLP, AfmoeSparseMoeBlock  # noqa: E402


def route(block, x_TH):
    """sigmoid(logits) + expert_bias: what AfmoeTokenChoiceRouter selects on."""
    logits, _, experts = block.router(x_TH[None], block.expert_bias)
    return logits.sigmoid() + block.expert_bias, experts


@pytest.fixture(scope="module")
def family() -> Family:
    """16 routed experts, top-4, two shared experts, × 2.5; layer 0 dense (num_dense_layers 1)."""
    config = eager(transformers.AfmoeConfig(
        hidden_size=HIDDEN, moe_intermediate_size=8, intermediate_size=24, num_experts=16, num_experts_per_tok=4,
        num_shared_experts=2, route_scale=2.5, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, head_dim=8,
    ))
    return Family("afmoe", config, filled(AfmoeSparseMoeBlock(config)), 4, block_output, route, whole_state)


@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_block_equals_transformers(family, implementation, tokens):
    check_block(family, implementation, tokens)


def test_export_is_the_hf_state_dict(family):
    check_export(family)


def hf_config(data: dict):
    return transformers.AfmoeConfig(**{key: value for key, value in data.items() if key != "model_type"})


def test_counts_equal_transformers_blocks():
    """expert_bias is an nn.Parameter without gradient in transformers, a buffer of ours (router_correction_bias): not counted."""
    data = published("afmoe")
    config = hf_config(data)
    assert_counts(data, 0, AfmoeMLP, config)
    with torch.device("meta"):
        block = AfmoeSparseMoeBlock(config)
    trained = sum(parameter.numel() for parameter in block.parameters() if parameter.requires_grad)
    assert trained == sum(parameter.numel() for parameter in block.parameters()) - block.expert_bias.numel()
    conversion = convert(data, 2)
    assert count_layer(conversion.config, conversion.hidden_size).total_parameters == trained


def test_config_json_converts():
    conversion = convert(published("afmoe"))
    assert conversion.moe_layers == tuple(range(2, 32))
    config = conversion.config
    assert (config.experts, config.shared_experts, config.experts_per_token, config.intermediate_size) == (129, 1, 8, 1024)
    assert (config.routing, config.router_score_function, config.normalize_expert_weights) == ("aux_free", "sigmoid", True)
    assert (config.expert_groups, config.routed_scaling_factor, config.router_dtype) == (1, 2.826, "input")


def test_keys_the_block_ignores_must_agree_with_it():
    data = published("afmoe")
    with pytest.raises(ConfigError, match="route_norm: false cannot be converted: transformers' AfmoeSparseMoeBlock always renormalises"):
        convert({**data, "route_norm": False})
    with pytest.raises(ConfigError, match="n_group: integer 2 cannot be converted: transformers' AfmoeSparseMoeBlock routes without expert groups"):
        convert({**data, "n_group": 2})
