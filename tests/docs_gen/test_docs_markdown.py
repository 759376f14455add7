"""The generated Markdown of the reference pages, MoEMLPConfig's above all (DESIGN.md §3 table)."""

from __future__ import annotations

import re

import pytest

from fastmoe_cfg.docs_gen.markdown import type_text
from tests.docs_gen.conftest import plain, tier_tables

# The 24 seed fields of MoEMLPConfig (DESIGN.md §3): name, tier, type, default, as the page shows them.
SEED = [
    ("activation", "core", "ActivationType or null", "derived: silu if gated, else gelu."),
    ("add_linear_biases", "architecture", "bool", "true"),
    ("experts", "architecture", "int", "2"),
    ("experts_per_token", "architecture", "int", "1"),
    ("gated", "architecture", "bool", "false"),
    ("intermediate_size", "architecture", "int", "4096"),
    ("layer_1", "architecture", "AffineLinearConfig", "{}"),
    ("layer_2", "architecture", "AffineLinearConfig", "{}"),
    ("post_norm", "architecture", "NormalizationConfig or null", "null"),
    ("pre_norm", "architecture", "NormalizationConfig or null", "null"),
    ("router_input_scale", "architecture", "float", "1.0"),
    ("router_normalization", "architecture", "NormalizationConfig or null", "null"),
    ("router_per_expert_scale", "architecture", "OptionalParameterConfig", "{}"),
    ("router_scale", "architecture", "OptionalParameterConfig", "{}"),
    ("routing", "architecture", "RoutingType", "aux_loss"),
    ("shared_experts", "architecture", "int", "0"),
    (
        "auxiliary_loss_coefficient", "feature", "float or null",
        "derived: 0.01 with routing aux_loss, else 0 (the other routings have no load-balancing loss).",
    ),
    ("jitter_eps", "feature", "float", "0.0"),
    ("lr_scale", "feature", "float or null", "null"),
    ("router", "feature", "LinearConfig", "{}"),
    ("z_loss_coefficient", "feature", "float", "0.0"),
    ("recompute_level", "performance", "MLPRecomputeLevel", "none"),
    ("dropless_dynamic_shape", "expert", "bool", "false"),
    ("implementation", "expert", "MoEImplementation", "auto"),
]
# The routing fields of the other MoE families (issue 6), as the page shows them.
FAMILY = [
    ("activation_limit", "architecture", "float or null", "derived: 7.0 with activation gpt_oss_glu (GPT-OSS), else none."),
    ("capacity_factor", "architecture", "float or null", "null"),
    ("drop_policy", "architecture", "DropPolicy or null", "derived: probability when capacity_factor is set, else none."),
    ("expert_groups", "architecture", "int", "1"),
    ("expert_groups_per_token", "architecture", "int or null", "derived: expert_groups: every group is eligible."),
    ("expert_group_score", "architecture", "ExpertGroupScore or null", "derived: top2_sum with expert_groups > 1 (DeepSeek-V3), else none."),
    ("normalize_expert_weights", "architecture", "bool or null", "derived: false for sinkhorn routing (Fast-LLM) and for one sigmoid-scored expert per token (Llama-4: the weight is the sigmoid), else true."),
    ("routed_scaling_factor", "architecture", "float", "1.0"),
    ("router_bias", "architecture", "OptionalParameterConfig", "{}"),
    (
        "router_score_function", "architecture", "RouterScoreFunction or null",
        "derived: sigmoid for sinkhorn routing with experts_per_token = 1 (Fast-LLM), else softmax.",
    ),
    ("router_weight_on_input", "architecture", "bool", "false"),
    ("shared_expert_gate", "architecture", "OptionalParameterConfig", "{}"),
    ("shared_expert_intermediate_size", "architecture", "int or null", "null"),
    ("automatic_bias_update", "feature", "bool or null", "derived: false with routing aux_free, else none."),
    ("balanced_routing_noise", "feature", "float or null", "derived: 0 with routing balanced, else none."),
    ("bias_update_rate", "feature", "float or null", "derived: 0.001 with routing aux_free (DeepSeek-V3), else none."),
    ("router_dtype", "feature", "RouterDtype", "float32"),
    ("sequence_auxiliary_loss_coefficient", "feature", "float", "0.0"),
]  # fmt: skip
# The options of the other seed systems (issue 19), as the page shows them.
SYSTEMS = [
    ("correction_bias_target", "architecture", "CorrectionBiasTarget or null", "derived: selection with routing aux_free (DeepSeek-V3), else none."),
    ("bias_update_ema_decay", "feature", "float or null", "derived: 0.99 with bias_update_rule ema (KempnerForge's ema_decay), else none."),
    ("bias_update_rule", "feature", "BiasUpdateRule or null", "derived: sign with routing aux_free (DeepSeek-V3), else none."),
    ("bias_update_schedule", "feature", "BiasUpdateSchedule or null", "derived: constant with routing aux_free, else none."),
    ("bias_update_total_steps", "feature", "int or null", "null"),
    ("dropout", "feature", "float", "0.0"),
    ("expert_load_scaling", "feature", "bool", "false"),
    ("jitter_distribution", "feature", "JitterDistribution or null", "derived: uniform when jitter_eps > 0, else none."),
    ("jitter_target", "feature", "JitterTarget or null", "derived: router_logits when jitter_eps > 0 (Fast-LLM), else none."),
]  # fmt: skip
# The choice of the dropless kernels (issue 18).
KERNELS = [("dropless_kernel", "expert", "DroplessKernel", "auto")]
# The weight options of the Hugging Face families of issue 16, as the page shows them.
HF_FAMILIES = [
    ("expert_weights_epsilon", "architecture", "float or null", "null"),
    ("expert_weights_norm_order", "architecture", "float", "1.0"),
    ("sparsemixer_eps", "architecture", "float or null", "null"),
]  # fmt: skip


