"""Qwen4-Exp (`Qwen4ExpTextSparseMoeBlock`) against transformers: parity through the multimodal wrapper, with
norm_topk_prob false (the router reads it), export, counts at the published size, the settings the model ignores."""

from __future__ import annotations

import json

import pytest
import torch

from fastmoe_cfg.config.errors import ConfigError
from fastmoe_cfg.hf import convert
from fastmoe_cfg.schemas.counts import count_layer
from tests.conftest import ROOT
from tests.hf.parity import HIDDEN, IMPLEMENTATIONS, TOKENS, Family, block_output, check_block, check_export, eager, filled, gate_route, transformers, whole_state

PUBLISHED = json.loads((ROOT / "tests" / "data" / "hf_families" / "qwen4_exp.json").read_text())


@pytest.fixture(scope="module")
def family() -> Family:
    from transformers.models.qwen4_exp.modeling_qwen4_exp import Qwen4ExpTextSparseMoeBlock

    text = eager(transformers.Qwen4ExpTextConfig(
        hidden_size=HIDDEN, moe_intermediate_size=8, shared_expert_intermediate_size=12, num_experts=8, num_experts_per_tok=2,
        num_hidden_layers=2, norm_topk_prob=False,
    ))
    config = transformers.Qwen4ExpConfig(text_config=text.to_dict())
    return Family("qwen4_exp", config, filled(Qwen4ExpTextSparseMoeBlock(text)), 2, block_output, gate_route(), whole_state)


@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_imported_block_equals_hugging_face(family, implementation, tokens):
    check_block(family, implementation, tokens)


def test_export_is_the_hf_state_dict(family):
    check_export(family)


def test_counts_at_the_published_size_equal_transformers_block():
    from transformers.models.qwen4_exp.modeling_qwen4_exp import Qwen4ExpTextSparseMoeBlock

    config = transformers.Qwen4ExpTextConfig(**PUBLISHED)
    with torch.device("meta"):
        block = Qwen4ExpTextSparseMoeBlock(config)
    assert count_layer(convert(PUBLISHED).config, PUBLISHED["hidden_size"]).total_parameters == sum(p.numel() for p in block.parameters())


def test_the_published_config_converts():
    conversion = convert(PUBLISHED)
    assert conversion.family == "qwen4_exp_text" and conversion.moe_layers == tuple(range(40))
    expected = {
        "type": "moe", "experts": 513, "experts_per_token": 10, "shared_experts": 1, "shared_expert_intermediate_size": 512,
        "shared_expert_gate": {"enabled": True}, "intermediate_size": 512, "normalize_expert_weights": True,
    }
    assert {key: conversion.data[key] for key in expected} == expected
    assert convert({key: value for key, value in PUBLISHED.items() if key != "norm_topk_prob"}).config == conversion.config
    assert convert({"model_type": "qwen4_exp", "text_config": PUBLISHED}).config == conversion.config


@pytest.mark.parametrize(("key", "value"), [("mlp_only_layers", [0]), ("decoder_sparse_step", 2)])
def test_qwen_settings_the_model_ignores_are_refused(key, value):
    with pytest.raises(ConfigError, match=f"{key}: .*cannot be converted: transformers' Qwen4-Exp model has an MoE block in every decoder layer"):
        convert({**PUBLISHED, key: value})
