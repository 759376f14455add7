"""Hugging Face model config (`config.json`) -> our MLP config, for one decoder layer. No torch.

Each family reads the HF fields that change the math of its MLP block, maps every one to a field of
ours (`Conversion.sources` names the HF field each value came from), and reports an HF setting we
cannot represent as a located problem naming that field. The other HF fields (attention, embeddings,
rotary, ...) are outside the MLP layer: `Conversion.unused` lists them, the YAML names them.

Absent fields: an option (norm_topk_prob, routed_scaling_factor, n_group, router_aux_loss_coef, ...) takes
its transformers class default, and the YAML comment says so; a size (hidden_size, num_hidden_layers, the
expert count, k, the widths) is required: transformers' defaults for those describe one particular model.

Families: Mixtral, Qwen2-MoE, Qwen3-MoE, OLMoE, DeepSeek-V3, GPT-OSS, Gemma-4 (text, MoE). The routing
math and weight layouts are in NUMERICS.md; the weight copy is `fastmoe_cfg.hf.weights` (torch).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from typing import Any, Callable

from fastmoe_cfg.config.errors import ConfigError, Problem, describe, did_you_mean, format_number, format_path, shorten
from fastmoe_cfg.config.source import Source
from fastmoe_cfg.schemas.mlp import FORMAT_VERSION, GPT_OSS_ALPHA, GPT_OSS_LIMIT, MLPBaseConfig

# HF `hidden_act` -> our activation. gelu_new and gelu_pytorch_tanh are both the tanh approximation.
ACTIVATIONS = {
    "silu": "silu",
    "swish": "silu",
    "gelu_pytorch_tanh": "gelu",
    "gelu_new": "gelu",
    "gelu": "gelu_exact",
    "relu": "relu",
}

POOLED_AUX_LOSS = "HF pools all layers into one loss, added only with output_router_logits: not our per-layer number"


@dataclass
class Conversion:
    """One HF decoder layer's MLP as our config data, with where each value came from."""

    family: str  # the HF model_type of the text model
    layer: int | None  # None until the family's MoE layers are known: then the first of them
    layers: int  # num_hidden_layers
    hidden_size: int
    moe_layers: tuple[int, ...] = ()
    data: dict[str, Any] = field(default_factory=dict)  # our YAML, keys in writing order
    sources: dict[str, str] = field(default_factory=dict)  # our key -> the HF field(s) it came from
    unused: tuple[str, ...] = ()  # HF fields outside the MLP layer
    dtype: str | None = None  # the checkpoint's weight dtype (HF torch_dtype / dtype): a build() argument, not a field
    moe_only: bool = False  # Gemma-4: the MoE branch alone (type: moe), not the whole feed-forward (type: hybrid_moe)
    config: MLPBaseConfig | None = None

    @property
    def is_moe(self) -> bool:
        return self.layer in self.moe_layers

    def written_data(self) -> dict[str, Any]:
        """`data` as `convert` writes it: the current `format_version` after `type` (at the root only)."""
        rest = {key: value for key, value in self.data.items() if key != "type"}
        return {"type": self.data["type"], "format_version": FORMAT_VERSION, **rest}

    def written_config(self) -> MLPBaseConfig:
        """The config that `convert`'s YAML loads to: `config` with the current `format_version` set
        (`config` has none, as a stack's blocks, which take their version from the stack)."""
        return MLPBaseConfig.from_dict(self.written_data())

    def set_moe_layers(self, indices: tuple[int, ...]) -> None:
        """The family's MoE layers; the layer to convert defaults to the first of them (else layer 0)."""
        self.moe_layers = indices
        if self.layer is None:
            self.layer = indices[0] if indices else 0

    def set(self, key: str, value: Any, source: str) -> None:
        self.data[key] = value
        self.sources[key] = source


_MISSING = object()
MAX_LAYERS = 100_000  # a bound for num_hidden_layers: the layer lists are built in memory


