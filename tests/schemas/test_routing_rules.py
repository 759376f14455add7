"""The routing fields of the other MoE families (issue 6): every rejected combination as a golden error text,
the range of each new field, derived defaults and their provenance, and configs shaped like published models.

Error texts come from the loader the CLI uses (`tests.conftest.errors_of`) and are compared whole.
"""

from __future__ import annotations

import pytest

from fastmoe_cfg.schemas import MLPBaseConfig, MLPConfig, MoEMLPConfig
from fastmoe_cfg.schemas.counts import count_layer
from fastmoe_cfg.schemas.enums import (
    ActivationType,
    BiasUpdateRule,
    BiasUpdateSchedule,
    CorrectionBiasTarget,
    DropPolicy,
    JitterDistribution,
    JitterTarget,
    RouterScoreFunction,
    RoutingType,
)
from tests.conftest import errors_of, load

# Every combination a declared rule rejects: YAML text, the whole error text.
RULES = {
    "gpt_oss_glu without gated": (
        """\
        type: moe
        activation: gpt_oss_glu
        """,
        "moe.yaml:2:1: activation: gpt_oss_glu is a gated linear unit: it needs gated: true",
    ),
    "gpt_oss_glu without gated, dense": (
        "activation: gpt_oss_glu\n",
        "moe.yaml:1:1: activation: gpt_oss_glu is a gated linear unit: it needs gated: true",
    ),
    "activation_limit without gpt_oss_glu": (
        """\
        type: moe
        gated: true
        activation: silu
        activation_limit: 5.0
        """,
        "moe.yaml:4:1: activation_limit: only applies with activation: gpt_oss_glu (remove it, or set it to null)",
    ),
    "activation_limit with the derived activation": (
        "activation_limit: 5.0\n",
        "moe.yaml:1:1: activation_limit: only applies with activation: gpt_oss_glu (remove it, or set it to null)",
    ),
    "expert_groups does not divide the routed experts": (
        """\
        type: moe
        experts: 9
        experts_per_token: 2
        expert_groups: 2
        """,
        "moe.yaml:4:1: expert_groups: must divide the experts - shared_experts routed experts (9 routed experts, 2 groups)",
    ),
    "expert_groups counts routed experts only": (
        """\
        type: moe
        experts: 8
        shared_experts: 1
        expert_groups: 2
        """,
        "moe.yaml:4:1: expert_groups: must divide the experts - shared_experts routed experts (7 routed experts, 2 groups); "
        "experts counts the 1 shared expert too: experts: 9 gives 8 routed experts",
    ),
    "DeepSeek-V3 with experts written as n_routed_experts": (
        """\
        type: moe
        experts: 256
        shared_experts: 1
        experts_per_token: 8
        expert_groups: 8
        """,
        "moe.yaml:5:1: expert_groups: must divide the experts - shared_experts routed experts (255 routed experts, 8 groups); "
        "experts counts the 1 shared expert too: experts: 257 gives 256 routed experts",
    ),
    "router_input_scale ignored by balanced": (
        "format_version: 2\ntype: moe\nrouting: balanced\nrouter_input_scale: 0.5\n",
        "moe.yaml:4:1: router_input_scale: router_input_scale 0.5 has no effect with routing: balanced, which ignores the router's scores (remove it, or use another routing)",
    ),
    "router_normalization ignored by balanced": (
        "format_version: 2\ntype: moe\nrouting: balanced\nrouter_normalization: {type: rms_norm}\n",
        "moe.yaml:4:1: router_normalization: router_normalization {type: rms_norm} has no effect with routing: balanced, which ignores the router's scores (remove it, or use another routing)",
    ),
    "jitter_eps ignored by balanced": (
        "format_version: 2\ntype: moe\nrouting: balanced\njitter_eps: 0.1\n",
        "moe.yaml:4:1: jitter_eps: jitter_eps 0.1 on the router_logits has no effect with routing: balanced, which ignores the "
        "router's scores (remove it, use jitter_target: layer_input, or use another routing)",
    ),
    # Issue 19: jitter targets, load scaling, bias-update rules.
    "jitter_target without jitter": (
        "type: moe\njitter_target: layer_input\n",
        "moe.yaml:2:1: jitter_target: only applies with jitter_eps > 0 (remove it, or set it to null)",
    ),
    "jitter_distribution without jitter": (
        "type: moe\njitter_eps: 0\njitter_distribution: normal\n",
        "moe.yaml:3:1: jitter_distribution: only applies with jitter_eps > 0 (remove it, or set it to null)",
    ),
    "expert_load_scaling when every routed expert is picked": (
        "type: moe\nexperts: 3\nshared_experts: 1\nexperts_per_token: 2\nexpert_load_scaling: true\n",
        "moe.yaml:5:1: expert_load_scaling: has no effect when every token picks every routed expert (experts_per_token 2 = 2 "
        "routed experts): every load is then the mean (remove it)",
    ),
    "bias_update_rule without aux_free": (
        "type: moe\nbias_update_rule: ema\n",
        "moe.yaml:2:1: bias_update_rule: only applies with routing: aux_free (remove it, or set it to null)",
    ),
    "bias_update_schedule without aux_free": (
        "type: moe\nrouting: sinkhorn\nbias_update_schedule: cosine_decay\n",
        "moe.yaml:3:1: bias_update_schedule: only applies with routing: aux_free (remove it, or set it to null)",
    ),
    "correction_bias_target without aux_free": (
        "type: moe\ncorrection_bias_target: logits\n",
        "moe.yaml:2:1: correction_bias_target: only applies with routing: aux_free (remove it, or set it to null)",
    ),
    "bias_update_ema_decay with the sign rule": (
        "type: moe\nrouting: aux_free\nbias_update_ema_decay: 0.9\n",
        "moe.yaml:3:1: bias_update_ema_decay: only applies with bias_update_rule: ema (remove it, or set it to null)",
    ),
    "bias_update_total_steps with a constant rate": (
        "type: moe\nrouting: aux_free\nbias_update_total_steps: 1000\n",
        "moe.yaml:3:1: bias_update_total_steps: only applies with bias_update_schedule cosine_decay or linear_warmup (remove it, or set it to null)",
    ),
    "a schedule without its length": (
        "type: moe\nrouting: aux_free\nbias_update_schedule: linear_warmup\n",
        "moe.yaml:3:1: bias_update_schedule: linear_warmup needs bias_update_total_steps, the number of update_bias() calls of the "
        "whole training (progress = bias_update_step / bias_update_total_steps)",
    ),
    "router_score_function ignored by balanced": (
        "format_version: 2\ntype: moe\nrouter_score_function: sigmoid\nrouting: balanced\n",
        "moe.yaml:3:1: router_score_function: router_score_function sigmoid has no effect with routing: balanced, which ignores the router's scores (remove it, or use another routing)",
    ),
    "normalize_expert_weights ignored by balanced": (
        "format_version: 2\ntype: moe\nrouting: balanced\nnormalize_expert_weights: false\n",
        "moe.yaml:4:1: normalize_expert_weights: normalize_expert_weights false has no effect with routing: balanced, which ignores the router's scores (remove it, or use another routing)",
    ),
    "router_weight_on_input ignored by balanced (and by its weight of 1)": (
        "format_version: 2\ntype: moe\nrouting: balanced\nrouter_weight_on_input: true\n",
        "moe.yaml:4:1: router_weight_on_input: router_weight_on_input true has no effect with routing: balanced, which ignores the router's scores (remove it, or use another routing)\n"
        "moe.yaml:4:1: router_weight_on_input: would scale the input by 1: a normalized weight of one expert per token is "
        "always 1; set normalize_expert_weights: false (the default with router_score_function: sigmoid, as Llama-4)",
    ),
    "router_dtype ignored by balanced": (
        "format_version: 2\ntype: moe\nrouting: balanced\nrouter_dtype: float64\n",
        "moe.yaml:4:1: router_dtype: router_dtype float64 has no effect with routing: balanced, which ignores the router's scores (remove it, or use another routing)",
    ),
    "drop_policy position ignored by balanced without noise": (
        "format_version: 2\ntype: moe\nrouting: balanced\ncapacity_factor: 1.0\ndrop_policy: position\n",
        "moe.yaml:5:1: drop_policy: position has no effect with routing: balanced and no balanced_routing_noise: every "
        "weight is equal, so probability already keeps the earliest tokens (remove it)",
    ),
    "auxiliary_loss_coefficient with another routing": (
        """\
        format_version: 2
        type: moe
        routing: sinkhorn
        auxiliary_loss_coefficient: 0.01
        """,
        "moe.yaml:4:1: auxiliary_loss_coefficient: auxiliary_loss_coefficient 0.01 only applies with routing: aux_loss; "
        "routing sinkhorn adds no load-balancing loss (remove it, or set it to 0)",
    ),

    "fewer than 2 routed experts per group": (
        """\
        type: moe
        experts: 6
        expert_groups: 6
        """,
        "moe.yaml:3:1: expert_groups: needs at least 2 routed experts per group, as a group's score is the sum of its "
        "top 2 (6 routed experts, 6 groups)",
    ),
    "expert_groups with sinkhorn": (
        """\
        type: moe
        experts: 8
        routing: sinkhorn
        expert_groups: 2
        """,
        "moe.yaml:4:1: expert_groups: group-limited routing works with routing aux_loss or aux_free, not sinkhorn",
    ),
    "expert_groups with balanced": (
        """\
        type: moe
        experts: 8
        routing: balanced
        expert_groups: 2
        """,
        "moe.yaml:4:1: expert_groups: group-limited routing works with routing aux_loss or aux_free, not balanced",
    ),
    "more groups per token than groups": (
        """\
        type: moe
        experts: 8
        expert_groups: 2
        expert_groups_per_token: 3
        """,
        "moe.yaml:4:1: expert_groups_per_token: must satisfy expert_groups_per_token <= expert_groups (3 > 2)",
    ),
    "expert_group_score without groups": (
        """\
        type: moe
        experts: 8
        expert_group_score: max
        """,
        "moe.yaml:3:1: expert_group_score: only applies with expert_groups > 1 (remove it, or set it to null)",
    ),
    "kept groups hold fewer than k experts": (
        """\
        type: moe
        experts: 16
        experts_per_token: 6
        expert_groups: 4
        expert_groups_per_token: 1
        """,
        "moe.yaml:5:1: expert_groups_per_token: must leave enough experts for top-k: expert_groups_per_token · routed "
        "experts per group >= experts_per_token (1 · 4 < 6)",
    ),
    "bias_update_rate without aux_free": (
        """\
        type: moe
        bias_update_rate: 0.01
        """,
        "moe.yaml:2:1: bias_update_rate: only applies with routing: aux_free (remove it, or set it to null)",
    ),
    "automatic_bias_update without aux_free": (
        """\
        type: moe
        routing: sinkhorn
        automatic_bias_update: true
        """,
        "moe.yaml:3:1: automatic_bias_update: only applies with routing: aux_free (remove it, or set it to null)",
    ),
    "balanced_routing_noise without balanced": (
        """\
        type: moe
        routing: aux_free
        balanced_routing_noise: 0.5
        """,
        "moe.yaml:3:1: balanced_routing_noise: only applies with routing: balanced (remove it, or set it to null)",
    ),
    "drop_policy without capacity_factor": (
        """\
        type: moe
        drop_policy: position
        """,
        "moe.yaml:2:1: drop_policy: only applies with a capacity_factor (remove it, or set it to null)",
    ),
    "shared_expert_intermediate_size without shared experts": (
        """\
        type: moe
        shared_expert_intermediate_size: 128
        """,
        "moe.yaml:2:1: shared_expert_intermediate_size: only applies with shared_experts >= 1 (remove it, or set it to null)",
    ),
    "shared_expert_gate without shared experts": (
        """\
        type: moe
        shared_expert_gate:
          enabled: true
        """,
        "moe.yaml:2:1: shared_expert_gate: gates the shared experts: it needs shared_experts >= 1",
    ),
    "router_weight_on_input with k > 1": (
        """\
        type: moe
        experts: 4
        experts_per_token: 2
        router_weight_on_input: true
        """,
        "moe.yaml:4:1: router_weight_on_input: needs experts_per_token = 1 (got 2): with several experts the weight on "
        "the input does not factor out",
    ),
    "router_weight_on_input with a normalized top-1 weight": (
        """\
        type: moe
        router_weight_on_input: true
        """,
        "moe.yaml:2:1: router_weight_on_input: would scale the input by 1: a normalized weight of one expert per token "
        "is always 1; set normalize_expert_weights: false (the default with router_score_function: sigmoid, as Llama-4)",
    ),
    "expert_weights_norm_order without normalize_expert_weights": (
        "type: moe\nexperts: 4\nnormalize_expert_weights: false\nexpert_weights_norm_order: 2\n",
        "moe.yaml:4:1: expert_weights_norm_order: only applies with normalize_expert_weights: true (remove it, or set it to 1)",
    ),
    "expert_weights_epsilon with sparsemixer_eps": (
        "type: moe\nexperts: 4\nsparsemixer_eps: 0.01\nexpert_weights_epsilon: 0.001\n",
        "moe.yaml:4:1: expert_weights_epsilon: only applies with normalize_expert_weights: true and without sparsemixer_eps, "
        "whose weights are not renormalised (remove it, or set it to null)",
    ),
    "expert_weights_norm_order with routing balanced": (
        "type: moe\nexperts: 4\nrouting: balanced\nexpert_weights_norm_order: 2\n",
        "moe.yaml:4:1: expert_weights_norm_order: expert_weights_norm_order 2.0 has no effect with routing: balanced, which "
        "ignores the router's scores (remove it, or use another routing)",
    ),
    "expert_weights_epsilon with routing balanced": (
        "type: moe\nexperts: 4\nrouting: balanced\nexpert_weights_epsilon: 0.001\n",
        "moe.yaml:4:1: expert_weights_epsilon: expert_weights_epsilon 0.001 has no effect with routing: balanced, which "
        "ignores the router's scores (remove it, or use another routing)",
    ),
    "sparsemixer_eps with sigmoid scores": (
        "type: moe\nexperts: 4\nrouter_score_function: sigmoid\nsparsemixer_eps: 0.01\n",
        "moe.yaml:4:1: sparsemixer_eps: SparseMixer weighs the top-k of softmax-scored logits one by one: it needs routing "
        "aux_loss, router_score_function softmax, expert_groups 1 and normalize_expert_weights true (got routing aux_loss, "
        "router_score_function sigmoid, expert_groups 1, normalize_expert_weights false)",
    ),
    "dropless_kernel with looped": (
        "type: moe\nimplementation: looped\ndropless_kernel: triton\n",
        "moe.yaml:3:1: dropless_kernel: triton has no effect with implementation: looped, which runs no dropless kernel (remove "
        "it, or use implementation dropless or auto)",
    ),
}

