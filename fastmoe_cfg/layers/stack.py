"""A stack's blocks as torch modules: one per layer, in an `nn.ModuleList` (`StackConfig.build`)."""

from __future__ import annotations

from torch import nn

from fastmoe_cfg.schemas.stack import StackConfig

__all__ = ["build_stack"]


def build_stack(config: StackConfig, hidden_size: int, *, device=None, dtype=None) -> nn.ModuleList:
    """`nn.ModuleList` of `config.block(i).build(...)` for every layer i, built in layer order (so a seeded
    initialisation draws layer 0 first). Layers with equal blocks get separate modules (separate weights)."""
    return nn.ModuleList(block.build(hidden_size, device=device, dtype=dtype) for block in config.blocks())
