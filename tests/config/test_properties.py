"""Property-based tests of the config loader (hypothesis).

1. Random valid MoE / dense configs survive `to_dict` -> `dump_yaml` -> `load_text`
   (set fields only, and resolved), with the provenance of derived fields kept.
2. Random mutations of valid YAML texts (and bytes) only ever raise `ConfigError`,
   and every problem is located in the file: integer line and column >= 1.
3. The rendered `ConfigError` has one line per problem, each `x.yaml:<line>:<col>: `.

Every property is derandomized (same examples on every run) and keeps no example
database, so CI runs are reproducible; FASTMOE_PROPERTY_SCALE multiplies the number
of examples.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fastmoe_cfg.config.errors import ConfigError
from fastmoe_cfg.config.loader import load_file, load_text
from fastmoe_cfg.config.yaml_writer import dump_yaml
from fastmoe_cfg.schemas import (
    ActivationType,
    DropPolicy,
    HybridMoEMLPConfig,
    MLPBaseConfig,
    MLPConfig,
    MLPRecomputeLevel,
    MoEImplementation,
    MoEMLPConfig,
    RouterDtype,
    RouterScoreFunction,
    RoutingType,
)

# ruamel warns (instead of failing) on an anchor defined twice, which duplicated lines produce.
pytestmark = pytest.mark.filterwarnings("ignore::ruamel.yaml.error.ReusedAnchorWarning")

FILE = "x.yaml"
EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"


# More examples for a long local hunt: FASTMOE_PROPERTY_SCALE=20 python -m pytest tests/config/test_properties.py
SCALE = float(os.environ.get("FASTMOE_PROPERTY_SCALE", "1"))


def _settings(examples: int) -> settings:
    return settings(
        max_examples=max(1, round(examples * SCALE)),
        deadline=None,
        derandomize=True,
        database=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )


# --------------------------------------------------------------------------- valid configs
finite = st.floats(allow_nan=False, allow_infinity=False)
non_negative = st.floats(min_value=0, allow_nan=False, allow_infinity=False)
positive = st.floats(min_value=0, exclude_min=True, allow_nan=False, allow_infinity=False)
optional_scale = st.one_of(st.none(), non_negative)


@st.composite
def initializations(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from([None, "normal", "uniform", "fill"]))
    data: dict[str, Any] = {} if kind is None else {"type": kind}
    if kind in (None, "normal"):
        data.update(draw(st.fixed_dictionaries({}, optional={"std": non_negative, "mean": finite})))
        bounds = draw(st.sampled_from(["none", "min", "max", "both"]))
        if bounds == "both":
            low, high = draw(st.tuples(finite, finite).filter(lambda pair: pair[0] != pair[1]))
            data["min"], data["max"] = min(low, high), max(low, high)
        elif bounds != "none":
            data[bounds] = draw(st.one_of(st.none(), finite))
    elif kind == "uniform":
        data.update(draw(st.fixed_dictionaries({}, optional={"scale": non_negative, "mean": finite})))
    else:
        data["value"] = draw(finite)
    return data


parameters = st.fixed_dictionaries(
    {}, optional={"initialization": st.one_of(st.none(), initializations()), "lr_scale": optional_scale, "weight_decay": st.none()}
)
optional_parameters = st.fixed_dictionaries(
    {},
    optional={
        "initialization": st.one_of(st.none(), initializations()),
        "lr_scale": optional_scale,
        "enabled": st.one_of(st.none(), st.booleans()),
    },
)
linears = st.fixed_dictionaries({}, optional={"weight": parameters, "lr_scale": optional_scale, "apply_peft": st.none()})
affine_linears = st.fixed_dictionaries(
    {}, optional={"weight": parameters, "lr_scale": optional_scale, "bias": optional_parameters, "apply_peft": st.none()}
)


@st.composite
def normalizations(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from([None, "layer_norm", "rms_norm", "fixed_rms_norm", "none"]))
    data: dict[str, Any] = {} if kind is None else {"type": kind}
    # lr_scale only where there are parameters (null anywhere); implementation: the torch ones (Fast-LLM's kernels are refused)
    if kind in ("none", "fixed_rms_norm"):
        optional = {"lr_scale": st.none(), **({"epsilon": positive} if kind == "fixed_rms_norm" else {})}
        data.update(draw(st.fixed_dictionaries({}, optional=optional)))
        return data
    optional: dict[str, st.SearchStrategy[Any]] = {
        "epsilon": positive,
        "zero_centered": st.booleans(),
        "weight": parameters,
        "lr_scale": optional_scale,
        "implementation": st.sampled_from(["auto", "torch"]),
    }
    if kind in (None, "layer_norm"):
        optional["bias"] = parameters
    data.update(draw(st.fixed_dictionaries({}, optional=optional)))
    return data


def _enum(enum_class: Any) -> st.SearchStrategy[str]:
    return st.sampled_from([member.value for member in enum_class])


COMMON_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "format_version": st.one_of(st.none(), st.just(1)),
    "activation": st.one_of(st.none(), _enum(ActivationType)),  # gpt_oss_glu: see `activations`
    "add_linear_biases": st.booleans(),
    "gated": st.booleans(),
    "intermediate_size": st.one_of(st.integers(1, 65536), st.integers(1, 2**63 - 1)),  # configs hold 64-bit ints
    "layer_1": affine_linears,
    "layer_2": affine_linears,
    "pre_norm": st.one_of(st.none(), normalizations()),
    "post_norm": st.one_of(st.none(), normalizations()),
    "lr_scale": optional_scale,
    "recompute_level": _enum(MLPRecomputeLevel),
    "dropout": st.floats(min_value=0, max_value=1, exclude_max=True),
}

MOE_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "routing": _enum(RoutingType),
    "router_normalization": st.one_of(st.none(), normalizations()),
    "router_scale": optional_parameters,
    "router_input_scale": positive,
    "router_per_expert_scale": optional_parameters,
    "router": linears,
    "z_loss_coefficient": non_negative,
    "jitter_eps": st.floats(min_value=0, max_value=1, exclude_max=True),
    "dropless_dynamic_shape": st.booleans(),
    "implementation": _enum(MoEImplementation),
    "router_score_function": st.one_of(st.none(), _enum(RouterScoreFunction)),
    "routed_scaling_factor": positive,
    "router_bias": optional_parameters,
    "sequence_auxiliary_loss_coefficient": non_negative,
    "router_dtype": _enum(RouterDtype),
}


MOE_DEFAULTS = {"experts": 2, "experts_per_token": 1, "shared_experts": 0}


@st.composite
def expert_counts(draw: st.DrawFn) -> dict[str, int]:
    """experts in 1..64, experts_per_token >= 1, shared_experts >= 0, their sum <= experts; some keys omitted."""
    experts = draw(st.integers(1, 64))
    per_token = draw(st.integers(1, experts))
    shared = draw(st.integers(0, experts - per_token))
    data = {"experts": experts, "experts_per_token": per_token, "shared_experts": shared}
    omitted = draw(st.sets(st.sampled_from(sorted(data))))
    effective = {**data, **{name: MOE_DEFAULTS[name] for name in omitted}}
    if effective["experts_per_token"] + effective["shared_experts"] > effective["experts"]:
        omitted = set()  # an omitted key takes its default, which must keep the rule
    return {name: value for name, value in data.items() if name not in omitted}


def _maybe(draw: st.DrawFn, data: dict[str, Any], name: str, strategy: st.SearchStrategy[Any]) -> None:
    """Sets `data[name]` to a drawn value, or leaves it out."""
    if draw(st.booleans()):
        data[name] = draw(strategy)


def activations(draw: st.DrawFn, data: dict[str, Any]) -> None:
    """gpt_oss_glu needs gated: true; activation_limit only applies to it (and may be null anywhere)."""
    if data.get("activation") == ActivationType.gpt_oss_glu.value:
        data["gated"] = True
        _maybe(draw, data, "activation_limit", st.one_of(st.none(), positive))
    else:
        _maybe(draw, data, "activation_limit", st.none())


def routing_family_fields(draw: st.DrawFn, data: dict[str, Any]) -> None:
    """The fields of the other MoE families, each drawn only where its rules allow it (omitted keys take defaults)."""
    experts = data.get("experts", MOE_DEFAULTS["experts"])
    per_token = data.get("experts_per_token", MOE_DEFAULTS["experts_per_token"])
    shared = data.get("shared_experts", MOE_DEFAULTS["shared_experts"])
    routing = data.get("routing", RoutingType.aux_loss.value)
    routed = experts - shared

    # Group-limited routing: groups dividing the routed experts, 2+ experts each, under aux_loss or aux_free.
    if routing in (RoutingType.aux_loss.value, RoutingType.aux_free.value):
        groups = draw(st.sampled_from([g for g in range(1, routed // 2 + 1) if routed % g == 0] or [1]))
        if groups > 1 or draw(st.booleans()):
            data["expert_groups"] = groups
        per_group = routed // groups
        kept = [g for g in range(1, groups + 1) if groups == 1 or g * per_group >= per_token]
        _maybe(draw, data, "expert_groups_per_token", st.one_of(st.none(), st.sampled_from(kept)))

    # The load-balancing loss exists under aux_loss only: another routing takes 0 (or null, derived).
    coefficient = non_negative if routing == RoutingType.aux_loss.value else st.just(0.0)
    _maybe(draw, data, "auxiliary_loss_coefficient", st.one_of(st.none(), coefficient))

    # Settings of one routing type only (null is always allowed).
    for name, owner, strategy in (
        ("bias_update_rate", RoutingType.aux_free, non_negative),
        ("automatic_bias_update", RoutingType.aux_free, st.booleans()),
        ("balanced_routing_noise", RoutingType.balanced, st.floats(0, 1)),
    ):
        _maybe(draw, data, name, st.one_of(st.none(), strategy) if routing == owner.value else st.none())

    # Issue 19: load scaling acts unless every token picks every routed expert; jitter's target and law need
    # jitter_eps > 0 (and, under balanced, the layer input); the bias-update fields belong to aux_free.
    _maybe(draw, data, "expert_load_scaling", st.booleans() if per_token < routed else st.just(False))
    jitter = data.get("jitter_eps", 0) > 0
    targets = ["layer_input"] if routing == RoutingType.balanced.value else ["router_logits", "router_input", "layer_input"]
    _maybe(draw, data, "jitter_target", st.one_of(st.none(), st.sampled_from(targets)) if jitter else st.none())
    _maybe(draw, data, "jitter_distribution", st.one_of(st.none(), st.sampled_from(["uniform", "normal"])) if jitter else st.none())
    if routing == RoutingType.aux_free.value:
        rule = draw(st.sampled_from([None, "sign", "ema"]))
        if rule is not None:
            data["bias_update_rule"] = rule
        _maybe(draw, data, "bias_update_ema_decay", st.one_of(st.none(), st.floats(0, 1, exclude_min=True, exclude_max=True)) if rule == "ema" else st.none())
        schedule = draw(st.sampled_from([None, "constant", "cosine_decay", "linear_warmup"]))
        if schedule is not None:
            data["bias_update_schedule"] = schedule
        if schedule in ("cosine_decay", "linear_warmup"):
            data["bias_update_total_steps"] = draw(st.integers(1, 10**6))
        _maybe(draw, data, "correction_bias_target", st.one_of(st.none(), st.sampled_from(["selection", "logits"])))
    else:
        for name in ("bias_update_rule", "bias_update_ema_decay", "bias_update_schedule", "correction_bias_target"):
            _maybe(draw, data, name, st.none())

    capacity = draw(st.one_of(st.none(), positive))
    if capacity is not None or draw(st.booleans()):
        data["capacity_factor"] = capacity
    _maybe(draw, data, "drop_policy", st.none() if capacity is None else st.one_of(st.none(), _enum(DropPolicy)))

    if shared > 0:
        _maybe(draw, data, "shared_expert_intermediate_size", st.one_of(st.none(), st.integers(1, 65536)))
        _maybe(draw, data, "shared_expert_gate", optional_parameters)
    else:
        _maybe(draw, data, "shared_expert_intermediate_size", st.none())

    # router_weight_on_input: one expert per token whose weight is not renormalised to 1.
    _maybe(draw, data, "normalize_expert_weights", st.one_of(st.none(), st.booleans()))
    if per_token == 1 and draw(st.booleans()):
        data["router_weight_on_input"] = True
        data["normalize_expert_weights"] = False
    else:
        _maybe(draw, data, "router_weight_on_input", st.just(False))


@st.composite
def shuffled(draw: st.DrawFn, data: dict[str, Any]) -> dict[str, Any]:
    keys = draw(st.permutations(list(data)))
    return {key: data[key] for key in keys}


HYBRID_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "format_version": COMMON_FIELDS["format_version"],
    "pre_norm": COMMON_FIELDS["pre_norm"],
    "post_norm": COMMON_FIELDS["post_norm"],
    "lr_scale": optional_scale,
}


@st.composite
def hybrid_configs(draw: st.DrawFn) -> dict[str, Any]:
    """`type: hybrid_moe` within Fast-LLM's rules: routed without shared experts, the branches agreeing on gated and activation."""
    data: dict[str, Any] = {"type": "hybrid_moe", **draw(st.fixed_dictionaries({}, optional=HYBRID_FIELDS))}
    dense = draw(valid_configs(kinds=(None, "mlp"), hybrid=False))
    routed = draw(valid_configs(kinds=("moe",), hybrid=False).filter(lambda routed: not routed.get("shared_experts")))
    for name in ("gated", "activation", "activation_limit"):
        if name in dense:
            routed[name] = dense[name]
        else:
            routed.pop(name, None)
    _maybe(draw, data, "dense", st.just(dense))
    if "dense" not in data:  # the default dense branch: gated false, activation derived
        routed = {name: value for name, value in routed.items() if name not in ("gated", "activation", "activation_limit")}
    data["routed"] = routed
    return draw(shuffled(data))


