"""`fastmoe-cfg docs ...`: help with examples, no MkDocs needed to generate or check, a clear error without it."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from fastmoe_cfg.cli import app
from tests.conftest import ROOT

runner = CliRunner()

# MkDocs, the Material theme and torch fail to import, installed or not.
BLOCK = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("mkdocs", "material", "torch", "triton"):
            raise ImportError(f"No module named {name!r}")
sys.meta_path.insert(0, _Block())
"""


def _run_blocked(*argv: str, cwd=ROOT) -> subprocess.CompletedProcess[str]:
    code = BLOCK + "from fastmoe_cfg.cli import main\nsys.argv = ['fastmoe-cfg', *sys.argv[1:]]\nmain()\n"
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize(
    ("command", "example"),
    [
        ("generate", "fastmoe-cfg docs generate && git add docs/reference"),
        ("check", "fastmoe-cfg docs check --reference-dir docs/reference"),
        ("build", "fastmoe-cfg docs build --out site && python -m http.server -d site"),
        ("serve", "fastmoe-cfg docs serve --dev-addr 127.0.0.1:8000"),
    ],
)
def test_help_shows_an_example(command: str, example: str) -> None:
    result = runner.invoke(app, ["docs", command, "--help"])
    assert result.exit_code == 0
    assert f"  Example:\n\n      {example}\n" in result.output


def test_docs_without_a_command_is_a_usage_error() -> None:
    result = runner.invoke(app, ["docs"])
    assert result.exit_code == 2
    assert "generate" in result.output and "check" in result.output and "build" in result.output


def test_check_needs_no_mkdocs_nor_torch(pages: dict[str, str]) -> None:
    result = _run_blocked("docs", "check")
    assert (result.returncode, result.stdout, result.stderr) == (0, f"docs/reference: up to date ({len(pages)} pages)\n", "")


def test_build_without_mkdocs_says_what_to_install(tmp_path) -> None:
    result = _run_blocked("docs", "build", "--out", str(tmp_path / "site"))
    assert result.returncode == 1
    assert result.stderr.endswith(
        "fastmoe-cfg docs: error: building the docs site needs MkDocs and the Material theme: pip install 'fastmoe_cfg[docs]'\n"
    )
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "site").exists()


def test_build_refuses_to_replace_a_folder_that_is_not_a_site(tmp_path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    result = runner.invoke(app, ["docs", "build", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "exists and is not a built site; its contents would be replaced" in result.output
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_importing_the_cli_imports_no_docs_machinery() -> None:
    code = (
        "import sys, fastmoe_cfg.cli\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('mkdocs', 'material') or m.startswith('fastmoe_cfg.docs_gen')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.stdout == "[]\n", result.stderr
