"""Hugging Face model config (`config.json`) -> our MLP config, for one decoder layer. No torch.

What every family shares: `convert` finds the family of the `model_type` (`fastmoe_cfg.hf.families`, one
module per architecture), validates its HF fields (`fastmoe_cfg.hf.fields`, located problems), and lets the
family map every field that changes the math of its MLP block to a field of ours (`Conversion.sources` names
the HF field each value came from). An HF setting we cannot represent is a located problem naming that field.
The other HF fields (attention, embeddings, rotary, ...) are outside the MLP layer: `Conversion.unused` lists
them, the YAML names them.

Absent fields: an option (norm_topk_prob, routed_scaling_factor, n_group, router_aux_loss_coef, ...) takes
its transformers class default, and the YAML comment says so; a size (hidden_size, num_hidden_layers, the
expert count, k, the widths) is required: transformers' defaults for those describe one particular model.

The routing math and weight layouts are in NUMERICS.md; the weight copy is `fastmoe_cfg.hf.weights` (torch).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

from fastmoe_cfg.config.errors import ConfigError, Problem, describe, did_you_mean, shorten
from fastmoe_cfg.config.source import Source
from fastmoe_cfg.hf.fields import HFFields, located, read_fields
from fastmoe_cfg.schemas.mlp import FORMAT_VERSION, MLPBaseConfig

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
    unused: tuple[str, ...] = ()  # HF fields outside the model's MLP blocks (attention, embeddings, ...)
    dtype: str | None = None  # the checkpoint's weight dtype (HF torch_dtype / dtype): a build() argument, not a field
    quantization: dict | None = None  # HF quantization_config: the checkpoint's weights are quantized (fp8, mxfp4, ...)
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
        """Our `key` = `value`; `source` names the HF field(s) it came from, the first one first (problems found
        by our rules on the value are placed at that field of the config.json)."""
        self.data[key] = value
        self.sources[key] = source


class Context:
    """The HF data being converted, for a family's `convert`: problems at HF fields, comments naming them."""

    def __init__(self, source: Source, fields: HFFields):
        self.source = source
        self.data: dict[str, Any] = source.data
        self.fields = fields
        self.problems: list[Problem] = []

    def problem(self, name: str | None, message: str, suggestion: str | None = None) -> None:
        self.problems.append(located(self.source, name, message, suggestion))

    def named(self, name: str) -> str:
        """`name`, for a comment; says so when the value is transformers' default (the field is absent)."""
        return name if self.data.get(name) is not None else f"{name} (absent: transformers' default)"

    def unsupported_unless(self, name: str, ok: Callable[[Any], bool], why: str) -> None:
        """A problem when `name` is present with a value for which `ok` is false (a setting we cannot express)."""
        value = self.data.get(name)
        if value is not None and not ok(value):
            self.problem(name, f"{describe(value)} cannot be converted: {why}")


# --- what families share ----------------------------------------------------------------------------------------


def routed_softmax(out: Conversion, *, normalize: bool | None, normalize_source: str, scores: str = "softmax of the router logits in float32") -> None:
    out.set("routing", "aux_loss", "softmax top-k routing")
    out.set("router_score_function", "softmax", scores)
    out.set("normalize_expert_weights", normalize, normalize_source)
    out.set("router_dtype", "input", "HF runs the router linear in the model dtype")


def aux_loss(out: Conversion, hf: Context, coefficient: float, name: str = "router_aux_loss_coef") -> None:
    """The family's load-balancing coefficient (its field `name`, or transformers' default when absent)."""
    out.set("auxiliary_loss_coefficient", coefficient, f"{hf.named(name)}; {POOLED_AUX_LOSS}")


def input_jitter(out: Conversion, eps: float, name: str = "router_jitter_noise") -> None:
    """A block that multiplies its input by U(1 ± eps) in training, before the router and the experts
    (Mixtral, MiniMax): jitter_eps on the layer input."""
    if eps:
        out.set("jitter_eps", eps, f"{name}: the block input is multiplied by U(1 ± eps) in training")
        out.set("jitter_target", "layer_input", "HF multiplies the block input, which the router and the experts both read")


def gated_experts(out: Conversion, width: int, width_field: str, activation: str, act_source: str) -> None:
    """Gated experts (or dense MLP) without biases: width, activation."""
    out.set("intermediate_size", width, width_field)
    out.set("gated", True, "gate_proj and up_proj (fused gate_up_proj)")
    out.set("activation", activation, act_source)
    out.set("add_linear_biases", False, "no biases in the MLP")


