"""torch.autograd.gradcheck in float64 on tiny layers (looped, loss coefficients 0, random inputs: no routing ties)."""

from __future__ import annotations

import pytest
import torch

from tests.layers.conftest import build

CASES = {
    "mlp-gated-norms": {"type": "mlp", "intermediate_size": 3, "gated": True, "pre_norm": {"type": "rms_norm"}, "post_norm": {"zero_centered": True}},
    "moe-aux_loss": {
        "type": "moe", "experts": 4, "experts_per_token": 2, "shared_experts": 1, "intermediate_size": 3, "gated": True,
        "pre_norm": {}, "post_norm": {"type": "rms_norm"}, "router_normalization": {"type": "rms_norm"},
        "router_scale": {"enabled": True}, "router_per_expert_scale": {"enabled": True}, "router_input_scale": 0.5,
    },
    "moe-sinkhorn": {"type": "moe", "experts": 4, "experts_per_token": 2, "intermediate_size": 3, "routing": "sinkhorn", "activation": "gelu_exact"},
}


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("case", CASES)
def test_gradcheck(case, training):
    data = {**CASES[case]}
    if data["type"] == "moe":
        data.update(implementation="looped", auxiliary_loss_coefficient=0.0, z_loss_coefficient=0.0)
    layer = build(data, 4).train(training)
    parameters = dict(layer.named_parameters())
    names = list(parameters)
    x = torch.randn(5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1), requires_grad=True)

    def function(x, *values):
        return torch.func.functional_call(layer, dict(zip(names, values)), (x,))

    assert torch.autograd.gradcheck(function, (x, *parameters.values()), eps=1e-6, atol=1e-5, rtol=1e-4)
