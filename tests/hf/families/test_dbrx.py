"""DBRX (`DbrxFFN`) against transformers: parity (p-norm 1 as published, 2, and none), export, counts at the
published size, the nested ffn_config's problems."""

from __future__ import annotations

import json

import pytest
import torch

from fastmoe_cfg.config.errors import ConfigError
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
    transformers,
    whole_state,
)

PUBLISHED = json.loads((ROOT / "tests" / "data" / "hf_families" / "dbrx.json").read_text())


def transformers_config(data: dict):
    """transformers 5.24's strict DbrxFFNConfig wants a float moe_normalize_expert_weights; the file has the integer 1."""
    ffn = data["ffn_config"]
    return transformers.DbrxConfig(**{**data, "ffn_config": {**ffn, "moe_normalize_expert_weights": float(ffn["moe_normalize_expert_weights"])}})


def route(block, x_TH):
    logits = block.router(x_TH)
    return logits, logits.softmax(-1).topk(block.top_k, dim=-1).indices


def make(norm: float | None) -> Family:
    from transformers.models.dbrx.modeling_dbrx import DbrxFFN

    config = eager(transformers.DbrxConfig(
        d_model=HIDDEN, n_layers=2, n_heads=2, attn_config={"kv_n_heads": 1},
        ffn_config={"ffn_hidden_size": 8, "moe_num_experts": 8, "moe_top_k": 3, "moe_normalize_expert_weights": norm},
    ))
    return Family("dbrx", config, filled(DbrxFFN(config)), 3, block_output, route, whole_state)


@pytest.fixture(scope="module", params=[1.0, 2.0, None], ids=["p1", "p2", "none"])
def family(request) -> Family:
    return make(request.param)


@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_imported_block_equals_hugging_face(family, implementation, tokens):
    check_block(family, implementation, tokens)


def test_export_is_the_hf_state_dict(family):
    check_export(family)


def test_counts_at_the_published_size_equal_transformers_block():
    from transformers.models.dbrx.modeling_dbrx import DbrxFFN

    with torch.device("meta"):
        block = DbrxFFN(transformers_config(PUBLISHED))
    ours = convert(PUBLISHED).config
    assert count_layer(ours, PUBLISHED["d_model"]).total_parameters == sum(p.numel() for p in block.parameters())


def test_the_published_config_converts():
    conversion = convert(PUBLISHED)
    assert conversion.hidden_size == 6144 and conversion.moe_layers == tuple(range(40))
    expected = {
        "type": "moe", "experts": 16, "experts_per_token": 4, "intermediate_size": 10752, "gated": True, "activation": "silu",
        "routing": "aux_loss", "router_score_function": "softmax", "normalize_expert_weights": True, "auxiliary_loss_coefficient": 0.05,
    }
    assert {key: conversion.data[key] for key in expected} == expected
    assert "expert_weights_norm_order" not in conversion.data and "jitter_eps" not in conversion.data  # p = 1; moe_jitter_eps 0
    assert convert(transformers_config(PUBLISHED)).config == conversion.config  # the object: its attribute_map, its nested config
    ffn = PUBLISHED["ffn_config"]
    jitter = convert({**PUBLISHED, "ffn_config": {**ffn, "moe_jitter_eps": 0.01, "moe_normalize_expert_weights": 2}, "resid_pdrop": 0.1}).config
    assert (jitter.jitter_eps, jitter.jitter_target, jitter.expert_weights_norm_order, jitter.dropout) == (0.01, "layer_input", 2.0, 0.1)


def test_problems_of_the_nested_ffn_config_are_located():
    ffn = {key: value for key, value in PUBLISHED["ffn_config"].items() if key != "moe_num_experts"}
    with pytest.raises(ConfigError, match=r"^ffn_config.moe_num_experts: missing: expected an integer$"):
        convert({**PUBLISHED, "ffn_config": ffn})
    with pytest.raises(ConfigError, match="ffn_config.moe_num_expert: unknown field: a required field of ffn_config is moe_num_experts"):
        convert({**PUBLISHED, "ffn_config": {**ffn, "moe_num_expert": 16}})
    with pytest.raises(ConfigError, match="ffn_config.moe_top_k: expected an integer"):
        convert({**PUBLISHED, "ffn_config": {**PUBLISHED["ffn_config"], "moe_top_k": "4"}})
    with pytest.raises(ConfigError, match="ffn_config.ffn_act_fn.name: activation 'tanh' has no equivalent here"):
        convert({**PUBLISHED, "ffn_config": {**PUBLISHED["ffn_config"], "ffn_act_fn": {"name": "tanh"}}})
