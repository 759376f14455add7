"""Guides whose commands run at build time: file blocks, `$` and `$!` commands, real output."""

from __future__ import annotations

from pathlib import Path

import pytest

from fastmoe_cfg.docs_gen import DocsError
from fastmoe_cfg.docs_gen.walkthrough import Command, commands_in, render_guide

GUIDE = """\
# Try it

```yaml file=moe.yaml
type: moe
experts: 2
```

```cli
$ fastmoe-cfg validate moe.yaml
$! fastmoe-cfg validate moe.yaml --set experts_per_token=3
```
"""


def test_guide_writes_files_and_shows_real_output(tmp_path: Path) -> None:
    seen: list[str] = []
    text = render_guide(GUIDE, tmp_path, on_command=lambda command: seen.append(command.text))
    assert text == (
        "# Try it\n\n"
        '```yaml title="moe.yaml"\ntype: moe\nexperts: 2\n```\n\n'
        "```console\n"
        "$ fastmoe-cfg validate moe.yaml\n"
        "moe.yaml: valid (MoEMLPConfig, type: moe)\n"
        "$ fastmoe-cfg validate moe.yaml --set experts_per_token=3\n"
        "--set experts_per_token=3: experts_per_token: must satisfy experts_per_token + shared_experts <= experts (3 + 0 > 2)\n"
        "1 problem found\n"
        "```\n"
    )
    assert seen == ["fastmoe-cfg validate moe.yaml", "fastmoe-cfg validate moe.yaml --set experts_per_token=3"]
    assert (tmp_path / "moe.yaml").read_text() == "type: moe\nexperts: 2\n"


def test_commands_in() -> None:
    assert commands_in(GUIDE) == [
        Command("fastmoe-cfg validate moe.yaml", 0),
        Command("fastmoe-cfg validate moe.yaml --set experts_per_token=3", 1),
    ]


def test_unexpected_exit_code_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DocsError) as info:
        render_guide("```cli\n$! fastmoe-cfg init --type moe\n```\n", tmp_path)
    assert info.value.problems[0].startswith("guide: `fastmoe-cfg init --type moe` exited 0, expected 1:\n# A starter fastmoe_cfg config")


def test_only_the_program_runs(tmp_path: Path) -> None:
    with pytest.raises(DocsError) as info:
        render_guide("```cli\n$ rm -rf /\n```\n", tmp_path)
    assert info.value.problems == ["guide: '$ rm -rf /': expected `$ fastmoe-cfg ...` (exit 0) or `$! fastmoe-cfg ...` (exit 1)"]
