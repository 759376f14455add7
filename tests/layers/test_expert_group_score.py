"""expert_group_score: how group-limited routing scores a group (top2_sum: DeepSeek-V3; max: DeepSeek-V2's
group_limited_greedy), against a float64 reference written one token at a time: the group scores from the
selection scores, the kept groups, the top-k among their experts, the weights (the chosen scores, renormalised
or not, × routed_scaling_factor) and the layer's output Σ w · expert(x)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from fastmoe_cfg.layers.moe.router import select_experts
from fastmoe_cfg.schemas import MoEMLPConfig
from fastmoe_cfg.schemas.enums import ExpertGroupScore

HIDDEN, TOKENS = 8, 24


def reference_choice(selection: list[float], k: int, groups: int, kept: int, score: str) -> set[int]:
    """One token: the experts of the `kept` best groups (group score: its max, or the sum of its best two), then the
    top-k of their selection scores."""
    size = len(selection) // groups
    members = [selection[g * size : (g + 1) * size] for g in range(groups)]
    group_scores = [max(m) if score == "max" else sum(sorted(m, reverse=True)[:2]) for m in members]
    best_groups = sorted(range(groups), key=lambda g: -group_scores[g])[:kept]
    eligible = [e for g in best_groups for e in range(g * size, (g + 1) * size)]
    return set(sorted(eligible, key=lambda e: -selection[e])[:k])


def silu(x: torch.Tensor) -> torch.Tensor:
    return x / (1 + torch.exp(-x))


def test_select_experts_scores_groups_by_max_or_top2_sum():
    """Group 0 has the best single expert, group 1 the best pair: the two scores keep different groups."""
    selection = torch.tensor([[0.9, 0.0, 0.0, 0.0, 0.5, 0.5, 0.0, 0.0]])
    top2 = select_experts(selection, 1, groups=2, groups_per_token=1, group_score=ExpertGroupScore.top2_sum)
    best = select_experts(selection, 1, groups=2, groups_per_token=1, group_score=ExpertGroupScore.max)
    assert top2.item() in (4, 5) and best.item() == 0
    assert torch.equal(select_experts(selection, 1, groups=2, groups_per_token=1), top2)  # the default: top2_sum


CASES = {
    # DeepSeek-V2 group_limited_greedy: softmax scores, group max, not renormalised, × 16.
    "softmax max": {"routing": "aux_loss", "router_score_function": "softmax", "expert_group_score": "max",
                        "normalize_expert_weights": False, "routed_scaling_factor": 16.0},
    # One expert per group: a max-scored group needs no second expert.
    "softmax max, one expert per group": {"routing": "aux_loss", "router_score_function": "softmax", "expert_group_score": "max",
                                              "normalize_expert_weights": True, "expert_groups": 16, "expert_groups_per_token": 5},
    "softmax top2_sum": {"routing": "aux_loss", "router_score_function": "softmax", "expert_group_score": "top2_sum",
                             "normalize_expert_weights": True},
    # aux_free: the groups are scored on the biased selection scores, the weights are the unbiased ones.
    "sigmoid aux_free max": {"routing": "aux_free", "router_score_function": "sigmoid", "expert_group_score": "max",
                                 "normalize_expert_weights": True, "routed_scaling_factor": 2.5},
}


@pytest.mark.parametrize("case", list(CASES))
def test_group_limited_routing_equals_the_float64_reference(case):
    options = {"expert_groups": 4, "expert_groups_per_token": 2, **CASES[case]}
    config = MoEMLPConfig.from_dict({
        "type": "moe", "experts": 16, "experts_per_token": 3, "intermediate_size": 4, "gated": True, "activation": "silu",
        "add_linear_biases": False, "router_dtype": "float64", **options,
    })
    torch.manual_seed(0)
    layer = config.build(HIDDEN, dtype=torch.float64).eval()
    with torch.no_grad():
        layer.router.weight.normal_(0, 1.0)
        if config.routing == "aux_free":
            layer.router_correction_bias.normal_(0, 0.3)
    x = torch.randn(TOKENS, HIDDEN, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        routing = layer.route(x)
        out = layer(x)

    weight = layer.router.weight.detach()
    bias = layer.router_correction_bias.detach() if config.routing == "aux_free" else torch.zeros(16, dtype=torch.float64)
    gate_up, down = layer.experts.layer_1.weight.detach(), layer.experts.layer_2.weight.detach()
    for t in range(TOKENS):
        logits = weight @ x[t]
        scores = torch.exp(logits) / torch.exp(logits).sum() if config.router_score_function == "softmax" else 1 / (1 + torch.exp(-logits))
        selection = (scores + bias).tolist()
        chosen = reference_choice(selection, 3, config.expert_groups, config.expert_groups_per_token, options["expert_group_score"])
        assert set(routing.experts_TK[t].tolist()) == chosen, t
        order = sorted(chosen)
        w = scores[order]
        if config.normalize_expert_weights:
            w = w / (w.sum() + (1e-20 if config.router_score_function == "sigmoid" else 0.0))
        w = w * config.routed_scaling_factor
        ours = dict(zip(routing.experts_TK[t].tolist(), routing.weights_TK[t].tolist()))
        assert [ours[e] for e in order] == pytest.approx(w.tolist(), rel=1e-12, abs=0)
        expected = torch.zeros(HIDDEN, dtype=torch.float64)
        for e, we in zip(order, w):
            g, u = (gate_up[e] @ x[t]).chunk(2)
            expected += we * (down[e] @ (silu(g) * u))
        torch.testing.assert_close(out[t], expected, rtol=1e-12, atol=1e-12)