def dense(out: Conversion, width: int, width_field: str, activation: str, act_source: str) -> None:
    out.set("type", "mlp", f"decoder layer {out.layer} has a dense MLP")
    gated_experts(out, width, width_field, activation, act_source)


def every_layer(fields: HFFields) -> tuple[int, ...]:
    """An MoE block in every decoder layer."""
    return tuple(range(fields.num_hidden_layers))


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
    return _read_model(hf_config, layer, moe_only).layer(layer)


def convert_all(hf_config: Any, *, moe_only: bool = False) -> list[Conversion]:
    """Every decoder layer's MLP, as `convert` gives each (layers with equal blocks share one config object)."""
    model = _read_model(hf_config, None, moe_only)
    return [model.layer(index) for index in range(model.fields.num_hidden_layers)]


def _read_model(hf_config: Any, layer: int | None, moe_only: bool) -> _Model:
    from fastmoe_cfg.hf.families import families, wrappers

    if layer is not None and (type(layer) is not int or layer < 0):
        raise TypeError(f"layer: expected a decoder layer index >= 0 or None, got {layer!r}")
    source = as_source(hf_config)
    if source.data is None and source.problems:  # not readable (invalid JSON, ...): said once
        raise ConfigError(source.problems)
    if not isinstance(source.data, dict):
        raise ConfigError([*source.problems, Problem("expected a mapping (a model's config.json)", file=source.file, line=1, column=1)])
    model_type = source.data.get("model_type")
    if model_type is None and ("format_version" in source.data or source.data.get("type") in MLPBaseConfig.variants()):
        message = (
            "this is a fastmoe_cfg config already, not a Hugging Face config.json (it has no model_type): "
            "check it with fastmoe-cfg validate, or explain it with fastmoe-cfg explain"
        )
        key = "type" if "type" in source.data else "format_version"
        raise ConfigError([*source.problems, source.problem((key,), "value", message=message)])
    outer, known = wrappers(), families()
    quantization = None
    # Qwen3-Omni: thinker_config, then its text_config; a wrapper that is also a family's model_type (dots3_note) holds
    # its text model at the top level when it has no text_config (or a null one)
    while isinstance(model_type, str) and model_type in outer and (source.data.get(outer[model_type]) is not None or model_type not in known):
        text_key = outer[model_type]
        if not isinstance(source.data.get(text_key), dict):
            problem = source.problem((text_key,) if text_key in source.data else (), "value", message=f"expected a mapping: the text model's config of a {model_type} model")
            raise ConfigError([*source.problems, Problem(problem.message, text_key, problem.file, problem.line, problem.column)])
        quantization = source.data.get("quantization_config", quantization)  # the checkpoint's, at any level
        declaring = next(family.name for family in known.values() if model_type in (family.wrappers or {}))
        source = source.select((text_key,))
        model_type = source.data.get("model_type", declaring)  # a text_config without one: the family that declares the wrapper
    if not isinstance(model_type, str) or model_type not in known:
        names = sorted(known)
        if model_type is None:
            message = f"missing: the family of the model (one of {', '.join(names)})"
        elif not isinstance(model_type, str):
            message = f"expected a string, got {describe(model_type)}"
        else:
            message = f"cannot convert model_type {shorten(repr(model_type))}: supported are {', '.join(names)}"
        problem = located(source, "model_type", message, did_you_mean(model_type, names))
        raise ConfigError([*source.problems, problem])
    family = known[model_type]
    fields, problems = read_fields(family.fields, source, model_type)
    if fields is None:
        raise ConfigError([*source.problems, *problems])
    if layer is not None and not 0 <= layer < fields.num_hidden_layers:
        message = f"there is no decoder layer {layer}: the model has {fields.num_hidden_layers} (0 to {fields.num_hidden_layers - 1})"
        raise ConfigError([*source.problems, located(source, "num_hidden_layers", message)])
    if moe_only and not family.moe_only:  # a setting with no effect is an error
        raise ValueError(f"moe_only applies to Gemma-4 only, whose feed-forward is a dense MLP and an MoE block; {model_type} has one MLP block")
    if fields.quantization_config is None and isinstance(quantization, dict):  # a wrapper's, for its text model's weights
        fields = fields.model_copy(update={"quantization_config": quantization})
    return _Model(source, family, fields, model_type, family.moe_layers(fields), moe_only)


