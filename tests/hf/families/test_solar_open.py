"""Solar Open (`solar_open`): DeepSeek-V3's block as `SolarOpenMoE`, in every layer."""

from __future__ import annotations

import pytest

from fastmoe_cfg.config.errors import ConfigError
from fastmoe_cfg.hf import convert
from tests.hf.families.deepseek_like import HIDDEN, assert_counts, modeling, published, small_block
from tests.hf.parity import IMPLEMENTATIONS, TOKENS, check_block, check_export, transformers

(SolarOpenMoE,) = modeling("solar_open", "SolarOpenMoE")


@pytest.fixture(scope="module")
def family():
    """16 routed experts in 4 groups (keep 2), top-4, × 2.0, one shared expert."""
    config = transformers.SolarOpenConfig(
        hidden_size=HIDDEN, moe_intermediate_size=8, n_routed_experts=16, n_shared_experts=1, num_experts_per_tok=4,
        n_group=4, topk_group=2, routed_scaling_factor=2.0, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
        head_dim=8,
    )
    return small_block(SolarOpenMoE, config, name="solar_open", k=4)


@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_block_equals_transformers(family, implementation, tokens):
    check_block(family, implementation, tokens)


def test_export_is_the_hf_state_dict(family):
    check_export(family)


def test_counts_equal_transformers_block_and_config_json_converts():
    data = published("solar_open")
    hf_config = transformers.SolarOpenConfig(**{key: value for key, value in data.items() if key not in ("model_type", "first_k_dense_replace")})
    assert_counts(data, 0, SolarOpenMoE, hf_config)
    conversion = convert(data)
    assert conversion.moe_layers == tuple(range(48))
    config = conversion.config
    assert (config.experts, config.shared_experts, config.experts_per_token, config.intermediate_size) == (129, 1, 8, 1280)
    assert (config.expert_groups, config.routed_scaling_factor, config.routing) == (1, 1.0, "aux_free")
    with pytest.raises(ConfigError, match="first_k_dense_replace: integer 1 cannot be converted"):
        convert({**data, "first_k_dense_replace": 1})
