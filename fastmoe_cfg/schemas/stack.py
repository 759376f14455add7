"""`type: stack`: a whole model's MLP blocks, one per layer, and which layers are MoE.

    type: stack
    layers: 61
    mlp: {type: moe, ...}          # the block of the MoE layers (the default block)
    dense_mlp: {type: mlp, ...}    # the block of the dense layers
    first_dense: 3                 # layers 0-2 dense (DeepSeek first_k_dense_replace)
    moe_every: 1                   # layer i is MoE when i >= first_dense and (i + 1) % moe_every == 0
    # or: moe_layers: [3, 4, ...]  # an explicit list (Qwen's mlp_only_layers is its complement)
    overrides:                     # per-layer changes, applied last
      - {layers: "10-20", set: {experts_per_token: 4}}

`load_config` returns a `StackConfig` for such a file. A problem in a layer's block names
the layers (`layers 10-20: experts_per_token: ...`) and points at the value that made it.
No torch here: `build()` imports the layers lazily.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import PrivateAttr, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from fastmoe_cfg.config.base import Config, Rule, field
from fastmoe_cfg.config.errors import Path, Problem, describe, format_path
from fastmoe_cfg.config.migrations import Versions, register_versions
from fastmoe_cfg.config.translate import RULE_ERROR, problems_from_validation_error
from fastmoe_cfg.schemas.mlp import FORMAT_VERSION, MLPBaseConfig, MLPConfig
from fastmoe_cfg.schemas.versions import CHANGES, MLP_VERSIONS

__all__ = ["LayerOverrideConfig", "StackConfig", "StackCounts", "format_layers", "parse_layers", "root_class"]

MAX_LAYERS = 100_000  # far above any model (DeepSeek-V3: 61); bounds the per-layer work of validation

_RANGE = re.compile(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?")


def parse_layers(text: Any, layers: int) -> tuple[int, ...]:
    """`"10-20"` (inclusive), `"3"`, `"1, 4-6"` or an integer -> sorted layer indices; ValueError says what is wrong."""
    if type(text) is int:
        parts = [str(text)]
    else:
        parts = str(text).split(",")
    found: set[int] = set()
    for part in parts:
        match = _RANGE.fullmatch(part)
        if match is None:
            raise ValueError(f"expected layer numbers and ranges like \"10-20\" or \"1, 4-6\", got {part.strip()!r}")
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        if last < first:
            raise ValueError(f"the range {first}-{last} is empty (write it first-last, first <= last)")
        if last >= layers:
            raise ValueError(f"layer {last} is outside the stack's layers 0-{layers - 1}")
        found.update(range(first, last + 1))
    return tuple(sorted(found))


def format_layers(indices: Any) -> str:
    """`(0, 1, 2, 5, 7, 8)` -> `"0-2, 5, 7-8"`; every other layer, `(1, 3, 5, 7, 9)` -> `"1, 3, ..., 9"` (display only)."""
    indices = sorted(indices)
    steps = {later - earlier for earlier, later in zip(indices, indices[1:])}
    if len(indices) >= 4 and len(steps) == 1 and steps != {1}:
        return f"{indices[0]}, {indices[1]}, ..., {indices[-1]}"
    runs: list[str] = []
    start = previous = None
    for index in [*indices, None]:
        if start is not None and (index is None or index != previous + 1):
            runs.append(str(start) if start == previous else f"{start}-{previous}")
            start = None
        if index is not None and start is None:
            start = index
        previous = index
    return ", ".join(runs)


class LayerOverrideConfig(Config):
    """Changes to the blocks of some layers of a stack, applied after the stack chose each layer's block."""

    layers: int | str = field(
        ..., tier="architecture", desc='The layers it changes: "10-20" (inclusive), "3", "1, 4-6", or one integer.'
    )
    set: dict[str, Any] = field(
        ..., tier="architecture",
        desc="Fields of those layers' blocks. Merged as extends merges: nested mappings merge, a mapping whose type changes replaces.",
    )

    @field_validator("layers", mode="wrap")
    @classmethod
    def _one_message(cls, value: Any, handler: Any) -> Any:
        """One problem for a value that is neither (not one per member of `int | str`)."""
        try:
            return handler(value)
        except ValidationError:
            message = f'expected a layer number or a string of layers like "10-20" or "1, 4-6", got {describe(value)}'
            raise PydanticCustomError(RULE_ERROR, "{message}", {"message": message, "fields": ["layers"]}) from None


