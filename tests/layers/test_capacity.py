"""capacity_factor and drop_policy: hand-made routings where the test names every dropped assignment.

The router weight is the identity (H = E_r = 4), so each input row is its token's logits and the
scores are known by hand. C = ceil(capacity_factor · T · k / E_r), from the decimal value.
probability keeps an expert's assignments of highest normalized weight (before routed_scaling_factor
and router_per_expert_scale; ties: the earlier token), position keeps the earliest tokens. A dropped
assignment contributes nothing: the token keeps its other experts and the shared expert, unrenormalized.
"""

from __future__ import annotations

import math

import pytest
import torch

from tests.layers import reference
from tests.layers.conftest import build, forward_backward
from tests.layers.test_moe_reference import assert_same, reference_run

IMPLEMENTATIONS = ["looped", "dropless"]
NO_LOSSES = {"auxiliary_loss_coefficient": 0.0, "z_loss_coefficient": 0.0}
OFF = -4.0

# Top-2, normalized (softmax over the two chosen logits), capacity_factor 1: C = ceil(6 · 2 / 4) = 3.
#   token 0: {0: σ(1) = .731, 1: .269}      token 3: {0: σ(3) = .953, 3: .047}
#   token 1: {2: σ(2) = .881, 0: .119}      token 4: {0: .731, 1: .269} (same row as tokens 0 and 2)
#   token 2: {0: .731, 1: .269}             token 5: {1: .731, 2: .269}
# expert 0: tokens 0 (.731), 1 (.119), 2 (.731), 3 (.953), 4 (.731) -> 5 > 3
#   probability keeps 3, 0, 2 (0 and 2 win the tie with 4 by position): drops (1, 0), (4, 0)
#   position keeps 0, 1, 2: drops (3, 0), (4, 0)
# expert 1: tokens 0, 2, 4 (.269 each), 5 (.731) -> 4 > 3
#   probability keeps 5, 0, 2: drops (4, 1); position keeps 0, 2, 4: drops (5, 1)
# experts 2 (tokens 1, 5) and 3 (token 3) are under capacity.
# Under probability token 4 loses both routed experts: its output is the shared expert's alone.
TOP2 = {
    "k": 2, "normalize": True, "capacity_factor": 1.0,
    "logits": [[1, 0, OFF, OFF], [0, OFF, 2, OFF], [1, 0, OFF, OFF], [3, OFF, OFF, 0], [1, 0, OFF, OFF], [OFF, 1, 0, OFF]],
    "dropped": {"probability": {(1, 0), (4, 0), (4, 1)}, "position": {(3, 0), (4, 0), (5, 1)}},
    "loads": [5, 4, 2, 1],
}
# Top-1, raw softmax scores (normalize_expert_weights false), capacity_factor 1: C = ceil(8 · 1 / 4) = 2.
# The score of a row [a, 0, 0, 0] grows with a.
# expert 0: tokens 0 (a = 1), 1 (3), 3 (2), 4 (4): probability keeps 4, 1 (drops 0, 3); position keeps 0, 1 (drops 3, 4)
# expert 1: tokens 2 (2), 5 (1), 6 (3): probability keeps 6, 2 (drops 5); position keeps 2, 5 (drops 6)
# expert 2: token 7.
TOP1 = {
    "k": 1, "normalize": False, "capacity_factor": 1.0,
    "logits": [[1, 0, 0, 0], [3, 0, 0, 0], [0, 2, 0, 0], [2, 0, 0, 0], [4, 0, 0, 0], [0, 1, 0, 0], [0, 3, 0, 0], [0, 0, 1, 0]],
    "dropped": {"probability": {(0, 0), (3, 0), (5, 1)}, "position": {(3, 0), (4, 0), (6, 1)}},
    "loads": [4, 3, 1, 0],
}
CASES = {"top2-normalized": TOP2, "top1-raw": TOP1}
# A negative per-expert scale on expert 0: ranking by the scaled weight would reverse expert 0's order.
PER_EXPERT_SCALE = [-1.5, 0.5, 2.0, 1.0]


def hand_layer(case, policy, implementation, **fields):
    data = {
        "type": "moe", "experts": 5, "shared_experts": 1, "experts_per_token": case["k"], "intermediate_size": 3,
        "normalize_expert_weights": case["normalize"], "capacity_factor": case["capacity_factor"], "drop_policy": policy,
        "routed_scaling_factor": 2.5, "router_per_expert_scale": {"enabled": True}, "implementation": implementation,
        **NO_LOSSES, **fields,
    }
    layer = build(data, 4)
    with torch.no_grad():
        layer.router.weight.copy_(torch.eye(4))
        layer.router_per_expert_scale.copy_(torch.tensor(PER_EXPERT_SCALE))
    spec = reference.Spec(
        experts_per_token=case["k"], shared_experts=1, normalize=case["normalize"], routed_scaling_factor=2.5,
        capacity_factor=case["capacity_factor"], drop_policy=policy,
    )
    return layer, spec, torch.tensor(case["logits"], dtype=torch.float64)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("policy", ["probability", "position"])
