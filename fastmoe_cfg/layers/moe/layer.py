"""The mixture-of-experts layer (`type: moe`), as named steps (shape legend in `fastmoe_cfg.layers.moe`)."""

from __future__ import annotations

import logging
from fractions import Fraction
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from fastmoe_cfg.layers.initialization import fill, initialize_, normal
from fastmoe_cfg.layers.linear import Linear, linear_lr_scales
from fastmoe_cfg.layers.lr import scale_of
from fastmoe_cfg.layers.mlp import MLP
from fastmoe_cfg.layers.noise import dropout, jitter_noise, token_ranks
from fastmoe_cfg.layers.moe.experts import GroupedExperts, LoopedExperts
from fastmoe_cfg.layers.moe.kernels import TORCH_KERNELS, select_kernels
from fastmoe_cfg.layers.moe.losses import LOSSES, inject_loss, router_losses, routing_statistics, totals
from fastmoe_cfg.layers.moe.parallel import LOCAL, ExpertParallel
from fastmoe_cfg.layers.moe.permute import PermutePlan, permute, unpermute
from fastmoe_cfg.layers.moe.router import (
    aux_free_routing,
    aux_loss_routing,
    apply_capacity,
    balanced_routing,
    expert_capacity,
    normalized_scores,
    scores_of,
    select_experts,
    sinkhorn_routing,
    upcast,
)
from fastmoe_cfg.layers.normalization import build_normalization, normalization_lr_scales
from fastmoe_cfg.layers.recompute import checkpointed, recomputed_steps
from fastmoe_cfg.layers.tokens import as_tokens
from fastmoe_cfg.schemas.enums import (
    BiasUpdateRule,
    BiasUpdateSchedule,
    CorrectionBiasTarget,
    JitterTarget,
    MoEImplementation,
    RouterDtype,
    RoutingType,
)
from fastmoe_cfg.schemas.mlp import MoEMLPConfig
from fastmoe_cfg.schemas.parameter import ParameterConfig

logger = logging.getLogger(__name__)


class Routing(NamedTuple):
    """The result of `MoEMLP.route`.

    Attributes:
        weights_TK: [T, K] routing weights (float32 at least), scaled, with the applied losses injected.
        experts_TK: [T, K] experts, E for a masked token or an assignment dropped by capacity.
        statistics: what `layer.stats` holds after the forward.
        losses: the applied losses times their coefficients, with their graph (`layer.aux_losses`
            when `inject_aux_losses` is False).
    """

    weights_TK: torch.Tensor
    experts_TK: torch.Tensor
    statistics: dict[str, torch.Tensor]
    losses: dict[str, torch.Tensor]


