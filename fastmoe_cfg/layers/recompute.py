"""Recomputation in backward (`recompute_level`), through torch.utils.checkpoint.

The layers wrap their named steps where they call them; the MLP steps are `inputs`
(pre_norm and layer_1) and `outputs` (activation and layer_2). What backward keeps:

| level                | kept for backward                    | recomputed in backward              |
|----------------------|--------------------------------------|-------------------------------------|
| none                 | normed input, layer_1 output, activation output | nothing                  |
| activation           | normed input, layer_1 output         | activation and layer_2's input      |
| activation_and_input | the raw layer input, layer_1 output  | pre_norm, gather, layer_1's input, activation |
| full                 | the raw layer input                  | the whole layer                     |

Checkpointing is non-reentrant: gradients flow through the original graph, so the
auxiliary losses injected in forward count once.
"""

from collections.abc import Callable

import torch
from torch.utils.checkpoint import checkpoint

from fastmoe_cfg.schemas.enums import MLPRecomputeLevel


def checkpointed(function: Callable, *arguments, recompute: bool = True):
    """`function(*arguments)`; with `recompute`, keeping only the arguments for backward (when gradients are recorded)."""
    if not recompute or not torch.is_grad_enabled():
        return function(*arguments)
    return checkpoint(function, *arguments, use_reentrant=False)


def recomputed_steps(level: MLPRecomputeLevel) -> tuple[bool, bool, bool]:
    """Which steps `level` checkpoints: (the whole layer, the inputs step, the outputs step)."""
    return (
        level == MLPRecomputeLevel.full,
        level == MLPRecomputeLevel.activation_and_input,
        level in (MLPRecomputeLevel.activation, MLPRecomputeLevel.activation_and_input),
    )
