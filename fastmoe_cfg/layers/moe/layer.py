"""The mixture-of-experts layer (`type: moe`)."""

import torch
from torch import nn

from fastmoe_cfg.layers.initialization import fill, initialize_
from fastmoe_cfg.layers.linear import Linear, linear_lr_scales
from fastmoe_cfg.layers.lr import scale_of
from fastmoe_cfg.layers.mlp import MLP
from fastmoe_cfg.layers.moe import dispatch
from fastmoe_cfg.layers.moe.losses import inject_loss, load_balancing_loss, router_entropy, z_loss
from fastmoe_cfg.layers.moe.router import sinkhorn_routing, topk_softmax, upcast
from fastmoe_cfg.layers.normalization import build_normalization, normalization_lr_scales
from fastmoe_cfg.layers.recompute import checkpointed
from fastmoe_cfg.layers.tokens import apply_to_tokens
from fastmoe_cfg.schemas.counts import has_bias
from fastmoe_cfg.schemas.enums import MLPRecomputeLevel, MoEImplementation, RoutingType
from fastmoe_cfg.schemas.mlp import MoEMLPConfig


class MoEMLP(nn.Module):
    """Mixture of experts. For each real token x (shape legend in dispatch.py):

    1. r = router_normalization(x) · router_scale · router_input_scale   (the raw input, never pre_norm)
    2. logits = r · router.weightᵀ                                       [T, E]
    3. z-loss = mean_t logsumexp(logits_t)², injected (coefficient · aux_loss_scale)
    4. training: logits ·= U(1 - jitter_eps, 1 + jitter_eps)
    5. (weights, experts) = routing(logits)                              [T, K] each
       aux_loss: top-k, softmax over the k selected; load-balancing loss injected
       sinkhorn: see router.sinkhorn_routing
    6. weights ·= router_per_expert_scale[experts]
    7. out = Σ_k weights_k · expert_k(pre_norm(x)) + shared(pre_norm(x))
    8. post_norm(out)

    Parameters: `router.weight` [E, H]; `experts.layer_1.weight` [E, I or 2·I, H],
    `experts.layer_2.weight` [E, H, I] (+ biases [E, ...]); `shared.layer_1.*`,
    `shared.layer_2.*` (one dense MLP of width shared_experts · I); `pre_norm.*`,
    `post_norm.*`, `router_normalization.*`, `router_scale` [H], `router_per_expert_scale` [E].
    Default initialization: router normal(std=H^-0.5) (Fast-LLM), layer_1 normal(std=H^-0.5),
    layer_2 normal(std=I^-0.5), biases 0, scales 1.

    Attributes set by the training loop: `aux_loss_scale` (default 1.0) multiplies every
    injected loss gradient; `inject_aux_losses = False` stops injection and puts the
    coefficient-weighted losses, with their graph, in `layer.aux_losses` instead.
    After each forward, `layer.stats` holds detached values of that forward.
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
        self.router_scale = self._optional_vector(config.router_scale, hidden_size, **factory)
        self.router = Linear(config.router, hidden_size, experts, bias=False, default_std=hidden_size**-0.5, **factory)
        self.router_per_expert_scale = self._optional_vector(config.router_per_expert_scale, experts, **factory)
        self.pre_norm = build_normalization(config.pre_norm, hidden_size, **factory)
        bias_1, bias_2 = has_bias(config.layer_1, config), has_bias(config.layer_2, config)
        rows_1 = intermediate * (2 if config.gated else 1)
        self.experts = dispatch.Experts(
            Linear(config.layer_1, hidden_size, rows_1, bias=bias_1, default_std=hidden_size**-0.5, experts=experts, **factory),
            Linear(config.layer_2, intermediate, hidden_size, bias=bias_2, default_std=intermediate**-0.5, experts=experts, **factory),
            activation=config.activation,
            gated=config.gated,
        )
        self.shared = None
        if config.shared_experts:
            self.shared = MLP(config, hidden_size, intermediate_size=config.shared_experts * intermediate, norms=False, **factory)
        self.post_norm = build_normalization(config.post_norm, hidden_size, **factory)

        scale = scale_of(config.lr_scale)
        self.lr_scales = {
            **normalization_lr_scales(config.router_normalization, "router_normalization", scale),
            **({"router_scale": scale * scale_of(config.router_scale.lr_scale)} if self.router_scale is not None else {}),
            **linear_lr_scales(config.router, "router", scale, bias=False),
            **(
                {"router_per_expert_scale": scale * scale_of(config.router_per_expert_scale.lr_scale)}
                if self.router_per_expert_scale is not None
                else {}
            ),
            **normalization_lr_scales(config.pre_norm, "pre_norm", scale),
            **linear_lr_scales(config.layer_1, "experts.layer_1", scale, bias=bias_1),
            **linear_lr_scales(config.layer_2, "experts.layer_2", scale, bias=bias_2),
            **({f"shared.{name}": value for name, value in self.shared.lr_scales.items()} if self.shared is not None else {}),
            **normalization_lr_scales(config.post_norm, "post_norm", scale),
        }

    @staticmethod
    def _optional_vector(config, size: int, *, device, dtype) -> nn.Parameter | None:
        if not config.enabled:
            return None
        parameter = nn.Parameter(torch.empty(size, device=device, dtype=dtype))
        initialize_(parameter, config.initialization, fill(1.0))
        return parameter

    @property
    def implementation(self) -> MoEImplementation:
        """The implementation `forward` runs: `auto` resolves to `dropless` (the Triton path comes with its kernels)."""
        implementation = self.config.implementation
        return MoEImplementation.dropless if implementation == MoEImplementation.auto else implementation

    def forward(self, x: torch.Tensor, token_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: [tokens, H] or [batch, seq, H]; token_mask: bool, x.shape[:-1], True for a real token. Returns x's shape."""
        self.aux_losses = {}
        if self.recompute_level != MLPRecomputeLevel.full:
            return apply_to_tokens(self._forward, x, token_mask, self.hidden_size)
        first_call = [True]

        def forward_once(x_TH: torch.Tensor) -> torch.Tensor:
            # Backward re-runs this function; statistics come from the first run only.
            record, first_call[0] = first_call[0], False
            return self._forward(x_TH, record=record)

        return apply_to_tokens(lambda x_TH: checkpointed(forward_once, x_TH), x, token_mask, self.hidden_size)

    def _forward(self, x_TH: torch.Tensor, *, record: bool = True) -> torch.Tensor:
        weights_TK, experts_TK, statistics = self.route(x_TH, record=record)
        weights_TK = weights_TK.to(x_TH.dtype)
        level = MLPRecomputeLevel.none if self.recompute_level == MLPRecomputeLevel.full else self.recompute_level
        if self.implementation == MoEImplementation.looped:
            out_TH = dispatch.looped(x_TH, weights_TK, experts_TK, experts=self.experts, prepare=self._prepare, level=level)
        else:
            out_TH = dispatch.dropless(
                x_TH, weights_TK, experts_TK, experts=self.experts, prepare=self._prepare, level=level,
                dynamic_shape=self.config.dropless_dynamic_shape,
            )
        if self.shared is not None:
            out_TH = out_TH + self.shared.hidden_to_output(x_TH, prepare=self._prepare, level=level)
        if self.post_norm is not None:
            out_TH = self.post_norm(out_TH)
        if record:
            self.stats = statistics
        return out_TH

    def route(self, x_TH: torch.Tensor, *, record: bool = True) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Steps 1-6: routing weights [T, K] (float32 at least), experts [T, K], and the statistics of this routing."""
        config = self.config
        logits_TE = self.router_logits(x_TH)

        z_loss_on = config.z_loss_coefficient > 0 and self.training
        with torch.set_grad_enabled(torch.is_grad_enabled() and z_loss_on):  # Otherwise a statistic: keep nothing for backward.
            z_loss_value = z_loss(logits_TE)
        if z_loss_on:
            logits_TE = self._add_loss("z_loss", logits_TE, z_loss_value, coefficient=config.z_loss_coefficient, record=record)
        if self.training and config.jitter_eps > 0:
            noise_TE = torch.empty_like(logits_TE).uniform_(1 - config.jitter_eps, 1 + config.jitter_eps)
            logits_TE = logits_TE * noise_TE

        if config.routing == RoutingType.sinkhorn:
            weights_TK, experts_TK = sinkhorn_routing(logits_TE, self.experts_per_token, training=self.training)
        else:
            weights_TK, experts_TK = topk_softmax(logits_TE, self.experts_per_token)
        balance_on = config.routing == RoutingType.aux_loss and config.auxiliary_loss_coefficient > 0 and self.training
        with torch.set_grad_enabled(torch.is_grad_enabled() and balance_on):
            probs_TE = upcast(logits_TE).softmax(dim=-1)
            balance_loss = load_balancing_loss(probs_TE, experts_TK)
        if balance_on:
            weights_TK = self._add_loss(
                "load_balancing_loss", weights_TK, balance_loss, coefficient=config.auxiliary_loss_coefficient, record=record
            )
        if self.router_per_expert_scale is not None:
            weights_TK = weights_TK * upcast(self.router_per_expert_scale[experts_TK])

        with torch.no_grad():  # Nothing saved for backward: a recompute must save what the forward saved.
            statistics = {
                "tokens_per_expert": torch.bincount(experts_TK.reshape(-1), minlength=self.routed_experts),
                "dropped_tokens": torch.zeros((), dtype=torch.int64, device=x_TH.device),
                "load_balancing_loss": balance_loss.detach(),
                "z_loss": z_loss_value.detach(),
                "router_entropy": router_entropy(probs_TE),
            }
        return weights_TK, experts_TK, statistics

    def router_logits(self, x_TH: torch.Tensor) -> torch.Tensor:
        """Steps 1-2: the router's logits [T, E] from the raw layer input [T, H]."""
        r_TH = x_TH if self.router_normalization is None else self.router_normalization(x_TH)
        if self.router_scale is not None:
            r_TH = r_TH * self.router_scale
        if self.config.router_input_scale != 1.0:
            r_TH = r_TH * self.config.router_input_scale
        return self.router(r_TH)

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
