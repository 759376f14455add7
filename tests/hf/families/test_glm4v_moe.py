"""GLM-4.5V (`glm4v_moe`, its text model `glm4v_moe_text` under text_config): `Glm4vMoeTextMoE`, GLM-4.5's block."""

from __future__ import annotations

import pytest

from fastmoe_cfg.config.errors import ConfigError
from fastmoe_cfg.hf import convert
from tests.hf.families.deepseek_like import HIDDEN, assert_counts, modeling, published, small_block
from tests.hf.parity import IMPLEMENTATIONS, TOKENS, check_block, check_export, transformers

Glm4vMoeTextMLP, Glm4vMoeTextMoE = modeling("glm4v_moe", "Glm4vMoeTextMLP", "Glm4vMoeTextMoE")


@pytest.fixture(scope="module")
def family():
    """16 routed experts in 2 groups (keep 1), top-3, × 1.5, two shared experts; imported through the multimodal
    wrapper (the transformers object of glm4v_moe) and exported by the wrapper's name."""
    text = transformers.Glm4vMoeTextConfig(
        hidden_size=HIDDEN, moe_intermediate_size=8, intermediate_size=24, n_routed_experts=16, n_shared_experts=2,
        num_experts_per_tok=3, n_group=2, topk_group=1, routed_scaling_factor=1.5, num_hidden_layers=2,
    )
    wrapper = transformers.Glm4vMoeConfig(text_config=text.to_dict())
    return small_block(Glm4vMoeTextMoE, text, name="glm4v_moe", k=3, hf_config=wrapper)


@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_block_equals_transformers(family, implementation, tokens):
    check_block(family, implementation, tokens)


def test_export_is_the_hf_state_dict(family):
    check_export(family)


def hf_config(data: dict):
    return transformers.Glm4vMoeConfig(**{key: value for key, value in data.items() if key != "model_type"}).text_config


@pytest.mark.parametrize("layer, block_class", [(1, Glm4vMoeTextMoE), (0, Glm4vMoeTextMLP)])
def test_counts_equal_transformers_blocks(layer, block_class):
    data = published("glm4v_moe")
    assert_counts(data, layer, block_class, hf_config(data))


def test_config_json_converts_as_its_text_model():
    data = published("glm4v_moe")
    conversion = convert(data)
    assert conversion.family == "glm4v_moe_text" and conversion.moe_layers == tuple(range(1, 46))
    config = conversion.config
    assert (config.experts, config.shared_experts, config.experts_per_token, config.intermediate_size) == (129, 1, 8, 1408)
    assert (config.expert_groups, config.routed_scaling_factor, config.routing) == (1, 1.0, "aux_free")
    assert config == convert(data["text_config"]).config == convert(published("glm4_moe")).config


def test_the_softmax_load_balancing_loss_is_refused():
    data = published("glm4v_moe")
    text = {**data["text_config"], "output_router_logits": True}
    with pytest.raises(ConfigError, match="text_config.output_router_logits: true cannot be converted: Glm4vMoeForConditionalGeneration"):
        convert({**data, "text_config": text})
    assert convert({**data, "text_config": {**text, "router_aux_loss_coef": 0}}).config.routing == "aux_free"
