"""MiMo-V2-Flash (`mimo_v2_flash`): `MiMoV2FlashMoE`, DeepSeek-V3's block without shared experts, against
transformers: parity, export, counts at the published size, the hub's moe_layer_freq list."""

from __future__ import annotations

import pytest

from fastmoe_cfg.config.errors import ConfigError
from fastmoe_cfg.hf import convert
from tests.hf.families.deepseek_like import HIDDEN, assert_counts, published, small_block
from tests.hf.parity import IMPLEMENTATIONS, TOKENS, check_block, check_export, transformers

from transformers.models.mimo_v2_flash.modeling_mimo_v2_flash import MiMoV2FlashMLP, MiMoV2FlashMoE  # noqa: E402


@pytest.fixture(scope="module")
def family():
    """16 routed experts in 4 groups (keep 2), top-4, × 2.0, no shared expert."""
    config = transformers.MiMoV2FlashConfig(
        hidden_size=HIDDEN, moe_intermediate_size=8, intermediate_size=24, n_routed_experts=16, num_experts_per_tok=4,
        n_group=4, topk_group=2, routed_scaling_factor=2.0, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
    )
    return small_block(MiMoV2FlashMoE, config, name="mimo_v2_flash", k=4)


@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_block_equals_transformers(family, implementation, tokens):
    check_block(family, implementation, tokens)


def test_export_is_the_hf_state_dict(family):
    check_export(family)


def hf_config(data: dict):
    return transformers.MiMoV2FlashConfig(**{key: value for key, value in data.items() if key != "model_type"})


@pytest.mark.parametrize("layer, block_class", [(1, MiMoV2FlashMoE), (0, MiMoV2FlashMLP)])
def test_counts_equal_transformers_blocks(layer, block_class):
    data = published("mimo_v2_flash")
    assert_counts(data, layer, block_class, hf_config(data))


def test_config_json_converts():
    data = published("mimo_v2_flash")
    conversion = convert(data)
    assert conversion.moe_layers == tuple(range(1, 48))
    config = conversion.config
    assert (config.experts, config.shared_experts, config.experts_per_token, config.intermediate_size) == (256, 0, 8, 2048)
    assert (config.expert_groups, config.routed_scaling_factor, config.routing) == (1, 1.0, "aux_free")


def test_placement_keys_transformers_ignores_must_agree():
    data = published("mimo_v2_flash")
    with pytest.raises(ConfigError, match="moe_layer_freq: cannot be converted: transformers' MiMoV2Flash model ignores it"):
        convert({**data, "moe_layer_freq": [0, 0] + [1] * 46})
    with pytest.raises(ConfigError, match="n_shared_experts: integer 1 cannot be converted: transformers' MiMoV2FlashMoE has no shared experts"):
        convert({**data, "n_shared_experts": 1})
    listed = {**data, "mlp_layer_types": ["dense", "dense"] + ["sparse"] * 46, "moe_layer_freq": [0, 0] + [1] * 46}
    assert convert(listed).moe_layers == tuple(range(2, 48))