class MoEMLP(nn.Module):
    """Mixture of experts. For each real token x:

    0. training, jitter_target layer_input: x ·= noise                    (noise: U(1 ± jitter_eps) or N(1, jitter_eps²))
    1. r = router_normalization(x) · router_scale · router_input_scale   (the raw input, never pre_norm)
       (training, jitter_target router_input: r ·= noise)
    2. logits = r · router.weightᵀ (+ router.bias), in router_dtype         [T, E]
    3. z-loss = mean_t logsumexp(logits_t)² (of these logits, before jitter on the logits)
    4. training, jitter_target router_logits: logits ·= noise; aux_free with correction_bias_target
       logits: logits += router_correction_bias
    5. scores = softmax | sigmoid (logits)                                  (router_score_function)
    6. experts [T, K]: aux_loss: top-k of the scores; aux_free: top-k of scores + router_correction_bias;
       both group-limited with expert_groups > 1; sinkhorn: the Sinkhorn choice in training;
       balanced: (t·k + j) mod E with weight 1/k
    7. weights [T, K] = the chosen scores, / (their expert_weights_norm_order-norm, 1: their sum, + expert_weights_epsilon)
       when normalize_expert_weights (sparsemixer_eps: SparseMixer's weights instead);
       the applied losses are injected (load balancing: counts of the routed choice; sequence:
       counts of the top-k of the unbiased scores); × routed_scaling_factor × router_per_expert_scale[e]
    8. capacity_factor: assignments beyond an expert's capacity are dropped (drop_policy)
    9. out = Σ_k weights_k · s_k · expert_k(pre_norm(x))  (router_weight_on_input: s_k · expert_k(weights_k · pre_norm(x)))
             + shared(pre_norm(x)) · sigmoid(pre_norm(x) · shared_expert_gate)
       s_k = 1, or in training with expert_load_scaling (T·K / E) / max(load_e, 1), load_e the router's
       choices of expert e before capacity drops
    10. post_norm(out), then dropout in training

    Parameters: `router.weight` [E, H] (+ `router.bias` [E]); `experts.layer_1.weight` [E, I or 2I, H],
    `experts.layer_2.weight` [E, H, I] (+ biases [E, ...]); `shared.layer_1.*`, `shared.layer_2.*` (one
    dense MLP of width shared_expert_intermediate_size, default shared_experts · I); `shared_expert_gate` [H];
    `pre_norm.*`, `post_norm.*`, `router_normalization.*`, `router_scale` [H], `router_per_expert_scale` [E].
    Buffers (aux_free), in the state dict: `router_correction_bias` [E], float32; `bias_update_step` [], int64,
    the update_bias() calls so far (the schedule's progress); `router_load_ema` [E], float32, with
    bias_update_rule ema (starts at 1/E).
    Default initialization: router normal(std=H^-0.5) (Fast-LLM), router bias 0, layer_1 normal(std=H^-0.5),
    layer_2 normal(std=I^-0.5), biases 0, scales 1, shared_expert_gate normal(std=H^-0.5).
    `reset_parameters()` draws them again in the constructor's order (INITIALIZATION_ORDER), so a
    layer built under `torch.device("meta")`, moved with `to_empty()` and reset equals a direct
    build under the same seed.

    Attributes set by the training loop: `aux_loss_scale` (default 1.0) multiplies every
    injected loss gradient; `inject_aux_losses = False` stops injection and puts the
    coefficient-weighted losses, with their graph, in `layer.aux_losses` instead.
    After each forward, `layer.stats` holds detached values of that forward; the losses
    not in `applied_losses` are monitoring values only.
    aux_free: `update_bias()` moves the correction bias by the loads counted since the last call.

    Expert parallelism (`ep_mesh`, a 1-D DeviceMesh): rank r holds routed experts r·E/ep … (r+1)·E/ep − 1;
    `experts.layer_1.*` and `experts.layer_2.*` are DTensors of the full shape, placement Shard(0).
    Each rank routes its own tokens; the rows go to their experts' ranks and back by all-to-all
    (`fastmoe_cfg.layers.moe.parallel`). The losses are each rank's share (their sum over the
    ranks is the loss of one process on all the tokens), the statistics and the aux_free loads are
    the sums over the ranks that hold the batch's tokens: the expert-parallel group, and with a 2-D
    (dp, ep) mesh also `dp_mesh` (the other dimension): dp × ep ranks. Capacity is per rank, from its
    own tokens (as Megatron-LM).
    """

    def __init__(self, config: MoEMLPConfig, hidden_size: int, *, device=None, dtype=None, ep_mesh=None, dp_mesh=None) -> None:
        super().__init__()
        if ep_mesh is None and dp_mesh is not None:
            raise ValueError("dp_mesh only applies with ep_mesh (expert parallelism); without it, reduce across data-parallel ranks yourself")
        if ep_mesh is not None and config.implementation == MoEImplementation.looped:
            raise ValueError("implementation: looped does not support expert parallelism (ep_mesh): use dropless or auto")
        self.parallel = None if ep_mesh is None else ExpertParallel(ep_mesh, config.experts - config.shared_experts, dp_mesh)
        self.config = config
        self.hidden_size = hidden_size
        self.routed_experts = config.experts - config.shared_experts
        self.experts_per_token = config.experts_per_token
        self.recompute_level = config.recompute_level
        self._capacity = None if config.capacity_factor is None else Fraction(repr(config.capacity_factor)).as_integer_ratio()
        self.aux_loss_scale = 1.0
        self.inject_aux_losses = True
        self.aux_losses: dict[str, torch.Tensor] = {}
        self.stats: dict[str, torch.Tensor] = {}
        factory = {"device": device, "dtype": dtype}
        experts, intermediate = self.routed_experts, config.intermediate_size

        self._vectors = {  # the layer's own parameters: (config, size, default initialization)
            "router_scale": (config.router_scale, hidden_size, fill(1.0)),
            "router_per_expert_scale": (config.router_per_expert_scale, experts, fill(1.0)),
            "shared_expert_gate": (config.shared_expert_gate, hidden_size, normal(hidden_size**-0.5)),
        }
        # Built and initialised in the order of INITIALIZATION_ORDER (sub-modules initialise themselves as they are built).
        self.router_normalization = build_normalization(config.router_normalization, hidden_size, **factory)
        self._add_vector("router_scale", **factory)
        router_bias = bool(config.router_bias.enabled)
        self.router = Linear(
            config.router, hidden_size, experts, bias=router_bias, bias_config=config.router_bias, default_std=hidden_size**-0.5, **factory
        )
        self._add_vector("router_per_expert_scale", **factory)
        self.pre_norm = build_normalization(config.pre_norm, hidden_size, **factory)
        bias_1, bias_2 = config.has_bias(config.layer_1), config.has_bias(config.layer_2)
        looped = self.implementation == MoEImplementation.looped
        kernels = TORCH_KERNELS if looped else select_kernels(config.dropless_kernel)
        logger.info(
            "MoE layer (%d routed experts, hidden %d, intermediate %d): %s", experts, hidden_size, intermediate,
            "looped experts (implementation: looped)" if looped else f"dropless experts with {kernels.reason}",
        )
        sharding = {"experts": experts, "expert_mesh": ep_mesh}
        self.experts = (LoopedExperts if looped else GroupedExperts)(
            Linear(config.layer_1, hidden_size, intermediate * (2 if config.gated else 1), bias=bias_1, default_std=hidden_size**-0.5, **sharding, **factory),
            Linear(config.layer_2, intermediate, hidden_size, bias=bias_2, default_std=intermediate**-0.5, **sharding, **factory),
            activation=config.activation,
            gated=config.gated,
            limit=config.activation_limit,
            weight_on_input=config.router_weight_on_input,
            dynamic_shape=config.dropless_dynamic_shape,
            kernels=kernels,
        )
        self.shared = None
        if config.shared_experts:
            self.shared = MLP(config, hidden_size, intermediate_size=config.shared_intermediate_size(), norms=False, **factory)
        self._add_vector("shared_expert_gate", **factory)
        self.post_norm = build_normalization(config.post_norm, hidden_size, **factory)
        aux_free = config.routing == RoutingType.aux_free
        self.register_buffer("router_correction_bias", torch.zeros(experts, device=device) if aux_free else None)
        self.register_buffer("pending_load", torch.zeros(experts, dtype=torch.int64, device=device) if aux_free else None, persistent=False)
        self.register_buffer("bias_update_step", torch.zeros((), dtype=torch.int64, device=device) if aux_free else None)
        ema = aux_free and config.bias_update_rule == BiasUpdateRule.ema
        self.register_buffer("router_load_ema", torch.full((experts,), 1 / experts, device=device) if ema else None)

        scale = scale_of(config.lr_scale)
        self.lr_scales = {
            **normalization_lr_scales(config.router_normalization, "router_normalization", scale),
            **self._vector_lr_scale("router_scale", config.router_scale, scale),
            **linear_lr_scales(config.router, "router", scale, bias=router_bias, bias_config=config.router_bias),
            **self._vector_lr_scale("router_per_expert_scale", config.router_per_expert_scale, scale),
            **normalization_lr_scales(config.pre_norm, "pre_norm", scale),
            **linear_lr_scales(config.layer_1, "experts.layer_1", scale, bias=bias_1),
            **linear_lr_scales(config.layer_2, "experts.layer_2", scale, bias=bias_2),
            **({f"shared.{name}": value for name, value in self.shared.lr_scales.items()} if self.shared is not None else {}),
            **self._vector_lr_scale("shared_expert_gate", config.shared_expert_gate, scale),
            **normalization_lr_scales(config.post_norm, "post_norm", scale),
        }

    INITIALIZATION_ORDER = (
        "router_normalization", "router_scale", "router", "router_per_expert_scale", "pre_norm", "experts", "shared",
        "shared_expert_gate", "post_norm",
    )

    def reset_parameters(self) -> None:
        """Initialise every parameter and buffer as the constructor does, in the same order (INITIALIZATION_ORDER)."""
        for name in self.INITIALIZATION_ORDER:
            if name in self._vectors:
                self._initialize_vector(name)
            elif getattr(self, name) is not None:
                getattr(self, name).reset_parameters()
        with torch.no_grad():
            for name, value in self.initial_buffers().items():
                getattr(self, name).copy_(value)

    def initial_buffers(self, device=None) -> dict[str, torch.Tensor]:
        """The buffers' values after initialisation (aux_free: zero bias, loads and step; ema 1/E), by name, on
        `device` (default: the buffers'; a layer built on the meta device gives real values with device="cpu")."""
        initial = {
            "router_correction_bias": 0.0, "pending_load": 0, "bias_update_step": 0, "router_load_ema": 1 / self.routed_experts,
        }
        return {
            name: torch.full_like(buffer, initial[name], device=device or buffer.device)
            for name, buffer in self.named_buffers(recurse=False)
        }

    def _add_vector(self, name: str, *, device, dtype) -> None:
        vector, size, _ = self._vectors[name]
        self.register_parameter(name, nn.Parameter(torch.empty(size, device=device, dtype=dtype)) if vector.enabled else None)
        self._initialize_vector(name)

    def _initialize_vector(self, name: str) -> None:
        vector, _, default = self._vectors[name]
        if getattr(self, name) is not None:
            initialize_(getattr(self, name), vector.initialization, default)

    def _vector_lr_scale(self, name: str, config: ParameterConfig, scale: float) -> dict[str, float]:
        return {name: scale * scale_of(config.lr_scale)} if getattr(self, name) is not None else {}

    def _apply(self, fn, recurse=True):
        # `.to(dtype)`, `.half()`... cast buffers too; the correction bias stays float32 (bfloat16 would swallow
        # updates of 1e-3 on a bias of order 1, and a rounding of the bias flips choices).
        super()._apply(fn, recurse)
        for name in ("router_correction_bias", "router_load_ema"):
            buffer = getattr(self, name)
            if buffer is not None and buffer.dtype != torch.float32:
                setattr(self, name, buffer.float())
        return self

    @property
    def implementation(self) -> MoEImplementation:
        """The implementation `forward` runs: `auto` resolves to `dropless` (whose kernels `dropless_kernel` chooses)."""
        implementation = self.config.implementation
        return MoEImplementation.dropless if implementation == MoEImplementation.auto else implementation

    def capacity(self, tokens: int) -> int | None:
        """Assignments each routed expert takes out of `tokens` real tokens; None when dropless."""
        if self._capacity is None:
            return None
        return expert_capacity(self._capacity, tokens, self.experts_per_token, self.routed_experts)

    @property
    def applied_losses(self) -> frozenset[str]:
        """The router losses this forward adds to the gradient (none in eval); `stats` holds the others as monitoring values."""
        return self.config.applied_losses() if self.training else frozenset()

    def forward(self, x: torch.Tensor, token_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: [tokens, H] or [batch, seq, H]; token_mask: bool, x.shape[:-1], True for a real token. Returns x's shape.

        Steps: route (raw input -> weights_TK, experts_TK; losses injected; statistics) -> permute ->
        pre_norm and the experts' first layer -> activation and second layer -> unpermute, + shared
        experts -> post_norm. `recompute_level` checkpoints the steps where they are called; the
        side effects (statistics, aux_free loads and bias update) happen here, outside any checkpoint.
        """
        tokens = as_tokens(x, token_mask, self.hidden_size)
        full, _, _ = recomputed_steps(self.recompute_level)
        bias_E = self.router_correction_bias
        if full and bias_E is not None:  # Backward re-runs the forward: it must route as this one did, even if the bias moves.
            bias_E = bias_E.clone()
        out_TH, routing = checkpointed(self._forward, tokens.x_TH, tokens.mask_T, tokens.sequences, bias_E, recompute=full)
        self.stats = routing.statistics
        self.aux_losses = {} if self.inject_aux_losses else routing.losses
        if self.training and self.pending_load is not None:
            self.pending_load += routing.statistics["tokens_per_expert"]
            if self.config.automatic_bias_update:
                self.update_bias()
        return tokens.restore(out_TH)

    def _forward(
        self, x_TH: torch.Tensor, mask_T: torch.Tensor | None, sequences: int, bias_E: torch.Tensor | None
    ) -> tuple[torch.Tensor, Routing]:
        if self._jitters(JitterTarget.layer_input):
            x_TH = x_TH * self.jitter_noise(x_TH, mask_T)
        routing = self.route(x_TH, mask_T, sequences, correction_bias=bias_E)
        capacity = self.capacity(x_TH.shape[0]) if mask_T is None else None  # a bound on the rows, known statically
        sentinels = mask_T is not None or self._capacity is not None
        plan = permute(routing.experts_TK, routing.weights_TK.to(x_TH.dtype), self.routed_experts, sentinels=sentinels, max_rows=capacity)
        _, inputs, outputs = recomputed_steps(self.recompute_level)
        if self.parallel is None:
            h_NI, shared_TI, gate_T1 = checkpointed(self.expert_inputs, x_TH, plan, recompute=inputs)
            y_NH, shared_TH = checkpointed(self.expert_outputs, h_NI, shared_TI, plan, recompute=outputs)
        else:
            y_NH, shared_TH, gate_T1 = self._parallel_experts(x_TH, plan, inputs, outputs)
        if self.training and self.config.expert_load_scaling:
            scale_E = self.load_scale(routing.statistics["tokens_per_expert"], dtype=torch.promote_types(y_NH.dtype, torch.float32))
            y_NH = y_NH * scale_E.index_select(0, plan.safe_expert_N).to(y_NH.dtype).unsqueeze(1)
        out_TH = unpermute(y_NH, plan)
        if shared_TH is not None:
            out_TH = out_TH + (shared_TH if gate_T1 is None else shared_TH * gate_T1)
        if self.post_norm is not None:
            out_TH = self.post_norm(out_TH)
        if self.training and self.config.dropout:
            out_TH = dropout(out_TH, self.config.dropout, mask_T)
        return out_TH, routing

    def load_scale(self, load_E: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """expert_load_scaling: [E] (Σ load / E) / max(load_e, 1) in `dtype`, from the router's choices per expert
        before capacity drops (KempnerForge's moe_gradient_scale: the mean load over each expert's load).
        An expert-parallel layer passes the global loads."""
        load_E = load_E.to(dtype)
        return load_E.sum() / self.routed_experts / load_E.clamp(min=1)

    def _jitters(self, target: JitterTarget) -> bool:
        return self.training and self.config.jitter_eps > 0 and self.config.jitter_target == target

    def jitter_noise(self, like: torch.Tensor, mask_T: torch.Tensor | None) -> torch.Tensor:
        """The multiplicative jitter noise of `like`'s shape [T, ...] (jitter_eps, jitter_distribution), per real token."""
        return jitter_noise(like, self.config.jitter_eps, self.config.jitter_distribution, mask_T)

    def expert_inputs(
        self, x_TH: torch.Tensor, plan: PermutePlan
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """pre_norm (once, on [T, H]), then the first layer of the routed experts [N, I or 2I] (with the Triton kernels
        its activation too: [N, I]) and of the shared experts [T, I_s or 2I_s], and the shared-expert gate
        sigmoid(pre_norm(x) · shared_expert_gate) [T, 1]."""
        normed_TH = x_TH if self.pre_norm is None else self.pre_norm(x_TH)
        return self.experts.first(normed_TH, plan, gathered=False), *self._shared_inputs(normed_TH)

    def _shared_inputs(self, normed_TH: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        shared_TI = None if self.shared is None else self.shared.inputs(normed_TH)
        gate_T1 = None if self.shared_expert_gate is None else torch.sigmoid(normed_TH @ self.shared_expert_gate).unsqueeze(1)
        return shared_TI, gate_T1

    @torch.compiler.disable  # host-side split sizes and DTensor weights: torch.compile runs this step eagerly (two graph breaks)
    def _parallel_experts(
        self, x_TH: torch.Tensor, plan: PermutePlan, inputs: bool, outputs: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Expert parallelism: pre_norm, the rows to their experts' ranks, both layers there (each step checkpointed
        as recompute_level says; pre_norm is not recomputed), the outputs back [N, H]; the shared experts here.
        Under torch.compile this step runs eagerly: the graph breaks before and after it."""
        if self.experts.count != self.parallel.local_experts:
            raise RuntimeError(
                f"this rank holds {self.experts.count} experts, not the {self.parallel.local_experts} of its ep_mesh share: the "
                "experts are sharded further (fully_shard over another mesh dimension), which the layer does not support "
                "(it calls the experts' steps, not their forward, so FSDP2 never gathers them); leave them out of fully_shard"
            )
        normed_TH = x_TH if self.pre_norm is None else self.pre_norm(x_TH)
        rows_MH, local_plan, exchange = self.parallel.dispatch(normed_TH, plan)
        h_MI = checkpointed(self.experts.first, rows_MH, local_plan, recompute=inputs)
        y_NH = self.parallel.combine(checkpointed(self.experts.second, h_MI, local_plan, recompute=outputs), exchange)
        shared_TI, gate_T1 = self._shared_inputs(normed_TH)
        return y_NH, None if shared_TI is None else self.shared.outputs(shared_TI), gate_T1

    def expert_outputs(
        self, h_NI: torch.Tensor, shared_TI: torch.Tensor | None, plan: PermutePlan
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Activation and second layer: the routed rows [N, H] (weighted; sentinel rows zero) and the shared output [T, H]."""
        return self.experts.second(h_NI, plan), None if shared_TI is None else self.shared.outputs(shared_TI)

    def route(
        self,
        x_TH: torch.Tensor,
        mask_T: torch.Tensor | None = None,
        sequences: int = 1,
        *,
        correction_bias: torch.Tensor | None = None,
    ) -> Routing:
        """Steps 1-8 on the raw input [T, H]: weights and experts [T, K] (E where masked or dropped), statistics, losses.

        Pure but for the random draws of jitter and the balanced router: the caller records
        statistics and loads. `mask_T` [T] marks the real tokens (None: all); the T tokens are
        `sequences` consecutive sequences of equal length, for the sequence loss;
        `correction_bias` is the aux_free bias to route with (default: the layer's buffer).
        """
        config = self.config
        k, experts = self.experts_per_token, self.routed_experts
        function = config.router_score_function
        logits_TE = self.router_logits(x_TH, mask_T)
        routed_logits_TE = logits_TE
        if self._jitters(JitterTarget.router_logits):
            routed_logits_TE = logits_TE * self.jitter_noise(logits_TE, mask_T)
        if self._bias_on_logits:
            routed_logits_TE = upcast(routed_logits_TE) + self._correction_bias(correction_bias)
        scores_TE = scores_of(routed_logits_TE, function)
        weights_TK, experts_TK = self._choose(routed_logits_TE, scores_TE, mask_T, correction_bias)
        # DeepSeek-V3's sequence loss counts the top-k of the unbiased scores over all routed experts.
        plain_choice = config.routing == RoutingType.aux_loss and config.expert_groups == 1
        unbiased_TK = experts_TK if plain_choice else select_experts(scores_TE, k)
        if mask_T is not None:
            experts_TK, unbiased_TK = (torch.where(mask_T.unsqueeze(1), choice_TK, experts) for choice_TK in (experts_TK, unbiased_TK))

        probs_TE = normalized_scores(scores_TE, function)
        applied = self.applied_losses
        group = LOCAL if self.parallel is None else self.parallel.tokens
        summed = None if self.parallel is None else totals(experts_TK, probs_TE, sequences, mask_T, group)
        losses = router_losses(
            logits_TE, probs_TE, experts_TK, unbiased_TK, mask_T=mask_T, sequences=sequences, applied=applied, totals=summed
        )
        coefficients = config.loss_coefficients()
        weighted = {name: coefficients[name] * losses[name] for name in LOSSES if name in applied}
        if self.inject_aux_losses:  # weights_TK lies on the path from every loss's inputs to the output
            for loss in weighted.values():
                weights_TK = inject_loss(weights_TK, loss, self.aux_loss_scale)
        priority_TK = weights_TK.detach()
        if config.routed_scaling_factor != 1.0:
            weights_TK = weights_TK * config.routed_scaling_factor
        if self.router_per_expert_scale is not None:  # (a masked token's sentinel E reads expert E - 1: its row is never computed)
            weights_TK = weights_TK * upcast(self.router_per_expert_scale[experts_TK.clamp(max=experts - 1)])
        kept_TK = experts_TK
        if self._capacity is not None:
            real = x_TH.shape[0] if mask_T is None else mask_T.sum()
            capacity = expert_capacity(self._capacity, real, k, experts)
            kept_TK = apply_capacity(experts_TK, priority_TK, experts=experts, capacity=capacity, policy=config.drop_policy)
        statistics = routing_statistics(experts_TK, kept_TK, probs_TE, losses, mask_T, totals=summed, group=group)
        return Routing(weights_TK, kept_TK, statistics, weighted)

    def _choose(
        self, logits_TE: torch.Tensor, scores_TE: torch.Tensor, mask_T: torch.Tensor | None, correction_bias: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Step 6-7: the routing function of `routing`, (weights_TK, experts_TK) before scaling and capacity."""
        config, k = self.config, self.experts_per_token
        options = {
            "k": k, "function": config.router_score_function, "normalize": config.normalize_expert_weights,
            "groups": config.expert_groups, "groups_per_token": config.expert_groups_per_token, "group_score": config.expert_group_score,
            "norm_order": config.expert_weights_norm_order, "epsilon": config.expert_weights_epsilon,
        }
        if config.routing == RoutingType.aux_free and not self._bias_on_logits:
            return aux_free_routing(logits_TE, scores_TE, self._correction_bias(correction_bias), **options)
        if config.routing == RoutingType.sinkhorn:
            return sinkhorn_routing(logits_TE, scores_TE, mask_T, training=self.training, **options)
        if config.routing == RoutingType.balanced:
            tokens = logits_TE.shape[0]
            rank_T = torch.arange(tokens, device=logits_TE.device) if mask_T is None else token_ranks(mask_T)
            return balanced_routing(rank_T, k, self.routed_experts, noise=config.balanced_routing_noise, dtype=scores_TE.dtype)
        return aux_loss_routing(logits_TE, scores_TE, **options, sparsemixer_eps=config.sparsemixer_eps)

    @property
    def _bias_on_logits(self) -> bool:
        return self.config.correction_bias_target == CorrectionBiasTarget.logits

    def _correction_bias(self, correction_bias: torch.Tensor | None) -> torch.Tensor:
        return self.router_correction_bias if correction_bias is None else correction_bias

    @torch.no_grad()
    def update_bias(self) -> None:
        """aux_free: move router_correction_bias by the loads counted since the last call, then reset them.

        The loads are the router's choices per expert (before capacity drops) over the training
        forwards since the last call. rate = bias_update_rate × the schedule at progress
        bias_update_step / bias_update_total_steps; then bias_update_step += 1.
        sign rule: bias += rate · sign(mean load - load) (no loads: no change).
        ema rule: ema ← ema + (1 - decay) · (load / Σ load - ema), bias += rate · (1/E - ema) (no loads: no change).
        Call it once per optimizer step, or set automatic_bias_update. With expert parallelism the
        loads are already the sums over the ranks; with data parallelism alone, all-reduce `pending_load` first.
        """
        config = self.config
        if config.routing != RoutingType.aux_free:
            raise RuntimeError(f"update_bias() needs routing: aux_free; this layer routes with {config.routing}")
        load_E = self.pending_load.to(self.router_correction_bias.dtype)
        rate = config.bias_update_rate * self._schedule_factor()
        if config.bias_update_rule == BiasUpdateRule.ema:
            total = load_E.sum()
            ema_E = self.router_load_ema
            updated_E = ema_E + (1 - config.bias_update_ema_decay) * (load_E / total.clamp(min=1) - ema_E)
            ema_E.copy_(torch.where(total > 0, updated_E, ema_E))
            self.router_correction_bias += torch.where(total > 0, rate * (1 / self.routed_experts - ema_E), 0)
        else:
            self.router_correction_bias += rate * torch.sign(load_E.mean() - load_E)  # no loads: sign(0)
        self.bias_update_step += 1
        self.pending_load.zero_()

    def _schedule_factor(self) -> torch.Tensor | float:
        """The schedule's factor on bias_update_rate at the current bias_update_step (a tensor: no host sync)."""
        schedule = self.config.bias_update_schedule
        if schedule == BiasUpdateSchedule.constant:
            return 1.0
        # Past bias_update_total_steps the schedule stays at its end (cosine_decay would climb back).
        progress = (self.bias_update_step.to(self.router_correction_bias.dtype) / self.config.bias_update_total_steps).clamp(max=1)
        if schedule == BiasUpdateSchedule.cosine_decay:
            return 0.5 * (1 + torch.cos(torch.pi * progress))
        return (10 * progress).clamp(max=1)  # linear_warmup, over the first 10% of the steps

    def router_logits(self, x_TH: torch.Tensor, mask_T: torch.Tensor | None = None) -> torch.Tensor:
        """Steps 1-2: the router's logits [T, E] from the raw layer input [T, H], in router_dtype
        (with the router-input jitter in training; `mask_T` marks the real tokens that draw it)."""
        r_TH = x_TH if self.router_normalization is None else self.router_normalization(x_TH)
        if self.router_scale is not None:
            r_TH = r_TH * self.router_scale
        if self.config.router_input_scale != 1.0:
            r_TH = r_TH * self.config.router_input_scale
        if self._jitters(JitterTarget.router_input):
            r_TH = r_TH * self.jitter_noise(r_TH, mask_T)
        dtype = {
            RouterDtype.float32: torch.promote_types(r_TH.dtype, torch.float32),
            RouterDtype.float64: torch.float64,
            RouterDtype.input: r_TH.dtype,
        }[self.config.router_dtype]
        bias = self.router.bias
        return F.linear(r_TH.to(dtype), self.router.weight.to(dtype), None if bias is None else bias.to(dtype))

