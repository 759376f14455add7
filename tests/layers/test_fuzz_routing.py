"""Property-based fuzzing of the MoE layer across the routing features (hypothesis).

A strategy draws MoE config dicts from all the routing features together: expert counts, routing
(aux_loss, sinkhorn, aux_free, balanced with noise), score function, normalization, scaling,
expert groups, capacity and drop policy, weight on input, shared experts (own width, gate), router
bias and per-expert scale, gated activations (gpt_oss_glu with a limit), router dtype, the loss
coefficients, jitter (target and distribution), dropout, load-scaled outputs, the aux_free bias-update rule,
schedule and target, recompute level and norms. Some draws break a rule on purpose: from_dict must
reject them with a ConfigError (never another exception) and they are assumed away; the tests count
the valid ones so that the properties are not vacuous.

For each valid config (float64, hidden 8, intermediate <= 6), on a drawn 2-D or 3-D input (1 token,
masked tokens, no real token), in training or inference:

1. looped, dropless and dropless_dynamic_shape give the same outputs, input gradients and parameter
   gradients (1e-10 relative) and identical stats (torch is seeded the same before each forward:
   jitter and balanced noise draw from it);
2. outputs and gradients are finite, the output has the input's shape, masked rows are zero with a
   zero gradient;
3. stats: tokens_per_expert sums to T·k; 0 <= dropped_tokens <= T·k, 0 without capacity; with
   capacity C, Σ_e min(count_e, C) = T·k - dropped_tokens; the loss stats are finite and >= 0;
4. recompute_level full gives what none gives, also when an automatic aux_free update moves the bias
   between the forward and its recompute (buffers compared too);
5. aux_free: the correction bias moves by bias_update_rate · sign(mean load - load_e) (0 or ± the rate) with the
   sign rule at a constant rate; otherwise it moves by a finite amount, and the ema rule's average stays a
   distribution.

Found by it: looped without a real token was outside the autograd graph (fixed; the last test keeps it).

Derandomized, no example database: the same examples on every run. FASTMOE_PROPERTY_SCALE multiplies
the number of examples (as tests/config/test_properties.py).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

torch = pytest.importorskip("torch", reason="the layer tests need torch (pip install torch==2.13.0)")

from fastmoe_cfg import ConfigError  # noqa: E402
from fastmoe_cfg.schemas import MLPBaseConfig  # noqa: E402
from fastmoe_cfg.schemas.enums import ActivationType, MLPRecomputeLevel, RouterDtype  # noqa: E402
from tests.config.test_properties import _settings  # noqa: E402  (derandomized, no database, FASTMOE_PROPERTY_SCALE)
from tests.layers.conftest import build  # noqa: E402

HIDDEN = 8
TOLERANCE = 1e-10  # relative to the largest value of the reference tensor (float64)
SCALE_FLOOR = 1e-4  # below it, TOLERANCE · SCALE_FLOOR absolute
EXAMPLES = 10  # valid configs per routing in the layer test
OMIT = object()  # a field left out of the dict (its default, or its derived value)
STAT_NAMES = (
    "tokens_per_expert", "dropped_tokens", "load_balancing_loss", "sequence_load_balancing_loss", "z_loss", "router_entropy",
)
LOSS_STATS = STAT_NAMES[2:]


def _one_in(n: int) -> st.SearchStrategy[bool]:
    """True about once in n draws; False is the simplest value (hypothesis starts from and shrinks to it)."""
    return st.integers(1, n).map(lambda i: i == n)


def _rarely(strategy: st.SearchStrategy[Any], one_in: int = 8) -> st.SearchStrategy[Any]:
    """`strategy` about once in `one_in` draws, else OMIT: a field that breaks a rule when set."""
    return _one_in(one_in).flatmap(lambda rare: strategy if rare else st.just(OMIT))


def _maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.just(OMIT), strategy)


# --------------------------------------------------------------------------- configs
NORMS = st.sampled_from([None, {}, {"type": "rms_norm"}, {"type": "layer_norm"}, {"type": "none"}])
ACTIVATIONS = st.sampled_from([None, *[a.value for a in ActivationType], "gpt_oss_glu", "gpt_oss_glu"])  # gpt_oss_glu more often
ROUTINGS = ["aux_loss", "sinkhorn", "aux_free", "balanced"]
BALANCED_IGNORES = (
    "router_input_scale", "router_normalization", "jitter_eps", "router_score_function", "normalize_expert_weights",
    "router_weight_on_input", "router_dtype",
)


@st.composite
def moe_configs(draw: st.DrawFn, routing: str | None = None) -> dict[str, Any]:
    """A `type: moe` dict with small counts (`routing`, or any); mostly valid, with occasional rule-breaking fields."""
    routed = draw(st.integers(1, 6))
    shared = draw(st.integers(0, 2))
    k = draw(st.integers(1, routed))
    if draw(_one_in(16)):
        k = routed + 1  # breaks experts_per_token + shared_experts <= experts
    routing = routing or draw(st.sampled_from(ROUTINGS))
    data: dict[str, Any] = {
        "type": "moe", "experts": routed + shared, "shared_experts": shared, "experts_per_token": k, "routing": routing,
        "intermediate_size": draw(st.integers(1, 6)),
        "router_score_function": draw(_maybe(st.sampled_from(["softmax", "sigmoid"]))),
        "normalize_expert_weights": draw(_maybe(st.booleans())),
        "routed_scaling_factor": draw(_maybe(st.sampled_from([0.5, 2.5]) | st.floats(0.1, 3.0))),
        # A load-balancing loss applies with aux_loss only (another routing with a non-zero coefficient is a rare rule break).
        "auxiliary_loss_coefficient": draw(
            _maybe(st.sampled_from([0.0, 0.01, 0.5])) if routing == "aux_loss" else _rarely(st.sampled_from([0.0, 0.01]), 24)
        ),
        "sequence_auxiliary_loss_coefficient": draw(_maybe(st.sampled_from([0.0, 0.01, 0.7]))),
        "z_loss_coefficient": draw(_maybe(st.sampled_from([0.0, 0.001, 0.3]))),
        "jitter_eps": draw(_maybe(st.sampled_from([0.0, 0.1]) | st.floats(0.0, 0.9))),
        "dropout": draw(_maybe(st.sampled_from([0.0, 0.3]) | st.floats(0.0, 0.9))),
        # expert_load_scaling has no effect (a rule break) when every token picks every routed expert.
        "expert_load_scaling": draw(_maybe(st.booleans()) if k < routed else _rarely(st.just(True), 24)),
        "router_dtype": draw(_maybe(st.sampled_from([d.value for d in RouterDtype]))),
        "router_bias": {"enabled": draw(st.booleans())},
        "router_per_expert_scale": {"enabled": draw(st.booleans())},
        "add_linear_biases": draw(st.booleans()),
        "recompute_level": draw(st.sampled_from([level.value for level in MLPRecomputeLevel])),
        "pre_norm": draw(NORMS),
        "post_norm": draw(NORMS),
    }
    # Gated activation; gpt_oss_glu needs gated, activation_limit needs gpt_oss_glu.
    activation = draw(ACTIVATIONS)
    data["activation"] = activation
    data["gated"] = not draw(_one_in(16)) if activation == "gpt_oss_glu" else draw(st.booleans())
    data["activation_limit"] = draw(_maybe(st.floats(0.1, 7.0)) if activation == "gpt_oss_glu" else _rarely(st.just(1.0), 24))
    # Group-limited routing: groups divide the routed experts, >= 2 per group; aux_loss / aux_free only.
    options = [g for g in (2, 3) if routed % g == 0 and routed >= 2 * g]
    if options and draw(st.booleans() if routing in ("aux_loss", "aux_free") else _one_in(16)):
        groups = draw(st.sampled_from(options))
        data["expert_groups"] = groups
        data["expert_groups_per_token"] = draw(_maybe(st.integers(1, groups)))
    # Capacity.
    capacity = draw(st.one_of(st.none(), st.sampled_from([0.5, 1.0, 1.25]), st.floats(0.1, 2.5)))
    data["capacity_factor"] = capacity
    policies = st.sampled_from(["probability", "position"])
    data["drop_policy"] = draw(_maybe(policies) if capacity is not None else _rarely(policies, 24))
    # Shared experts: own width and gate.
    if shared:
        data["shared_expert_intermediate_size"] = draw(_maybe(st.integers(1, 6)))
        data["shared_expert_gate"] = {"enabled": draw(st.booleans())}
    else:
        data["shared_expert_intermediate_size"] = draw(_rarely(st.just(3), 24))
        data["shared_expert_gate"] = draw(_rarely(st.just({"enabled": True}), 24))
    # Weight on the input (Llama-4): needs k = 1 and unnormalized weights; mostly made so.
    if draw(_one_in(5)):
        data["router_weight_on_input"] = True
        if not draw(_one_in(4)):
            data["experts_per_token"] = 1
            data["normalize_expert_weights"] = False
    # Jitter's target and law need jitter_eps > 0 (else rarely).
    jitters = data["jitter_eps"] is not OMIT and data["jitter_eps"] > 0
    targets = st.sampled_from(["router_logits", "router_input", "layer_input"])
    data["jitter_target"] = draw(_maybe(targets) if jitters else _rarely(targets, 24))
    data["jitter_distribution"] = draw(_maybe(st.sampled_from(["uniform", "normal"])) if jitters else _rarely(st.just("normal"), 24))
    # Routing-specific fields, rarely under another routing.
    aux_free, balanced = routing == "aux_free", routing == "balanced"
    rule = draw(_maybe(st.sampled_from(["sign", "ema"])) if aux_free else _rarely(st.just("sign"), 24))
    data["bias_update_rule"] = rule
    data["bias_update_ema_decay"] = draw(_maybe(st.sampled_from([0.5, 0.99])) if rule == "ema" else _rarely(st.just(0.9), 24))
    schedule = draw(_maybe(st.sampled_from(["constant", "cosine_decay", "linear_warmup"])) if aux_free else _rarely(st.just("constant"), 24))
    data["bias_update_schedule"] = schedule
    scheduled = schedule in ("cosine_decay", "linear_warmup")
    data["bias_update_total_steps"] = draw(st.integers(1, 20) if scheduled and not draw(_one_in(24)) else _rarely(st.just(10), 24))
    data["correction_bias_target"] = draw(_maybe(st.sampled_from(["selection", "logits"])) if aux_free else _rarely(st.just("logits"), 24))
    data["bias_update_rate"] = draw(_maybe(st.sampled_from([0.0, 0.001, 0.25])) if aux_free else _rarely(st.just(0.1), 24))
    data["automatic_bias_update"] = draw(_maybe(st.booleans()) if aux_free else _rarely(st.just(True), 24))
    noise = st.sampled_from([0.0, 0.3, 1.0]) | st.floats(0.0, 1.0)
    data["balanced_routing_noise"] = draw(_maybe(noise) if balanced else _rarely(noise, 24))
    # balanced ignores the router's scores: the fields that only shape them are rule breaks there, kept rarely.
    if balanced and not draw(_one_in(24)):
        for name in BALANCED_IGNORES:
            data[name] = OMIT
        if data["jitter_target"] != "layer_input":  # jitter_eps was omitted: its target and law go too
            data["jitter_target"] = data["jitter_distribution"] = OMIT
        if data.get("drop_policy") == "position" and not data.get("balanced_routing_noise"):
            data["drop_policy"] = OMIT
    return {name: value for name, value in data.items() if value is not OMIT}


def validate(data: dict[str, Any]):
    """The config, or None when the rules reject it; any exception but ConfigError fails the test."""
    try:
        return MLPBaseConfig.from_dict(data)
    except ConfigError:
        return None


def test_drawn_configs_are_valid_or_config_errors():
    # The rule machinery alone (no torch work): many draws, only ConfigError, a healthy share of valid ones.
    counts: Counter[str] = Counter()

    @_settings(300)
    @given(moe_configs())
    def check(data: dict[str, Any]) -> None:
        config = validate(data)
        counts["valid" if config is not None else "invalid"] += 1
        if config is not None:
            counts[f"routing:{config.routing.value}"] += 1
            counts["capacity"] += config.capacity_factor is not None
            counts["groups"] += config.expert_groups > 1
            counts["weight_on_input"] += config.router_weight_on_input

    check()
    total = counts["valid"] + counts["invalid"]
    assert counts["invalid"] >= 0.05 * total, counts  # the rules are exercised
    assert counts["valid"] >= 0.5 * total, counts  # and the layer properties are not vacuous
    features = [f"routing:{routing}" for routing in ROUTINGS] + ["capacity", "groups", "weight_on_input"]
    for feature in features:
        assert counts[feature] > 0, (feature, counts)


# --------------------------------------------------------------------------- inputs
@st.composite
def inputs(draw: st.DrawFn) -> dict[str, Any]:
    """Shape [T, H] or [B, S, H] (1 token included), an optional token mask (possibly all False), seeds, train/eval."""
    shape = draw(st.one_of(st.tuples(st.integers(1, 9)), st.tuples(st.integers(1, 3), st.integers(1, 4))))
    mask_kind = draw(st.sampled_from(["none", "random", "empty", "random", "random"]))
    mask = None
    if mask_kind == "random":
        mask = draw(st.lists(st.booleans().map(lambda b: not b), min_size=_numel(shape), max_size=_numel(shape)))
    elif mask_kind == "empty":
        mask = [False] * _numel(shape)
    return {"shape": shape, "mask": mask, "seed": draw(st.integers(0, 2**16)), "training": draw(st.booleans())}


def _numel(shape: tuple[int, ...]) -> int:
    result = 1
    for size in shape:
        result *= size
    return result


# --------------------------------------------------------------------------- checks
def assert_close(actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    assert actual.shape == expected.shape, f"{what}: shape {list(actual.shape)} != {list(expected.shape)}"
    if not expected.numel():
        return
    # Relative to the largest reference value, floored at SCALE_FLOOR: a gradient that is 0 up to rounding
    # (sigmoid weights normalized over one expert: d[s / (s + 1e-20)] ~ 1e-20) is rounding on both sides.
    error = (actual - expected).abs().max() / expected.abs().max().clamp_min(SCALE_FLOOR)
    assert error <= TOLERANCE, f"{what}: relative error {error:.3g}"


def assert_same_run(actual, expected, what: str) -> None:
    """Outputs, input gradients, parameter gradients (within TOLERANCE), stats and buffers (identical) of two runs."""
    (out, x_grad, grads, stats, buffers), (out_e, x_grad_e, grads_e, stats_e, buffers_e) = actual, expected
    assert_close(out, out_e, f"{what}: output")
    assert_close(x_grad, x_grad_e, f"{what}: input gradient")
    assert grads.keys() == grads_e.keys()
    for name in grads_e:
        assert_close(grads[name], grads_e[name], f"{what}: gradient of {name}")
    for name in STAT_NAMES:
        assert torch.equal(stats[name], stats_e[name]), f"{what}: stats[{name}] {stats[name]} != {stats_e[name]}"
    assert buffers.keys() == buffers_e.keys()
    for name in buffers_e:
        assert torch.equal(buffers[name], buffers_e[name]), f"{what}: buffer {name} {buffers[name]} != {buffers_e[name]}"


def run(data: dict[str, Any], case: dict[str, Any], correction_bias: torch.Tensor | None):
    """Build (same parameters for every variant), forward and backward with torch seeded.

    Returns ((out, x_grad, grads, stats, buffers), layer, x), the buffers after backward.
    """
    layer = build(data, HIDDEN).train(case["training"])
    if correction_bias is not None:
        layer.router_correction_bias.copy_(correction_bias)
    generator = torch.Generator().manual_seed(case["seed"])
    x = torch.randn(*case["shape"], HIDDEN, dtype=torch.float64, generator=generator)
    grad = torch.randn(*case["shape"], HIDDEN, dtype=torch.float64, generator=generator)
    kwargs = {} if case["mask"] is None else {"token_mask": torch.tensor(case["mask"]).view(case["shape"])}
    torch.manual_seed(case["seed"])  # jitter and balanced noise
    x = x.requires_grad_()
    out = layer(x, **kwargs)
    assert out.requires_grad, "the output is not in the autograd graph"
    (out * grad).sum().backward()
    zeros = torch.zeros_like
    grads = {name: (p.grad if p.grad is not None else zeros(p)) for name, p in layer.named_parameters()}
    x_grad = x.grad if x.grad is not None else zeros(x)
    buffers = {name: buffer.clone() for name, buffer in layer.named_buffers()}  # aux_free: bias, pending loads
    return (out.detach(), x_grad, grads, dict(layer.stats), buffers), layer, x


def check_invariants(result, layer, x, case: dict[str, Any]) -> None:
    out, x_grad, grads, stats, _ = result
    config = layer.config
    assert out.shape == x.shape and x_grad.shape == x.shape
    assert torch.isfinite(out).all() and torch.isfinite(x_grad).all()
    for name, g in grads.items():
        assert torch.isfinite(g).all(), f"gradient of {name} is not finite"
    mask = torch.ones(case["shape"], dtype=torch.bool) if case["mask"] is None else torch.tensor(case["mask"]).view(case["shape"])
    assert torch.equal(out[~mask], torch.zeros_like(out[~mask])), "a masked row has an output"
    assert torch.equal(x_grad[~mask], torch.zeros_like(x_grad[~mask])), "a masked row has a gradient"

    tokens, k = int(mask.sum()), config.experts_per_token
    counts = stats["tokens_per_expert"]
    assert counts.shape == (config.experts - config.shared_experts,) and (counts >= 0).all()
    assert int(counts.sum()) == tokens * k, f"tokens_per_expert {counts.tolist()} does not sum to {tokens} · {k}"
    dropped = int(stats["dropped_tokens"])
    assert 0 <= dropped <= tokens * k
    capacity = layer.capacity(tokens)
    if config.capacity_factor is None:
        assert capacity is None and dropped == 0
    else:
        kept = int(counts.clamp(max=capacity).sum())
        assert kept == tokens * k - dropped, f"capacity {capacity}, counts {counts.tolist()}: kept {kept}, dropped {dropped}"
    for name in LOSS_STATS:
        value = stats[name]
        assert value.numel() == 1 and torch.isfinite(value) and value >= 0, f"stats[{name}] = {value}"


def check_bias_update(layer, stats, before: torch.Tensor, training: bool) -> None:
    """aux_free: after the forward (automatic or not) and update_bias(), bias - before = rate · sign(mean load - load)
    (sign rule, constant rate); otherwise a finite move, and the ema rule's average a distribution."""
    config = layer.config
    if config.bias_update_rule.value != "sign" or config.bias_update_schedule.value != "constant":
        layer.update_bias()
        assert torch.isfinite(layer.router_correction_bias).all()
        if layer.router_load_ema is not None:
            ema = layer.router_load_ema.double()
            assert (ema >= 0).all() and abs(ema.sum().item() - 1) <= 1e-5, f"ema {ema.tolist()}"
        return
    layer.update_bias()  # a no-op after an automatic update (the loads were reset)
    rate = layer.config.bias_update_rate
    load = stats["tokens_per_expert"].double() if training else torch.zeros(len(before), dtype=torch.float64)
    expected = rate * torch.sign(load.mean() - load) * (load.sum() > 0)
    change = (layer.router_correction_bias - before).double()
    steps = torch.round(change / rate) if rate else torch.zeros_like(change)
    assert set(steps.tolist()) <= {-1.0, 0.0, 1.0}, f"bias moved by {change.tolist()} (rate {rate})"
    assert (change - expected).abs().max() <= 1e-6, f"bias moved by {change.tolist()}, expected {expected.tolist()}"


