"""Router losses, routing statistics, and the injection of losses into the backward pass.

Shape legend in `fastmoe_cfg.layers.moe`. Every function takes `mask_T` ([T] bool, True for
a real token; None: all real) and counts the real tokens only.

Expert parallelism: each rank routes its own tokens. Given the totals over the ranks that hold
the batch's tokens (`Totals`: the expert counts, the real tokens and the sequences, all-reduced),
each rank's loss is its share, normalised so that the sum over the ranks equals the loss of one
process on the concatenated tokens; `routing_statistics` reports the sums (the same on every rank).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fastmoe_cfg.layers.moe.parallel import LOCAL, TokenGroup
from fastmoe_cfg.layers.moe.permute import expert_counts
from fastmoe_cfg.layers.moe.router import upcast


def _real(values_T: torch.Tensor, mask_T: torch.Tensor | None) -> torch.Tensor:
    """Rows of masked tokens set to 0 (torch.where: a masked row may hold anything)."""
    return values_T if mask_T is None else torch.where(mask_T.view(-1, *([1] * (values_T.dim() - 1))), values_T, 0)


def _token_count(mask_T: torch.Tensor | None, tokens: int, like: torch.Tensor) -> torch.Tensor | int:
    """The real tokens, at least 1 (no tokens: losses are 0, not 0/0): an int, or a scalar of `like`'s dtype under a mask."""
    return max(tokens, 1) if mask_T is None else mask_T.sum().to(like.dtype).clamp(min=1)


@dataclass(frozen=True)
class Totals:
    """Sums over the ranks that hold the batch's tokens (expert parallelism), without gradient.

    Attributes:
        counts_E: [E] assignments per expert (the routed choice before capacity drops).
        tokens: the real tokens, at least 1, a scalar of the scores' dtype.
        sequences: the sequences with a real token, at least 1, a scalar of the scores' dtype.
    """

    counts_E: torch.Tensor
    tokens: torch.Tensor
    sequences: torch.Tensor


