"""Weights between Hugging Face MoE blocks and our layer; torch is imported inside the functions.

Each family's module (`fastmoe_cfg.hf.families`) gives a list of `Tensors`: the HF tensor(s) of a block's
state dict and our parameter or buffer they become, with the two exact transforms between them (transposes,
GPT-OSS's interleaved gate/up, the shared expert's separate gate and up projections); the pieces that several
families share are here. Import is `load_state_dict(strict)`
of the converted tensors, so every parameter of our layer is filled; export is the inverse.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from fastmoe_cfg.hf.mapping import convert
from fastmoe_cfg.schemas.hybrid import HybridMoEMLPConfig

if TYPE_CHECKING:
    import torch

Join = Callable[[list], "torch.Tensor"]  # HF tensors -> ours
Split = Callable[["torch.Tensor"], list]  # ours -> HF tensors


@dataclass(frozen=True)
class Tensors:
    hf: tuple[str, ...]
    ours: str
    join: Join = lambda tensors: tensors[0]
    split: Split = lambda tensor: [tensor]


def transposed(hf: str, ours: str) -> Tensors:
    """[E, a, b] stored as [E, b, a] (GPT-OSS)."""
    return Tensors((hf,), ours, lambda t: t[0].transpose(1, 2), lambda t: [t.transpose(1, 2)])


def gate_first(interleaved):
    """GPT-OSS's last dimension [..., 2I] with gate = ::2 and up = 1::2 -> gate then up."""
    import torch

    return torch.cat([interleaved[..., ::2], interleaved[..., 1::2]], dim=-1)


def interleaved(gate_first):
    """Inverse of `gate_first`."""
    import torch

    gate, up = gate_first.chunk(2, dim=-1)
    return torch.stack([gate, up], dim=-1).flatten(-2)


def gated_mlp(hf_prefix: str, ours: str) -> list[Tensors]:
    """An HF gated MLP of nn.Linear (`gate_proj`, `up_proj`, `down_proj`) -> our dense MLP:
    layer_1.weight = cat(gate, up) [2·I, H]; layer_2.weight = down as is."""
    import torch

    return [
        Tensors(
            (f"{hf_prefix}.gate_proj.weight", f"{hf_prefix}.up_proj.weight"), f"{ours}.layer_1.weight",
            lambda t: torch.cat(t), lambda t: list(t.chunk(2)),
        ),
        Tensors((f"{hf_prefix}.down_proj.weight",), f"{ours}.layer_2.weight"),
    ]


def fused_experts(prefix: str = "experts") -> list[Tensors]:
    """HF fused experts: gate_up_proj [E, 2I, H] (gate rows first) and down_proj [E, H, I], our layout as is."""
    return [Tensors((f"{prefix}.gate_up_proj",), "experts.layer_1.weight"), Tensors((f"{prefix}.down_proj",), "experts.layer_2.weight")]


def import_moe_block(
    hf_block: Any, hf_config: Any, *, implementation: str | None = None, layer: int | None = None, moe_only: bool = False, ep_mesh=None
):
    """Our MoE layer with the weights of an HF MoE block (same device and dtype), built from `hf_config`.

    `hf_block` is the family's MoE block (MixtralSparseMoeBlock, Qwen2MoeSparseMoeBlock, Qwen3MoeSparseMoeBlock,
    OlmoeSparseMoeBlock, DeepseekV3MoE, GptOssMLP) or, for Gemma-4, the decoder layer (Gemma4TextDecoderLayer or
    any module with its `router`, `experts`, `pre_feedforward_layernorm_2` and `post_feedforward_layernorm_2`).
    `hf_config` is the model's config (transformers object or dict). `implementation` overrides ours (looped,
    dropless, ...). The layer returns a tensor, also where the HF block returns a tuple.
    Gemma-4: the decoder layer's whole feed-forward (mlp, its four norms, router and experts) becomes a
    `HybridMoEMLP` of decoder `layer` (default 0: Gemma-4's dense width depends on the layer); `moe_only` imports
    the MoE branch alone, as `convert --moe-only`.
    An expert-parallel layer is not built here: see `hf_state_dict`.
    """
    import torch

    if ep_mesh is not None:
        raise ValueError(EXPERT_PARALLEL_IMPORT)
    config, hidden_size, ours = hf_state_dict(hf_block, hf_config, implementation=implementation, layer=layer, moe_only=moe_only)
    reference = ours[_bulk_name(config)]  # the bulk of the weights: the layer's device and dtype
    built = config.build(hidden_size, device=reference.device, dtype=reference.dtype)
    parameters = dict(built.named_parameters())
    for name, tensor in ours.items():
        if name in parameters:  # a parameter keeps the HF tensor's dtype (DeepSeek-V3 keeps gate.weight in float32)
            parameters[name].data = parameters[name].data.to(tensor.dtype)
    with torch.no_grad():
        built.load_state_dict(ours, strict=True)
    return built.train(getattr(hf_block, "training", False))


EXPERT_PARALLEL_IMPORT = (
    "an expert-parallel layer (ep_mesh) loads HF weights as a full state dict: config, hidden_size, state = "
    "hf_state_dict(hf_block, hf_config); layer = config.build(hidden_size, ep_mesh=mesh); "
    "set_model_state_dict(layer, state, options=StateDictOptions(full_state_dict=True)) "
    "(torch.distributed.checkpoint.state_dict)"
)


def _bulk_name(config) -> str:
    return "routed.experts.layer_1.weight" if isinstance(config, HybridMoEMLPConfig) else "experts.layer_1.weight"


