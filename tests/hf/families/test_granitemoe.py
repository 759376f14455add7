"""Granite-MoE (`GraniteMoeMoE`) against transformers: parity, export, counts at the published size."""

from __future__ import annotations

import json

import pytest
import torch

from fastmoe_cfg.hf import convert
from fastmoe_cfg.schemas.counts import count_layer
from tests.conftest import ROOT
from tests.hf.parity import (
    HIDDEN,
    IMPLEMENTATIONS,
    TOKENS,
    Family,
    block_output,
    check_block,
    check_export,
    eager,
    filled,
    gate_route,
    transformers,
    whole_state,
)

PUBLISHED = json.loads((ROOT / "tests" / "data" / "hf_families" / "granitemoe.json").read_text())


@pytest.fixture(scope="module")
def family() -> Family:
    from transformers.models.granitemoe.modeling_granitemoe import GraniteMoeMoE

    config = eager(transformers.GraniteMoeConfig(hidden_size=HIDDEN, intermediate_size=8, num_local_experts=8, num_experts_per_tok=2, num_hidden_layers=2))
    return Family("granitemoe", config, filled(GraniteMoeMoE(config)), 2, block_output, gate_route("router"), whole_state)


@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_imported_block_equals_hugging_face(family, implementation, tokens):
    check_block(family, implementation, tokens)


def test_export_is_the_hf_state_dict(family):
    check_export(family)


def test_counts_at_the_published_size_equal_transformers_block():
    from transformers.models.granitemoe.modeling_granitemoe import GraniteMoeMoE

    with torch.device("meta"):
        block = GraniteMoeMoE(transformers.GraniteMoeConfig(**PUBLISHED))
    ours = convert(PUBLISHED).config
    assert count_layer(ours, PUBLISHED["hidden_size"]).total_parameters == sum(p.numel() for p in block.parameters())


def test_the_published_config_converts():
    conversion = convert(PUBLISHED)
    assert conversion.moe_layers == tuple(range(32)) and conversion.layer == 0
    expected = {
        "type": "moe", "experts": 40, "experts_per_token": 8, "intermediate_size": 512, "gated": True, "activation": "silu",
        "routing": "aux_loss", "router_score_function": "softmax", "normalize_expert_weights": True, "auxiliary_loss_coefficient": 0.001,
    }
    assert {key: conversion.data[key] for key in expected} == expected
    assert "residual_multiplier" in conversion.unused  # the decoder layer's, outside the block
