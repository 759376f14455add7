"""Load-balancing loss, z-loss, jitter and statistics: hand-computed values and injected gradients."""

from __future__ import annotations

import math

import pytest
import torch

from fastmoe_cfg.layers.moe.losses import load_balancing_loss, router_entropy, z_loss
from fastmoe_cfg.layers.moe.router import expert_weights, select_experts
from fastmoe_cfg.schemas.enums import RouterScoreFunction
from tests.layers.conftest import build, forward_backward

LN2, LN4 = math.log(2), math.log(4)


def identity_router_layer(k: int, **fields):
    """H = E = 3, router weight = identity: the input rows are the logits."""
    layer = build({"type": "moe", "experts": 3, "experts_per_token": k, "intermediate_size": 2, **fields}, 3)
    with torch.no_grad():
        layer.router.weight.copy_(torch.eye(3))
    return layer


def test_hand_computed_top_1():
    # softmax([ln 2, 0, 0]) = [1/2, 1/4, 1/4]; token 2 is the same, rolled.
    # f = [1/2, 1/2, 0], P = [3/8, 3/8, 1/4]: loss = 3 · (1/2 · 3/8 + 1/2 · 3/8) = 9/8.
    # logsumexp = ln 4 for both tokens: z-loss = (ln 4)²; entropy = 1/2 ln 2 + 1/2 ln 4 = 3/2 ln 2.
    layer = identity_router_layer(1).eval()
    layer(torch.tensor([[LN2, 0, 0], [0, LN2, 0]], dtype=torch.float64))
    assert layer.stats["tokens_per_expert"].tolist() == [1, 1, 0]
    assert layer.stats["load_balancing_loss"].item() == pytest.approx(9 / 8, rel=1e-12)
    assert layer.stats["z_loss"].item() == pytest.approx(LN4**2, rel=1e-12)
    assert layer.stats["router_entropy"].item() == pytest.approx(1.5 * LN2, rel=1e-12)
    assert layer.stats["dropped_tokens"].item() == 0


def test_hand_computed_top_2():
    # softmax([ln 4, ln 2, 0]) = [4/7, 2/7, 1/7]; token 2 rolled: P = [5/14, 6/14, 3/14];
    # top-2 sets {0, 1} and {1, 2}: f = [1/2, 1, 1/2]; loss = 3 · (5/28 + 6/14 + 3/28) = 15/7.
    logits = torch.tensor([[LN4, LN2, 0], [0, LN4, LN2]], dtype=torch.float64)
    experts = select_experts(logits, 2)
    weights = expert_weights(logits, logits.softmax(-1), experts, function=RouterScoreFunction.softmax, normalize=True)
    assert experts.tolist() == [[0, 1], [1, 2]]
    torch.testing.assert_close(weights, torch.tensor([[2 / 3, 1 / 3], [2 / 3, 1 / 3]], dtype=torch.float64))
    assert load_balancing_loss(logits.softmax(-1), experts).item() == pytest.approx(15 / 7, rel=1e-12)
    assert z_loss(logits).item() == pytest.approx(math.log(7) ** 2, rel=1e-12)


def test_balanced_optimum_is_k_and_one_expert_for_all_is_e():
    uniform = torch.full((4, 4), 0.25, dtype=torch.float64)
    spread = torch.tensor([[0, 1], [2, 3], [0, 2], [1, 3]])
    assert load_balancing_loss(uniform, spread).item() == pytest.approx(2.0)
    one_hot = torch.zeros(4, 4, dtype=torch.float64)
    one_hot[:, 0] = 1
    assert load_balancing_loss(one_hot, torch.zeros(4, 1, dtype=torch.long)).item() == pytest.approx(4.0)
    assert router_entropy(uniform).item() == pytest.approx(math.log(4))


def explicit_losses(layer, x):
    """The two losses written out from NUMERICS.md (router without normalization or scales)."""
    logits = x @ layer.router.weight.T
    probs = logits.softmax(-1)
    chosen = logits.topk(layer.experts_per_token, dim=-1).indices
    fraction = torch.stack([(chosen == e).any(-1).double().mean() for e in range(logits.shape[1])])
    balance = logits.shape[1] * (fraction * probs.mean(0)).sum()
    return balance, (torch.logsumexp(logits, -1) ** 2).mean()


