"""Beam (`beam`): `BeamMoE`, DeepSeek-V3's block without shared experts, scaled after the sum, against transformers:
parity, export, counts at a representative size (BeamConfig's defaults)."""

from __future__ import annotations

import pytest

from fastmoe_cfg.config.errors import ConfigError
from fastmoe_cfg.hf import convert
from tests.hf.families.deepseek_like import HIDDEN, assert_counts, published, small_block
from tests.hf.parity import IMPLEMENTATIONS, TOKENS, check_block, check_export, transformers

from transformers.models.beam.modeling_beam import BeamMLP, BeamMoE  # noqa: E402


@pytest.fixture(scope="module")
def family():
    """16 routed experts in 4 groups (keep 2), top-4, × 2.5, renormalised; layers 0-2 dense (its default)."""
    config = transformers.BeamConfig(
        hidden_size=HIDDEN, moe_intermediate_size=8, intermediate_size=24, num_experts=16, num_experts_per_tok=4,
        n_group=4, topk_group=2, num_hidden_layers=4, num_attention_heads=2, num_key_value_heads=1, head_dim=8,
    )
    return small_block(BeamMoE, config, name="beam", k=4)


@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_block_equals_transformers(family, implementation, tokens):
    check_block(family, implementation, tokens)


def test_export_is_the_hf_state_dict(family):
    check_export(family)


def hf_config(data: dict):
    return transformers.BeamConfig(**{key: value for key, value in data.items() if key != "model_type"})


@pytest.mark.parametrize("layer, block_class", [(3, BeamMoE), (0, BeamMLP)])
def test_counts_equal_transformers_blocks(layer, block_class):
    data = published("beam")
    assert_counts(data, layer, block_class, hf_config(data))


def test_config_json_converts():
    data = published("beam")
    conversion = convert(data)
    assert conversion.moe_layers == tuple(range(3, 52)) == tuple(
        index for index, kind in enumerate(hf_config(data).mlp_layer_types) if kind == "sparse"
    )
    config = conversion.config
    assert (config.experts, config.shared_experts, config.experts_per_token, config.intermediate_size) == (256, 0, 8, 2560)
    assert (config.expert_groups, config.expert_groups_per_token, config.routed_scaling_factor) == (8, 4, 2.5)
    with pytest.raises(ConfigError, match="first_k_dense_replace: integer 1 cannot be converted: transformers' Beam model ignores it"):
        convert({**data, "first_k_dense_replace": 1})
