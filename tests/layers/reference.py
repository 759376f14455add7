"""A float64 reference of the layers, written from ../shared/NUMERICS.md one token at a time.

It shares no code with fastmoe_cfg.layers: it reads the layer's parameters by their
documented names (DESIGN.md section 4) and recomputes the output with plain tensor
arithmetic, so autograd through it gives reference gradients too.

The MoE contract it implements, per real token t of x [T, H] (issue 6 included):
1. r = router_normalization(x) · router_scale · router_input_scale
2. logits = r @ router.weightᵀ (+ router.bias)
3. scores = softmax(logits) or sigmoid(logits) (Spec.score_function; derived: sigmoid for sinkhorn with k = 1)
4. choice: top-k of scores (aux_loss), of scores + correction bias (aux_free), group-limited when
   expert_groups > 1 (a group's score = sum of its top-2 selection scores; the other groups' experts
   are -inf); Sinkhorn in training; balanced: expert (t·k + j) mod E_r with weight 1/k.
5. weights = scores of the chosen experts, / (their sum + 1e-20) when normalized, × routed_scaling_factor,
   × router_per_expert_scale.
6. capacity: C = ceil(capacity_factor · T · k / E_r) from the exact decimal; per expert keep the C
   assignments with the highest normalized weights (ties: earlier token) or the C earliest tokens.
7. out = Σ_kept w · s_e · expert_e(pre_norm(x)) (or s_e · expert_e(w · pre_norm(x))) + gate · shared(pre_norm(x)),
   post_norm; s_e = 1, or with load scaling (Σ_e' load_e' / E_r) / max(load_e, 1), load_e the tokens choosing e
   before capacity drops (KempnerForge's moe_gradient_scale).
8. dropout: out · keep / (1 - p) for a given 0/1 keep mask.
Jitter is given as a tensor of multiplicative noise (Spec.jitter) on the layer input [T, H] (before 1),
the router input r [T, H] (after 1), or the logits [T, E_r] (after 2, after the z-loss reads them);
with correction_bias_target logits, scores = f(logits + correction bias) and the choice is their top-k.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

import torch


def sigmoid(x: torch.Tensor) -> torch.Tensor:
    return 1 / (1 + torch.exp(-x))


def activation(name: str, x: torch.Tensor) -> torch.Tensor:
    if name == "gelu":
        return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    if name == "gelu_exact":
        return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))
    if name == "silu":
        return x / (1 + torch.exp(-x))
    if name == "relu":
        return torch.where(x > 0, x, torch.zeros_like(x))
    if name == "squared_relu":
        return torch.where(x > 0, x, torch.zeros_like(x)) ** 2
    if name == "identity":
        return x
    if name == "sigmoid":
        return sigmoid(x)
    raise ValueError(name)


def gpt_oss_glu(gate: torch.Tensor, up: torch.Tensor, limit: float) -> torch.Tensor:
    """GPT-OSS: gate = min(gate, L), up = clamp(up, -L, L), hidden = (up + 1) · gate · sigmoid(1.702 · gate)."""
    gate = torch.where(gate > limit, torch.full_like(gate, limit), gate)
    up = torch.where(up > limit, torch.full_like(up, limit), torch.where(up < -limit, torch.full_like(up, -limit), up))
    return (up + 1) * gate * sigmoid(1.702 * gate)


@dataclass
class Norm:
    kind: str  # layer_norm | rms_norm
    epsilon: float = 1e-5
    zero_centered: bool = False

    def __call__(self, x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None) -> torch.Tensor:
        """`weight` None: the weight is disabled (no scaling)."""
        n = x.shape[-1]
        if self.kind == "rms_norm":
            y = x / torch.sqrt((x * x).sum() / n + self.epsilon)
        else:
            mean = x.sum() / n
            y = (x - mean) / torch.sqrt(((x - mean) ** 2).sum() / n + self.epsilon)
        if weight is not None:
            y = y * (1 + weight if self.zero_centered else weight)
        return y if bias is None else y + bias


@dataclass
class Spec:
    """What the reference needs to know about a config (mirrors the YAML fields it tests).

    Parameters are read from the layer by name; the few things that are not parameters are
    given here: `correction_bias` is aux_free's `router_correction_bias` buffer (a copy).
    """

    activation: str = "gelu"
    gated: bool = False
    experts_per_token: int = 1
    shared_experts: int = 0
    routing: str = "aux_loss"  # aux_loss | aux_free | sinkhorn | balanced
    router_input_scale: float = 1.0
    pre_norm: Norm | None = None
    post_norm: Norm | None = None
    router_normalization: Norm | None = None
    score_function: str | None = None  # softmax | sigmoid; None: sigmoid for sinkhorn with k = 1, else softmax
    normalize: bool | None = None  # None: false for sinkhorn, else true
    routed_scaling_factor: float = 1.0
    expert_groups: int = 1
    expert_groups_per_token: int | None = None  # None: expert_groups
    correction_bias: torch.Tensor | None = None  # aux_free only; None: zeros
    router_weight_on_input: bool = False
    activation_limit: float = 7.0  # gpt_oss_glu
    capacity_factor: float | str | None = None  # read as the decimal it prints as
    drop_policy: str = "probability"  # probability | position
    jitter_target: str | None = None  # layer_input | router_input | router_logits, with jitter
    jitter: torch.Tensor | None = None  # the multiplicative noise, [T, H] or [T, E_r]
    correction_bias_target: str = "selection"  # selection | logits (aux_free)
    load_scaling: bool = False
    dropout: float = 0.0
    dropout_keep: torch.Tensor | None = None  # [T, H] 0/1, with dropout
    extra: dict = field(default_factory=dict)

    @property
    def scores(self) -> str:
        if self.score_function is not None:
            return self.score_function
        return "sigmoid" if self.routing == "sinkhorn" and self.experts_per_token == 1 else "softmax"

    @property
    def normalized(self) -> bool:
        return self.normalize if self.normalize is not None else self.routing != "sinkhorn"


def leaf_parameters(layer: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The layer's parameters as float64 leaves that require grad, by name."""
    return {name: p.detach().to(torch.float64).clone().requires_grad_() for name, p in layer.named_parameters()}


