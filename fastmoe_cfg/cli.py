"""The `fastmoe-cfg` command line. Thin: parse arguments, call the library, render.

Exit codes: 0 ok, 1 invalid config, 2 usage error. No Python traceback
reaches the user. Never imports torch. Problems go to standard error in text
mode, for every command; `--format json` puts its report on standard output.
"""

import copy
import os
import sys
import textwrap
import unicodedata
from pathlib import Path
from typing import Any, List, Optional

import typer

from fastmoe_cfg import __version__
from fastmoe_cfg.config.base import Tier
from fastmoe_cfg.config.errors import ConfigError, Problem, did_you_mean
from fastmoe_cfg.config.loader import parse_key
from fastmoe_cfg.config.overrides import OverrideSyntaxError, parse_override
from fastmoe_cfg.schemas import MLPBaseConfig

app = typer.Typer(
    name="fastmoe-cfg",
    help=(
        "Validate, explain and document mixture-of-experts MLP configs.\n\n"
        "Exit codes: 0 ok, 1 invalid config, 2 usage error. Every command prints the problems it finds on "
        "standard error (one line each: file:line:col: path: message); with --format json, the report goes "
        "to standard output instead."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)


JSON_FORMAT = 1  # version of the --format json report: {"format": 1, "files": [{"file", "valid", "problems"}]}
STDIN = "-"
STDIN_NAME = "<stdin>"


def _choice(choices: List[str]) -> Any:
    """A callback accepting one of `choices` (or a list of them); anything else is a usage error with a did-you-mean."""

    def check(value: Any) -> Any:
        for item in value if isinstance(value, list) else [] if value is None else [value]:
            if item not in choices:
                hint = did_you_mean(item, choices)
                raise typer.BadParameter(
                    f"{item!r} is not one of: {', '.join(choices)}" + (f" (did you mean {hint}?)" if hint else "")
                )
        return value

    return check


def _integer(minimum: int) -> Any:
    """A callback reading a decimal integer >= `minimum` (None stays None)."""

    def check(value: Optional[str]) -> Optional[int]:
        if value is None:
            return None
        try:
            number = int(value, 10)
        except ValueError:
            raise typer.BadParameter(f"{value!r} is not an integer") from None
        if number < minimum:
            raise typer.BadParameter(f"must be >= {minimum}, got {number}")
        return number

    return check


# Choices that come from the library, so that the CLI cannot drift from it.
FORMATS = ["text", "json"]
TIERS = [tier.value for tier in Tier]
# The keys of `schemas.counts.DTYPE_BYTES` (tests/test_cli.py checks it), written out so that commands other
# than `explain` do not import the counts (a class and its helpers) at start-up.
DTYPES = ["fp32", "bf16", "fp16", "fp8"]


def _check_overrides(values: Optional[List[str]]) -> List[str]:
    for value in values or []:
        try:
            parse_override(value)
        except OverrideSyntaxError as exc:
            raise typer.BadParameter(f"{value!r}: {exc}") from None
    return values or []


_FILE = typer.Argument(..., exists=True, dir_okay=False, readable=True, metavar="FILE", help="YAML config file.")
_SET = typer.Option(
    None, "--set", "-s", metavar="KEY=VALUE", callback=_check_overrides,
    help="Override a value (dotted KEY relative to --key; VALUE is YAML). Repeatable.",
)


def _check_key(value: Optional[str]) -> Optional[str]:
    try:
        parse_key(value)
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r}: {exc}") from None
    return value


_KEY = typer.Option(
    None, "--key", "-k", metavar="PATH", callback=_check_key, help="Dotted path of the MLP config inside the file, e.g. model.mlp."
)
_FORMAT = typer.Option(
    "text", "--format", "-f", metavar="text|json", callback=_choice(FORMATS),
    help='text for people; json for programs: {"format": 1, "files": [{"file", "valid", "problems"}]} on standard output.',
)


MAX_PRINTED = 100  # problems shown in text mode; --format json lists all of them
_FRAME_WIDTH = 100  # characters of a long YAML line shown around the caret


def _load_or_problems(path: Path, key: Optional[str], overrides: List[str], stdin: Optional[bytes] = None) -> tuple[Any, List[Problem]]:
    """The config, or the problems of the file (an unreadable file is one problem, not a crash).

    `stdin`: the bytes of standard input, when `path` is `-`.
    """
    loaded, problems = _load_document(path, key, overrides, stdin)
    return (loaded.config if loaded is not None else None), problems


def _load_document(path: Path, key: Optional[str], overrides: List[str], stdin: Optional[bytes] = None) -> tuple[Any, List[Problem]]:
    """The `Loaded` document (an MLP block or a stack, with its source and version warnings), or the problems."""
    from fastmoe_cfg.config.loader import load
    from fastmoe_cfg.config.yaml_reader import parse_yaml_bytes, read_yaml
    from fastmoe_cfg.schemas.stack import root_class

    try:
        source = parse_yaml_bytes(stdin, STDIN_NAME) if stdin is not None else read_yaml(path)
        return load(root_class, source, key=key, overrides=overrides), []
    except ConfigError as exc:
        return None, exc.problems
    except OSError as exc:
        return None, [Problem(f"cannot read the file: {exc.strerror or exc}", file=str(path))]


def _print_warnings(warnings: Any, out: Any = None) -> None:
    """Each version warning as one line (file:line:col: path: warning: message), on standard error."""
    from fastmoe_cfg.config.errors import render_warning

    out = out or sys.stderr
    for problem in warnings:
        out.write(render_warning(problem) + "\n")


def _report(results: List[tuple[str, List[Problem]]], warnings: Optional[dict[str, Any]] = None) -> str:
    """The --format json report: every file checked, valid ones too; `warnings` (by file) of an older version."""
    import json

    files = [{"file": name, "valid": not problems, "problems": [problem.to_json() for problem in problems]} for name, problems in results]
    for entry in files:
        if warnings and warnings.get(entry["file"]):
            entry["warnings"] = [problem.to_json() for problem in warnings[entry["file"]]]
    return json.dumps({"format": JSON_FORMAT, "files": files}, indent=2) + "\n"


def _config_files(arguments: List[str]) -> List[str]:
    """The files to check: each FILE, `-` (standard input), and the *.yaml / *.yml files under each DIR, sorted."""
    files: List[str] = []
    for argument in arguments:
        path = Path(argument)
        if argument == STDIN:
            files.append(STDIN)
        elif path.is_dir():
            found = sorted(str(item) for item in path.rglob("*") if item.suffix in (".yaml", ".yml") and item.is_file())
            if not found:
                raise typer.BadParameter(f"{argument!r} is a directory without .yaml or .yml files", param_hint="FILE")
            files += found
        elif not path.exists():
            raise typer.BadParameter(f"{argument!r} does not exist", param_hint="FILE")
        else:
            files.append(argument)
    if files.count(STDIN) > 1:
        raise typer.BadParameter("standard input (-) can be read once only", param_hint="FILE")
    return files