@dataclass
class _Model:
    """A config.json whose family and fields were read: converts any of its decoder layers."""

    source: Source
    family: Any  # fastmoe_cfg.hf.families.Family
    fields: HFFields
    model_type: str
    moe_layers: tuple[int, ...]
    moe_only: bool
    validated: dict[str, MLPBaseConfig] = field(default_factory=dict)  # repr(data) -> config: layers alike validate once

    def layer(self, layer: int | None) -> Conversion:
        fields, source = self.fields, self.source
        out = Conversion(family=self.model_type, layer=layer, layers=fields.num_hidden_layers, hidden_size=fields.hidden_size, moe_only=self.moe_only)
        out.dtype, out.quantization = fields.torch_dtype, fields.quantization_config
        hf = Context(source, fields)
        out.set_moe_layers(self.moe_layers)
        self.family.convert(out, fields, hf)
        if hf.problems or source.problems:
            raise ConfigError([*source.problems, *hf.problems])
        read = self.family.fields.hf_names()
        out.unused = tuple(sorted(str(key) for key in source.data if key not in read))
        key = repr(out.data)
        if key not in self.validated:
            try:
                self.validated[key] = MLPBaseConfig.from_dict(out.data)
            except ConfigError as exc:  # a combination our rules reject: say which HF fields it came from, at the first
                raise ConfigError(_from_hf(problem, out, source) for problem in exc.problems) from None
        out.config = self.validated[key]
        return out