@pytest.fixture(scope="module")
def moe_tables(pages: dict[str, str]) -> dict[str, list[list[str]]]:
    return tier_tables(pages["MoEMLPConfig.md"])


def test_seed_has_24_fields() -> None:
    assert len(SEED) == 24 == len({name for name, *_ in SEED})
    assert len(FAMILY) == 18 == len({name for name, *_ in FAMILY} - {name for name, *_ in SEED})


@pytest.mark.parametrize(
    ("name", "tier", "type_", "default"), SEED + FAMILY + SYSTEMS + KERNELS + HF_FAMILIES,
    ids=[row[0] for row in SEED + FAMILY + SYSTEMS + KERNELS + HF_FAMILIES],
)
def test_field_under_its_tier_with_type_and_default(moe_tables, name: str, tier: str, type_: str, default: str) -> None:
    rows = {plain(row[0]): row for row in moe_tables[tier]}
    assert name in rows, f"{name} not under the {tier} heading"
    assert [plain(cell) for cell in rows[name][1:3]] == [type_, default]


def test_tiers_in_fixed_order_fields_alphabetical(moe_tables) -> None:
    assert list(moe_tables) == ["core", "architecture", "feature", "performance", "expert"]
    for tier, rows in moe_tables.items():
        names = [plain(row[0]) for row in rows]
        assert names == sorted(names), tier
    listed = {plain(row[0]) for rows in moe_tables.values() for row in rows}
    assert listed == {name for name, *_ in SEED + FAMILY + SYSTEMS + KERNELS + HF_FAMILIES} | {"type", "format_version"}


