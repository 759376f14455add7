"""ERNIE-4.5-MoE (`Ernie4_5_MoeSparseMoeBlock`) against transformers: parity, export, counts at the published size,
the MoE layers, and what is refused."""

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

PUBLISHED = json.loads((ROOT / "tests" / "data" / "hf_families" / "ernie4_5_moe.json").read_text())


def route(block, x_TH):
    logits, _, experts = block.gate(x_TH)
    return logits.float().softmax(-1) + block.gate.moe_statics.e_score_correction_bias.squeeze(0), experts


@pytest.fixture(scope="module")
def family() -> Family:
    """16 routed experts, top-4, two shared experts; layer 0 dense (moe_layer_start_index 1). The correction bias is filled."""
    from transformers.models.ernie4_5_moe.modeling_ernie4_5_moe import Ernie4_5_MoeSparseMoeBlock

    config = eager(transformers.Ernie4_5_MoeConfig(
        hidden_size=HIDDEN, intermediate_size=24, moe_intermediate_size=8, moe_num_experts=16, moe_k=4, moe_num_shared_experts=2,
        num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
    ))
    block = filled(Ernie4_5_MoeSparseMoeBlock(config))
    with torch.no_grad():  # on softmax scores (~1/16): a bias of this size changes choices
        block.gate.moe_statics.e_score_correction_bias.normal_(0, 0.05)
    return Family("ernie4_5_moe", config, block, 4, block_output, route, whole_state)


@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_imported_block_equals_hugging_face(family, implementation, tokens):
    check_block(family, implementation, tokens)


def test_export_is_the_hf_state_dict(family):
    check_export(family)


def test_counts_at_the_published_size_equal_transformers_blocks():
    from transformers.models.ernie4_5_moe.modeling_ernie4_5_moe import Ernie4_5_MoeMLP, Ernie4_5_MoeSparseMoeBlock

    config = transformers.Ernie4_5_MoeConfig(**PUBLISHED)
    with torch.device("meta"):
        moe, mlp = Ernie4_5_MoeSparseMoeBlock(config), Ernie4_5_MoeMLP(config)
    # HF holds the correction bias as a Parameter with requires_grad False (a statistic; ours is a buffer): not counted.
    assert [name for name, p in moe.named_parameters() if not p.requires_grad] == ["gate.moe_statics.e_score_correction_bias"]
    for layer, block in ((1, moe), (0, mlp)):
        ours = convert(PUBLISHED, layer).config
        assert count_layer(ours, PUBLISHED["hidden_size"]).total_parameters == sum(p.numel() for p in block.parameters() if p.requires_grad)


def test_the_published_config_converts():
    conversion = convert(PUBLISHED)
    assert conversion.moe_layers == tuple(range(1, 28)) and conversion.layer == 1
    expected = {
        "type": "moe", "experts": 66, "experts_per_token": 6, "shared_experts": 2, "intermediate_size": 1536, "routing": "aux_free",
        "router_score_function": "softmax", "normalize_expert_weights": True, "router_dtype": "float32",
    }
    assert {key: conversion.data[key] for key in expected} == expected
    assert convert(PUBLISHED, 0).data["intermediate_size"] == 12288


def test_moe_layers_as_transformers_places_them():
    from transformers.models.ernie4_5_moe.modeling_ernie4_5_moe import Ernie4_5_MoeSparseMoeBlock

    small = {**PUBLISHED, "num_hidden_layers": 9, "moe_layer_start_index": 2, "moe_layer_end_index": -1, "moe_layer_interval": 2}
    config = transformers.Ernie4_5_MoeConfig(**small)
    with torch.device("meta"):
        layers = transformers.Ernie4_5_MoeModel(config).layers
    expected = tuple(index for index, layer in enumerate(layers) if isinstance(layer.mlp, Ernie4_5_MoeSparseMoeBlock))
    assert convert(small).moe_layers == expected == (3, 5, 7)


def test_refused_settings_are_named():
    with pytest.raises(ConfigError, match="moe_norm_min: number 0.001 cannot be converted: the weights' denominator is max"):
        convert({**PUBLISHED, "moe_norm_min": 1e-3})
    with pytest.raises(ConfigError, match="use_bias: true cannot be converted: the shared experts would have biases"):
        convert({**PUBLISHED, "use_bias": True})
    assert convert({**PUBLISHED, "use_bias": True, "moe_num_shared_experts": 0}).config.add_linear_biases is False
    assert convert({**PUBLISHED, "use_bias": True}, 0).config.add_linear_biases is True  # a dense layer
