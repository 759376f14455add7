"""The mixture-of-experts layer (`type: moe`)."""

import torch
import torch.nn.functional as F
from torch import nn

from fastmoe_cfg.layers.initialization import fill, initialize_, normal
from fastmoe_cfg.layers.linear import Linear, linear_lr_scales
from fastmoe_cfg.layers.lr import scale_of
from fastmoe_cfg.layers.mlp import MLP
from fastmoe_cfg.layers.moe import dispatch
from fastmoe_cfg.layers.moe.losses import inject_loss, load_balancing_loss, router_entropy, sequence_load_balancing_loss, z_loss
from fastmoe_cfg.layers.moe.router import (
    apply_capacity,
    balanced_routing,
    expert_capacity,
    expert_weights,
    normalized_scores,
    scores_of,
    select_experts,
    sinkhorn_choice,
    upcast,
)
from fastmoe_cfg.layers.normalization import build_normalization, normalization_lr_scales
from fastmoe_cfg.layers.recompute import checkpointed
from fastmoe_cfg.layers.tokens import apply_to_tokens
from fastmoe_cfg.schemas.counts import has_bias, shared_intermediate_size
from fastmoe_cfg.schemas.enums import MLPRecomputeLevel, MoEImplementation, RouterDtype, RouterScoreFunction, RoutingType
from fastmoe_cfg.schemas.mlp import MoEMLPConfig
from fastmoe_cfg.schemas.parameter import ParameterConfig


