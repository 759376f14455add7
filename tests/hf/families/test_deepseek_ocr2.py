"""DeepSeek-OCR-2 (`deepseek_ocr2`, its text model `deepseek_ocr2_text`): `DeepseekOcr2TextMoe`, DeepSeek-V2's block,
against transformers: parity through the multimodal config (group_limited_greedy), export, counts at a representative
size, mlp_layer_types required."""

from __future__ import annotations

import pytest

from fastmoe_cfg.config.errors import ConfigError
from fastmoe_cfg.hf import convert
from tests.hf.families.deepseek_like import HIDDEN, assert_counts, published, small_block, softmax_route
from tests.hf.parity import IMPLEMENTATIONS, TOKENS, check_block, check_export, transformers

from transformers.models.deepseek_ocr2.modeling_deepseek_ocr2 import DeepseekOcr2TextMLP, DeepseekOcr2TextMoe  # noqa: E402


@pytest.fixture(scope="module")
def family():
    """16 routed experts in 4 groups, the 2 with the best max kept, top-3, × 1.5, two shared experts; layer 0 dense."""
    text = transformers.DeepseekOcr2TextConfig(
        hidden_size=HIDDEN, moe_intermediate_size=8, intermediate_size=24, n_routed_experts=16, n_shared_experts=2,
        num_experts_per_tok=3, topk_method="group_limited_greedy", n_group=4, topk_group=2, routed_scaling_factor=1.5,
        num_hidden_layers=2, num_attention_heads=2, mlp_layer_types=["dense", "sparse"],
    )
    wrapper = transformers.DeepseekOcr2Config(text_config=text.to_dict())
    return small_block(DeepseekOcr2TextMoe, text, name="deepseek_ocr2", k=3, hf_config=wrapper, route=softmax_route)


@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_block_equals_transformers(family, implementation, tokens):
    check_block(family, implementation, tokens)


def test_export_is_the_hf_state_dict(family):
    check_export(family)


def hf_config(data: dict):
    return transformers.DeepseekOcr2Config(**{key: value for key, value in data.items() if key != "model_type"}).text_config


@pytest.mark.parametrize("layer, block_class", [(1, DeepseekOcr2TextMoe), (0, DeepseekOcr2TextMLP)])
def test_counts_equal_transformers_blocks(layer, block_class):
    data = published("deepseek_ocr2")
    assert_counts(data, layer, block_class, hf_config(data))


def test_config_json_converts():
    data = published("deepseek_ocr2")
    conversion = convert(data)
    assert conversion.family == "deepseek_ocr2_text" and conversion.moe_layers == tuple(range(1, 12))
    config = conversion.config
    assert (config.experts, config.shared_experts, config.experts_per_token, config.intermediate_size) == (66, 2, 6, 896)
    assert (config.router_score_function, config.normalize_expert_weights, config.expert_groups) == ("softmax", False, 1)
    text = {key: value for key, value in data["text_config"].items() if key != "mlp_layer_types"}
    with pytest.raises(ConfigError, match="text_config.mlp_layer_types: missing: expected a list"):
        convert({**data, "text_config": text})
    with pytest.raises(ConfigError, match=r"first_k_dense_replace: integer 2 cannot be converted: transformers' DeepSeek-OCR-2 places the MoE layers by mlp_layer_types"):
        convert({**data, "text_config": {**data["text_config"], "first_k_dense_replace": 2}})
