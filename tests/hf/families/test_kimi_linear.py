"""Kimi-Linear (`kimi_linear`): `KimiLinearMoE`, DeepSeek-V3's block, against transformers: parity, export, counts at
the published size (Kimi-Linear-48B-A3B), its attribute_map spellings."""

from __future__ import annotations

import pytest

from fastmoe_cfg.config.errors import ConfigError
from fastmoe_cfg.hf import convert
from tests.hf.families.deepseek_like import HIDDEN, assert_counts, published, small_block
from tests.hf.parity import IMPLEMENTATIONS, TOKENS, check_block, check_export, transformers

from transformers.models.kimi_linear.modeling_kimi_linear import KimiLinearMLP, KimiLinearMoE  # noqa: E402


@pytest.fixture(scope="module")
def family():
    """16 routed experts in 4 groups (keep 2), top-4, one shared expert, × 2.446 (its default); imported from the
    config's dict, which spells the fields as its attribute_map (num_experts, num_expert_group, moe_renormalize, ...)."""
    config = transformers.KimiLinearConfig(
        hidden_size=HIDDEN, moe_intermediate_size=8, intermediate_size=24, num_experts=16, num_shared_experts=1,
        num_experts_per_token=4, num_expert_group=4, topk_group=2, num_hidden_layers=2, num_attention_heads=2,
    )
    assert config.n_group == 4 and "num_expert_group" in config.to_dict()
    return small_block(KimiLinearMoE, config, name="kimi_linear", k=4, hf_config=config.to_dict())


@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_block_equals_transformers(family, implementation, tokens):
    check_block(family, implementation, tokens)


def test_export_is_the_hf_state_dict(family):
    check_export(family)


def hf_config(data: dict):
    return transformers.KimiLinearConfig(**{key: value for key, value in data.items() if key != "model_type"})


@pytest.mark.parametrize("layer, block_class", [(1, KimiLinearMoE), (0, KimiLinearMLP)])
def test_counts_equal_transformers_blocks(layer, block_class):
    data = published("kimi_linear")
    assert_counts(data, layer, block_class, hf_config(data))


def test_config_json_converts():
    data = published("kimi_linear")
    conversion = convert(data)
    assert conversion.moe_layers == tuple(range(1, 27)) == tuple(
        index for index, kind in enumerate(hf_config(data).mlp_layer_types) if kind == "sparse"
    )
    config = conversion.config
    assert (config.experts, config.shared_experts, config.experts_per_token, config.intermediate_size) == (257, 1, 8, 1024)
    assert (config.expert_groups, config.routed_scaling_factor, config.normalize_expert_weights) == (1, 2.446, True)
    with pytest.raises(ConfigError, match="moe_router_activation_func: string 'softmax' cannot be converted: KimiLinearMoE scores with sigmoid"):
        convert({**data, "moe_router_activation_func": "softmax"})
