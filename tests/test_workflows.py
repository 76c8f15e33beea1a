"""The CI workflows: no input pasted into a shell script, no page with raw ids uploaded."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

WORKFLOWS = sorted((Path(__file__).resolve().parents[1] / ".github" / "workflows").glob("*.yml"))


def test_no_expression_is_interpolated_into_a_run_script():
    for path in WORKFLOWS:
        for job in yaml.safe_load(path.read_text())["jobs"].values():
            for step in job["steps"]:
                assert not re.search(r"\$\{\{", step.get("run", "")), f"{path.name}: {step.get('name')}"


def test_failed_runs_are_uploaded_without_their_pages_and_notebooks():
    report = yaml.safe_load((Path(__file__).resolve().parents[1] / ".github/workflows/report.yml").read_text())
    uploads = [s for s in report["jobs"]["report"]["steps"] if "failed" in str(s.get("with", {}).get("path", ""))]
    assert uploads and all("!reports/failed/**/*.html" in s["with"]["path"] and "!reports/failed/**/*.ipynb"
                           in s["with"]["path"] for s in uploads)
