"""`ConfigError`: every problem of a config at once, each with its location.

One line per problem, one template::

    moe.yaml:7:3: experts_per_token: must satisfy experts_per_token + shared_experts <= experts (3 + 0 > 2)
    moe.yaml:4:1: experts_per_tokn: unknown field (did you mean experts_per_token?)
    --set experts=abc: experts: expected an integer, got string 'abc'

Paths are YAML paths from the document root, never Python class names.
"""

from __future__ import annotations

import difflib
import math
import re
import unicodedata
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Sequence

Path = tuple[Any, ...]


@dataclass(frozen=True)
class Problem:
    """One problem: where it is, which field, what is wrong, and a suggestion if any."""

    message: str
    path: str = ""
    file: str | None = None
    line: int | None = None
    column: int | None = None
    suggestion: str | None = None
    override: str | None = None
    order: int = field(default=0, compare=False, repr=False)  # command-line position of an override
    layers: str | None = None  # in a stack: the layers whose block has the problem ("10-20")

    @property
    def where(self) -> str:
        if self.override is not None:
            return f"--set {self.override}"
        if self.file is not None and self.line is not None:
            return f"{self.file}:{self.line}:{self.column}"
        return self.file or ""

    def render(self) -> str:
        """One line: `where: path: message (did you mean suggestion?)`; control characters escaped."""
        parts = [part for part in (self.where, f"layers {self.layers}" if self.layers else "", self.path) if part]
        text = self.message if self.suggestion is None else f"{self.message} (did you mean {self.suggestion}?)"
        return _one_line(": ".join([*parts, text]))

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        del data["order"]
        if data["layers"] is None:
            del data["layers"]  # only stacks have it
        return data

    def sort_key(self) -> tuple[Any, ...]:
        return (self.override is not None, self.order, self.file or "", self.line or 0, self.column or 0)


class ConfigError(ValueError):
    """A config has problems; `problems` lists all of them, sorted by position."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems = sorted(problems, key=Problem.sort_key)
        super().__init__("\n".join(problem.render() for problem in self.problems))


class ConfigWarning(UserWarning):
    """Something a config means differently today (a version change), located like a problem.

    `problem` holds where and what; the config still loads. The CLI prints it as one line,
    `file:line:col: path: warning: message`.
    """

    def __init__(self, problem: Problem | str):
        # A warning rebuilt from its text (copied, unpickled: pytest-xdist sends warnings between processes) is a
        # problem with that message and no location.
        self.problem = problem if isinstance(problem, Problem) else Problem(str(problem))
        super().__init__(render_warning(problem) if isinstance(problem, Problem) else str(problem))

    def __reduce__(self):
        return (type(self), (self.problem,))


def render_warning(problem: Problem) -> str:
    parts = [part for part in (problem.where, f"layers {problem.layers}" if problem.layers else "", problem.path) if part]
    return _one_line(": ".join([*parts, "warning", problem.message]))


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


def format_path(path: Sequence[Any]) -> str:
    """`("layer_1", "bias", "enabled")` -> `layer_1.bias.enabled`; list items as `[i]`, odd keys quoted."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
            continue
        key = str(part)
        if not _PLAIN_KEY.fullmatch(key):
            key = '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'
        text += f".{key}" if text else key
    return text


def _one_line(text: str) -> str:
    return "".join(
        char if unicodedata.category(char) not in ("Cc", "Zl", "Zp") else f"\\x{ord(char):02x}" if ord(char) < 256 else f"\\u{ord(char):04x}"
        for char in text
    )


def did_you_mean(word: Any, candidates: Iterable[str]) -> str | None:
    """The candidate closest to `word` (a difference of case only first: `MoE` -> `moe`; then a unique
    abbreviation: `arch` -> `architecture`), or None."""
    if not isinstance(word, str):
        return None
    candidates = list(candidates)
    same = [candidate for candidate in candidates if isinstance(candidate, str) and candidate.lower() == word.lower()]
    if same:
        return same[0]
    prefixed = [candidate for candidate in candidates if isinstance(candidate, str) and len(word) >= 3 and candidate.startswith(word)]
    if len(prefixed) == 1:  # an abbreviation: arch -> architecture
        return prefixed[0]
    matches = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return matches[0] if matches else None


def describe(value: Any) -> str:
    """How a found value is named in a message: `string 'abc'`, `integer 3`, `a mapping`, ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"integer {format_number(value)}"
    if isinstance(value, float):
        return f"number {format_number(value)}"
    if isinstance(value, str):
        return f"string {shorten(repr(value))}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return type(value).__name__


_MAX_SHOWN = 60


def shorten(text: str) -> str:
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def format_number(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"{'-' if value < 0 else ''}<a {value.bit_length()}-bit integer>"
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
    return repr(value)
