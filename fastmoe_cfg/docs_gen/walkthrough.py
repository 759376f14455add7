"""Guide pages whose command-line examples are run when the site is built, never pasted.

A guide is Markdown with two kinds of special fenced blocks, handled in order
in one scratch folder:

- a block whose info string is `LANG file=NAME` writes NAME and is shown as a
  titled LANG block;
- a `cli` block holds commands, one per line: `$ fastmoe-cfg ...` must exit 0,
  `$! fastmoe-cfg ...` must exit 1 (a mistake shown on purpose). Each runs as
  a fresh process and the block is replaced by a `console` block with the
  commands and their real output. Any other exit code is a `DocsError`: the
  guide no longer says what the program does.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import fastmoe_cfg
from fastmoe_cfg.docs_gen.catalog import DocsError

__all__ = ["Command", "commands_in", "render_guide"]

_BLOCK = re.compile(r"^```(?:(?P<cli>cli)|(?P<lang>\w+) file=(?P<file>[\w.-]+))\n(?P<body>.*?)^```[ \t]*$", re.M | re.S)
_PROGRAM = "fastmoe-cfg"
COLUMNS = 92  # width of the rich tables in the output: fits a code block of the site without scrolling


@dataclass(frozen=True)
class Command:
    text: str  # as shown, e.g. "fastmoe-cfg validate moe.yaml"
    expected_exit: int

    @staticmethod
    def parse(line: str) -> Command:
        marker, _, text = line.partition(" ")
        if marker not in ("$", "$!") or not text.startswith(_PROGRAM + " "):
            raise DocsError([f"guide: {line!r}: expected `$ {_PROGRAM} ...` (exit 0) or `$! {_PROGRAM} ...` (exit 1)"])
        return Command(text=text.strip(), expected_exit=0 if marker == "$" else 1)

    def run(self, workdir: Path) -> str:
        """The command's output (stdout and stderr, as a terminal shows them); DocsError on an unexpected exit code."""
        argv = [sys.executable, "-m", "fastmoe_cfg", *shlex.split(self.text)[1:]]
        package_parent = str(Path(fastmoe_cfg.__file__).resolve().parents[1])
        env = {
            **os.environ,
            "COLUMNS": str(COLUMNS),
            "PYTHONIOENCODING": "utf-8",
            "PYTHONPATH": os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")])),
        }
        env.pop("FORCE_COLOR", None)
        result = subprocess.run(argv, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
        if result.returncode != self.expected_exit:
            raise DocsError([f"guide: `{self.text}` exited {result.returncode}, expected {self.expected_exit}:\n{result.stdout}"])
        return result.stdout


def commands_in(template: str) -> list[Command]:
    return [Command.parse(line) for match in _BLOCK.finditer(template) if match["cli"] for line in _lines(match["body"])]


def _lines(body: str) -> list[str]:
    return [line for line in body.splitlines() if line.strip()]


def render_guide(template: str, workdir: Path, *, on_command: Callable[[Command], None] = lambda command: None) -> str:
    """The guide with its file blocks written (into `workdir`) and its commands run there."""
    workdir.mkdir(parents=True, exist_ok=True)

    def replace(match: re.Match[str]) -> str:
        body = match["body"]
        if not match["cli"]:
            (workdir / match["file"]).write_text(body, encoding="utf-8")
            return f'```{match["lang"]} title="{match["file"]}"\n{body}```'
        shown = []
        for line in _lines(body):
            command = Command.parse(line)
            output = command.run(workdir)
            on_command(command)
            shown += [f"$ {command.text}", *output.rstrip("\n").splitlines()]
        return "```console\n" + "\n".join(shown) + "\n```"

    return _BLOCK.sub(replace, template)