@st.composite
def valid_configs(draw: st.DrawFn, kinds: tuple[str | None, ...] = (None, "mlp", "moe"), hybrid: bool = True) -> dict[str, Any]:
    """Plain data of a valid `MLPBaseConfig`: dense (`type: mlp` or omitted), `type: moe` or, one time in eight
    (a hybrid validates two configs: its share is kept small for the test time), `type: hybrid_moe`."""
    if hybrid and draw(st.integers(0, 7)) == 0:
        return draw(hybrid_configs())
    kind = draw(st.sampled_from(kinds))
    data: dict[str, Any] = draw(st.fixed_dictionaries({}, optional=COMMON_FIELDS))
    if kind is not None:
        data["type"] = kind
    activations(draw, data)
    if kind == "moe":
        data.update(draw(st.fixed_dictionaries({}, optional=MOE_FIELDS)))
        data.update(draw(expert_counts()))
        routing_family_fields(draw, data)
        if data.get("routing") == RoutingType.balanced.value:
            # balanced ignores the router's scores: the settings of the scores keep their neutral values.
            for name in BALANCED_IGNORES:
                data.pop(name, None)
            if data.get("drop_policy") == "position" and not data.get("balanced_routing_noise"):
                del data["drop_policy"]
            if "jitter_eps" not in data:  # its target and law go with it
                data.pop("jitter_target", None)
                data.pop("jitter_distribution", None)
    return draw(shuffled(data))