class _Reader:
    """Typed access to the HF fields, recording which were read; bad values become located problems."""

    def __init__(self, source: Source):
        self.source = source
        self.data: dict[str, Any] = source.data
        self.problems: list[Problem] = []
        self.read: set[str] = set()

    def problem(self, name: str | None, message: str, suggestion: str | None = None) -> None:
        path = (name,) if name is not None and name in self.data else ()
        problem = self.source.problem(path, "value", message=message, suggestion=suggestion)
        if name is not None and name not in self.data:  # name the missing field, at the document
            path_text = format_path(self.source.prefix + (name,))
            problem = Problem(message, path_text, problem.file, problem.line, problem.column, suggestion)
        self.problems.append(problem)

    def get(
        self, name: str, kind: type, default: Any = _MISSING, *, minimum: int | None = None, maximum: int | None = None, aliases: tuple[str, ...] = ()
    ) -> Any:
        """The value of `name` (int, float, bool, str or list), `default` when absent or null; a problem
        (and the default, or None) when it has the wrong type, is below `minimum`, or is required and missing.
        `aliases` are other names of the field (transformers' attribute_map, GPT-OSS's experts_per_token)."""
        names = (name, *aliases)
        self.read.update(names)
        present = [other for other in names if self.data.get(other) is not None]
        for other in present[1:]:
            if self.data[other] != self.data[present[0]]:
                self.problem(other, f"disagrees with {present[0]} ({self.data[other]!r} != {self.data[present[0]]!r}): which one the model uses is unclear")
        name = present[0] if present else name
        value = self.data.get(name)
        if self.source.is_reported((name,)):  # reported while reading
            return None if default is _MISSING else default
        if value is None:
            if default is _MISSING:
                self.problem(name, f"missing: expected {kind_name(kind)}")
                return None
            return default
        ok = {
            int: type(value) is int,
            float: type(value) is float and math.isfinite(value) or type(value) is int and abs(value) <= sys.float_info.max,
            bool: type(value) is bool,
            str: type(value) is str,
            list: type(value) is list,
        }[kind]
        if not ok:
            self.problem(name, f"expected {kind_name(kind)}, got {describe(value)}")
            return None if default is _MISSING else default
        if minimum is not None and value < minimum or maximum is not None and value > maximum:
            bound = f">= {minimum}" if minimum is not None and value < minimum else f"<= {maximum:,}"
            self.problem(name, f"must be {bound}, got {format_number(value)}")
            return None if default is _MISSING else default
        return float(value) if kind is float else value

    def named(self, name: str) -> str:
        """`name`, for a comment; says so when the value is transformers' default (the field is absent)."""
        return name if self.data.get(name) is not None else f"{name} (absent: transformers' default)"

    def activation(self, name: str, default: str | None = None) -> str | None:
        value = self.get(name, str, default)
        if value is None or value in ACTIVATIONS:
            return ACTIVATIONS.get(value) if value is not None else None
        self.problem(name, f"activation {shorten(repr(value))} has no equivalent here (supported: {', '.join(ACTIVATIONS)})", did_you_mean(value, ACTIVATIONS))
        return None

    def unsupported_unless(self, name: str, ok: Callable[[Any], bool], why: str) -> None:
        """A problem when `name` is present with a value for which `ok` is false (a setting we cannot express)."""
        self.read.add(name)
        value = self.data.get(name)
        if value is not None and not ok(value):
            self.problem(name, f"{describe(value)} cannot be converted: {why}")


def kind_name(kind: type) -> str:
    return {int: "an integer", float: "a number", bool: "a boolean", str: "a string", list: "a list"}[kind]


# --- families ---------------------------------------------------------------------------------------------------


