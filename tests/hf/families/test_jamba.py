"""Jamba (`JambaSparseMoeBlock`) against transformers: parity (top-k weights not renormalised), export, counts at the
published size, MoE layers placed as JambaConfig.layers_num_experts places them."""

from __future__ import annotations

import json

import pytest
import torch

from fastmoe_cfg.config.errors import ConfigError
from fastmoe_cfg.hf import convert
from fastmoe_cfg.schemas.counts import count_layer
from tests.conftest import ROOT
from tests.hf.parity import HIDDEN, IMPLEMENTATIONS, TOKENS, Family, block_output, check_block, check_export, eager, filled, gate_route, transformers, whole_state

PUBLISHED = json.loads((ROOT / "tests" / "data" / "hf_families" / "jamba.json").read_text())


@pytest.fixture(scope="module")
def family() -> Family:
    """Layers 1 and 3 of 4 are MoE (period 2, offset 1): the import takes layer 1's block."""
    from transformers.models.jamba.modeling_jamba import JambaSparseMoeBlock

    config = eager(transformers.JambaConfig(hidden_size=HIDDEN, intermediate_size=8, num_experts=8, num_experts_per_tok=2, num_hidden_layers=4))
    return Family("jamba", config, filled(JambaSparseMoeBlock(config)), 2, block_output, gate_route("router"), whole_state)


@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_imported_block_equals_hugging_face(family, implementation, tokens):
    check_block(family, implementation, tokens)


def test_export_is_the_hf_state_dict(family):
    check_export(family)


def test_counts_at_the_published_size_equal_transformers_blocks():
    from transformers.models.jamba.modeling_jamba import JambaMLP, JambaSparseMoeBlock

    config = transformers.JambaConfig(**PUBLISHED)
    hidden = PUBLISHED["hidden_size"]
    with torch.device("meta"):
        moe, mlp = JambaSparseMoeBlock(config), JambaMLP(config)
    assert count_layer(convert(PUBLISHED).config, hidden).total_parameters == sum(p.numel() for p in moe.parameters())
    assert count_layer(convert(PUBLISHED, 0).config, hidden).total_parameters == sum(p.numel() for p in mlp.parameters())


def test_the_published_config_converts():
    conversion = convert(PUBLISHED)
    assert conversion.layer == 1 and conversion.moe_layers == tuple(range(1, 32, 2))
    expected = {"type": "moe", "experts": 16, "experts_per_token": 2, "intermediate_size": 14336, "normalize_expert_weights": False, "router_score_function": "softmax"}
    assert {key: conversion.data[key] for key in expected} == expected
    assert convert(PUBLISHED, 0).data["type"] == "mlp"


@pytest.mark.parametrize(("experts", "period", "offset"), [(16, 2, 1), (16, 4, 0), (16, 3, 2), (1, 2, 1)])
def test_moe_layers_are_transformers(experts, period, offset):
    fields = {"num_experts": experts, "expert_layer_period": period, "expert_layer_offset": offset, "num_hidden_layers": 12}
    hf = transformers.JambaConfig(**fields)
    data = {**PUBLISHED, **fields}
    assert convert(data, 0).moe_layers == tuple(index for index, count in enumerate(hf.layers_num_experts) if count > 1)


def test_an_offset_beyond_the_period_is_refused():
    with pytest.raises(ConfigError, match="expert_layer_offset: must be smaller than expert_layer_period"):
        convert({**PUBLISHED, "expert_layer_offset": 2})