def _from_hf(problem: Problem, out: Conversion, source: Source) -> Problem:
    """A problem of our config, located at the config.json field its value came from."""
    origin = out.sources.get(problem.path.split(".")[0], "?")
    message = f"{problem.message} (from HF {origin})"
    hf_field = next((name for name in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", origin) if name in source.data), None)
    where = source.problem((hf_field,) if hf_field is not None else (), "value", message=message)
    return Problem(message, problem.path, where.file, where.line, where.column, problem.suggestion)


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


def _dtype_line(dtype: str | None, quantization: dict | None = None) -> list[str]:
    if quantization is not None:
        method = quantization.get("quant_method", quantization.get("fmt", "unknown method"))
        text = f"The checkpoint's weights are quantized (HF quantization_config: quant_method {shorten(repr(method))})"
        text += f"; {dtype} (HF dtype) is the dtype of the other tensors and of compute." if dtype is not None else "."
        return [text, "This config describes the layer's math; loading quantized weights needs them dequantized first."]
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
        *_dtype_line(conversion.dtype, conversion.quantization),
        "Each comment names the HF field(s) a value came from.",
    ]
    if conversion.unused:
        header += textwrap.wrap(
            "HF fields outside the model's MLP blocks, not converted: " + ", ".join(conversion.unused) + ".", width=98, subsequent_indent="  "
        )
    comments = {"format_version": "the config format version, not from HF", **conversion.sources}
    return dump_yaml(conversion.written_data(), header="\n".join(header), comments=comments)


# --- the whole model as a stack ---------------------------------------------------------------------------------


def _placement(layers: int, moe: tuple[int, ...]) -> dict[str, Any]:
    """The stack fields that place the MoE layers: first_dense and moe_every when they can, else the list."""
    from fastmoe_cfg.schemas.stack import _moe_indices

    steps = {later - earlier for earlier, later in zip(moe, moe[1:])}
    for every in sorted({1, *steps}) if len(steps) <= 1 else ():
        for first in sorted({0, moe[0] if moe else 0}):
            if _moe_indices(layers, first, every, None) == moe:
                return {key: value for key, value in (("first_dense", first), ("moe_every", every)) if value != {"first_dense": 0, "moe_every": 1}[key]}
    return {"moe_layers": list(moe)}


def _changes(base: dict[str, Any], data: dict[str, Any], config: Any) -> dict[str, Any]:
    """What an override sets to turn block `base` into `data` (`config`: data's validated config): the keys that differ,
    nested mappings compared key by key; a key that `data` lacks takes its value in `config`."""
    from fastmoe_cfg.config.base import plain_data

    if base.get("type") != data.get("type"):
        return dict(data)
    changes: dict[str, Any] = {}
    for key in {**base, **data}:
        if key not in data:
            changes[key] = plain_data(getattr(config, key))
        elif isinstance(data[key], dict) and isinstance(base.get(key), dict) and base[key].get("type") == data[key].get("type"):
            inner = _changes(base[key], data[key], getattr(config, key, None))
            if inner:
                changes[key] = inner
        elif base.get(key) != data[key]:
            changes[key] = data[key]
    return changes


def stack_data(conversions: list[Conversion]) -> tuple[dict[str, Any], dict[Any, str]]:
    """The model's MLPs as a stack: (YAML data, comments). The MoE block is the first MoE layer's, the dense block the
    first dense layer's; the family's placement of MoE layers; an override for each set of layers whose block differs."""
    first = conversions[0]
    moe, layers = first.moe_layers, first.layers
    moe_set = set(moe)
    dense = [index for index in range(layers) if index not in moe_set]
    mlp = conversions[moe[0] if moe else 0]
    dense_mlp = conversions[dense[0]] if moe and dense else None
    data: dict[str, Any] = {"type": "stack", "format_version": FORMAT_VERSION, "layers": layers}
    if moe:
        data.update(_placement(layers, moe))
    comments: dict[Any, str] = {"format_version": "the config format version, not from HF", "layers": "the decoder layers with an MLP block (num_hidden_layers for most families)"}
    for key in ("first_dense", "moe_every", "moe_layers"):
        if key in data:
            comments[key] = f"the MoE layers, as transformers places them ({_ranges(moe)})"
    if dense_mlp is not None:
        data["dense_mlp"] = dense_mlp.data
        comments["dense_mlp"] = f"the dense layers' MLP (layers {_ranges(tuple(dense))})"
        comments.update({("dense_mlp", key): text for key, text in dense_mlp.sources.items() if key in dense_mlp.data})
    data["mlp"] = mlp.data
    comments["mlp"] = f"the MoE layers' block ({_ranges(moe)})" if moe else "every layer's MLP: the model has no MoE layer"
    comments.update({("mlp", key): text for key, text in mlp.sources.items() if key in mlp.data})
    groups: dict[str, tuple[dict[str, Any], list[int]]] = {}
    for index, conversion in enumerate(conversions):
        base = mlp if index in moe_set or dense_mlp is None else dense_mlp
        if conversion.data != base.data:
            changes = _changes(base.data, conversion.data, conversion.config)
            groups.setdefault(repr(changes), (changes, []))[1].append(index)
    if groups:
        data["overrides"] = [{"layers": _ranges(tuple(indices)), "set": changes} for changes, indices in groups.values()]
        comments["overrides"] = "layers whose block differs from the one above (the family's per-layer rules)"
    return data, comments


def stack_yaml(conversions: list[Conversion], command: str) -> str:
    """The whole model's MLPs as a commented stack config (`convert --all-layers`), with whole-model totals."""
    import textwrap

    from fastmoe_cfg.config.yaml_writer import dump_yaml
    from fastmoe_cfg.schemas.stack import StackConfig

    first = conversions[0]
    data, comments = stack_data(conversions)
    stack = StackConfig.from_dict(data)
    if stack.blocks() != tuple(conversion.config for conversion in conversions):  # a bug of stack_data, never the user's
        raise RuntimeError("the stack written for --all-layers does not give every layer's converted block")
    counts = stack.counts(first.hidden_size)
    moe = first.moe_layers
    header = [
        f"Written by: {command}",
        f"Hugging Face model_type {first.family}: the MLPs of all {first.layers} decoder layers "
        f"(MoE layers: {'none' if not moe else f'all {len(moe)}' if len(moe) == first.layers else f'{len(moe)}: {_ranges(moe)}'}).",
        f"The model's width is hidden_size {first.hidden_size}; it is not part of this config. Per layer:",
        f"  fastmoe-cfg explain THIS_FILE --hidden-size {first.hidden_size}",
        f"Parameters of the model's MLPs: {counts.total_parameters:,} in all, {counts.active_parameters:,} active per token;",
        f"  {counts.flops_per_token:,} FLOPs per token (forward, matrix multiplications).",
        *_dtype_line(first.dtype, first.quantization),
        "Each comment names the HF field(s) a value came from.",
    ]
    if first.unused:
        header += textwrap.wrap(
            "HF fields outside the model's MLP blocks, not converted: " + ", ".join(first.unused) + ".", width=98, subsequent_indent="  "
        )
    return dump_yaml(data, header="\n".join(header), comments=comments)