# The ranges and enum values of the new fields.
RANGES = {
    "capacity_factor 0": ("type: moe\ncapacity_factor: 0\n", "moe.yaml:2:18: capacity_factor: must be > 0, got 0"),
    "capacity_factor < 0": ("type: moe\ncapacity_factor: -1.0\n", "moe.yaml:2:18: capacity_factor: must be > 0, got -1.0"),
    "routed_scaling_factor 0": ("type: moe\nrouted_scaling_factor: 0\n", "moe.yaml:2:24: routed_scaling_factor: must be > 0, got 0"),
    "balanced_routing_noise 1.5": (
        "type: moe\nrouting: balanced\nbalanced_routing_noise: 1.5\n",
        "moe.yaml:3:25: balanced_routing_noise: must be <= 1, got 1.5",
    ),
    "balanced_routing_noise < 0": (
        "type: moe\nrouting: balanced\nbalanced_routing_noise: -0.1\n",
        "moe.yaml:3:25: balanced_routing_noise: must be >= 0, got -0.1",
    ),
    # Reported once, at expert_groups: expert_groups_per_token is not derived from an invalid value.
    "expert_groups 0": ("type: moe\nexperts: 4\nexpert_groups: 0\n", "moe.yaml:3:16: expert_groups: must be >= 1, got 0"),
    "expert_groups not an integer": (
        "type: moe\nexpert_groups: two\n",
        "moe.yaml:2:16: expert_groups: expected an integer, got string 'two'",
    ),
    "expert_groups_per_token 0": (
        "type: moe\nexpert_groups_per_token: 0\n",
        "moe.yaml:2:26: expert_groups_per_token: must be >= 1, got 0",
    ),
    "shared_expert_intermediate_size 0": (
        "type: moe\nexperts: 4\nshared_experts: 1\nshared_expert_intermediate_size: 0\n",
        "moe.yaml:4:34: shared_expert_intermediate_size: must be >= 1, got 0",
    ),
    "activation_limit 0": (
        "gated: true\nactivation: gpt_oss_glu\nactivation_limit: 0\n",
        "moe.yaml:3:19: activation_limit: must be > 0, got 0",
    ),
    "bias_update_rate < 0": (
        "type: moe\nrouting: aux_free\nbias_update_rate: -0.1\n",
        "moe.yaml:3:19: bias_update_rate: must be >= 0, got -0.1",
    ),
    "sequence_auxiliary_loss_coefficient < 0": (
        "type: moe\nsequence_auxiliary_loss_coefficient: -1\n",
        "moe.yaml:2:38: sequence_auxiliary_loss_coefficient: must be >= 0, got -1",
    ),
    "misspelt router_score_function": (
        "type: moe\nrouter_score_function: sigmiod\n",
        "moe.yaml:2:24: router_score_function: expected one of softmax, sigmoid; got string 'sigmiod' (did you mean sigmoid?)",
    ),
    "unknown router_score_function": (
        "type: moe\nrouter_score_function: softplus\n",
        "moe.yaml:2:24: router_score_function: expected one of softmax, sigmoid; got string 'softplus'",
    ),
    "unknown drop_policy": (
        "type: moe\ncapacity_factor: 1.25\ndrop_policy: random\n",
        "moe.yaml:3:14: drop_policy: expected one of probability, position; got string 'random'",
    ),
    "unknown router_dtype": (
        "type: moe\nrouter_dtype: bf16\n",
        "moe.yaml:2:15: router_dtype: expected one of float32, float64, input; got string 'bf16'",
    ),
    "normalize_expert_weights is a bool": (
        "type: moe\nnormalize_expert_weights: 1\n",
        "moe.yaml:2:27: normalize_expert_weights: expected true or false, got integer 1",
    ),
    "unknown dropless_kernel": (
        "type: moe\ndropless_kernel: cuda\n",
        "moe.yaml:2:18: dropless_kernel: expected one of auto, torch, triton; got string 'cuda'",
    ),
    "misspelt routing": (
        "type: moe\nrouting: auxfree\n",
        "moe.yaml:2:10: routing: expected one of aux_loss, sinkhorn, aux_free, balanced; got string 'auxfree' (did you mean aux_free?)",
    ),
}