def _frame(line: str, column: int) -> tuple[str, int]:
    """The part of a source line to show, control characters made visible, and the caret's offset in it."""
    text = "".join("?" if unicodedata.category(char) in ("Cc", "Zl", "Zp") else char for char in line.expandtabs(1))
    start = max(0, min(column - 1 - _FRAME_WIDTH // 2, len(text) - _FRAME_WIDTH))
    shown = text[start : start + _FRAME_WIDTH]
    prefix, suffix = ("..." if start > 0 else ""), ("..." if start + _FRAME_WIDTH < len(text) else "")
    return prefix + shown + suffix, len(prefix) + column - 1 - start


def _print_problems(problems: List[Problem], out: Any = None, texts: Optional[dict[str, str]] = None) -> None:
    """Each problem as one line, then a code frame of its YAML line with a caret (on standard error by default).

    `texts`: the text of sources that are not files (standard input), by their name.
    """
    out = out or sys.stderr
    lines_by_file: dict[str, List[str]] = {name: text.splitlines() for name, text in (texts or {}).items()}
    for problem in problems[:MAX_PRINTED]:
        out.write(problem.render() + "\n")
        if problem.file is None or problem.line is None or problem.override is not None:
            continue
        if problem.file not in lines_by_file:
            try:
                lines_by_file[problem.file] = Path(problem.file).read_text(encoding="utf-8", errors="replace").splitlines()
            except OSError:
                lines_by_file[problem.file] = []
        lines = lines_by_file[problem.file]
        if 0 < problem.line <= len(lines):
            shown, caret = _frame(lines[problem.line - 1], problem.column or 1)
            gutter = f"{problem.line:>5} | "
            out.write(gutter + shown + "\n")
            out.write(" " * (len(gutter) - 2) + "| " + " " * max(caret, 0) + "^\n")
    if len(problems) > MAX_PRINTED:
        out.write(f"... and {len(problems) - MAX_PRINTED} more (--format json lists them all)\n")


@app.command()
def validate(
    files: List[str] = typer.Argument(
        ..., metavar="FILE|DIR|-", help="YAML config files; a directory: every *.yaml and *.yml under it; -: standard input."
    ),
    overrides: Optional[List[str]] = _SET,
    key: Optional[str] = _KEY,
    output_format: str = _FORMAT,
) -> None:
    """Check config files; print every problem with its file:line:col and a code frame.

    Exit code 0 when every file is valid, 1 when any is not. Problems go to standard
    error; with --format json, a report of every file (valid ones too) goes to
    standard output: {"format": 1, "files": [{"file", "valid", "problems": [...]}]},
    each problem with file, line, column (1-based), path, message, suggestion, override.

    Example:

    \b
        fastmoe-cfg validate examples/mixtral_8x7b.yaml --set experts_per_token=4
        fastmoe-cfg validate examples/ --format json
        cat moe.yaml | fastmoe-cfg validate -
    """
    names = _config_files(files)
    stdin = sys.stdin.buffer.read() if STDIN in names else None
    results: List[tuple[str, List[Problem]]] = []
    valid: List[tuple[str, Any]] = []
    warnings: dict[str, Any] = {}
    for name in names:
        loaded, problems = _load_document(Path(name), key, overrides or [], stdin if name == STDIN else None)
        shown = STDIN_NAME if name == STDIN else name
        results.append((shown, problems))
        if loaded is not None:
            valid.append((shown, loaded.config))
            warnings[shown] = loaded.warnings
    all_problems = [problem for _, problems in results for problem in problems]
    if output_format == "json":
        sys.stdout.write(_report(results, warnings))
    else:
        texts = {STDIN_NAME: stdin.decode("utf-8", errors="replace")} if stdin is not None else None
        _print_warnings([problem for name in warnings for problem in warnings[name]])
        _print_problems(all_problems, texts=texts)
        for name, config in valid:
            extra = f", {_stack_heading(config)}" if config.type == "stack" else ""
            sys.stdout.write(f"{name}: valid ({type(config).__name__}, type: {config.type}{extra})\n")
        if all_problems:
            count = len(all_problems)
            sys.stderr.write(f"{count} problem{'s' if count != 1 else ''} found\n")
    raise typer.Exit(1 if all_problems else 0)


@app.command()
def explain(
    file: Path = _FILE,
    tier: Optional[List[str]] = typer.Option(
        None, "--tier", "-t", metavar="TIER", callback=_choice(TIERS),
        help="Show only fields of this tier (core, architecture, feature, performance, expert). Repeatable.",
    ),
    show_all: bool = typer.Option(False, "--all", "-a", help="Show every field: expert tier and nested sub-fields too."),
    hidden_size: Optional[str] = typer.Option(
        None, "--hidden-size", metavar="H", callback=_integer(1),
        help="Model hidden size: adds parameter, FLOP and memory counts. With --key, read from the enclosing mapping's "
        "hidden_size (model.hidden_size for --key model.mlp) when it has one.",
    ),
    dtype: str = typer.Option("bf16", "--dtype", metavar="|".join(DTYPES), callback=_choice(DTYPES), help="Weight dtype for the memory figures."),
    overrides: Optional[List[str]] = _SET,
    key: Optional[str] = _KEY,
    output_format: str = _FORMAT,
) -> None:
    """Show the resolved config: value, where it came from (set / default / derived), tier, description.

    With --hidden-size (or a hidden_size beside the --key config), also the parameter
    counts (total and active per token), forward FLOPs per token and per-expert weight
    memory. Below 100 columns, and when the output is not a terminal, each field takes
    one line (name: value (source)) with its description below it.

    Example:

    \b
        fastmoe-cfg explain examples/mixtral_8x7b.yaml --hidden-size 4096
        fastmoe-cfg explain examples/model_file/model.yaml --key model.mlp
    """
    from fastmoe_cfg.explain import explain_rows, explain_rules, hidden_expert_fields
    from fastmoe_cfg.schemas.counts import CountsNotProvided, count_layer

    loaded, problems = _load_document(file, key, overrides or [])
    if problems:
        if output_format == "json":
            sys.stdout.write(_report([(str(file), problems)]))
        else:
            _print_problems(problems)
        raise typer.Exit(1)
    config = loaded.config
    if output_format != "json":
        _print_warnings(loaded.warnings)
    if config.type == "stack":
        if hidden_size is None and key:
            hidden_size, _ = _enclosing_hidden_size(file, parse_key(key))
        _explain_stack(loaded, str(file), hidden_size, dtype, tier, show_all, output_format)
        return
    hidden_source = None
    if hidden_size is None and key:
        hidden_size, hidden_source = _enclosing_hidden_size(file, parse_key(key))
    tiers = set(tier) if tier else None
    rows = _with_origins(explain_rows(config, tiers=tiers, expand=show_all), loaded.source, str(file))
    counts, missing = None, None
    if hidden_size is not None:
        try:
            counts = count_layer(config, hidden_size, dtype)
        except CountsNotProvided as exc:  # a plugin's variant without the counts hook: one line, never a crash
            missing = str(exc)
    if output_format == "json":
        import json

        payload = {
            "file": str(file),
            "class": type(config).__name__,
            "type": config.type,
            "fields": [row.to_json() for row in rows],
            "rules": [{"path": path, "rule": doc} for path, doc in explain_rules(config)],
            "summary": counts.to_json() if counts is not None else None,
            **({"summary_missing": missing} if missing else {}),
        }
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return
    hidden = hidden_expert_fields(config) if tiers is None and not show_all else 0
    _render_explain(config, rows, counts, title=str(file), hidden_expert=hidden, hidden_source=hidden_source, missing=missing)


def _enclosing_hidden_size(file: Path, key: tuple[str, ...]) -> tuple[Optional[int], Optional[str]]:
    """The positive integer `hidden_size` in the mapping that holds the --key config, and its dotted path."""
    from fastmoe_cfg.config.yaml_reader import read_yaml

    node: Any = read_yaml(file).data
    for part in key[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
    value = node.get("hidden_size") if isinstance(node, dict) else None
    if type(value) is int and value >= 1:
        return value, ".".join((*key[:-1], "hidden_size"))
    return None, None


COMPACT_BELOW = 100  # columns: narrower terminals (and pipes) get one field per line, the description below


def _render_explain(
    config: Any, rows: List[Any], counts: Any, *, title: str, hidden_expert: int = 0, hidden_source: Optional[str] = None,
    missing: Optional[str] = None,
) -> None:
    from rich.console import Console

    from fastmoe_cfg.explain import explain_rules, megatron_equivalent_lines, summary_lines

    console = Console(highlight=False)
    width = max(console.width, 40)
    compact = width < COMPACT_BELOW or not console.is_terminal
    out: List[str] = [f"{title}: {type(config).__name__} (type: {getattr(config, 'type', None)})"]
    if compact:
        out += _compact_rows(rows, width)
        console.print("\n".join(out), markup=False, crop=False, soft_wrap=True)
    else:
        console.print(out[0], markup=False)
        console.print(_table(rows))
    out = [""] if compact else []
    rules = explain_rules(config)
    if rules:
        out.append("Rules on the fields set here:")
        for path, doc in rules:
            out += textwrap.wrap(f"{path + ': ' if path else ''}{doc}", width=width, initial_indent="  ", subsequent_indent="    ")
    for line in megatron_equivalent_lines(config):
        out += textwrap.wrap(line, width=width, subsequent_indent="  ")
    if hidden_expert:
        out.append(f"{hidden_expert} expert-tier field(s) not shown: --all or --tier expert shows them.")
    if counts is None:
        hint = missing or "Pass --hidden-size N to see parameter counts, FLOPs per token and memory per expert."
        out += textwrap.wrap(hint, width=width)
        console.print("\n".join(out), markup=False, crop=False, soft_wrap=True)
        return
    origin = f" (from {hidden_source})" if hidden_source else ""
    out.append(f"Per layer, hidden_size={counts.hidden_size}{origin}:")
    if compact:
        lines = summary_lines(counts)
        label_width = max(len(label) for label, _ in lines)
        out += [f"  {label + ':':<{label_width + 1}} {value}" for label, value in lines]
        console.print("\n".join(out), markup=False, crop=False, soft_wrap=True)
        return
    console.print("\n".join(out), markup=False, crop=False, soft_wrap=True)
    from rich.table import Table

    summary = Table(show_header=False)
    summary.add_column("quantity")
    summary.add_column("value", justify="right")
    for label, value in summary_lines(counts):
        summary.add_row(label, value)
    console.print(summary)


def _describe(row: Any) -> str:
    description = row.description if row.derived is None else f"{row.description} Derived: {row.derived}"
    if row.value_description:
        description += f" ({row.display}: {row.value_description})"
    return description


def _compact_rows(rows: List[Any], width: int) -> List[str]:
    """One line per field, `name: value (source)`, its description wrapped below it; tiers as headings."""
    out: List[str] = []
    current_tier = None
    for row in rows:
        if row.depth == 0 and row.tier != current_tier:
            current_tier = row.tier
            out += ["", *textwrap.wrap(f"{row.tier}: {Tier(row.tier).description}", width=width, subsequent_indent="  ")]
        indent = "  " * (row.depth + 1)
        name = row.path.rsplit(".", 1)[-1] if row.depth else row.path
        tier = f", {row.tier}" if row.depth else ""
        out.append(f"{indent}{name}: {row.display} ({row.source_text}{tier})")
        out += textwrap.wrap(_describe(row), width=width, initial_indent=indent + "    ", subsequent_indent=indent + "    ")
    return out


def _table(rows: List[Any]) -> Any:
    from rich.markup import escape
    from rich.table import Table

    table = Table()
    table.add_column("field", no_wrap=True)
    table.add_column("value", overflow="fold")
    table.add_column("source")
    table.add_column("description", ratio=1, overflow="fold")
    current_tier = None
    for row in rows:
        if row.depth == 0 and row.tier != current_tier:
            if current_tier is not None:
                table.add_section()
            current_tier = row.tier
            table.add_row(f"[bold]{row.tier}[/bold]", "", "", f"[dim]{Tier(row.tier).description}[/dim]")
        description = _describe(row)
        name = "  " * (row.depth + 1) + row.path.rsplit(".", 1)[-1] if row.depth else "  " + row.path
        if row.depth:
            description = f"[{row.tier}] {description}"
        table.add_row(name, escape(row.display), escape(row.source_text), escape(description))
    return table


# ------------------------------------------------------------------------------------------ stacks
def _stack_heading(config: Any) -> str:
    from fastmoe_cfg.explain import stack_heading

    return stack_heading(config)


def _with_origins(rows: List[Any], source: Any, file: str) -> List[Any]:
    """Rows whose set value came from another file (a parent through extends) or a --set name where."""
    from dataclasses import replace

    from fastmoe_cfg.explain import where_text

    out = []
    for row in rows:
        if row.source == "set":
            path = tuple(int(part) if part.isdigit() else part for part in row.path.split("."))
            where = where_text(source, path)
            if where is not None and not where.startswith(f"{file}:"):
                row = replace(row, origin=where)
        out.append(row)
    return out


def _explain_stack(loaded: Any, title: str, hidden_size: Optional[int], dtype: str, tier: Optional[List[str]], show_all: bool, output_format: str) -> None:
    """A stack: the layer map, its distinct blocks, the whole model's counts; --all: every layer and each block's fields."""
    from rich.console import Console

    from fastmoe_cfg.explain import explain_rows, stack_heading, stack_map, stack_summary_lines, summary_lines, wrap_items

    from fastmoe_cfg.schemas.counts import CountsNotProvided

    stack = loaded.config
    counts, missing = None, None
    if hidden_size is not None:
        try:
            counts = stack.counts(hidden_size, dtype)
        except CountsNotProvided as exc:  # a block of a plugin's variant without the counts hook
            missing = str(exc)
    groups = stack.groups()
    if output_format == "json":
        import json

        payload = {
            "file": title,
            "class": type(stack).__name__,
            "type": stack.type,
            "layers": stack.layers,
            "map": stack.layer_kinds(),
            "blocks": [
                {
                    "block": name,
                    "layers": _layers_text(indices),
                    "class": type(block).__name__,
                    "type": block.type,
                    "fields": [row.to_json() for row in explain_rows(block, tiers=set(tier) if tier else None, expand=show_all)],
                }
                for name, block, indices in groups
            ],
            "summary": counts.to_json() if counts is not None else None,
            **({"summary_missing": missing} if missing else {}),
        }
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return
    console = Console(highlight=False)
    width = max(console.width, 40)
    out = [f"{title}: {type(stack).__name__} (type: stack), {stack_heading(stack)}", "Layers (D dense, M MoE; groups of 10 from layer 0):"]
    out.append("  " + stack_map(stack))
    out.append("Blocks:")
    for name, block, indices in groups:
        which = f"layer {indices[0]}" if len(indices) == 1 else f"layers {_layers_text(indices)} ({len(indices)})"
        out.append(f"  {name}: {which}, {type(block).__name__} (type: {block.type})")
        out += wrap_items(_set_fields(block), width, "    ")
    if counts is None:
        out += textwrap.wrap(missing or "Pass --hidden-size N to see the whole model's MLP parameters and FLOPs per token.", width=width)
    else:
        out.append(f"Whole model's MLP blocks, hidden_size={counts.hidden_size}:")
        lines = stack_summary_lines(counts)
        label_width = max(len(label) for label, _ in lines)
        out += [f"  {label + ':':<{label_width + 1}} {value}" for label, value in lines]
        out.append("Per layer of each block:")
        for name, layers, layer_counts in counts.groups:
            out.append(f"  {name} ({'layers' if ',' in layers or '-' in layers else 'layer'} {layers}):")
            for label, value in summary_lines(layer_counts)[:3]:
                out.append(f"    {label + ':':<{label_width + 1}} {value}")
    if show_all:
        out.append("Every layer:")
        by_layer = {index: name for name, _, indices in groups for index in indices}
        kinds = stack.layer_kinds()
        for index in range(stack.layers):
            out.append(f"  layer {index}: {kinds[index]} {by_layer[index]}")
        for name, block, indices in groups:
            out.append(f"Block {name} (layers {_layers_text(indices)}):")
            rows = _with_origins(explain_rows(block, tiers=set(tier) if tier else None, expand=True), loaded.source, title)
            out += _compact_rows(rows, width)
    console.print("\n".join(out), markup=False, crop=False, soft_wrap=True)


def _layers_text(indices: Any) -> str:
    from fastmoe_cfg.schemas.stack import format_layers

    return format_layers(indices)


def _set_fields(block: Any) -> List[str]:
    """The fields a block sets, in flow style: `experts: 257`, `experts_per_token: 8`, ... (its type is in the heading)."""
    from fastmoe_cfg.config.base import format_value

    return [f"{name}: {format_value(value)}" for name, value in block.to_dict().items() if name != "type"]


# -------------------------------------------------------------------------------------------- diff
DIFF_IDENTICAL, DIFF_SAME_LAYOUT, DIFF_INCOMPATIBLE = 0, 3, 4


def _invalid_input(path: Path, problems: List[Problem], output_format: str) -> typer.Exit:
    """diff's exit 1: the problems of an input, on standard error, or as the --format json report on standard output."""
    if output_format == "json":
        sys.stdout.write(_report([(str(path), problems)]))
    else:
        _print_problems(problems)
    return typer.Exit(1)


def _diff_side(path: Path, key: Optional[str], overrides: List[str], output_format: str = "text") -> Any:
    loaded, problems = _load_document(path, key, overrides)
    if problems:
        raise _invalid_input(path, problems, output_format)
    _print_warnings(loaded.warnings)
    return loaded


def _where(loaded: Any) -> Any:
    from fastmoe_cfg.explain import where_text

    return lambda path: where_text(loaded.source, path)


def _layer_where(loaded: Any) -> Any:
    from fastmoe_cfg.explain import layer_path, where_text

    return lambda layer, path: where_text(loaded.source, layer_path(loaded.config, layer, path))


def _hf_side(path: Path, layer: Optional[int], all_layers: bool, output_format: str = "text") -> tuple[Any, Any]:
    """An HF config.json as our blocks: one (the --layer, default the first MoE layer) or every layer."""
    from fastmoe_cfg.config.yaml_reader import read_json
    from fastmoe_cfg.hf.mapping import convert as convert_hf
    from fastmoe_cfg.hf.mapping import convert_all

    try:
        source = read_json(path)
        if not all_layers:  # a block file: compared with what convert writes, format_version included
            first = convert_hf(source, layer)
            return first.written_config(), lambda where_path: _hf_field(first, where_path)
        conversions = convert_all(source)
    except ConfigError as exc:
        raise _invalid_input(path, exc.problems, output_format) from None
    except OSError as exc:
        raise _invalid_input(path, [Problem(f"cannot read the file: {exc.strerror or exc}", file=str(path))], output_format) from None
    return [conversion.config for conversion in conversions], lambda index, where_path: _hf_field(conversions[index], where_path)


def _hf_field(conversion: Any, path: tuple[Any, ...]) -> Optional[str]:
    field = conversion.sources.get(path[0]) if path else None
    if not field:
        return None
    return field if field.startswith("HF ") else f"HF {field}"


@app.command()
def diff(
    file_a: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True, metavar="A", help="YAML config file (a block or a stack)."),
    file_b: Path = typer.Argument(
        ..., exists=True, dir_okay=False, readable=True, metavar="B", help="YAML config file, or an HF config.json with --from-hf."
    ),
    key: Optional[str] = _KEY,
    tier: Optional[List[str]] = typer.Option(
        None, "--tier", "-t", metavar="TIER", callback=_choice(TIERS), help="Compare only fields of this tier. Repeatable."
    ),
    from_hf: bool = typer.Option(False, "--from-hf", help="B is a Hugging Face config.json, read as convert reads it."),
    layer: Optional[str] = typer.Option(
        None, "--layer", "-l", metavar="N", callback=_integer(0),
        help="With --from-hf and a block A: the HF decoder layer to compare (default: the first MoE layer). A stack A is compared with every layer.",
    ),
    output_format: str = _FORMAT,
) -> None:
    """Show every field in which two configs differ, by tier, with each side's value and where it came from.

    Each value's source is set (with the file:line:col that wrote it, across extends),
    default or derived. Stacks are compared layer by layer. Exit codes: 0 identical;
    3 they differ only outside the architecture tier (same checkpoint layout); 4 an
    architecture field differs (checkpoints are not interchangeable); 1 an input is
    invalid; 2 usage error. --tier limits both the listing and the exit code.

    Example:

    \b
        fastmoe-cfg diff examples/qwen3_30b_a3b.yaml my_qwen.yaml
        fastmoe-cfg diff examples/stacks/deepseek_v3.yaml config.json --from-hf
        fastmoe-cfg diff a.yaml b.yaml --tier architecture --format json
    """
    from fastmoe_cfg.config.base import TIER_ORDER
    from fastmoe_cfg.config.diff import diff_configs
    from fastmoe_cfg.explain import diff_stacks

    if layer is not None and not from_hf:
        raise typer.BadParameter("applies only with --from-hf (the HF decoder layer to compare)", param_hint="--layer")
    a = _diff_side(file_a, key, [], output_format)
    stack_a = a.config.type == "stack"
    if layer is not None and stack_a:
        raise typer.BadParameter(f"{file_a} is a stack, compared with every HF layer: remove --layer", param_hint="--layer")
    if from_hf:
        b_config, b_where = _hf_side(file_b, layer, all_layers=stack_a, output_format=output_format)
        if stack_a:
            differences = diff_stacks(
                a.config.blocks(), b_config, where_a=_layer_where(a), where_b=b_where,
                count_where=(_where(a)(("layers",)), "HF num_hidden_layers"),
            )
        else:
            differences = diff_configs(a.config, b_config, where_a=_where(a), where_b=b_where)
    else:
        b = _diff_side(file_b, key, [], output_format)
        stack_b = b.config.type == "stack"
        if stack_a or stack_b:
            blocks_a = a.config.blocks() if stack_a else [a.config]
            blocks_b = b.config.blocks() if stack_b else [b.config]
            where_a = _layer_where(a) if stack_a else (lambda index, path: _where(a)(path))
            where_b = _layer_where(b) if stack_b else (lambda index, path: _where(b)(path))
            count_where = (_where(a)(("layers",)) if stack_a else None, _where(b)(("layers",)) if stack_b else None)
            differences = diff_stacks(blocks_a, blocks_b, where_a=where_a, where_b=where_b, count_where=count_where)
        else:
            differences = diff_configs(a.config, b.config, where_a=_where(a), where_b=_where(b))
    if tier:
        differences = [difference for difference in differences if difference.tier.value in tier]
    architecture = any(difference.tier is Tier.architecture for difference in differences)
    code = DIFF_INCOMPATIBLE if architecture else DIFF_SAME_LAYOUT if differences else DIFF_IDENTICAL
    verdict = {
        DIFF_IDENTICAL: "identical" + (f" in the tiers {', '.join(tier)}" if tier else ""),
        DIFF_SAME_LAYOUT: "same checkpoint layout: no architecture field differs",
        DIFF_INCOMPATIBLE: "checkpoints are not interchangeable: an architecture field differs",
    }[code]
    if output_format == "json":
        import json

        from fastmoe_cfg.config.errors import format_path

        payload = {
            "format": JSON_FORMAT,
            "a": str(file_a),
            "b": str(file_b),
            "result": {0: "identical", 3: "same_layout", 4: "not_interchangeable"}[code],
            "differences": [
                {
                    "path": format_path(difference.path),
                    "layers": difference.layers,
                    "tier": difference.tier.value,
                    "a": difference.a.to_json(),
                    "b": difference.b.to_json(),
                }
                for difference in differences
            ],
        }
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        raise typer.Exit(code)
    from fastmoe_cfg.config.errors import format_path

    out = [f"--- {file_a}", f"+++ {file_b}"]
    for current in TIER_ORDER:
        found = sorted((difference for difference in differences if difference.tier is current), key=lambda difference: (difference.path[-1:] != ("type",), format_path(difference.path)))
        if not found:
            continue
        out.append(f"{current.value}:")
        for difference in found:
            where = "" if difference.layers is None else f"layer{'s' if any(mark in difference.layers for mark in ',-') else ''} {difference.layers}: "
            out.append(f"  {where}{format_path(difference.path)}:")
            out.append(f"    - {difference.a.text}")
            out.append(f"    + {difference.b.text}")
    count = len(differences)
    out.append(f"{count} difference{'s' if count != 1 else ''}: {verdict}" if count else verdict)
    sys.stdout.write("\n".join(out) + "\n")
    raise typer.Exit(code)


# ------------------------------------------------------------------------------------ upgrade, set
def _read_text(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        _print_problems([Problem(f"cannot read the file: {getattr(exc, 'strerror', None) or exc}", file=str(file))])
        raise typer.Exit(1) from None


@app.command()
def upgrade(
    file: Path = _FILE,
    in_place: bool = typer.Option(False, "--in-place", "-i", help="Rewrite FILE instead of printing the upgraded text."),
    key: Optional[str] = _KEY,
) -> None:
    """Rewrite a config in the current format version, keeping its comments and layout.

    Applies each change since the file's version (a file without format_version is
    version 1): renames, and values that had no effect and are now errors are removed;
    changed defaults and meanings are reported on standard error, one line each, and
    `format_version` is set. The result is validated before anything is written.

    Example:

    \b
        fastmoe-cfg upgrade old.yaml --in-place
        fastmoe-cfg upgrade examples/model_file/model.yaml --key model.mlp > new.yaml
    """
    from fastmoe_cfg.config.migrations import upgrade_text
    from fastmoe_cfg.schemas import FORMAT_VERSION

    text = _read_text(file)
    _refuse_key_in_a_stack(text, key, "upgrade the whole stack: without --key")
    loaded, problems = _load_document(file, key, [])
    if problems:
        _print_problems(problems)
        raise typer.Exit(1)
    _print_warnings(loaded.warnings)
    if loaded.migration.version == FORMAT_VERSION:
        sys.stderr.write(f"{file}: already version {FORMAT_VERSION}\n")
        if not in_place:
            sys.stdout.write(text)
        return
    new_text = upgrade_text(text, loaded.migration, FORMAT_VERSION, prefix=parse_key(key))
    _check_rewrite(file, new_text, key, loaded.config)
    _refuse_edits_beyond(file, text, new_text, parse_key(key))
    if in_place:
        _write(file, new_text, param_hint="FILE")
    else:
        sys.stdout.write(new_text)


@app.command("set")
def set_values(
    file: Path = _FILE,
    assignments: List[str] = typer.Argument(..., metavar="KEY=VALUE...", help="Values to write (dotted KEY relative to --key; VALUE is YAML)."),
    key: Optional[str] = _KEY,
) -> None:
    """Change values in a config file in place, keeping its comments; nothing is written if the result is invalid.

    The file is also written in the current format version (as upgrade does).

    Example:

    \b
        fastmoe-cfg set moe.yaml experts=16 experts_per_token=2
        fastmoe-cfg set examples/model_file/model.yaml --key model.mlp pre_norm.type=rms_norm
    """
    from fastmoe_cfg.config.migrations import upgrade_text
    from fastmoe_cfg.config.yaml_reader import parse_yaml
    from fastmoe_cfg.config.yaml_writer import Edit
    from fastmoe_cfg.schemas import FORMAT_VERSION

    assignments = _check_overrides(assignments)
    for assignment in assignments:  # set writes the current version: any other would be silently replaced
        path, raw = parse_override(assignment)
        if path == ("format_version",) and parse_yaml(raw).data != FORMAT_VERSION:
            raise typer.BadParameter(
                f"{assignment!r}: set writes the current format_version ({FORMAT_VERSION}); "
                "to rewrite an older file, use fastmoe-cfg upgrade",
                param_hint="KEY=VALUE...",
            )
    text = _read_text(file)
    _refuse_key_in_a_stack(text, key, f"give the paths from its root instead ({key}.KEY=VALUE)")
    loaded, problems = _load_document(file, key, assignments)
    if problems:
        _print_problems(problems)
        sys.stderr.write(f"{file}: not changed\n")
        raise typer.Exit(1)
    prefix = parse_key(key)
    edits = []
    for assignment in assignments:
        path, raw = parse_override(assignment)
        edits.append(Edit("set", (*prefix, *path), parse_yaml(raw).data))
    new_text = upgrade_text(text, loaded.migration, FORMAT_VERSION, prefix=prefix, extra=edits)
    _check_rewrite(file, new_text, key, loaded.config)
    _refuse_edits_beyond(file, text, new_text, prefix)
    _write(file, new_text, param_hint="FILE")


def _refuse_edits_beyond(file: Path, text: str, new_text: str, prefix: tuple) -> None:
    """Nothing outside the `--key` block may change: a block reached through a YAML alias (`mlp: *defaults`) shares
    its mapping with the anchor and every other alias of it, which the edit would change too (exit 1, not written)."""
    from fastmoe_cfg.config.yaml_reader import parse_yaml

    def without_block(data: Any) -> Any:
        if not prefix:
            return None
        outside = copy.deepcopy(data)
        node = outside
        for part in prefix[:-1]:
            node = node[part]
        node[prefix[-1]] = None
        return outside

    if without_block(parse_yaml(text).data) != without_block(parse_yaml(new_text).data):
        sys.stderr.write(
            f"{file}: {'.'.join(map(str, prefix))} is a YAML alias of a mapping that other places of the file share "
            "(&anchor / *alias): the edit would change them too; edit the anchor's mapping itself, or copy it "
            "into the block first; not changed\n"
        )
        raise typer.Exit(1)


def _refuse_key_in_a_stack(text: str, key: Optional[str], instead: str) -> None:
    """--key into a stack file would write format_version into one block: its version is the stack's (usage error)."""
    from fastmoe_cfg.config.yaml_reader import parse_yaml

    data = parse_yaml(text).data if key else None
    if isinstance(data, dict) and data.get("type") == "stack":
        raise typer.BadParameter(f"{key!r} is inside a stack, whose blocks have the stack's format_version: {instead}", param_hint="--key")


def _without_version(config: Any) -> Any:
    return {name: value for name, value in config.to_dict(resolved=True).items() if name != "format_version"}


def _check_rewrite(file: Path, new_text: str, key: Optional[str], expected: Any) -> None:
    """The rewritten text must load, without warnings, to the config that was validated (else nothing is written)."""
    from fastmoe_cfg.config.loader import load
    from fastmoe_cfg.config.yaml_reader import parse_yaml
    from fastmoe_cfg.schemas.stack import root_class

    try:
        loaded = load(root_class, parse_yaml(new_text, str(file)), key=key)
    except ConfigError as exc:
        _print_problems(exc.problems)
        loaded = None
    if loaded is None or _without_version(loaded.config) != _without_version(expected) or any(warning.file == str(file) for warning in loaded.warnings):
        sys.stderr.write(f"fastmoe-cfg: internal error: the rewritten {file} does not read back as the validated config; not written\n")
        raise typer.Exit(1)


@app.command()
def schema(
    output: Optional[Path] = typer.Option(None, "--output", "-o", dir_okay=False, help="Write to this file instead of stdout."),
) -> None:
    """Print the JSON Schema (draft 2020-12) of MLP configs, for editors and other tools.

    Example, then the first line of a YAML config for completion and checks in editors:

    \b
        fastmoe-cfg schema -o fastmoe.schema.json
        # yaml-language-server: $schema=fastmoe.schema.json
    """
    from fastmoe_cfg.config.schema import json_schema

    import json

    text = json.dumps(json_schema(MLPBaseConfig), indent=2) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        _write(output, text)


@app.command()
def init(
    variant: str = typer.Option(
        "moe", "--type", metavar="TYPE", callback=lambda value: _choice(sorted(MLPBaseConfig.variants()))(value),
        help="The variant: moe (mixture of experts), mlp (dense), or a plugin's.",
    ),
    output: Optional[Path] = typer.Option(None, "--output", "-o", dir_okay=False, help="Write to this file instead of stdout."),
    force: bool = typer.Option(False, "--force", help="Overwrite --output if it exists."),
) -> None:
    """Write a commented starter config that validates.

    Example:

    \b
        fastmoe-cfg init --type moe -o moe.yaml && fastmoe-cfg validate moe.yaml
    """
    from fastmoe_cfg.starter import starter_yaml

    text = starter_yaml(variant)
    if output is None:
        sys.stdout.write(text)
        return
    if output.exists() and not force:
        raise typer.BadParameter(f"{output} exists; pass --force to overwrite it", param_hint="--output")
    _write(output, text)


@app.command()
def convert(
    from_hf: Path = typer.Option(
        ..., "--from-hf", exists=True, dir_okay=False, readable=True, metavar="CONFIG_JSON",
        help="A Hugging Face model's config.json (its model_type: one of the families in the Hugging Face guide's table).",
    ),
    layer: Optional[str] = typer.Option(
        None, "--layer", "-l", metavar="N", callback=_integer(0), help="Decoder layer to convert. Default: the first MoE layer."
    ),
    all_layers: bool = typer.Option(
        False, "--all-layers", help="Convert every decoder layer's MLP into one stack config (type: stack), with whole-model totals."
    ),
    output: Optional[Path] = typer.Option(None, "--output", "-o", dir_okay=False, help="Write to this file instead of stdout."),
    force: bool = typer.Option(False, "--force", help="Overwrite --output if it exists."),
    moe_only: bool = typer.Option(
        False, "--moe-only", help="Gemma-4: convert the MoE branch alone (type: moe), not the whole feed-forward (type: hybrid_moe)."
    ),
) -> None:
    """Convert the MLP of one decoder layer of a Hugging Face model config into a commented YAML config.

    Each value's comment names the HF field it came from; the header gives the
    model's hidden size and the layer's parameter counts. `--all-layers` writes every
    layer's MLP as one stack (dense and MoE layers placed as the family places them),
    with the whole model's MLP parameters and FLOPs per token in the header. A dense layer (DeepSeek-V3's
    first_k_dense_replace, Qwen's mlp_only_layers) becomes `type: mlp`; Gemma-4's feed-forward, a
    dense MLP and an MoE block summed, becomes `type: hybrid_moe` (`--moe-only`: its MoE branch). An HF setting
    that cannot be represented is an error naming it (exit 1). No torch needed.

    Example:

    \b
        fastmoe-cfg convert --from-hf config.json --layer 3 -o moe.yaml
        fastmoe-cfg explain moe.yaml --hidden-size 7168
        fastmoe-cfg convert --from-hf config.json --all-layers -o model.yaml
    """
    import shlex

    from fastmoe_cfg.config.yaml_reader import read_json
    from fastmoe_cfg.hf.mapping import conversion_yaml, convert_all, stack_yaml
    from fastmoe_cfg.hf.mapping import convert as convert_hf

    if output is not None and output.exists() and not force:
        raise typer.BadParameter(f"{output} exists; pass --force to overwrite it", param_hint="--output")
    if all_layers and layer is not None:
        raise typer.BadParameter("--all-layers converts every layer: remove --layer", param_hint="--layer")
    try:
        source = read_json(from_hf)
        conversions = convert_all(source, moe_only=moe_only) if all_layers else [convert_hf(source, layer, moe_only=moe_only)]
    except ConfigError as exc:
        _print_problems(exc.problems, sys.stderr)
        raise typer.Exit(1) from None
    except ValueError as exc:  # --moe-only for a family with one MLP block (ConfigError, a ValueError, is caught above)
        raise typer.BadParameter(str(exc), param_hint="--moe-only") from None
    except OSError as exc:
        _print_problems([Problem(f"cannot read the file: {exc.strerror or exc}", file=str(from_hf))], sys.stderr)
        raise typer.Exit(1) from None
    command = shlex.join([
        "fastmoe-cfg", "convert", "--from-hf", str(from_hf), *(["--layer", str(layer)] if layer is not None else []),
        *(["--all-layers"] if all_layers else []), *(["--moe-only"] if moe_only else []),
    ])
    text = stack_yaml(conversions, command) if all_layers else conversion_yaml(conversions[0], command)
    if output is None:
        sys.stdout.write(text)
    else:
        _write(output, text)


def _write(output: Path, text: str, param_hint: str = "--output") -> None:
    """Write an output file; a path that cannot be written is a usage error (exit 2) of `param_hint`."""
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise typer.BadParameter(f"cannot write {output}: {exc.strerror or exc}", param_hint=param_hint) from None
    sys.stderr.write(f"wrote {output}\n")


BENCH_DTYPES = ["fp32", "bf16", "fp16"]  # the keys of fastmoe_cfg.bench.DTYPES (a test checks it)


@app.command()
def bench(
    file: Path = _FILE,
    hidden_size: Optional[str] = typer.Option(
        None, "--hidden-size", metavar="H", callback=_integer(1),
        help="Model hidden size. With --key, read from the enclosing mapping's hidden_size when it has one.",
    ),
    tokens: str = typer.Option("4096", "--tokens", "-n", metavar="N", callback=_integer(1), help="Tokens per pass."),
    dtype: Optional[str] = typer.Option(
        None, "--dtype", metavar="|".join(BENCH_DTYPES), callback=_choice(BENCH_DTYPES), help="Compute dtype. Default: bf16 on CUDA, fp32 on the CPU."
    ),
    device: Optional[str] = typer.Option(None, "--device", metavar="DEVICE", help="cpu, cuda or cuda:N. Default: cuda when available."),
    compile_: bool = typer.Option(False, "--compile", help="torch.compile(fullgraph=True) every layer but looped (which runs eagerly)."),
    repeats: str = typer.Option("10", "--repeats", "-r", metavar="N", callback=_integer(1), help="Timed rounds (medians reported)."),
    warmup: str = typer.Option("2", "--warmup", metavar="N", callback=_integer(0), help="Untimed rounds before them."),
    overrides: Optional[List[str]] = _SET,
    key: Optional[str] = _KEY,
    output_format: str = typer.Option(
        "text", "--format", "-f", metavar="text|json", callback=_choice(FORMATS), help="text: a table and a load chart; json: the report on standard output."
    ),
) -> None:
    """Time each implementation of an MLP block (looped, dropless with the torch and Triton kernels) against an
    equal-FLOP dense MLP, in one run.

    Prints, per implementation: forward and forward+backward time (medians of interleaved
    rounds), achieved TFLOP/s in useful FLOPs (the counts explain prints; backward counted as 2x forward),
    the ratio to the dense MLP and to the looped experts, peak memory (CUDA) or bytes saved for backward
    (CPU), then each expert's load in one forward. Needs torch (exit 2 without it). A progress bar goes to
    standard error.

    Example:

    \b
        fastmoe-cfg bench examples/mixtral_8x7b.yaml --hidden-size 1024 --set intermediate_size=1024 --tokens 2048
        fastmoe-cfg bench examples/model_file/model.yaml --key model.mlp --device cuda --compile --format json
    """
    from fastmoe_cfg.bench import BenchError, run

    loaded, problems = _load_document(file, key, overrides or [])
    if problems:
        if output_format == "json":
            sys.stdout.write(_report([(str(file), problems)]))
        else:
            _print_problems(problems)
        raise typer.Exit(1)
    if hidden_size is None and key:
        hidden_size, _ = _enclosing_hidden_size(file, parse_key(key))
    if hidden_size is None:
        raise typer.BadParameter("is required (the model's hidden size; the config does not hold it)", param_hint="--hidden-size")
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    status = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    progress = Progress(*columns, console=status, transient=True, disable=not status.is_terminal)
    task = progress.add_task("bench", total=None)

    def start(total: int) -> None:  # once the request is known to run: a usage error leaves standard error clean
        progress.update(task, total=total)
        progress.start()

    try:
        report = run(
            loaded.config, hidden_size, tokens=tokens, dtype=dtype, device=device, compile=compile_, repeats=repeats, warmup=warmup,
            on_start=start, on_step=lambda description: progress.update(task, advance=1, description=description),
        )
    except BenchError as exc:
        sys.stderr.write(f"fastmoe-cfg bench: error: {exc}\n")
        raise typer.Exit(2) from None
    finally:
        progress.stop()
    if output_format == "json":
        import json

        sys.stdout.write(json.dumps({"file": str(file), "key": key, **report.to_json()}, indent=2) + "\n")
        return
    from fastmoe_cfg.bench import footnotes, heading, load_chart, table_columns, table_rows
    from rich.table import Table

    console = Console(width=max(Console().width, 120), highlight=False)
    console.print(heading(report, str(file)), markup=False)
    table = Table()
    for index, column in enumerate(table_columns(report)):
        table.add_column(column, justify="left" if index == 0 else "right")
    for cells in table_rows(report):
        table.add_row(*cells)
    console.print(table)
    if report.loads is not None:
        console.print(f"Tokens per routed expert, one forward ({report.loads_from}; {sum(report.loads)} assignments):", markup=False)
        console.print("\n".join(load_chart(report.loads)), markup=False)
    console.print("\n".join(footnotes(report)), markup=False)


def _print_version(value: bool) -> None:
    if value:
        sys.stdout.write(f"fastmoe-cfg {__version__}\n")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version, help="Print the version and exit."),
) -> None:
    """Validate, explain and document mixture-of-experts MLP configs."""


# ------------------------------------------------------------------------------------------- docs
docs_app = typer.Typer(
    name="docs",
    help="Reference docs generated from the schemas, and the docs site (MkDocs + Material).",
    no_args_is_help=True,
)
app.add_typer(docs_app)

_REFERENCE_DIR = typer.Option(
    Path("docs/reference"), "--reference-dir", file_okay=False, help="The committed reference pages (built-in classes)."
)


def _docs_error(exc: Exception) -> typer.Exit:
    sys.stderr.write(f"fastmoe-cfg docs: error: {exc}\n")
    return typer.Exit(1)


def _builtin_reference_pages() -> dict[str, str]:
    """The reference pages of the built-in classes; a class that cannot be documented exits 1."""
    from fastmoe_cfg.docs_gen import DocsError, reference_pages

    try:
        return reference_pages(builtin_only=True)
    except DocsError as exc:
        raise _docs_error(exc) from None


@docs_app.command("generate")
def docs_generate(reference_dir: Path = _REFERENCE_DIR) -> None:
    """Write the reference pages of the built-in classes (what `docs check` compares against).

    Run it after changing a schema, and commit the result.

    Example:

    \b
        fastmoe-cfg docs generate && git add docs/reference
    """
    from fastmoe_cfg.docs_gen import write_reference

    pages = _builtin_reference_pages()
    touched = write_reference(reference_dir, pages)
    sys.stdout.write(f"{reference_dir}: {len(pages)} pages, {len(touched)} written or removed\n")


@docs_app.command("check")
def docs_check(reference_dir: Path = _REFERENCE_DIR) -> None:
    """Exit 1, with a summary of the differences, when the committed reference is not what the schemas generate.

    Needs no MkDocs; CI runs it.

    Example:

    \b
        fastmoe-cfg docs check --reference-dir docs/reference
    """
    from fastmoe_cfg.docs_gen import REGENERATE, diff_reference

    pages = _builtin_reference_pages()
    summary = diff_reference(reference_dir, pages)
    if summary:
        sys.stdout.write(f"{reference_dir} is out of date: it differs from what the schemas generate\n")
        sys.stdout.write("".join(f"  {line}\n" for line in summary))
        sys.stdout.write(f"Regenerate it with `{REGENERATE}` and commit the result.\n")
        raise typer.Exit(1)
    sys.stdout.write(f"{reference_dir}: up to date ({len(pages)} pages)\n")


@docs_app.command("build")
def docs_build(
    out: Path = typer.Option(Path("site"), "--out", "-o", file_okay=False, help="Folder of the built site (replaced)."),
) -> None:
    """Build the static docs site: reference pages (plugins installed here included), guides, JSON schema.

    The guides' command examples are run during the build. The JSON schema is
    published as fastmoe.schema.json at the root of the site. Needs the docs extra:
    pip install 'fastmoe_cfg[docs]'.

    Example:

    \b
        fastmoe-cfg docs build --out site && python -m http.server -d site
    """
    import tempfile
    import time

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from fastmoe_cfg.docs_gen import DocsError
    from fastmoe_cfg.docs_gen.site import MissingMkDocs, build_steps, planned_commands

    if out.exists() and any(out.iterdir()) and not (out / "index.html").exists():
        raise typer.BadParameter(f"{out} exists and is not a built site; its contents would be replaced", param_hint="--out")
    start = time.perf_counter()
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn())
    try:
        with tempfile.TemporaryDirectory(prefix="fastmoe-docs-") as scratch, Progress(*columns, console=Console(stderr=True)) as progress:
            task = progress.add_task("docs", total=None)

            def advance(label: str) -> None:
                progress.update(task, advance=1, description=label)

            steps = build_steps(out, Path(scratch), on_command=advance)
            progress.update(task, total=len(steps) + planned_commands())
            for step in steps:
                progress.update(task, description=step.label)
                step.run()
                progress.update(task, advance=1)
    except (DocsError, MissingMkDocs) as exc:
        raise _docs_error(exc) from None
    sys.stdout.write(f"built the docs site in {out} ({time.perf_counter() - start:.1f} s); JSON schema: {out / 'fastmoe.schema.json'}\n")


