"""Qwen3-Next (`Qwen3NextSparseMoeBlock`) against transformers: parity, export, counts at the published size."""

from __future__ import annotations

import json

import pytest
import torch

from fastmoe_cfg.hf import convert
from fastmoe_cfg.schemas.counts import count_layer
from tests.conftest import ROOT
from tests.hf.parity import HIDDEN, IMPLEMENTATIONS, TOKENS, Family, block_output, check_block, check_export, eager, filled, gate_route, transformers, whole_state

PUBLISHED = json.loads((ROOT / "tests" / "data" / "hf_families" / "qwen3_next.json").read_text())


@pytest.fixture(scope="module")
def family() -> Family:
    """Layer 0 dense (mlp_only_layers), norm_topk_prob left at Qwen3-Next's default (true)."""
    from transformers.models.qwen3_next.modeling_qwen3_next import Qwen3NextSparseMoeBlock

    config = eager(transformers.Qwen3NextConfig(
        hidden_size=HIDDEN, moe_intermediate_size=8, shared_expert_intermediate_size=12, num_experts=8, num_experts_per_tok=2,
        num_hidden_layers=2, mlp_only_layers=[0], intermediate_size=24,
    ))
    return Family("qwen3_next", config, filled(Qwen3NextSparseMoeBlock(config)), 2, block_output, gate_route(), whole_state)


@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_imported_block_equals_hugging_face(family, implementation, tokens):
    check_block(family, implementation, tokens)


def test_export_is_the_hf_state_dict(family):
    check_export(family)


def test_counts_at_the_published_size_equal_transformers_block():
    from transformers.models.qwen3_next.modeling_qwen3_next import Qwen3NextSparseMoeBlock

    config = transformers.Qwen3NextConfig(**PUBLISHED)
    with torch.device("meta"):
        block = Qwen3NextSparseMoeBlock(config)
    ours = convert(PUBLISHED).config
    assert count_layer(ours, PUBLISHED["hidden_size"]).total_parameters == sum(p.numel() for p in block.parameters())


def test_the_published_config_converts():
    conversion = convert(PUBLISHED)
    assert conversion.moe_layers == tuple(range(48)) and conversion.layer == 0
    expected = {
        "type": "moe", "experts": 513, "experts_per_token": 10, "shared_experts": 1, "shared_expert_intermediate_size": 512,
        "shared_expert_gate": {"enabled": True}, "intermediate_size": 512, "normalize_expert_weights": True,
        "router_score_function": "softmax", "routing": "aux_loss",
    }
    assert {key: conversion.data[key] for key in expected} == expected
    assert convert({key: value for key, value in PUBLISHED.items() if key != "norm_topk_prob"}).config == conversion.config  # the default
