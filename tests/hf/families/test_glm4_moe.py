"""GLM-4.5 (`glm4_moe`): DeepSeek-V3's block as `Glm4MoeMoE`, with GLM's defaults."""

from __future__ import annotations

import pytest

from fastmoe_cfg.config.errors import ConfigError
from fastmoe_cfg.hf import convert
from tests.hf.families.deepseek_like import HIDDEN, assert_counts, modeling, published, small_block
from tests.hf.parity import IMPLEMENTATIONS, TOKENS, check_block, check_export, transformers

Glm4MoeMLP, Glm4MoeMoE = modeling("glm4_moe", "Glm4MoeMLP", "Glm4MoeMoE")


@pytest.fixture(scope="module")
def family():
    """16 routed experts, top-4, × 2.5, one shared expert; layer 0 dense (first_k_dense_replace 1, GLM's default)."""
    config = transformers.Glm4MoeConfig(
        hidden_size=HIDDEN, moe_intermediate_size=8, intermediate_size=24, n_routed_experts=16, n_shared_experts=1,
        num_experts_per_tok=4, routed_scaling_factor=2.5, num_hidden_layers=2,
    )
    return small_block(Glm4MoeMoE, config, name="glm4_moe", k=4)


@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_block_equals_transformers(family, implementation, tokens):
    check_block(family, implementation, tokens)


def test_export_is_the_hf_state_dict(family):
    check_export(family)


def hf_config(data: dict):
    return transformers.Glm4MoeConfig(**{key: value for key, value in data.items() if key != "model_type"})


@pytest.mark.parametrize("layer, block_class", [(1, Glm4MoeMoE), (0, Glm4MoeMLP)])
def test_counts_equal_transformers_blocks(layer, block_class):
    data = published("glm4_moe")
    assert_counts(data, layer, block_class, hf_config(data))


def test_config_json_converts():
    conversion = convert(published("glm4_moe"))
    assert conversion.moe_layers == tuple(range(1, 46))
    config = conversion.config
    assert (config.experts, config.shared_experts, config.experts_per_token, config.intermediate_size) == (129, 1, 8, 1408)
    assert (config.expert_groups, config.routed_scaling_factor, config.normalize_expert_weights) == (1, 1.0, True)
    assert config.routing == "aux_free" and config.router_score_function == "sigmoid"


def test_absent_fields_take_glm_defaults_and_ignored_settings_must_agree():
    minimal = {"model_type": "glm4_moe", "hidden_size": 32, "num_hidden_layers": 3, "n_routed_experts": 8, "num_experts_per_tok": 2,
               "moe_intermediate_size": 16, "intermediate_size": 48}
    assert convert(minimal).config == convert(transformers.Glm4MoeConfig(**{k: v for k, v in minimal.items() if k != "model_type"})).config
    for key, value in (("decoder_sparse_step", 2), ("moe_router_dtype", "bfloat16"), ("scoring_func", "softmax")):
        with pytest.raises(ConfigError, match=f"{key}: .* cannot be converted"):
            convert({**published("glm4_moe"), key: value})
