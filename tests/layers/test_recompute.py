"""recompute_level (performance tier): same outputs and gradients, less memory saved for backward."""

from __future__ import annotations

import pytest
import torch

from tests.layers.conftest import build, forward_backward

LEVELS = ["none", "activation", "activation_and_input", "full"]
MOE = {
    "type": "moe", "experts": 8, "experts_per_token": 2, "shared_experts": 1, "intermediate_size": 64, "gated": True,
    "pre_norm": {"type": "rms_norm"}, "post_norm": {}, "auxiliary_loss_coefficient": 0.1, "z_loss_coefficient": 0.01,
    "jitter_eps": 0.1,
}
DENSE = {"type": "mlp", "intermediate_size": 64, "gated": True, "pre_norm": {"type": "rms_norm"}, "post_norm": {}}


def saved_bytes(layer, x) -> int:
    """Bytes of the distinct storages that autograd keeps for backward, parameters excluded."""
    parameters = {p.untyped_storage().data_ptr() for p in layer.parameters()}
    saved: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        layer(x)
    return sum(saved.values())


def run(data, level, implementation=None, x=None):
    data = {**data, "recompute_level": level, **({"implementation": implementation} if implementation else {})}
    layer = build(data, 32, dtype=torch.float32)
    layer.train()
    torch.manual_seed(7)  # the jitter noise
    result = forward_backward(layer, x)
    return layer, result


@pytest.mark.parametrize("data", [MOE, DENSE], ids=["moe", "mlp"])
@pytest.mark.parametrize("implementation", ["looped", "dropless"])
def test_every_level_gives_the_same_outputs_and_gradients(data, implementation):
    x = torch.randn(2, 37, 32, generator=torch.Generator().manual_seed(0))
    _, (out, x_grad, grads) = run(data, "none", implementation if data is MOE else None, x)
    for level in LEVELS[1:]:
        _, (out_l, x_grad_l, grads_l) = run(data, level, implementation if data is MOE else None, x)
        torch.testing.assert_close(out_l, out, rtol=0, atol=0)
        torch.testing.assert_close(x_grad_l, x_grad, rtol=1e-6, atol=1e-7)
        for name in grads:
            torch.testing.assert_close(grads_l[name], grads[name], rtol=1e-6, atol=1e-7, msg=lambda m, n=name: f"{level} {n}: {m}")


@pytest.mark.parametrize("data", [MOE, DENSE], ids=["moe", "mlp"])
@pytest.mark.parametrize("implementation", ["looped", "dropless"])
def test_each_level_saves_clearly_less(data, implementation):
    x = torch.randn(512, 32, generator=torch.Generator().manual_seed(0), requires_grad=True)
    sizes = {}
    for level in LEVELS:
        layer = build({**data, "recompute_level": level, "implementation": implementation} if data is MOE else {**data, "recompute_level": level}, 32, dtype=torch.float32)
        layer.train()
        sizes[level] = saved_bytes(layer, x)
    # Each level keeps at most 85% of the previous one; full keeps only the input.
    for lower, higher in zip(LEVELS, LEVELS[1:]):
        assert sizes[higher] < 0.85 * sizes[lower], sizes
    assert sizes["full"] == x.numel() * 4, sizes


def test_full_recompute_records_statistics_once():
    layer = build({**MOE, "recompute_level": "full"}, 32, dtype=torch.float32)
    layer.train()
    x = torch.randn(40, 32, requires_grad=True)
    layer(x).sum().backward()
    stats = layer.stats
    layer.zero_grad()
    out = layer(x)
    stats = layer.stats
    out.sum().backward()  # re-runs the forward inside backward
    assert layer.stats is stats


def test_full_recompute_with_losses_left_to_the_loop_keeps_the_first_forward_losses():
    layer = build({**MOE, "recompute_level": "full"}, 32, dtype=torch.float32)
    layer.train()
    layer.inject_aux_losses = False
    out = layer(torch.randn(40, 32))
    losses = dict(layer.aux_losses)
    (out.sum() + sum(losses.values())).backward()
    assert layer.aux_losses.keys() == {"z_loss", "load_balancing_loss"}
    assert all(layer.aux_losses[name] is losses[name] for name in losses)
