"""aux_free balancing: the correction bias update, by hand, automatic and under recompute (training: test_training.py).

update_bias() adds bias_update_rate · sign(mean_e load - load_e) to `router_correction_bias`, load =
the router's choices per expert over the training forwards since the last update (then reset; no-op
when nothing was counted). automatic_bias_update does it at the end of every training forward, never
inside the recompute of recompute_level full, which must route as the original forward did.
"""

from __future__ import annotations

import pytest
import torch

from tests.layers import reference
from tests.layers.conftest import build, forward_backward
from tests.layers.test_moe_reference import assert_same, reference_run

NO_LOSSES = {"auxiliary_loss_coefficient": 0.0, "z_loss_coefficient": 0.0}
OFF = -4.0
# Identity router (H = E_r = 4): rows are logits. sigmoid(4) - 1/2 > sigmoid(-4) + 1/2, so biases of
# size <= 1/2 never change these choices.
X1 = torch.tensor([[4, OFF, OFF, OFF], [4, OFF, OFF, OFF], [4, OFF, OFF, OFF], [OFF, 4, OFF, OFF]], dtype=torch.float64)  # load [3, 1, 0, 0]
X2 = torch.tensor([[OFF, OFF, 4, OFF], [OFF, OFF, OFF, 4], [OFF, OFF, OFF, 4], [OFF, OFF, OFF, 4]], dtype=torch.float64)  # load [0, 0, 1, 3]


def hand_layer(**fields):
    data = {
        "type": "moe", "experts": 4, "experts_per_token": 1, "intermediate_size": 2, "routing": "aux_free",
        "router_score_function": "sigmoid", "bias_update_rate": 0.25, **NO_LOSSES, **fields,
    }
    layer = build(data, 4).train()
    with torch.no_grad():
        layer.router.weight.copy_(torch.eye(4))
    return layer


def bias_of(layer) -> list[float]:
    bias = dict(layer.named_buffers())["router_correction_bias"]
    assert bias.dtype == torch.float32 and not bias.requires_grad
    return bias.tolist()


def test_update_bias_by_hand():
    layer = hand_layer()
    assert bias_of(layer) == [0, 0, 0, 0]
    layer(X1)
    assert layer.stats["tokens_per_expert"].tolist() == [3, 1, 0, 0]
    assert bias_of(layer) == [0, 0, 0, 0]  # manual mode: the forward does not update
    layer.update_bias()  # mean 1: sign(1 - [3, 1, 0, 0]) = [-1, 0, 1, 1]
    assert bias_of(layer) == [-0.25, 0, 0.25, 0.25]


def test_update_bias_accumulates_forwards_resets_and_ignores_inference():
    layer = hand_layer()
    layer(X1)
    layer(X2)
    layer.update_bias()  # load [3, 1, 1, 3], mean 2: sign = [-1, 1, 1, -1]
    assert bias_of(layer) == [-0.25, 0.25, 0.25, -0.25]
    layer.update_bias()  # nothing counted since: no-op
    assert bias_of(layer) == [-0.25, 0.25, 0.25, -0.25]
    layer.eval()
    layer(X1)
    layer.update_bias()  # an inference forward is not counted
    assert bias_of(layer) == [-0.25, 0.25, 0.25, -0.25]
    layer.train()
    layer(X1)
    layer.update_bias()  # [3, 1, 0, 0] alone
    assert bias_of(layer) == [-0.5, 0.25, 0.5, 0]


def test_update_bias_with_no_forward_and_default_rate():
    layer = hand_layer(bias_update_rate=None)  # derived: 1e-3
    layer.update_bias()
    assert bias_of(layer) == [0, 0, 0, 0]
    layer(X1)
    layer.update_bias()
    expected = torch.tensor([-1e-3, 0, 1e-3, 1e-3], dtype=torch.float32)
    assert torch.equal(dict(layer.named_buffers())["router_correction_bias"], expected)


def test_masked_tokens_are_not_counted():
    layer = hand_layer()
    x = torch.stack([X1, X2])  # [2, 4, 4]
    mask = torch.tensor([[True, True, True, True], [False, False, False, False]])
    layer(x, token_mask=mask)
    layer.update_bias()
    assert bias_of(layer) == [-0.25, 0, 0.25, 0.25]


def test_automatic_update_after_every_training_forward():
    layer = hand_layer(automatic_bias_update=True)
    layer(X1)
    assert bias_of(layer) == [-0.25, 0, 0.25, 0.25]
    layer(X2)  # load [0, 0, 1, 3] (the bias does not move these choices), mean 1: sign [1, 1, 0, -1]
    assert bias_of(layer) == [0, 0.25, 0.25, 0]
    layer.update_bias()  # the automatic update reset the counts: no-op
    assert bias_of(layer) == [0, 0.25, 0.25, 0]
    layer.eval()
    layer(X1)
    assert bias_of(layer) == [0, 0.25, 0.25, 0]


