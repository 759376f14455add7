"""The options of issue 19 in the layers, against the float64 reference (tests/layers/reference.py):
jitter targets and distributions, dropout, load-scaled expert outputs, bias-update rules and schedules.

Random draws: the layer draws its noise from torch's generator as `torch.empty_like(t).uniform_(...)`
(or `.normal_`, `.bernoulli_`) of the shape [T, ...]; the tests seed the generator, draw the same tensor
and give it to the reference, which applies it where the option says.
"""

from __future__ import annotations

import math

import pytest
import torch

from tests.layers import reference
from tests.layers.conftest import build, forward_backward
from tests.layers.test_moe_reference import TOLERANCE, assert_same, reference_run

IMPLEMENTATIONS = ["looped", "dropless"]
T, H = 7, 6
MOE = {
    "type": "moe", "experts": 5, "shared_experts": 1, "experts_per_token": 2, "intermediate_size": 4, "gated": True,
    "pre_norm": {"type": "rms_norm"}, "auxiliary_loss_coefficient": 0.0,
}
MOE_SPEC = {"activation": "silu", "gated": True, "experts_per_token": 2, "shared_experts": 1, "pre_norm": reference.Norm("rms_norm")}


def inputs(seed: int = 1, tokens: int = T):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(tokens, H, dtype=torch.float64, generator=generator), torch.randn(tokens, H, dtype=torch.float64, generator=generator)


def draw(seed: int, shape, kind: str, value: float) -> torch.Tensor:
    """The tensor the layer draws first after torch.manual_seed(seed)."""
    torch.manual_seed(seed)
    empty = torch.empty(shape, dtype=torch.float64)
    if kind == "normal":  # Box-Muller from uniform draws [T, 2, ...]
        u = torch.rand(shape[0], 2, *shape[1:], dtype=torch.float64)
        return 1 + value * torch.sqrt(-2 * torch.log(1 - u[:, 0])) * torch.cos(2 * math.pi * u[:, 1])
    return empty.uniform_(1 - value, 1 + value) if kind == "uniform" else empty.bernoulli_(1 - value)


def test_normal_jitter_is_n_1_eps_squared():
    noise = draw(0, (20000, 2), "normal", 0.1)
    assert abs(noise.mean().item() - 1) < 3e-3 and abs(noise.std().item() - 0.1) < 3e-3


def seeded(layer, x, grad, seed=5, **kwargs):
    torch.manual_seed(seed)
    return forward_backward(layer, x, grad, **kwargs)


# --- jitter ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("distribution", ["uniform", "normal"])
@pytest.mark.parametrize("target", ["layer_input", "router_input", "router_logits"])
def test_jitter_acts_where_its_target_says(target, distribution, implementation):
    eps = 0.3
    data = {**MOE, "jitter_eps": eps, "jitter_target": target, "jitter_distribution": distribution, "implementation": implementation}
    layer = build(data, H).train()
    x, grad = inputs()
    noise = draw(5, (T, 4 if target == "router_logits" else H), distribution, eps)
    spec = reference.Spec(**MOE_SPEC, jitter_target=target, jitter=noise)
    assert_same(seeded(layer, x, grad), reference_run(layer, spec, x, grad, training=True))
    # the noise mattered, and eval draws none
    plain = reference_run(layer, reference.Spec(**MOE_SPEC), x, grad)
    assert (seeded(layer, x, grad)[0] - plain[0]).abs().max() > 1e-3
    layer.eval()
    assert_same(seeded(layer, x, grad), plain)