def test_field_row_in_full(pages: dict[str, str]) -> None:
    row = next(line for line in pages["MoEMLPConfig.md"].splitlines() if line.startswith('| <a id="experts_per_token">'))
    assert row == (
        '| <a id="experts_per_token"></a>`experts_per_token` | `int` | `1` | Routed experts active per token (the k of top-k).'
        "<br>**Constraints:** ≥ 1. Each token picks experts_per_token of the experts - shared_experts routed experts: "
        "experts_per_token + shared_experts <= experts. With expert_groups > 1, the expert_groups_per_token kept groups hold "
        "at least experts_per_token experts. router_weight_on_input needs experts_per_token = 1. "
        "router_weight_on_input needs a weight that is not renormalised to 1: normalize_expert_weights false. "
        "expert_load_scaling needs experts_per_token < experts - shared_experts (else every load is the mean). |"
    )


def test_enum_field_lists_values_with_meanings_and_links_its_page(pages: dict[str, str]) -> None:
    row = next(line for line in pages["MoEMLPConfig.md"].splitlines() if line.startswith('| <a id="routing">'))
    assert "| [`RoutingType`](RoutingType.md) | `aux_loss` |" in row
    assert row.endswith(
        "How tokens are assigned to experts.<br>**Constraints:** expert_groups > 1 needs routing aux_loss or aux_free. "
        "auxiliary_loss_coefficient other than 0 needs routing: aux_loss (the only routing with a load-balancing loss). "
        "bias_update_rate only applies with routing: aux_free. automatic_bias_update only applies with routing: aux_free. "
        "balanced_routing_noise only applies with routing: balanced. "
        "router_input_scale other than 1 has no effect with routing: balanced. "
        "router_normalization other than null has no effect with routing: balanced. "
        "router_score_function other than softmax has no effect with routing: balanced. "
        "normalize_expert_weights false has no effect with routing: balanced. "
        "router_weight_on_input other than false has no effect with routing: balanced. "
        "router_dtype other than float32 has no effect with routing: balanced. "
        "drop_policy position has no effect with routing: balanced without balanced_routing_noise. "
        "jitter_eps other than 0 has no effect with routing: balanced, unless jitter_target is layer_input. "
        "bias_update_rule only applies with routing: aux_free. bias_update_schedule only applies with routing: aux_free. "
        "correction_bias_target only applies with routing: aux_free. "
        "bias_update_schedule cosine_decay or linear_warmup needs bias_update_total_steps. "
        "expert_weights_norm_order other than 1 has no effect with routing: balanced. "
        "expert_weights_epsilon other than null has no effect with routing: balanced. "
        "sparsemixer_eps needs routing aux_loss, router_score_function softmax, expert_groups 1 and normalize_expert_weights true."
        "<br>**Values:**<br>`aux_loss`: Top-k of the scores, weights = the chosen scores (with the default softmax scores and "
        "normalize_expert_weights: softmax over the selected logits), balanced by the auxiliary load-balancing loss."
        "<br>`sinkhorn`: Balanced assignment by Sinkhorn iterations in training (until the mean change is below 1e-4; no "
        "gradient through the choice), weights = the scores at the chosen experts (by default sigmoid for top-1, else "
        "softmax, not renormalized); top-k of the scores in inference."
        "<br>`aux_free`: DeepSeek-V3 auxiliary-loss-free balancing: top-k of scores + a per-expert correction bias that "
        "serves the choice only (weights are the unbiased scores; correction_bias_target logits: KempnerForge's bias on the "
        "logits); on layer.update_bias() the bias moves by bias_update_rate · sign(mean load - load_e) (bias_update_rule "
        "sign; ema: KempnerForge's rule), scaled by bias_update_schedule."
        "<br>`balanced`: Benchmark only: the j-th choice of the t-th real token is expert (t·k + j) mod E_r, weight 1/k, "
        "whatever the router says (NeMo's FakeBalancedGate); balanced_routing_noise skews it. Measures the cost of load "
        "imbalance. |"
    )