@pytest.mark.parametrize("text, expected", [*RULES.values(), *RANGES.values()], ids=[*RULES, *RANGES])
def test_error_text(text: str, expected: str) -> None:
    assert errors_of(text) == expected


def test_auxiliary_loss_coefficient_follows_the_routing() -> None:
    # Derived: 0.01 with aux_loss, 0 with the routings that have no load-balancing loss; 0 is allowed everywhere.
    for routing, value in (("aux_loss", 0.01), ("sinkhorn", 0.0), ("aux_free", 0.0), ("balanced", 0.0)):
        config = load(f"type: moe\nrouting: {routing}\nexperts: 4\n")
        assert (config.auxiliary_loss_coefficient, config.provenance("auxiliary_loss_coefficient")) == (value, "derived")
        assert "auxiliary_loss_coefficient" not in config.to_dict()
        assert load(f"type: moe\nrouting: {routing}\nexperts: 4\nauxiliary_loss_coefficient: 0\n").auxiliary_loss_coefficient == 0
    # The error names both fields, blamed on the one the user changed last (here the override).
    assert errors_of("type: moe\nauxiliary_loss_coefficient: 0.02\n", overrides=("routing=aux_free",)) == (
        "--set routing=aux_free: routing: auxiliary_loss_coefficient 0.02 only applies with routing: aux_loss; "
        "routing aux_free adds no load-balancing loss (remove it, or set it to 0)"
    )