def _resolve_blocks(values: dict[str, Any]) -> tuple[tuple[MLPBaseConfig, ...], list[InitErrorDetails]]:
    """(one block per layer, problems): mlp or dense_mlp by the layer choice, then the overrides in order."""
    layers, overrides = values["layers"], values["overrides"]
    moe = set(_moe_indices(layers, values["first_dense"], values["moe_every"], values["moe_layers"]))
    errors: list[InitErrorDetails] = []
    chosen: list[tuple[str, tuple[int, ...]]] = [("mlp" if index in moe else "dense_mlp", ()) for index in range(layers)]
    for number, override in enumerate(overrides):
        try:
            indices = parse_layers(override.layers, layers)
        except ValueError as exc:
            errors.append(_error(("overrides", number, "layers"), str(exc)))
            continue
        for index in indices:
            chosen[index] = (chosen[index][0], (*chosen[index][1], number))
    made: dict[tuple[str, tuple[int, ...]], Any] = {}
    checked: dict[str, MLPBaseConfig | ValidationError] = {}  # by the merged data: one validation per distinct block
    used: set[tuple[int, Path]] = set()
    for key in dict.fromkeys(chosen):
        block_name, numbers = key
        base = values.get(block_name)
        if not numbers:
            made[key] = base
            continue
        data = base.to_dict() if base is not None else {}
        for number in numbers:
            data = _merge(data, overrides[number].set)
        for number in numbers:  # which of each override's values reach this block
            used.update((number, leaf) for leaf, value in _leaves(overrides[number].set) if _get(data, leaf, _MISSING) == value)
        text = repr(data)  # YAML data: its repr tells 1, 1.0 and true apart, as validation does
        if text not in checked:
            try:
                checked[text] = MLPBaseConfig.model_validate(data)
            except ValidationError as exc:
                checked[text] = exc
        result = checked[text]
        if isinstance(result, ValidationError):
            which = format_layers(index for index, other in enumerate(chosen) if other == key)
            errors += _layer_errors(result, which, block_name, [(number, overrides[number].set) for number in numbers])
        else:
            made[key] = result
    applied = {number for _, numbers in chosen for number in numbers}
    for number in sorted(applied):
        for leaf, _ in _leaves(overrides[number].set):
            if (number, leaf) not in used:  # chz's rule: a value that nothing consumes is an error, not a silent drop
                message = "no effect: a later override replaces it on every layer this one names (remove one of them)"
                errors.append(_error(("overrides", number, "set", *leaf), message))
    if errors:
        return (), errors
    return tuple(made[key] for key in chosen), errors


_MISSING = object()


def _block_versions(values: dict[str, Any]) -> list[InitErrorDetails]:
    """A block's format_version other than the stack's would be silently ignored (the stack's version decides
    which changes are applied to its blocks): a problem at that value."""
    version = values.get("format_version") or 1
    if type(version) is not int:
        return []
    errors: list[InitErrorDetails] = []
    for name in ("mlp", "dense_mlp"):
        block = values.get(name)
        written = getattr(block, "format_version", None)
        if written is not None and written != version:
            message = (
                f"{written} is not the stack's version ({version}), in which its blocks are read: "
                "give format_version once, at the root of the stack"
            )
            errors.append(_error((name, "format_version"), message))
    for number, override in enumerate(values.get("overrides") or ()):
        if isinstance(getattr(override, "set", None), dict) and "format_version" in override.set:
            message = "a layer has the stack's version: give format_version once, at the root of the stack"
            errors.append(_error(("overrides", number, "set", "format_version"), message))
    return errors


def _leaves(values: dict[str, Any], prefix: Path = ()) -> list[tuple[Path, Any]]:
    """(path, value) of every value an override writes; an empty mapping or a `type` change counts as one value."""
    found: list[tuple[Path, Any]] = []
    for key, value in values.items():
        if isinstance(value, dict) and value and "type" not in value:
            found += _leaves(value, (*prefix, key))
        else:
            found.append(((*prefix, key), value))
    return found


def _get(data: Any, path: Path, default: Any) -> Any:
    for part in path:
        if not isinstance(data, dict) or part not in data:
            return default
        data = data[part]
    return data


def _moe_indices(layers: int, first_dense: int, moe_every: int, moe_layers: list[int] | None) -> tuple[int, ...]:
    if moe_layers is not None:
        return tuple(sorted(set(index for index in moe_layers if 0 <= index < layers)))
    return tuple(index for index in range(layers) if index >= first_dense and (index + 1) % moe_every == 0)


