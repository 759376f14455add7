"""The weight options of DBRX, LFM2-MoE and Phi-3.5-MoE against a float64 reference written one token at a time:
expert_weights_norm_order (the p-norm of normalize_expert_weights), expert_weights_epsilon (added to its
denominator) and sparsemixer_eps (SparseMixer's eval-mode weights). The weight functions alone (values, and the
gradients of SparseMixer's weights), then whole layers' outputs at rtol 1e-9 (looped and dropless)."""

from __future__ import annotations

import math

import pytest
import torch

from fastmoe_cfg.layers.moe.router import expert_weights, sparsemixer_weights
from fastmoe_cfg.schemas.enums import RouterScoreFunction
from tests.layers.conftest import build, forward_backward

SOFTMAX, SIGMOID = RouterScoreFunction.softmax, RouterScoreFunction.sigmoid


def reference_weights(logits: list[float], chosen: list[int], *, sigmoid: bool, order: float, epsilon: float) -> list[float]:
    """One token: the chosen scores / ((Σ w^p)^(1/p) + epsilon)."""
    if sigmoid:
        scores = [1 / (1 + math.exp(-value)) for value in logits]
    else:
        top = max(logits)
        total = sum(math.exp(value - top) for value in logits)
        scores = [math.exp(value - top) / total for value in logits]
    picked = [scores[e] for e in chosen]
    norm = sum(w**order for w in picked) ** (1 / order)
    return [w / (norm + epsilon) for w in picked]


def reference_sparsemixer(logits: list[float], k: int, eps: float) -> tuple[list[int], list[float]]:
    """One token, HF's sparsemixer in eval mode generalised to k: the i-th choice is the best expert not yet chosen;
    its weight is exp(s_i) / Σ exp(s_j) over the experts not yet chosen with (s_i - s_j) / max(|s_j|, s_i) <= 2·eps."""
    chosen: list[int] = []
    weights: list[float] = []
    for _ in range(k):
        left = [j for j in range(len(logits)) if j not in chosen]
        best = max(left, key=lambda j: logits[j])
        top = logits[best]
        kept = [j for j in left if not (top - logits[j]) / max(abs(logits[j]), top) > 2 * eps]
        weights.append(math.exp(top) / sum(math.exp(logits[j]) for j in kept))
        chosen.append(best)
    return chosen, weights


@pytest.mark.parametrize("function", [SOFTMAX, SIGMOID])
@pytest.mark.parametrize("order, epsilon", [(1.0, None), (2.0, None), (0.5, None), (1.0, 1e-2), (3.0, 0.25)])
def test_expert_weights_norm_order_and_epsilon(function, order, epsilon):
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(9, 6, dtype=torch.float64, generator=generator)
    scores = logits.softmax(-1) if function == SOFTMAX else logits.sigmoid()
    experts = logits.topk(3, dim=-1).indices
    ours = expert_weights(logits, scores, experts, function=function, normalize=True, norm_order=order, epsilon=epsilon)
    default = 1e-20 if function == SIGMOID else 0.0
    for t in range(9):
        expected = reference_weights(logits[t].tolist(), experts[t].tolist(), sigmoid=function == SIGMOID, order=order, epsilon=default if epsilon is None else epsilon)
        torch.testing.assert_close(ours[t], torch.tensor(expected, dtype=torch.float64), rtol=1e-12, atol=0)


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("eps", [0.0, 0.01, 0.3, 10.0])
def test_sparsemixer_weights_and_gradients(k, eps):
    """Logits of both signs (the relative gap divides by max(|s_j|, s_i)); gradients through the kept softmaxes."""
    generator = torch.Generator().manual_seed(k)
    logits = (torch.randn(13, 7, dtype=torch.float64, generator=generator) * 2).requires_grad_()
    experts = logits.detach().topk(k, dim=-1).indices
    ours = sparsemixer_weights(logits, experts, eps)
    upstream = torch.randn(13, k, dtype=torch.float64, generator=generator)
    (grad,) = torch.autograd.grad((ours * upstream).sum(), logits)
    expected_grad = torch.zeros_like(logits)
    for t in range(13):
        chosen, expected = reference_sparsemixer(logits[t].tolist(), k, eps)
        assert experts[t].tolist() == chosen
        torch.testing.assert_close(ours[t].detach(), torch.tensor(expected, dtype=torch.float64), rtol=1e-12, atol=0)
        # d w_i / d s_j = w_i · (δ_ij - p_j) over the kept experts j of choice i (p: that softmax), 0 elsewhere
        row = logits[t].tolist()
        for position, (e, w) in enumerate(zip(chosen, expected)):
            left = [j for j in range(len(row)) if j not in chosen[:position]]
            kept = [j for j in left if not (row[e] - row[j]) / max(abs(row[j]), row[e]) > 2 * eps]
            total = sum(math.exp(row[j]) for j in kept)
            for j in kept:
                expected_grad[t, j] += upstream[t, position] * w * ((j == e) - math.exp(row[j]) / total)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-10, atol=1e-14)


