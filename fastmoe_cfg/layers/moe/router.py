"""Routing functions: which experts each token goes to, and with which weights.

Shape legend: T tokens, E routed experts, K experts per token, G expert groups.
Pure functions of the logits, tested alone; the layer chains them (layer.py):

    scores = softmax | sigmoid (logits)                       scores_of
    experts = top-k of the selection scores                   select_experts (groups, correction bias)
              | Sinkhorn choice (training)                    sinkhorn_choice
              | (t·k + j) mod E                               balanced_routing
    weights = scores of the chosen experts, renormalised      expert_weights
    capacity: assignments beyond an expert's capacity drop    apply_capacity
"""

import math
from fractions import Fraction

import torch

from fastmoe_cfg.schemas.enums import DropPolicy, RouterScoreFunction

SINKHORN_TOLERANCE = 1e-4
SINKHORN_MAX_ITERATIONS = 1000
NORMALIZATION_EPS = 1e-20  # DeepSeek-V3's denominator guard for sigmoid scores


def upcast(tensor: torch.Tensor) -> torch.Tensor:
    """Routing math runs in float32 at least (float64 stays float64), as the reference implementations upcast."""
    return tensor.to(torch.promote_types(tensor.dtype, torch.float32))


def scores_of(logits_TE: torch.Tensor, function: RouterScoreFunction) -> torch.Tensor:
    """Expert scores in float32 at least: softmax over the experts, or an independent sigmoid per expert."""
    logits_TE = upcast(logits_TE)
    return torch.sigmoid(logits_TE) if function == RouterScoreFunction.sigmoid else logits_TE.softmax(dim=-1)


def normalized_scores(scores_TE: torch.Tensor, function: RouterScoreFunction) -> torch.Tensor:
    """Scores as a distribution over the experts (the P of the balance losses): softmax scores as they are, sigmoid ones / their sum."""
    if function == RouterScoreFunction.softmax:
        return scores_TE
    return scores_TE / (scores_TE.sum(dim=-1, keepdim=True) + NORMALIZATION_EPS)


