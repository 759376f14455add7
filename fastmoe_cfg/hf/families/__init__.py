"""One module per Hugging Face architecture, as transformers keeps one model per file. No torch.

A module here defines `FAMILY`, a `Family`: the `model_type`s it reads (aliases of one architecture share
a module: Kimi-K2 is DeepSeek-V3), its HF fields as an `HFFields` model, the rule that says which decoder
layers are MoE, the mapping of the fields to our config data, and its tensor table for weight import and
export. `fastmoe_cfg.hf.mapping` and `fastmoe_cfg.hf.weights` hold what all families share. Adding a
family is one module here plus its test data (tests/hf/families/).
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from fastmoe_cfg.hf.fields import HFFields
    from fastmoe_cfg.hf.mapping import Context, Conversion
    from fastmoe_cfg.hf.weights import Tensors


@dataclass(frozen=True, eq=False)
class Family:
    """One architecture.

    Attributes:
        model_types: the `model_type`s of its text model's config; the first names the family.
        fields: the HF fields that change its MLP's math (`HFFields` subclass).
        moe_layers: the decoder layers with an MoE block, from the fields.
        convert: sets `Conversion.data` for `Conversion.layer` (dense or MoE) from the fields.
        tensors: our config -> the tensor table of its MoE block (import and export), torch imported inside.
        block: transformers' class of the MoE block (for messages and docs).
        wrappers: `model_type` of a multimodal config -> the key of its text model's config.
        moe_only: whether `convert(..., moe_only=True)` applies (a feed-forward of a dense MLP and an MoE block).
        hf_modules: transformers' modeling modules this family covers (for the support table).
        note: one line for the support table (what is converted, what HF does differently).
    """

    model_types: tuple[str, ...]
    fields: type[HFFields]
    moe_layers: Callable[[Any], tuple[int, ...]]
    convert: Callable[[Conversion, Any, Context], None]
    tensors: Callable[[Any], list[Tensors]]
    block: str
    wrappers: dict[str, str] | None = None
    moe_only: bool = False
    hf_modules: tuple[str, ...] = ()
    note: str = ""
    select_state: Callable[[Any, bool], dict] | None = None  # the block's tensors when not its whole state dict (Gemma-4)
    module: str = ""  # the module of this package that defines it (set by the registry)

    @property
    def name(self) -> str:
        return self.model_types[0]

    def state(self, hf_block: Any, *, hybrid: bool = False) -> dict:
        """The tensors of `hf_block` (a module, or a mapping of a checkpoint's tensors by the block's names)
        that the tensor table reads (`hybrid`: Gemma-4's whole feed-forward, not its MoE branch alone)."""
        if self.select_state is not None:
            return self.select_state(hf_block, hybrid)
        return dict(hf_block) if isinstance(hf_block, dict) else hf_block.state_dict()


@functools.cache
def families() -> dict[str, Family]:
    """Every family by each of its model types (the modules of this package, imported on first use)."""
    found: dict[str, Family] = {}
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name):
        if module.name.startswith("_"):
            continue
        family = replace(importlib.import_module(f"{__name__}.{module.name}").FAMILY, module=module.name)
        for model_type in family.model_types:
            if model_type in found:
                raise RuntimeError(f"model_type {model_type!r} is claimed by {found[model_type].name} and {family.name}")
            found[model_type] = family
    return found


def wrappers() -> dict[str, str]:
    """Multimodal `model_type` -> the key of its text model's config."""
    return {outer: key for family in families().values() for outer, key in (family.wrappers or {}).items()}


def family_of(model_type: str) -> Family | None:
    return families().get(model_type)
