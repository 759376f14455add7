"""Qwen3-Omni-MoE's thinker (`Qwen3OmniMoeThinkerTextSparseMoeBlock`) against transformers: parity through the
two-level wrapper (qwen3_omni_moe -> thinker_config -> text_config), export, counts at the published size."""

from __future__ import annotations

import json

import pytest
import torch

from fastmoe_cfg.config.errors import ConfigError
from fastmoe_cfg.hf import convert
from fastmoe_cfg.schemas.counts import count_layer
from tests.conftest import ROOT
from tests.hf.parity import HIDDEN, IMPLEMENTATIONS, TOKENS, Family, block_output, check_block, check_export, eager, filled, gate_route, transformers, whole_state

PUBLISHED = json.loads((ROOT / "tests" / "data" / "hf_families" / "qwen3_omni_moe.json").read_text())


@pytest.fixture(scope="module")
def family() -> Family:
    """norm_topk_prob left at the thinker's default (true); the config is the whole multimodal one."""
    from transformers.models.qwen3_omni_moe.modeling_qwen3_omni_moe import Qwen3OmniMoeThinkerTextSparseMoeBlock

    text = eager(transformers.Qwen3OmniMoeTextConfig(hidden_size=HIDDEN, moe_intermediate_size=8, num_experts=8, num_experts_per_tok=2, num_hidden_layers=2))
    config = transformers.Qwen3OmniMoeConfig(thinker_config={"text_config": text.to_dict()})
    assert config.thinker_config.text_config.num_experts == 8
    return Family("qwen3_omni_moe", config, filled(Qwen3OmniMoeThinkerTextSparseMoeBlock(text)), 2, block_output, gate_route(), whole_state)


@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_imported_block_equals_hugging_face(family, implementation, tokens):
    check_block(family, implementation, tokens)


def test_export_is_the_hf_state_dict(family):
    check_export(family)


def test_counts_at_the_published_size_equal_transformers_block():
    from transformers.models.qwen3_omni_moe.modeling_qwen3_omni_moe import Qwen3OmniMoeThinkerTextSparseMoeBlock

    text = transformers.Qwen3OmniMoeConfig(**PUBLISHED).thinker_config.text_config
    with torch.device("meta"):
        block = Qwen3OmniMoeThinkerTextSparseMoeBlock(text)
    assert count_layer(convert(PUBLISHED).config, text.hidden_size).total_parameters == sum(p.numel() for p in block.parameters())


def test_the_published_config_converts():
    conversion = convert(PUBLISHED)
    assert conversion.family == "qwen3_omni_moe_text" and conversion.moe_layers == tuple(range(48))
    expected = {"type": "moe", "experts": 128, "experts_per_token": 8, "intermediate_size": 768, "normalize_expert_weights": True}
    assert {key: conversion.data[key] for key in expected} == expected
    assert convert(PUBLISHED["thinker_config"]).config == conversion.config  # the thinker's config alone


def test_a_shared_expert_the_block_does_not_have_is_refused():
    thinker = PUBLISHED["thinker_config"]
    data = {**PUBLISHED, "thinker_config": {**thinker, "text_config": {**thinker["text_config"], "shared_expert_intermediate_size": 768}}}
    with pytest.raises(ConfigError, match="thinker_config.text_config.shared_expert_intermediate_size: .*has no shared expert"):
        convert(data)