def select_experts(selection_TE: torch.Tensor, k: int, *, groups: int = 1, groups_per_token: int | None = None) -> torch.Tensor:
    """Top-k of the selection scores [T, E] -> experts [T, K] (no gradient).

    Group-limited (`groups` > 1, DeepSeek-V3): the E experts form `groups` consecutive groups;
    a group's score is the sum of its two best selection scores; only the experts of the
    `groups_per_token` best groups stay eligible (the others are -inf, never chosen).
    """
    selection_TE = selection_TE.detach()
    if groups > 1:
        tokens, experts = selection_TE.shape
        grouped_TGX = selection_TE.view(tokens, groups, experts // groups)
        group_score_TG = grouped_TGX.topk(2, dim=-1).values.sum(dim=-1)
        kept_TG = torch.zeros_like(group_score_TG, dtype=torch.bool)
        kept_TG.scatter_(1, group_score_TG.topk(groups_per_token or groups, dim=-1).indices, True)
        selection_TE = grouped_TGX.masked_fill(~kept_TG.unsqueeze(-1), -math.inf).view(tokens, experts)
    return selection_TE.topk(k, dim=-1).indices


def expert_weights(
    logits_TE: torch.Tensor, scores_TE: torch.Tensor, experts_TK: torch.Tensor, *, function: RouterScoreFunction, normalize: bool
) -> torch.Tensor:
    """The scores of the chosen experts, divided by their sum when `normalize` (float32 at least).

    For softmax scores the renormalised top-k equals the softmax over the k chosen logits,
    which is how it is computed (Mixtral's form, exact). Sigmoid scores divide by
    sum + 1e-20 (DeepSeek-V3).
    """
    if normalize and function == RouterScoreFunction.softmax:
        return upcast(logits_TE).gather(1, experts_TK).softmax(dim=-1)
    weights_TK = scores_TE.gather(1, experts_TK)
    if normalize:
        weights_TK = weights_TK / (weights_TK.sum(dim=-1, keepdim=True) + NORMALIZATION_EPS)
    return weights_TK


def sinkhorn(logits_TE: torch.Tensor, *, tolerance: float = SINKHORN_TOLERANCE, max_iterations: int = SINKHORN_MAX_ITERATIONS) -> torch.Tensor:
    """Balanced assignment scores: Sinkhorn-Knopp on exp(logits) (Megatron-LM's sinkhorn).

    Alternately rescales the rows (tokens) and columns (experts) of cost = exp(logits) so
    that each row sums to 1/T and each column to 1/E, stopping when the mean absolute
    change of the column factors is below `tolerance` (1e-4, as Megatron-LM) or after
    `max_iterations`. Each row of exp(logits) is divided by its maximum first, for
    overflow safety; the row factors absorb that, so the result is the same.
    """
    logits_TE = upcast(logits_TE)
    cost_TE = torch.exp(logits_TE - logits_TE.amax(dim=-1, keepdim=True))
    tokens, experts = cost_TE.shape
    eps = 1e-8
    column_E = torch.ones(experts, dtype=cost_TE.dtype, device=cost_TE.device)
    for _ in range(max_iterations):
        row_T = 1 / (tokens * ((cost_TE * column_E).sum(dim=1) + eps))
        new_column_E = 1 / (experts * ((cost_TE * row_T[:, None]).sum(dim=0) + eps))
        change = (new_column_E - column_E).abs().mean()
        column_E = new_column_E
        if change <= tolerance:
            break
    return cost_TE * column_E * row_T[:, None]


def sinkhorn_choice(logits_TE: torch.Tensor, k: int) -> torch.Tensor:
    """sinkhorn routing in training (Fast-LLM / Megatron-LM): experts = top-k of sinkhorn(logits), no gradient."""
    with torch.no_grad():
        return sinkhorn(logits_TE.detach()).topk(k, dim=-1).indices


def balanced_routing(tokens: int, k: int, experts: int, *, noise: float, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """The benchmark router (NeMo's FakeBalancedGate): (weights_TK, experts_TK) whatever the router says.

    noise 0: the j-th choice of token t is expert (t·k + j) mod E, weight 1/k (perfect balance).
    noise > 0: weights = (1 - noise)/k + noise · (random weights summing to 1); choices = top-k
    of uniform noise plus a per-expert popularity bias N(0, (0.1·noise)²), so some experts
    run hot. The draws use torch's generator (a recompute replays them, as for jitter).
    """
    if noise == 0:
        experts_TK = torch.arange(tokens * k, device=device).view(tokens, k) % experts
        return torch.full((tokens, k), 1 / k, device=device, dtype=dtype), experts_TK
    raw_TK = torch.rand(tokens, k, device=device, dtype=dtype)
    weights_TK = (1 - noise) / k + noise * raw_TK / raw_TK.sum(dim=-1, keepdim=True)
    popularity_E = torch.randn(experts, device=device, dtype=dtype) * (0.1 * noise)
    experts_TK = (torch.rand(tokens, experts, device=device, dtype=dtype) + popularity_E).topk(k, dim=-1).indices
    return weights_TK, experts_TK


def expert_capacity(capacity_factor: float, tokens: int, k: int, experts: int) -> int:
    """⌈capacity_factor · T · K / E⌉, with the factor read as the decimal it was written as (1.1 = 11/10, exactly)."""
    return math.ceil(Fraction(repr(capacity_factor)) * tokens * k / experts)


def apply_capacity(experts_TK: torch.Tensor, priority_TK: torch.Tensor, *, experts: int, capacity: int, policy: DropPolicy) -> torch.Tensor:
    """Experts [T, K] with the assignments beyond each expert's `capacity` replaced by E (dropped).

    Each expert keeps its `capacity` assignments of highest `priority` (policy probability;
    ties go to the earlier token) or of the earliest tokens (policy position).
    """
    flat_N = experts_TK.reshape(-1)  # token-major: a stable sort keeps token order among equals
    if policy == DropPolicy.probability:
        order_N = (-priority_TK.detach().reshape(-1)).argsort(stable=True)
    else:
        order_N = torch.arange(flat_N.numel(), device=flat_N.device)
    order_N = order_N[flat_N[order_N].argsort(stable=True)]
    counts_E = torch.bincount(flat_N, minlength=experts)
    rank_N = torch.arange(flat_N.numel(), device=flat_N.device) - (counts_E.cumsum(0) - counts_E)[flat_N[order_N]]
    dropped_N = torch.zeros_like(flat_N, dtype=torch.bool)
    dropped_N[order_N] = rank_N >= capacity
    return flat_N.masked_fill(dropped_N, experts).view_as(experts_TK)
