"""Enumerations used by the MLP schemas. Each member has a one-line description."""

from fastmoe_cfg.config.base import DescribedEnum


class ActivationType(DescribedEnum):
    """The activation function of the MLP's hidden layer."""

    gelu = "gelu", "GELU, tanh approximation: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) (Fast-LLM's gelu, HF's gelu_pytorch_tanh)."
    gelu_exact = "gelu_exact", "GELU, exact erf form: 0.5·x·(1 + erf(x/√2)) (HF's gelu)."
    silu = "silu", "SiLU (swish): x·sigmoid(x); with gated, SwiGLU."
    relu = "relu", "ReLU: max(x, 0)."
    squared_relu = "squared_relu", "Squared ReLU: max(x, 0)²."
    identity = "identity", "No activation: x (with gated, a bilinear GLU)."
    sigmoid = "sigmoid", "Sigmoid: 1 / (1 + exp(-x)) (Fast-LLM's sigmoid)."
    gpt_oss_glu = "gpt_oss_glu", (
        "GPT-OSS's clamped GLU (needs gated): gate = min(gate, limit), up = clamp(up, -limit, limit), "
        "hidden = (up + 1) · gate · sigmoid(1.702 · gate), limit = activation_limit (Fast-LLM's gpt_oss_glu)."
    )


class RoutingType(DescribedEnum):
    """How the router assigns tokens to experts."""

    aux_loss = "aux_loss", (
        "Top-k of the scores, weights = the chosen scores (with the default softmax scores and normalize_expert_weights: "
        "softmax over the selected logits), balanced by the auxiliary load-balancing loss."
    )
    sinkhorn = "sinkhorn", (
        "Balanced assignment by Sinkhorn iterations in training (until the mean change is below 1e-4; no gradient through "
        "the choice), weights = the scores at the chosen experts (by default sigmoid for top-1, else softmax, not "
        "renormalized); top-k of the scores in inference."
    )
    aux_free = "aux_free", (
        "DeepSeek-V3 auxiliary-loss-free balancing: top-k of scores + a per-expert correction bias that serves the "
        "choice only (weights are the unbiased scores; correction_bias_target logits: KempnerForge's bias on the logits); "
        "on layer.update_bias() the bias moves by bias_update_rate · sign(mean load - load_e) (bias_update_rule sign; "
        "ema: KempnerForge's rule), scaled by bias_update_schedule."
    )
    balanced = "balanced", (
        "Benchmark only: the j-th choice of the t-th real token is expert (t·k + j) mod E_r, weight 1/k, whatever the "
        "router says (NeMo's FakeBalancedGate); balanced_routing_noise skews it. Measures the cost of load imbalance."
    )


class RouterScoreFunction(DescribedEnum):
    """How router logits become expert scores."""

    softmax = "softmax", "softmax over the routed experts (Mixtral, Qwen, OLMoE, GPT-OSS, Gemma)."
    sigmoid = "sigmoid", "sigmoid of each logit, independently (DeepSeek-V3, Llama-4)."


class ExpertGroupScore(DescribedEnum):
    """How group-limited routing (expert_groups > 1) scores a group, from its experts' selection scores."""

    top2_sum = "top2_sum", "The sum of its two best selection scores (DeepSeek-V3's noaux_tc)."
    max = "max", "Its best selection score (DeepSeek-V2's group_limited_greedy)."


class DropPolicy(DescribedEnum):
    """Which assignments an expert over capacity drops."""

    probability = "probability", "Keep the assignments with the highest routing scores (ties: the earlier token)."
    position = "position", "Keep the earliest tokens, in input order."


class RouterDtype(DescribedEnum):
    """The precision of the router linear and of the scores."""

    float32 = "float32", "float32 (float64 when the layer is float64): the router input and weight are upcast, as HF's DeepSeek-V3 router does."
    float64 = "float64", "float64."
    input = "input", "The router linear in the layer's dtype, the scores in float32 at least (HF Mixtral, Qwen, OLMoE, Llama-4 and GPT-OSS run the router linear in the model's dtype)."