def _routed_softmax(out: Conversion, *, normalize: bool | None, normalize_source: str, scores: str = "softmax of the router logits in float32") -> None:
    out.set("routing", "aux_loss", "softmax top-k routing")
    out.set("router_score_function", "softmax", scores)
    out.set("normalize_expert_weights", normalize, normalize_source)
    out.set("router_dtype", "input", "HF runs the router linear in the model dtype")


def _aux_loss(out: Conversion, hf: _Reader, default: float) -> None:
    """`router_aux_loss_coef`, or the family's transformers default (`default`) when absent."""
    coefficient = hf.get("router_aux_loss_coef", float, default, minimum=0)
    hf.read.add("output_router_logits")  # named in the comment: whether HF adds the loss at all
    out.set("auxiliary_loss_coefficient", coefficient, f"{hf.named('router_aux_loss_coef')}; {POOLED_AUX_LOSS}")


def _input_jitter(out: Conversion, hf: _Reader) -> None:
    """Mixtral's block multiplies its input by U(1 ± router_jitter_noise) in training, before the router and the
    experts (the Qwen and OLMoE blocks ignore the field): jitter_eps on the layer input."""
    eps = hf.get("router_jitter_noise", float, 0.0, minimum=0)
    if eps:
        out.set("jitter_eps", eps, "router_jitter_noise: the block input is multiplied by U(1 ± eps) in training")
        out.set("jitter_target", "layer_input", "HF multiplies the block input, which the router and the experts both read")


def _gated_experts(out: Conversion, hf: _Reader, width_field: str, act_field: str = "hidden_act", act_default: str = "silu") -> None:
    """Gated experts (or dense MLP) without biases: width, activation."""
    out.set("intermediate_size", hf.get(width_field, int, minimum=1), width_field)
    out.set("gated", True, "gate_proj and up_proj (fused gate_up_proj)")
    activation = hf.activation(act_field, act_default)
    out.set("activation", activation, hf.named(act_field))
    out.set("add_linear_biases", False, "no biases in the MLP")


def _dense(out: Conversion, hf: _Reader, width_field: str = "intermediate_size") -> None:
    out.set("type", "mlp", f"decoder layer {out.layer} has a dense MLP")
    _gated_experts(out, hf, width_field)


def mixtral(out: Conversion, hf: _Reader) -> None:
    out.set_moe_layers(tuple(range(out.layers)))
    out.set("type", "moe", "MixtralSparseMoeBlock in every decoder layer")
    out.set("experts", hf.get("num_local_experts", int, minimum=1, aliases=("num_experts",)), "num_local_experts")
    out.set("experts_per_token", hf.get("num_experts_per_tok", int, minimum=1), "num_experts_per_tok")
    _gated_experts(out, hf, "intermediate_size")
    _routed_softmax(out, normalize=True, normalize_source="Mixtral renormalises the top-k weights")
    _input_jitter(out, hf)
    _aux_loss(out, hf, 0.001)


def _qwen(out: Conversion, hf: _Reader, *, shared: bool) -> None:
    experts = hf.get("num_experts", int, minimum=0, aliases=("num_local_experts",))
    step = hf.get("decoder_sparse_step", int, 1, minimum=1)
    dense_layers = hf.get("mlp_only_layers", list, [])
    if any(type(index) is not int for index in dense_layers):
        hf.problem("mlp_only_layers", "expected a list of layer indices (integers)")
        dense_layers = []
    dense_layers = set(dense_layers)
    out.set_moe_layers(tuple(
        index for index in range(out.layers) if index not in dense_layers and (experts or 0) > 0 and (index + 1) % step == 0
    ))
    if not out.is_moe:
        return _dense(out, hf)
    out.set("type", "moe", "a sparse MoE block: not in mlp_only_layers, num_experts > 0, (layer + 1) % decoder_sparse_step == 0")
    if shared:
        out.set("experts", experts + 1, "num_experts + the shared expert")
        out.set("experts_per_token", hf.get("num_experts_per_tok", int, minimum=1), "num_experts_per_tok")
        out.set("shared_experts", 1, "shared_expert: one gated MLP on every token")
        out.set("shared_expert_intermediate_size", hf.get("shared_expert_intermediate_size", int, minimum=1), "shared_expert_intermediate_size")
        out.set("shared_expert_gate", {"enabled": True}, "shared_expert_gate: Linear(hidden, 1), output × sigmoid")
    else:
        out.set("experts", experts, "num_experts")
        out.set("experts_per_token", hf.get("num_experts_per_tok", int, minimum=1), "num_experts_per_tok")
    _gated_experts(out, hf, "moe_intermediate_size")
    normalize = hf.get("norm_topk_prob", bool, False)
    _routed_softmax(out, normalize=normalize, normalize_source=hf.named("norm_topk_prob"))
    _aux_loss(out, hf, 0.001)