def _dense_needed(layers: int, first_dense: int, moe_every: int, moe_layers: list[int] | None, dense_mlp: Any) -> bool:
    return dense_mlp is not None or len(_moe_indices(layers, first_dense, moe_every, moe_layers)) == layers


class StackConfig(Config):
    """A whole model's MLP blocks, one per layer: the MoE block, the dense block, which layers get which, and per-layer changes."""

    __rules__ = (
        Rule(
            fields=("first_dense", "layers"),
            check=lambda first_dense, layers: first_dense <= layers,
            message=lambda first_dense, layers: f"must be <= layers ({first_dense} > {layers})",
            doc="first_dense <= layers.",
        ),
        Rule(
            fields=("moe_layers", "layers"),
            check=lambda moe_layers, layers: moe_layers is None or all(0 <= index < layers for index in moe_layers),
            message=lambda moe_layers, layers: (
                f"layer {next(index for index in moe_layers if not 0 <= index < layers)} is outside the stack's layers 0-{layers - 1}"
            ),
            doc="moe_layers lists layers of the stack: 0 <= layer < layers.",
        ),
        Rule(
            fields=("moe_layers",),
            check=lambda moe_layers: moe_layers is None or len(set(moe_layers)) == len(moe_layers),
            message=lambda moe_layers: f"layer {next(i for i in moe_layers if moe_layers.count(i) > 1)} is listed twice",
            doc="moe_layers lists each layer once.",
        ),
        Rule(
            fields=("moe_layers", "first_dense", "moe_every"),
            check=lambda moe_layers, first_dense, moe_every: moe_layers is None or (first_dense == 0 and moe_every == 1),
            message=lambda moe_layers, first_dense, moe_every: (
                "an explicit list of MoE layers: first_dense and moe_every do not apply (remove them, or remove moe_layers)"
            ),
            doc="moe_layers replaces first_dense and moe_every: give one or the other.",
        ),
        Rule(
            fields=("dense_mlp", "first_dense", "moe_every", "moe_layers", "layers"),
            check=lambda dense_mlp, first_dense, moe_every, moe_layers, layers: (
                dense_mlp is None or len(_moe_indices(layers, first_dense, moe_every, moe_layers)) < layers
            ),
            message=lambda dense_mlp, first_dense, moe_every, moe_layers, layers: (
                "no layer is dense, so no layer uses it (remove it, or make layers dense with first_dense, moe_every or moe_layers)"
            ),
            doc="dense_mlp is given only when some layer is dense.",
        ),
        Rule(
            fields=("mlp", "first_dense", "moe_every", "moe_layers", "layers"),
            check=lambda mlp, first_dense, moe_every, moe_layers, layers: bool(_moe_indices(layers, first_dense, moe_every, moe_layers)),
            message=lambda mlp, first_dense, moe_every, moe_layers, layers: (
                "no layer is MoE, so no layer uses it (for a dense model, give the dense block as mlp, without dense_mlp "
                "and first_dense)"
            ),
            doc="Some layer uses mlp: at least one layer is MoE.",
        ),
        Rule(
            fields=("first_dense", "moe_every", "moe_layers", "layers", "dense_mlp"),
            check=lambda first_dense, moe_every, moe_layers, layers, dense_mlp: _dense_needed(layers, first_dense, moe_every, moe_layers, dense_mlp),
            message=lambda first_dense, moe_every, moe_layers, layers, dense_mlp: (
                f"layers {format_layers(set(range(layers)) - set(_moe_indices(layers, first_dense, moe_every, moe_layers)))} "
                "are dense: give their block as dense_mlp (e.g. dense_mlp: {type: mlp, intermediate_size: ...})"
            ),
            doc="A stack with dense layers gives their block as dense_mlp.",
        ),
    )

    type: Literal["stack"] = field("stack", tier="core", desc="stack: a whole model's MLP blocks, one per layer.")
    format_version: int | None = field(
        None, tier="core", ge=1, le=FORMAT_VERSION,
        desc=f"Version of this config format (current {FORMAT_VERSION}; a file without it is version 1).",
    )
    layers: int = field(..., tier="architecture", ge=1, le=MAX_LAYERS, desc="Number of layers (transformer blocks) of the model.")
    mlp: MLPBaseConfig = field(..., tier="architecture", desc="The block of the MoE layers, and of every layer when none is dense.")
    dense_mlp: MLPBaseConfig | None = field(
        None, tier="architecture", desc="The block of the dense layers (those that are not MoE). Needed when some layer is dense."
    )
    first_dense: int = field(
        0, tier="architecture", ge=0, desc="Layers 0 to first_dense - 1 are dense (DeepSeek-V3 first_k_dense_replace)."
    )
    moe_every: int = field(
        1, tier="architecture", ge=1,
        desc="Layer i is MoE when i >= first_dense and (i + 1) % moe_every == 0 (Qwen decoder_sparse_step, KempnerForge moe_frequency, Llama-4 interleave_moe_layer_step).",
    )
    moe_layers: list[int] | None = field(
        None, tier="architecture", desc="The MoE layers as an explicit list, instead of first_dense and moe_every (Qwen's mlp_only_layers is its complement)."
    )
    overrides: list[LayerOverrideConfig] = field(
        default_factory=list, tier="architecture", desc="Per-layer changes to the blocks, applied in order, after the MoE and dense layers are chosen."
    )

    _blocks: tuple[MLPBaseConfig, ...] = PrivateAttr(default=())

    @model_validator(mode="after")
    def _layer_blocks(self) -> StackConfig:
        """Each layer's block (its problems were reported by `_rule_errors`, with the other rules')."""
        blocks, errors = _resolve_blocks(dict(self.iter_fields()))
        if errors:  # not reached: `_rule_errors` reported them
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        self._blocks = blocks
        return self

    @classmethod
    def _rule_errors(cls, values: dict[str, Any]) -> list[InitErrorDetails]:
        """The declared rules, then each layer's block: mlp or dense_mlp, then the overrides that name it;
        a problem of a block names its layers, at the override value that made it."""
        errors = super()._rule_errors(values)
        errors += _block_versions(values)
        if all(name in values for name in ("layers", "mlp", "first_dense", "moe_every", "moe_layers", "overrides")):
            errors += _resolve_blocks(values)[1]
        return errors

    # ------------------------------------------------------------------- queries
    def moe_layer_indices(self) -> tuple[int, ...]:
        """The layers that get `mlp` (before overrides)."""
        return _moe_indices(self.layers, self.first_dense, self.moe_every, self.moe_layers)

    def blocks(self) -> tuple[MLPBaseConfig, ...]:
        """One block per layer, overrides applied (equal layers share one config object)."""
        return self._blocks

    def block(self, layer: int) -> MLPBaseConfig:
        return self._blocks[layer]

    def layer_kinds(self) -> str:
        """One letter per layer: D for a dense block (type mlp), M for any other (MoE)."""
        return "".join("D" if isinstance(block, MLPConfig) else "M" for block in self._blocks)

    def groups(self) -> list[tuple[str, MLPBaseConfig, tuple[int, ...]]]:
        """(name, block, layers) for each distinct block, in order of first layer: name is mlp, dense_mlp, or
        `mlp + overrides[0]` when overrides changed it."""
        found: dict[int, tuple[str, MLPBaseConfig, list[int]]] = {}
        moe = set(self.moe_layer_indices())
        for index, block in enumerate(self._blocks):
            entry = found.get(id(block))
            if entry is None:
                base = "mlp" if index in moe else "dense_mlp"
                numbers = [number for number, override in enumerate(self.overrides) if index in parse_layers(override.layers, self.layers)]
                name = base + "".join(f" + overrides[{number}]" for number in numbers)
                found[id(block)] = (name, block, [index])
            else:
                entry[2].append(index)
        return [(name, block, tuple(indices)) for name, block, indices in found.values()]

    def counts(self, hidden_size: int, dtype: str = "bf16") -> StackCounts:
        """The whole model's MLP parameters (total, active per token) and FLOPs per token, the sum of the layers' `count_layer`."""
        from fastmoe_cfg.schemas.counts import count_layer

        per_group = [(name, indices, count_layer(block, hidden_size, dtype)) for name, block, indices in self.groups()]
        return StackCounts(
            hidden_size=hidden_size,
            layers=self.layers,
            moe_layers=self.layer_kinds().count("M"),
            total_parameters=sum(len(indices) * counts.total_parameters for _, indices, counts in per_group),
            active_parameters=sum(len(indices) * counts.active_parameters for _, indices, counts in per_group),
            flops_per_token=sum(len(indices) * counts.flops_per_token for _, indices, counts in per_group),
            dtype=dtype,
            groups=tuple((name, format_layers(indices), counts) for name, indices, counts in per_group),
        )

    def build(self, hidden_size: int, *, device=None, dtype=None):
        """An `nn.ModuleList` of the layers' blocks (torch imported here: configs never need it)."""
        try:
            from fastmoe_cfg.layers.stack import build_stack
        except ModuleNotFoundError as exc:
            if exc.name != "torch" and not (exc.name or "").startswith("torch."):
                raise
            raise ModuleNotFoundError(
                "building a stack needs torch, which is not installed; install it with: pip install 'fastmoe_cfg[torch]'",
                name=exc.name,
            ) from None
        return build_stack(self, hidden_size, device=device, dtype=dtype)