@pytest.mark.parametrize("case", CASES)
def test_the_policy_drops_exactly_the_named_assignments(case, policy, implementation):
    case = CASES[case]
    layer, spec, x = hand_layer(case, policy, implementation)
    tokens = x.shape[0]
    routing = reference.route(reference.leaf_parameters(layer), spec, x)
    assert routing.dropped == case["dropped"][policy]  # the reference agrees with the hand analysis
    assert routing.capacity == math.ceil(tokens * case["k"] / 4)
    grad = torch.randn(tokens, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert_same(forward_backward(layer, x, grad), reference_run(layer, spec, x, grad))
    assert layer.stats["dropped_tokens"].item() == len(case["dropped"][policy])
    assert layer.stats["tokens_per_expert"].tolist() == case["loads"]  # the router's choices, before dropping
    # A different drop set would change the output: the reference with nothing dropped differs on every named token.
    undropped = reference.moe(reference.leaf_parameters(layer), reference.Spec(**{**spec.__dict__, "capacity_factor": None}), x)
    out = layer(x)
    for t in {t for t, _ in case["dropped"][policy]}:
        assert (out[t] - undropped[t]).abs().max() > 1e-6


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_a_token_that_loses_every_expert_keeps_the_shared_expert_and_passes_no_gradient_to_the_rest(implementation):
    layer, spec, x = hand_layer(TOP2, "probability", implementation)
    grad = torch.zeros(6, 4, dtype=torch.float64)
    grad[4] = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)  # only token 4, whose two assignments are dropped
    out, x_grad, grads = forward_backward(layer, x, grad)
    p = reference.leaf_parameters(layer)
    torch.testing.assert_close(out[4], reference.mlp(p, "shared.", spec, x[4]), rtol=1e-12, atol=1e-12)
    for name, value in grads.items():
        if name.startswith("shared."):
            assert value.abs().max() > 0, name
        else:
            assert torch.equal(value, torch.zeros_like(value)), name
    x4 = x[4].clone().requires_grad_()
    (reference.mlp(p, "shared.", spec, x4) * grad[4]).sum().backward()
    torch.testing.assert_close(x_grad[4], x4.grad, rtol=1e-12, atol=1e-12)
    assert torch.equal(x_grad[:4], torch.zeros_like(x_grad[:4])) and torch.equal(x_grad[5], torch.zeros_like(x_grad[5]))


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("policy", ["probability", "position"])
def test_capacity_factor_is_the_decimal_written(policy, implementation):
    """1.1 · 25 · 2 / 5 = 11 exactly; float64 gives 11.000000000000002 (ceiling 12) in most orders.

    All 25 tokens choose experts 0 and 1 (top-2 of 5): each keeps 11, 14 + 14 = 28 assignments drop.
    """
    assert [math.ceil(v) for v in (1.1 * 25 * 2 / 5, 1.1 * (25 * 2) / 5, 25 * 2 * 1.1 / 5)] == [12, 12, 12]
    data = {
        "type": "moe", "experts": 5, "experts_per_token": 2, "intermediate_size": 3, "capacity_factor": 1.1, "drop_policy": policy,
        "implementation": implementation, **NO_LOSSES,
    }
    layer = build(data, 5)
    with torch.no_grad():
        layer.router.weight.copy_(torch.eye(5))
    generator = torch.Generator().manual_seed(0)
    x = torch.full((25, 5), -1.0, dtype=torch.float64)
    x[:, 0] = 2 + torch.rand(25, generator=generator, dtype=torch.float64)
    x[:, 1] = 1 + torch.rand(25, generator=generator, dtype=torch.float64)
    spec = reference.Spec(experts_per_token=2, capacity_factor=1.1, drop_policy=policy)
    routing = reference.route(reference.leaf_parameters(layer), spec, x)
    assert routing.capacity == 11 and len(routing.dropped) == 28
    if policy == "position":
        assert routing.dropped == {(t, e) for t in range(11, 25) for e in (0, 1)}
    grad = torch.randn(25, 5, dtype=torch.float64, generator=generator)
    assert_same(forward_backward(layer, x, grad), reference_run(layer, spec, x, grad))
    assert layer.stats["dropped_tokens"].item() == 28
    assert layer.stats["tokens_per_expert"].tolist() == [25, 25, 0, 0, 0]


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("policy", ["probability", "position"])
def test_ample_capacity_equals_dropless(policy, implementation, training):
    data = {
        "type": "moe", "experts": 7, "shared_experts": 1, "experts_per_token": 2, "intermediate_size": 4, "gated": True,
        "router_score_function": "sigmoid", "implementation": implementation, "auxiliary_loss_coefficient": 0.1,
    }
    dropless = build(data).train(training)
    capped = build({**data, "capacity_factor": 6.0, "drop_policy": policy}).train(training)  # C = T · k: nothing can drop
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(17, 8, dtype=torch.float64, generator=generator)
    grad = torch.randn(17, 8, dtype=torch.float64, generator=generator)
    expected, actual = forward_backward(dropless, x, grad), forward_backward(capped, x, grad)
    torch.testing.assert_close(actual[0], expected[0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(actual[1], expected[1], rtol=1e-12, atol=1e-12)
    for name in expected[2]:
        torch.testing.assert_close(actual[2][name], expected[2][name], rtol=1e-12, atol=1e-12, msg=lambda m, n=name: f"{n}: {m}")
    assert capped.stats["dropped_tokens"].item() == 0


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("policy", ["probability", "position"])
def test_capacity_counts_real_tokens_only(policy, implementation):
    data = {
        "type": "moe", "experts": 4, "experts_per_token": 2, "intermediate_size": 4, "capacity_factor": 0.5, "drop_policy": policy,
        "implementation": implementation, **NO_LOSSES,
    }
    layer = build(data)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(3, 7, 8, dtype=torch.float64, generator=generator)
    mask = torch.rand(3, 7, generator=generator) > 0.4
    spec = reference.Spec(experts_per_token=2, capacity_factor=0.5, drop_policy=policy)
    routing = reference.route(reference.leaf_parameters(layer), spec, x[mask])
    assert routing.dropped, "the case should drop something"
    out = layer(x, token_mask=mask)
    assert layer.stats["dropped_tokens"].item() == len(routing.dropped)
    torch.testing.assert_close(out[mask], reference.moe(reference.leaf_parameters(layer), spec, x[mask]).detach(), rtol=1e-9, atol=1e-10)