def qwen2_moe(out: Conversion, hf: _Reader) -> None:
    _qwen(out, hf, shared=True)


def qwen3_moe(out: Conversion, hf: _Reader) -> None:
    _qwen(out, hf, shared=False)


def olmoe(out: Conversion, hf: _Reader) -> None:
    out.set_moe_layers(tuple(range(out.layers)))
    out.set("type", "moe", "OlmoeSparseMoeBlock in every decoder layer")
    out.set("experts", hf.get("num_experts", int, minimum=1, aliases=("num_local_experts",)), "num_experts")
    out.set("experts_per_token", hf.get("num_experts_per_tok", int, minimum=1), "num_experts_per_tok")
    _gated_experts(out, hf, "intermediate_size")
    _routed_softmax(out, normalize=hf.get("norm_topk_prob", bool, False), normalize_source=hf.named("norm_topk_prob"))
    _aux_loss(out, hf, 0.01)


def deepseek_v3(out: Conversion, hf: _Reader) -> None:
    routed = hf.get("n_routed_experts", int, minimum=1, aliases=("num_local_experts",))
    first_dense = hf.get("first_k_dense_replace", int, 3, minimum=0)  # absent fields: DeepseekV3Config's defaults
    out.set_moe_layers(tuple(range(first_dense, out.layers)) if routed is not None else ())
    hf.unsupported_unless(
        "moe_layer_freq", lambda value: value == 1,
        "transformers makes every layer from first_k_dense_replace on an MoE layer, DeepSeek's own code only every "
        "moe_layer_freq-th: which layers are MoE is ambiguous; set it to 1",
    )
    hf.unsupported_unless("scoring_func", lambda value: value == "sigmoid", "DeepSeek-V3 scores with sigmoid")
    hf.unsupported_unless("topk_method", lambda value: value == "noaux_tc", "DeepSeek-V3 routes with noaux_tc (group-limited, aux-free bias)")
    if not out.is_moe:
        return _dense(out, hf)
    shared = hf.get("n_shared_experts", int, 1, minimum=0)
    out.set("type", "moe", "DeepseekV3MoE: layer >= first_k_dense_replace")
    out.set("experts", routed + shared, "n_routed_experts + n_shared_experts")
    out.set("experts_per_token", hf.get("num_experts_per_tok", int, minimum=1), "num_experts_per_tok")
    if shared:
        out.set("shared_experts", shared, f"{hf.named('n_shared_experts')}: one MLP of width moe_intermediate_size × n_shared_experts")
    _gated_experts(out, hf, "moe_intermediate_size")
    out.set("routing", "aux_free", "noaux_tc: e_score_correction_bias serves the choice only")
    out.set("router_score_function", "sigmoid", "scoring_func sigmoid")
    out.set("normalize_expert_weights", hf.get("norm_topk_prob", bool, True), hf.named("norm_topk_prob"))
    out.set("routed_scaling_factor", hf.get("routed_scaling_factor", float, 2.5), hf.named("routed_scaling_factor"))
    groups = hf.get("n_group", int, 8, minimum=1)
    if groups > 1:
        out.set("expert_groups", groups, hf.named("n_group"))
        out.set("expert_groups_per_token", hf.get("topk_group", int, 4, minimum=1), hf.named("topk_group"))
    out.set("router_dtype", "float32", "DeepseekV3TopkRouter upcasts the router linear to float32")
    alpha = hf.get("aux_loss_alpha", float, 0.0, minimum=0)
    if hf.get("seq_aux", bool, False) and alpha:
        out.set(
            "sequence_auxiliary_loss_coefficient", alpha,
            "aux_loss_alpha with seq_aux: this config.json's value (the DeepSeek-V3 report trained with 0.0001); "
            "HF transformers computes no auxiliary loss",
        )


