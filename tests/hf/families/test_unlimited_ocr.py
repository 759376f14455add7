"""Unlimited-OCR (`unlimited_ocr`, its text model `unlimited_ocr_text`): `UnlimitedOcrTextMoe`, DeepSeek-V2's block,
against transformers: parity through the multimodal config (greedy), export, counts at a representative size, the MoE
layers of first_k_dense_replace."""

from __future__ import annotations

import pytest

from fastmoe_cfg.hf import convert
from tests.hf.families.deepseek_like import HIDDEN, assert_counts, published, small_block, softmax_route
from tests.hf.parity import IMPLEMENTATIONS, TOKENS, check_block, check_export, transformers

from transformers.models.unlimited_ocr.modeling_unlimited_ocr import UnlimitedOcrTextMLP, UnlimitedOcrTextMoe  # noqa: E402


@pytest.fixture(scope="module")
def family():
    """16 routed experts, greedy top-4, × 2.0, two shared experts."""
    text = transformers.UnlimitedOcrTextConfig(
        hidden_size=HIDDEN, moe_intermediate_size=8, intermediate_size=24, n_routed_experts=16, n_shared_experts=2,
        num_experts_per_tok=4, routed_scaling_factor=2.0, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
    )
    wrapper = transformers.UnlimitedOcrConfig(text_config=text.to_dict())
    return small_block(UnlimitedOcrTextMoe, text, name="unlimited_ocr", k=4, hf_config=wrapper, route=softmax_route)


@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_block_equals_transformers(family, implementation, tokens):
    check_block(family, implementation, tokens)


def test_export_is_the_hf_state_dict(family):
    check_export(family)


def hf_config(data: dict):
    return transformers.UnlimitedOcrConfig(**{key: value for key, value in data.items() if key != "model_type"}).text_config


@pytest.mark.parametrize("layer, block_class", [(1, UnlimitedOcrTextMoe), (0, UnlimitedOcrTextMLP)])
def test_counts_equal_transformers_blocks(layer, block_class):
    data = published("unlimited_ocr")
    assert_counts(data, layer, block_class, hf_config(data))


def test_config_json_converts():
    data = published("unlimited_ocr")
    conversion = convert(data)
    assert conversion.family == "unlimited_ocr_text"
    assert conversion.moe_layers == tuple(range(1, 12)) == tuple(
        index for index, kind in enumerate(hf_config(data).mlp_layer_types) if kind == "sparse"
    )
    config = conversion.config
    assert (config.experts, config.shared_experts, config.experts_per_token, config.intermediate_size) == (66, 2, 6, 896)
    assert (config.router_score_function, config.normalize_expert_weights, config.routed_scaling_factor) == ("softmax", False, 1.0)
