"""Qwen3.5-MoE (`Qwen3_5MoeSparseMoeBlock`, the text model of `qwen3_5_moe`) against transformers: parity through the
multimodal wrapper config, export, counts at the published size, the settings its block ignores."""

from __future__ import annotations

import json

import pytest
import torch

from fastmoe_cfg.config.errors import ConfigError
from fastmoe_cfg.hf import convert
from fastmoe_cfg.schemas.counts import count_layer
from tests.conftest import ROOT
from tests.hf.parity import HIDDEN, IMPLEMENTATIONS, TOKENS, Family, block_output, check_block, check_export, eager, filled, gate_route, transformers, whole_state

PUBLISHED = json.loads((ROOT / "tests" / "data" / "hf_families" / "qwen3_5_moe.json").read_text())


@pytest.fixture(scope="module")
def family() -> Family:
    from transformers.models.qwen3_5_moe.modeling_qwen3_5_moe import Qwen3_5MoeSparseMoeBlock

    text = eager(transformers.Qwen3_5MoeTextConfig(
        hidden_size=HIDDEN, moe_intermediate_size=8, shared_expert_intermediate_size=12, num_experts=8, num_experts_per_tok=2, num_hidden_layers=2,
    ))
    config = transformers.Qwen3_5MoeConfig(text_config=text.to_dict())  # the multimodal wrapper, as in a config.json
    return Family("qwen3_5_moe", config, filled(Qwen3_5MoeSparseMoeBlock(text)), 2, block_output, gate_route(), whole_state)


@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_imported_block_equals_hugging_face(family, implementation, tokens):
    check_block(family, implementation, tokens)


def test_export_is_the_hf_state_dict(family):
    check_export(family)


def test_counts_at_the_published_size_equal_transformers_block():
    from transformers.models.qwen3_5_moe.modeling_qwen3_5_moe import Qwen3_5MoeSparseMoeBlock

    config = transformers.Qwen3_5MoeConfig(**PUBLISHED).text_config
    with torch.device("meta"):
        block = Qwen3_5MoeSparseMoeBlock(config)
    hidden = PUBLISHED["text_config"]["hidden_size"]
    assert count_layer(convert(PUBLISHED).config, hidden).total_parameters == sum(p.numel() for p in block.parameters())


def test_the_published_config_converts():
    conversion = convert(PUBLISHED)
    assert conversion.family == "qwen3_5_moe_text" and conversion.moe_layers == tuple(range(40))
    expected = {
        "type": "moe", "experts": 257, "experts_per_token": 8, "shared_experts": 1, "shared_expert_intermediate_size": 512,
        "shared_expert_gate": {"enabled": True}, "intermediate_size": 512, "normalize_expert_weights": True, "router_score_function": "softmax",
    }
    assert {key: conversion.data[key] for key in expected} == expected


@pytest.mark.parametrize(("key", "value"), [("norm_topk_prob", False), ("mlp_only_layers", [0]), ("decoder_sparse_step", 2)])
def test_qwen_settings_the_block_ignores_are_refused_unless_they_agree(key, value):
    text = PUBLISHED["text_config"]
    with pytest.raises(ConfigError, match=f"text_config.{key}: .*cannot be converted: transformers' Qwen3.5-MoE"):
        convert({**PUBLISHED, "text_config": {**text, key: value}})
    agreeing = {"norm_topk_prob": True, "mlp_only_layers": [], "decoder_sparse_step": 1}[key]
    assert convert({**PUBLISHED, "text_config": {**text, key: agreeing}}).config == convert(PUBLISHED).config