def gpt_oss(out: Conversion, hf: _Reader) -> None:
    out.set_moe_layers(tuple(range(out.layers)))
    out.set("type", "moe", "GptOssMLP in every decoder layer")
    out.set("experts", hf.get("num_local_experts", int, minimum=1, aliases=("num_experts",)), "num_local_experts")
    k = hf.get("num_experts_per_tok", int, minimum=1)
    hf.unsupported_unless(  # openai's config.json repeats k under this name, which transformers does not read
        "experts_per_token", lambda value: value == k or k is None, f"disagrees with num_experts_per_tok ({k}), which transformers uses"
    )
    out.set("experts_per_token", k, "num_experts_per_tok")
    out.set("intermediate_size", hf.get("intermediate_size", int, minimum=1), "intermediate_size")
    out.set("gated", True, "gate_up_proj, gate and up interleaved")
    out.set("activation", "gpt_oss_glu", "GptOssExperts' clamped GLU (hidden_act is not used)")
    hf.read.add("hidden_act")
    out.set("activation_limit", hf.get("swiglu_limit", float, GPT_OSS_LIMIT), hf.named("swiglu_limit"))
    hf.unsupported_unless(
        "swiglu_alpha", lambda value: value == GPT_OSS_ALPHA, f"our gpt_oss_glu has alpha {GPT_OSS_ALPHA}, as HF's experts"
    )
    out.set("add_linear_biases", True, "gate_up_proj_bias and down_proj_bias")
    out.set("router_bias", {"enabled": True}, "router.bias")
    _routed_softmax(
        out, normalize=True, normalize_source="top-k of the logits, softmax over the k chosen",
        scores="softmax (HF takes it in the logits' dtype, ours in float32 at least: equal in float32)",
    )
    _aux_loss(out, hf, 0.001)


