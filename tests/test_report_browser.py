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

from report_runs import CHROMIUM, run_report, scratch_project

playwright = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="no browser at /usr/bin/chromium: install Debian's "
                                "chromium package (.ci/run does) to check the rendered reports")


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    """A full run of config/report.yaml on the bundled sample, into a temporary reports folder."""
    reports_dir = tmp_path_factory.mktemp("reports")
    return report.run(config.CONFIG_DIR / "report.yaml", quiet=True, reports_dir=reports_dir)


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
    links = page.locator("ul.pages a").evaluate_all("els => els.map(e => e.getAttribute('href'))")
    assert sorted(links) == sorted(p.name for p in sample_run.run_dir.glob("*.html") if p.name != "index.html")
    text = page.inner_text("body")
    assert "What matters most" in text and text.index("What matters most") < text.index("The pages")
    # The findings that matter most come first, in their rank: the value lost, what changed, who is at risk.
    first = page.locator("section.findings li b").all_inner_texts()
    assert first[:3] == ["Fix first.", "What changed.", "Churn early warning."], first
    tiles = page.locator("section.tiles a.tile")
    assert tiles.count() >= 4
    for i in range(tiles.count()):  # each tile links to the page (and section) that explains it
        href = tiles.nth(i).get_attribute("href")
        assert (sample_run.run_dir / href.partition("#")[0]).exists(), href
    assert "9,909" in tiles.all_inner_texts()[0]
    page.close()


_TABLES_JS = """() => [...document.querySelectorAll('table')].map(t => ({
    head: [...t.querySelectorAll('thead th')].map(th => th.innerText.trim()),
    rows: [...t.querySelectorAll('tbody tr')].map(tr => [...tr.querySelectorAll('td, th')].map(c => c.innerText.trim()))}))"""


def test_every_interval_is_in_the_unit_of_its_estimate(sample_run, browser):
    """A hazard ratio's or an NPS's interval is never shown as a percentage; a rate's always is."""
    checked = 0
    for path in sorted(sample_run.run_dir.glob("*.html")):
        page = browser.new_page()
        page.goto(path.as_uri(), wait_until="load")
        for table in page.evaluate(_TABLES_JS):
            head = table["head"]
            for i, name in enumerate(head):
                if "95% CI" not in name or i == 0:
                    continue
                stem = name.replace("95% CI", "").strip()
                estimate = head.index(stem) if stem in head else i - 1
                for row in table["rows"]:
                    if len(row) != len(head) or not row[i] or "too few" in row[estimate]:
                        continue
                    assert ("%" in row[i]) == ("%" in row[estimate]), (path.name, head[estimate], row[estimate], row[i])
                    checked += 1
        page.close()
    assert checked > 20


def test_every_page_has_contents_and_previous_next_links_and_the_index_links_findings_to_sections(sample_run, browser):
    run_dir = sample_run.run_dir
    pages = [p for p in sorted(run_dir.glob("*.html")) if p.name != "index.html"]
    page = browser.new_page()
    for path in pages:
        page.goto(path.as_uri(), wait_until="load")
        toc = page.locator("nav.toc a").evaluate_all("els => els.map(e => e.getAttribute('href'))")
        assert len(toc) >= 2, path.name
        for href in toc:  # every entry leads to a heading on the page
            assert page.locator(f"h2[id='{href[1:]}']").count() == 1, (path.name, href)
        pager = page.locator("nav.pager").first.locator("a").evaluate_all("els => els.map(e => e.getAttribute('href'))")
        assert pager and all((run_dir / h).exists() for h in pager), (path.name, pager)
    page.goto((run_dir / "index.html").as_uri(), wait_until="load")
    links = page.locator("section.findings a").evaluate_all("els => els.map(e => e.getAttribute('href'))")
    assert links and "#" in links[0], links  # the first finding leads to its section
    for href in links:
        file, _, section = href.partition("#")
        target = (run_dir / file).read_text(encoding="utf-8")
        assert not section or f'id="{section}"' in target, href
    page.close()


