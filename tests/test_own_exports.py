"""The whole report on four exports shaped unlike the sample, changing only the loading parameters and the stage map.

Each shape (``tests/shapes.py``) lacks something the sample has (revenue, channels, a users table, sign-ups,
an A/B variant, survey scores, distinct timestamps, an event column...). The report must complete on each,
every page must render in Chromium without errors, and each section whose inputs are absent must say so in
a sentence instead of crashing or showing an empty chart.
"""

from __future__ import annotations

import re

import pytest
import yaml

import shapes
from report_runs import page_problems, run_report, scratch_project

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=sorted(shapes.SHAPES))
def shape_run(request, tmp_path_factory):
    root = scratch_project(tmp_path_factory.mktemp(request.param))
    (root / "data" / "raw").mkdir(parents=True)
    shape = shapes.SHAPES[request.param](root / "data" / "raw")
    (root / "config" / "journey.yaml").write_text(yaml.safe_dump(shape.stage_map))
    cfg = yaml.safe_load((root / "config" / "report.yaml").read_text())
    next(nb for nb in cfg["notebooks"] if nb["name"] == "data_loading")["parameters"] = shape.loading
    (root / "config" / "report.yaml").write_text(yaml.safe_dump(cfg))
    run = run_report(root, root / "config" / "report.yaml")
    assert run.returncode == 0, f"{shape.name}: {run.stderr[-4000:]}"
    return shape, (root / "reports" / "latest").resolve(), run


def test_the_report_completes_and_every_page_renders(shape_run, browser):
    shape, latest, run = shape_run
    pages = sorted(latest.glob("*.html"))
    assert len(pages) == 10, [p.name for p in pages]
    for path in pages:
        page, problems = page_problems(browser, path)
        assert problems == [], f"{shape.name} {path.name}: {problems[:3]}"
        text = page.inner_text("body")
        assert "Traceback" not in text and "Error" not in re.findall(r"\w*Error", text), f"{shape.name} {path.name}"
        for chart in page.locator(".js-plotly-plot").all():
            assert chart.locator("svg.main-svg").count() > 0, f"{shape.name} {path.name}: a chart did not draw"
        page.close()


def test_papermill_understands_every_parameter_it_is_given(shape_run):
    _, _, run = shape_run
    assert "Passed unknown parameter" not in run.stderr and "Unable to parse line" not in run.stderr


ABSENT = {
    # shape: {page: sentences that must appear because an input is missing}
    "clickstream": {"03_funnel_analysis.html": ["no A/B variant"], "01_data_loading.html": ["no channel column"],
                    "07_attribution.html": ["no channel column"],
                    "08_experiments.html": ["There is no assignment table at assignments.parquet"],
                    "06_early_warning.html": ["no survey"],
                    "09_customer_value.html": ["The events have no 'value' column"]},
    "purchases": {"03_funnel_analysis.html": ["no A/B variant"], "01_data_loading.html": ["duplicate rows were kept"]},
    "subscriptions": {"03_funnel_analysis.html": ["no A/B variant"]},
    "case_log": {"03_funnel_analysis.html": ["no A/B variant"], "05_journey_overview.html": ["no survey"],
                 "09_customer_value.html": ["no purchases to model customer value on"]},
}


def test_each_absent_input_is_explained_in_a_sentence(shape_run, browser):
    shape, latest, _ = shape_run
    for name, sentences in ABSENT[shape.name].items():
        page, _ = page_problems(browser, latest / name)
        text = page.inner_text("body")
        for sentence in sentences:
            assert sentence in text, f"{shape.name} {name}: no sentence with {sentence!r}"
        page.close()