@pytest.mark.parametrize("target", ["layer_input", "router_input"])
def test_the_z_loss_reads_the_logits_the_router_produced(target):
    eps = 0.4
    layer = build({**MOE, "jitter_eps": eps, "jitter_target": target, "z_loss_coefficient": 0.1}, H).train()
    x, _ = inputs()
    torch.manual_seed(5)
    layer(x)
    spec = reference.Spec(**MOE_SPEC, jitter_target=target, jitter=draw(5, (T, H), "uniform", eps))
    noisy = x * spec.jitter if target == "layer_input" else x
    logits = reference.route(reference.leaf_parameters(layer), spec, noisy, training=True).logits
    expected = (torch.logsumexp(logits, dim=-1) ** 2).mean()
    assert layer.stats["z_loss"].item() == pytest.approx(expected.item(), rel=1e-12)
    clean = (torch.logsumexp(reference.route(reference.leaf_parameters(layer), reference.Spec(**MOE_SPEC), x).logits, -1) ** 2).mean()
    assert abs(clean.item() - expected.item()) > 1e-4


@pytest.mark.parametrize("data", [
    {**MOE, "jitter_eps": 0.3, "jitter_target": "layer_input"},
    {**MOE, "jitter_eps": 0.3, "jitter_target": "router_input", "jitter_distribution": "normal"},
    {**MOE, "dropout": 0.4},
    {"type": "mlp", "intermediate_size": 4, "dropout": 0.4},
], ids=["moe-layer_input-jitter", "moe-router_input-jitter", "moe-dropout", "mlp-dropout"])
def test_noise_is_drawn_over_the_real_tokens_only(data):
    """A padded batch gives its real tokens the values they get alone (same seed)."""
    layer = build(data, H).train()
    x, _ = inputs(tokens=5)
    padded = torch.zeros(2, 4, H, dtype=torch.float64)
    mask = torch.tensor([[True, True, False, True], [False, True, True, False]])
    padded[mask] = x
    torch.manual_seed(9)
    alone = layer(x)
    torch.manual_seed(9)
    together = layer(padded, token_mask=mask)
    torch.testing.assert_close(together[mask], alone, **TOLERANCE)
    assert torch.equal(together[~mask], torch.zeros_like(together[~mask]))


def test_balanced_routing_accepts_jitter_on_the_layer_input_only():
    layer = build({**MOE, "routing": "balanced", "jitter_eps": 0.2, "jitter_target": "layer_input"}, H).train()
    x, grad = inputs()
    spec = reference.Spec(**MOE_SPEC, routing="balanced", jitter_target="layer_input", jitter=draw(5, (T, H), "uniform", 0.2))
    assert_same(seeded(layer, x, grad), reference_run(layer, spec, x, grad, training=True))


# --- dropout --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("data, spec", [
    ({**MOE, "implementation": "looped"}, MOE_SPEC),
    ({**MOE, "implementation": "dropless", "post_norm": {"type": "layer_norm"}}, {**MOE_SPEC, "post_norm": reference.Norm("layer_norm")}),
    ({"type": "mlp", "intermediate_size": 4, "post_norm": {"type": "rms_norm"}}, {"activation": "gelu", "post_norm": reference.Norm("rms_norm")}),
], ids=["moe-looped", "moe-dropless-post_norm", "mlp-post_norm"])
def test_dropout_on_the_layer_output_in_training_only(data, spec):
    p = 0.4
    layer = build({**data, "dropout": p}, H).train()
    x, grad = inputs()
    function = reference.moe if data["type"] == "moe" else reference.dense
    keep = draw(5, (T, H), "bernoulli", p)
    assert 0 < keep.mean() < 1
    expected = reference_run(layer, reference.Spec(**spec, dropout=p, dropout_keep=keep), x, grad, training=True, function=function)
    assert_same(seeded(layer, x, grad), expected)
    layer.eval()
    assert_same(seeded(layer, x, grad), reference_run(layer, reference.Spec(**spec), x, grad, function=function))


