"""What the parity tests of the DeepSeek-like families share (DeepSeek-V2/V3/V3.2, Kimi, GLM-4.5, dots.llm1, ...):
a small block of transformers' own classes with its correction bias filled, the published config.json files of
tests/data/hf_families/, and the parameter count of a block built on the meta device at the published size."""

from __future__ import annotations

import importlib
import json

import torch

from fastmoe_cfg.hf import convert
from fastmoe_cfg.schemas.counts import count_layer
from tests.conftest import ROOT
from tests.hf.parity import HIDDEN, Family, block_output, eager, filled, whole_state


def modeling(module: str, *names: str) -> tuple:
    """Classes of transformers' `models/<module>/modeling_<module>.py` (transformers is imported by tests.hf.parity,
    which skips the tests without it)."""
    found = importlib.import_module(f"transformers.models.{module}.modeling_{module}")
    return tuple(getattr(found, name) for name in names)


def published(name: str) -> dict:
    return json.loads((ROOT / "tests" / "data" / "hf_families" / f"{name}.json").read_text())


def sigmoid_route(block, x_TH):
    """Sigmoid scores + e_score_correction_bias: what DeepSeek-V3's router selects on."""
    logits, _, experts = block.gate(x_TH)
    return logits.float().sigmoid() + block.gate.e_score_correction_bias, experts


def softmax_route(block, x_TH):
    """Softmax scores: what DeepSeek-V2's router selects on (the logits order them alike)."""
    logits, _, experts = block.gate(x_TH)
    return logits.float().softmax(dim=-1), experts


def small_block(block_class, config, *, name: str, k: int, hf_config=None, route=sigmoid_route) -> Family:
    """`block_class(config)` with every parameter drawn and its correction bias (if any) filled, so that it changes
    the choice; `hf_config` (default: `config`) is what the import reads: a dict stands for a config.json."""
    block = filled(block_class(eager(config)))
    bias = getattr(block.gate, "e_score_correction_bias", None)
    if bias is not None:
        with torch.no_grad():
            bias.normal_(0, 0.1)
    return Family(name, config if hf_config is None else hf_config, block, k, block_output, route, whole_state)


def as_config_json(config, model_type: str) -> dict:
    """A transformers config as the dict of a config.json whose model_type is `model_type` (an alias)."""
    return {**config.to_dict(), "model_type": model_type}


def meta_parameters(block_class, config) -> int:
    with torch.device("meta"):
        block = block_class(config)
    return sum(parameter.numel() for parameter in block.parameters())


def assert_counts(data: dict, layer: int, block_class, config) -> None:
    """Our count of decoder `layer`'s MLP, converted from `data`, equals transformers' block built from `config`."""
    conversion = convert(data, layer)
    assert count_layer(conversion.config, conversion.hidden_size).total_parameters == meta_parameters(block_class, config)


__all__ = ["HIDDEN", "as_config_json", "assert_counts", "modeling", "published", "sigmoid_route", "small_block", "softmax_route"]
