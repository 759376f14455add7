"""token_mask (DESIGN.md section 4): a masked token is not routed, not counted, and gets zero output and gradient."""

from __future__ import annotations

import pytest
import torch

from tests.layers.conftest import build, forward_backward

MOE = {
    "type": "moe", "experts": 6, "experts_per_token": 2, "intermediate_size": 8, "shared_experts": 1,
    "auxiliary_loss_coefficient": 0.1, "z_loss_coefficient": 0.1, "post_norm": {},
}
DENSE = {"type": "mlp", "intermediate_size": 8, "post_norm": {}}


@pytest.mark.parametrize("implementation", ["looped", "dropless"])
@pytest.mark.parametrize("data", [MOE, DENSE], ids=["moe", "mlp"])
def test_masked_tokens_are_as_if_absent(data, implementation):
    layer = build({**data, "implementation": implementation} if data is MOE else data).train()
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(3, 7, 8, dtype=torch.float64, generator=generator)
    grad = torch.randn(3, 7, 8, dtype=torch.float64, generator=generator)
    mask = torch.rand(3, 7, generator=generator) > 0.4
    x[~mask] = float("nan")  # padding may hold anything
    out, x_grad, grads = forward_backward(layer, x, grad, token_mask=mask)
    stats = dict(getattr(layer, "stats", {}))

    real_out, real_x_grad, real_grads = forward_backward(layer, x[mask], grad[mask])
    assert torch.equal(out[~mask], torch.zeros_like(out[~mask]))
    assert torch.equal(x_grad[~mask], torch.zeros_like(x_grad[~mask]))
    torch.testing.assert_close(out[mask], real_out, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(x_grad[mask], real_x_grad, rtol=1e-12, atol=1e-12)
    for name in grads:
        torch.testing.assert_close(grads[name], real_grads[name], rtol=1e-12, atol=1e-12)
    if data is MOE:
        assert stats["tokens_per_expert"].sum().item() == 2 * mask.sum().item()
        for name in ("load_balancing_loss", "z_loss", "router_entropy"):
            assert stats[name].item() == pytest.approx(layer.stats[name].item(), rel=1e-12)


@pytest.mark.parametrize("routing", ["aux_loss", "sinkhorn", "aux_free", "balanced"])
def test_every_token_masked(routing):
    extra = {"routing": routing, "sequence_auxiliary_loss_coefficient": 0.1, "capacity_factor": 1.0}
    if routing != "aux_loss":
        extra["auxiliary_loss_coefficient"] = 0.0  # a load-balancing loss only applies with aux_loss
    layer = build({**MOE, **extra}).train()
    x = torch.randn(2, 3, 8, dtype=torch.float64, requires_grad=True)
    out = layer(x, token_mask=torch.zeros(2, 3, dtype=torch.bool))
    out.sum().backward()
    assert torch.equal(out, torch.zeros_like(out)) and torch.equal(x.grad, torch.zeros_like(x))
    assert layer.stats["tokens_per_expert"].tolist() == [0] * 5
    # Without tokens every loss and statistic is 0, never 0/0.
    for name in ("dropped_tokens", "load_balancing_loss", "sequence_load_balancing_loss", "z_loss", "router_entropy"):
        assert layer.stats[name].item() == 0 and not layer.stats[name].signbit(), name


@pytest.mark.parametrize(
    ("x_shape", "mask", "message"),
    [
        ((4, 8), torch.ones(4, dtype=torch.int64), "token_mask must be a bool tensor of shape [4], got torch.int64 of shape [4]"),
        ((2, 4, 8), torch.ones(8, dtype=torch.bool), "token_mask must be a bool tensor of shape [2, 4], got torch.bool of shape [8]"),
        ((4, 9), None, "expected input of shape [tokens, 8] or [batch, seq, 8], got [4, 9]"),
        ((8,), None, "expected input of shape [tokens, 8] or [batch, seq, 8], got [8]"),
    ],
)
def test_bad_shapes_are_clear_errors(x_shape, mask, message):
    layer = build(MOE)
    with pytest.raises(ValueError) as info:
        layer(torch.randn(*x_shape, dtype=torch.float64), token_mask=mask)
    assert str(info.value) == message
