"""The committed docs/reference/ against what the schemas generate: `docs generate` and `docs check`."""

from __future__ import annotations

import shutil
from pathlib import Path

from typer.testing import CliRunner

from fastmoe_cfg.cli import app
from fastmoe_cfg.docs_gen import diff_reference, write_reference
from tests.conftest import ROOT

COMMITTED = ROOT / "docs" / "reference"
runner = CliRunner()


def test_committed_reference_is_current(pages: dict[str, str]) -> None:
    """docs/reference/ is what the schemas generate; regenerate with `fastmoe-cfg docs generate`."""
    assert diff_reference(COMMITTED, pages) == []


def _stale_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "reference"
    shutil.copytree(COMMITTED, copy)
    page = copy / "MoEMLPConfig.md"
    row = "`experts_per_token` | `int` | `{}` |"  # expert_groups is an int defaulting to 1 too: change one row only
    page.write_text(page.read_text().replace(row.format(1), row.format(3)))
    (copy / "RoutingType.md").unlink()
    (copy / "OldConfig.md").write_text("# OldConfig\n")
    return copy


def test_check_reports_every_difference(tmp_path: Path) -> None:
    copy = _stale_copy(tmp_path)
    result = runner.invoke(app, ["docs", "check", "--reference-dir", str(copy)])
    assert result.exit_code == 1
    assert result.output == (
        f"{copy} is out of date: it differs from what the schemas generate\n"
        f"  changed {copy / 'MoEMLPConfig.md'} (+1 -1 lines)\n"
        '      -| <a id="experts_per_token"></a>`experts_per_token` | `int` | `3` | Routed experts active per token (the k of top-k).<br>**Constraints:*...\n'
        '      +| <a id="experts_per_token"></a>`experts_per_token` | `int` | `1` | Routed experts active per token (the k of top-k).<br>**Constraints:*...\n'
        f"  stale {copy / 'OldConfig.md'} (no longer generated)\n"
        f"  missing {copy / 'RoutingType.md'} (generated, not committed)\n"
        "Regenerate it with `fastmoe-cfg docs generate` and commit the result.\n"
    )


def test_generate_repairs_it_and_check_passes(tmp_path: Path, pages: dict[str, str]) -> None:
    copy = _stale_copy(tmp_path)
    result = runner.invoke(app, ["docs", "generate", "--reference-dir", str(copy)])
    assert result.exit_code == 0
    assert result.output == f"{copy}: {len(pages)} pages, 3 written or removed\n"
    assert not (copy / "OldConfig.md").exists()
    result = runner.invoke(app, ["docs", "check", "--reference-dir", str(copy)])
    assert (result.exit_code, result.output) == (0, f"{copy}: up to date ({len(pages)} pages)\n")


def test_write_reference_leaves_other_files(tmp_path: Path, pages: dict[str, str]) -> None:
    (tmp_path / "notes.txt").write_text("kept")
    assert len(write_reference(tmp_path, pages)) == len(pages)
    assert write_reference(tmp_path, pages) == []
    assert (tmp_path / "notes.txt").read_text() == "kept"


def test_check_of_a_missing_folder(tmp_path: Path) -> None:
    result = runner.invoke(app, ["docs", "check", "--reference-dir", str(tmp_path / "nowhere")])
    assert result.exit_code == 1
    assert f"  missing {tmp_path / 'nowhere' / 'index.md'} (generated, not committed)\n" in result.output