def gemma4_text(out: Conversion, hf: _Reader) -> None:
    """Gemma4TextDecoderLayer's feed-forward, around its residual x (transformers 5.x):
    post_feedforward_layernorm(post_feedforward_layernorm_1(mlp(pre_feedforward_layernorm(x)))
                               + post_feedforward_layernorm_2(experts(pre_feedforward_layernorm_2(x), router(x))))
    as hybrid_moe; with `moe_only`, the MoE branch alone (router, experts and the two *_2 norms) as moe."""
    enabled = hf.get("enable_moe_block", bool, None)
    if enabled is None and hf.data.get("enable_moe_block") is not None:  # not a boolean: reported
        return
    if not enabled:
        hf.problem("enable_moe_block", "this Gemma-4 model has no MoE block (enable_moe_block is false or absent): nothing to convert")
        return
    out.set_moe_layers(tuple(range(out.layers)))
    epsilon = hf.get("rms_norm_eps", float, 1e-6)
    if out.moe_only:
        out.set("type", "moe", "the MoE branch of every Gemma4TextDecoderLayer (its parallel dense MLP is not part of it)")
        _gemma4_routed(out, hf, epsilon, router_normalization={"type": "rms_norm", "epsilon": epsilon, "weight": {"enabled": False}})
        return
    out.set("type", "hybrid_moe", "Gemma4TextDecoderLayer's feed-forward: its dense MLP and its MoE block on the residual, summed")
    dense = Conversion(family=out.family, layer=out.layer, layers=out.layers, hidden_size=out.hidden_size)
    _gated_experts(dense, hf, "intermediate_size", "hidden_activation", "gelu_pytorch_tanh")
    # Gemma4TextMLP doubles its width on the layers that reuse another layer's KV cache (kv_sharing_modes "reuse":
    # the last num_kv_shared_layers) when use_double_wide_mlp is set.
    double_wide = hf.get("use_double_wide_mlp", bool, False)
    shared_kv = hf.get("num_kv_shared_layers", int, 0, minimum=0)
    width = dense.data["intermediate_size"]
    if double_wide and width is not None and shared_kv is not None and out.layer >= out.layers - shared_kv:
        dense.set(
            "intermediate_size", 2 * width,
            f"2 × intermediate_size: use_double_wide_mlp, and layer {out.layer} is one of the last num_kv_shared_layers ({shared_kv}), which reuse a KV cache",
        )
    dense.set("pre_norm", {"type": "rms_norm", "epsilon": epsilon}, "pre_feedforward_layernorm")
    dense.set("post_norm", {"type": "rms_norm", "epsilon": epsilon}, "post_feedforward_layernorm_1")
    routed = Conversion(family=out.family, layer=out.layer, layers=out.layers, hidden_size=out.hidden_size)
    _gemma4_routed(routed, hf, epsilon, router_normalization={"type": "fixed_rms_norm", "epsilon": epsilon})
    out.set("dense", dense.data, "mlp (Gemma4TextMLP, gated, hidden_activation), pre_feedforward_layernorm, post_feedforward_layernorm_1 (rms_norm_eps)")
    out.set(
        "routed", routed.data,
        "router, experts (num_experts, top_k_experts, moe_intermediate_size), pre_/post_feedforward_layernorm_2 (rms_norm_eps)",
    )
    out.set("post_norm", {"type": "rms_norm", "epsilon": epsilon}, "post_feedforward_layernorm, on the sum (rms_norm_eps)")


def _gemma4_routed(out: Conversion, hf: _Reader, epsilon: float, *, router_normalization: dict) -> None:
    """The MoE branch of Gemma4TextDecoderLayer: Gemma4TextRouter, Gemma4TextExperts and the *_2 norms around them."""
    hidden = out.hidden_size
    rms = {"type": "rms_norm", "epsilon": epsilon}
    out.set("experts", hf.get("num_experts", int, minimum=1), "num_experts")
    out.set("experts_per_token", hf.get("top_k_experts", int, minimum=1), "top_k_experts")
    _gated_experts(out, hf, "moe_intermediate_size", "hidden_activation", "gelu_pytorch_tanh")
    _routed_softmax(out, normalize=True, normalize_source="Gemma4TextRouter renormalises the top-k weights")
    out.set("router_normalization", router_normalization, "router.norm: RMSNorm without scale (rms_norm_eps)")
    out.set("router_scale", {"enabled": True}, "router.scale")
    out.set("router_input_scale", hidden**-0.5, "router: × hidden_size^-0.5")
    out.set("router_per_expert_scale", {"enabled": True}, "router.per_expert_scale")
    out.set("pre_norm", dict(rms), "pre_feedforward_layernorm_2 (rms_norm_eps)")
    out.set("post_norm", dict(rms), "post_feedforward_layernorm_2 (rms_norm_eps)")
    out.set("auxiliary_loss_coefficient", 0.0, "transformers' Gemma-4 adds no load-balancing loss")


