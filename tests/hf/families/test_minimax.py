"""MiniMax-Text-01 (`MiniMaxSparseMoeBlock`) against transformers: parity, export, counts at the published size, the
settings of the decoder layer and of MiniMax's own code that are refused."""

from __future__ import annotations

import json

import pytest
import torch

from fastmoe_cfg.config.errors import ConfigError
from fastmoe_cfg.hf import convert
from fastmoe_cfg.schemas.counts import count_layer
from tests.conftest import ROOT
from tests.hf.parity import HIDDEN, IMPLEMENTATIONS, TOKENS, Family, block_output, check_block, check_export, eager, filled, gate_route, transformers, whole_state

PUBLISHED = json.loads((ROOT / "tests" / "data" / "hf_families" / "minimax.json").read_text())


@pytest.fixture(scope="module")
def family() -> Family:
    from transformers.models.minimax.modeling_minimax import MiniMaxSparseMoeBlock

    config = eager(transformers.MiniMaxConfig(
        hidden_size=HIDDEN, intermediate_size=8, num_local_experts=8, num_experts_per_tok=2, num_hidden_layers=2, router_jitter_noise=0.1,
    ))
    return Family("minimax", config, filled(MiniMaxSparseMoeBlock(config)), 2, block_output, gate_route(), whole_state)


@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_imported_block_equals_hugging_face(family, implementation, tokens):
    check_block(family, implementation, tokens)


def test_export_is_the_hf_state_dict(family):
    check_export(family)


def test_counts_at_the_published_size_equal_transformers_block():
    from transformers.models.minimax.modeling_minimax import MiniMaxSparseMoeBlock

    config = transformers.MiniMaxConfig(**PUBLISHED)
    with torch.device("meta"):
        block = MiniMaxSparseMoeBlock(config)
    assert count_layer(convert(PUBLISHED).config, PUBLISHED["hidden_size"]).total_parameters == sum(p.numel() for p in block.parameters())


def test_the_published_config_converts():
    conversion = convert(PUBLISHED)
    assert conversion.moe_layers == tuple(range(80))
    expected = {"type": "moe", "experts": 32, "experts_per_token": 2, "intermediate_size": 9216, "normalize_expert_weights": True, "router_score_function": "softmax"}
    assert {key: conversion.data[key] for key in expected} == expected
    assert "jitter_eps" not in conversion.data  # router_jitter_noise 0
    jittered = convert({**PUBLISHED, "router_jitter_noise": 0.01}).data
    assert (jittered["jitter_eps"], jittered["jitter_target"]) == (0.01, "layer_input")


@pytest.mark.parametrize(("key", "value", "message"), [
    ("mlp_beta_factor", 2.0, "MiniMaxDecoderLayer multiplies the MoE block's output by it"),
    ("shared_intermediate_size", 1024, "transformers' MiniMaxSparseMoeBlock has no shared expert"),
])
def test_settings_outside_the_block_are_refused_unless_neutral(key, value, message):
    with pytest.raises(ConfigError, match=f"{key}: .*cannot be converted: {message}"):
        convert({**PUBLISHED, key: value})
