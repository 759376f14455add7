"""Input shapes and `token_mask`: layers compute on the real tokens only, as a [T, H] matrix."""

from collections.abc import Callable

import torch


def apply_to_tokens(
    function: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, token_mask: torch.Tensor | None, hidden_size: int
) -> torch.Tensor:
    """Run `function` on the real tokens of `x` ([tokens, hidden] or [batch, seq, hidden]) as a [T, H] matrix.

    A masked token (`token_mask` False) never reaches `function`: it is not routed, not
    counted in losses or statistics, and gets a zero output row and a zero input gradient.
    """
    if x.dim() not in (2, 3) or x.shape[-1] != hidden_size:
        raise ValueError(f"expected input of shape [tokens, {hidden_size}] or [batch, seq, {hidden_size}], got {list(x.shape)}")
    x_TH = x.reshape(-1, hidden_size)
    if token_mask is None:
        return function(x_TH).reshape(x.shape)
    if token_mask.dtype != torch.bool or token_mask.shape != x.shape[:-1]:
        raise ValueError(
            f"token_mask must be a bool tensor of shape {list(x.shape[:-1])}, got {token_mask.dtype} of shape {list(token_mask.shape)}"
        )
    real_T = token_mask.reshape(-1).nonzero().squeeze(1)
    y_TH = function(x_TH.index_select(0, real_T))
    return y_TH.new_zeros(x_TH.shape).index_copy(0, real_T, y_TH).reshape(x.shape)