# --- load-scaled expert outputs -------------------------------------------------------------------------------------


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("case", ["plain", "capacity", "weight_on_input"])
def test_expert_load_scaling_against_the_reference(case, implementation):
    data = {**MOE, "expert_load_scaling": True, "implementation": implementation, "experts": 6}
    spec = {**MOE_SPEC}
    if case == "capacity":
        data |= {"capacity_factor": 0.6}
        spec |= {"capacity_factor": 0.6}
    if case == "weight_on_input":
        data |= {"experts_per_token": 1, "router_weight_on_input": True, "router_score_function": "sigmoid"}
        spec |= {"experts_per_token": 1, "router_weight_on_input": True, "score_function": "sigmoid", "normalize": False}
    layer = build(data, H).train()
    x, grad = inputs(tokens=11)
    expected = reference_run(layer, reference.Spec(**spec, load_scaling=True), x, grad, training=True)
    assert_same(forward_backward(layer, x, grad), expected)
    unscaled = reference_run(layer, reference.Spec(**spec), x, grad, training=True)
    assert (expected[0] - unscaled[0]).abs().max() > 1e-3  # the loads were unequal
    layer.eval()
    assert_same(forward_backward(layer, x, grad), reference_run(layer, reference.Spec(**spec), x, grad))


def test_load_scale_is_the_mean_load_over_each_load():
    """KempnerForge: scale_e = (Σ counts / E) / count_e; an expert without tokens has no rows to scale (1 tokens' worth)."""
    layer = build({**MOE, "expert_load_scaling": True}, H)
    torch.testing.assert_close(layer.load_scale(torch.tensor([5, 2, 1, 0])), torch.tensor([0.4, 1.0, 2.0, 2.0]))


def test_expert_load_scaling_counts_the_real_tokens_under_a_mask():
    layer = build({**MOE, "expert_load_scaling": True, "implementation": "dropless"}, H).train()
    x, grad = inputs(tokens=6)
    padded = torch.zeros(2, 4, H, dtype=torch.float64)
    mask = torch.tensor([[True, True, True, False], [True, True, True, False]])
    padded[mask] = x
    torch.testing.assert_close(layer(padded, token_mask=mask)[mask], layer(x), **TOLERANCE)


# --- bias-update rules and schedules --------------------------------------------------------------------------------

AUX_FREE = {**MOE, "routing": "aux_free", "router_score_function": "sigmoid", "experts": 5}


@pytest.mark.parametrize("schedule, total, factors", [
    ("constant", None, [1, 1, 1, 1]),
    ("cosine_decay", 4, [1, (1 + math.cos(math.pi / 4)) / 2, 0.5, (1 + math.cos(3 * math.pi / 4)) / 2, 0, 0]),  # stays at 0 after
    ("linear_warmup", 20, [0, 0.5, 1, 1]),
])
def test_bias_update_schedules_scale_the_sign_rule(schedule, total, factors):
    fields = {"bias_update_schedule": schedule, "bias_update_rate": 0.1} | ({"bias_update_total_steps": total} if total else {})
    layer = build({**AUX_FREE, **fields}, H)
    bias = torch.zeros(4)
    for step, factor in enumerate(factors):
        assert layer.bias_update_step.item() == step
        layer.pending_load.copy_(torch.tensor([6, 1, 1, 0]))  # mean 2: signs -1, +1, +1, +1
        layer.update_bias()
        bias += 0.1 * factor * torch.tensor([-1.0, 1, 1, 1])
        torch.testing.assert_close(layer.router_correction_bias, bias, rtol=0, atol=1e-7)
    assert layer.bias_update_step.item() == len(factors) and "bias_update_step" in layer.state_dict()
    layer.reset_parameters()
    assert layer.bias_update_step.item() == 0 and not layer.router_correction_bias.any()


