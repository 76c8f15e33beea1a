"""Helpers for the tests of rendered reports: open a page in the browser, run a report on a scratch project."""

from __future__ import annotations

from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
# Without these, Chromium reaches for Google's services, which this closed network refuses.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def page_problems(browser, path: Path) -> tuple[object, list[str]]:
    """Open a rendered page; return it and the console errors, page errors and failed requests it caused."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
    page.goto(path.as_uri(), wait_until="load")
    page.wait_for_timeout(300)
    return page, problems


def scratch_project(root: Path) -> Path:
    """A copy of the project's config and notebooks in ``root`` (data and reports empty): a report run there,
    with ``JOURNEY_PROJECT_ROOT`` pointing at it, leaves the checkout's data/ and reports/ alone."""
    import shutil

    from helpers import config

    for folder in ("config", "notebooks"):
        shutil.copytree(config.PROJECT_ROOT / folder, root / folder)
    return root


def run_report(root: Path, cfg: Path):
    """``python -m helpers.report run`` on a scratch project, as a scheduled run would (a child process)."""
    import os
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "helpers.report", "run", "--quiet", "--config", str(cfg),
                           "--reports-dir", str(root / "reports")], cwd=root, capture_output=True, text=True,
                          env={**os.environ, "JOURNEY_PROJECT_ROOT": str(root)})


def make_notebook(path: Path, body: list[str], params: str = 'label: str = "a"  # a label\nfail: bool = False  # raise?') -> Path:
    """A small notebook for runner tests: a title, a tagged parameters cell, then ``body`` as code cells."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(f"# Title of {path.stem}"),
                nbformat.v4.new_code_cell(params, metadata={"tags": ["parameters"]})]
    nb.cells += [nbformat.v4.new_code_cell(src) for src in body]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path
