"""dots.llm1 (`dots1`): DeepSeek-V3's block as `Dots1MoE`, with dots' defaults."""

from __future__ import annotations

import pytest

from fastmoe_cfg.config.errors import ConfigError
from fastmoe_cfg.hf import convert
from tests.hf.families.deepseek_like import HIDDEN, assert_counts, modeling, published, small_block
from tests.hf.parity import IMPLEMENTATIONS, TOKENS, check_block, check_export, transformers

Dots1MLP, Dots1MoE = modeling("dots1", "Dots1MLP", "Dots1MoE")


@pytest.fixture(scope="module")
def family():
    """16 routed experts, top-4, not renormalised (dots' default), × 1.0, two shared experts; every layer MoE."""
    config = transformers.Dots1Config(
        hidden_size=HIDDEN, moe_intermediate_size=8, intermediate_size=24, n_routed_experts=16, n_shared_experts=2,
        num_experts_per_tok=4, num_hidden_layers=2,
    )
    return small_block(Dots1MoE, config, name="dots1", k=4)


@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_block_equals_transformers(family, implementation, tokens):
    check_block(family, implementation, tokens)


def test_export_is_the_hf_state_dict(family):
    check_export(family)


def hf_config(data: dict):
    return transformers.Dots1Config(**{key: value for key, value in data.items() if key != "model_type"})


@pytest.mark.parametrize("layer, block_class", [(1, Dots1MoE), (0, Dots1MLP)])
def test_counts_equal_transformers_blocks(layer, block_class):
    data = published("dots1")
    assert_counts(data, layer, block_class, hf_config(data))


def test_config_json_converts():
    conversion = convert(published("dots1"))
    assert conversion.moe_layers == tuple(range(1, 62))
    config = conversion.config
    assert (config.experts, config.shared_experts, config.experts_per_token, config.intermediate_size) == (130, 2, 6, 1408)
    assert (config.expert_groups, config.routed_scaling_factor, config.normalize_expert_weights) == (1, 2.5, True)


def test_absent_fields_take_dots_defaults():
    minimal = {"model_type": "dots1", "hidden_size": 32, "num_hidden_layers": 2, "n_routed_experts": 8, "n_shared_experts": 1,
               "num_experts_per_tok": 2, "moe_intermediate_size": 16}
    ours = convert(minimal)
    assert ours.moe_layers == (0, 1) and ours.config.normalize_expert_weights is False and ours.config.routed_scaling_factor == 1.0
    assert ours.config == convert(transformers.Dots1Config(**{k: v for k, v in minimal.items() if k != "model_type"})).config
    with pytest.raises(ConfigError, match="n_shared_experts: missing"):
        convert({key: value for key, value in minimal.items() if key != "n_shared_experts"})