@pytest.mark.parametrize("routing", ROUTINGS)
def test_fuzzed_layer_properties(routing):
    # One routing per run of EXAMPLES examples (a single run of 4 · EXAMPLES drew some routings only once or twice).
    counts: Counter[str] = Counter()

    @_settings(EXAMPLES)
    @given(moe_configs(routing), inputs())
    def check(data: dict[str, Any], case: dict[str, Any]) -> None:
        config = validate(data)
        counts["valid" if config is not None else "invalid"] += 1
        assume(config is not None)
        counts["masked"] += case["mask"] is not None
        counts["no token"] += case["mask"] is not None and not any(case["mask"])
        counts["capacity"] += config.capacity_factor is not None
        note = f"config {json.dumps(data)}\ncase {case}"

        bias = None
        if config.routing.value == "aux_free":  # a random correction bias, so that it changes choices
            generator = torch.Generator().manual_seed(case["seed"])
            bias = (0.3 * torch.randn(config.experts - config.shared_experts, generator=generator)).float()
        reference, layer, x = run({**data, "implementation": "looped"}, case, bias)
        check_invariants(reference, layer, x, case)
        if bias is not None:
            check_bias_update(layer, reference[3], bias, case["training"])
        for name, variant in {
            "dropless": {"implementation": "dropless"},
            "dropless_dynamic_shape": {"implementation": "dropless", "dropless_dynamic_shape": True},
        }.items():
            assert_same_run(run({**data, **variant}, case, bias)[0], reference, f"{name} vs looped\n{note}")
        # aux_free: automatic updates of 0.25, the hard case for recompute: the bias moves between the forward
        # and its recompute, which must still route as the forward did (and neither count nor update again).
        moving = {"automatic_bias_update": True, "bias_update_rate": 0.25} if bias is not None else {}
        none = run({**data, **moving, "implementation": "dropless", "recompute_level": "none"}, case, bias)[0]
        full = run({**data, **moving, "implementation": "dropless", "recompute_level": "full"}, case, bias)[0]
        assert_same_run(full, none, f"recompute full vs none\n{note}")

    check()
    total = counts["valid"] + counts["invalid"]
    assert counts["valid"] >= 0.5 * total, counts
    for feature in ("masked", "no token", "capacity"):
        assert counts[feature] > 0, (feature, counts)


# --------------------------------------------------------------------------- found by the fuzzing
@pytest.mark.parametrize("implementation", ["looped", "dropless"])
def test_without_tokens_the_output_is_in_the_autograd_graph(implementation):
    # With every token masked, and no shared expert or affine post_norm, looped's output was a fresh zeros
    # tensor outside the autograd graph, so backward raised "element 0 of tensors does not require grad";
    # test_token_mask.py's all-masked test has a shared expert and runs dropless, so it did not see it.
    layer = build({"type": "moe", "experts": 2, "intermediate_size": 2, "implementation": implementation})
    x = torch.randn(3, HIDDEN, dtype=torch.float64, requires_grad=True)
    out = layer(x, token_mask=torch.zeros(3, dtype=torch.bool))
    out.sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))