def test_head_of_a_variant_page(pages: dict[str, str]) -> None:
    head = pages["MoEMLPConfig.md"].split("## Fields")[0]
    assert head == (
        "<!-- Generated from the schemas by `fastmoe-cfg docs generate`: do not edit. -->\n\n"
        "# MoEMLPConfig\n\n"
        "A mixture-of-experts MLP: a router sends each token to `experts_per_token` of the routed experts and sums their "
        "outputs, weighted by the routing scores; shared experts process every token.\n\n"
        "- **Module:** `fastmoe_cfg.schemas.mlp`\n"
        "- **Variant of:** [`MLPBaseConfig`](MLPBaseConfig.md) — select with `type: moe`\n"
        "- **Inherits from:** [`TwoLayerMLPConfig`](TwoLayerMLPConfig.md), [`MLPBaseConfig`](MLPBaseConfig.md), `Config`\n\n"
    )


def test_base_page_lists_its_variants_and_nested_page_its_users(pages: dict[str, str]) -> None:
    base = pages["NormalizationConfig.md"]
    assert (
        "- **Variants** (chosen by `type:`): `none` → [`NoNormalizationConfig`](NoNormalizationConfig.md), "
        "`layer_norm` (default) → [`LayerNormalizationConfig`](LayerNormalizationConfig.md), "
        "`rms_norm` → [`RMSNormalizationConfig`](RMSNormalizationConfig.md), "
        "`fixed_rms_norm` → [`FixedRMSNormalizationConfig`](FixedRMSNormalizationConfig.md)\n"
    ) in base
    rms = pages["RMSNormalizationConfig.md"]
    assert "- **Variant of:** [`NormalizationConfig`](NormalizationConfig.md) — select with `type: rms_norm`\n" in rms
    assert "- **Inherits from:** [`AffineNormalizationConfig`](AffineNormalizationConfig.md), [`NormalizationConfig`](NormalizationConfig.md), `Config`\n" in rms
    used_in = rms.split("## Used in\n\n")[1]
    assert used_in.splitlines()[:3] == [
        "- [`MLPBaseConfig`](MLPBaseConfig.md): [`pre_norm`](MLPBaseConfig.md#pre_norm), [`post_norm`](MLPBaseConfig.md#post_norm)",
        "- [`MLPConfig`](MLPConfig.md): [`pre_norm`](MLPConfig.md#pre_norm), [`post_norm`](MLPConfig.md#post_norm)",
        "- [`MoEMLPConfig`](MoEMLPConfig.md): [`pre_norm`](MoEMLPConfig.md#pre_norm), [`post_norm`](MoEMLPConfig.md#post_norm), "
        "[`router_normalization`](MoEMLPConfig.md#router_normalization)",
    ]
    assert (
        "- **Subclasses:** [`LayerNormalizationConfig`](LayerNormalizationConfig.md), [`RMSNormalizationConfig`](RMSNormalizationConfig.md)\n"
    ) in pages["AffineNormalizationConfig.md"]
    assert "**Subclasses:**" not in base  # a family's base lists its variants instead


def test_required_field_and_constraints(pages: dict[str, str]) -> None:
    fill = tier_tables(pages["FillInitializationConfig.md"])
    assert [plain(cell) for cell in fill["feature"][0]] == ["value", "float", "*required*", "The constant (required)."]
    normal = {plain(row[0]): row for row in tier_tables(pages["NormalInitializationConfig.md"])["feature"]}
    assert normal["std"][3] == "Standard deviation.<br>**Constraints:** ≥ 0."
    assert normal["min"][3].endswith("**Constraints:** When both are set, `min` must be smaller than `max`.")


def test_every_link_points_at_a_page_and_anchor_that_exist(pages: dict[str, str]) -> None:
    anchors = {name: set(re.findall(r'<a id="([^"]+)"></a>', text)) for name, text in pages.items()}
    for name, text in pages.items():
        for target, anchor in re.findall(r"\]\(([\w.]+\.md)(?:#([\w-]+))?\)", text):
            assert target in pages, f"{name} links to a missing {target}"
            if anchor and "tier" not in anchor:
                assert anchor in anchors[target], f"{name} links to a missing {target}#{anchor}"