def test_sparsemixer_with_a_huge_eps_is_the_softmax_over_the_experts_left():
    """eps large: nothing is masked; the first weight is the full softmax's, the second the softmax without the first."""
    logits = torch.randn(5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    experts = logits.topk(2, dim=-1).indices
    weights = sparsemixer_weights(logits, experts, 1e9)
    first = logits.softmax(-1).gather(1, experts[:, :1])
    second = logits.scatter(1, experts[:, :1], -math.inf).softmax(-1).gather(1, experts[:, 1:])
    torch.testing.assert_close(weights, torch.cat([first, second], 1), rtol=1e-12, atol=0)


def manual_layer(layer, x: torch.Tensor, weights_of) -> torch.Tensor:
    """Σ_k w_k · expert_k(x) per token, gated silu experts, from the layer's parameters (float64)."""
    logits = x @ layer.router.weight.T
    k = layer.config.experts_per_token
    rows = []
    for t in range(x.shape[0]):
        chosen, weights = weights_of(logits[t], k)
        out = torch.zeros_like(x[t])
        for e, w in zip(chosen, weights):
            gate, up = (layer.experts.layer_1.weight[e] @ x[t]).chunk(2)
            out = out + w * (layer.experts.layer_2.weight[e] @ (torch.nn.functional.silu(gate) * up))
        rows.append(out)
    return torch.stack(rows)


OPTIONS = {
    "p-norm 2 (DBRX)": ({"expert_weights_norm_order": 2.0}, "norm"),
    "epsilon (LFM2-MoE)": ({"router_score_function": "sigmoid", "expert_weights_epsilon": 0.1}, "epsilon"),
    "sparsemixer (Phi-3.5-MoE)": ({"sparsemixer_eps": 0.05}, "sparsemixer"),
}


@pytest.mark.parametrize("implementation", ["looped", "dropless"])
@pytest.mark.parametrize("name", list(OPTIONS))
def test_layers_with_each_option_against_the_reference(name, implementation):
    extra, kind = OPTIONS[name]
    data = {
        "type": "moe", "experts": 6, "experts_per_token": 2, "gated": True, "add_linear_biases": False, "implementation": implementation,
        "auxiliary_loss_coefficient": 0.0, **extra,
    }
    layer = build(data).eval()

    def weights_of(row, k):
        values = row.tolist()
        if kind == "sparsemixer":
            chosen, weights = reference_sparsemixer(values, k, 0.05)
        else:
            chosen = row.topk(k).indices.tolist()
            sigmoid = kind == "epsilon"
            weights = reference_weights(values, chosen, sigmoid=sigmoid, order=2.0 if kind == "norm" else 1.0, epsilon=0.1 if sigmoid else 0.0)
        return chosen, weights

    x = torch.randn(11, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    out, _, _ = forward_backward(layer, x)
    with torch.no_grad():
        torch.testing.assert_close(out, manual_layer(layer, x, weights_of), rtol=1e-9, atol=1e-12)