class MoEImplementation(DescribedEnum):
    """How the experts are executed. All implementations compute the same function."""

    auto = "auto", (
        "Same as dropless, whose kernels dropless_kernel chooses (by default: Triton on a CUDA device when triton is "
        "installed, else torch)."
    )
    dropless = "dropless", "Sort tokens by expert and run one grouped matrix multiplication per layer; no token is dropped."
    looped = "looped", "Loop over experts, gathering each expert's tokens (simple, slow with many experts)."


class DroplessKernel(DescribedEnum):
    """The kernels of the dropless experts (implementation dropless or auto). All compute the same function."""

    auto = "auto", "The Triton kernels for float32/bfloat16/float16 inputs on a CUDA device when the triton package is installed, else the torch ones."
    torch = "torch", "Grouped GEMMs in torch (torch._grouped_mm, or a padded batched matmul where it does not run); the gather and the activation are separate steps."
    triton = "triton", (
        "This package's Triton kernels: the gather fused into layer_1, the activation into its epilogue, grouped XᵀY for the "
        "weight gradients (pip install 'fastmoe_cfg[triton]'). On a CPU tensor only under TRITON_INTERPRET=1 (slow: for tests)."
    )


class MLPRecomputeLevel(DescribedEnum):
    """What the backward pass recomputes instead of keeping in memory."""

    none = "none", "Keep every activation for backward."
    activation = "activation", "Recompute the activation function's output."
    activation_and_input = "activation_and_input", "Recompute the activation and the (normalized) MLP input."
    full = "full", "Recompute the whole layer in backward (torch.utils.checkpoint)."


class JitterTarget(DescribedEnum):
    """Where the multiplicative jitter noise of `jitter_eps` acts, in training."""

    router_logits = "router_logits", "The router logits, after the z-loss reads them (Fast-LLM's jitter_eps)."
    router_input = "router_input", (
        "The router linear's input, after router_normalization, router_scale and router_input_scale (Switch Transformer; "
        "Megatron-LM's moe_input_jitter_eps); the z-loss reads the logits of the noisy input."
    )
    layer_input = "layer_input", (
        "The layer input, before pre_norm: the router, the routed and the shared experts all see the noise "
        "(HF Mixtral, MiniMax and MiniMax-M2 router_jitter_noise, DBRX moe_jitter_eps)."
    )


class JitterDistribution(DescribedEnum):
    """The law of the multiplicative jitter noise."""

    uniform = "uniform", "U(1 - jitter_eps, 1 + jitter_eps) (Fast-LLM, Megatron-LM, Hugging Face)."
    normal = "normal", "N(1, jitter_eps²) (attnax's router_jitter)."


class BiasUpdateRule(DescribedEnum):
    """How `update_bias()` moves aux_free's correction bias from the loads counted since the last update."""

    sign = "sign", "bias_e += rate · sign(mean load - load_e) (DeepSeek-V3)."
    ema = "ema", (
        "KempnerForge's SigmoidTopKRouter: ema_e ← ema_e + (1 - bias_update_ema_decay) · (load_e / Σ load - ema_e), "
        "then bias_e += rate · (1/E_r - ema_e); ema starts at 1/E_r."
    )


class BiasUpdateSchedule(DescribedEnum):
    """How aux_free's bias update rate changes with training progress p = bias_update_step / bias_update_total_steps."""

    constant = "constant", "bias_update_rate, always."
    cosine_decay = "cosine_decay", "bias_update_rate · (1 + cos(π · p)) / 2 (KempnerForge)."
    linear_warmup = "linear_warmup", "bias_update_rate · min(1, 10 · p): warm up over the first 10% of the steps (KempnerForge)."


class CorrectionBiasTarget(DescribedEnum):
    """Where aux_free's correction bias acts."""

    selection = "selection", "Added to the scores for the top-k choice only; the weights are the unbiased scores (DeepSeek-V3)."
    logits = "logits", (
        "Added to the router logits before the score function: it changes the choice and the weights "
        "(KempnerForge's expert_bias: sigmoid(logits + bias))."
    )