def test_enum_page(pages: dict[str, str]) -> None:
    assert pages["RoutingType.md"] == (
        "<!-- Generated from the schemas by `fastmoe-cfg docs generate`: do not edit. -->\n\n"
        "# RoutingType\n\n"
        "How the router assigns tokens to experts.\n\n"
        "- **Module:** `fastmoe_cfg.schemas.enums`\n\n"
        "## Values\n\n"
        "| Value | Meaning |\n"
        "|---|---|\n"
        '| <a id="aux_loss"></a>`aux_loss` | Top-k of the scores, weights = the chosen scores (with the default softmax scores '
        "and normalize_expert_weights: softmax over the selected logits), balanced by the auxiliary load-balancing loss. |\n"
        '| <a id="sinkhorn"></a>`sinkhorn` | Balanced assignment by Sinkhorn iterations in training (until the mean change is '
        "below 1e-4; no gradient through the choice), weights = the scores at the chosen experts (by default sigmoid for "
        "top-1, else softmax, not renormalized); top-k of the scores in inference. |\n"
        '| <a id="aux_free"></a>`aux_free` | DeepSeek-V3 auxiliary-loss-free balancing: top-k of scores + a per-expert '
        "correction bias that serves the choice only (weights are the unbiased scores; correction_bias_target logits: "
        "KempnerForge's bias on the logits); on layer.update_bias() the bias moves by bias_update_rate · sign(mean load - "
        "load_e) (bias_update_rule sign; ema: KempnerForge's rule), scaled by bias_update_schedule. |\n"
        '| <a id="balanced"></a>`balanced` | Benchmark only: the j-th choice of the t-th real token is expert (t·k + j) mod '
        "E_r, weight 1/k, whatever the router says (NeMo's FakeBalancedGate); balanced_routing_noise skews it. Measures the "
        "cost of load imbalance. |\n\n"
        "## Used in\n\n"
        "- [`MoEMLPConfig`](MoEMLPConfig.md): [`routing`](MoEMLPConfig.md#routing)\n"
    )


def test_index_lists_variants_per_base_and_every_enum(pages: dict[str, str]) -> None:
    index = pages["index.md"]
    assert "### MLPBaseConfig\n" in index and "### NormalizationConfig\n" in index and "### InitializationConfig\n" in index
    assert "| `moe` | [`MoEMLPConfig`](MoEMLPConfig.md) |" in index
    assert "| `mlp` (default) | [`MLPConfig`](MLPConfig.md) | A dense MLP: layer_2(activation(layer_1(x))). |" in index
    for enum_name in (
        "ActivationType", "RoutingType", "MoEImplementation", "MLPRecomputeLevel", "RouterScoreFunction", "DropPolicy", "RouterDtype",
    ):
        assert f"| [`{enum_name}`]({enum_name}.md) |" in index


def test_tiers_page_explains_each_tier_in_order(pages: dict[str, str]) -> None:
    tiers = pages["tiers.md"]
    headings = re.findall(r'^## <span class="tier tier-(\w+)">', tiers, re.M)
    assert headings == ["core", "architecture", "feature", "performance", "expert", "deprecated"]
    assert "Changes speed or memory only, never results.\n" in tiers
    assert "two configs that differ only outside `architecture` load the same checkpoint" in tiers
    assert (
        "| [`MoEMLPConfig`](MoEMLPConfig.md) | [`dropless_dynamic_shape`](MoEMLPConfig.md#dropless_dynamic_shape), "
        "[`dropless_kernel`](MoEMLPConfig.md#dropless_kernel), [`implementation`](MoEMLPConfig.md#implementation) |"
    ) in tiers


@pytest.mark.parametrize(
    ("annotation", "text"),
    [
        (int, "`int`"),
        (float | None, "`float` or `null`"),
        (list[int], "list of `int`"),
        (dict[str, float], "mapping of `str` to `float`"),
    ],
)
def test_type_text(annotation, text: str) -> None:
    assert type_text(annotation) == text
