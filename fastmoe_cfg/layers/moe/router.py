"""Routing functions: which experts each token goes to, and with which weights.

Shape legend: T tokens, E routed experts, K experts per token. Pure functions of
the logits, tested alone; the layer chains them (layer.py).
"""

import torch

SINKHORN_TOLERANCE = 1e-4
SINKHORN_MAX_ITERATIONS = 1000


def upcast(tensor: torch.Tensor) -> torch.Tensor:
    """Routing math runs in float32 at least (float64 stays float64), as the reference implementations upcast."""
    return tensor.to(torch.promote_types(tensor.dtype, torch.float32))


def topk_softmax(logits_TE: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """aux_loss routing: the top-k logits, weights = softmax over the k selected logits (float32 at least).

    Equal to softmax over all experts followed by renormalisation of the top k (Mixtral).
    Returns (weights_TK, experts_TK), experts in descending order of logit.
    """
    top_logits_TK, experts_TK = logits_TE.topk(k, dim=-1)
    return upcast(top_logits_TK).softmax(dim=-1), experts_TK


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


def sinkhorn_routing(logits_TE: torch.Tensor, k: int, *, training: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """sinkhorn routing (Fast-LLM / Megatron-LM).

    Training: experts = top-k of sinkhorn(logits) (no gradient through the choice);
    weights = softmax(logits) (sigmoid when k = 1) at those experts, not renormalised.
    Inference: top-k of softmax(logits) (sigmoid when k = 1).
    Returns (weights_TK in float32 at least, experts_TK).
    """
    logits_TE = upcast(logits_TE)
    scores_TE = torch.sigmoid(logits_TE) if k == 1 else logits_TE.softmax(dim=-1)
    if not training:
        return scores_TE.topk(k, dim=-1)
    with torch.no_grad():
        experts_TK = sinkhorn(logits_TE).topk(k, dim=-1).indices
    return scores_TE.gather(1, experts_TK), experts_TK
