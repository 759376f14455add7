"""Qwen3-VL-MoE (`Qwen3VLMoeTextSparseMoeBlock`, the text model of `qwen3_vl_moe`) against transformers: parity through
the multimodal wrapper config, export, counts at the published size, norm_topk_prob (which its block ignores)."""

from __future__ import annotations

import json

import pytest
import torch

from fastmoe_cfg.config.errors import ConfigError
from fastmoe_cfg.hf import convert
from fastmoe_cfg.schemas.counts import count_layer
from tests.conftest import ROOT
from tests.hf.parity import HIDDEN, IMPLEMENTATIONS, TOKENS, Family, block_output, check_block, check_export, eager, filled, gate_route, transformers, whole_state

PUBLISHED = json.loads((ROOT / "tests" / "data" / "hf_families" / "qwen3_vl_moe.json").read_text())


@pytest.fixture(scope="module")
def family() -> Family:
    """Layer 0 dense (mlp_only_layers): the import takes layer 1's block."""
    from transformers.models.qwen3_vl_moe.modeling_qwen3_vl_moe import Qwen3VLMoeTextSparseMoeBlock

    text = eager(transformers.Qwen3VLMoeTextConfig(
        hidden_size=HIDDEN, moe_intermediate_size=8, num_experts=8, num_experts_per_tok=2, num_hidden_layers=2, mlp_only_layers=[0],
        intermediate_size=24,
    ))
    config = transformers.Qwen3VLMoeConfig(text_config=text.to_dict())
    return Family("qwen3_vl_moe", config, filled(Qwen3VLMoeTextSparseMoeBlock(text)), 2, block_output, gate_route(), whole_state)


@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_imported_block_equals_hugging_face(family, implementation, tokens):
    check_block(family, implementation, tokens)


def test_export_is_the_hf_state_dict(family):
    check_export(family)


def test_counts_at_the_published_size_equal_transformers_block():
    from transformers.models.qwen3_vl_moe.modeling_qwen3_vl_moe import Qwen3VLMoeTextSparseMoeBlock

    config = transformers.Qwen3VLMoeConfig(**PUBLISHED).text_config
    with torch.device("meta"):
        block = Qwen3VLMoeTextSparseMoeBlock(config)
    hidden = PUBLISHED["text_config"]["hidden_size"]
    assert count_layer(convert(PUBLISHED).config, hidden).total_parameters == sum(p.numel() for p in block.parameters())


def test_the_published_config_converts():
    conversion = convert(PUBLISHED)
    assert conversion.family == "qwen3_vl_moe_text" and conversion.moe_layers == tuple(range(48))
    expected = {"type": "moe", "experts": 128, "experts_per_token": 8, "intermediate_size": 768, "normalize_expert_weights": True}
    assert {key: conversion.data[key] for key in expected} == expected
    assert "shared_experts" not in conversion.data


def test_dense_layers_and_norm_topk_prob():
    text = PUBLISHED["text_config"]
    dense = convert({**PUBLISHED, "text_config": {**text, "decoder_sparse_step": 2}}, layer=0)
    assert dense.data["type"] == "mlp" and dense.data["intermediate_size"] == 6144 and dense.moe_layers == tuple(range(1, 48, 2))
    with pytest.raises(ConfigError, match="text_config.norm_topk_prob: .*cannot be converted: transformers' Qwen3-VL-MoE always renormalises"):
        convert({**PUBLISHED, "text_config": {**text, "norm_topk_prob": False}})
