"""K-EXAONE (`exaone_moe`): DeepSeek-V3's block as `ExaoneMoeSparseMoEBlock`, under EXAONE's field names."""

from __future__ import annotations

import pytest

from fastmoe_cfg.config.errors import ConfigError
from fastmoe_cfg.hf import convert
from tests.hf.families.deepseek_like import HIDDEN, assert_counts, modeling, published, small_block
from tests.hf.parity import IMPLEMENTATIONS, TOKENS, check_block, check_export, transformers

ExaoneMoeMLP, ExaoneMoeSparseMoEBlock = modeling("exaone_moe", "ExaoneMoeMLP", "ExaoneMoeSparseMoEBlock")


@pytest.fixture(scope="module")
def family():
    """16 routed experts, top-4, × 2.5, two shared experts; layer 0 dense."""
    config = transformers.ExaoneMoeConfig(
        hidden_size=HIDDEN, moe_intermediate_size=8, intermediate_size=24, num_experts=16, num_shared_experts=2,
        num_experts_per_tok=4, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
    )
    return small_block(ExaoneMoeSparseMoEBlock, config, name="exaone_moe", k=4)


@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_block_equals_transformers(family, implementation, tokens):
    check_block(family, implementation, tokens)


def test_export_is_the_hf_state_dict(family):
    check_export(family)


def hf_config(data: dict):
    return transformers.ExaoneMoeConfig(**{key: value for key, value in data.items() if key != "model_type"})


@pytest.mark.parametrize("layer, block_class", [(1, ExaoneMoeSparseMoEBlock), (0, ExaoneMoeMLP)])
def test_counts_equal_transformers_blocks(layer, block_class):
    data = published("exaone_moe")
    assert_counts(data, layer, block_class, hf_config(data))


def test_config_json_converts():
    data = published("exaone_moe")
    conversion = convert(data)
    assert conversion.moe_layers == tuple(range(1, 48)) == tuple(
        index for index, kind in enumerate(hf_config(data).mlp_layer_types) if kind == "sparse"
    )
    config = conversion.config
    assert (config.experts, config.shared_experts, config.experts_per_token, config.intermediate_size) == (129, 1, 8, 2048)
    assert (config.routed_scaling_factor, config.routing, config.router_score_function) == (2.5, "aux_free", "sigmoid")


def test_its_own_layer_list_must_agree_with_transformers():
    data = published("exaone_moe")
    with pytest.raises(ConfigError, match="is_moe_layer: disagrees with the MoE layers transformers builds"):
        convert({**data, "is_moe_layer": [False, False] + [True] * 46})
    assert convert({**data, "is_moe_layer": [False, False] + [True] * 46, "first_k_dense_replace": 2}).moe_layers == tuple(range(2, 48))
    with pytest.raises(ConfigError, match="first_last_k_dense_replace: cannot be converted"):
        convert({key: value for key, value in data.items() if key != "is_moe_layer"})