BALANCED_IGNORES = (
    "router_input_scale", "router_normalization", "jitter_eps", "router_score_function", "normalize_expert_weights",
    "router_weight_on_input", "router_dtype",
)


def _expected_class(data: dict[str, Any]) -> type[MLPBaseConfig]:
    return {"moe": MoEMLPConfig, "hybrid_moe": HybridMoEMLPConfig}.get(data.get("type"), MLPConfig)


def _validate_generated(data: dict[str, Any]) -> MLPBaseConfig:
    try:
        config = MLPBaseConfig.from_dict(data)
    except ConfigError as exc:  # the strategy only builds valid configs: this is a bug of one of the two
        pytest.fail(f"a valid config was rejected:\n{json.dumps(data, indent=2)}\n{exc}")
    assert type(config) is _expected_class(data)
    return config


def _load(text: str, **kwargs: Any) -> MLPBaseConfig:
    try:
        return load_text(MLPBaseConfig, text, file=FILE, **kwargs)
    except ConfigError as exc:
        pytest.fail(f"dumped config does not load back:\n{text}\n{exc}")


@_settings(150)
@given(valid_configs())
@example({"activation": "gpt_oss_glu", "gated": True, "activation_limit": None})  # derived limit stays derived
@example(
    {
        "type": "moe", "experts": 9, "shared_experts": 1, "experts_per_token": 1, "routing": "aux_free",
        "expert_groups": 4, "expert_groups_per_token": 1, "capacity_factor": 1.25, "drop_policy": "position",
        "shared_expert_intermediate_size": 7, "shared_expert_gate": {"enabled": True},
        "router_weight_on_input": True, "normalize_expert_weights": False, "bias_update_rate": 0.0,
        "activation": "gpt_oss_glu", "gated": True, "activation_limit": 3.5,
    }
)
def test_valid_configs_round_trip(data: dict[str, Any]) -> None:
    config = _validate_generated(data)

    # The generated data written as YAML (block and flow style) loads as the same config.
    for text in (dump_yaml(data), json.dumps(data)):
        from_text = _load(text)
        assert from_text == config
        assert from_text.to_dict() == config.to_dict()

    # Set fields only: same config, same set fields, same provenance (type is always written).
    dumped = config.to_dict()
    text = dump_yaml(dumped)
    reloaded = _load(text)
    assert type(reloaded) is type(config)
    assert reloaded == config, text
    assert reloaded.to_dict() == dumped
    for name in type(config).__pydantic_fields__:
        if name != "type":
            assert reloaded.provenance(name) == config.provenance(name), name
    if isinstance(config, HybridMoEMLPConfig):  # the branches' provenance (activation's included)
        for branch in ("dense", "routed"):
            for name in set(type(getattr(config, branch)).__pydantic_fields__) - {"type"}:
                assert getattr(reloaded, branch).provenance(name) == getattr(config, branch).provenance(name), (branch, name)
    elif data.get("activation") is None:
        assert config.provenance("activation") == "derived"
        assert reloaded.provenance("activation") == "derived"
        assert reloaded.activation == (ActivationType.silu if config.gated else ActivationType.gelu)
    else:
        assert reloaded.provenance("activation") == "set"

    # Resolved: every field written; the same config again, and resolving is idempotent.
    resolved = config.to_dict(resolved=True)
    resolved_text = dump_yaml(resolved)
    from_resolved = _load(resolved_text)
    assert type(from_resolved) is type(config)
    assert from_resolved == config, resolved_text
    assert from_resolved.to_dict(resolved=True) == resolved