def totals(experts_TK: torch.Tensor, probs_TE: torch.Tensor, sequences: int, mask_T: torch.Tensor | None, group: TokenGroup) -> Totals:
    """The `Totals` of this rank's tokens summed over `group` (one all-reduce)."""
    experts = probs_TE.shape[1]
    tokens = probs_TE.shape[0]
    real_S = (
        torch.full((sequences,), tokens // max(sequences, 1), device=probs_TE.device) if mask_T is None
        else mask_T.view(sequences, -1).sum(dim=1)
    )
    local = torch.cat([expert_counts(experts_TK, experts), real_S.sum().view(1), (real_S > 0).sum().view(1)])
    summed = group.sum(local)
    counts_E, real, present = summed[:experts], summed[experts], summed[experts + 1]
    return Totals(counts_E, real.to(probs_TE.dtype).clamp(min=1), present.to(probs_TE.dtype).clamp(min=1))


def load_balancing_loss(
    probs_TE: torch.Tensor, experts_TK: torch.Tensor, mask_T: torch.Tensor | None = None, *, totals: Totals | None = None
) -> torch.Tensor:
    """Switch-Transformer load-balancing loss, per layer: E · Σ_e f_e · P_e, over the real tokens.

    P_e = mean over tokens of the normalised scores (softmax(logits) by default); f_e = fraction of tokens whose top-k
    contains e, so Σ_e f_e = K. Normalisation: K at the balanced optimum
    (f_e = K/E, P_e = 1/E); at most E (every token's probability on experts that all
    tokens pick); 0 without tokens. Gradients flow through P only (the counts f are discrete).
    `experts_TK` is the routed choice before capacity drops (Switch, Fast-LLM), sentinel E for masked tokens.
    This is Fast-LLM's and HF's formula (Fedus et al. 2021, eq. 4, with top-k counts)
    applied to one layer; HF pools all layers into one loss instead. With `totals`, this rank's share.
    """
    tokens, experts = probs_TE.shape
    if totals is None:
        counts_E, real = expert_counts(experts_TK, experts).to(probs_TE.dtype), _token_count(mask_T, tokens, probs_TE)
    else:
        counts_E, real = totals.counts_E.to(probs_TE.dtype), totals.tokens
    return experts * (counts_E * _real(probs_TE, mask_T).sum(dim=0)).sum() / real**2


def sequence_load_balancing_loss(
    probs_TE: torch.Tensor, unbiased_TK: torch.Tensor, sequences: int, mask_T: torch.Tensor | None = None, *, totals: Totals | None = None
) -> torch.Tensor:
    """DeepSeek-V3's sequence-wise balance loss (report eq. 17-20; Megatron-LM's seq_aux), averaged over the sequences that have tokens.

    Per sequence s of T_s real tokens: Σ_i f_i · P_i, f_i = E / (K · T_s) · (tokens of s whose
    top-k of the *unbiased* affinities over all routed experts contains i: no correction
    bias, no group limit, whatever the routing chose), P_i = mean over the tokens of s of
    the normalised scores. 1 at the balanced optimum (f_i = 1, P_i = 1/E). Gradients flow
    through P only. `unbiased_TK` is that top-k (sentinel E for masked tokens); the T tokens
    are `sequences` consecutive sequences of equal length (the rows of a [batch, seq] input).
    With `totals`, this rank's share: its sequences' sum over all ranks' sequences with tokens.
    """
    tokens, experts = probs_TE.shape
    k = unbiased_TK.shape[1]
    length = tokens // max(sequences, 1)
    sequence_N = torch.arange(tokens * k, device=probs_TE.device) // max(length * k, 1)
    counts_SE = torch.zeros(sequences * (experts + 1), dtype=torch.int64, device=probs_TE.device).index_add_(
        0, sequence_N * (experts + 1) + unbiased_TK.reshape(-1), torch.ones_like(sequence_N)
    ).view(sequences, experts + 1)[:, :experts]
    probability_sum_SE = _real(probs_TE, mask_T).view(sequences, length, experts).sum(dim=1)
    tokens_S = torch.full((sequences,), length, device=probs_TE.device) if mask_T is None else mask_T.view(sequences, length).sum(dim=1)
    tokens_S = tokens_S.to(probs_TE.dtype)
    per_sequence_S = experts / k * (counts_SE.to(probs_TE.dtype) * probability_sum_SE).sum(dim=-1) / tokens_S.clamp(min=1).square()
    present_S = (tokens_S > 0).to(probs_TE.dtype)
    return (per_sequence_S * present_S).sum() / (present_S.sum().clamp(min=1) if totals is None else totals.sequences)


def z_loss(logits_TE: torch.Tensor, mask_T: torch.Tensor | None = None, *, totals: Totals | None = None) -> torch.Tensor:
    """Router z-loss (ST-MoE, Zoph et al. 2022, eq. 5): mean over the real tokens of logsumexp(logits)², in float32 at least
    (with `totals`, this rank's share)."""
    lse_T = torch.logsumexp(upcast(logits_TE), dim=-1)
    real = _token_count(mask_T, logits_TE.shape[0], lse_T) if totals is None else totals.tokens.to(lse_T.dtype)
    return _real(lse_T.square(), mask_T).sum() / real


def router_entropy(probs_TE: torch.Tensor, mask_T: torch.Tensor | None = None, *, totals: Totals | None = None) -> torch.Tensor:
    """Mean over the real tokens of the entropy of the routing distribution, in nats (0 without tokens;
    with `totals`, this rank's share)."""
    real = _token_count(mask_T, probs_TE.shape[0], probs_TE) if totals is None else totals.tokens
    return _real(torch.special.entr(probs_TE), mask_T).sum() / real


LOSSES = ("z_loss", "load_balancing_loss", "sequence_load_balancing_loss")


def router_losses(
    logits_TE: torch.Tensor,
    probs_TE: torch.Tensor,
    experts_TK: torch.Tensor,
    unbiased_TK: torch.Tensor,
    *,
    mask_T: torch.Tensor | None,
    sequences: int,
    applied: frozenset[str],
    totals: Totals | None = None,
) -> dict[str, torch.Tensor]:
    """The three router losses (unscaled), by name. Those not in `applied` are monitoring values, computed
    on detached inputs (nothing kept for backward). With `totals`, each is this rank's share."""

    def inputs(name: str, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tensors if name in applied else tuple(tensor.detach() for tensor in tensors)

    return {
        "z_loss": z_loss(*inputs("z_loss", logits_TE), mask_T, totals=totals),
        "load_balancing_loss": load_balancing_loss(*inputs("load_balancing_loss", probs_TE), experts_TK, mask_T, totals=totals),
        "sequence_load_balancing_loss": sequence_load_balancing_loss(
            *inputs("sequence_load_balancing_loss", probs_TE), unbiased_TK, sequences, mask_T, totals=totals
        ),
    }


@torch.no_grad()
def routing_statistics(
    experts_TK: torch.Tensor,
    kept_TK: torch.Tensor,
    probs_TE: torch.Tensor,
    losses: dict[str, torch.Tensor],
    mask_T: torch.Tensor | None,
    *,
    totals: Totals | None = None,
    group: TokenGroup = LOCAL,
) -> dict[str, torch.Tensor]:
    """`layer.stats` of one forward, detached: `tokens_per_expert` [E] (the router's choice), `dropped_tokens`
    (assignments of real tokens dropped by capacity), the three losses (unscaled) and `router_entropy`.
    With `totals`, the values of all the ranks of `group` (the same on every rank: one all-reduce of the shares)."""
    experts = probs_TE.shape[1]
    statistics = {
        "tokens_per_expert": expert_counts(experts_TK, experts) if totals is None else totals.counts_E,
        "dropped_tokens": ((kept_TK == experts) & (experts_TK != experts)).sum(),
        **{name: loss.detach() for name, loss in losses.items()},
        "router_entropy": router_entropy(probs_TE, mask_T, totals=totals),
    }
    if totals is not None:  # float64 sums: exact for the integer count
        names = [name for name in statistics if name != "tokens_per_expert"]
        summed = group.sum(torch.stack([statistics[name].to(torch.float64) for name in names]))
        statistics |= {name: summed[i].to(statistics[name].dtype) for i, name in enumerate(names)}
    return statistics


class _InjectLoss(torch.autograd.Function):
    """Identity on `tensor` in forward; in backward, `loss` receives the gradient 1."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor, loss: torch.Tensor) -> torch.Tensor:
        ctx.loss_dtype = loss.dtype
        return tensor.view_as(tensor)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        return grad_output, torch.ones((), dtype=ctx.loss_dtype, device=grad_output.device)


def inject_loss(tensor: torch.Tensor, loss: torch.Tensor, scale: float) -> torch.Tensor:
    """Return `tensor`, such that backward through it also adds the gradient of `scale · loss`.

    This is how an auxiliary loss reaches the router without the training loop adding
    it to the model's loss (Fast-LLM's AuxiliaryLoss): `tensor` must lie on the path
    from the loss's inputs to the layer's output. The scale multiplies the loss outside the
    autograd Function, so a compiled graph takes it as an input (no recompile when a loss
    scaler changes it, and `dynamic=True` works).
    """
    return _InjectLoss.apply(tensor, loss * scale)
