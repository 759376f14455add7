"""torch.compile(layer, fullgraph=True) on the dropless path: the same outputs, gradients and statistics as eager.

Inductor compiles two graphs (float32 with a mask in training; bfloat16); the rest of the matrix
(routing types, capacity, eval, injected losses left to the loop) uses backend="aot_eager",
which traces the same graph without generating code. Tiny shapes: compile time dominates.
Tolerances: float32 1e-5 relative (inductor may fuse and reorder sums), bfloat16 2^-6.
"""

from __future__ import annotations

import pytest
import torch
import torch._dynamo

from tests.layers.conftest import build

HIDDEN = 16
BASE = {
    "type": "moe", "experts": 5, "experts_per_token": 2, "shared_experts": 1, "intermediate_size": 8, "gated": True,
    "pre_norm": {"type": "rms_norm"}, "implementation": "dropless", "z_loss_coefficient": 0.01,
}
CASES = {
    "aux_loss-capacity": {"capacity_factor": 0.75},
    "aux_free-groups-sequence": {
        "experts": 7, "routing": "aux_free", "router_score_function": "sigmoid", "expert_groups": 3, "expert_groups_per_token": 2,
        "automatic_bias_update": True, "sequence_auxiliary_loss_coefficient": 0.1, "routed_scaling_factor": 2.0,
    },
    "balanced-noise": {"routing": "balanced", "balanced_routing_noise": 0.5},
    "qwen2-gate-weight-on-input": {
        "experts_per_token": 1, "router_weight_on_input": True, "normalize_expert_weights": False, "shared_expert_gate": {"enabled": True}, "jitter_eps": 0.1,
    },
    "gpt_oss-biases": {"activation": "gpt_oss_glu", "shared_experts": 0, "add_linear_biases": True, "router_bias": {"enabled": True}},
    "kempnerforge-router-jitter-dropout-load-scaling": {  # issue 19's options together: one compile
        "routing": "aux_free", "router_score_function": "sigmoid", "correction_bias_target": "logits", "bias_update_rule": "ema",
        "bias_update_schedule": "cosine_decay", "bias_update_total_steps": 10, "automatic_bias_update": True,
        "expert_load_scaling": True, "jitter_eps": 0.2, "jitter_target": "layer_input", "jitter_distribution": "normal", "dropout": 0.2,
    },
}


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return ((actual.float() - expected.float()).abs().max() / expected.float().abs().max().clamp_min(1e-30)).item()


def run(module, x, mask, *, backward=True, seed=3):
    """Output, input gradient, parameter gradients, statistics and buffers after one forward (and backward)."""
    layer = getattr(module, "_orig_mod", module)  # torch.compile's wrapper holds the layer
    layer.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_(backward)
    torch.manual_seed(seed)  # jitter and the balanced router draw from torch's generator
    out = module(x, token_mask=mask)
    if backward:
        (out.float().square().sum() + sum(loss.float() for loss in layer.aux_losses.values())).backward()
    grads = {name: p.grad for name, p in layer.named_parameters() if p.grad is not None}
    return out.detach(), x.grad, grads, dict(layer.stats), {name: b.clone() for name, b in layer.named_buffers()}


def check(data, *, backend, dtype=torch.float32, training=True, mask=True, tolerance=1e-5, inject=True, backward=True):
    torch._dynamo.reset()
    eager = build(data, HIDDEN, dtype=dtype).train(training)
    compiled_layer = build(data, HIDDEN, dtype=dtype).train(training)
    eager.inject_aux_losses = compiled_layer.inject_aux_losses = inject
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 9, HIDDEN, generator=generator).to(dtype)
    token_mask = torch.rand(2, 9, generator=generator) > 0.25 if mask else None
    compiled = torch.compile(compiled_layer, fullgraph=True, backend=backend)
    expected = run(eager, x, token_mask, backward=backward)
    actual = run(compiled, x, token_mask, backward=backward)
    assert relative_error(actual[0], expected[0]) <= tolerance, "output"
    if backward:
        assert relative_error(actual[1], expected[1]) <= tolerance, "input gradient"
    assert actual[2].keys() == expected[2].keys()
    for name in expected[2]:
        assert relative_error(actual[2][name], expected[2][name]) <= tolerance, name
    assert torch.equal(actual[3]["tokens_per_expert"], expected[3]["tokens_per_expert"])
    assert torch.equal(actual[3]["dropped_tokens"], expected[3]["dropped_tokens"])
    for name in ("z_loss", "load_balancing_loss", "sequence_load_balancing_loss"):
        assert relative_error(actual[3][name], expected[3][name]) <= tolerance, name
    for name in expected[4]:
        assert torch.equal(actual[4][name], expected[4][name]), name
    if mask:
        assert torch.equal(actual[0][~token_mask], torch.zeros_like(actual[0][~token_mask]))
    return compiled_layer