# --------------------------------------------------------------------------- mutations
def _example_texts() -> list[str]:
    texts = [path.read_text(encoding="utf-8") for path in sorted(EXAMPLES_DIR.glob("*.yaml"))]
    texts.append(
        "# anchors, merge keys and flow style\n"
        "base: &base {type: moe, gated: true, experts: 8, experts_per_token: 2}\n"
        "norm: &norm\n  type: rms_norm\n  epsilon: 1.0e-6\n"
        "<<: *base\n"
        "pre_norm: *norm\n"
        "layer_1:\n  bias: {enabled: false}\n  weight:\n    initialization: {type: fill, value: 0.5}\n"
    )
    return texts


EXAMPLE_TEXTS = _example_texts()

BAD_VALUES = [
    "abc", "'8'", '"x"', "[1, 2]", "[]", "{a: 1}", "{}", "null", "~", "", ".inf", "-.inf", ".nan", ".NaN",
    "2001-12-14", "2001-12-14t21:59:43.10-05:00", "!!python/object:os.system", "!!python/object/apply:os.system [ls]",
    "!!python/name:os.system", "!custom 3", "!<tag:example.com,2000:x> 1", "!<tag:yaml.org,2002:int> 3",
    "!!binary aGVsbG8=", "!!int abc", "!!int 0x", "!!int 1e3", "!!float x", "!!float 1_0", "!!bool maybe",
    "!!bool True", "!!str 3", "!!null x", "!!map {}", "!!seq []", "!!set {a, b}", "!!omap [a: 1]",
    "!!timestamp 2001-01-01", "*undefined", "&anchor 3", "0x1F", "0o17", "0b101", "1_000", "+12", "-1", "0",
    "1e400", "-1e400", "99999999999999999999999999999999999", "true", "false", "yes", "on", "True", "1.5", "-0.0",
    "| \n  block", ">-\n  folded", "'unterminated", '"bad \\q escape"', "{a: 1", "[1,", "? x", "- 1", ": x", "@x",
    "`x", "%x", "&", "*", "!", "!!", "<<: 1", "{<<: [1, 2]}", "{? [a]: 1}", "{? {a: 1}: 2}", "[[[[[[[[]]]]]]]]",
    "\t1", "'\\t\t'", "é", "\U0001f600", "\u2028", "\u0085", "\ufeff", "\x00", "\ud800",
]

