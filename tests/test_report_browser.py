"""The rendered sample report, opened in a real headless Chromium, as a stakeholder would.

Needs Debian's ``chromium`` (``.ci/run`` installs it) and Playwright for
Python (in requirements.txt); the test installs nothing and is skipped, with
the reason, where either is missing.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from helpers import config, report

CHROMIUM = Path("/usr/bin/chromium")
# Without these, Chromium reaches for Google's services, which this closed network refuses.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]

playwright = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="no browser at /usr/bin/chromium: install Debian's "
                                "chromium package (.ci/run does) to check the rendered reports")


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    """A full run of config/report.yaml on the bundled sample, into a temporary reports folder."""
    reports_dir = tmp_path_factory.mktemp("reports")
    return report.run(config.CONFIG_DIR / "report.yaml", quiet=True, reports_dir=reports_dir)


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


def test_every_report_renders_cleanly_in_chromium(sample_run, browser, tmp_path):
    pages = sorted(sample_run.run_dir.glob("*.html"))
    assert [p.name for p in pages][-1] == "index.html" and len(pages) >= 2
    user_ids = set(pq.read_table(config.PROCESSED_EVENTS, columns=["user_id"]).column("user_id").to_pylist())
    for path in pages:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        problems: list[str] = []
        page.on("console", lambda m, problems=problems: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e, problems=problems: problems.append(f"page error: {e}"))
        page.on("requestfailed", lambda r, problems=problems: problems.append(f"request failed: {r.url}"))
        page.goto(path.as_uri(), wait_until="load")
        page.wait_for_timeout(500)
        assert problems == [], f"{path.name}: {problems}"

        charts = page.locator(".js-plotly-plot")
        for i in range(charts.count()):
            chart = charts.nth(i)
            assert chart.locator("svg.main-svg").count() > 0, f"{path.name}: chart {i} has no SVG"
            marks = chart.locator("path.point, .bars path, path.js-line, .sankey-node, .sankey-link, .heatmaplayer image, .indicatorlayer text.number")
            assert marks.count() > 0, f"{path.name}: chart {i} drew no data marks"
        assert page.locator(".jp-CodeCell .jp-InputArea, .jp-InputPrompt, .jp-OutputPrompt, .jp-CodeMirrorEditor").count() == 0, f"{path.name} shows code"

        text = page.inner_text("body")
        leaked = set(re.split(r"\s+", text)) & user_ids
        assert not leaked, f"{path.name} shows {len(leaked)} raw user ids"
        assert not re.search(r"[\w.+-]+@[\w-]+\.[A-Za-z]{2,}", text), f"{path.name} shows an e-mail address"
        page.screenshot(path=str(tmp_path / f"{path.stem}.png"), full_page=True)
        page.close()
    assert len(list(tmp_path.glob("*.png"))) == len(pages)


def test_the_data_page_has_its_three_charts_and_the_index_links_every_report(sample_run, browser):
    page = browser.new_page()
    page.goto((sample_run.run_dir / "01_data_loading.html").as_uri(), wait_until="load")
    assert page.locator(".js-plotly-plot").count() == 3
    assert "Customer journey report" in page.inner_text(".report-header")
    page.goto((sample_run.run_dir / "index.html").as_uri(), wait_until="load")
    links = page.locator("table a").evaluate_all("els => els.map(e => e.getAttribute('href'))")
    assert sorted(links) == sorted(p.name for p in sample_run.run_dir.glob("*.html") if p.name != "index.html")
    assert "Key findings" in page.inner_text("body")
    page.close()


def test_no_report_is_larger_than_15_mb(sample_run):
    sizes = {p.name: p.stat().st_size for p in sample_run.run_dir.glob("*.html")}
    assert max(sizes.values()) < 15 * 1024**2, sizes


def test_chromium_is_the_one_debian_ships():
    assert shutil.which("chromium") == str(CHROMIUM)
