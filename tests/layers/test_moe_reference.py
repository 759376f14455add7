"""The MoE and dense layers against the float64 reference of NUMERICS.md (tests/layers/reference.py).

Outputs, input gradients and every parameter's gradient, for each routing variant,
activation and implementation. Inputs are random normal in float64: routing ties
have probability zero, and the Sinkhorn case checks its own margin.
"""

from __future__ import annotations

import pytest
import torch

from tests.layers import reference
from tests.layers.conftest import build, forward_backward

ACTIVATIONS = ["gelu", "gelu_exact", "silu", "relu", "squared_relu", "identity"]
IMPLEMENTATIONS = ["looped", "dropless"]
# float64 throughout: the layer and the reference differ only by summation order.
TOLERANCE = {"rtol": 1e-9, "atol": 1e-10}


def reference_run(layer, spec, x, grad, *, training=False, function=reference.moe):
    params = reference.leaf_parameters(layer)
    x = x.detach().clone().requires_grad_()
    out = function(params, spec, x, training=training)
    (out * grad).sum().backward()
    return out.detach(), x.grad, {name: (p.grad if p.grad is not None else torch.zeros_like(p)) for name, p in params.items()}


def assert_same(actual, expected):
    out, x_grad, grads = actual
    ref_out, ref_x_grad, ref_grads = expected
    torch.testing.assert_close(out, ref_out, **TOLERANCE)
    torch.testing.assert_close(x_grad, ref_x_grad, **TOLERANCE)
    assert grads.keys() == ref_grads.keys()
    for name in grads:
        torch.testing.assert_close(grads[name], ref_grads[name], **TOLERANCE, msg=lambda m, name=name: f"{name}: {m}")


def compare(data, spec, *, tokens=11, hidden=8, training=False, seed=0):
    layer = build(data, hidden, seed=seed)
    layer.train(training)
    generator = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(tokens, hidden, dtype=torch.float64, generator=generator)
    grad = torch.randn(tokens, hidden, dtype=torch.float64, generator=generator)
    function = reference.moe if data.get("type") == "moe" else reference.dense
    assert_same(forward_backward(layer, x, grad), reference_run(layer, spec, x, grad, training=training, function=function))
    return layer


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("gated", [False, True], ids=["plain", "gated"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_aux_loss_routing_each_activation(activation, gated, implementation):
    data = {
        "type": "moe", "experts": 5, "experts_per_token": 2, "intermediate_size": 6, "gated": gated,
        "activation": activation, "implementation": implementation, "auxiliary_loss_coefficient": 0.0,
    }
    compare(data, reference.Spec(activation=activation, gated=gated, experts_per_token=2))


@pytest.mark.parametrize("gated", [False, True], ids=["plain", "gated"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_dense_mlp_each_activation(activation, gated):
    data = {"type": "mlp", "intermediate_size": 6, "gated": gated, "activation": activation}
    compare(data, reference.Spec(activation=activation, gated=gated))


def test_derived_activation_is_silu_when_gated_else_gelu():
    torch.manual_seed(0)
    x = torch.randn(5, 8, dtype=torch.float64)
    for gated, expected in ((True, "silu"), (False, "gelu")):
        layer = build({"type": "moe", "experts": 3, "intermediate_size": 4, "gated": gated})
        params = reference.leaf_parameters(layer)
        spec = reference.Spec(activation=expected, gated=gated)
        torch.testing.assert_close(layer(x), reference.moe(params, spec, x), **TOLERANCE)
        other = reference.moe(params, reference.Spec(activation="gelu" if gated else "silu", gated=gated), x)
        assert (layer(x) - other).abs().max() > 1e-3


# Every architecture field of the seed table at once, non-default: norms (both kinds, zero-centred),
# router normalization, router scales, input scale, shared experts, biases.
FULL = {
    "type": "moe", "experts": 7, "experts_per_token": 2, "shared_experts": 2, "intermediate_size": 5, "gated": True,
    "activation": "gelu", "pre_norm": {"type": "rms_norm", "epsilon": 1e-3}, "post_norm": {"type": "layer_norm", "zero_centered": True},
    "router_normalization": {"type": "layer_norm"}, "router_scale": {"enabled": True}, "router_input_scale": 8**-0.5,
    "router_per_expert_scale": {"enabled": True}, "auxiliary_loss_coefficient": 0.0,
}
FULL_SPEC = reference.Spec(
    activation="gelu", gated=True, experts_per_token=2, shared_experts=2, router_input_scale=8**-0.5,
    pre_norm=reference.Norm("rms_norm", epsilon=1e-3), post_norm=reference.Norm("layer_norm", zero_centered=True),
    router_normalization=reference.Norm("layer_norm"),
)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_every_architecture_field_against_reference(implementation):
    layer = compare({**FULL, "implementation": implementation}, FULL_SPEC)
    names = dict(layer.named_parameters())
    assert names["router.weight"].shape == (5, 8)  # experts - shared_experts routed experts
    assert names["experts.layer_1.weight"].shape == (5, 10, 8)  # [E_r, 2·I, H], gate rows first
    assert names["experts.layer_2.weight"].shape == (5, 8, 5)
    assert names["shared.layer_1.weight"].shape == (20, 8)  # 2 shared experts of width 5, gated
    assert names["router_scale"].shape == (8,) and names["router_per_expert_scale"].shape == (5,)


@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_sinkhorn_routing(k, training, implementation):
    data = {
        "type": "moe", "experts": 4, "experts_per_token": k, "intermediate_size": 4, "routing": "sinkhorn",
        "implementation": implementation, "gated": True,
    }
    spec = reference.Spec(activation="silu", gated=True, experts_per_token=k, routing="sinkhorn")
    compare(data, spec, tokens=9, training=training, seed=3)


def test_sinkhorn_training_spreads_tokens_that_top_k_sends_to_one_expert():
    """With a router that prefers expert 0 for every token, inference top-1 sends all 64 there; Sinkhorn spreads them."""
    layer = build({"type": "moe", "experts": 4, "experts_per_token": 1, "intermediate_size": 4, "routing": "sinkhorn"}, seed=1)
    with torch.no_grad():
        layer.router.weight[0, 0] = 20.0
    x = torch.randn(64, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x[:, 0] = x[:, 0].abs() + 1
    layer.eval()
    layer(x)
    assert layer.stats["tokens_per_expert"].tolist() == [64, 0, 0, 0]
    layer.train()
    layer(x)
    loads = layer.stats["tokens_per_expert"]
    assert loads.sum() == 64 and loads.max() <= 32, loads.tolist()


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_three_dimensional_input_is_tokens_in_order(implementation):
    layer = build({**FULL, "implementation": implementation})
    x = torch.randn(3, 4, 8, dtype=torch.float64)
    torch.testing.assert_close(layer(x), layer(x.reshape(12, 8)).reshape(3, 4, 8), **TOLERANCE)