@pytest.mark.parametrize("implementation", ["looped", "dropless"])
def test_manual_mode_counts_a_recomputed_forward_once(implementation):
    # X1 with backward under recompute_level full, then X2: [3, 1, 0, 0] + [0, 0, 1, 3], mean 2: sign [-1, 1, 1, -1].
    # Counting the recompute too would give [6, 2, 1, 3], mean 3: sign [-1, 1, 1, 0].
    layer = hand_layer(recompute_level="full", implementation=implementation)
    layer(X1.clone().requires_grad_()).sum().backward()
    layer(X2)
    layer.update_bias()
    assert bias_of(layer) == [-0.25, 0.25, 0.25, -0.25]


@pytest.mark.parametrize("routing", ["aux_loss", "sinkhorn", "balanced"])
def test_update_bias_on_other_routings_raises(routing):
    layer = build({"type": "moe", "experts": 4, "experts_per_token": 2, "intermediate_size": 2, "routing": routing})
    layer.train()(torch.randn(5, 8, dtype=torch.float64))
    with pytest.raises(RuntimeError):
        layer.update_bias()


RECOMPUTE = {
    "type": "moe", "experts": 5, "experts_per_token": 2, "shared_experts": 1, "intermediate_size": 4, "gated": True,
    "routing": "aux_free", "router_score_function": "sigmoid", "automatic_bias_update": True, "bias_update_rate": 1.0,
    "pre_norm": {"type": "rms_norm"}, **NO_LOSSES,
}


@pytest.mark.parametrize("implementation", ["looped", "dropless"])
def test_full_recompute_routes_like_the_forward_and_updates_once(implementation):
    """The update (rate 1: larger than any sigmoid gap) changes the routing, so a recompute that
    saw the updated bias, or updated again, would give other gradients or another bias."""
    data = {**RECOMPUTE, "implementation": implementation}
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(16, 8, dtype=torch.float64, generator=generator)
    grad = torch.randn(16, 8, dtype=torch.float64, generator=generator)
    results, biases, loads = {}, {}, {}
    for level in ("none", "full"):
        layer = build({**data, "recompute_level": level}).train()
        params = reference.leaf_parameters(layer)
        results[level] = forward_backward(layer, x, grad)
        biases[level] = bias_of(layer)
        loads[level] = layer.stats["tokens_per_expert"].tolist()
    assert loads["none"] == loads["full"]
    load = torch.tensor(loads["none"], dtype=torch.float64)
    spec = reference.Spec(activation="silu", gated=True, experts_per_token=2, shared_experts=1, routing="aux_free", score_function="sigmoid", pre_norm=reference.Norm("rms_norm"))
    routing = reference.route(params, spec, x)
    assert load.tolist() == routing.tokens_per_expert(4)
    expected_bias = torch.sign(load.mean() - load).float().tolist()
    assert biases["none"] == biases["full"] == expected_bias != [0, 0, 0, 0]
    moved = reference.route(params, reference.Spec(**{**spec.__dict__, "correction_bias": torch.tensor(expected_bias)}), x)
    assert [set(row) for row in moved.chosen] != [set(row) for row in routing.chosen]  # the update matters to the routing
    torch.testing.assert_close(results["full"][0], results["none"][0], rtol=0, atol=0)
    assert_same(results["full"], results["none"])
    # And both are the reference's routing with the bias from before the update.
    layer = build({**data, "recompute_level": "full", "automatic_bias_update": False}).train()
    assert_same(results["full"], reference_run(layer, spec, x, grad))


# The 200-step training test of aux_free balancing is in test_training.py, beside the aux_loss one.


def test_correction_bias_stays_float32_when_the_layer_is_cast():
    layer = build({"type": "moe", "experts": 6, "experts_per_token": 2, "intermediate_size": 4, "routing": "aux_free"}, dtype=torch.float32)
    with torch.no_grad():
        layer.router_correction_bias.fill_(0.5)
    layer.to(torch.bfloat16)
    assert layer.router.weight.dtype == torch.bfloat16 and layer.router_correction_bias.dtype == torch.float32
    layer.train()(torch.randn(9, 8, dtype=torch.bfloat16))
    layer.update_bias()
    # 0.5 ± 1e-3 survives in float32 (in bfloat16 it would round back to 0.5).
    moved = (layer.router_correction_bias - 0.5).abs()
    assert torch.all((moved == 0) | torch.isclose(moved, torch.tensor(1e-3))) and (moved > 0).any(), layer.router_correction_bias
