"""Ling 2.5 / 3.0 (`bailing_hybrid`): `BailingHybridMoE`, DeepSeek-V3's block, against transformers: parity, export,
counts at the published size (Ling-3.0-flash), Ling's own router keys."""

from __future__ import annotations

import pytest

from fastmoe_cfg.config.errors import ConfigError
from fastmoe_cfg.hf import convert
from tests.hf.families.deepseek_like import HIDDEN, assert_counts, published, small_block
from tests.hf.parity import IMPLEMENTATIONS, TOKENS, check_block, check_export, transformers

from transformers.models.bailing_hybrid.modeling_bailing_hybrid import BailingHybridMLP, BailingHybridMoE  # noqa: E402


@pytest.fixture(scope="module")
def family():
    """16 routed experts in 4 groups (keep 2), top-4, two shared experts, not renormalised, × 2.5; imported from the
    config's dict (its attribute_map spellings)."""
    config = transformers.BailingHybridConfig(
        hidden_size=HIDDEN, moe_intermediate_size=8, intermediate_size=24, num_experts=16, num_shared_experts=2,
        num_experts_per_token=4, num_expert_group=4, topk_group=2, moe_renormalize=False, num_hidden_layers=3,
        num_attention_heads=2, num_key_value_heads=2,
    )
    return small_block(BailingHybridMoE, config, name="bailing_hybrid", k=4, hf_config=config.to_dict())


@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_block_equals_transformers(family, implementation, tokens):
    check_block(family, implementation, tokens)


def test_export_is_the_hf_state_dict(family):
    check_export(family)


def hf_config(data: dict):
    return transformers.BailingHybridConfig(**{key: value for key, value in data.items() if key != "model_type"})


@pytest.mark.parametrize("layer, block_class", [(2, BailingHybridMoE), (0, BailingHybridMLP)])
def test_counts_equal_transformers_blocks(layer, block_class):
    data = published("bailing_hybrid")
    assert_counts(data, layer, block_class, hf_config(data))


def test_config_json_converts():
    data = published("bailing_hybrid")
    conversion = convert(data)
    assert conversion.moe_layers == tuple(range(2, 42)) == tuple(
        index for index, kind in enumerate(hf_config(data).mlp_layer_types) if kind == "sparse"
    )
    config = conversion.config
    assert (config.experts, config.shared_experts, config.experts_per_token, config.intermediate_size) == (513, 1, 8, 768)
    assert (config.expert_groups, config.expert_groups_per_token, config.routed_scaling_factor) == (8, 4, 2.5)


def test_lings_own_router_keys_must_agree():
    data = published("bailing_hybrid")
    with pytest.raises(ConfigError, match=r"moe_shared_expert_intermediate_size: integer 1024 cannot be converted: transformers' BailingHybridMoE builds its shared expert of moe_intermediate_size × num_shared_experts \(768\)"):
        convert({**data, "moe_shared_expert_intermediate_size": 1024})
    with pytest.raises(ConfigError, match="moe_router_enable_routed_scaling: false cannot be converted"):
        convert({**data, "moe_router_enable_routed_scaling": False})
