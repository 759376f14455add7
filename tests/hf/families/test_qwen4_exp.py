"""Qwen4-Exp (`qwen4_exp`, its text model `qwen4_exp_text`): `Qwen4ExpTextSparseMoeBlock`, Qwen3-Next's block, against
transformers: parity through the multimodal config, export, counts at a representative size."""

from __future__ import annotations

import pytest
import torch

from fastmoe_cfg.config.errors import ConfigError
from fastmoe_cfg.hf import convert
from fastmoe_cfg.schemas.counts import count_layer
from tests.hf.families.deepseek_like import published
from tests.hf.parity import HIDDEN, IMPLEMENTATIONS, TOKENS, Family, block_output, check_block, check_export, eager, filled, gate_route, transformers, whole_state

from transformers.models.qwen4_exp.modeling_qwen4_exp import Qwen4ExpTextSparseMoeBlock  # noqa: E402


@pytest.fixture(scope="module")
def family() -> Family:
    """8 experts, top-2, not renormalised (its default is true), a shared expert of 12."""
    text = eager(transformers.Qwen4ExpTextConfig(
        hidden_size=HIDDEN, moe_intermediate_size=8, shared_expert_intermediate_size=12, num_experts=8, num_experts_per_tok=2,
        norm_topk_prob=False, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, head_dim=8,
    ))
    config = transformers.Qwen4ExpConfig(text_config=text.to_dict())
    return Family("qwen4_exp", config, filled(Qwen4ExpTextSparseMoeBlock(text)), 2, block_output, gate_route(), whole_state)


@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_block_equals_transformers(family, implementation, tokens):
    check_block(family, implementation, tokens)


def test_export_is_the_hf_state_dict(family):
    check_export(family)


def test_counts_equal_transformers_block():
    data = published("qwen4_exp")
    config = transformers.Qwen4ExpConfig(**{key: value for key, value in data.items() if key != "model_type"}).text_config
    with torch.device("meta"):
        block = Qwen4ExpTextSparseMoeBlock(config)
    hidden = data["text_config"]["hidden_size"]
    assert count_layer(convert(data).config, hidden).total_parameters == sum(p.numel() for p in block.parameters())


def test_config_json_converts():
    data = published("qwen4_exp")
    conversion = convert(data)
    assert conversion.family == "qwen4_exp_text" and conversion.moe_layers == tuple(range(40))
    config = conversion.config
    assert (config.experts, config.shared_experts, config.experts_per_token, config.intermediate_size) == (513, 1, 10, 512)
    assert (config.shared_expert_intermediate_size, config.shared_expert_gate.enabled, config.normalize_expert_weights) == (512, True, True)
    with pytest.raises(ConfigError, match="text_config.decoder_sparse_step: integer 2 cannot be converted"):
        convert({**data, "text_config": {**data["text_config"], "decoder_sparse_step": 2}})
