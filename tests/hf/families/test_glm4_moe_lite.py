"""GLM-4.7-Flash (`glm4_moe_lite`): DeepSeek-V3's block as `Glm4MoeLiteMoE`, MoE layers from mlp_layer_types."""

from __future__ import annotations

import pytest

from fastmoe_cfg.config.errors import ConfigError
from fastmoe_cfg.hf import convert
from tests.hf.families.deepseek_like import HIDDEN, assert_counts, modeling, published, small_block
from tests.hf.parity import IMPLEMENTATIONS, TOKENS, check_block, check_export, transformers

Glm4MoeLiteMLP, Glm4MoeLiteMoE = modeling("glm4_moe_lite", "Glm4MoeLiteMLP", "Glm4MoeLiteMoE")


@pytest.fixture(scope="module")
def family():
    """16 routed experts, top-4, × 1.8 (its default), not renormalised; layer 0 dense (the default layer list)."""
    config = transformers.Glm4MoeLiteConfig(
        hidden_size=HIDDEN, moe_intermediate_size=8, intermediate_size=24, n_routed_experts=16, n_shared_experts=1,
        num_experts_per_tok=4, norm_topk_prob=False, num_hidden_layers=2,
    )
    return small_block(Glm4MoeLiteMoE, config, name="glm4_moe_lite", k=4)


@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_block_equals_transformers(family, implementation, tokens):
    check_block(family, implementation, tokens)


def test_export_is_the_hf_state_dict(family):
    check_export(family)


def hf_config(data: dict):
    return transformers.Glm4MoeLiteConfig(**{key: value for key, value in data.items() if key != "model_type"})


@pytest.mark.parametrize("layer, block_class", [(1, Glm4MoeLiteMoE), (0, Glm4MoeLiteMLP)])
def test_counts_equal_transformers_blocks(layer, block_class):
    data = published("glm4_moe_lite")
    assert_counts(data, layer, block_class, hf_config(data))


def test_config_json_converts():
    data = published("glm4_moe_lite")
    conversion = convert(data)
    assert conversion.moe_layers == tuple(range(1, 47)) == tuple(
        index for index, kind in enumerate(hf_config(data).mlp_layer_types) if kind == "sparse"
    )
    config = conversion.config
    assert (config.experts, config.shared_experts, config.experts_per_token, config.intermediate_size) == (65, 1, 4, 1536)
    assert (config.expert_groups, config.routed_scaling_factor, config.routing) == (1, 1.8, "aux_free")


def test_first_k_dense_replace_must_agree_with_transformers_layers():
    data = {**published("glm4_moe_lite"), "num_hidden_layers": 4}
    with pytest.raises(ConfigError, match="first_k_dense_replace: integer 2 cannot be converted: transformers' Glm4MoeLite ignores it"):
        convert({**data, "first_k_dense_replace": 2})
    listed = convert({**data, "first_k_dense_replace": 2, "mlp_layer_types": ["dense", "dense", "sparse", "sparse"]})
    assert listed.moe_layers == (2, 3)
