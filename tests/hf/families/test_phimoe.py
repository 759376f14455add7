"""Phi-3.5-MoE (`PhimoeSparseMoeBlock`, sparsemixer) against transformers in eval mode: parity (with a threshold that
masks experts), export, counts at the published size; what training mode does differently."""

from __future__ import annotations

import json

import pytest
import torch

from fastmoe_cfg.config.errors import ConfigError
from fastmoe_cfg.hf import convert, import_moe_block
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

PUBLISHED = json.loads((ROOT / "tests" / "data" / "hf_families" / "phimoe.json").read_text())


@pytest.fixture(scope="module")
def family() -> Family:
    """router_jitter_noise 0.1: with logits of a few units, some experts are masked out of each softmax, some not."""
    from transformers.models.phimoe.modeling_phimoe import PhimoeSparseMoeBlock

    config = eager(transformers.PhimoeConfig(
        hidden_size=HIDDEN, intermediate_size=8, num_local_experts=8, num_experts_per_tok=2, num_hidden_layers=2, router_jitter_noise=0.1,
    ))
    block = filled(PhimoeSparseMoeBlock(config))
    with torch.no_grad():
        block.router.weight.normal_(0, 1.0)
    return Family("phimoe", config, block, 2, block_output, gate_route("router"), whole_state)


def test_the_threshold_masks_some_experts_and_not_others(family):
    """The parity inputs exercise the mask: neither nothing masked (a plain softmax) nor everything (weight 1)."""
    x = torch.randn(64, HIDDEN, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = family.block.router(x)[0]
    top = logits.max(dim=-1, keepdim=True).values
    masked = (top - logits) / logits.abs().clamp(min=top) > 2 * family.config.router_jitter_noise
    kept = (~masked).sum(dim=-1)
    assert kept.min() == 1 and kept.max() > 1 and kept.max() < 8


@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_imported_block_equals_hugging_face(family, implementation, tokens):
    check_block(family, implementation, tokens)


def test_export_is_the_hf_state_dict(family):
    check_export(family)


def test_in_training_transformers_samples_and_ours_routes_as_in_eval(family):
    """HF's training mode draws the choices (Gumbel) and rescales weights: outputs vary between calls; ours do not."""
    layer = import_moe_block(family.block, family.config).train()
    x = torch.randn(1, 32, HIDDEN, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = [layer(x.clone()) for _ in range(2)]
        family.block.train()
        try:
            torch.manual_seed(0)
            theirs = [family.block(x.clone()) for _ in range(2)]
        finally:
            family.block.eval()
        eval_out = family.block(x.clone())
    assert torch.equal(ours[0], ours[1]) and torch.allclose(ours[0], eval_out, rtol=1e-5, atol=1e-6)
    assert not torch.equal(theirs[0], theirs[1])


def test_counts_at_the_published_size_equal_transformers_block():
    from transformers.models.phimoe.modeling_phimoe import PhimoeSparseMoeBlock

    with torch.device("meta"):
        block = PhimoeSparseMoeBlock(transformers.PhimoeConfig(**PUBLISHED))
    ours = convert(PUBLISHED).config
    assert count_layer(ours, PUBLISHED["hidden_size"]).total_parameters == sum(p.numel() for p in block.parameters())


def test_the_published_config_converts():
    conversion = convert(PUBLISHED)
    expected = {
        "type": "moe", "experts": 16, "experts_per_token": 2, "intermediate_size": 6400, "routing": "aux_loss",
        "router_score_function": "softmax", "sparsemixer_eps": 0.01, "jitter_eps": 0.01, "jitter_target": "layer_input",
        "auxiliary_loss_coefficient": 0.0,
    }
    assert {key: conversion.data[key] for key in expected} == expected
    with pytest.raises(ConfigError, match="num_experts_per_tok: integer 4 cannot be converted: .*sparsemixer chooses 2 experts"):
        convert({**PUBLISHED, "num_experts_per_tok": 4})