_SMALL_TEXT_JS = """() => [...document.querySelectorAll('.js-plotly-plot svg text')].filter(el => {
    const style = getComputedStyle(el), box = el.getBoundingClientRect();
    return el.textContent.trim() && style.display !== 'none' && style.visibility !== 'hidden'
        && parseFloat(style.opacity || '1') > 0 && box.width > 0 && parseFloat(style.fontSize) < 11;
}).map(el => el.textContent.trim().slice(0, 40) + ' @ ' + getComputedStyle(el).fontSize)"""


def test_no_chart_text_is_smaller_than_11_px(sample_run, browser):
    small = {}
    for path in sorted(sample_run.run_dir.glob("*.html")):
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.goto(path.as_uri(), wait_until="load")
        page.wait_for_timeout(500)
        found = page.evaluate(_SMALL_TEXT_JS)
        if found:
            small[path.name] = found[:5]
        page.close()
    assert small == {}


_SIGNUPS_IN_PROSE = (r"Of ([\d,]+) users who did signup", r"Lifetimes of ([\d,]+) users: start at the first signup")


def test_the_signup_count_is_the_same_on_every_page(sample_run, browser):
    """The funnel's first step, the journey map's signup stage, the retention lifetimes and the index all count
    the same people: everyone who signed up."""
    found: dict[str, set[int]] = {}
    page = browser.new_page()
    for path in sorted(sample_run.run_dir.glob("*.html")):
        page.goto(path.as_uri(), wait_until="load")
        for table in page.evaluate(_TABLES_JS):
            for column in ("Users", "Entered (any order)"):
                if column in table["head"]:
                    i = table["head"].index(column)
                    for row in table["rows"]:
                        if len(row) == len(table["head"]) and row[0] == "signup":
                            found.setdefault(path.name, set()).add(int(row[i].replace(",", "")))
        text = page.inner_text("body")
        for pattern in _SIGNUPS_IN_PROSE:
            for m in re.finditer(pattern, text):
                found.setdefault(path.name, set()).add(int(m.group(1).replace(",", "")))
    page.close()
    assert {"03_funnel_analysis.html", "05_journey_overview.html", "04_retention_survival.html", "index.html"} <= set(found)
    assert len(set().union(*found.values())) == 1, found


_OVERLAPS_JS = """() => {
  const out = [];
  const box = el => { const b = el.getBoundingClientRect(); return b.width > 0 && b.height > 0 ? b : null; };
  const hit = (a, b) => a && b && a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1;
  document.querySelectorAll('.js-plotly-plot').forEach((chart, i) => {
    const title = chart.querySelector('.g-gtitle text'), tb = title && box(title), cb = box(chart);
    const name = (title ? title.textContent : 'chart ' + i).slice(0, 50);
    const parts = [];
    chart.querySelectorAll('.legend .bg').forEach(e => parts.push(['legend', e]));
    chart.querySelectorAll('.annotation').forEach(e => parts.push(['annotation ' + e.textContent.slice(0, 30), e]));
    chart.querySelectorAll('[class^="g-x"][class$="title"], [class^="g-y"][class$="title"]').forEach(e => parts.push(['axis title ' + e.textContent.slice(0, 30), e]));
    chart.querySelectorAll('.xtick text, .ytick text, .x2tick text, .y2tick text, .x3tick text').forEach(e => parts.push(['tick ' + e.textContent.slice(0, 20), e]));
    chart.querySelectorAll('.plot .bars, .plot .scatterlayer, .heatmaplayer').forEach(e => parts.push(['data', e]));
    if (tb && cb && (tb.right > cb.right + 1 || tb.left < cb.left - 1)) out.push(name + ': title cut off');
    for (const [what, el] of parts) if (hit(tb, box(el))) out.push(name + ': title under ' + what);
    for (const [_, lg] of parts.filter(p => p[0] === 'legend'))
      for (const [what, el] of parts) if (what !== 'legend' && what !== 'data' && hit(box(lg), box(el))) out.push(name + ': legend over ' + what);
    chart.querySelectorAll('.xaxislayer-above, .yaxislayer-above').forEach(layer => {  // a tick label said twice
      const ticks = [...layer.querySelectorAll('text')].map(t => t.textContent).filter(t => t);
      const twice = ticks.filter((t, i) => ticks.indexOf(t) !== i);
      if (twice.length) out.push(name + ': tick label repeated: ' + twice[0]);
    });
    const notes = parts.filter(p => p[0].startsWith('annotation'));
    notes.forEach(([a, x], i) => notes.slice(i + 1).forEach(([b, y]) => { if (hit(box(x), box(y))) out.push(name + ': ' + a + ' over ' + b); }));
  });
  return out;
}"""