def mlp(p: dict, prefix: str, spec: Spec, x: torch.Tensor, expert: int | None = None) -> torch.Tensor:
    """One MLP on one token: layer_2(act(layer_1(x))), gate rows first when gated."""

    def get(name):
        value = p.get(f"{prefix}{name}")
        return value if value is None or expert is None else value[expert]

    h = get("layer_1.weight") @ x
    if get("layer_1.bias") is not None:
        h = h + get("layer_1.bias")
    if spec.activation == "gpt_oss_glu":
        half = h.shape[0] // 2
        a = gpt_oss_glu(h[:half], h[half:], spec.activation_limit)
    elif spec.gated:
        half = h.shape[0] // 2
        a = activation(spec.activation, h[:half]) * h[half:]
    else:
        a = activation(spec.activation, h)
    y = get("layer_2.weight") @ a
    if get("layer_2.bias") is not None:
        y = y + get("layer_2.bias")
    return y


def dense(p: dict, spec: Spec, x_TH: torch.Tensor, *, training: bool = False) -> torch.Tensor:
    rows = []
    for x in x_TH:
        if spec.pre_norm:
            x = spec.pre_norm(x, p["pre_norm.weight"], p.get("pre_norm.bias"))
        y = mlp(p, "", spec, x)
        if spec.post_norm:
            y = spec.post_norm(y, p["post_norm.weight"], p.get("post_norm.bias"))
        rows.append(y)
    return with_dropout(spec, torch.stack(rows), training)


