"""Nemotron-H (`NemotronHMoE`: ungated relu2 experts, DeepSeek-V3's routing) against transformers: parity, export, counts
at the published size (Nemotron-3-Nano's keys as a public test pins them); our layers are the blocks with an MLP."""

from __future__ import annotations

import pytest

from fastmoe_cfg.config.errors import ConfigError
from fastmoe_cfg.hf import convert
from fastmoe_cfg.hf.mapping import convert_all
from tests.hf.families.deepseek_like import HIDDEN, assert_counts, modeling, published, small_block
from tests.hf.parity import IMPLEMENTATIONS, TOKENS, check_block, check_export, transformers

NemotronHMoE, NemotronHMLP = modeling("nemotron_h", "NemotronHMoE", "NemotronHMLP")


@pytest.fixture(scope="module")
def family():
    """8 routed experts in 2 groups (keep 1), top-3, × 2.5, relu2, a shared expert wider than the experts; the default
    blocks (Mamba-2, MoE, attention, MLP): our layer 0 is the MoE block, layer 1 the MLP."""
    config = transformers.NemotronHConfig(
        hidden_size=HIDDEN, moe_intermediate_size=8, moe_shared_expert_intermediate_size=12, intermediate_size=24, n_routed_experts=8,
        num_experts_per_tok=3, n_group=2, topk_group=1, routed_scaling_factor=2.5, num_attention_heads=2, num_key_value_heads=1,
        head_dim=8, mamba_num_heads=2, mamba_head_dim=8, n_groups=1,
    )
    return small_block(NemotronHMoE, config, name="nemotron_h", k=3)


@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_block_equals_transformers(family, implementation, tokens):
    check_block(family, implementation, tokens)


def test_export_is_the_hf_state_dict(family):
    check_export(family)


def test_counts_equal_transformers_blocks():
    data = published("nemotron_h")
    assert_counts(data, 0, NemotronHMoE, transformers.NemotronHConfig(**data))
    dense = {**data, "hybrid_override_pattern": "M-E*", "num_hidden_layers": 4}
    assert_counts(dense, 0, NemotronHMLP, transformers.NemotronHConfig(**dense))


def test_config_json_converts():
    data = published("nemotron_h")
    conversion = convert(data)
    assert conversion.layers == 23 and conversion.moe_layers == tuple(range(23))  # the 23 "E" of the 52 blocks
    expected = {
        "type": "moe", "experts": 129, "experts_per_token": 6, "shared_experts": 1, "shared_expert_intermediate_size": 3712,
        "intermediate_size": 1856, "gated": False, "activation": "squared_relu", "add_linear_biases": False, "routing": "aux_free",
        "router_score_function": "sigmoid", "normalize_expert_weights": True, "routed_scaling_factor": 2.5, "router_dtype": "float32",
    }
    assert {key: conversion.data[key] for key in expected} == expected
    assert conversion.config.expert_groups == 1


def test_blocks_without_an_mlp_are_not_layers():
    data = {**published("nemotron_h"), "hybrid_override_pattern": "M-E*E", "num_hidden_layers": 5}
    layers = convert_all(data)
    assert [layer.data["type"] for layer in layers] == ["mlp", "moe", "moe"] and layers[0].moe_layers == (1, 2)
    assert (layers[0].data["gated"], layers[0].data["activation"], layers[0].data["intermediate_size"]) == (False, "squared_relu", 1856)
    listed = {key: value for key, value in data.items() if key not in ("hybrid_override_pattern", "num_hidden_layers")}
    listed["layers_block_type"] = ["mamba", "mlp", "moe", "attention", "moe"]  # legacy names, as transformers remaps them
    assert [layer.config for layer in convert_all(listed)] == [layer.config for layer in layers]


@pytest.mark.parametrize("change, message", [
    ({"moe_latent_size": 1024}, "moe_latent_size: integer 1024 cannot be converted: NemotronHMoE then projects its input"),
    ({"mlp_bias": True}, "mlp_bias: true cannot be converted: it gives the shared expert"),
    ({"n_shared_experts": 2}, "n_shared_experts: integer 2 cannot be converted"),
    ({"num_hidden_layers": 50}, "num_hidden_layers: 50 disagrees with the 52 blocks of hybrid_override_pattern"),
    ({"hybrid_override_pattern": "M*M*"}, "no block with an MLP"),
])
def test_what_the_schema_lacks_is_refused(change, message):
    with pytest.raises(ConfigError, match=message):
        convert({**published("nemotron_h"), **change, **({"num_hidden_layers": 4} if "hybrid_override_pattern" in change else {})})