class MoEMLP(nn.Module):
    """Mixture of experts. For each real token x (shape legend in dispatch.py and router.py):

    1. r = router_normalization(x) · router_scale · router_input_scale   (the raw input, never pre_norm)
    2. logits = r · router.weightᵀ (+ router.bias), in router_dtype         [T, E]
    3. z-loss = mean_t logsumexp(logits_t)², injected (coefficient · aux_loss_scale)
    4. training: logits ·= U(1 - jitter_eps, 1 + jitter_eps)
    5. scores = softmax | sigmoid (logits)                                  (router_score_function)
    6. experts [T, K]: aux_loss: top-k of the scores; aux_free: top-k of scores + router_correction_bias;
       both group-limited with expert_groups > 1; sinkhorn: the Sinkhorn choice in training;
       balanced: (t·k + j) mod E with weight 1/k
    7. weights [T, K] = the chosen scores, / their sum when normalize_expert_weights;
       load-balancing and sequence losses injected; × routed_scaling_factor × router_per_expert_scale[e]
    8. capacity_factor: assignments beyond an expert's capacity are dropped (drop_policy)
    9. out = Σ_k weights_k · expert_k(pre_norm(x))  (router_weight_on_input: expert_k(weights_k · pre_norm(x)))
             + shared(pre_norm(x)) · sigmoid(pre_norm(x) · shared_expert_gate)
    10. post_norm(out)

    Parameters: `router.weight` [E, H] (+ `router.bias` [E]); `experts.layer_1.weight` [E, I or 2·I, H],
    `experts.layer_2.weight` [E, H, I] (+ biases [E, ...]); `shared.layer_1.*`, `shared.layer_2.*` (one
    dense MLP of width shared_expert_intermediate_size, default shared_experts · I); `shared_expert_gate` [H];
    `pre_norm.*`, `post_norm.*`, `router_normalization.*`, `router_scale` [H], `router_per_expert_scale` [E].
    Buffer (aux_free): `router_correction_bias` [E], float32, in the state dict.
    Default initialization: router normal(std=H^-0.5) (Fast-LLM), router bias 0, layer_1 normal(std=H^-0.5),
    layer_2 normal(std=I^-0.5), biases 0, scales 1, shared_expert_gate normal(std=H^-0.5).

    Attributes set by the training loop: `aux_loss_scale` (default 1.0) multiplies every
    injected loss gradient; `inject_aux_losses = False` stops injection and puts the
    coefficient-weighted losses, with their graph, in `layer.aux_losses` instead.
    After each forward, `layer.stats` holds detached values of that forward.
    aux_free: `update_bias()` moves the correction bias by the loads counted since the last call.
    """

    def __init__(self, config: MoEMLPConfig, hidden_size: int, *, device=None, dtype=None) -> None:
        super().__init__()
        self.config = config
        self.hidden_size = hidden_size
        self.routed_experts = config.experts - config.shared_experts
        self.experts_per_token = config.experts_per_token
        self.recompute_level = config.recompute_level
        self.aux_loss_scale = 1.0
        self.inject_aux_losses = True
        self.aux_losses: dict[str, torch.Tensor] = {}
        self.stats: dict[str, torch.Tensor] = {}
        factory = {"device": device, "dtype": dtype}
        experts, intermediate = self.routed_experts, config.intermediate_size

        self.router_normalization = build_normalization(config.router_normalization, hidden_size, **factory)
        self.router_scale = self._optional_vector(config.router_scale, hidden_size, fill(1.0), **factory)
        router_bias = bool(config.router_bias.enabled)
        self.router = Linear(
            config.router, hidden_size, experts, bias=router_bias, bias_config=config.router_bias, default_std=hidden_size**-0.5, **factory
        )
        self.router_per_expert_scale = self._optional_vector(config.router_per_expert_scale, experts, fill(1.0), **factory)
        aux_free = config.routing == RoutingType.aux_free
        self.register_buffer("router_correction_bias", torch.zeros(experts, device=device) if aux_free else None)
        self.register_buffer("pending_load", torch.zeros(experts, dtype=torch.int64, device=device) if aux_free else None, persistent=False)
        self.pre_norm = build_normalization(config.pre_norm, hidden_size, **factory)
        bias_1, bias_2 = has_bias(config.layer_1, config), has_bias(config.layer_2, config)
        rows_1 = intermediate * (2 if config.gated else 1)
        self.experts = dispatch.Experts(
            Linear(config.layer_1, hidden_size, rows_1, bias=bias_1, default_std=hidden_size**-0.5, experts=experts, **factory),
            Linear(config.layer_2, intermediate, hidden_size, bias=bias_2, default_std=intermediate**-0.5, experts=experts, **factory),
            activation=config.activation,
            gated=config.gated,
            limit=config.activation_limit,
        )
        self.shared = None
        if config.shared_experts:
            self.shared = MLP(config, hidden_size, intermediate_size=shared_intermediate_size(config), norms=False, **factory)
        self.shared_expert_gate = self._optional_vector(config.shared_expert_gate, hidden_size, normal(hidden_size**-0.5), **factory)
        self.post_norm = build_normalization(config.post_norm, hidden_size, **factory)

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

    @staticmethod
    def _optional_vector(config, size: int, default, *, device, dtype) -> nn.Parameter | None:
        if not config.enabled:
            return None
        parameter = nn.Parameter(torch.empty(size, device=device, dtype=dtype))
        initialize_(parameter, config.initialization, default)
        return parameter

    def _vector_lr_scale(self, name: str, config: ParameterConfig, scale: float) -> dict[str, float]:
        return {name: scale * scale_of(config.lr_scale)} if getattr(self, name) is not None else {}

    def _apply(self, fn, recurse=True):
        # `.to(dtype)`, `.half()`... cast buffers too; the correction bias stays float32 (bfloat16 would swallow
        # updates of 1e-3 on a bias of order 1, and a rounding of the bias flips choices).
        super()._apply(fn, recurse)
        if self.router_correction_bias is not None and self.router_correction_bias.dtype != torch.float32:
            self.router_correction_bias = self.router_correction_bias.float()
        return self

    @property
    def implementation(self) -> MoEImplementation:
        """The implementation `forward` runs: `auto` resolves to `dropless` (the Triton path comes with its kernels)."""
        implementation = self.config.implementation
        return MoEImplementation.dropless if implementation == MoEImplementation.auto else implementation

    def capacity(self, tokens: int) -> int | None:
        """Assignments each routed expert takes out of `tokens` real tokens; None when dropless."""
        if self.config.capacity_factor is None:
            return None
        return expert_capacity(self.config.capacity_factor, tokens, self.experts_per_token, self.routed_experts)

    def forward(self, x: torch.Tensor, token_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: [tokens, H] or [batch, seq, H]; token_mask: bool, x.shape[:-1], True for a real token. Returns x's shape."""
        self.aux_losses = {}
        bias = self.router_correction_bias
        if self.recompute_level != MLPRecomputeLevel.full:
            return apply_to_tokens(
                lambda x_TH, sequence_T, sequences: self._forward(x_TH, sequence_T, sequences, correction_bias=bias),
                x, token_mask, self.hidden_size, with_sequences=True,
            )
        # Backward re-runs the forward: it must route as this forward did, even if the bias moves meanwhile,
        # and statistics, loads and bias updates come from the first run only.
        bias = None if bias is None else bias.clone()
        first_call = [True]

        def forward_once(x_TH: torch.Tensor, sequence_T: torch.Tensor | None, sequences: int) -> torch.Tensor:
            record, first_call[0] = first_call[0], False
            return self._forward(x_TH, sequence_T, sequences, record=record, correction_bias=bias)

        return apply_to_tokens(
            lambda x_TH, sequence_T, sequences: checkpointed(forward_once, x_TH, sequence_T, sequences),
            x, token_mask, self.hidden_size, with_sequences=True,
        )

    def _forward(
        self, x_TH: torch.Tensor, sequence_T: torch.Tensor | None, sequences: int, *, record: bool = True, correction_bias=None
    ) -> torch.Tensor:
        weights_TK, experts_TK, statistics = self.route(x_TH, sequence_T, sequences, record=record, correction_bias=correction_bias)
        weights_TK = weights_TK.to(x_TH.dtype)
        level = MLPRecomputeLevel.none if self.recompute_level == MLPRecomputeLevel.full else self.recompute_level
        common = {"experts": self.experts, "prepare": self._prepare, "level": level, "weight_on_input": self.config.router_weight_on_input}
        # Without tokens looped would add nothing to a fresh zeros tensor, outside the autograd graph; dropless's
        # empty output stays in it (backward then gives zero gradients), so an empty input takes that path.
        if self.implementation == MoEImplementation.looped and x_TH.shape[0] > 0:
            out_TH = dispatch.looped(x_TH, weights_TK, experts_TK, **common)
        else:
            out_TH = dispatch.dropless(
                x_TH, weights_TK, experts_TK, **common, dynamic_shape=self.config.dropless_dynamic_shape, capacity=self.capacity(x_TH.shape[0])
            )
        if self.shared is not None:
            shared_TH = self.shared.hidden_to_output(x_TH, prepare=self._prepare, level=level)
            if self.shared_expert_gate is not None:
                gate = lambda t: torch.sigmoid(self._prepare(t) @ self.shared_expert_gate).unsqueeze(1)  # noqa: E731
                shared_TH = shared_TH * (checkpointed(gate, x_TH) if level == MLPRecomputeLevel.activation_and_input else gate(x_TH))
            out_TH = out_TH + shared_TH
        if self.post_norm is not None:
            out_TH = self.post_norm(out_TH)
        if record:
            self.stats = statistics
        return out_TH

    def route(
        self,
        x_TH: torch.Tensor,
        sequence_T: torch.Tensor | None = None,
        sequences: int = 1,
        *,
        record: bool = True,
        correction_bias: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Steps 1-8: weights [T, K] (float32 at least), experts [T, K] (E where dropped), and this routing's statistics.

        `sequence_T` [T] gives each token's sequence for the sequence loss (None: one sequence);
        `correction_bias` is the aux_free bias to route with (default: the layer's buffer).
        """
        config = self.config
        tokens, k, experts = x_TH.shape[0], self.experts_per_token, self.routed_experts
        logits_TE = self.router_logits(x_TH)

        z_loss_on = config.z_loss_coefficient > 0 and self.training
        with torch.set_grad_enabled(torch.is_grad_enabled() and z_loss_on):  # Otherwise a statistic: keep nothing for backward.
            z_loss_value = z_loss(logits_TE)
        if z_loss_on:
            logits_TE = self._add_loss("z_loss", logits_TE, z_loss_value, coefficient=config.z_loss_coefficient, record=record)
        if self.training and config.jitter_eps > 0:
            noise_TE = torch.empty_like(logits_TE).uniform_(1 - config.jitter_eps, 1 + config.jitter_eps)
            logits_TE = logits_TE * noise_TE

        function, normalize, routing = config.router_score_function, config.normalize_expert_weights, config.routing
        balance_on = routing == RoutingType.aux_loss and config.auxiliary_loss_coefficient > 0 and self.training
        sequence_on = config.sequence_auxiliary_loss_coefficient > 0 and self.training
        weights_from_scores = routing != RoutingType.balanced and not (normalize and function == RouterScoreFunction.softmax)
        with torch.set_grad_enabled(torch.is_grad_enabled() and (weights_from_scores or balance_on or sequence_on)):
            scores_TE = scores_of(logits_TE, function)
            probs_TE = normalized_scores(scores_TE, function)

        if routing == RoutingType.balanced:
            weights_TK, experts_TK = balanced_routing(
                tokens, k, experts, noise=config.balanced_routing_noise, device=x_TH.device, dtype=scores_TE.dtype
            )
        else:
            groups = {"groups": config.expert_groups, "groups_per_token": config.expert_groups_per_token}
            if routing == RoutingType.sinkhorn and self.training:
                experts_TK = sinkhorn_choice(logits_TE, k)
            elif routing == RoutingType.aux_free:
                bias_E = self.router_correction_bias if correction_bias is None else correction_bias
                experts_TK = select_experts(scores_TE + bias_E, k, **groups)
            elif config.expert_groups > 1:
                experts_TK = select_experts(scores_TE, k, **groups)
            else:  # The scores are monotone in the logits: choose on the logits, which never tie by rounding.
                experts_TK = select_experts(logits_TE, k)
            weights_TK = expert_weights(logits_TE, scores_TE, experts_TK, function=function, normalize=normalize)
        priority_TK = weights_TK.detach()

        with torch.set_grad_enabled(torch.is_grad_enabled() and balance_on):
            balance_loss = load_balancing_loss(probs_TE, experts_TK)
        if balance_on:
            weights_TK = self._add_loss(
                "load_balancing_loss", weights_TK, balance_loss, coefficient=config.auxiliary_loss_coefficient, record=record
            )
        with torch.set_grad_enabled(torch.is_grad_enabled() and sequence_on):
            sequence_loss = sequence_load_balancing_loss(probs_TE, experts_TK, sequence_T, sequences)
        if sequence_on:
            weights_TK = self._add_loss(
                "sequence_load_balancing_loss", weights_TK, sequence_loss, coefficient=config.sequence_auxiliary_loss_coefficient, record=record
            )
        if config.routed_scaling_factor != 1.0:
            weights_TK = weights_TK * config.routed_scaling_factor
        if self.router_per_expert_scale is not None:
            weights_TK = weights_TK * upcast(self.router_per_expert_scale[experts_TK])
        kept_TK = experts_TK
        if config.capacity_factor is not None:
            kept_TK = apply_capacity(experts_TK, priority_TK, experts=experts, capacity=self.capacity(tokens), policy=config.drop_policy)

        with torch.no_grad():  # Nothing saved for backward: a recompute must save what the forward saved.
            statistics = {
                "tokens_per_expert": torch.bincount(experts_TK.reshape(-1), minlength=experts),
                "dropped_tokens": (kept_TK == experts).sum(),
                "load_balancing_loss": balance_loss.detach(),
                "sequence_load_balancing_loss": sequence_loss.detach(),
                "z_loss": z_loss_value.detach(),
                "router_entropy": router_entropy(probs_TE),
            }
        if record and self.training and routing == RoutingType.aux_free:
            self.pending_load += statistics["tokens_per_expert"]
            if config.automatic_bias_update:
                self.update_bias()
        return weights_TK, kept_TK, statistics

    @torch.no_grad()
    def update_bias(self) -> None:
        """aux_free: router_correction_bias += bias_update_rate · sign(mean load - load), then reset the loads.

        The loads are the router's choices per expert over the training forwards since the
        last call (a no-op when there were none). Call it once per optimizer step, or set
        automatic_bias_update. With data parallelism, all-reduce `pending_load` first.
        """
        if self.config.routing != RoutingType.aux_free:
            raise RuntimeError(f"update_bias() needs routing: aux_free; this layer routes with {self.config.routing}")
        load_E = self.pending_load.to(self.router_correction_bias.dtype)
        self.router_correction_bias += self.config.bias_update_rate * torch.sign(load_E.mean() - load_E)  # no loads: sign(0)
        self.pending_load.zero_()

    def router_logits(self, x_TH: torch.Tensor) -> torch.Tensor:
        """Steps 1-2: the router's logits [T, E] from the raw layer input [T, H], in router_dtype."""
        r_TH = x_TH if self.router_normalization is None else self.router_normalization(x_TH)
        if self.router_scale is not None:
            r_TH = r_TH * self.router_scale
        if self.config.router_input_scale != 1.0:
            r_TH = r_TH * self.config.router_input_scale
        dtype = {
            RouterDtype.float32: torch.promote_types(r_TH.dtype, torch.float32),
            RouterDtype.float64: torch.float64,
            RouterDtype.input: r_TH.dtype,
        }[self.config.router_dtype]
        bias = self.router.bias
        return F.linear(r_TH.to(dtype), self.router.weight.to(dtype), None if bias is None else bias.to(dtype))

    def _prepare(self, x_MH: torch.Tensor) -> torch.Tensor:
        # pre_norm acts on each row alone, so it may run after the gather (recompute_level recomputes both).
        return x_MH if self.pre_norm is None else self.pre_norm(x_MH)

    def _add_loss(self, name: str, tensor: torch.Tensor, loss: torch.Tensor, *, coefficient: float, record: bool) -> torch.Tensor:
        """Inject `coefficient · aux_loss_scale · loss` into backward through `tensor`, or leave it to the training loop."""
        if self.inject_aux_losses:
            return inject_loss(tensor, loss, coefficient * self.aux_loss_scale)
        if record:
            self.aux_losses[name] = coefficient * loss
        return tensor