FAMILIES: dict[str, Callable[[Conversion, _Reader], None]] = {
    "mixtral": mixtral,
    "qwen2_moe": qwen2_moe,
    "qwen3_moe": qwen3_moe,
    "olmoe": olmoe,
    "deepseek_v3": deepseek_v3,
    "gpt_oss": gpt_oss,
    "gemma4_text": gemma4_text,
}
MULTIMODAL = {"gemma4": "text_config"}  # model_type -> the key of its text model's config
MOE_ONLY_FAMILIES = ("gemma4_text",)  # feed-forwards of a dense MLP and an MoE block: `moe_only` converts the MoE block alone


# --- entry points -----------------------------------------------------------------------------------------------


def as_source(hf_config: Any) -> Source:
    """A dict, a `Source` (a parsed config.json, with positions) or a transformers config object."""
    if isinstance(hf_config, Source):
        return hf_config
    if isinstance(hf_config, dict):
        return Source(hf_config)
    if hasattr(hf_config, "to_dict"):
        return Source(hf_config.to_dict())
    raise TypeError(f"expected a dict or a transformers config, got {type(hf_config).__name__}")


def convert(hf_config: Any, layer: int | None = None, *, moe_only: bool = False) -> Conversion:
    """The MLP of decoder `layer` (default: the first MoE layer) as a validated `Conversion`.

    Gemma-4's feed-forward is a dense MLP and an MoE block summed: `hybrid_moe`; `moe_only` converts
    its MoE branch alone (`moe`). The other families have one MLP block: `moe_only` is a ValueError there.

    Raises ConfigError, naming each HF field that is missing, malformed or cannot be represented.
    """
    if layer is not None and (type(layer) is not int or layer < 0):
        raise TypeError(f"layer: expected a decoder layer index >= 0 or None, got {layer!r}")
    source = as_source(hf_config)
    if not isinstance(source.data, dict):
        raise ConfigError([*source.problems, Problem("expected a mapping (a model's config.json)", file=source.file, line=1, column=1)])
    model_type = source.data.get("model_type")
    if isinstance(model_type, str) and model_type in MULTIMODAL:
        text_key = MULTIMODAL[model_type]
        if not isinstance(source.data.get(text_key), dict):
            problem = source.problem((text_key,) if text_key in source.data else (), "value", message=f"expected a mapping: the text model's config of a {model_type} model")
            raise ConfigError([*source.problems, Problem(problem.message, text_key, problem.file, problem.line, problem.column)])
        source = source.select((text_key,))
        model_type = source.data.get("model_type", f"{model_type}_text")
    hf = _Reader(source)
    hf.read.add("model_type")
    if not isinstance(model_type, str) or model_type not in FAMILIES:
        known = sorted(FAMILIES)
        if model_type is None:
            message = f"missing: the family of the model (one of {', '.join(known)})"
        elif not isinstance(model_type, str):
            message = f"expected a string, got {describe(model_type)}"
        else:
            message = f"cannot convert model_type {shorten(repr(model_type))}: supported are {', '.join(known)}"
        hf.problem("model_type", message, did_you_mean(model_type, known))
        raise ConfigError([*source.problems, *hf.problems])
    hidden = hf.get("hidden_size", int, minimum=1)
    layers = hf.get("num_hidden_layers", int, minimum=1, maximum=MAX_LAYERS)
    if hidden is None or layers is None:
        raise ConfigError([*source.problems, *hf.problems])
    if layer is not None and not 0 <= layer < layers:
        hf.problem("num_hidden_layers", f"there is no decoder layer {layer}: the model has {layers} (0 to {layers - 1})")
        raise ConfigError([*source.problems, *hf.problems])
    if moe_only and model_type not in MOE_ONLY_FAMILIES:  # a setting with no effect is an error
        raise ValueError(f"moe_only applies to Gemma-4 only, whose feed-forward is a dense MLP and an MoE block; {model_type} has one MLP block")
    out = Conversion(family=model_type, layer=layer, layers=layers, hidden_size=hidden, moe_only=moe_only)
    out.dtype = hf.get("torch_dtype", str, None, aliases=("dtype",))
    FAMILIES[model_type](out, hf)
    if hf.problems or source.problems:
        raise ConfigError([*source.problems, *hf.problems])
    out.unused = tuple(sorted(str(key) for key in source.data if key not in hf.read))
    try:
        out.config = MLPBaseConfig.from_dict(out.data)
    except ConfigError as exc:  # a combination our rules reject: say which HF fields it came from
        raise ConfigError(
            Problem(f"{problem.message} (from HF {out.sources.get(problem.path.split('.')[0], '?')})", problem.path, source.file)
            for problem in exc.problems
        ) from None
    return out


