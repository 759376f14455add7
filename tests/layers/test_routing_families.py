"""Routing of the other MoE families (issue 6) against the float64 reference (tests/layers/reference.py).

Score function, weight normalization and scaling, aux_free's correction bias, group-limited
routing, shared experts of their own width with a gate, router weight on the input, gpt_oss_glu,
router bias, router_dtype, balanced routing, a DeepSeek-V3-style layer end to end (gradcheck: test_gradcheck.py), and
the load-balancing and sequence losses on normalized scores. Outputs, input gradients and every
parameter gradient at rtol 1e-9 (float64), for the looped and dropless implementations.
"""

from __future__ import annotations

import math

import pytest
import torch

from tests.layers import reference
from tests.layers.conftest import build, forward_backward
from tests.layers.test_moe_reference import assert_same, reference_run

IMPLEMENTATIONS = ["looped", "dropless"]
LN2, LN3, LN4 = math.log(2), math.log(3), math.log(4)
NO_LOSSES = {"auxiliary_loss_coefficient": 0.0, "z_loss_coefficient": 0.0}


def inputs(tokens, hidden, seed, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(tokens, hidden, dtype=dtype, generator=generator)
    return x, torch.randn(tokens, hidden, dtype=dtype, generator=generator)


def compare(data, spec, *, tokens=11, hidden=8, training=False, seed=0, setup=None, x=None):
    """Build (parameters N(0, 0.5²)), let `setup(layer)` adjust it, and compare with the reference.

    `spec` may be a function of the layer (to read buffers such as the correction bias).
    Returns the layer, the input and the reference's routing of it.
    """
    layer = build({**NO_LOSSES, **data} if data.get("type") == "moe" else data, hidden, seed=seed).train(training)
    if setup is not None:
        with torch.no_grad():
            setup(layer)
    spec = spec(layer) if callable(spec) else spec
    x_default, grad = inputs(tokens, hidden, seed)
    x = x_default if x is None else x
    function = reference.moe if data.get("type") == "moe" else reference.dense
    assert_same(forward_backward(layer, x, grad), reference_run(layer, spec, x, grad, training=training, function=function))
    routing = reference.route(reference.leaf_parameters(layer), spec, x, training=training) if function is reference.moe else None
    return layer, x, routing


def correction_bias(layer) -> torch.Tensor:
    return dict(layer.named_buffers())["router_correction_bias"]


# --- score function × normalization × routed_scaling_factor ---------------------------------------------


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("normalize", [True, False], ids=["normalized", "raw"])
@pytest.mark.parametrize("score", ["softmax", "sigmoid"])
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_score_function_normalization_and_scaling(implementation, score, normalize, training):
    data = {
        "type": "moe", "experts": 7, "experts_per_token": 2, "intermediate_size": 4, "gated": True, "implementation": implementation,
        "router_score_function": score, "normalize_expert_weights": normalize, "routed_scaling_factor": 2.5,
        "router_per_expert_scale": {"enabled": True},
    }
    spec = reference.Spec(
        activation="silu", gated=True, experts_per_token=2, score_function=score, normalize=normalize, routed_scaling_factor=2.5
    )
    compare(data, spec, training=training)


def test_scores_really_differ_between_the_variants():
    """The four score/normalization variants give four different outputs (the tests above are not vacuous)."""
    layer = build({"type": "moe", "experts": 6, "experts_per_token": 2, "intermediate_size": 4})
    params = reference.leaf_parameters(layer)
    x, _ = inputs(9, 8, 0)
    outs = [
        reference.moe(params, reference.Spec(experts_per_token=2, score_function=s, normalize=n), x)
        for s in ("softmax", "sigmoid") for n in (True, False)
    ]
    for i in range(4):
        for j in range(i):
            assert (outs[i] - outs[j]).abs().max() > 1e-3


# --- aux_free: the correction bias serves the choice only -------------------------------------------------

BIAS = torch.tensor([0.5, -0.5, 0.25, 0.0, -0.25, 0.75])  # exact in float32


def test_correction_bias_is_a_float32_zero_buffer():
    layer = build({"type": "moe", "experts": 7, "shared_experts": 1, "experts_per_token": 2, "intermediate_size": 4, "routing": "aux_free"}, dtype=torch.float64)
    bias = correction_bias(layer)
    assert bias.dtype == torch.float32 and bias.shape == (6,) and torch.equal(bias, torch.zeros(6))
    assert "router_correction_bias" not in dict(layer.named_parameters())
    assert "router_correction_bias" in layer.state_dict()


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("score", ["softmax", "sigmoid"])
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_aux_free_bias_changes_the_choice_not_the_weights(implementation, score, training):
    data = {
        "type": "moe", "experts": 6, "experts_per_token": 2, "intermediate_size": 4, "routing": "aux_free",
        "router_score_function": score, "implementation": implementation,
    }
    spec = reference.Spec(experts_per_token=2, routing="aux_free", score_function=score, correction_bias=BIAS)
    layer, x, routing = compare(data, spec, tokens=16, training=training, setup=lambda layer: correction_bias(layer).copy_(BIAS))
    unbiased = reference.route(reference.leaf_parameters(layer), reference.Spec(experts_per_token=2, score_function=score), x)
    changed = [t for t in range(16) if set(routing.chosen[t]) != set(unbiased.chosen[t])]
    assert changed, "the bias should change some token's choice"
    assert layer.stats["tokens_per_expert"].tolist() == routing.tokens_per_expert(6)
    # The weights are the unbiased scores: a token whose choice the bias left alone has the plain weights.
    for t in range(16):
        if t not in changed:
            ours = dict(zip(routing.chosen[t], routing.weights[t].tolist()))
            assert ours == pytest.approx(dict(zip(unbiased.chosen[t], unbiased.weights[t].tolist())), rel=1e-12)


# --- group-limited routing ----------------------------------------------------------------------------------


@pytest.mark.parametrize("routing", ["aux_loss", "aux_free"])
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_expert_groups_change_the_choice(implementation, routing):
    # 8 routed experts in 4 groups of 2, 2 groups kept, top-2.
    data = {
        "type": "moe", "experts": 8, "experts_per_token": 2, "intermediate_size": 4, "routing": routing, "expert_groups": 4,
        "expert_groups_per_token": 2, "router_score_function": "sigmoid", "implementation": implementation,
    }
    bias = torch.tensor([0.25, -0.25, 0.0, 0.5, -0.5, 0.125, 0.0, -0.125]) if routing == "aux_free" else None
    spec = reference.Spec(experts_per_token=2, routing=routing, score_function="sigmoid", expert_groups=4, expert_groups_per_token=2, correction_bias=bias)
    setup = (lambda layer: correction_bias(layer).copy_(bias)) if bias is not None else None
    layer, x, routing_ = compare(data, spec, tokens=16, setup=setup)
    plain = reference.Spec(experts_per_token=2, routing=routing, score_function="sigmoid", correction_bias=bias)
    ungrouped = reference.route(reference.leaf_parameters(layer), plain, x)
    changed = [t for t in range(16) if set(routing_.chosen[t]) != set(ungrouped.chosen[t])]
    assert changed, "group limiting should change some token's choice"
    assert layer.stats["tokens_per_expert"].tolist() == routing_.tokens_per_expert(8)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_excluded_groups_are_minus_infinity_not_zero(implementation):
    """With a bias of -2 every selection score is negative: masking excluded experts to 0 would pick them."""
    data = {
        "type": "moe", "experts": 8, "experts_per_token": 2, "intermediate_size": 4, "routing": "aux_free", "expert_groups": 4,
        "expert_groups_per_token": 1, "router_score_function": "sigmoid", "implementation": implementation,
    }
    bias = torch.full((8,), -2.0)
    spec = reference.Spec(experts_per_token=2, routing="aux_free", score_function="sigmoid", expert_groups=4, expert_groups_per_token=1, correction_bias=bias)
    _, _, routing = compare(data, spec, tokens=12, setup=lambda layer: correction_bias(layer).copy_(bias))
    for row in routing.chosen:  # both experts of the one kept group
        assert row[0] // 2 == row[1] // 2


# --- shared experts: own width, gate -------------------------------------------------------------------------


@pytest.mark.parametrize("gate", [False, True], ids=["ungated", "gate"])
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_shared_expert_width_and_gate(implementation, gate):
    data = {
        "type": "moe", "experts": 6, "shared_experts": 2, "experts_per_token": 2, "intermediate_size": 4, "gated": True,
        "shared_expert_intermediate_size": 3, "shared_expert_gate": {"enabled": gate}, "pre_norm": {"type": "rms_norm"},
        "implementation": implementation,
    }
    spec = reference.Spec(activation="silu", gated=True, experts_per_token=2, shared_experts=2, pre_norm=reference.Norm("rms_norm"))
    layer, _, _ = compare(data, spec)
    names = dict(layer.named_parameters())
    assert names["shared.layer_1.weight"].shape == (6, 8)  # 2 · 3 (gated) rows: the width is 3, not 2 · 4
    assert names["shared.layer_2.weight"].shape == (8, 3)
    assert ("shared_expert_gate" in names) == gate
    if gate:
        assert names["shared_expert_gate"].shape == (8,)


def test_shared_expert_default_width_and_gate_initialization():
    layer = build({"type": "moe", "experts": 6, "shared_experts": 2, "intermediate_size": 4, "shared_expert_gate": {"enabled": True}}, 64, randomize=False)
    names = dict(layer.named_parameters())
    assert names["shared.layer_1.weight"].shape == (8, 64)  # shared_experts · intermediate_size
    std = names["shared_expert_gate"].std().item()
    assert 0.5 * 64**-0.5 < std < 1.5 * 64**-0.5  # normal, std hidden^-0.5


# --- router weight on the input ------------------------------------------------------------------------------


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_router_weight_on_input(implementation, training):
    data = {
        "type": "moe", "experts": 4, "experts_per_token": 1, "intermediate_size": 4, "router_weight_on_input": True,
        "router_score_function": "sigmoid", "normalize_expert_weights": False, "implementation": implementation,
    }
    # Llama-4: sigmoid top-1, not normalized (normalized top-1 weights are 1, and the side would not matter).
    spec = reference.Spec(experts_per_token=1, router_weight_on_input=True, score_function="sigmoid", normalize=False)
    layer, x, _ = compare(data, spec, training=training)
    params = reference.leaf_parameters(layer)
    on_output = reference.moe(params, reference.Spec(experts_per_token=1, score_function="sigmoid", normalize=False), x)
    assert (layer(x) - on_output).abs().max() > 1e-3  # the side matters with biases and gelu


# --- gpt_oss_glu ---------------------------------------------------------------------------------------------


def hidden_pre_activation(layer, spec, x, routing=None):
    """layer_1's outputs (gate, up) of every (token, expert) the router chose, or of the dense MLP."""
    p = reference.leaf_parameters(layer)
    rows = []
    for t, xt in enumerate(x):
        if routing is None:
            rows.append(p["layer_1.weight"] @ xt + p["layer_1.bias"])
        else:
            rows += [p["experts.layer_1.weight"][e] @ xt + p["experts.layer_1.bias"][e] for e in routing.chosen[t]]
    h = torch.stack(rows).detach()
    return h.chunk(2, dim=-1)


@pytest.mark.parametrize("limit", [0.5, None], ids=["limit-0.5", "default-7"])
@pytest.mark.parametrize("kind", ["moe-looped", "moe-dropless", "mlp"])
def test_gpt_oss_glu_clamps_on_both_sides(kind, limit):
    data = {"type": "mlp" if kind == "mlp" else "moe", "intermediate_size": 6, "gated": True, "activation": "gpt_oss_glu"}
    if limit is not None:
        data["activation_limit"] = limit
    if kind != "mlp":
        data.update(experts=4, experts_per_token=2, implementation=kind.split("-")[1])
    spec = reference.Spec(activation="gpt_oss_glu", gated=True, experts_per_token=2, activation_limit=7.0 if limit is None else limit)
    x, _ = inputs(13, 8, 0)
    x = x * (1 if limit else 8)  # the default limit 7 needs larger pre-activations
    layer, x, routing = compare(data, spec, tokens=13, x=x)
    gate, up = hidden_pre_activation(layer, spec, x, routing)
    bound = spec.activation_limit
    assert (gate > bound).any() and (gate < bound).any()
    assert (up > bound).any() and (up < -bound).any() and (up.abs() < bound).any()


# --- router bias ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_router_bias(implementation):
    data = {"type": "moe", "experts": 6, "experts_per_token": 2, "intermediate_size": 4, "router_bias": {"enabled": True}, "implementation": implementation}
    layer, _, _ = compare(data, reference.Spec(experts_per_token=2))
    assert dict(layer.named_parameters())["router.bias"].shape == (6,)
    assert torch.equal(dict(build(data, randomize=False).named_parameters())["router.bias"], torch.zeros(6, dtype=torch.float64))
    assert "router.bias" not in dict(build({**data, "router_bias": {"enabled": False}}).named_parameters())


# --- router_dtype ----------------------------------------------------------------------------------------------


def reference_entropy(layer, x):
    p = reference.leaf_parameters(layer)
    scores = reference.route(p, reference.Spec(experts_per_token=2), x.double()).scores.detach()
    return -(scores * scores.log()).sum(-1).mean().item()


def test_router_dtype_float32_on_a_float32_layer_matches_float64():
    data = {"type": "moe", "experts": 6, "experts_per_token": 2, "intermediate_size": 4, "router_dtype": "float32", **NO_LOSSES}
    layer = build(data, dtype=torch.float32)
    x, _ = inputs(32, 8, 0, dtype=torch.float32)
    out = layer(x)
    expected = reference.moe(reference.leaf_parameters(layer), reference.Spec(experts_per_token=2), x.double())
    assert ((out.double() - expected).abs().max() / expected.abs().max()).item() < 1e-5
    assert layer.stats["router_entropy"].item() == pytest.approx(reference_entropy(layer, x), rel=1e-5)


def test_router_dtype_float64_on_a_float32_layer_computes_the_scores_in_float64():
    data = {"type": "moe", "experts": 6, "experts_per_token": 2, "intermediate_size": 4, "router_dtype": "float64", **NO_LOSSES}
    layer = build(data, dtype=torch.float32)
    x, _ = inputs(32, 8, 0, dtype=torch.float32)
    layer(x)
    assert layer.stats["router_entropy"].item() == pytest.approx(reference_entropy(layer, x), rel=1e-12)


def margins(layer, x, k):
    """Per token, the gap between the k-th and (k+1)-th float64 logits (a small gap may flip in bfloat16)."""
    logits = x.double() @ layer.router.weight.double().T
    top = logits.topk(k + 1, dim=-1).values
    return top[:, k - 1] - top[:, k]


def test_router_dtype_on_a_bfloat16_layer():
    """float32 computes the logits from the bfloat16 values in float32; input rounds them to bfloat16.

    Both outputs are within bfloat16 tolerance of the float64 reference (on tokens whose choice cannot
    flip); they differ from each other; and the router entropy statistic shows which precision the
    logits had: float32's matches float64 to 1e-5, input's is off by more than 1e-4.
    """
    data = {"type": "moe", "experts": 6, "experts_per_token": 2, "intermediate_size": 4, **NO_LOSSES}
    layers = {dtype: build({**data, "router_dtype": dtype}, dtype=torch.bfloat16) for dtype in ("float32", "input")}
    x, _ = inputs(64, 8, 0, dtype=torch.bfloat16)
    expected = reference.moe(reference.leaf_parameters(layers["float32"]), reference.Spec(experts_per_token=2), x.double())
    safe = margins(layers["float32"], x, 2) > 0.1
    assert safe.sum() > 32
    outs = {}
    for dtype, layer in layers.items():
        outs[dtype] = layer(x).double()
        error = (outs[dtype][safe] - expected[safe]).abs().max() / expected.abs().max()
        assert error < 2**-5, (dtype, error.item())
    assert not torch.equal(outs["float32"], outs["input"])
    truth = reference_entropy(layers["float32"], x)
    assert layers["float32"].stats["router_entropy"].item() == pytest.approx(truth, rel=1e-5)
    assert abs(layers["input"].stats["router_entropy"].item() - truth) > 1e-4 * truth


# --- balanced routing ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_balanced_routing_exact_assignment_and_weights(implementation, training):
    data = {
        "type": "moe", "experts": 5, "experts_per_token": 2, "intermediate_size": 4, "routing": "balanced", "implementation": implementation,
        "routed_scaling_factor": 2.5, "router_per_expert_scale": {"enabled": True},
    }
    spec = reference.Spec(experts_per_token=2, routing="balanced", routed_scaling_factor=2.5)
    layer, _, routing = compare(data, spec, tokens=11, training=training)
    assert routing.chosen[:3] == [[0, 1], [2, 3], [4, 0]]
    counts = torch.bincount(torch.tensor([(t * 2 + j) % 5 for t in range(11) for j in range(2)]), minlength=5)
    assert layer.stats["tokens_per_expert"].tolist() == counts.tolist() == [5, 5, 4, 4, 4]


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_balanced_routing_counts_real_tokens_only(implementation):
    data = {"type": "moe", "experts": 4, "experts_per_token": 1, "intermediate_size": 4, "routing": "balanced", "implementation": implementation}
    layer = build(data)
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    mask = torch.tensor([[True, False, True, True, False], [False, True, True, False, True]])
    torch.testing.assert_close(layer(x, token_mask=mask)[mask], layer(x[mask]), rtol=1e-12, atol=1e-12)
    assert layer.stats["tokens_per_expert"].tolist() == [2, 2, 1, 1]


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_balanced_routing_noise_ignores_the_padding(implementation):
    # The real token of rank r takes the r-th row of draws: a masked input routes as its real tokens alone.
    data = {
        "type": "moe", "experts": 6, "experts_per_token": 2, "intermediate_size": 4, "routing": "balanced",
        "balanced_routing_noise": 0.5, "implementation": implementation,
    }
    layer = build(data).train()
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    mask = torch.tensor([[False, True, True, False, True], [True, False, False, True, True]])
    torch.manual_seed(3)
    masked = layer(x, token_mask=mask)[mask]
    counts = layer.stats["tokens_per_expert"]
    torch.manual_seed(3)
    torch.testing.assert_close(masked, layer(x[mask]), rtol=1e-12, atol=1e-12)
    assert torch.equal(counts, layer.stats["tokens_per_expert"])


def one_hot_experts_layer(data, experts):
    """H = E_r, I = 1, identity activation, no biases: expert e outputs x[0] · one_hot(e)."""
    layer = build({**data, "intermediate_size": 1, "activation": "identity", "add_linear_biases": False}, experts)
    with torch.no_grad():
        layer.experts.layer_1.weight.zero_()
        layer.experts.layer_1.weight[:, 0, 0] = 1
        layer.experts.layer_2.weight.zero_()
        for e in range(experts):
            layer.experts.layer_2.weight[e, e, 0] = 1
    return layer


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_balanced_routing_noise_skews_the_loads_and_keeps_k_distinct_experts(implementation):
    data = {"type": "moe", "experts": 8, "experts_per_token": 3, "routing": "balanced", "balanced_routing_noise": 0.5, "implementation": implementation}
    layer = one_hot_experts_layer(data, 8)
    x = torch.randn(64, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x[:, 0] = 1
    torch.manual_seed(0)
    out = layer(x)
    loads = layer.stats["tokens_per_expert"]
    assert loads.sum() == 64 * 3
    assert len(set(loads.tolist())) > 1, loads.tolist()
    assert ((out != 0).sum(-1) == 3).all()  # three distinct experts for every token
    assert (out != 0).sum(0).tolist() == loads.tolist()


# --- DeepSeek-V3 style, end to end ------------------------------------------------------------------------------

DEEPSEEK = {
    "type": "moe", "experts": 17, "shared_experts": 1, "experts_per_token": 4, "intermediate_size": 4, "gated": True,
    "activation": "silu", "routing": "aux_free", "router_score_function": "sigmoid", "expert_groups": 8,
    "expert_groups_per_token": 4, "routed_scaling_factor": 2.5, "add_linear_biases": False,
}
DEEPSEEK_BIAS = torch.arange(16, dtype=torch.float32).remainder(5).sub(2) / 16  # exact in float32


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_deepseek_v3_style_layer(implementation, training):
    spec = reference.Spec(
        activation="silu", gated=True, experts_per_token=4, shared_experts=1, routing="aux_free", score_function="sigmoid",
        expert_groups=8, expert_groups_per_token=4, routed_scaling_factor=2.5, correction_bias=DEEPSEEK_BIAS,
    )
    layer, x, routing = compare(
        {**DEEPSEEK, "implementation": implementation}, spec, tokens=24, training=training,
        setup=lambda layer: correction_bias(layer).copy_(DEEPSEEK_BIAS),
    )
    assert dict(layer.named_parameters())["shared.layer_1.weight"].shape == (8, 8)
    plain = reference.Spec(experts_per_token=4, routing="aux_free", score_function="sigmoid", correction_bias=DEEPSEEK_BIAS)
    ungrouped = reference.route(reference.leaf_parameters(layer), plain, x)
    assert any(set(a) != set(b) for a, b in zip(routing.chosen, ungrouped.chosen))
    assert layer.stats["tokens_per_expert"].tolist() == routing.tokens_per_expert(16)


# --- losses on normalized scores -------------------------------------------------------------------------------


def identity_router_layer(k=1, **fields):
    """H = E_r = 3, router weight = identity: the input rows are the logits."""
    layer = build({"type": "moe", "experts": 3, "experts_per_token": k, "intermediate_size": 2, **NO_LOSSES, **fields}, 3).train()
    with torch.no_grad():
        layer.router.weight.copy_(torch.eye(3))
    return layer


def test_load_balancing_loss_uses_normalized_sigmoid_scores():
    # sigmoid([0, 0, ln 3]) = [1/2, 1/2, 3/4] -> normalized [2/7, 2/7, 3/7]; token 2 is [ln 3, 0, 0].
    # top-1: experts 2 and 0: f = [1/2, 0, 1/2]; P = [5/14, 4/14, 5/14]; loss = 3 · (5/28 + 5/28) = 15/14.
    layer = identity_router_layer(1, router_score_function="sigmoid", auxiliary_loss_coefficient=0.1)
    layer(torch.tensor([[0, 0, LN3], [LN3, 0, 0]], dtype=torch.float64))
    assert layer.stats["load_balancing_loss"].item() == pytest.approx(15 / 14, rel=1e-12)


SEQUENCE_CASES = {
    # softmax([ln 4, ln 2, 0]) = [4/7, 2/7, 1/7] and rolled: P = [5/14, 6/14, 3/14]; top-2 {0, 1}, {1, 2}:
    # f = 3/(2·2) · [1, 2, 1]; L = 3/4 · 5/14 + 3/2 · 6/14 + 3/4 · 3/14 = 15/14 (the aux_loss formula gives 15/7).
    "softmax-top2": ({"experts_per_token": 2}, [[LN4, LN2, 0], [0, LN4, LN2]], None, 15 / 14),
    # normalized sigmoid [2/7, 2/7, 3/7] and [3/7, 2/7, 2/7]; top-1 {2}, {0}: f = 3/2 · [1, 0, 1]; L = 3/2 · 10/14 = 15/14.
    "sigmoid-top1": ({"experts_per_token": 1, "router_score_function": "sigmoid"}, [[0, 0, LN3], [LN3, 0, 0]], None, 15 / 14),
    # aux_free, sigmoid, bias [0, 3/8, 1/4]: selection [1/2, 7/8, 1] keeps token 0 on expert 2 and [3/4, 7/8, 3/4] moves
    # token 1 from expert 0 to 1, but f counts the top-1 of the unbiased scores (DeepSeek-V3 report, eq. 18):
    # f = 3/2 · [1, 0, 1] as in sigmoid-top1, L = 15/14 (the routed choice would give 3/2 · 9/14 = 27/28).
    "aux_free-bias": (
        {"experts_per_token": 1, "routing": "aux_free", "router_score_function": "sigmoid"}, [[0, 0, LN3], [LN3, 0, 0]],
        [0.0, 0.375, 0.25], 15 / 14,
    ),
}


@pytest.mark.parametrize("case", SEQUENCE_CASES)
def test_sequence_loss_hand_computed_two_dimensional(case):
    fields, logits, bias, value = SEQUENCE_CASES[case]
    layer = identity_router_layer(sequence_auxiliary_loss_coefficient=0.1, **fields)
    if bias is not None:
        with torch.no_grad():
            correction_bias(layer).copy_(torch.tensor(bias))
    layer(torch.tensor(logits, dtype=torch.float64))
    assert layer.stats["sequence_load_balancing_loss"].item() == pytest.approx(value, rel=1e-12)


def test_sequence_loss_hand_computed_per_batch_row_with_mask():
    # Row 0: the two real tokens of "softmax-top1" below (L = 9/8); row 1: one real token [0, 0, ln 2]:
    # P = [1/4, 1/4, 1/2], f = 3/1 · [0, 0, 1], L = 3/2; row 2: no real token, skipped. Mean: 21/16.
    # Row 0, top-1 of softmax([ln 2, 0, 0]) = [1/2, 1/4, 1/4] and rolled: P = [3/8, 3/8, 1/4], f = 3/2 · [1, 1, 0]: 9/8.
    layer = identity_router_layer(1, sequence_auxiliary_loss_coefficient=0.1)
    x = torch.full((3, 3, 3), float("nan"), dtype=torch.float64)
    x[0, 0], x[0, 2], x[1, 1] = (torch.tensor(row, dtype=torch.float64) for row in ([LN2, 0, 0], [0, LN2, 0], [0, 0, LN2]))
    mask = torch.tensor([[True, False, True], [False, True, False], [False, False, False]])
    layer(x, token_mask=mask)
    assert layer.stats["sequence_load_balancing_loss"].item() == pytest.approx(21 / 16, rel=1e-12)
    p = reference.leaf_parameters(layer)
    assert reference.sequence_loss(p, reference.Spec(), x, mask).item() == pytest.approx(21 / 16, rel=1e-12)


SEQUENCE_LAYER = {
    "type": "moe", "experts": 6, "experts_per_token": 2, "intermediate_size": 4, "routing": "aux_free", "router_score_function": "sigmoid",
    "router_normalization": {"type": "rms_norm"}, "router_bias": {"enabled": True}, "expert_groups": 3, "expert_groups_per_token": 1,
}
SEQUENCE_SPEC = {
    "experts_per_token": 2, "routing": "aux_free", "score_function": "sigmoid", "router_normalization": reference.Norm("rms_norm"),
    "correction_bias": BIAS, "expert_groups": 3, "expert_groups_per_token": 1,
}


@pytest.mark.parametrize("shape", ["2d", "3d-mask"])
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_sequence_loss_injected_gradient_equals_output_plus_coefficient_times_loss(implementation, shape):
    data = {**SEQUENCE_LAYER, "implementation": implementation}

    def make(alpha):
        layer = build({**data, "sequence_auxiliary_loss_coefficient": alpha}).train()
        with torch.no_grad():
            correction_bias(layer).copy_(BIAS)
        return layer

    with_loss, without = make(0.3), make(0.0)
    with_loss.aux_loss_scale = 0.5
    generator = torch.Generator().manual_seed(0)
    if shape == "2d":
        x, mask = torch.randn(13, 8, dtype=torch.float64, generator=generator), None
    else:
        x = torch.randn(3, 6, 8, dtype=torch.float64, generator=generator)
        mask = torch.rand(3, 6, generator=generator) > 0.3
        mask[2] = False  # a row without a real token is skipped
    kwargs = {} if mask is None else {"token_mask": mask}
    out, x_grad, grads = forward_backward(with_loss, x, **kwargs)
    spec = reference.Spec(**SEQUENCE_SPEC)
    loss = reference.sequence_loss(reference.leaf_parameters(with_loss), spec, x, mask)
    assert with_loss.stats["sequence_load_balancing_loss"].item() == pytest.approx(loss.item(), rel=1e-12)
    # The bias and the group limit move some routed choices away from the unbiased top-k the loss counts.
    routing = reference.route(reference.leaf_parameters(with_loss), spec, x.reshape(-1, 8)[mask.reshape(-1)] if mask is not None else x)
    assert any(sorted(row) != sorted(reference.top(scores.tolist(), 2)) for row, scores in zip(routing.chosen, routing.scores))

    x_leaf = x.clone().requires_grad_()
    plain = without(x_leaf, **kwargs)
    parameters = dict(without.named_parameters())  # the loss written with the layer's own parameters
    (plain.sum() + 0.5 * 0.3 * reference.sequence_loss(parameters, spec, x_leaf, mask)).backward()
    torch.testing.assert_close(out, plain.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(x_grad, torch.nan_to_num(x_leaf.grad), rtol=1e-9, atol=1e-12)
    for name, parameter in parameters.items():
        expected = parameter.grad if parameter.grad is not None else torch.zeros_like(parameter)
        torch.testing.assert_close(grads[name], expected, rtol=1e-9, atol=1e-12, msg=lambda m, n=name: f"{n}: {m}")
    assert (grads["router.weight"] - forward_backward(without, x, **kwargs)[2]["router.weight"]).abs().max() > 1e-4


def test_sequence_loss_left_to_the_loop_and_off_in_inference():
    layer = build({**SEQUENCE_LAYER, "sequence_auxiliary_loss_coefficient": 0.3}).train()
    layer.inject_aux_losses = False
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    _, x_grad, _ = forward_backward(layer, x)
    loss = reference.sequence_loss(reference.leaf_parameters(layer), reference.Spec(**{**SEQUENCE_SPEC, "correction_bias": None}), x)
    assert layer.aux_losses["sequence_load_balancing_loss"].item() == pytest.approx(0.3 * loss.item(), rel=1e-12)
    assert layer.aux_losses["sequence_load_balancing_loss"].requires_grad
    plain = build({**SEQUENCE_LAYER, "sequence_auxiliary_loss_coefficient": 0.0}).train()
    torch.testing.assert_close(x_grad, forward_backward(plain, x)[1], rtol=1e-12, atol=1e-12)
    # Inference: nothing injected.
    lossy = build({**SEQUENCE_LAYER, "sequence_auxiliary_loss_coefficient": 0.3}).eval()
    torch.testing.assert_close(forward_backward(lossy, x)[1], forward_backward(plain.eval(), x)[1], rtol=0, atol=0)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_load_balancing_loss_with_sigmoid_injected_gradient(implementation):
    data = {"type": "moe", "experts": 6, "experts_per_token": 2, "intermediate_size": 4, "router_score_function": "sigmoid", "implementation": implementation}
    with_loss = build({**data, **NO_LOSSES, "auxiliary_loss_coefficient": 0.3}).train()
    without = build({**data, **NO_LOSSES}).train()
    x = torch.randn(13, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    _, x_grad, grads = forward_backward(with_loss, x)
    spec = reference.Spec(experts_per_token=2, score_function="sigmoid")
    x_leaf = x.clone().requires_grad_()
    parameters = dict(without.named_parameters())
    (without(x_leaf).sum() + 0.3 * reference.load_balancing_loss(reference.route(parameters, spec, x_leaf))).backward()
    torch.testing.assert_close(x_grad, x_leaf.grad, rtol=1e-9, atol=1e-12)
    for name, parameter in parameters.items():
        expected = parameter.grad if parameter.grad is not None else torch.zeros_like(parameter)
        torch.testing.assert_close(grads[name], expected, rtol=1e-9, atol=1e-12, msg=lambda m, n=name: f"{n}: {m}")


# --- DeepSeek-V3: Hugging Face's block on identical weights ---------------------------------------------------


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_deepseek_v3_equals_hugging_face(implementation):
    """transformers' DeepseekV3MoE (sigmoid in fp32, e_score_correction_bias, 8 groups keep 4, top-4, × 2.5,
    one shared expert): the same outputs and input gradient in float32, the same choice."""
    transformers = pytest.importorskip("transformers", reason="HF parity needs transformers (pip install -e '.[dev]')")
    from transformers.models.deepseek_v3.modeling_deepseek_v3 import DeepseekV3MoE

    hidden, intermediate = 16, 8
    config = transformers.DeepseekV3Config(
        hidden_size=hidden, moe_intermediate_size=intermediate, n_routed_experts=16, num_experts_per_tok=4, n_group=8,
        topk_group=4, n_shared_experts=1, routed_scaling_factor=2.5, norm_topk_prob=True, hidden_act="silu",
    )
    config._experts_implementation = "eager"
    torch.manual_seed(0)
    block = DeepseekV3MoE(config).eval()
    with torch.no_grad():  # standalone HF blocks leave weights uninitialised: fill every parameter and the bias
        for parameter in block.parameters():
            parameter.normal_(0, 0.3)
        block.gate.e_score_correction_bias.copy_(DEEPSEEK_BIAS)
    layer = build({**DEEPSEEK, "intermediate_size": intermediate, "implementation": implementation}, hidden, dtype=torch.float32, randomize=False)
    layer.eval()
    with torch.no_grad():
        layer.router.weight.copy_(block.gate.weight)
        correction_bias(layer).copy_(block.gate.e_score_correction_bias)
        layer.experts.layer_1.weight.copy_(block.experts.gate_up_proj)
        layer.experts.layer_2.weight.copy_(block.experts.down_proj)
        shared = block.shared_experts
        layer.shared.layer_1.weight.copy_(torch.cat([shared.gate_proj.weight, shared.up_proj.weight]))
        layer.shared.layer_2.weight.copy_(shared.down_proj.weight)
    x = torch.randn(1, 40, hidden, generator=torch.Generator().manual_seed(0))
    x_ours, x_hf = x.clone().requires_grad_(), x.clone().requires_grad_()
    ours, theirs = layer(x_ours), block(x_hf)
    assert (ours - theirs).abs().max() / theirs.abs().max() <= 1e-5
    grad = torch.randn_like(ours)
    (ours * grad).sum().backward()
    (theirs * grad).sum().backward()
    assert (x_ours.grad - x_hf.grad).abs().max() / x_hf.grad.abs().max() <= 1e-4
    _, _, hf_experts = block.gate(x.reshape(-1, hidden))
    assert torch.equal(layer.stats["tokens_per_expert"], torch.bincount(hf_experts.reshape(-1), minlength=16))
