"""OpenAI Privacy Filter (`openai_privacy_filter`): `OpenAIPrivacyFilterMLP`, GPT-OSS's block in float32 with gate and
up not interleaved and the ÷ k / × k that cancel, against transformers: parity, export, counts at a representative size."""

from __future__ import annotations

import pytest
import torch

from fastmoe_cfg.config.errors import ConfigError
from fastmoe_cfg.hf import convert
from fastmoe_cfg.schemas.counts import count_layer
from tests.hf.families.deepseek_like import published
from tests.hf.parity import HIDDEN, IMPLEMENTATIONS, TOKENS, Family, block_output, check_block, check_export, eager, filled, transformers, whole_state

from transformers.models.openai_privacy_filter.modeling_openai_privacy_filter import OpenAIPrivacyFilterMLP  # noqa: E402


def route(block, x_TH):
    logits, _, experts = block.router(x_TH)
    return logits, experts


@pytest.fixture(scope="module")
def family() -> Family:
    """8 experts, top-3 (÷ 3 and × 3 are not exact in floating point), limit 7 (its default)."""
    config = eager(transformers.OpenAIPrivacyFilterConfig(
        hidden_size=HIDDEN, intermediate_size=8, num_local_experts=8, num_experts_per_tok=3, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, head_dim=8,
    ))
    return Family("openai_privacy_filter", config, filled(OpenAIPrivacyFilterMLP(config), std=1.0), 3, block_output, route, whole_state)


@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_block_equals_transformers(family, implementation, tokens):
    check_block(family, implementation, tokens)


def test_export_is_the_hf_state_dict(family):
    check_export(family)


def test_counts_equal_transformers_block():
    data = published("openai_privacy_filter")
    config = transformers.OpenAIPrivacyFilterConfig(**{key: value for key, value in data.items() if key != "model_type"})
    with torch.device("meta"):
        block = OpenAIPrivacyFilterMLP(config)
    assert count_layer(convert(data).config, data["hidden_size"]).total_parameters == sum(p.numel() for p in block.parameters())


def test_config_json_converts():
    data = published("openai_privacy_filter")
    config = convert(data).config
    assert (config.experts, config.experts_per_token, config.intermediate_size, config.activation, config.activation_limit) == (128, 4, 640, "gpt_oss_glu", 7.0)
    assert (config.add_linear_biases, config.router_bias.enabled, config.normalize_expert_weights, config.auxiliary_loss_coefficient) == (True, True, True, 0.0)
    with pytest.raises(ConfigError, match="swiglu_alpha: number 1.5 cannot be converted"):
        convert({**data, "swiglu_alpha": 1.5})