@pytest.mark.parametrize("width", [1440, 390])
def test_nothing_covers_a_chart_title_or_legend_and_no_page_scrolls_sideways(sample_run, browser, width):
    """Also: no axis repeats a tick label (a percentage axis over a small range can show '12%' twice)."""
    problems = {}
    for path in sorted(sample_run.run_dir.glob("*.html")):
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.goto(path.as_uri(), wait_until="load")
        page.wait_for_timeout(500)
        found = page.evaluate(_OVERLAPS_JS)
        # A wide table may scroll inside its own box (with a shadow at the edge); the page itself never does.
        if page.evaluate("document.documentElement.scrollWidth") > width + 1:
            found.append(f"the page is {page.evaluate('document.documentElement.scrollWidth')} px wide")
        if found:
            problems[path.name] = found[:5]
        page.close()
    assert problems == {}


def test_every_section_that_asks_a_question_answers_it_in_a_sentence(sample_run, browser):
    """A heading ending in '?' is followed, before the next heading, by a sentence a notebook computed (a finding or
    report.say), not only by a chart or a table."""
    unanswered = []
    page = browser.new_page()
    for path in sorted(sample_run.run_dir.glob("[0-9]*.html")):
        page.goto(path.as_uri(), wait_until="load")
        found = page.evaluate("""() => {
            const out = []; let current = null;
            for (const cell of document.querySelectorAll('.jp-Cell')) {
                const h = cell.querySelector('h2');
                if (h) { current = {q: h.innerText.replace('¶', '').trim(), said: 0}; out.push(current); }
                else if (current && cell.classList.contains('jp-CodeCell'))
                    current.said += [...cell.querySelectorAll('.jp-OutputArea-output > p')].filter(p => p.innerText.trim().length > 20).length;
            }
            return out; }""")
        unanswered += [f"{path.name}: {s['q']}" for s in found if s["q"].endswith("?") and not s["said"]]
        assert sum(s["q"].endswith("?") for s in found) >= 3, path.name
    page.close()
    assert unanswered == []


def test_the_readmes_numbers_about_the_sample_are_those_of_a_fresh_run(sample_run):
    """Every marked number in the README (calibration gaps, stitched persons) is what this run recorded:
    ``make readme`` after ``make report`` rewrites them."""
    from helpers.report.readme import MARKER, update

    assert len(MARKER.findall((config.PROJECT_ROOT / "README.md").read_text())) >= 6
    assert update(config.PROJECT_ROOT / "README.md", sample_run.run_dir, check=True) == []


def test_no_report_is_larger_than_15_mb(sample_run):
    sizes = {p.name: p.stat().st_size for p in sample_run.run_dir.glob("*.html")}
    assert max(sizes.values()) < 15 * 1024**2, sizes


def test_chromium_is_the_one_debian_ships():
    assert shutil.which("chromium") == str(CHROMIUM)


# ----------------------------------------------------------------------------- hostile data

# Each payload, if it ever ran, would set window.__pwned to its own name.
PAYLOADS = {
    "script": "<script>window.__pwned='script'</script>",
    "img": "<img src=x onerror=\"window.__pwned='img'\">",
    "svg": "<svg onload=\"window.__pwned='svg'\">",
    "details": "<details open ontoggle=\"window.__pwned='details'\">",
    "iframe": "\"><iframe srcdoc=\"<script>parent.__pwned='iframe'</script>\">",
    "javascript": "javascript:window.__pwned='javascript'",
    "markdown": "[click me](javascript:window.__pwned='markdown')",
}
HOSTILE_STEP = PAYLOADS["img"] + "checkout_started"