@pytest.mark.parametrize("implementation", ["looped", "dropless"])
def test_injected_gradients_equal_output_plus_coefficient_times_loss(implementation):
    data = {"type": "moe", "experts": 6, "experts_per_token": 2, "intermediate_size": 4, "implementation": implementation}
    with_losses = build({**data, "auxiliary_loss_coefficient": 0.3, "z_loss_coefficient": 0.05}).train()
    with_losses.aux_loss_scale = 0.5
    without = build({**data, "auxiliary_loss_coefficient": 0.0, "z_loss_coefficient": 0.0}).train()
    x = torch.randn(13, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    out, x_grad, grads = forward_backward(with_losses, x)

    x_leaf = x.clone().requires_grad_()
    plain = without(x_leaf)
    balance, z = explicit_losses(without, x_leaf)
    (plain.sum() + 0.5 * (0.3 * balance + 0.05 * z)).backward()
    torch.testing.assert_close(out, plain.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(x_grad, x_leaf.grad, rtol=1e-9, atol=1e-12)
    for name, parameter in without.named_parameters():
        expected = parameter.grad if parameter.grad is not None else torch.zeros_like(parameter)
        torch.testing.assert_close(grads[name], expected, rtol=1e-9, atol=1e-12, msg=lambda m, n=name: f"{n}: {m}")
    # And the losses really moved the router: its gradient differs from the output-only one.
    assert (grads["router.weight"] - forward_backward(without, x)[2]["router.weight"]).abs().max() > 1e-3


def test_losses_left_to_the_training_loop():
    data = {"type": "moe", "experts": 6, "experts_per_token": 2, "intermediate_size": 4}
    layer = build({**data, "auxiliary_loss_coefficient": 0.3, "z_loss_coefficient": 0.05}).train()
    layer.inject_aux_losses = False
    x = torch.randn(13, 8, dtype=torch.float64)
    out, x_grad, _ = forward_backward(layer, x)
    balance, z = explicit_losses(layer, x)
    assert layer.aux_losses["load_balancing_loss"].item() == pytest.approx(0.3 * balance.item(), rel=1e-12)
    assert layer.aux_losses["z_loss"].item() == pytest.approx(0.05 * z.item(), rel=1e-12)
    assert layer.aux_losses["z_loss"].requires_grad
    plain = build({**data, "auxiliary_loss_coefficient": 0.0}).train()
    torch.testing.assert_close(x_grad, forward_backward(plain, x)[1], rtol=1e-12, atol=1e-12)


def test_no_loss_is_injected_in_inference():
    data = {"type": "moe", "experts": 6, "experts_per_token": 2, "intermediate_size": 4, "auxiliary_loss_coefficient": 0.0}
    x = torch.randn(13, 8, dtype=torch.float64)
    reference = forward_backward(build(data).eval(), x)[1]
    lossy = build({**data, "auxiliary_loss_coefficient": 0.5, "z_loss_coefficient": 0.5, "sequence_auxiliary_loss_coefficient": 0.5}).eval()
    torch.testing.assert_close(forward_backward(lossy, x)[1], reference, rtol=0, atol=0)
    assert lossy.applied_losses == frozenset()


@pytest.mark.parametrize(
    ("fields", "applied"),
    [
        ({}, {"load_balancing_loss"}),
        ({"auxiliary_loss_coefficient": 0.0, "z_loss_coefficient": 0.1}, {"z_loss"}),
        ({"routing": "sinkhorn", "sequence_auxiliary_loss_coefficient": 0.1}, {"sequence_load_balancing_loss"}),
        ({"routing": "aux_free"}, set()),
        ({"routing": "balanced", "z_loss_coefficient": 0.1}, {"z_loss"}),
    ],
)
def test_applied_losses_name_what_reaches_the_gradient(fields, applied):
    # The other values in layer.stats are monitoring only: the gradient is that of a layer without them.
    data = {"type": "moe", "experts": 6, "experts_per_token": 2, "intermediate_size": 4, **fields}
    layer = build(data).train()
    assert layer.applied_losses == applied
    x = torch.randn(13, 8, dtype=torch.float64)
    layer.inject_aux_losses = False
    layer(x)
    assert set(layer.aux_losses) == applied and set(layer.stats) >= {"z_loss", "load_balancing_loss", "sequence_load_balancing_loss"}


def test_jitter_multiplies_the_logits_after_the_z_loss_in_training_only():
    eps = 0.5
    layer = identity_router_layer(1, jitter_eps=eps)
    x = torch.randn(64, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(11)
    noise = torch.empty(64, 3, dtype=torch.float64).uniform_(1 - eps, 1 + eps)
    jittered = x * noise
    layer.train()
    torch.manual_seed(11)
    layer(x)
    expected_choice = torch.bincount(jittered.argmax(-1), minlength=3)
    assert layer.stats["tokens_per_expert"].tolist() == expected_choice.tolist()
    assert expected_choice.tolist() != torch.bincount(x.argmax(-1), minlength=3).tolist()  # the noise mattered
    assert layer.stats["z_loss"].item() == pytest.approx(z_loss(x).item(), rel=1e-12)  # before jitter
    assert layer.stats["load_balancing_loss"].item() == pytest.approx(
        load_balancing_loss(jittered.softmax(-1), jittered.argmax(-1, keepdim=True)).item(), rel=1e-12
    )
    layer.eval()
    layer(x)
    assert layer.stats["tokens_per_expert"].tolist() == torch.bincount(x.argmax(-1), minlength=3).tolist()