# An integer literal whose decimal form has more than 4300 digits (Python's int -> str limit).
HUGE_INT = "0x" + "f" * 3600

# Values of a wrong type that still parse: they reach validation.
TYPE_ERRORS = ["abc", "sinkhorm", "silu ", "Silu", "-1", "0", "0.5", "1.0", "3", "true", "null", "[1]", "{}", "{type: x}",
               "{type: fill}", "{type: normal, min: 2, max: 1}", "{type: moe}", "{type: none, epsilon: 1}", "{enabled: 1}",
               "{initialization: 3}", "'1'", ".inf", "1e-400", "2", "64", "1e308", HUGE_INT, "-" + HUGE_INT, "{type: " + HUGE_INT + "}"]

# A key: plain (`experts:`) or inside the quotes of JSON (`"experts":`).
KEY_RE = re.compile(r'(?<=")[A-Za-z_][A-Za-z0-9_]*(?=":)|(?<!")\b[A-Za-z_][A-Za-z0-9_]*(?=\s*:(?:\s|$))')
RANDOM_KEYS = ["", ".", "a..b", "type", "model", "model.mlp", "defaults", "pre_norm", "layer_1.bias", "router.weight",
               "layer_1.bias.enabled", "experts", "base", "norm", "pre_norm.epsilon", "0", "[0]", "model.mlp.type"]

Mutation = Callable[[st.DrawFn, str], str]


def _position(draw: st.DrawFn, text: str) -> int:
    return draw(st.integers(0, len(text)))


def _lines(text: str) -> list[str]:
    return text.split("\n")


def _pick_key(draw: st.DrawFn, text: str) -> re.Match[str] | None:
    keys = list(KEY_RE.finditer(text))
    return draw(st.sampled_from(keys)) if keys else None


def key_typo(draw: st.DrawFn, text: str) -> str:
    match = _pick_key(draw, text)
    if match is None:
        return text
    key = match.group()
    index = draw(st.integers(0, len(key) - 1))
    char = draw(st.one_of(st.sampled_from("abcdefghijklmnopqrstuvwxyz_0123456789 -.:"), st.characters()))
    operation = draw(st.sampled_from(["insert", "delete", "swap", "replace"]))
    if operation == "insert":
        key = key[:index] + char + key[index:]
    elif operation == "delete":
        key = key[:index] + key[index + 1 :]
    elif operation == "swap" and len(key) > 1:
        index = min(index, len(key) - 2)
        key = key[:index] + key[index + 1] + key[index] + key[index + 2 :]
    else:
        key = key[:index] + char + key[index + 1 :]
    return text[: match.start()] + key + text[match.end() :]


