"""The `fastmoe-cfg` command line. Thin: parse arguments, call the library, render.

Exit codes: 0 ok, 1 invalid config, 2 usage error. No Python traceback
reaches the user. Never imports torch.
"""

import enum
import json
import os
import shlex
import sys
import unicodedata
from pathlib import Path
from typing import Any, List, Optional

import typer

from fastmoe_cfg import load_config
from fastmoe_cfg.config.base import Tier
from fastmoe_cfg.config.errors import ConfigError, Problem
from fastmoe_cfg.config.loader import parse_key
from fastmoe_cfg.config.overrides import OverrideSyntaxError, parse_override
from fastmoe_cfg.schemas import MLPBaseConfig
from fastmoe_cfg.schemas.counts import DTYPE_BYTES, count_layer

app = typer.Typer(
    name="fastmoe-cfg",
    help="Validate, explain and document mixture-of-experts MLP configs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)


class OutputFormat(str, enum.Enum):
    text = "text"
    json = "json"


# Choices that come from the library, so that the CLI cannot drift from it.
DType = enum.Enum("DType", {name: name for name in DTYPE_BYTES}, type=str)  # type: ignore[misc]
VariantChoice = enum.Enum("VariantChoice", {name: name for name in sorted(MLPBaseConfig.variants())}, type=str)  # type: ignore[misc]


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
_FORMAT = typer.Option(OutputFormat.text, "--format", "-f", help="text for people, json for programs.")


MAX_PRINTED = 100  # problems shown in text mode; --format json lists all of them
_FRAME_WIDTH = 100  # characters of a long YAML line shown around the caret


def _load_or_problems(path: Path, key: Optional[str], overrides: List[str]) -> tuple[Any, List[Problem]]:
    """The config, or the problems of the file (an unreadable file is one problem, not a crash)."""
    try:
        return load_config(path, key=key, overrides=overrides), []
    except ConfigError as exc:
        return None, exc.problems
    except OSError as exc:
        return None, [Problem(f"cannot read the file: {exc.strerror or exc}", file=str(path))]


def _frame(line: str, column: int) -> tuple[str, int]:
    """The part of a source line to show, control characters made visible, and the caret's offset in it."""
    text = "".join("?" if unicodedata.category(char) in ("Cc", "Zl", "Zp") else char for char in line.expandtabs(1))
    start = max(0, min(column - 1 - _FRAME_WIDTH // 2, len(text) - _FRAME_WIDTH))
    shown = text[start : start + _FRAME_WIDTH]
    prefix, suffix = ("..." if start > 0 else ""), ("..." if start + _FRAME_WIDTH < len(text) else "")
    return prefix + shown + suffix, len(prefix) + column - 1 - start


def _print_problems(problems: List[Problem], out: Any = None) -> None:
    """Each problem as one line, then a code frame of its YAML line with a caret."""
    out = out or sys.stdout
    lines_by_file: dict[str, List[str]] = {}
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
    files: List[Path] = typer.Argument(
        ..., exists=True, dir_okay=False, readable=True, metavar="FILE", help="YAML config files."
    ),
    overrides: Optional[List[str]] = _SET,
    key: Optional[str] = _KEY,
    output_format: OutputFormat = _FORMAT,
) -> None:
    """Check config files; print every problem with its file:line:col and a code frame.

    Exit code 0 when every file is valid, 1 when any is not.

    Example:

    \b
        fastmoe-cfg validate examples/mixtral_8x7b.yaml --set experts_per_token=4
    """
    all_problems: List[Problem] = []
    valid: List[tuple[Path, Any]] = []
    for path in files:
        config, problems = _load_or_problems(path, key, overrides or [])
        all_problems.extend(problems)
        if config is not None:
            valid.append((path, config))
    if output_format is OutputFormat.json:
        sys.stdout.write(json.dumps([problem.to_json() for problem in all_problems], indent=2) + "\n")
    else:
        _print_problems(all_problems)
        for path, config in valid:
            sys.stdout.write(f"{path}: valid ({type(config).__name__}, type: {config.type})\n")
        if all_problems:
            count = len(all_problems)
            sys.stdout.write(f"{count} problem{'s' if count != 1 else ''} found\n")
    raise typer.Exit(1 if all_problems else 0)


@app.command()
def explain(
    file: Path = _FILE,
    tier: Optional[List[Tier]] = typer.Option(
        None, "--tier", "-t", metavar="TIER", help="Show only fields of this tier (core, architecture, feature, performance, expert). Repeatable."
    ),
    show_all: bool = typer.Option(False, "--all", "-a", help="Show every field: expert tier and nested sub-fields too."),
    hidden_size: Optional[int] = typer.Option(None, "--hidden-size", min=1, metavar="H", help="Model hidden size: adds parameter, FLOP and memory counts."),
    dtype: DType = typer.Option("bf16", "--dtype", help="Weight dtype for the memory figures."),
    overrides: Optional[List[str]] = _SET,
    key: Optional[str] = _KEY,
    output_format: OutputFormat = _FORMAT,
) -> None:
    """Show the resolved config: value, where it came from (set / default / derived), tier, description.

    With --hidden-size, also the parameter counts (total and active per token),
    forward FLOPs per token and per-expert weight memory.

    Example:

    \b
        fastmoe-cfg explain examples/mixtral_8x7b.yaml --hidden-size 4096
    """
    from fastmoe_cfg.explain import explain_rows, explain_rules, hidden_expert_fields, render_explain

    config, problems = _load_or_problems(file, key, overrides or [])
    if problems:
        if output_format is OutputFormat.json:
            payload = {"file": str(file), "problems": [problem.to_json() for problem in problems]}
            sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        else:
            _print_problems(problems, sys.stderr)
        raise typer.Exit(1)
    tiers = {choice.value for choice in tier} if tier else None
    rows = explain_rows(config, tiers=tiers, expand=show_all)
    counts = count_layer(config, hidden_size, dtype.value) if hidden_size is not None else None
    if output_format is OutputFormat.json:
        payload = {
            "file": str(file),
            "class": type(config).__name__,
            "type": config.type,
            "fields": [row.to_json() for row in rows],
            "rules": [{"path": path, "rule": doc} for path, doc in explain_rules(config)],
            "summary": counts.to_json() if counts is not None else None,
        }
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return
    hidden = hidden_expert_fields(config) if tiers is None and not show_all else 0
    render_explain(config, rows, counts, title=str(file), hidden_expert=hidden)


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

    text = json.dumps(json_schema(MLPBaseConfig), indent=2) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        _write(output, text)


@app.command()
def init(
    variant: VariantChoice = typer.Option("moe", "--type", help="The variant: moe (mixture of experts), mlp (dense), or a plugin's."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", dir_okay=False, help="Write to this file instead of stdout."),
    force: bool = typer.Option(False, "--force", help="Overwrite --output if it exists."),
) -> None:
    """Write a commented starter config that validates.

    Example:

    \b
        fastmoe-cfg init --type moe -o moe.yaml && fastmoe-cfg validate moe.yaml
    """
    from fastmoe_cfg.starter import starter_yaml

    text = starter_yaml(variant.value)
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
        help="A Hugging Face model's config.json (Mixtral, Qwen2-MoE, Qwen3-MoE, OLMoE, DeepSeek-V3, GPT-OSS, Gemma-4).",
    ),
    layer: Optional[int] = typer.Option(None, "--layer", "-l", min=0, metavar="N", help="Decoder layer to convert. Default: the first MoE layer."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", dir_okay=False, help="Write to this file instead of stdout."),
    force: bool = typer.Option(False, "--force", help="Overwrite --output if it exists."),
) -> None:
    """Convert the MLP of one decoder layer of a Hugging Face model config into a commented YAML config.

    Each value's comment names the HF field it came from; the header gives the
    model's hidden size and the layer's parameter counts. A dense layer (DeepSeek-V3's
    first_k_dense_replace, Qwen's mlp_only_layers) becomes `type: mlp`. An HF setting
    that cannot be represented is an error naming it (exit 1). No torch needed.

    Example:

    \b
        fastmoe-cfg convert --from-hf config.json --layer 3 -o moe.yaml
        fastmoe-cfg explain moe.yaml --hidden-size 7168
    """
    from fastmoe_cfg.config.yaml_reader import read_yaml
    from fastmoe_cfg.hf.mapping import conversion_yaml
    from fastmoe_cfg.hf.mapping import convert as convert_hf

    if output is not None and output.exists() and not force:
        raise typer.BadParameter(f"{output} exists; pass --force to overwrite it", param_hint="--output")
    try:
        conversion = convert_hf(read_yaml(from_hf), layer)
    except ConfigError as exc:
        _print_problems(exc.problems, sys.stderr)
        raise typer.Exit(1) from None
    except OSError as exc:
        _print_problems([Problem(f"cannot read the file: {exc.strerror or exc}", file=str(from_hf))], sys.stderr)
        raise typer.Exit(1) from None
    command = shlex.join(["fastmoe-cfg", "convert", "--from-hf", str(from_hf), *(["--layer", str(layer)] if layer is not None else [])])
    text = conversion_yaml(conversion, command)
    if output is None:
        sys.stdout.write(text)
    else:
        _write(output, text)


def _write(output: Path, text: str) -> None:
    """Write an output file; a path that cannot be written is a usage error (exit 2)."""
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise typer.BadParameter(f"cannot write {output}: {exc.strerror or exc}", param_hint="--output") from None
    sys.stderr.write(f"wrote {output}\n")


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
    # them up scans every installed distribution at start-up.
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
