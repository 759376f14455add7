"""The Hugging Face fields a family reads, as small strict pydantic models. No torch.

Each family declares the `config.json` fields that change the math of its MLP block as a subclass of
`HFFields`: the field's name is the HF name, `hf_field(..., aliases=)` adds transformers' other names
(attribute_map), a default is transformers' class default (absent or null means the default), and a field
without one is required. `read_fields` validates the data and turns pydantic's errors into located
`Problem`s through the same translation as our own configs, so an HF-side mistake reads like any other.
"""

from __future__ import annotations

import math
import sys
from typing import Annotated, Any

from pydantic import AfterValidator, AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError, PydanticUndefined

from fastmoe_cfg.config.errors import Problem, describe, did_you_mean, format_path, shorten
from fastmoe_cfg.config.source import Source
from fastmoe_cfg.config.translate import problem_from_error

MAX_LAYERS = 100_000  # a bound for num_hidden_layers: the layer lists are built in memory

# HF `hidden_act` -> our activation. gelu_new and gelu_pytorch_tanh are both the tanh approximation.
ACTIVATIONS = {
    "silu": "silu",
    "swish": "silu",
    "gelu_pytorch_tanh": "gelu",
    "gelu_new": "gelu",
    "gelu": "gelu_exact",
    "relu": "relu",
}


def _number(value: Any) -> float:
    """A JSON number (an integer too) that fits a float; never a boolean or a string."""
    if type(value) is float and math.isfinite(value) or type(value) is int and abs(value) <= sys.float_info.max:
        return float(value)
    raise PydanticCustomError("float_type", "expected a number")


def _activation(value: str) -> str:
    if value not in ACTIVATIONS:
        raise PydanticCustomError(
            "hf_activation", "activation {name} has no equivalent here (supported: {supported})",
            {"name": shorten(repr(value)), "supported": ", ".join(ACTIVATIONS), "suggestion": did_you_mean(value, ACTIVATIONS)},
        )
    return ACTIVATIONS[value]


Number = Annotated[float, BeforeValidator(_number)]
Activation = Annotated[str, AfterValidator(_activation)]  # read as our activation name


def hf_field(default: Any = PydanticUndefined, *, names: tuple[str, ...] = (), **bounds: Any) -> Any:
    """An HF field: `default` is transformers' (required without one); `names` all its HF names, its own first
    (transformers' attribute_map: `("num_local_experts", "num_experts")`); `bounds` ge, le, ..."""
    if names:
        return Field(default, validation_alias=AliasChoices(*names), **bounds)
    return Field(default, **bounds)