VALUE_RE = re.compile(r"(?<=: )[^\s,{}\[\]][^,{}\[\]\n]*")  # a scalar value, block or flow style


def wrong_value(draw: st.DrawFn, text: str) -> str:
    """Replace a scalar value (or, sometimes, a whole nested mapping) by a value of another type."""
    value = draw(st.one_of(st.sampled_from(TYPE_ERRORS), st.sampled_from(BAD_VALUES), st.text(max_size=12)))
    scalars = [match for match in VALUE_RE.finditer(text) if "#" not in text[text.rfind("\n", 0, match.start()) + 1 : match.start()]]
    if scalars and draw(st.integers(0, 3)):
        match = draw(st.sampled_from(scalars))
        return text[: match.start()] + value + text[match.end() :]
    lines = _lines(text)
    parents = [index for index, line in enumerate(lines) if line.rstrip().endswith(":") and not line.lstrip().startswith("#")]
    if not parents:
        return text
    index = draw(st.sampled_from(parents))
    lines[index] = f"{lines[index].rstrip()} {value}"
    return "\n".join(lines)


def quoted_key(draw: st.DrawFn, text: str) -> str:
    """Rewrite a key as a quoted scalar holding an escape (`"exp\\nerts":`), a tag or an anchor."""
    match = _pick_key(draw, text)
    if match is None:
        return text
    key = match.group()
    index = draw(st.integers(0, len(key)))
    escape = draw(st.sampled_from(["\\n", "\\r", "\\t", "\\0", "\\e", "\\x85", "\\u2028", "\\u2029", "\\N",
                                   "\\L", "\\P", "\\_", "\\ ", "\\\\", '\\"', "", "\\x1b[31m", "\\ud800"]))
    quoted = match.start() > 0 and text[match.start() - 1] == '"'
    style = "inside" if quoted else draw(st.sampled_from(["double", "single", "tag", "anchor", "explicit"]))
    if style == "inside":
        replaced = key[:index] + escape + key[index:]
    elif style == "double":
        replaced = '"' + key[:index] + escape + key[index:] + '"'
    elif style == "single":
        replaced = "'" + key[:index] + "''" + key[index:] + "'"
    elif style == "tag":
        replaced = draw(st.sampled_from(["!!str ", "!!int ", "!!null ", "!x ", "!<a%0Ab> ", "!!binary "])) + key
    elif style == "anchor":
        replaced = "&k " + key
    else:
        replaced = "? " + key + "\n"
    return text[: match.start()] + replaced + text[match.end() :]


def delete_line(draw: st.DrawFn, text: str) -> str:
    lines = _lines(text)
    del lines[draw(st.integers(0, len(lines) - 1))]
    return "\n".join(lines)


def duplicate_line(draw: st.DrawFn, text: str) -> str:
    lines = _lines(text)
    source = draw(st.integers(0, len(lines) - 1))
    lines.insert(draw(st.integers(0, len(lines))), lines[source])
    return "\n".join(lines)


def swap_lines(draw: st.DrawFn, text: str) -> str:
    lines = _lines(text)
    first, second = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
    lines[first], lines[second] = lines[second], lines[first]
    return "\n".join(lines)


def reindent_line(draw: st.DrawFn, text: str) -> str:
    lines = _lines(text)
    index = draw(st.integers(0, len(lines) - 1))
    indent = draw(st.sampled_from(["", " ", "  ", "   ", "    ", "\t", " \t", "- "]))
    lines[index] = indent + lines[index].lstrip(" ")
    return "\n".join(lines)


def insert_line(draw: st.DrawFn, text: str) -> str:
    lines = _lines(text)
    line = draw(st.one_of(st.text(max_size=30), st.sampled_from(BAD_VALUES), st.sampled_from(["---", "...", "%YAML 1.1", "%TAG ! tag:x,2000:", "? a", "- x", "<<: {}", "<<: *undefined", "&a", "*a"])))
    lines.insert(draw(st.integers(0, len(lines))), line)
    return "\n".join(lines)


def insert_text(draw: st.DrawFn, text: str) -> str:
    position = _position(draw, text)
    inserted = draw(
        st.one_of(
            st.text(max_size=10),
            st.text(st.characters(codec=None, exclude_categories=()), max_size=5),
            st.sampled_from(["\t", "\r", "\r\n", "\x85", "\u2028", "\u2029", "\ufeff", "\x00", "\x7f", "\ud800",
                             "\udfff", "\x1b[31m", "\\", "'", '"', "#", "&a ", "*a ", "!x ", "{", "}", "[", "]"]),
        )
    )
    return text[:position] + inserted + text[position:]