def _hostile_project(root: Path) -> Path:
    """A scratch project whose bundled sample carries the payloads in event names, a funnel step, channels, page
    properties, user attributes (profiled by the personas, compared by retention) and the report title, plus one
    5 MB event name; returns its report config."""
    import pandas as pd
    import yaml

    from helpers import sample

    scratch_project(root)
    j = sample.generate_journeys(3_000, seed=5, days=120)
    ev, users = j.events.copy(), j.users.copy()
    text = {c: ev[c].astype(object) for c in ("event", "channel", "page")}
    text["event"] = text["event"].replace({"email_open": PAYLOADS["script"] + "email_open", "app_open": PAYLOADS["img"],
                                           "checkout_started": HOSTILE_STEP})
    text["channel"] = text["channel"].replace({"social": PAYLOADS["img"] + "social", "push": PAYLOADS["javascript"]})
    text["page"] = text["page"].replace({"checkout": PAYLOADS["iframe"]})
    ev = ev.assign(**{c: v.astype("string") for c, v in text.items()})
    # Events named by the other payloads, one second after some page views (so they sit on paths too).
    views = ev[ev["event"] == "page_view"]
    extra = []
    for i, name in enumerate(["svg", "details", "iframe", "javascript", "markdown"]):
        rows = views.iloc[i::25].assign(event=PAYLOADS[name], timestamp=lambda d: d["timestamp"] + pd.Timedelta(seconds=1))
        extra.append(rows)
    extra.append(views.iloc[:1].assign(event="x" * 5_000_000))
    ev = pd.concat([ev, *extra], ignore_index=True).sort_values(["user_id", "timestamp"], kind="stable")
    users["acquisition_channel"] = users["acquisition_channel"].replace({"social": PAYLOADS["img"] + "social"})
    users["country"] = users["country"].replace({"FR": PAYLOADS["details"]})
    users["device"] = users["device"].replace({"mobile": PAYLOADS["markdown"]})
    (root / "data" / "sample").mkdir(parents=True)
    ev.to_parquet(root / "data" / "sample" / "events.parquet", index=False)
    users.to_parquet(root / "data" / "sample" / "users.parquet", index=False)

    stage_map = yaml.safe_load((root / "config" / "journey.yaml").read_text())
    for stage in stage_map["stages"]:
        stage["events"] = [HOSTILE_STEP if e == "checkout_started" else e for e in stage["events"]]
    stage_map["kpi_events"]["checkout_started"] = HOSTILE_STEP
    (root / "config" / "journey.yaml").write_text(yaml.safe_dump(stage_map, allow_unicode=True))
    cfg = yaml.safe_load((root / "config" / "report.yaml").read_text())
    cfg["title"] = PAYLOADS["script"] + " Hostile report"
    funnel_nb = next(nb for nb in cfg["notebooks"] if nb["name"] == "funnel")
    funnel_nb["parameters"] = {"steps": ["signup", "first_value", "add_to_cart", HOSTILE_STEP, "purchase"]}
    (root / "config" / "report.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True))
    return root / "config" / "report.yaml"


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    """The whole report on the hostile scratch project, run as a scheduled run would be (a child process)."""
    root = tmp_path_factory.mktemp("hostile")
    run = run_report(root, _hostile_project(root))
    assert run.returncode == 0, run.stderr[-3000:]
    return (root / "reports" / "latest").resolve()


def test_no_payload_from_the_data_runs_in_any_report_page_and_each_shows_as_text(hostile_run, browser):
    pages = sorted(hostile_run.glob("*.html"))
    assert len(pages) == 10
    shown = ""
    for path in pages:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        problems: list[str] = []
        page.on("console", lambda m, problems=problems: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e, problems=problems: problems.append(f"page error: {e}"))
        page.goto(path.as_uri(), wait_until="load")
        page.wait_for_timeout(500)
        for chart in page.locator(".js-plotly-plot").all():  # hover text is drawn from the same labels: still inert
            chart.scroll_into_view_if_needed()
            box = chart.bounding_box()
            if box:
                page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        assert page.evaluate("typeof window.__pwned") == "undefined", f"{path.name}: {page.evaluate('window.__pwned')} ran"
        # Escaped, not neutralised by the policy: no element of a payload exists, so the policy had nothing to refuse.
        assert problems == [], f"{path.name}: {len(problems)} problem(s), e.g. {[p[:300] for p in problems[:3]]}"
        live = page.locator("body img[onerror], body svg[onload], details[ontoggle], iframe, a[href^='javascript']").count()
        assert live == 0, f"{path.name}: {live} element(s) built from a payload"
        assert len(page.frames) == 1
        shown += page.evaluate("document.body.textContent")
        page.close()
    for name, payload in PAYLOADS.items():
        assert payload in shown, f"the {name} payload is not shown as text anywhere"
    assert max(p.stat().st_size for p in pages) < 15 * 1024**2


def test_the_policy_stops_a_script_that_reached_the_page_unescaped(browser, tmp_path):
    """Defence in depth: a raw HTML output (as if some value had skipped escaping) cannot run, while the chart
    that plotly drew in the same notebook still does."""
    import nbformat
    import plotly.graph_objects as go
    import plotly.io as pio
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    fig = go.Figure(go.Bar(x=["a", "b"], y=[1, 2])).to_dict()
    raw = ("<a href=\"javascript:window.__pwned='a'\">link</a><details ontoggle=\"window.__pwned='details'\">"
           "<summary>more</summary></details>" + "".join(PAYLOADS[k] for k in ("script", "img", "svg")))
    notebook = pio.renderers["notebook"]
    nb = new_notebook(cells=[new_code_cell("", outputs=[
        new_output("display_data", data={"text/html": _plotly_bundle_html(notebook)}),
        new_output("display_data", data=pio.renderers["plotly_mimetype"].to_mimebundle(fig) | notebook.to_mimebundle(fig)),
        new_output("display_data", data={"text/html": raw}),
    ])])
    nbformat.write(nb, tmp_path / "nb.ipynb")
    out = report.render_html(tmp_path / "nb.ipynb", tmp_path / "nb.html")
    assert "Content-Security-Policy" in out.read_text()
    page = browser.new_page()
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(out.as_uri(), wait_until="load")
    page.locator("details summary").first.click(timeout=5000)  # a toggle would fire ontoggle
    page.locator("a[href^='javascript']").first.click(timeout=5000)
    page.wait_for_timeout(300)
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert violations, "the browser refused nothing: is the policy in the page?"
    assert page.locator(".js-plotly-plot svg.main-svg").count() > 0, "the trusted chart was blocked too"
    page.close()


def _plotly_bundle_html(renderer) -> str:
    """The HTML that plotly's notebook renderer displays once per page (its plotly.js bundle)."""
    from unittest import mock

    shown: list[str] = []
    with mock.patch("plotly.io._base_renderers.ipython_display.display_html", lambda html, raw: shown.append(html)):
        renderer.activate()
    return shown[0]


def test_shared_assets_write_plotly_once_and_the_charts_still_draw(browser, tmp_path):
    """--shared-assets: two pages, one copy of plotly.js in assets/, each page a fraction of its size, charts drawn,
    and no data-carrying script moved out of the page (the figure stays inline, where the privacy check reads it)."""
    import nbformat
    import plotly.graph_objects as go
    import plotly.io as pio
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    notebook = pio.renderers["notebook"]
    fig = go.Figure(go.Bar(x=["a", "b"], y=[1, 2]))
    nb = new_notebook(cells=[new_code_cell("", outputs=[
        new_output("display_data", data={"text/html": _plotly_bundle_html(notebook)}),
        new_output("display_data", data=pio.renderers["plotly_mimetype"].to_mimebundle(fig) | notebook.to_mimebundle(fig)),
    ])])
    nbformat.write(nb, tmp_path / "nb.ipynb")
    alone = report.render_html(tmp_path / "nb.ipynb", tmp_path / "alone.html")
    pages = [report.render_html(tmp_path / "nb.ipynb", tmp_path / f"p{i}.html", assets=tmp_path / "assets") for i in (1, 2)]
    shared = list((tmp_path / "assets").iterdir())
    assert len(shared) == 1 and shared[0].read_text().startswith("/**\n* plotly.js v")
    assert all(p.stat().st_size < alone.stat().st_size / 10 for p in pages), [p.stat().st_size for p in pages]
    assert "'self'" in pages[0].read_text() and "'self'" not in alone.read_text()
    assert '"type":"bar"' in pages[0].read_text().replace(" ", "")  # the figure's data stayed in the page
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(pages[1].as_uri(), wait_until="load")
    page.wait_for_timeout(300)
    assert page.locator(".js-plotly-plot .bars path").count() == 2 and errors == []
    page.close()