@docs_app.command("serve")
def docs_serve(
    dev_addr: str = typer.Option("127.0.0.1:8000", "--dev-addr", "-a", metavar="HOST:PORT", help="Address to serve on."),
) -> None:
    """Build the docs site and serve it locally until Ctrl-C. Needs the docs extra.

    Example:

    \b
        fastmoe-cfg docs serve --dev-addr 127.0.0.1:8000
    """
    import tempfile

    from fastmoe_cfg.docs_gen import DocsError
    from fastmoe_cfg.docs_gen.site import MissingMkDocs, serve

    try:
        with tempfile.TemporaryDirectory(prefix="fastmoe-docs-") as scratch:
            sys.stderr.write(f"serving the docs site on http://{dev_addr}/ (Ctrl-C stops)\n")
            serve(dev_addr, Path(scratch))
    except (DocsError, MissingMkDocs) as exc:
        raise _docs_error(exc) from None


def main() -> None:
    """Console entry point: no traceback ever reaches the user."""
    # pydantic's own plugins (observability hooks) have no use in a one-shot CLI, and looking
    # them up scans every installed distribution at start-up (3% of a `validate` cold start).
    # PYDANTIC_DISABLE_PLUGINS is pydantic's documented switch; it is read when a validator is
    # built, and our validators are built on first use (defer_build), after this line. setdefault:
    # a value the user set wins. It changes this process only (and any it would start).
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    try:
        app(prog_name="fastmoe-cfg")
    except SystemExit:
        raise
    except BrokenPipeError:  # the reader went away (`| head`): nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(0) from None
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        raise SystemExit(130) from None
    except OSError as exc:  # disk full, permissions, ...: the system's words, no traceback
        sys.stderr.write(f"fastmoe-cfg: error: {exc}\n")
        raise SystemExit(1) from None
    except Exception as exc:  # a bug: say so plainly, without a traceback
        sys.stderr.write(f"fastmoe-cfg: internal error: {type(exc).__name__}: {exc}\n")
        raise SystemExit(1) from None