def test_every_rule_of_moe_has_a_golden_error() -> None:
    # A rule added later without a golden here fails this test. The seed rule (experts_per_token + shared_experts
    # <= experts) has its goldens in tests/config/test_errors.py.
    family_rules = [rule for rule in MoEMLPConfig.rules() if rule.fields[0] != "experts_per_token"]
    blamed = {text.split(": ")[1] for _, text in RULES.values()}
    assert blamed == {rule.fields[0] for rule in family_rules}
    assert len(RULES) >= len(family_rules) == 40


def test_all_problems_of_one_file_at_once_sorted_by_position() -> None:
    text = """\
    type: moe
    experts: 10
    shared_experts: 1
    experts_per_token: 2
    activation: gpt_oss_glu
    expert_groups: 2
    bias_update_rate: 0.01
    drop_policy: position
    capacity_factor: 0
    router_weight_on_input: true
    shared_expert_gate: {enabled: true}
    routed_scaling_factor: -2.5
    router_score_function: sigmiod
    """
    assert errors_of(text).splitlines() == [
        "moe.yaml:5:1: activation: gpt_oss_glu is a gated linear unit: it needs gated: true",
        "moe.yaml:6:1: expert_groups: must divide the experts - shared_experts routed experts (9 routed experts, 2 groups); "
        "experts counts the 1 shared expert too: experts: 11 gives 10 routed experts",
        "moe.yaml:7:1: bias_update_rate: only applies with routing: aux_free (remove it, or set it to null)",
        "moe.yaml:9:18: capacity_factor: must be > 0, got 0",
        "moe.yaml:10:1: router_weight_on_input: needs experts_per_token = 1 (got 2): with several experts the weight on "
        "the input does not factor out",
        "moe.yaml:12:24: routed_scaling_factor: must be > 0, got -2.5",
        "moe.yaml:13:24: router_score_function: expected one of softmax, sigmoid; got string 'sigmiod' (did you mean sigmoid?)",
    ]


