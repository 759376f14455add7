"""The harness of the HF parity tests: an HF MoE block of a small config, filled by hand, against our layer
imported from it (`import_moe_block`), and the export back (`export_state_dict`).

CPU, float32, eval mode. Outputs within 1e-5 and input gradients within 1e-4 (max abs difference / max abs
reference), the same experts per token as sets (HF's top-k order is not ours). Standalone HF blocks never run
`_init_weights`, so every parameter is drawn here. Inputs are drawn until every token's k-th and (k+1)-th
selection score differ by more than MIN_MARGIN, so rounding cannot flip a choice. Export of the imported layer
equals the HF state dict exactly (names, shapes, dtypes, values).

A family's test (tests/hf/families/test_<family>.py) builds a `Family` and calls `check_block` and `check_export`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Callable

import pytest
import torch

from fastmoe_cfg.hf import export_state_dict, import_moe_block

transformers = pytest.importorskip("transformers", reason="HF import tests need transformers (pip install -e '.[dev]')")

HIDDEN = 16
MIN_MARGIN = 1e-3
IMPLEMENTATIONS = ["looped", "dropless"]
TOKENS = [1, 13, 64]


@dataclass
class Family:
    name: str
    config: object  # the transformers config of the model
    block: torch.nn.Module  # the MoE block (Gemma-4: the decoder layer)
    k: int
    forward: Callable[[torch.nn.Module, torch.Tensor], torch.Tensor]  # HF's MoE output for [1, T, H]
    route: Callable[[torch.nn.Module, torch.Tensor], tuple]  # HF's (selection scores [T, E], experts [T, K])
    state: Callable[[torch.nn.Module], dict]  # the HF tensors that export must reproduce
    moe_only: bool = False  # Gemma-4: the MoE branch alone (its whole feed-forward: tests/layers/test_hybrid.py)


def eager(config):
    config._experts_implementation = "eager"
    return config


def filled(block: torch.nn.Module, std: float = 0.3) -> torch.nn.Module:
    with torch.no_grad():
        for parameter in block.parameters():
            parameter.normal_(0, std)
    return block.eval()


def block_output(block, x):
    out = block(x)
    return out[0] if isinstance(out, tuple) else out  # GPT-OSS returns (hidden, router_scores)


def gate_route(name="gate"):
    """HF top-k routers return (logits, weights, experts): softmax families select on the logits."""
    def route(block, x_TH):
        logits, _, experts = getattr(block, name)(x_TH)
        return logits, experts
    return route


def whole_state(block):
    return block.state_dict()


def untied_input(family: Family, tokens: int) -> torch.Tensor:
    for seed in range(200):
        x = torch.randn(1, tokens, HIDDEN, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            scores, _ = family.route(family.block, x.reshape(-1, HIDDEN))
            top = scores.topk(family.k + 1, dim=-1).values
        if (top[:, family.k - 1] - top[:, family.k]).min() > MIN_MARGIN:
            return x
    raise AssertionError("no seed without a near-tie")


def relative_error(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    return ((ours - theirs).abs().max() / theirs.abs().max()).item()


def check_block(family: Family, implementation: str, tokens: int) -> None:
    """Our layer imported from `family.block` equals it: outputs, input gradients, the experts chosen."""
    torch.manual_seed(0)
    layer = import_moe_block(family.block, family.config, implementation=implementation, moe_only=family.moe_only)
    assert not layer.training and layer.config.implementation == implementation

    x = untied_input(family, tokens)
    x_ours, x_hf = x.clone().requires_grad_(), x.clone().requires_grad_()
    ours = layer(x_ours)
    theirs = family.forward(family.block, x_hf)
    assert isinstance(ours, torch.Tensor) and ours.shape == x.shape
    output_error = relative_error(ours, theirs)
    assert output_error <= 1e-5
    grad = torch.randn_like(ours)
    (ours * grad).sum().backward()
    (theirs * grad).sum().backward()
    gradient_error = relative_error(x_ours.grad, x_hf.grad)
    assert gradient_error <= 1e-4
    report = os.environ.get("FASTMOE_PARITY_REPORT")  # a file: one JSON line per comparison, for the family table
    if report:
        with open(report, "a", encoding="utf-8") as stream:
            stream.write(json.dumps({"family": family.name, "implementation": implementation, "tokens": tokens,
                                     "output": output_error, "gradient": gradient_error}) + "\n")

    with torch.no_grad():
        experts_TK = layer.route(x.reshape(-1, HIDDEN)).experts_TK
        _, hf_experts_TK = family.route(family.block, x.reshape(-1, HIDDEN))
    assert torch.equal(experts_TK.sort(dim=-1).values, hf_experts_TK.sort(dim=-1).values)
    if tokens == 1:  # experts without tokens take part in the comparison above
        assert (layer.stats["tokens_per_expert"] == 0).sum() >= min(4, layer.stats["tokens_per_expert"].numel() - family.k)


def check_export(family: Family) -> None:
    """The export of the imported layer is the HF block's state dict, exactly."""
    layer = import_moe_block(family.block, family.config, moe_only=family.moe_only)
    exported = export_state_dict(layer, family.name)
    original = family.state(family.block)
    assert set(exported) == set(original)
    for key, tensor in original.items():
        assert exported[key].dtype == tensor.dtype and exported[key].shape == tensor.shape, key
        assert torch.equal(exported[key], tensor), key
