"""Recomputation in backward (`recompute_level`), through torch.utils.checkpoint.

The expert MLP runs in three steps: `prepare` (gather the rows, pre_norm),
`layer_1`, and `finish` (activation, layer_2). What backward keeps:

| level                | kept for backward                    | recomputed in backward              |
|----------------------|--------------------------------------|-------------------------------------|
| none                 | prepared input, layer_1 output, activation output | nothing                  |
| activation           | prepared input, layer_1 output       | activation and layer_2's input      |
| activation_and_input | the raw layer input, layer_1 output  | gather, pre_norm, layer_1's input, activation |
| full                 | the raw layer input                  | the whole layer (the layer does it) |

Checkpointing is non-reentrant: gradients flow through the original graph, so the
auxiliary losses injected in forward count once.
"""

from collections.abc import Callable

import torch
from torch.utils.checkpoint import checkpoint

from fastmoe_cfg.schemas.enums import MLPRecomputeLevel

Step = Callable[[torch.Tensor], torch.Tensor]


def checkpointed(function: Callable[..., torch.Tensor], *arguments) -> torch.Tensor:
    """`function(*arguments)`, keeping only the arguments for backward when gradients are being recorded."""
    if not torch.is_grad_enabled():
        return function(*arguments)
    return checkpoint(function, *arguments, use_reentrant=False)


def expert_mlp(x: torch.Tensor, *, prepare: Step, layer_1: Step, finish: Step, level: MLPRecomputeLevel) -> torch.Tensor:
    """finish(layer_1(prepare(x))), with the checkpoints `level` asks for (`full` is the caller's)."""
    if level == MLPRecomputeLevel.activation_and_input:
        h = checkpointed(lambda t: layer_1(prepare(t)), x)
    else:
        h = layer_1(prepare(x))
    if level in (MLPRecomputeLevel.activation, MLPRecomputeLevel.activation_and_input):
        return checkpointed(finish, h)
    return finish(h)