def test_a_rule_on_a_field_that_failed_is_skipped() -> None:
    # routing is invalid, so the rules that read it (aux_free only, balanced only, groups) say nothing.
    text = "type: moe\nrouting: auxfree\nbias_update_rate: 0.01\nbalanced_routing_noise: 0.5\nexperts: 8\nexpert_groups: 2\n"
    assert errors_of(text) == (
        "moe.yaml:2:10: routing: expected one of aux_loss, sinkhorn, aux_free, balanced; got string 'auxfree' (did you mean aux_free?)"
    )


def test_default_configs_trip_no_rule() -> None:
    for routing in RoutingType:
        MoEMLPConfig(routing=routing)
        MoEMLPConfig(routing=routing, experts=8, experts_per_token=2, shared_experts=1)
    MLPConfig()
    MLPConfig(gated=True, activation="gpt_oss_glu")
    MoEMLPConfig(capacity_factor=1.0)


# Derived defaults: (YAML text, field, value it derives to).
DERIVED = {
    "score function sinkhorn k=1": ("type: moe\nrouting: sinkhorn\n", "router_score_function", RouterScoreFunction.sigmoid),
    "score function sinkhorn k=2": (
        "type: moe\nexperts: 4\nexperts_per_token: 2\nrouting: sinkhorn\n", "router_score_function", RouterScoreFunction.softmax,
    ),
    "score function aux_loss": ("type: moe\n", "router_score_function", RouterScoreFunction.softmax),
    "normalize sinkhorn": ("type: moe\nrouting: sinkhorn\n", "normalize_expert_weights", False),
    "normalize aux_free": ("type: moe\nrouting: aux_free\n", "normalize_expert_weights", True),
    "normalize sigmoid top-1": ("type: moe\nrouter_score_function: sigmoid\n", "normalize_expert_weights", False),
    "normalize sigmoid top-2": (
        "type: moe\nexperts: 4\nexperts_per_token: 2\nrouter_score_function: sigmoid\n", "normalize_expert_weights", True
    ),
    "groups per token": ("type: moe\nexperts: 16\nexpert_groups: 4\n", "expert_groups_per_token", 4),
    "group score": ("type: moe\nexperts: 16\nexpert_groups: 4\n", "expert_group_score", "top2_sum"),
    "bias_update_rate aux_free": ("type: moe\nrouting: aux_free\n", "bias_update_rate", 0.001),
    "bias_update_rate aux_loss": ("type: moe\n", "bias_update_rate", None),
    "automatic_bias_update aux_free": ("type: moe\nrouting: aux_free\n", "automatic_bias_update", False),
    "automatic_bias_update sinkhorn": ("type: moe\nrouting: sinkhorn\n", "automatic_bias_update", None),
    "balanced_routing_noise balanced": ("type: moe\nrouting: balanced\n", "balanced_routing_noise", 0.0),
    "drop_policy with capacity": ("type: moe\ncapacity_factor: 1.25\n", "drop_policy", DropPolicy.probability),
    "drop_policy dropless": ("type: moe\n", "drop_policy", None),
    "activation_limit gpt_oss_glu": ("type: moe\ngated: true\nactivation: gpt_oss_glu\n", "activation_limit", 7.0),
    "activation_limit gpt_oss_glu dense": ("gated: true\nactivation: gpt_oss_glu\n", "activation_limit", 7.0),
    "activation_limit silu": ("gated: true\n", "activation_limit", None),
    "jitter_target with jitter": ("type: moe\njitter_eps: 0.1\n", "jitter_target", JitterTarget.router_logits),
    "jitter_target without jitter": ("type: moe\n", "jitter_target", None),
    "jitter_distribution with jitter": ("type: moe\njitter_eps: 0.1\n", "jitter_distribution", JitterDistribution.uniform),
    "bias_update_rule aux_free": ("type: moe\nrouting: aux_free\n", "bias_update_rule", BiasUpdateRule.sign),
    "bias_update_rule aux_loss": ("type: moe\n", "bias_update_rule", None),
    "bias_update_ema_decay ema": ("type: moe\nrouting: aux_free\nbias_update_rule: ema\n", "bias_update_ema_decay", 0.99),
    "bias_update_schedule aux_free": ("type: moe\nrouting: aux_free\n", "bias_update_schedule", BiasUpdateSchedule.constant),
    "correction_bias_target aux_free": ("type: moe\nrouting: aux_free\n", "correction_bias_target", CorrectionBiasTarget.selection),
}