def hf_state_dict(
    hf_block: Any, hf_config: Any, *, implementation: str | None = None, layer: int | None = None, moe_only: bool = False
) -> tuple[Any, int, dict]:
    """`(config, hidden_size, state)`: our layer's full state dict from an HF block's tensors, without building the layer.

    `hf_block` is an HF block (as for `import_moe_block`) or its state dict (a mapping of the block's tensor names,
    e.g. read from a checkpoint). Names, shapes and completeness are checked against a build on the meta device;
    parameters keep the HF tensors' dtypes, buffers take ours. Load it into any layer of `config`, expert-parallel
    ones included: `set_model_state_dict(layer, state, options=StateDictOptions(full_state_dict=True))`.
    """
    import torch

    from fastmoe_cfg.hf.families import family_of
    from fastmoe_cfg.hf.mapping import _ranges

    conversion = convert(hf_config, layer, moe_only=moe_only)
    if not conversion.moe_layers:
        raise ValueError(f"{conversion.family}: the model has no MoE layer to import")
    if not conversion.is_moe:
        raise ValueError(
            f"{conversion.family}: decoder layer {conversion.layer} has a dense MLP, not an MoE block; "
            f"its MoE layers are {_ranges(conversion.moe_layers)} (pass one of them as layer=)"
        )
    family = family_of(conversion.family)
    config = conversion.config
    if implementation is not None:
        if isinstance(config, HybridMoEMLPConfig):
            config = type(config).from_dict({**conversion.data, "routed": {**conversion.data["routed"], "implementation": implementation}})
        else:
            config = type(config).from_dict({**conversion.data, "implementation": implementation})
    hybrid = isinstance(config, HybridMoEMLPConfig)
    hf_state = family.state(hf_block, hybrid=hybrid)
    what = "state dict" if isinstance(hf_block, dict) else type(hf_block).__name__
    tensors = family.tensors(config)
    missing = [name for entry in tensors for name in entry.hf if name not in hf_state]
    if missing:
        raise ValueError(f"{what} is not a {conversion.family} MoE block: it has no {', '.join(missing)}")
    unknown = sorted(set(hf_state) - {name for entry in tensors for name in entry.hf})
    if unknown:  # never dropped silently: a tensor we do not map would change the block's function
        raise ValueError(f"{what} has tensors a {conversion.family} MoE layer does not have: {', '.join(unknown)}")
    meta = config.build(conversion.hidden_size, device="meta")
    expected, parameters = meta.state_dict(), {name for name, _ in meta.named_parameters()}
    ours = {}  # the buffers HF does not have (aux_free's update step and load average) take their initial values
    for prefix, module in meta.named_modules():
        if hasattr(module, "initial_buffers"):
            for name, value in module.initial_buffers(device="cpu").items():
                key = f"{prefix}.{name}" if prefix else name
                if key in expected:  # persistent buffers only (pending_load is not saved)
                    ours[key] = value
    for entry in tensors:
        name, tensor = entry.ours, entry.join([hf_state[hf_name] for hf_name in entry.hf])
        if tensor.shape != expected[name].shape:
            raise ValueError(
                f"{what}: {' + '.join(entry.hf)} has shape {tuple(tensor.shape)}, "
                f"{name} needs {tuple(expected[name].shape)} (does hf_config describe this block?)"
            )
        ours[name] = tensor if name in parameters else tensor.to(expected[name].dtype)  # a buffer keeps ours (float32 bias)
    with torch.no_grad():
        return config, conversion.hidden_size, {name: tensor.detach().clone() for name, tensor in ours.items()}


TRAINING_STATE = ("bias_update_step", "router_load_ema")  # our aux_free training state, which HF blocks do not have


def export_state_dict(layer: Any, family: str) -> dict:
    """Our layer's weights in the HF block's state-dict layout and names (for Gemma-4: the MoE tensors of
    the decoder layer). `family` is the HF model_type (`convert`'s `Conversion.family`; a multimodal wrapper's
    model_type, gemma4, is accepted for its text model's)."""
    from fastmoe_cfg.hf.families import families, wrappers

    known = families()
    if family in wrappers():  # the family that declares the wrapper (kimi_k25's text model is kimi_k2, not kimi_k25_text)
        family = next(entry.name for entry in known.values() if family in (entry.wrappers or {}))
    if family not in known:
        raise ValueError(f"unknown family {family!r}: one of {', '.join(sorted(known))}")
    state = layer.state_dict()
    if any(hasattr(tensor, "device_mesh") for tensor in state.values()):
        raise ValueError(
            "an expert-parallel layer (ep_mesh) holds only its experts: gather them first, on every rank, with "
            "get_model_state_dict(layer, options=StateDictOptions(full_state_dict=True)) (torch.distributed.checkpoint.state_dict), "
            "then export a layer built without ep_mesh that loads it"
        )
    tensors = known[family].tensors(layer.config)
    missing = [entry.ours for entry in tensors if entry.ours not in state]
    extra = sorted(name for name in set(state) - {entry.ours for entry in tensors} if name.rpartition(".")[2] not in TRAINING_STATE)
    if missing or extra:
        raise ValueError(
            f"this layer does not have the {family} layout: "
            + "; ".join(part for part in (f"missing {', '.join(missing)}" if missing else "", f"no HF place for {', '.join(extra)}" if extra else "") if part)
        )
    exported = {}
    for entry in tensors:
        for name, tensor in zip(entry.hf, entry.split(state[entry.ours])):
            exported[name] = tensor.detach().contiguous()
    return exported
