"""The built site: pages, guide output, published JSON schema, and a real browser on it.

The site is built once per session with the real command (`python -m
fastmoe_cfg docs build`). The browser test drives the system Chromium
(/usr/bin/chromium, a Debian package that .ci/run installs) with playwright.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Iterator

import pytest

from fastmoe_cfg.config.schema import json_schema
from fastmoe_cfg.schemas import MLPBaseConfig
from tests.conftest import ROOT

pytest.importorskip("mkdocs", reason="building the site needs the docs extra: pip install -e '.[docs]'")
pytest.importorskip("material", reason="building the site needs the docs extra: pip install -e '.[docs]'")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("docs") / "site"
    result = subprocess.run(
        [sys.executable, "-m", "fastmoe_cfg", "docs", "build", "--out", str(out)], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith(f"built the docs site in {out} (")
    return out


def test_site_has_every_reference_page_and_the_guides(site: Path) -> None:
    names = {path.name for path in (ROOT / "docs" / "reference").glob("*.md")} - {"index.md"}
    for name in names:
        assert (site / "reference" / name[:-3] / "index.html").is_file(), name
    assert (site / "guide" / "writing-a-config" / "index.html").is_file()
    assert (site / "search" / "search_index.json").is_file()


def test_the_training_guide_shows_its_plots(site: Path) -> None:
    html = (site / "guide" / "train-moe-lm" / "index.html").read_text()
    images = sorted((ROOT / "docs" / "images").glob("train_moe_lm_*.png"))
    assert len(images) == 3
    for image in images:
        assert (site / "images" / image.name).read_bytes() == image.read_bytes()
        assert f'src="../../images/{image.name}"' in html


def test_json_schema_is_published_at_the_site_root(site: Path) -> None:
    assert json.loads((site / "fastmoe.schema.json").read_text()) == json_schema(MLPBaseConfig)


def test_guide_shows_the_real_output_of_its_commands(site: Path) -> None:
    html = (site / "guide" / "writing-a-config" / "index.html").read_text()
    # Output that only running the command produces (pasted text would not know these numbers).
    assert "bad.yaml:4:1: experts_per_token: must satisfy experts_per_token + shared_experts &lt;= experts (5 + 0 &gt; 4)" in html
    assert "total parameters" in html and "1,409,318,912" in html


@pytest.fixture(scope="module")
def server(site: Path) -> Iterator[str]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="the browser test needs playwright (pip install -e '.[dev]')")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium (.ci/run does)")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


# The text of the tier heading above a field's table, and the computed style of its badge.
TIER_OF_ROW = """(row) => {
    let block = row.closest("table");
    while (block.parentElement && !block.parentElement.classList.contains("md-content__inner")) block = block.parentElement;
    let heading = block.previousElementSibling;
    while (heading && heading.tagName !== "H3") heading = heading.previousElementSibling;
    const badge = heading.querySelector(".tier");
    return {tier: badge.textContent, classes: badge.className, background: getComputedStyle(badge).backgroundColor};
}"""


def test_moe_page_in_a_browser(server: str, browser, tmp_path: Path) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{server}/reference/MoEMLPConfig/")
    assert page.title().startswith("MoEMLPConfig")

    row = page.locator("tr", has=page.locator("a#experts_per_token"))
    cells = row.locator("td").all_inner_texts()
    assert [cell.strip() for cell in cells[:3]] == ["experts_per_token", "int", "1"]
    tier = row.evaluate(TIER_OF_ROW)
    assert tier["tier"] == "architecture"
    assert tier["classes"] == "tier tier-architecture"
    assert tier["background"] not in ("", "rgba(0, 0, 0, 0)")  # the badge is styled
    # Nothing wider than the window: tables wrap instead of scrolling sideways.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert page.evaluate("[...document.querySelectorAll('.md-typeset__scrollwrap')].every(e => e.scrollWidth <= e.clientWidth)")
    row.scroll_into_view_if_needed()
    page.screenshot(path=str(tmp_path / "moe_page.png"))

    search = page.locator("input.md-search__input")
    search.click()
    search.press_sequentially("z_loss_coefficient", delay=10)  # typed: the theme searches on key events
    page.locator(".md-search-result__item", has_text="z_loss_coefficient").first.wait_for(timeout=10_000)
    # Guides that show a config mention the field too; the reference page must be among the hits.
    hit = page.locator(".md-search-result__item", has_text="z_loss_coefficient").locator("a[href*='/reference/MoEMLPConfig/']").first
    hit.wait_for(timeout=10_000)
    page.screenshot(path=str(tmp_path / "search.png"))
    hit.click()
    page.wait_for_url("**/reference/MoEMLPConfig/**")

    scheme = page.evaluate("document.body.getAttribute('data-md-color-scheme')")
    page.locator("form[data-md-component=palette] label:visible").first.click()
    assert page.evaluate("document.body.getAttribute('data-md-color-scheme')") != scheme
    page.close()
    print(f"screenshots: {tmp_path / 'moe_page.png'}, {tmp_path / 'search.png'}")
