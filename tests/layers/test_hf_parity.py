"""Parity with Hugging Face transformers' MoE blocks (test-only dependency), identical weights, CPU, fp32.

The seed fields express Mixtral and Qwen3-MoE with norm_topk_prob (softmax top-k, renormalised,
gated SiLU experts without biases). The HF importer proper is a later issue; here the weights are
copied by the parameter layout DESIGN.md section 4 documents, which is HF's fused layout.
"""

from __future__ import annotations

import pytest
import torch

from fastmoe_cfg.schemas import MoEMLPConfig

transformers = pytest.importorskip("transformers", reason="HF parity needs transformers (pip install -e '.[dev]')")


def mixtral_block(hidden, intermediate, experts, k):
    from transformers import MixtralConfig
    from transformers.models.mixtral.modeling_mixtral import MixtralSparseMoeBlock

    config = MixtralConfig(hidden_size=hidden, intermediate_size=intermediate, num_local_experts=experts, num_experts_per_tok=k)
    config._experts_implementation = "eager"
    return MixtralSparseMoeBlock(config)


def qwen3_block(hidden, intermediate, experts, k):
    from transformers import Qwen3MoeConfig
    from transformers.models.qwen3_moe.modeling_qwen3_moe import Qwen3MoeSparseMoeBlock

    config = Qwen3MoeConfig(hidden_size=hidden, moe_intermediate_size=intermediate, num_experts=experts, num_experts_per_tok=k, norm_topk_prob=True)
    config._experts_implementation = "eager"
    return Qwen3MoeSparseMoeBlock(config)


@pytest.mark.parametrize("tokens", [1, 7, 50])
@pytest.mark.parametrize("implementation", ["looped", "dropless"])
@pytest.mark.parametrize("family", [mixtral_block, qwen3_block], ids=["mixtral", "qwen3_moe"])
def test_moe_block_parity(family, implementation, tokens):
    hidden, intermediate, experts, k = 16, 8, 6, 2
    torch.manual_seed(0)
    block = family(hidden, intermediate, experts, k).eval()
    with torch.no_grad():  # standalone HF blocks leave weights uninitialised: fill every parameter
        for parameter in block.parameters():
            parameter.normal_(0, 0.3)
    config = MoEMLPConfig(
        experts=experts, experts_per_token=k, intermediate_size=intermediate, gated=True, activation="silu",
        add_linear_biases=False, implementation=implementation,
    )
    layer = config.build(hidden).eval()
    with torch.no_grad():
        layer.router.weight.copy_(block.gate.weight)
        layer.experts.layer_1.weight.copy_(block.experts.gate_up_proj)  # [E, 2I, H], gate rows first
        layer.experts.layer_2.weight.copy_(block.experts.down_proj)  # [E, H, I]

    x = torch.randn(1, tokens, hidden, generator=torch.Generator().manual_seed(tokens))
    x_ours, x_hf = x.clone().requires_grad_(), x.clone().requires_grad_()
    ours = layer(x_ours)
    theirs = block(x_hf)
    theirs = theirs[0] if isinstance(theirs, tuple) else theirs
    assert (ours - theirs).abs().max() / theirs.abs().max() <= 1e-5
    grad = torch.randn_like(ours)
    (ours * grad).sum().backward()
    (theirs * grad).sum().backward()
    assert (x_ours.grad - x_hf.grad).abs().max() / x_hf.grad.abs().max() <= 1e-4
    hf_experts = (x.reshape(-1, hidden) @ block.gate.weight.T).topk(k, dim=-1).indices
    assert torch.equal(layer.stats["tokens_per_expert"], torch.bincount(hf_experts.reshape(-1), minlength=experts))


def test_load_balancing_loss_of_one_layer_equals_hf():
    from transformers.models.mixtral.modeling_mixtral import load_balancing_loss_func

    layer = MoEMLPConfig(experts=8, experts_per_token=2, intermediate_size=4).build(16).train()
    x = torch.randn(37, 16)
    layer(x)
    logits = layer.router_logits(x)
    theirs = load_balancing_loss_func((logits,), num_experts=8, top_k=2)
    assert layer.stats["load_balancing_loss"].item() == pytest.approx(theirs.item(), rel=1e-6)


@pytest.mark.parametrize("implementation", ["looped", "dropless"])
def test_mixtral_with_router_jitter_noise_equals_hf_in_training(implementation):
    """convert maps router_jitter_noise to jitter_eps on the layer input; seeded alike, the imported layer draws HF's
    noise (torch.empty_like(x).uniform_(1 - eps, 1 + eps) over the block input) and gives HF's output and gradients."""
    from fastmoe_cfg.hf.weights import import_moe_block

    from transformers import MixtralConfig
    from transformers.models.mixtral.modeling_mixtral import MixtralSparseMoeBlock

    hidden, tokens = 16, 11
    config = MixtralConfig(hidden_size=hidden, intermediate_size=8, num_local_experts=6, num_experts_per_tok=2, router_jitter_noise=0.1)
    config._experts_implementation = "eager"
    block = MixtralSparseMoeBlock(config)
    with torch.no_grad():
        for parameter in block.parameters():
            parameter.normal_(0, 0.3)
    layer = import_moe_block(block, config, implementation=implementation).train()
    block.train()
    assert (layer.config.jitter_eps, layer.config.jitter_target) == (0.1, "layer_input")
    x = torch.randn(2, tokens, hidden, generator=torch.Generator().manual_seed(1))
    x_ours, x_hf = x.clone().requires_grad_(), x.clone().requires_grad_()
    torch.manual_seed(7)
    ours = layer(x_ours)
    torch.manual_seed(7)
    theirs = block(x_hf * 1)  # HF multiplies its input in place: give it a non-leaf
    assert (ours - theirs).abs().max() / theirs.abs().max() <= 1e-5
    grad = torch.randn_like(ours)
    (ours * grad).sum().backward()
    (theirs * grad).sum().backward()
    assert (x_ours.grad - x_hf.grad).abs().max() / x_hf.grad.abs().max() <= 1e-4
    torch.manual_seed(8)  # other noise: other results (the noise acts)
    assert (layer(x) - theirs).abs().max() / theirs.abs().max() > 1e-3
