"""Hunyuan-MoE v1 (`HunYuanMoEV1Moe`) against transformers: parity (k of the layer from a per-layer moe_topk), export,
counts at the published size, Tencent's per-layer settings that transformers' block does not read."""

from __future__ import annotations

import json

import pytest
import torch

from fastmoe_cfg.config.errors import ConfigError
from fastmoe_cfg.hf import convert
from fastmoe_cfg.schemas.counts import count_layer
from tests.conftest import ROOT
from tests.hf.parity import HIDDEN, IMPLEMENTATIONS, TOKENS, Family, block_output, check_block, check_export, eager, filled, gate_route, transformers, whole_state

PUBLISHED = json.loads((ROOT / "tests" / "data" / "hf_families" / "hunyuan_v1_moe.json").read_text())


@pytest.fixture(scope="module")
def family() -> Family:
    """moe_topk [3, 2]: layer 0's block picks 3 of 8 experts (the import takes layer 0)."""
    from transformers.models.hunyuan_v1_moe.modeling_hunyuan_v1_moe import HunYuanMoEV1Moe

    config = eager(transformers.HunYuanMoEV1Config(hidden_size=HIDDEN, intermediate_size=8, num_experts=8, moe_topk=[3, 2], num_hidden_layers=2))
    block = filled(HunYuanMoEV1Moe(config, layer_idx=0))
    assert block.gate.wg.weight.dtype == torch.float32
    return Family("hunyuan_v1_moe", config, block, 3, block_output, gate_route(), whole_state)


@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_imported_block_equals_hugging_face(family, implementation, tokens):
    check_block(family, implementation, tokens)


def test_export_is_the_hf_state_dict(family):
    check_export(family)


def test_counts_at_the_published_size_equal_transformers_block():
    from transformers.models.hunyuan_v1_moe.modeling_hunyuan_v1_moe import HunYuanMoEV1Moe

    config = transformers.HunYuanMoEV1Config(**PUBLISHED)
    with torch.device("meta"):
        block = HunYuanMoEV1Moe(config, layer_idx=0)
    assert count_layer(convert(PUBLISHED).config, PUBLISHED["hidden_size"]).total_parameters == sum(p.numel() for p in block.parameters())


def test_the_published_config_converts():
    conversion = convert(PUBLISHED)
    assert conversion.moe_layers == tuple(range(32))
    expected = {
        "type": "moe", "experts": 65, "experts_per_token": 8, "shared_experts": 1, "intermediate_size": 3072,
        "normalize_expert_weights": True, "router_dtype": "float32",
    }
    assert {key: conversion.data[key] for key in expected} == expected
    assert conversion.config.shared_intermediate_size() == 3072
    assert convert({**PUBLISHED, "moe_topk": 8}).config == conversion.config


def test_k_of_each_layer():
    ks = [8] * 31 + [4]
    assert convert({**PUBLISHED, "moe_topk": ks}, 31).data["experts_per_token"] == 4
    assert convert({**PUBLISHED, "moe_topk": ks}, 30).data["experts_per_token"] == 8
    with pytest.raises(ConfigError, match=r"moe_topk: has 3 entries: expected one per decoder layer \(32"):
        convert({**PUBLISHED, "moe_topk": [8, 8, 8]})


@pytest.mark.parametrize(("key", "value", "message"), [
    ("moe_intermediate_size", [3072] * 31 + [1536], r"transformers' HunYuanMoEV1Experts are intermediate_size \(3072\) wide"),
    ("num_shared_expert", [2] * 32, "transformers' HunYuanMoEV1Moe has one shared MLP"),
    ("use_mixed_mlp_moe", False, "transformers' HunYuanMoEV1Moe always adds its shared MLP"),
    ("moe_layer_num_skipped", 1, "transformers' model has an MoE block in every decoder layer"),
])
def test_tencent_settings_are_refused_unless_they_agree(key, value, message):
    with pytest.raises(ConfigError, match=f"{key}: .*cannot be converted: {message}"):
        convert({**PUBLISHED, key: value})
