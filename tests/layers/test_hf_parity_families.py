"""Parity with more Hugging Face transformers MoE blocks (test-only dependency): Qwen2-MoE, GPT-OSS, Llama-4, OLMoE.

Each HF block is built from a small config, every parameter filled by hand (standalone blocks never run
`_init_weights`), and copied into our layer built from the matching fields; the weight mapping of each
family is spelled out in its builder below. CPU, float32, eval mode, for the looped and dropless
implementations and 1, 7 and 50 tokens: outputs within 1e-5 and input gradients within 1e-4
(max abs difference / max abs reference), the same experts per token (as sets: HF's top-k order is not
ours) with the same routing weights. Inputs are drawn until no token has a near-tie between its k-th
and (k+1)-th router logit, so the choice cannot flip by rounding.

router_dtype: every family here runs the router linear in the input dtype (no upcast of the input or
weight), so our layer uses `router_dtype: input`. Qwen2-MoE and OLMoE then take the softmax in float32
(as our scores always are), Llama-4 the sigmoid in float32 cast back to the input dtype, and GPT-OSS the
softmax of the k chosen logits in the input dtype (in float32 all of this is the same).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import pytest
import torch

from fastmoe_cfg.schemas.mlp import GPT_OSS_ALPHA
from fastmoe_cfg.schemas import MLPBaseConfig

transformers = pytest.importorskip("transformers", reason="HF parity needs transformers (pip install -e '.[dev]')")

HIDDEN, INTERMEDIATE, EXPERTS = 16, 8, 6  # EXPERTS: routed experts
MIN_LOGIT_MARGIN = 1e-3  # between the k-th and (k+1)-th logit of every token; float32 rounding is ~1e-6


@dataclass
class Family:
    """An HF MoE block and what our layer needs to match it."""

    block: torch.nn.Module
    k: int
    fields: dict  # our config fields, besides the implementation
    copy: Callable[[torch.nn.Module, torch.nn.Module], None]  # copy(layer, block): HF weights into our layer
    # route(block, x_TH): HF's (logits_TE, experts_TK, weights_TK)
    route: Callable[[torch.nn.Module, torch.Tensor], tuple]


def filled(block: torch.nn.Module, std: float = 0.3) -> torch.nn.Module:
    """Every parameter redrawn N(0, std²), in eval mode (standalone HF blocks leave them empty or zero)."""
    with torch.no_grad():
        for parameter in block.parameters():
            parameter.normal_(0, std)
    return block.eval()


def our_fields(**fields) -> dict:
    """Our MoE fields: gated SiLU experts of width INTERMEDIATE without biases, top-2, the router linear in the
    input dtype (every family here), and `fields` on top."""
    return {
        "experts": EXPERTS, "experts_per_token": 2, "intermediate_size": INTERMEDIATE, "gated": True,
        "activation": "silu", "add_linear_biases": False, "router_dtype": "input", **fields,
    }


def eager(config):
    config._experts_implementation = "eager"
    return config


def copy_fused_experts(layer, experts) -> None:
    """HF fused layout (Qwen2-MoE, OLMoE): `gate_up_proj` [E, 2I, H] gate rows first -> our `experts.layer_1.weight`
    [E, 2I, H] as is; `down_proj` [E, H, I] -> `experts.layer_2.weight` [E, H, I] as is."""
    layer.experts.layer_1.weight.copy_(experts.gate_up_proj)
    layer.experts.layer_2.weight.copy_(experts.down_proj)


def copy_dense_mlp(ours, mlp) -> None:
    """HF gated MLP of nn.Linear (Qwen2-MoE and Llama-4 shared expert): `gate_proj.weight` [I_s, H] and
    `up_proj.weight` [I_s, H] -> our `shared.layer_1.weight` [2·I_s, H] = cat(gate, up); `down_proj.weight`
    [H, I_s] -> `shared.layer_2.weight` as is."""
    ours.layer_1.weight.copy_(torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight]))
    ours.layer_2.weight.copy_(mlp.down_proj.weight)


def softmax_top_k_route(block, x_TH):
    """HF routers returning (logits, top-k weights, top-k indices): Qwen2-MoE, OLMoE (`gate`), GPT-OSS (`router`)."""
    router = block.gate if hasattr(block, "gate") else block.router
    logits_TE, weights_TK, experts_TK = router(x_TH)
    return logits_TE, experts_TK, weights_TK


# --- the families ----------------------------------------------------------------------------------------------


def qwen2_moe(norm_topk_prob: bool) -> Family:
    """Softmax top-k (renormalised when norm_topk_prob), one gated shared expert of its own width (12)
    times sigmoid(shared_expert_gate(x)), gate Linear(H, 1) without bias."""
    from transformers import Qwen2MoeConfig
    from transformers.models.qwen2_moe.modeling_qwen2_moe import Qwen2MoeSparseMoeBlock

    config = eager(Qwen2MoeConfig(
        hidden_size=HIDDEN, moe_intermediate_size=INTERMEDIATE, shared_expert_intermediate_size=12, num_experts=EXPERTS,
        num_experts_per_tok=2, norm_topk_prob=norm_topk_prob, hidden_act="silu",
    ))
    fields = our_fields(
        experts=EXPERTS + 1, shared_experts=1, shared_expert_intermediate_size=12, shared_expert_gate={"enabled": True},
        router_score_function="softmax", normalize_expert_weights=norm_topk_prob,
    )

    def copy(layer, block):
        layer.router.weight.copy_(block.gate.weight)  # gate.weight [E, H] -> router.weight [E, H]
        copy_fused_experts(layer, block.experts)
        copy_dense_mlp(layer.shared, block.shared_expert)
        layer.shared_expert_gate.copy_(block.shared_expert_gate.weight[0])  # Linear(H, 1).weight [1, H] -> vector [H]

    return Family(filled(Qwen2MoeSparseMoeBlock(config)), 2, fields, copy, softmax_top_k_route)


def olmoe() -> Family:
    """Softmax top-k, not renormalised (norm_topk_prob False), no shared expert."""
    from transformers import OlmoeConfig
    from transformers.models.olmoe.modeling_olmoe import OlmoeSparseMoeBlock

    config = eager(OlmoeConfig(
        hidden_size=HIDDEN, intermediate_size=INTERMEDIATE, num_experts=EXPERTS, num_experts_per_tok=2,
        norm_topk_prob=False, hidden_act="silu",
    ))
    fields = our_fields(router_score_function="softmax", normalize_expert_weights=False)

    def copy(layer, block):
        layer.router.weight.copy_(block.gate.weight)  # gate.weight [E, H] -> router.weight [E, H]
        copy_fused_experts(layer, block.experts)

    return Family(filled(OlmoeSparseMoeBlock(config)), 2, fields, copy, softmax_top_k_route)


def gate_first(interleaved: torch.Tensor) -> torch.Tensor:
    """GPT-OSS's interleaved last dim [..., 2I] (gate = ::2, up = 1::2) -> gate then up."""
    return torch.cat([interleaved[..., ::2], interleaved[..., 1::2]], dim=-1)