@dataclass(frozen=True)
class StackCounts:
    hidden_size: int
    layers: int
    moe_layers: int
    total_parameters: int
    active_parameters: int
    flops_per_token: int
    dtype: str
    groups: tuple[tuple[str, str, Any], ...]  # (block name, layers, LayerCounts of one layer)

    def to_json(self) -> dict[str, Any]:
        return {
            "hidden_size": self.hidden_size,
            "layers": self.layers,
            "moe_layers": self.moe_layers,
            "total_parameters": self.total_parameters,
            "active_parameters": self.active_parameters,
            "flops_per_token": self.flops_per_token,
            "dtype": self.dtype,
            "blocks": [{"block": name, "layers": layers, "per_layer": counts.to_json()} for name, layers, counts in self.groups],
        }


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` merged onto `base`: mappings merge, scalars and lists replace, a mapping whose type changes replaces."""
    if "type" in over and base.get("type") != over.get("type"):
        return dict(over)
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _error(loc: Path, message: str, **context: Any) -> InitErrorDetails:
    ctx = {"message": message, "fields": [loc[-1]], **context}
    return InitErrorDetails(type=PydanticCustomError(RULE_ERROR, "{message}", ctx), loc=loc, input=None)


class _PathLocator:
    """Records the path of each problem (problems_from_validation_error gives them in order)."""

    def __init__(self) -> None:
        self.paths: list[Path] = []

    def problem(self, path: Path, kind: str, **fields: Any) -> Problem:
        self.paths.append(path)
        return Problem(path=format_path(path), **fields)

    def origin(self, path: Path) -> str | None:
        return None

    def is_reported(self, path: Path) -> bool:
        return False


def _layer_errors(exc: ValidationError, layers: str, block_name: str, overrides: list[tuple[int, dict[str, Any]]]) -> list[InitErrorDetails]:
    """The errors of a layer block made by overrides, each at the override value that wrote it (else the block)."""
    locator = _PathLocator()
    problems = problems_from_validation_error(exc, MLPBaseConfig, locator)
    errors = []
    for problem, path in zip(problems, locator.paths):
        loc: Path = (block_name, *path)
        for number, values in reversed(overrides):
            written = written_prefix(values, path)
            if written is not None:
                loc = ("overrides", number, "set", *written)
                break
        else:
            if overrides:
                loc = ("overrides", overrides[-1][0], "set")
        errors.append(_error(loc, problem.message, layers=layers, path=problem.path, suggestion=problem.suggestion))
    return errors


def written_prefix(values: dict[str, Any], path: Path) -> Path | None:
    """The longest prefix of `path` that the mapping `values` writes (None: it writes none of it)."""
    node: Any = values
    written: list[Any] = []
    for part in path:
        if not isinstance(node, dict) or part not in node:
            break
        written.append(part)
        node = node[part]
    return tuple(written) if written else None


def root_class(data: Any) -> type[Config]:
    """The root class of a document: `StackConfig` for `type: stack`, else `MLPBaseConfig` (a block)."""
    if isinstance(data, dict) and data.get("type") == StackConfig.model_fields["type"].default:
        return StackConfig
    return MLPBaseConfig


STACK_VERSIONS = Versions(
    current=FORMAT_VERSION,
    changes=CHANGES,
    blocks=lambda data: [(name,) for name in ("mlp", "dense_mlp") if isinstance(data, dict) and isinstance(data.get(name), dict)],
)
register_versions(MLPBaseConfig, MLP_VERSIONS)
register_versions(StackConfig, STACK_VERSIONS)


def _register_documents() -> None:
    from fastmoe_cfg.config.extends import EXTENDS, EXTENDS_ENTRY_SCHEMA, EXTENDS_SCHEMA
    from fastmoe_cfg.config.schema import register_root, register_root_key

    register_root(MLPBaseConfig, StackConfig)
    register_root_key(EXTENDS, EXTENDS_SCHEMA, {"ExtendsEntry": EXTENDS_ENTRY_SCHEMA})


_register_documents()