class HFFields(BaseModel):
    """The fields every family reads; subclasses add their own. Names are HF's."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True, allow_inf_nan=False, validate_default=True)

    model_type: str | None = None  # the registry reads it (a multimodal wrapper's text_config may lack it: the wrapper names it)
    hidden_size: int = Field(ge=1)
    num_hidden_layers: int = Field(ge=1, le=MAX_LAYERS)
    torch_dtype: str | None = hf_field(None, names=("torch_dtype", "dtype"))
    quantization_config: dict | None = None

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        for name in cls.model_fields:
            names = cls.names(name)
            if names[0] != name:
                raise TypeError(f"{cls.__name__}.{name}: hf_field(names=...) must start with the field's own name, got {names}")

    @classmethod
    def names(cls, name: str) -> tuple[str, ...]:
        """The HF names of field `name`: its own, then its aliases."""
        alias = cls.model_fields[name].validation_alias
        return tuple(alias.choices) if isinstance(alias, AliasChoices) else (name,)

    @classmethod
    def hf_names(cls) -> set[str]:
        return {hf_name for name in cls.model_fields for hf_name in cls.names(name)}

    def given(self, name: str) -> bool:
        """Whether the config.json set field `name` (else it holds transformers' default)."""
        return name in self.model_fields_set


_KINDS = {int: "an integer", float: "a number", bool: "a boolean", str: "a string", list: "a list", dict: "a mapping"}


def _expected(cls: type[HFFields], name: str) -> str:
    annotation = cls.model_fields[name].annotation
    for kind, text in _KINDS.items():
        if annotation is kind or getattr(annotation, "__origin__", None) is kind or kind in getattr(annotation, "__args__", ()):
            return text
    return "a value"


def read_fields(cls: type[HFFields], source: Source, model_type: str) -> tuple[HFFields | None, list[Problem]]:
    """The family's fields of `source.data` (null values count as absent), or None and the located problems.

    Two names of one field that disagree are a problem; so is a misspelt field (a key of the file that is
    no field's name, close to a required field's name that is absent, or to an optional one's)."""
    data = {key: value for key, value in source.data.items() if value is not None and not source.is_reported((key,))}
    problems: list[Problem] = []
    for name in cls.model_fields:
        present = [hf_name for hf_name in cls.names(name) if hf_name in data]
        for other in present[1:]:
            if data[other] != data[present[0]]:
                message = f"disagrees with {present[0]} ({data[other]!r} != {data[present[0]]!r}): which one the model uses is unclear"
                problems.append(source.problem((other,), "value", message=message))
                del data[other]
    known = cls.hf_names()
    unknown = [key for key in data if isinstance(key, str) and key not in known]
    required = [name for name in cls.model_fields if cls.model_fields[name].is_required() and not any(n in data for n in cls.names(name))]
    optional = [name for name in cls.model_fields if name not in required and not any(n in data for n in cls.names(name))]
    misspelt: dict[str, str] = {}  # a key of the file -> the absent field it misspells
    for key in unknown:
        suggestion = did_you_mean(key, required) or next((name for name in optional if _typo(key, name)), None)
        if suggestion is not None and suggestion not in misspelt.values():
            misspelt[key] = suggestion
            kind = "a required field" if suggestion in required else "a field"
            message = f"unknown field: {kind} of this {model_type} config is {suggestion}, which is absent"
            problems.append(source.problem((key,), "key", message=message, suggestion=suggestion))
    try:
        fields = cls.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            name = error["loc"][0] if error["loc"] else None
            if error["type"] == "missing" and len(error["loc"]) == 1 and isinstance(name, str) and name in cls.model_fields:
                if name in misspelt.values():
                    continue  # reported at the misspelt key
                problems.append(_missing(source, name, f"missing: expected {_expected(cls, name)}"))
                continue
            path = tuple(error["loc"])
            problem = problem_from_error(error, path, source)
            suggestion = (error.get("ctx") or {}).get("suggestion")
            if suggestion is not None:
                problem = Problem(problem.message, problem.path, problem.file, problem.line, problem.column, suggestion)
            problems.append(problem)
        return None, problems
    return (fields, problems) if not problems else (None, problems)


def _typo(word: str, name: str) -> bool:
    """Whether `word` is `name` with one or two letters wrong, missing, extra or swapped (and long enough to tell)."""
    if len(name) < 6 or abs(len(word) - len(name)) > 2:
        return False
    previous = list(range(len(name) + 1))
    for i, a in enumerate(word, 1):
        current = [i]
        for j, b in enumerate(name, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a != b)))
        previous = current
    return previous[-1] <= 2


def _missing(source: Source, name: str, message: str) -> Problem:
    """A problem about field `name`, absent from the document: named by its path, at the document."""
    problem = source.problem((), "value", message=message)
    return Problem(message, format_path(source.prefix + (name,)), problem.file, problem.line, problem.column)


def located(source: Source, name: str | None, message: str, suggestion: str | None = None) -> Problem:
    """A problem at HF field `name` when the document has it, else naming it at the document."""
    if name is not None and name in source.data:
        return source.problem((name,), "value", message=message, suggestion=suggestion)
    if name is None:
        return source.problem((), "value", message=message, suggestion=suggestion)
    problem = _missing(source, name, message)
    return Problem(problem.message, problem.path, problem.file, problem.line, problem.column, suggestion)


__all__ = ["ACTIVATIONS", "MAX_LAYERS", "Activation", "HFFields", "Number", "describe", "hf_field", "located", "read_fields"]