def gpt_oss() -> Family:
    """Router with bias, top-k on the logits then softmax over the k chosen; experts with biases, transposed and
    interleaved storage, the clamped GLU (limit swiglu_limit, alpha 1.702)."""
    from transformers import GptOssConfig
    from transformers.models.gpt_oss.modeling_gpt_oss import GptOssMLP

    config = eager(GptOssConfig(
        hidden_size=HIDDEN, intermediate_size=INTERMEDIATE, num_local_experts=EXPERTS, num_experts_per_tok=2,
    ))
    assert config.swiglu_alpha == GPT_OSS_ALPHA  # ours is a constant, not a field
    fields = our_fields(
        activation="gpt_oss_glu", activation_limit=config.swiglu_limit, add_linear_biases=True,
        router_bias={"enabled": True}, router_score_function="softmax", normalize_expert_weights=True,
    )
    block = filled(GptOssMLP(config))
    with torch.no_grad():  # larger expert input weights: pre-activations beyond the limit, so the clamps act
        block.experts.gate_up_proj.normal_(0, 2.5)

    def copy(layer, block):
        experts = block.experts
        layer.router.weight.copy_(block.router.weight)  # router.weight [E, H] -> router.weight [E, H]
        layer.router.bias.copy_(block.router.bias)  # router.bias [E] -> router.bias [E]
        # gate_up_proj [E, H, 2I] interleaved -> layer_1.weight [E, 2I, H]: de-interleave (gate rows first), transpose
        layer.experts.layer_1.weight.copy_(gate_first(experts.gate_up_proj).transpose(1, 2))
        layer.experts.layer_1.bias.copy_(gate_first(experts.gate_up_proj_bias))  # [E, 2I] interleaved -> gate first
        layer.experts.layer_2.weight.copy_(experts.down_proj.transpose(1, 2))  # down_proj [E, I, H] -> [E, H, I]
        layer.experts.layer_2.bias.copy_(experts.down_proj_bias)  # [E, H] as is

    return Family(block, 2, fields, copy, softmax_top_k_route)


