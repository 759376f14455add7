"""GLM-5 (`glm_moe_dsa`): DeepSeek-V3's block as `GlmMoeDsaMoE`, placed as DeepSeek-V3.2 places it."""

from __future__ import annotations

import pytest

from fastmoe_cfg.hf import convert
from tests.hf.families.deepseek_like import HIDDEN, assert_counts, modeling, published, small_block
from tests.hf.parity import IMPLEMENTATIONS, TOKENS, check_block, check_export, transformers

GlmMoeDsaMLP, GlmMoeDsaMoE = modeling("glm_moe_dsa", "GlmMoeDsaMLP", "GlmMoeDsaMoE")


@pytest.fixture(scope="module")
def family():
    """16 routed experts, top-4, × 2.5, one shared expert; layer 0 dense (first_k_dense_replace 1)."""
    config = transformers.GlmMoeDsaConfig(
        hidden_size=HIDDEN, moe_intermediate_size=8, intermediate_size=24, n_routed_experts=16, n_shared_experts=1,
        num_experts_per_tok=4, first_k_dense_replace=1, num_hidden_layers=2,
    )
    return small_block(GlmMoeDsaMoE, config, name="glm_moe_dsa", k=4)


@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_block_equals_transformers(family, implementation, tokens):
    check_block(family, implementation, tokens)


def test_export_is_the_hf_state_dict(family):
    check_export(family)


def hf_config(data: dict):
    return transformers.GlmMoeDsaConfig(**{key: value for key, value in data.items() if key != "model_type"})


@pytest.mark.parametrize("layer, block_class", [(3, GlmMoeDsaMoE), (0, GlmMoeDsaMLP)])
def test_counts_equal_transformers_blocks(layer, block_class):
    data = published("glm_moe_dsa")
    assert_counts(data, layer, block_class, hf_config(data))


def test_config_json_converts():
    data = published("glm_moe_dsa")
    conversion = convert(data)
    assert conversion.moe_layers == tuple(range(3, 78)) == tuple(
        index for index, kind in enumerate(hf_config(data).mlp_layer_types) if kind == "sparse"
    )
    config = conversion.config
    assert (config.experts, config.shared_experts, config.experts_per_token, config.intermediate_size) == (257, 1, 8, 2048)
    assert (config.expert_groups, config.routed_scaling_factor, config.routing) == (1, 2.5, "aux_free")
    assert convert(data, 2).config.intermediate_size == 12288
