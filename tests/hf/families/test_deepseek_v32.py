"""DeepSeek-V3.2 (`deepseek_v32`): DeepSeek-V3's block as `DeepseekV32MoE`, MoE layers from mlp_layer_types."""

from __future__ import annotations

import pytest

from fastmoe_cfg.config.errors import ConfigError
from fastmoe_cfg.hf import convert
from tests.hf.families.deepseek_like import HIDDEN, assert_counts, modeling, published, small_block
from tests.hf.parity import IMPLEMENTATIONS, TOKENS, check_block, check_export, transformers

DeepseekV32MLP, DeepseekV32MoE = modeling("deepseek_v32", "DeepseekV32MLP", "DeepseekV32MoE")


@pytest.fixture(scope="module")
def family():
    """16 routed experts in 4 groups (keep 2), top-4, one shared expert; layer 0 dense by mlp_layer_types."""
    config = transformers.DeepseekV32Config(
        hidden_size=HIDDEN, moe_intermediate_size=8, intermediate_size=24, n_routed_experts=16, n_shared_experts=1,
        num_experts_per_tok=4, n_group=4, topk_group=2, routed_scaling_factor=2.5, num_hidden_layers=2,
        mlp_layer_types=["dense", "sparse"],
    )
    return small_block(DeepseekV32MoE, config, name="deepseek_v32", k=4)


@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_block_equals_transformers(family, implementation, tokens):
    check_block(family, implementation, tokens)


def test_export_is_the_hf_state_dict(family):
    check_export(family)


def hf_config(data: dict):
    return transformers.DeepseekV32Config(**{key: value for key, value in data.items() if key != "model_type"})


@pytest.mark.parametrize("layer, block_class", [(3, DeepseekV32MoE), (0, DeepseekV32MLP)])
def test_counts_equal_transformers_blocks(layer, block_class):
    data = published("deepseek_v32")
    assert_counts(data, layer, block_class, hf_config(data))


def test_config_json_converts():
    data = published("deepseek_v32")
    conversion = convert(data)
    assert conversion.moe_layers == tuple(range(3, 61)) == tuple(
        index for index, kind in enumerate(hf_config(data).mlp_layer_types) if kind == "sparse"
    )
    config = conversion.config
    assert (config.experts, config.shared_experts, config.experts_per_token, config.intermediate_size) == (257, 1, 8, 2048)
    assert (config.expert_groups, config.expert_groups_per_token, config.routed_scaling_factor) == (8, 4, 2.5)
    assert config.routing == "aux_free" and config.router_score_function == "sigmoid" and config.normalize_expert_weights


def test_mlp_layer_types_place_the_moe_layers_and_are_checked():
    data = {**published("deepseek_v32"), "num_hidden_layers": 4, "mlp_layer_types": ["dense", "sparse", "dense", "sparse"]}
    assert convert(data).moe_layers == (1, 3) and convert(data, 2).config.type == "mlp"
    with pytest.raises(ConfigError, match=r"mlp_layer_types: has 3 entries: expected one per decoder layer \(num_hidden_layers 4\)"):
        convert({**data, "mlp_layer_types": ["dense", "sparse", "sparse"]})
    with pytest.raises(ConfigError, match="mlp_bias: true cannot be converted"):
        convert({**data, "mlp_bias": True})
