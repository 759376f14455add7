"""FlexOlmo (`FlexOlmoSparseMoeBlock`) against transformers: parity (norm_topk_prob left at its default, false),
export, counts at the published size."""

from __future__ import annotations

import json

import pytest
import torch

from fastmoe_cfg.hf import convert
from fastmoe_cfg.schemas.counts import count_layer
from tests.conftest import ROOT
from tests.hf.parity import HIDDEN, IMPLEMENTATIONS, TOKENS, Family, block_output, check_block, check_export, eager, filled, gate_route, transformers, whole_state

PUBLISHED = json.loads((ROOT / "tests" / "data" / "hf_families" / "flex_olmo.json").read_text())


@pytest.fixture(scope="module")
def family() -> Family:
    from transformers.models.flex_olmo.modeling_flex_olmo import FlexOlmoSparseMoeBlock

    config = eager(transformers.FlexOlmoConfig(hidden_size=HIDDEN, intermediate_size=8, num_experts=8, num_experts_per_tok=2, num_hidden_layers=2))
    return Family("flex_olmo", config, filled(FlexOlmoSparseMoeBlock(config)), 2, block_output, gate_route(), whole_state)


@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_imported_block_equals_hugging_face(family, implementation, tokens):
    check_block(family, implementation, tokens)


def test_export_is_the_hf_state_dict(family):
    check_export(family)


def test_counts_at_the_published_size_equal_transformers_block():
    from transformers.models.flex_olmo.modeling_flex_olmo import FlexOlmoSparseMoeBlock

    config = transformers.FlexOlmoConfig(**PUBLISHED)
    with torch.device("meta"):
        block = FlexOlmoSparseMoeBlock(config)
    assert count_layer(convert(PUBLISHED).config, PUBLISHED["hidden_size"]).total_parameters == sum(p.numel() for p in block.parameters())


def test_the_published_config_converts():
    conversion = convert(PUBLISHED)
    assert conversion.moe_layers == tuple(range(32))
    expected = {"type": "moe", "experts": 7, "experts_per_token": 5, "intermediate_size": 11008, "normalize_expert_weights": False, "auxiliary_loss_coefficient": 0.01}
    assert {key: conversion.data[key] for key in expected} == expected
    absent = {key: value for key, value in PUBLISHED.items() if key not in ("norm_topk_prob", "router_aux_loss_coef")}
    assert convert(absent).config == conversion.config  # FlexOlmoConfig's defaults
