"""Input shapes and `token_mask`: layers compute on the real tokens only, as a [T, H] matrix."""

from collections.abc import Callable

import torch


def apply_to_tokens(
    function: Callable[..., torch.Tensor],
    x: torch.Tensor,
    token_mask: torch.Tensor | None,
    hidden_size: int,
    *,
    with_sequences: bool = False,
) -> torch.Tensor:
    """Run `function` on the real tokens of `x` ([tokens, hidden] or [batch, seq, hidden]) as a [T, H] matrix.

    A masked token (`token_mask` False) never reaches `function`: it is not routed, not
    counted in losses or statistics, and gets a zero output row and a zero input gradient.
    With `with_sequences`, `function(x_TH, sequence_T, sequences)` also receives each token's
    sequence index (its batch row) and the number of sequences; 2-D input is one sequence,
    given as (None, 1).
    """
    if x.dim() not in (2, 3) or x.shape[-1] != hidden_size:
        raise ValueError(f"expected input of shape [tokens, {hidden_size}] or [batch, seq, {hidden_size}], got {list(x.shape)}")
    x_TH = x.reshape(-1, hidden_size)
    real_T = None
    if token_mask is not None:
        if token_mask.dtype != torch.bool or token_mask.shape != x.shape[:-1]:
            raise ValueError(
                f"token_mask must be a bool tensor of shape {list(x.shape[:-1])}, got {token_mask.dtype} of shape {list(token_mask.shape)}"
            )
        real_T = token_mask.reshape(-1).nonzero().squeeze(1)
    arguments: tuple = (x_TH if real_T is None else x_TH.index_select(0, real_T),)
    if with_sequences and x.dim() == 2:
        arguments += (None, 1)
    elif with_sequences:
        sequence_T = torch.arange(x_TH.shape[0], device=x.device) // max(x.shape[1], 1)
        arguments += (sequence_T if real_T is None else sequence_T.index_select(0, real_T), x.shape[0])
    y_TH = function(*arguments)
    if real_T is None:
        return y_TH.reshape(x.shape)
    return y_TH.new_zeros(x_TH.shape).index_copy(0, real_T, y_TH).reshape(x.shape)