def llama4() -> Family:
    """Top-1 on the logits, weight sigmoid(chosen logit) multiplying the expert's input, plus a shared expert of
    the experts' width (intermediate_size) on the raw input, weight 1, no gate."""
    from transformers import Llama4TextConfig
    from transformers.models.llama4.modeling_llama4 import Llama4TextMoe

    config = eager(Llama4TextConfig(
        hidden_size=HIDDEN, intermediate_size=INTERMEDIATE, num_local_experts=EXPERTS, num_experts_per_tok=1,
        hidden_act="silu",
    ))
    fields = our_fields(
        experts=EXPERTS + 1, shared_experts=1, experts_per_token=1, router_score_function="sigmoid",
        normalize_expert_weights=False, router_weight_on_input=True,
    )

    def copy(layer, block):
        layer.router.weight.copy_(block.router.weight)  # Llama4Router is nn.Linear(H, E, bias=False): [E, H] as is
        # experts.gate_up_proj [E, H, 2I], split by chunk(2) (gate = first I columns, not interleaved)
        # -> layer_1.weight [E, 2I, H]: transpose only
        layer.experts.layer_1.weight.copy_(block.experts.gate_up_proj.transpose(1, 2))
        layer.experts.layer_2.weight.copy_(block.experts.down_proj.transpose(1, 2))  # [E, I, H] -> [E, H, I]
        copy_dense_mlp(layer.shared, block.shared_expert)

    def route(block, x_TH):
        scores_TE, logits_TE = block.router(x_TH)  # scores: sigmoid of the chosen logit, 0 elsewhere
        experts_TK = scores_TE.ne(0).nonzero()[:, 1:]
        assert experts_TK.shape == (x_TH.shape[0], 1)
        return logits_TE, experts_TK, scores_TE.gather(1, experts_TK)

    return Family(filled(Llama4TextMoe(config)), 1, fields, copy, route)


FAMILIES = {
    "qwen2_moe": lambda: qwen2_moe(norm_topk_prob=False),
    "qwen2_moe_norm_topk": lambda: qwen2_moe(norm_topk_prob=True),
    "gpt_oss": gpt_oss,
    "llama4": llama4,
    "olmoe": olmoe,
}


# --- the test ---------------------------------------------------------------------------------------------------


def untied_input(family: Family, tokens: int) -> torch.Tensor:
    """The first seed's [1, tokens, H] input where every token's k-th HF router logit exceeds its (k+1)-th by
    more than MIN_LOGIT_MARGIN."""
    for seed in range(100):
        x = torch.randn(1, tokens, HIDDEN, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            top = family.route(family.block, x.reshape(-1, HIDDEN))[0].topk(family.k + 1, dim=-1).values
        if (top[:, family.k - 1] - top[:, family.k]).min() > MIN_LOGIT_MARGIN:
            return x
    raise AssertionError("no seed without a near-tie")


def relative_error(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    return ((ours - theirs).abs().max() / theirs.abs().max()).item()


def by_expert(experts_TK: torch.Tensor, weights_TK: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The experts of each token sorted, and their weights in that order (HF's top-k order is not ours)."""
    experts_TK, order_TK = experts_TK.sort(dim=-1)
    return experts_TK, weights_TK.gather(1, order_TK)


def assert_gpt_oss_clamps_act(block: torch.nn.Module, x_TH: torch.Tensor, experts_TK: torch.Tensor) -> None:
    """Some chosen experts' gate pre-activations exceed the limit, some up ones exceed ±limit, and not all do."""
    experts, limit = block.experts, block.experts.limit
    with torch.no_grad():
        pre_TKI = torch.einsum("th,tkhi->tki", x_TH, experts.gate_up_proj[experts_TK])
        pre_TKI = pre_TKI + experts.gate_up_proj_bias[experts_TK]
    gate, up = pre_TKI[..., ::2], pre_TKI[..., 1::2]
    assert (gate > limit).any() and (up.abs() > limit).any() and (gate < limit).any() and (up.abs() < limit).any()


@pytest.mark.parametrize("tokens", [1, 7, 50])
@pytest.mark.parametrize("implementation", ["looped", "dropless"])
@pytest.mark.parametrize("name", list(FAMILIES))
def test_moe_block_parity(name, implementation, tokens):
    torch.manual_seed(0)
    family = FAMILIES[name]()
    block = family.block
    config = MLPBaseConfig.from_dict({"type": "moe", **family.fields, "implementation": implementation})
    layer = config.build(HIDDEN, dtype=torch.float32).eval()
    with torch.no_grad():
        family.copy(layer, block)

    x = untied_input(family, tokens)
    x_ours, x_hf = x.clone().requires_grad_(), x.clone().requires_grad_()
    ours = layer(x_ours)
    theirs = block(x_hf)
    theirs = (theirs[0] if isinstance(theirs, tuple) else theirs).reshape(ours.shape)  # GPT-OSS, Llama-4: a tuple
    assert relative_error(ours, theirs) <= 1e-5
    grad = torch.randn_like(ours)
    (ours * grad).sum().backward()
    (theirs * grad).sum().backward()
    assert relative_error(x_ours.grad, x_hf.grad) <= 1e-4

    x_TH = x.reshape(-1, HIDDEN)
    with torch.no_grad():
        weights_TK, experts_TK = layer.route(x_TH)[:2]
        _, hf_experts_TK, hf_weights_TK = family.route(block, x_TH)
    experts_TK, weights_TK = by_expert(experts_TK, weights_TK)
    hf_experts_TK, hf_weights_TK = by_expert(hf_experts_TK, hf_weights_TK)
    assert torch.equal(experts_TK, hf_experts_TK)
    assert relative_error(weights_TK, hf_weights_TK) <= 1e-6
    if name == "gpt_oss":
        assert_gpt_oss_clamps_act(block, x_TH, hf_experts_TK)
