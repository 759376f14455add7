"""Training smoke tests: the injected load-balancing loss, and aux_free's bias updates, balance a router that starts skewed."""

from __future__ import annotations

import torch

from fastmoe_cfg.layers import parameter_groups
from tests.layers.conftest import build


def train(fields: dict, steps: int = 200) -> float:
    """200 SGD steps regressing random targets; returns max/mean expert load on fresh data (inference)."""
    layer = build(
        {"type": "moe", "experts": 8, "experts_per_token": 2, "intermediate_size": 16, **fields},
        16, dtype=torch.float32, seed=0, randomize=False,
    ).train()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # Skew: every input has a shared direction that experts 0 and 1 favour.
        direction = torch.randn(16, generator=generator)
        layer.router.weight[:2] += 0.5 * direction
    optimizer = torch.optim.SGD(parameter_groups(layer, lr=0.2))
    teacher = torch.randn(16, 16, generator=generator) / 4
    for _ in range(steps):
        x = torch.randn(128, 16, generator=generator) + direction
        loss = (layer(x) - x @ teacher).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    layer.eval()
    layer(torch.randn(2048, 16, generator=generator) + direction)
    load = layer.stats["tokens_per_expert"].float()
    return (load.max() / load.mean()).item()


def test_aux_loss_lowers_max_over_mean_load():
    # Measured here: 3.99 without the loss (two experts take nearly every token), 1.22 with coefficient 1.
    skewed, balanced = train({"auxiliary_loss_coefficient": 0.0}), train({"auxiliary_loss_coefficient": 1.0})
    assert skewed > 3.0, skewed
    assert balanced < 1.6, balanced


def test_aux_free_bias_updates_lower_max_over_mean_load():
    """Measured here (torch 2.13, CPU): max/mean load 3.98 with rate 0 (experts 0 and 1 take nearly
    every token: the ideal skew is 4), 1.61 with rate 1e-2 (automatic, once per step)."""
    aux_free = {"routing": "aux_free", "router_score_function": "sigmoid", "automatic_bias_update": True}
    skewed, balanced = train({**aux_free, "bias_update_rate": 0.0}), train({**aux_free, "bias_update_rate": 1e-2})
    assert skewed > 3.5, skewed
    assert balanced < 1.8, balanced
