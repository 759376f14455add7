"""torch.autograd.gradcheck in float64 on tiny layers: every implementation's backward, the grouped GEMM op's included.

Loss coefficients 0 (an injected loss's gradient is, by design, not the derivative of the output:
tests/layers/test_losses.py checks it against output + coefficient · loss) and random inputs, so
no routing ties. fast_mode checks the Jacobian along random directions: the same derivative,
at a fraction of the cost of the full Jacobian.
"""

from __future__ import annotations

import pytest
import torch

from tests.layers.conftest import build

CASES = {
    "mlp-gated-norms": {"type": "mlp", "intermediate_size": 3, "gated": True, "pre_norm": {"type": "rms_norm"}, "post_norm": {"zero_centered": True}},
    "mlp-gpt-oss-glu": {"type": "mlp", "intermediate_size": 3, "gated": True, "activation": "gpt_oss_glu", "activation_limit": 0.7},
    "aux_loss-router-features": {
        "type": "moe", "experts": 4, "experts_per_token": 2, "shared_experts": 1, "intermediate_size": 3, "gated": True,
        "pre_norm": {}, "post_norm": {"type": "rms_norm"}, "router_normalization": {"type": "rms_norm"},
        "router_scale": {"enabled": True}, "router_per_expert_scale": {"enabled": True}, "router_input_scale": 0.5,
    },
    "sinkhorn": {"type": "moe", "experts": 4, "experts_per_token": 2, "intermediate_size": 3, "routing": "sinkhorn", "activation": "gelu_exact"},
    "sigmoid-normalized-scaled": {
        "type": "moe", "experts": 5, "experts_per_token": 2, "intermediate_size": 3, "router_score_function": "sigmoid",
        "normalize_expert_weights": True, "routed_scaling_factor": 2.5, "router_per_expert_scale": {"enabled": True},
    },
    "aux_free-groups": {
        "type": "moe", "experts": 8, "experts_per_token": 2, "intermediate_size": 3, "routing": "aux_free",
        "router_score_function": "sigmoid", "expert_groups": 4, "expert_groups_per_token": 2, "router_bias": {"enabled": True},
    },
    "shared-gate": {
        "type": "moe", "experts": 5, "shared_experts": 1, "experts_per_token": 2, "intermediate_size": 3, "gated": True,
        "shared_expert_intermediate_size": 2, "shared_expert_gate": {"enabled": True}, "pre_norm": {"type": "rms_norm"},
    },
    "router-weight-on-input": {
        "type": "moe", "experts": 4, "experts_per_token": 1, "intermediate_size": 3, "router_weight_on_input": True,
        "router_score_function": "sigmoid", "normalize_expert_weights": False,
    },
    "gpt-oss-glu-capacity": {
        "type": "moe", "experts": 4, "experts_per_token": 2, "intermediate_size": 3, "gated": True, "activation": "gpt_oss_glu",
        "activation_limit": 0.7, "router_bias": {"enabled": True}, "add_linear_biases": True, "capacity_factor": 0.75,
    },
}
RUNS = [(case, implementation) for case in CASES if CASES[case]["type"] == "moe" for implementation in ("looped", "dropless")]
RUNS += [(case, None) for case in CASES if CASES[case]["type"] == "mlp"]


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize(("case", "implementation"), RUNS)
def test_gradcheck(case, implementation, training):
    data = {**CASES[case]}
    if data["type"] == "moe":
        data.update(implementation=implementation, z_loss_coefficient=0.0)
        if data.get("routing", "aux_loss") == "aux_loss":
            data["auxiliary_loss_coefficient"] = 0.0
    layer = build(data, 4).train(training)
    if case == "aux_free-groups":
        with torch.no_grad():
            dict(layer.named_buffers())["router_correction_bias"].copy_(torch.tensor([0.25, -0.25, 0.0, 0.5, -0.5, 0.125, 0.0, -0.125]))
    parameters = dict(layer.named_parameters())
    names = list(parameters)
    x = torch.randn(5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1), requires_grad=True)
    if "activation_limit" in data:  # away from the clamp's kinks, yet clamping
        prefix = "experts." if data["type"] == "moe" else ""
        h = torch.einsum("...ih,th->t...i", parameters[f"{prefix}layer_1.weight"], x)
        if f"{prefix}layer_1.bias" in parameters:
            h = h + parameters[f"{prefix}layer_1.bias"]
        half = h.shape[-1] // 2
        gate, up = h[..., :half], h[..., half:]
        limit = data["activation_limit"]
        assert (gate - limit).abs().min() > 1e-3 and (up.abs() - limit).abs().min() > 1e-3
        assert (gate > limit).any() and (up.abs() > limit).any()
    if "capacity_factor" in data:  # some assignments dropped: their rows are sentinels
        layer(x)
        assert layer.stats["dropped_tokens"] > 0

    def function(x, *values):
        return torch.func.functional_call(layer, dict(zip(names, values)), (x,))

    assert torch.autograd.gradcheck(function, (x, *parameters.values()), eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=True)
