"""The Config base: tiers, strictness, enums, derived defaults and provenance, dump."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from fastmoe_cfg.config.base import Config, Derived, Rule, Tier, field
from fastmoe_cfg.config.errors import ConfigError
from fastmoe_cfg.schemas import (
    ActivationType,
    LayerNormalizationConfig,
    MLPBaseConfig,
    MLPConfig,
    MoEMLPConfig,
    RoutingType,
)


def test_field_without_tier_fails_at_class_definition() -> None:
    with pytest.raises(TypeError, match=r"Untiered.x: every config field needs a tier"):

        class Untiered(Config):
            x: int = 3


def test_field_helper_refuses_a_default_and_a_factory() -> None:
    with pytest.raises(TypeError, match="not both"):
        field(1, default_factory=list, tier="core")


def test_base_constructor_builds_the_named_variant() -> None:
    config = MLPBaseConfig(type="moe", experts=4)
    assert type(config) is MoEMLPConfig and config == MoEMLPConfig(experts=4)
    assert type(MLPBaseConfig()) is MLPConfig
    with pytest.raises(ConfigError, match=r"^type: unknown type 'mixture'; expected one of: hybrid_moe, mlp, moe \(is the plugin that provides it installed\?\)$"):
        MLPBaseConfig(type="mixture")


def test_field_helper_carries_tier_description_and_constraints() -> None:
    info = MoEMLPConfig.model_fields["experts"]
    assert info.json_schema_extra == {"x-tier": "architecture"}
    assert info.description == "Number of experts, shared experts included."
    assert MoEMLPConfig.field_tier("implementation") is Tier.expert


@pytest.mark.parametrize(
    "data",
    [
        {"type": "moe", "experts": "2"},
        {"type": "moe", "experts": 2.0},
        {"type": "moe", "experts": True},
        {"gated": 1},
        {"gated": "true"},
        {"intermediate_size": None},
        {"lr_scale": float("inf")},
        {"lr_scale": float("nan")},
    ],
)
def test_strict_types(data: dict) -> None:
    with pytest.raises(ConfigError):
        MLPBaseConfig.from_dict(data)


def test_int_is_accepted_for_float() -> None:
    assert MoEMLPConfig(auxiliary_loss_coefficient=1).auxiliary_loss_coefficient == 1.0


def test_enum_fields_accept_strings_from_python() -> None:
    config = MoEMLPConfig(routing="sinkhorn", activation="gelu_exact")
    assert config.routing is RoutingType.sinkhorn
    assert config.activation is ActivationType.gelu_exact
    assert config.routing == "sinkhorn"


def test_enum_members_have_descriptions() -> None:
    for enum_class in (ActivationType, RoutingType):
        for member in enum_class:
            assert member.description and member.name == member.value


def test_frozen() -> None:
    config = MoEMLPConfig()
    with pytest.raises(ValidationError):
        config.experts = 4  # type: ignore[misc]


def test_unknown_keyword_from_python() -> None:
    with pytest.raises(ConfigError, match=r"^expertz: unknown field \(did you mean experts\?\)$"):
        MoEMLPConfig(expertz=4)


@pytest.mark.parametrize(
    "gated, explicit, expected, source",
    [
        (True, None, ActivationType.silu, "derived"),
        (False, None, ActivationType.gelu, "derived"),
        (True, "relu", ActivationType.relu, "set"),
    ],
)
def test_derived_activation(gated: bool, explicit: str | None, expected: ActivationType, source: str) -> None:
    data = {"type": "moe", "gated": gated}
    if explicit:
        data["activation"] = explicit
    config = MLPBaseConfig.from_dict(data)
    assert config.activation is expected
    assert config.provenance("activation") == source
    assert config.provenance("gated") == "set"
    assert config.provenance("experts") == "default"


def test_derived_stays_derived_after_round_trip_and_is_not_dumped() -> None:
    config = MoEMLPConfig(gated=True)
    assert config.to_dict() == {"type": "moe", "gated": True}
    again = MLPBaseConfig.from_dict(config.to_dict())
    assert again == config and again.provenance("activation") == "derived"
    resolved = config.to_dict(resolved=True)
    assert resolved["activation"] == "silu" and resolved["experts"] == 2
    reloaded = MLPBaseConfig.from_dict(resolved)
    assert reloaded == config and reloaded.provenance("activation") == "set"


def test_provenance_is_not_part_of_equality() -> None:
    assert MoEMLPConfig(gated=True) == MoEMLPConfig(gated=True, activation="silu")
    assert hash(MoEMLPConfig(gated=True)) == hash(MoEMLPConfig(gated=True, activation="silu"))
    assert MoEMLPConfig() != MLPConfig()


def test_variant_selection_and_default_variant() -> None:
    assert type(MLPBaseConfig.from_dict({})) is MLPConfig
    assert type(MLPBaseConfig.from_dict({"type": "moe"})) is MoEMLPConfig
    assert type(MoEMLPConfig(pre_norm={}).pre_norm) is LayerNormalizationConfig
    assert MoEMLPConfig().type == "moe"
    assert sorted(MLPBaseConfig.variants()) == ["hybrid_moe", "mlp", "moe"]


def test_variant_rejects_other_type_when_validated_directly() -> None:
    with pytest.raises(ConfigError, match=r"^type: expected 'moe', got string 'mlp'$"):
        MoEMLPConfig.from_dict({"type": "mlp"})


def test_rules_and_derived_defaults_are_declared_as_data() -> None:
    rules = MoEMLPConfig.rules()
    assert all(isinstance(rule, Rule) for rule in rules)
    # MLPBaseConfig's rules first, then MoEMLPConfig's, in declaration order.
    assert [rule.fields for rule in rules] == [
        ("activation", "gated"),
        ("activation_limit", "activation"),
        ("experts_per_token", "shared_experts", "experts"),
        ("expert_groups", "experts", "shared_experts"),
        ("expert_groups", "experts", "shared_experts", "expert_group_score"),
        ("expert_groups", "routing"),
        ("expert_groups_per_token", "expert_groups"),
        ("expert_group_score", "expert_groups"),
        ("expert_groups_per_token", "expert_groups", "experts", "shared_experts", "experts_per_token"),
        ("auxiliary_loss_coefficient", "routing"),
        ("bias_update_rate", "routing"),
        ("automatic_bias_update", "routing"),
        ("balanced_routing_noise", "routing"),
        ("drop_policy", "capacity_factor"),
        ("shared_expert_intermediate_size", "shared_experts"),
        ("shared_expert_gate", "shared_experts"),
        ("router_input_scale", "routing"),
        ("router_normalization", "routing"),
        ("router_score_function", "routing"),
        ("normalize_expert_weights", "routing", "router_score_function"),
        ("router_weight_on_input", "routing"),
        ("router_dtype", "routing"),
        ("drop_policy", "routing", "balanced_routing_noise"),
        ("router_weight_on_input", "experts_per_token"),
        ("router_weight_on_input", "normalize_expert_weights", "experts_per_token"),
        ("jitter_target", "jitter_eps"),
        ("jitter_distribution", "jitter_eps"),
        ("jitter_eps", "routing", "jitter_target"),
        ("expert_load_scaling", "experts_per_token", "experts", "shared_experts"),
        ("bias_update_rule", "routing"),
        ("bias_update_schedule", "routing"),
        ("correction_bias_target", "routing"),
        ("bias_update_ema_decay", "bias_update_rule"),
        ("bias_update_total_steps", "bias_update_schedule"),
        ("bias_update_schedule", "bias_update_total_steps", "routing"),
        ("expert_weights_norm_order", "normalize_expert_weights", "sparsemixer_eps"),
        ("expert_weights_epsilon", "normalize_expert_weights", "sparsemixer_eps"),
        ("expert_weights_norm_order", "routing"),
        ("expert_weights_epsilon", "routing"),
        ("sparsemixer_eps", "routing", "router_score_function", "expert_groups", "normalize_expert_weights"),
        ("dropless_kernel", "implementation"),
    ]
    assert "experts_per_token + shared_experts <= experts" in rules[2].doc
    derived = MoEMLPConfig.derived_defaults()
    assert all(isinstance(rule, Derived) for rule in derived)
    assert [(rule.field, rule.depends_on, rule.doc) for rule in derived] == [
        ("activation", ("gated",), "silu if gated, else gelu."),
        ("activation_limit", ("activation",), "7.0 with activation gpt_oss_glu (GPT-OSS), else none."),
        (
            "router_score_function",
            ("routing", "experts_per_token"),
            "sigmoid for sinkhorn routing with experts_per_token = 1 (Fast-LLM), else softmax.",
        ),
        (
            "normalize_expert_weights",
            ("routing", "router_score_function", "experts_per_token"),
            "false for sinkhorn routing (Fast-LLM) and for one sigmoid-scored expert per token (Llama-4: the weight is the sigmoid), else true.",
        ),
        ("expert_groups_per_token", ("expert_groups",), "expert_groups: every group is eligible."),
        ("expert_group_score", ("expert_groups",), "top2_sum with expert_groups > 1 (DeepSeek-V3), else none."),
        (
            "auxiliary_loss_coefficient",
            ("routing",),
            "0.01 with routing aux_loss, else 0 (the other routings have no load-balancing loss).",
        ),
        ("bias_update_rate", ("routing",), "0.001 with routing aux_free (DeepSeek-V3), else none."),
        ("automatic_bias_update", ("routing",), "false with routing aux_free, else none."),
        ("balanced_routing_noise", ("routing",), "0 with routing balanced, else none."),
        ("drop_policy", ("capacity_factor",), "probability when capacity_factor is set, else none."),
        ("jitter_target", ("jitter_eps",), "router_logits when jitter_eps > 0 (Fast-LLM), else none."),
        ("jitter_distribution", ("jitter_eps",), "uniform when jitter_eps > 0, else none."),
        ("bias_update_rule", ("routing",), "sign with routing aux_free (DeepSeek-V3), else none."),
        ("bias_update_ema_decay", ("bias_update_rule",), "0.99 with bias_update_rule ema (KempnerForge's ema_decay), else none."),
        ("bias_update_schedule", ("routing",), "constant with routing aux_free, else none."),
        ("correction_bias_target", ("routing",), "selection with routing aux_free (DeepSeek-V3), else none."),
    ]


def test_custom_rule_reports_all_violations_at_once() -> None:
    class Window(Config):
        __rules__ = (
            Rule(("low", "high"), lambda low, high: low < high, lambda low, high: f"must satisfy low < high ({low} >= {high})", "low < high"),
            Rule(("high", "cap"), lambda high, cap: high <= cap, lambda high, cap: f"must satisfy high <= cap ({high} > {cap})", "high <= cap"),
        )
        low: float = field(0.0, tier="core", desc="Lower end.")
        high: float = field(1.0, tier="core", desc="Upper end.")
        cap: float = field(10.0, tier="core", desc="Cap.", allow_inf_nan=True)

    with pytest.raises(ConfigError) as info:
        Window(low=30, high=20)
    assert str(info.value).splitlines() == [
        "low: must satisfy low < high (30.0 >= 20.0)",
        "high: must satisfy high <= cap (20.0 > 10.0)",
    ]
    assert math.isinf(Window(cap=float("inf")).cap)