def insert_tab(draw: st.DrawFn, text: str) -> str:
    position = draw(st.sampled_from([0, *[match.start() for match in re.finditer(r"(?m)^ *", text)], _position(draw, text)]))
    return text[:position] + "\t" + text[position:]


def truncate(draw: st.DrawFn, text: str) -> str:
    return text[: _position(draw, text)]


def deep_nesting(draw: st.DrawFn, text: str) -> str:
    depth = draw(st.integers(1, 200))
    opening, closing = draw(st.sampled_from([("[", "]"), ("{a: ", "}"), ("- ", ""), ("[", "")]))
    nested = opening * depth + "1" + closing * depth
    where = draw(st.sampled_from(["document", "value", "line"]))
    if where == "document":
        return nested
    lines = _lines(text)
    if where == "value":
        candidates = [index for index, line in enumerate(lines) if ":" in line]
        if candidates:
            index = draw(st.sampled_from(candidates))
            lines[index] = lines[index].split(":", 1)[0] + ": " + nested
            return "\n".join(lines)
    lines.insert(draw(st.integers(0, len(lines))), "deep: " + nested)
    return "\n".join(lines)


def alias_bomb(draw: st.DrawFn, text: str) -> str:
    levels = draw(st.integers(1, 5))
    width = draw(st.integers(2, 9))
    kind = draw(st.sampled_from(["seq", "map", "merge", "self"]))
    if kind == "self":
        return draw(st.sampled_from(["a: &a [*a]\n", "&a {<<: *a}\n", "&a [*a, *a]\n", "a: &a {b: *a}\n", "<<: &a {<<: *a}\n"]))
    lines = ['l0: &l0 ["lol", "lol"]']
    for level in range(1, levels + 1):
        if kind == "seq":
            lines.append(f"l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * width) + "]")
        elif kind == "map":
            lines.append(f"l{level}: &l{level} {{" + ", ".join(f"k{i}: *l{level - 1}" for i in range(width)) + "}")
        else:
            lines.append(f"l{level}: &l{level} {{<<: [*l{level - 1}], k{level}: *l{level - 1}}}" if level > 1 else "l1: &l1 {a: *l0}")
    return text + "\n" + "\n".join(lines) + "\n"


MUTATIONS: list[Mutation] = [
    key_typo, key_typo, quoted_key, wrong_value, wrong_value, wrong_value, wrong_value, delete_line, duplicate_line, duplicate_line,
    swap_lines, reindent_line, insert_line, insert_text, insert_tab, truncate, deep_nesting, alias_bomb,
]


@st.composite
def base_texts(draw: st.DrawFn) -> str:
    choice = draw(st.sampled_from(["example", "block", "flow", "indented_json"]))
    if choice == "example":
        return draw(st.sampled_from(EXAMPLE_TEXTS))
    data = draw(valid_configs())
    if choice == "block":
        return dump_yaml(data)
    if choice == "flow":
        return json.dumps(data)
    return json.dumps(data, indent=2)


@st.composite
def mutated_texts(draw: st.DrawFn) -> str:
    text = draw(base_texts())
    for _ in range(draw(st.sampled_from([1, 1, 1, 2, 2, 3]))):
        text = draw(st.sampled_from(MUTATIONS))(draw, text)
    return text


@st.composite
def keys(draw: st.DrawFn) -> str | None:
    """`--key`: usually none (so that the document is validated), else a real or random path."""
    if draw(st.integers(0, 3)):
        return None
    return draw(st.one_of(st.sampled_from(RANDOM_KEYS), st.text(st.sampled_from("abx._0é\n\t"), max_size=8)))



def _check_located(exc: ConfigError) -> None:
    assert exc.problems, "a ConfigError without problems"
    for problem in exc.problems:
        assert problem.file == FILE, problem
        assert problem.override is None, problem
        assert isinstance(problem.line, int) and not isinstance(problem.line, bool) and problem.line >= 1, problem
        assert isinstance(problem.column, int) and not isinstance(problem.column, bool) and problem.column >= 1, problem
        assert isinstance(problem.message, str) and problem.message, problem


def _load_mutated(text: str, key: str | None) -> None:
    """Loads, or raises ConfigError with located problems; any other exception fails the test."""
    try:
        config = load_text(MLPBaseConfig, text, file=FILE, key=key)
    except ConfigError as exc:
        _check_located(exc)
    else:
        assert isinstance(config, MLPBaseConfig)