def config_from_hf(hf_config: Any, layer: int | None = None, *, moe_only: bool = False) -> tuple[MLPBaseConfig, int]:
    """`(config, hidden_size)` of decoder `layer`'s MLP (default: the first MoE layer) of an HF model.

    `hf_config` is a transformers config object or a plain dict (as read from `config.json`; no
    transformers needed). A dense layer (DeepSeek-V3's first_k_dense_replace, Qwen's mlp_only_layers)
    gives an `MLPConfig`, Gemma-4 a `HybridMoEMLPConfig` (its MoE branch alone, a `MoEMLPConfig`, with
    `moe_only`). Raises ConfigError naming every HF field that cannot be converted.
    """
    conversion = convert(hf_config, layer, moe_only=moe_only)
    return conversion.config, conversion.hidden_size


# --- commented YAML ---------------------------------------------------------------------------------------------


def _ranges(indices: tuple[int, ...]) -> str:
    """(0, 1, 2, 5) -> '0-2, 5'."""
    runs: list[list[int]] = []
    for index in indices:
        if runs and index == runs[-1][-1] + 1:
            runs[-1].append(index)
        else:
            runs.append([index])
    return ", ".join(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}" for run in runs)


def _dtype_line(dtype: str | None) -> list[str]:
    if dtype in ("float32", "float16", "bfloat16", "float64"):
        return [f"The checkpoint's weights are {dtype} (HF dtype): config.build(hidden_size, dtype=torch.{dtype})."]
    return [f"HF dtype: {shorten(repr(dtype))}."] if dtype is not None else []


def conversion_yaml(conversion: Conversion, command: str) -> str:
    """The converted config as YAML: a header (the command, the HF layer, the width and parameter counts,
    the HF fields left out), then `type`, the current `format_version` (at the root only), and each value
    with a comment naming the HF field it came from."""
    import textwrap

    from fastmoe_cfg.config.yaml_writer import dump_yaml
    from fastmoe_cfg.schemas.counts import count_layer

    moe = conversion.moe_layers
    moe_text = "none" if not moe else f"all {len(moe)}" if len(moe) == conversion.layers else f"{len(moe)} of them: {_ranges(moe)}"
    counts = count_layer(conversion.config, conversion.hidden_size)
    kind = "an MoE layer" if conversion.is_moe else "a dense MLP"
    header = [
        f"Written by: {command}",
        f"Hugging Face model_type {conversion.family}, decoder layer {conversion.layer} of {conversion.layers} ({kind}; MoE layers: {moe_text}).",
        f"The model's width is hidden_size {conversion.hidden_size}; it is not part of this config. Counts and FLOPs:",
        f"  fastmoe-cfg explain THIS_FILE --hidden-size {conversion.hidden_size}",
        f"Parameters of this layer: {counts.total_parameters:,} in all, {counts.active_parameters:,} active per token.",
        *_dtype_line(conversion.dtype),
        "Each comment names the HF field(s) a value came from.",
    ]
    if conversion.unused:
        header += textwrap.wrap(
            f"HF fields that layer {conversion.layer}'s MLP does not use, not converted: " + ", ".join(conversion.unused) + ".", width=98, subsequent_indent="  "
        )
    comments = {"format_version": "the config format version, not from HF", **conversion.sources}
    return dump_yaml(conversion.written_data(), header="\n".join(header), comments=comments)
