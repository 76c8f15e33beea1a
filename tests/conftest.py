"""Shared test fixtures: a headless Chromium for the checks of rendered reports."""

from __future__ import annotations

import pytest

from report_runs import CHROMIUM, CHROMIUM_ARGS


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium driven by Playwright; the test is skipped, with the reason, where either is missing."""
    playwright = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
    if not CHROMIUM.exists():
        pytest.skip("no browser at /usr/bin/chromium: install Debian's chromium package (.ci/run does) to check the "
                    "rendered reports")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()
