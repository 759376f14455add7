"""Routing: which experts each token goes to, and with which weights.

Shape legend in `fastmoe_cfg.layers.moe`. Pure functions of the router's logits and scores,
tested alone; one function per routing type returns (weights_TK, experts_TK):

    scores = softmax | sigmoid (logits)                       scores_of
    aux_loss: top-k of the scores (group-limited)              aux_loss_routing
    aux_free: top-k of scores + correction bias                aux_free_routing
    sinkhorn: the Sinkhorn choice in training                  sinkhorn_routing
    balanced: (t·k + j) mod E, whatever the router says        balanced_routing
    weights = scores of the chosen experts, renormalised       expert_weights
              (or SparseMixer's, one by one)                   sparsemixer_weights
    capacity: assignments beyond an expert's capacity drop     expert_capacity, apply_capacity

A masked token (mask_T False) still has a row here (a static shape); the layer gives its
choices the sentinel expert E afterwards, and Sinkhorn leaves it out of its balancing.
"""

import math

import torch

from fastmoe_cfg.schemas.enums import DropPolicy, ExpertGroupScore, RouterScoreFunction

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


def select_experts(
    selection_TE: torch.Tensor,
    k: int,
    *,
    groups: int = 1,
    groups_per_token: int | None = None,
    group_score: ExpertGroupScore | None = None,
) -> torch.Tensor:
    """Top-k of the selection scores [T, E] -> experts [T, K] (no gradient).

    Group-limited (`groups` > 1, DeepSeek-V3): the E experts form `groups` consecutive groups;
    a group's score is the sum of its two best selection scores (`group_score` top2_sum, the
    default) or its best one (max, DeepSeek-V2); only the experts of the `groups_per_token`
    best groups stay eligible (the others are -inf, never chosen).
    """
    selection_TE = selection_TE.detach()
    if groups > 1:
        tokens, experts = selection_TE.shape
        grouped_TGX = selection_TE.view(tokens, groups, experts // groups)
        if group_score == ExpertGroupScore.max:
            group_score_TG = grouped_TGX.amax(dim=-1)
        else:
            group_score_TG = grouped_TGX.topk(2, dim=-1).values.sum(dim=-1)
        kept_TG = torch.zeros_like(group_score_TG, dtype=torch.bool)
        kept_TG.scatter_(1, group_score_TG.topk(groups_per_token or groups, dim=-1).indices, True)
        selection_TE = grouped_TGX.masked_fill(~kept_TG.unsqueeze(-1), -math.inf).view(tokens, experts)
    return selection_TE.topk(k, dim=-1).indices


def expert_weights(
    logits_TE: torch.Tensor,
    scores_TE: torch.Tensor,
    experts_TK: torch.Tensor,
    *,
    function: RouterScoreFunction,
    normalize: bool,
    norm_order: float = 1.0,
    epsilon: float | None = None,
) -> torch.Tensor:
    """The scores of the chosen experts, divided by their `norm_order`-norm (1: their sum) + `epsilon` when
    `normalize` (float32 at least).

    `epsilon` None: 1e-20 for sigmoid scores (DeepSeek-V3), 0 for softmax. For softmax scores, norm 1 and no
    epsilon, the renormalised top-k equals the softmax over the k chosen logits, which is how it is computed
    (Mixtral's form, exact).
    """
    if normalize and function == RouterScoreFunction.softmax and norm_order == 1 and not epsilon:
        return upcast(logits_TE).gather(1, experts_TK).softmax(dim=-1)
    weights_TK = scores_TE.gather(1, experts_TK)
    if normalize:
        if epsilon is None:
            epsilon = NORMALIZATION_EPS if function == RouterScoreFunction.sigmoid else 0.0
        if norm_order == 1:
            denominator_TK = weights_TK.sum(dim=-1, keepdim=True)
        else:
            denominator_TK = torch.linalg.vector_norm(weights_TK, ord=norm_order, dim=-1, keepdim=True)
        weights_TK = weights_TK / (denominator_TK + epsilon)
    return weights_TK


def sparsemixer_weights(logits_TE: torch.Tensor, experts_TK: torch.Tensor, eps: float) -> torch.Tensor:
    """SparseMixer's weights in eval mode (GRIN; HF's Phi-3.5-MoE `sparsemixer`), for any k; float32 at least.

    `experts_TK` is the top-k of the logits in descending order. The weight of the i-th choice e_i is the
    softmax, at e_i, of the logits of the experts still eligible: not chosen before it, and within a relative
    gap (s_i - s_j) / max(|s_j|, s_i) <= 2·eps of its logit s_i (the others are -inf). The masks carry no
    gradient; the softmax does.
    """
    logits_TE = upcast(logits_TE)
    remaining_TE, weights = logits_TE, []
    for position in range(experts_TK.shape[1]):
        chosen_T1 = experts_TK[:, position : position + 1]
        with torch.no_grad():
            top_T1 = logits_TE.gather(1, chosen_T1)
            far_TE = (top_T1 - logits_TE) / logits_TE.abs().clamp(min=top_T1) > 2 * eps
        gates_TE = remaining_TE.masked_fill(far_TE, -math.inf).softmax(dim=-1)
        weights.append(gates_TE.gather(1, chosen_T1))
        remaining_TE = remaining_TE.scatter(1, chosen_T1, -math.inf)
    return torch.cat(weights, dim=1)


def sinkhorn(
    logits_TE: torch.Tensor,
    mask_T: torch.Tensor | None = None,
    *,
    tolerance: float = SINKHORN_TOLERANCE,
    max_iterations: int = SINKHORN_MAX_ITERATIONS,
) -> torch.Tensor:
    """Balanced assignment scores: Sinkhorn-Knopp on exp(logits) (Megatron-LM's sinkhorn).

    Alternately rescales the rows (tokens) and columns (experts) of cost = exp(logits) so
    that each row sums to 1/T and each column to 1/E, stopping when the mean absolute
    change of the column factors is below `tolerance` (1e-4, as Megatron-LM) or after
    `max_iterations`. Each row of exp(logits) is divided by its maximum first, for
    overflow safety; the row factors absorb that, so the result is the same. Masked
    tokens have cost 0 and T counts the real tokens only: the result on the real rows
    is that of the real tokens alone.
    """
    logits_TE = upcast(logits_TE)
    cost_TE = torch.exp(logits_TE - logits_TE.amax(dim=-1, keepdim=True))
    tokens, experts = cost_TE.shape
    if mask_T is not None:
        cost_TE = torch.where(mask_T.unsqueeze(1), cost_TE, 0)
        tokens = mask_T.sum().clamp(min=1)
    eps = 1e-8
    column_E = torch.ones(experts, dtype=cost_TE.dtype, device=cost_TE.device)
    for _ in range(max_iterations):
        row_T = 1 / (tokens * ((cost_TE * column_E).sum(dim=1) + eps))
        new_column_E = 1 / (experts * ((cost_TE * row_T[:, None]).sum(dim=0) + eps))
        change = (new_column_E - column_E).abs().mean()
        column_E = new_column_E
        if change <= tolerance:  # data-dependent: the one graph break of sinkhorn routing under torch.compile
            break
    return cost_TE * column_E * row_T[:, None]


def aux_loss_routing(
    logits_TE: torch.Tensor,
    scores_TE: torch.Tensor,
    *,
    k: int,
    function: RouterScoreFunction,
    normalize: bool,
    groups: int = 1,
    groups_per_token: int | None = None,
    group_score: ExpertGroupScore | None = None,
    norm_order: float = 1.0,
    epsilon: float | None = None,
    sparsemixer_eps: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k of the scores (group-limited with `groups` > 1), weighted by their scores (or by SparseMixer's
    weights with `sparsemixer_eps`)."""
    if groups > 1:
        experts_TK = select_experts(scores_TE, k, groups=groups, groups_per_token=groups_per_token, group_score=group_score)
    else:  # The scores are monotone in the logits: choose on the logits, which never tie by rounding.
        experts_TK = select_experts(logits_TE, k)
    if sparsemixer_eps is not None:
        return sparsemixer_weights(logits_TE, experts_TK, sparsemixer_eps), experts_TK
    weights_TK = expert_weights(
        logits_TE, scores_TE, experts_TK, function=function, normalize=normalize, norm_order=norm_order, epsilon=epsilon
    )
    return weights_TK, experts_TK


def aux_free_routing(
    logits_TE: torch.Tensor,
    scores_TE: torch.Tensor,
    bias_E: torch.Tensor,
    *,
    k: int,
    function: RouterScoreFunction,
    normalize: bool,
    groups: int = 1,
    groups_per_token: int | None = None,
    group_score: ExpertGroupScore | None = None,
    norm_order: float = 1.0,
    epsilon: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """DeepSeek-V3: top-k of scores + correction bias (the bias chooses only), weighted by the unbiased scores."""
    experts_TK = select_experts(scores_TE + bias_E, k, groups=groups, groups_per_token=groups_per_token, group_score=group_score)
    weights_TK = expert_weights(
        logits_TE, scores_TE, experts_TK, function=function, normalize=normalize, norm_order=norm_order, epsilon=epsilon
    )
    return weights_TK, experts_TK


def sinkhorn_routing(
    logits_TE: torch.Tensor,
    scores_TE: torch.Tensor,
    mask_T: torch.Tensor | None,
    *,
    k: int,
    training: bool,
    function: RouterScoreFunction,
    normalize: bool,
    groups: int = 1,
    groups_per_token: int | None = None,
    group_score: ExpertGroupScore | None = None,
    norm_order: float = 1.0,
    epsilon: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Training: experts = top-k of sinkhorn(logits) over the real tokens (no gradient; Fast-LLM, Megatron-LM);
    inference: top-k of the scores. Weighted by the scores."""
    normalization = {"function": function, "normalize": normalize, "norm_order": norm_order, "epsilon": epsilon}
    if not training:
        grouping = {"groups": groups, "groups_per_token": groups_per_token, "group_score": group_score}
        return aux_loss_routing(logits_TE, scores_TE, k=k, **grouping, **normalization)
    with torch.no_grad():
        experts_TK = sinkhorn(logits_TE.detach(), mask_T).topk(k, dim=-1).indices
    return expert_weights(logits_TE, scores_TE, experts_TK, **normalization), experts_TK


def balanced_routing(
    rank_T: torch.Tensor, k: int, experts: int, *, noise: float, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """The benchmark router (NeMo's FakeBalancedGate): (weights_TK, experts_TK) whatever the router says.

    `rank_T` is each token's index among the real tokens (masked tokens are left out of the count).
    noise 0: the j-th choice of token t is expert (rank_t·k + j) mod E, weight 1/k (perfect balance).
    noise > 0: weights = (1 - noise)/k + noise · (random weights summing to 1); choices = top-k
    of uniform noise plus a per-expert popularity bias N(0, (0.1·noise)²), so some experts
    run hot. The draws use torch's generator (a recompute replays them, as for jitter): the
    popularity first, then one row of uniform draws [k weights, E choice noises] per token,
    the real token of rank r taking row r, so the padding of a masked input changes nothing
    (on the CPU, whose generator fills a tensor in order).
    """
    tokens, device = rank_T.shape[0], rank_T.device
    if noise == 0:
        experts_TK = (rank_T.unsqueeze(1) * k + torch.arange(k, device=device)) % experts
        return torch.full((tokens, k), 1 / k, device=device, dtype=dtype), experts_TK
    popularity_E = torch.randn(experts, device=device, dtype=dtype) * (0.1 * noise)
    draws_TX = torch.rand(tokens, k + experts, device=device, dtype=dtype).index_select(0, rank_T)
    raw_TK, choice_TE = draws_TX[:, :k], draws_TX[:, k:]
    weights_TK = (1 - noise) / k + noise * raw_TK / raw_TK.sum(dim=-1, keepdim=True)
    experts_TK = (choice_TE + popularity_E).topk(k, dim=-1).indices
    return weights_TK, experts_TK


def expert_capacity(capacity: tuple[int, int], tokens: int | torch.Tensor, k: int, experts: int) -> int | torch.Tensor:
    """⌈p/q · T · K / E⌉ for capacity_factor = p/q, the decimal it was written as (1.1 = 11/10, exactly).

    Integer arithmetic only, so `tokens` may be a tensor (the real tokens under a mask): no host sync.
    """
    numerator, denominator = capacity
    return (numerator * tokens * k + denominator * experts - 1) // (denominator * experts)


def apply_capacity(
    experts_TK: torch.Tensor, priority_TK: torch.Tensor, *, experts: int, capacity: int | torch.Tensor, policy: DropPolicy
) -> torch.Tensor:
    """Experts [T, K] with the assignments beyond each expert's `capacity` replaced by E (dropped).

    Each expert keeps its `capacity` assignments of highest `priority` (policy probability;
    ties go to the earlier token) or of the earliest tokens (policy position). Entries
    already equal to E (masked tokens) stay E.
    """
    flat_N = experts_TK.reshape(-1)  # token-major: a stable sort keeps token order among equals
    if policy == DropPolicy.probability:
        order_N = (-priority_TK.detach().reshape(-1)).argsort(stable=True)
    else:
        order_N = torch.arange(flat_N.numel(), device=flat_N.device)
    order_N = order_N[flat_N[order_N].argsort(stable=True)]
    counts_E = torch.zeros(experts + 1, dtype=torch.int64, device=flat_N.device).index_add_(0, flat_N, torch.ones_like(flat_N))
    rank_N = torch.arange(flat_N.numel(), device=flat_N.device) - (counts_E.cumsum(0) - counts_E)[flat_N[order_N]]
    dropped_N = torch.zeros_like(flat_N, dtype=torch.bool).index_put((order_N,), rank_N >= capacity)
    return flat_N.masked_fill(dropped_N, experts).view_as(experts_TK)