def test_inductor_float32_with_mask_in_training():
    layer = check({**BASE, "capacity_factor": 1.0}, backend="inductor")
    assert layer.stats["tokens_per_expert"].sum() > 0


def test_inductor_bfloat16_inference():
    # bfloat16 in training is checked with aot_eager below; inductor's backward graph would double the compile time.
    check(BASE, backend="inductor", dtype=torch.bfloat16, training=False, mask=False, tolerance=2**-6, backward=False)


@pytest.mark.parametrize("case", CASES)
def test_aot_eager_routing_and_execution_variants(case):
    check({**BASE, **CASES[case]}, backend="aot_eager")


def test_aot_eager_eval_without_mask():
    check({**BASE, "capacity_factor": 1.25}, backend="aot_eager", training=False, mask=False)


def test_aot_eager_losses_left_to_the_training_loop():
    layer = check({**BASE, "auxiliary_loss_coefficient": 0.1}, backend="aot_eager", inject=False)
    assert set(layer.aux_losses) == {"z_loss", "load_balancing_loss"}


def test_aot_eager_bfloat16_with_mask():
    check(BASE, backend="aot_eager", dtype=torch.bfloat16, tolerance=2**-6)


def test_sinkhorn_compiles_with_its_tolerance_loop_as_a_graph_break():
    data = {**BASE, "routing": "sinkhorn"}
    with pytest.raises(torch._dynamo.exc.Unsupported):
        check(data, backend="aot_eager")
    torch._dynamo.reset()
    eager, other = build(data, HIDDEN).train(), build(data, HIDDEN).train()
    compiled = torch.compile(other, backend="aot_eager")
    x = torch.randn(2, 9, HIDDEN, dtype=torch.float64)
    expected, actual = run(eager, x, None), run(compiled, x, None)
    assert relative_error(actual[0], expected[0]) <= 1e-12 and relative_error(actual[1], expected[1]) <= 1e-12


def test_looped_compiles_with_graph_breaks_and_gives_the_same_results():
    data = {**BASE, "implementation": "looped"}
    torch._dynamo.reset()
    eager, other = build(data, HIDDEN).train(), build(data, HIDDEN).train()
    compiled = torch.compile(other, backend="aot_eager")
    x = torch.randn(2, 9, HIDDEN, dtype=torch.float64)
    mask = torch.rand(2, 9) > 0.25
    expected, actual = run(eager, x, mask), run(compiled, x, mask)
    assert relative_error(actual[0], expected[0]) <= 1e-12 and relative_error(actual[1], expected[1]) <= 1e-12


def test_aot_eager_dynamic_shapes_with_a_changing_loss_scale():
    # The injected losses' scale is a graph input, not a constant: dynamic=True compiles, and a loss scaler that
    # changes aux_loss_scale every step neither recompiles nor breaks the graph.
    data = {**BASE, "capacity_factor": 1.0}
    torch._dynamo.reset()
    eager, other = build(data, HIDDEN).train(), build(data, HIDDEN).train()
    compiled = torch.compile(other, fullgraph=True, dynamic=True, backend="aot_eager")
    for tokens, scale in ((9, 1.0), (13, 0.5), (17, 0.25)):
        eager.aux_loss_scale = other.aux_loss_scale = scale
        x = torch.randn(tokens, HIDDEN, dtype=torch.float64)
        expected, actual = run(eager, x, None), run(compiled, x, None)
        assert relative_error(actual[0], expected[0]) <= 1e-12 and relative_error(actual[1], expected[1]) <= 1e-12
        for name in expected[2]:
            assert relative_error(actual[2][name], expected[2][name]) <= 1e-12, name