def router_logits(p: dict, spec: Spec, x: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
    """One token's logits; `noise` multiplies the router input r (jitter_target router_input)."""
    r = x
    if spec.router_normalization:
        r = spec.router_normalization(r, p["router_normalization.weight"], p.get("router_normalization.bias"))
    if "router_scale" in p:
        r = r * p["router_scale"]
    r = r * spec.router_input_scale
    if noise is not None:
        r = r * noise
    logits = p["router.weight"] @ r
    if "router.bias" in p:
        logits = logits + p["router.bias"]
    return logits


def scores_of(spec: Spec, z: torch.Tensor) -> torch.Tensor:
    """One token's scores over the routed experts."""
    if spec.scores == "sigmoid":
        return sigmoid(z)
    e = torch.exp(z - z.max())
    return e / e.sum()


def sinkhorn_choice(logits_TE: torch.Tensor, k: int, tolerance: float = 1e-4) -> list[list[int]]:
    """Megatron-LM's Sinkhorn on exp(logits), then top-k per token (indices only)."""
    cost = torch.exp(logits_TE.detach())
    tokens, experts = cost.shape
    d1 = torch.ones(experts, dtype=cost.dtype)
    while True:
        d0 = (1 / tokens) / ((d1 * cost).sum(1) + 1e-8)
        new_d1 = (1 / experts) / ((d0[:, None] * cost).sum(0) + 1e-8)
        done = (new_d1 - d1).abs().mean() <= tolerance
        d1 = new_d1
        if done:
            break
    balanced = d1 * cost * d0[:, None]
    return [sorted(range(experts), key=lambda e: -balanced[t, e].item())[:k] for t in range(tokens)]


def top(values: list[float], k: int) -> list[int]:
    """Indices of the k largest values (stable: the lower index first among equals)."""
    return sorted(range(len(values)), key=lambda i: -values[i])[:k]


def select(spec: Spec, scores: torch.Tensor) -> list[int]:
    """aux_loss / aux_free choice of one token: top-k of scores (+ bias), group-limited."""
    experts = scores.shape[0]
    selection = [scores[e].item() for e in range(experts)]
    if spec.routing == "aux_free" and spec.correction_bias is not None and spec.correction_bias_target == "selection":
        selection = [s + b for s, b in zip(selection, spec.correction_bias.double().tolist())]
    if spec.expert_groups > 1:
        size = experts // spec.expert_groups
        group_scores = [sum(sorted(selection[g * size : (g + 1) * size], reverse=True)[:2]) for g in range(spec.expert_groups)]
        kept = top(group_scores, spec.expert_groups_per_token or spec.expert_groups)
        selection = [s if e // size in kept else -math.inf for e, s in enumerate(selection)]
    return top(selection, spec.experts_per_token)


@dataclass
class Routing:
    """The routing of T tokens: per token, the chosen experts and their weights (aligned lists)."""

    logits: torch.Tensor  # [T, E_r]
    scores: torch.Tensor  # [T, E_r]
    chosen: list[list[int]]  # the router's choice, before capacity
    normalized: list[torch.Tensor]  # per token [k]: after normalization, before scaling
    weights: list[torch.Tensor]  # per token [k]: the final weights
    kept: list[list[bool]]  # per token and slot: False when capacity dropped it
    capacity: int | None = None

    @property
    def dropped(self) -> set[tuple[int, int]]:
        """The dropped (token, expert) assignments."""
        return {(t, e) for t, (row, keep) in enumerate(zip(self.chosen, self.kept)) for e, k in zip(row, keep) if not k}

    def tokens_per_expert(self, experts: int) -> list[int]:
        counts = [0] * experts
        for row in self.chosen:
            for e in row:
                counts[e] += 1
        return counts


def capacity(spec: Spec, tokens: int, experts: int) -> int:
    return math.ceil(Fraction(str(spec.capacity_factor)) * tokens * spec.experts_per_token / experts)


def jitter_of(spec: Spec, target: str, training: bool) -> torch.Tensor | None:
    return spec.jitter if training and spec.jitter is not None and spec.jitter_target == target else None


def route(p: dict, spec: Spec, x_TH: torch.Tensor, *, training: bool = False) -> Routing:
    """The routing of x_TH (the layer input after any layer-input jitter)."""
    k = spec.experts_per_token
    noise = jitter_of(spec, "router_input", training)
    logits = torch.stack([router_logits(p, spec, x, None if noise is None else noise[t]) for t, x in enumerate(x_TH)])
    noise = jitter_of(spec, "router_logits", training)
    routed = logits if noise is None else logits * noise
    if spec.routing == "aux_free" and spec.correction_bias_target == "logits" and spec.correction_bias is not None:
        routed = routed + spec.correction_bias.double()
    tokens, experts = logits.shape
    scores = torch.stack([scores_of(spec, z) for z in routed])
    sinkhorn_experts = sinkhorn_choice(routed, k) if spec.routing == "sinkhorn" and training else None
    chosen, normalized, weights = [], [], []
    for t in range(tokens):
        s = scores[t]
        if spec.routing == "balanced":
            row = [(t * k + j) % experts for j in range(k)]
            w = torch.full((k,), 1 / k, dtype=logits.dtype)
        else:
            if spec.routing == "sinkhorn":
                row = sinkhorn_experts[t] if training else top([s[e].item() for e in range(experts)], k)
            else:
                row = select(spec, s)
            w = torch.stack([s[e] for e in row])
            if spec.normalized:
                w = w / (w.sum() + 1e-20)
        chosen.append(row)
        normalized.append(w)
        w = w * spec.routed_scaling_factor
        if "router_per_expert_scale" in p:
            w = w * torch.stack([p["router_per_expert_scale"][e] for e in row])
        weights.append(w)
    kept = [[True] * k for _ in range(tokens)]
    limit = None
    if spec.capacity_factor is not None:
        limit = capacity(spec, tokens, experts)
        for e in range(experts):
            assignments = [(t, j) for t in range(tokens) for j in range(k) if chosen[t][j] == e]
            if spec.drop_policy == "probability":
                assignments.sort(key=lambda a: (-normalized[a[0]][a[1]].item(), a[0]))
            for t, j in assignments[limit:]:
                kept[t][j] = False
    return Routing(logits, scores, chosen, normalized, weights, kept, limit)


def moe(p: dict, spec: Spec, x_TH: torch.Tensor, *, training: bool = False, routing: Routing | None = None) -> torch.Tensor:
    """The MoE layer on every token of x_TH [T, H], in float64, from NUMERICS.md."""
    noise = jitter_of(spec, "layer_input", training)
    x_TH = x_TH if noise is None else x_TH * noise
    routing = route(p, spec, x_TH, training=training) if routing is None else routing
    experts = routing.scores.shape[1]
    loads = routing.tokens_per_expert(experts)
    mean_load = sum(loads) / experts
    rows = []
    for t, x in enumerate(x_TH):
        xe = x if spec.pre_norm is None else spec.pre_norm(x, p["pre_norm.weight"], p.get("pre_norm.bias"))
        y = torch.zeros_like(x)
        for w, e, keep in zip(routing.weights[t], routing.chosen[t], routing.kept[t]):
            if not keep:
                continue
            scale = mean_load / max(loads[e], 1) if spec.load_scaling and training else 1.0
            if spec.router_weight_on_input:
                y = y + scale * mlp(p, "experts.", spec, w * xe, expert=e)
            else:
                y = y + w * scale * mlp(p, "experts.", spec, xe, expert=e)
        if spec.shared_experts:
            shared = mlp(p, "shared.", spec, xe)
            if "shared_expert_gate" in p:
                shared = shared * sigmoid(xe @ p["shared_expert_gate"])
            y = y + shared
        if spec.post_norm:
            y = spec.post_norm(y, p["post_norm.weight"], p.get("post_norm.bias"))
        rows.append(y)
    return with_dropout(spec, torch.stack(rows), training)


def hybrid(
    p: dict, dense_spec: Spec, routed_spec: Spec, x_TH: torch.Tensor, *, pre_norm: Norm | None = None, post_norm: Norm | None = None,
    training: bool = False,
) -> torch.Tensor:
    """hybrid_moe (Fast-LLM's HybridMoEMLP): post_norm(dense(x̂) + moe(x̂)), x̂ = pre_norm(x); each branch's
    parameters are named under `dense.` and `routed.`."""

    def branch(prefix: str) -> dict:
        return {name[len(prefix):]: value for name, value in p.items() if name.startswith(prefix)}

    x_hat = x_TH if pre_norm is None else torch.stack([pre_norm(x, p["pre_norm.weight"], p.get("pre_norm.bias")) for x in x_TH])
    y_TH = dense(branch("dense."), dense_spec, x_hat, training=training) + moe(branch("routed."), routed_spec, x_hat, training=training)
    return y_TH if post_norm is None else torch.stack([post_norm(y, p["post_norm.weight"], p.get("post_norm.bias")) for y in y_TH])


def with_dropout(spec: Spec, out_TH: torch.Tensor, training: bool) -> torch.Tensor:
    if not training or not spec.dropout:
        return out_TH
    return out_TH * spec.dropout_keep / (1 - spec.dropout)


def normalized_scores(routing: Routing) -> torch.Tensor:
    """[T, E_r]: each token's scores divided by their sum over all routed experts (softmax: unchanged)."""
    return torch.stack([s / s.sum() for s in routing.scores])


def load_balancing_loss(routing: Routing) -> torch.Tensor:
    """aux_loss routing: E_r · Σ_e f_e · P_e, f_e = (tokens whose choice contains e) / T, P_e = mean normalized score."""
    tokens, experts = routing.scores.shape
    counts = routing.tokens_per_expert(experts)
    probs = normalized_scores(routing)
    return experts * sum(counts[e] / tokens * probs[:, e].sum() / tokens for e in range(experts))


def sequence_loss(p: dict, spec: Spec, x: torch.Tensor, token_mask: torch.Tensor | None = None, *, training: bool = True) -> torch.Tensor:
    """DeepSeek-V3's sequence-wise balance loss (report eq. 17-20): mean over sequences s of Σ_e f_e · P_e.

    f_e = E_r / (k · T_s) · (tokens of s whose top-k of the unbiased scores over all routed experts
    contains e: no correction bias, no group limit, whatever the routing chose); P_e = mean over
    the tokens of s of the normalized scores. 2-D x is one sequence; [B, S, H] x has one per row,
    masked tokens excluded and rows without a real token skipped. The routing sees all real tokens at once.
    """
    if x.dim() == 2:
        x = x[None]
        token_mask = None if token_mask is None else token_mask[None]
    mask = torch.ones(x.shape[:-1], dtype=torch.bool) if token_mask is None else token_mask
    routing = route(p, spec, x[mask], training=training)
    probs = normalized_scores(routing)
    k = spec.experts_per_token
    experts = probs.shape[1]
    losses, start = [], 0
    for row in mask:
        n = int(row.sum())
        if n == 0:
            continue
        counts = [0] * experts
        for scores in routing.scores[start : start + n]:
            for e in top(scores.tolist(), k):
                counts[e] += 1
        mean = probs[start : start + n].sum(0) / n
        losses.append(sum(experts / (k * n) * counts[e] * mean[e] for e in range(experts)))
        start += n
    return sum(losses) / len(losses)


def choices(p: dict, spec: Spec, x_TH: torch.Tensor) -> torch.Tensor:
    """The top-k experts of each token by logit (aux_loss routing), as [T, k]."""
    logits = torch.stack([router_logits(p, spec, x) for x in x_TH])
    return logits.topk(spec.experts_per_token, dim=-1).indices
