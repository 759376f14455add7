"""A.X-K2 (`axk2`): `AXK2MoE`, DeepSeek-V3's block without groups, against transformers: parity, export, counts at
a representative size (A.X-K2-Light's defaults); groups, whose dropped scores transformers fills with 0.0, refused."""

from __future__ import annotations

import pytest

from fastmoe_cfg.config.errors import ConfigError
from fastmoe_cfg.hf import convert
from tests.hf.families.deepseek_like import HIDDEN, assert_counts, published, small_block
from tests.hf.parity import IMPLEMENTATIONS, TOKENS, check_block, check_export, transformers

from transformers.models.axk2.modeling_axk2 import AXK2MLP, AXK2MoE  # noqa: E402


@pytest.fixture(scope="module")
def family():
    """16 routed experts, no groups (its default), top-4, two shared experts, × 2.5."""
    config = transformers.AXK2Config(
        hidden_size=HIDDEN, moe_intermediate_size=8, intermediate_size=24, n_routed_experts=16, n_shared_experts=2,
        num_experts_per_tok=4, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
    )
    return small_block(AXK2MoE, config, name="axk2", k=4)


@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_block_equals_transformers(family, implementation, tokens):
    check_block(family, implementation, tokens)


def test_export_is_the_hf_state_dict(family):
    check_export(family)


def hf_config(data: dict):
    return transformers.AXK2Config(**{key: value for key, value in data.items() if key != "model_type"})


@pytest.mark.parametrize("layer, block_class", [(1, AXK2MoE), (0, AXK2MLP)])
def test_counts_equal_transformers_blocks(layer, block_class):
    data = published("axk2")
    assert_counts(data, layer, block_class, hf_config(data))


def test_config_json_converts():
    conversion = convert(published("axk2"))
    assert conversion.moe_layers == tuple(range(1, 48))
    config = conversion.config
    assert (config.experts, config.shared_experts, config.experts_per_token, config.intermediate_size) == (129, 1, 8, 512)
    assert (config.expert_groups, config.routed_scaling_factor, config.routing, config.post_norm) == (1, 2.5, "aux_free", None)


def test_groups_are_refused():
    data = published("axk2")
    with pytest.raises(ConfigError, match="n_group: 8 cannot be converted: AXK2TopkRouter fills the scores of the groups it drops with 0.0"):
        convert({**data, "n_group": 8, "topk_group": 4})
    assert convert({**data, "n_group": 1, "topk_group": 1}).config.expert_groups == 1