@pytest.mark.parametrize("text, name, value", list(DERIVED.values()), ids=list(DERIVED))
def test_derived_default_survives_a_round_trip(text: str, name: str, value: object) -> None:
    config = load(text)
    assert getattr(config, name) == value and config.provenance(name) == "derived"
    again = load(config.dump())  # dump writes the set fields only
    assert again == config and again.provenance(name) == "derived"
    # A resolved dump writes the value; a null loads as "not set", so it is derived again.
    resolved = load(config.dump(resolved=True))
    assert resolved == config and resolved.provenance(name) == ("derived" if value is None else "set")


def test_a_set_value_is_not_derived() -> None:
    config = load("type: moe\nrouting: aux_free\nbias_update_rate: 0.01\nrouter_score_function: sigmoid\n")
    assert (config.bias_update_rate, config.provenance("bias_update_rate")) == (0.01, "set")
    assert (config.router_score_function, config.provenance("router_score_function")) == (RouterScoreFunction.sigmoid, "set")
    assert config.provenance("automatic_bias_update") == "derived"
    assert load(config.dump()).provenance("bias_update_rate") == "set"


# Configs shaped like published models' MoE layers (sizes from their Hugging Face config.json).
DEEPSEEK_V3 = """\
type: moe
experts: 257                 # n_routed_experts 256 + n_shared_experts 1
shared_experts: 1
experts_per_token: 8
intermediate_size: 2048      # moe_intermediate_size
gated: true
add_linear_biases: false
router_score_function: sigmoid
routing: aux_free
expert_groups: 8             # n_group
expert_groups_per_token: 4   # topk_group
routed_scaling_factor: 2.5
normalize_expert_weights: true
auxiliary_loss_coefficient: 0.0
sequence_auxiliary_loss_coefficient: 0.0001
"""
QWEN2_MOE_57B = """\
type: moe
experts: 65                  # num_experts 64 + the shared expert
shared_experts: 1
experts_per_token: 8
intermediate_size: 2560      # moe_intermediate_size
shared_expert_intermediate_size: 20480
shared_expert_gate: {enabled: true}
gated: true
add_linear_biases: false
normalize_expert_weights: false   # norm_topk_prob
auxiliary_loss_coefficient: 0.001
"""
GPT_OSS_120B = """\
type: moe
experts: 128                 # num_local_experts
experts_per_token: 4
intermediate_size: 2880
gated: true
activation: gpt_oss_glu
add_linear_biases: true
router_bias: {enabled: true}
"""
LLAMA_4_SCOUT = """\
type: moe
experts: 17                  # num_local_experts 16 + the shared expert
shared_experts: 1
experts_per_token: 1
intermediate_size: 8192
gated: true
add_linear_biases: false
router_score_function: sigmoid
normalize_expert_weights: false
router_weight_on_input: true
"""