@_settings(300)
@given(mutated_texts(), keys())
@example(f"gated: {HUGE_INT}\n", None)  # describe() of a huge int
@example(f"type: moe\nexperts: -{HUGE_INT}\n", None)  # format_number() of a huge int
@example(f"type: {HUGE_INT}\n", None)  # the variant discriminator's repr() of a huge int
def test_mutated_texts_raise_only_located_config_errors(text: str, key: str | None) -> None:
    _load_mutated(text, key)


@pytest.fixture(scope="module")
def bytes_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bytes") / "config.yaml"


BOMS = [b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff", b"\xef\xbb\xbf\xef\xbb\xbf"]


@st.composite
def mutated_bytes(draw: st.DrawFn) -> bytes:
    raw = draw(mutated_texts()).encode("utf-8", errors="surrogatepass")
    for _ in range(draw(st.integers(1, 2))):
        position = draw(st.integers(0, len(raw)))
        operation = draw(st.sampled_from(["insert", "bom", "replace", "truncate", "utf16", "latin1"]))
        if operation == "insert":
            raw = raw[:position] + draw(st.binary(min_size=1, max_size=6)) + raw[position:]
        elif operation == "bom":
            raw = draw(st.sampled_from(BOMS)) + raw
        elif operation == "replace" and position < len(raw):
            raw = raw[:position] + bytes([draw(st.integers(0x80, 0xFF))]) + raw[position + 1 :]
        elif operation == "truncate":
            raw = raw[:position]
        elif operation == "utf16":
            raw = raw.decode("utf-8", errors="replace").encode(draw(st.sampled_from(["utf-16", "utf-16-le", "utf-32"])))
        elif operation == "latin1":
            raw = raw.decode("utf-8", errors="replace").encode("latin-1", errors="replace") + "é".encode("latin-1")
    return raw


@_settings(150)
@given(mutated_bytes(), keys())
def test_mutated_bytes_raise_only_located_config_errors(bytes_file: Path, raw: bytes, key: str | None) -> None:
    """Bytes go through `load_file` (read_bytes -> parse_yaml_bytes), shown as x.yaml."""
    path = bytes_file
    path.write_bytes(raw)
    try:
        config = load_file(MLPBaseConfig, path, key=key, display_name=FILE)
    except ConfigError as exc:
        _check_located(exc)
    else:
        assert isinstance(config, MLPBaseConfig)


HOSTILE_DOCUMENTS = {
    "nested_lists_10000": "[" * 10000 + "]" * 10000,
    "nested_lists_unclosed_10000": "a: " + "[" * 10000,
    "nested_maps_10000": "{a: " * 10000 + "1" + "}" * 10000,
    "nested_block_5000": "- " * 5000 + "1",
    "billion_laughs": 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    + "".join(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]\n" for prev, name in zip("abcdefgh", "bcdefghi")),
    "merge_bomb": "a: &a {x0: 1, x1: 1, x2: 1, x3: 1, x4: 1, x5: 1, x6: 1, x7: 1, x8: 1, x9: 1}\n"
    + "".join(f"{name}: &{name} {{<<: [" + ", ".join([f"*{prev}"] * 9) + f"], {name}: [" + ", ".join([f"*{prev}"] * 9) + "]}\n" for prev, name in zip("abcdefgh", "bcdefghi")),
    "recursive_alias": "a: &a [*a]\n",
    "recursive_merge": "&a {<<: *a}\n",
}


@pytest.mark.parametrize("name", sorted(HOSTILE_DOCUMENTS))
def test_hostile_documents_raise_located_config_errors(name: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_text(MLPBaseConfig, HOSTILE_DOCUMENTS[name], file=FILE)
    _check_located(info.value)


# --------------------------------------------------------------------------- rendering
def _render_lines_match(exc: ConfigError) -> None:
    rendered = str(exc)
    lines = rendered.splitlines()  # \n, and also \r, \x85, \u2028...: whatever a terminal or editor breaks on
    assert len(lines) == len(exc.problems), rendered
    for line, problem in zip(lines, exc.problems):
        assert line.startswith(f"{FILE}:{problem.line}:{problem.column}: "), line
        assert re.match(rf"{re.escape(FILE)}:[1-9][0-9]*:[1-9][0-9]*: ", line), line


@_settings(200)
@given(mutated_texts(), keys())
@example('"exp\\nerts": 1\n', None)  # a quoted key holding a line break
@example("type: moe\n", "a\nb")  # a --key holding a line break
@example("type: moe\nrouter: !<x%0Ay> {}\n", None)  # a tag whose URI decodes to a line break
def test_rendered_error_has_one_located_line_per_problem(text: str, key: str | None) -> None:
    try:
        load_text(MLPBaseConfig, text, file=FILE, key=key)
    except ConfigError as exc:
        _render_lines_match(exc)