def kempnerforge_sigmoid_router(x, weight, state, *, top_k, rate, decay, step, max_steps, schedule, training=True):
    """KempnerForge's SigmoidTopKRouter.forward (kempnerforge/model/router.py), written out with its state in a dict."""
    logits = x @ weight.T
    scores = torch.sigmoid(logits + state["bias"])
    weights, indices = torch.topk(scores, k=top_k, dim=-1)
    weights = weights / weights.sum(dim=-1, keepdim=True)
    counts = torch.nn.functional.one_hot(indices, num_classes=weight.shape[0]).double().sum(dim=(0, 1))
    if training:
        utilization = counts / (x.shape[0] * top_k + 1e-8)
        state["ema"] = state["ema"] + (1 - decay) * (utilization - state["ema"])
        progress = step / max(max_steps, 1)
        factor = {"constant": 1.0, "cosine_decay": 0.5 * (1 + math.cos(math.pi * progress)), "linear_warmup": min(1.0, progress * 10)}[schedule]
        state["bias"] = state["bias"] + rate * factor * (1 / weight.shape[0] - state["ema"])
    return weights, indices


@pytest.mark.parametrize("schedule", ["cosine_decay", "linear_warmup"])
def test_a_kempnerforge_router_is_reproduced(schedule):
    """routing aux_free + sigmoid + correction_bias_target logits + bias_update_rule ema + automatic update = KempnerForge's
    sigmoid router, step for step (the bias, its moving average, the choices and the weights)."""
    fields = {
        "correction_bias_target": "logits", "bias_update_rule": "ema", "bias_update_ema_decay": 0.9, "bias_update_rate": 0.05,
        "bias_update_schedule": schedule, "bias_update_total_steps": 6, "automatic_bias_update": True, "shared_experts": 0, "experts": 4,
    }
    layer = build({**AUX_FREE, **fields}, H).train()
    state = {"bias": torch.zeros(4, dtype=torch.float64), "ema": torch.full((4,), 0.25, dtype=torch.float64)}
    generator = torch.Generator().manual_seed(3)
    for step in range(6):
        x = torch.randn(9, H, dtype=torch.float64, generator=generator) + torch.tensor([2.0, 0, 0, 0, 0, 0], dtype=torch.float64)
        weights, indices = kempnerforge_sigmoid_router(
            x, layer.router.weight.detach(), state, top_k=2, rate=0.05, decay=0.9, step=step, max_steps=6, schedule=schedule
        )
        routing = layer.route(x)  # before the forward's update: the bias KempnerForge routed with
        assert torch.equal(routing.experts_TK, indices)
        torch.testing.assert_close(routing.weights_TK, weights, rtol=1e-6, atol=1e-7)  # the bias is float32 here
        layer(x)
        torch.testing.assert_close(layer.router_correction_bias.double(), state["bias"], rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(layer.router_load_ema.double(), state["ema"], rtol=1e-6, atol=1e-7)
    assert layer.router_correction_bias.abs().max() > 1e-3  # the rule moved the bias


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_correction_bias_on_the_logits_changes_the_weights(implementation):
    layer = build({**AUX_FREE, "correction_bias_target": "logits", "implementation": implementation}, H).eval()
    bias = torch.tensor([0.8, -0.5, 0.3, -0.2])
    layer.router_correction_bias.copy_(bias)
    x, grad = inputs()
    spec = {**MOE_SPEC, "routing": "aux_free", "score_function": "sigmoid", "correction_bias": bias}
    expected = reference_run(layer, reference.Spec(**spec, correction_bias_target="logits"), x, grad)
    assert_same(forward_backward(layer, x, grad), expected)
    selection_only = reference_run(layer, reference.Spec(**spec), x, grad)
    assert (expected[0] - selection_only[0]).abs().max() > 1e-3


def test_the_ema_rule_without_loads_changes_nothing():
    layer = build({**AUX_FREE, "bias_update_rule": "ema"}, H)
    assert layer.router_load_ema.tolist() == [0.25] * 4 and "router_load_ema" in layer.state_dict()
    layer.update_bias()
    assert not layer.router_correction_bias.any() and layer.router_load_ema.tolist() == [0.25] * 4
    assert layer.to(torch.bfloat16).router_load_ema.dtype == torch.float32