def test_deepseek_v3_layer() -> None:
    config = load(DEEPSEEK_V3)
    assert (config.routing, config.activation, config.bias_update_rate, config.automatic_bias_update) == (
        RoutingType.aux_free, ActivationType.silu, 0.001, False,
    )
    counts = count_layer(config, 7168)
    expert = 3 * 7168 * 2048
    assert counts.total_parameters == 256 * 7168 + 257 * expert == 11_320_164_352
    assert counts.active_parameters == 256 * 7168 + 9 * expert


def test_qwen2_moe_layer() -> None:
    config = load(QWEN2_MOE_57B)
    assert config.router_score_function == RouterScoreFunction.softmax and config.provenance("router_score_function") == "derived"
    counts = count_layer(config, 3584)
    assert counts.shared_parameters == 3 * 3584 * 20480 + 3584  # one SwiGLU MLP of width 20480 and the gate vector


def test_gpt_oss_layer() -> None:
    config = load(GPT_OSS_120B)
    assert (config.activation_limit, config.provenance("activation_limit")) == (7.0, "derived")
    counts = count_layer(config, 2880)
    assert counts.router_parameters == 128 * 2880 + 128
    assert counts.parameters_per_expert == 3 * 2880 * 2880 + 2 * 2880 + 2880


def test_llama_4_layer() -> None:
    config = load(LLAMA_4_SCOUT)
    assert config.router_weight_on_input and config.expert_groups_per_token == 1
    assert count_layer(config, 5120).active_parameters == 16 * 5120 + 2 * 3 * 5120 * 8192


def test_model_configs_also_validate_from_python() -> None:
    for text in (DEEPSEEK_V3, QWEN2_MOE_57B, GPT_OSS_120B, LLAMA_4_SCOUT):
        config = load(text)
        assert MLPBaseConfig.from_dict(config.to_dict()) == config


def test_applied_losses_name_the_losses_that_reach_the_gradient() -> None:
    assert load("type: moe\n").applied_losses() == {"load_balancing_loss"}
    assert load("type: moe\nauxiliary_loss_coefficient: 0\n").applied_losses() == frozenset()
    assert load("type: moe\nrouting: sinkhorn\nz_loss_coefficient: 0.001\n").applied_losses() == {"z_loss"}
    aux_free = load("type: moe\nexperts: 4\nrouting: aux_free\nsequence_auxiliary_loss_coefficient: 0.0001\n")
    assert aux_free.applied_losses() == {"sequence_load_balancing_loss"}
