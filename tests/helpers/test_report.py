"""helpers.report: parameters, atomic runs, failures, HTML for stakeholders, privacy."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from report_runs import make_notebook

from helpers import report
from helpers.report import ConfigError, NotebookFailed, PrivacyError


def make_config(tmp_path: Path, notebooks: list[dict], parameters: dict | None = None, ids_from: str | None = None) -> Path:
    cfg = {"title": "Test report", "parameters": parameters or {}, "notebooks": notebooks,
           "privacy": {"ids_from": ids_from}}
    path = tmp_path / "report.yaml"
    path.write_text(json.dumps(cfg))  # JSON is YAML
    return path


@pytest.fixture
def two_notebooks(tmp_path):
    first = make_notebook(tmp_path / "01_first.ipynb", [
        "from helpers import report",
        'report.record("data", {"source": "toy", "first": "2025-01-01T00:00:00", "last": "2025-01-31T00:00:00", '
        '"summary": [{"check": "events", "value": "3"}]})',
        'import sys; print("log line for the analyst", file=sys.stderr)',
        'report.finding("Answer", f"the label is {label}, 6 x 7 = {6 * 7}")',
        "checked = True\nif fail: raise ValueError('planted failure')",
    ])
    second = make_notebook(tmp_path / "02_second.ipynb", ["x = 1 + 1", "print('second ran', x, label)"])
    return tmp_path, first, second


# ----------------------------------------------------------------------------- parameters


def test_parameters_merge_global_then_notebook_then_command_line(two_notebooks):
    tmp, first, second = two_notebooks
    cfg = report.load_config(make_config(tmp, [
        {"name": "first", "path": str(first), "parameters": {"label": "from-notebook"}},
        {"name": "second", "path": str(second)},
    ], parameters={"label": "from-global"}))
    assert report.resolve_parameters(cfg) == {"first": {"label": "from-notebook"}, "second": {"label": "from-global"}}
    cli = report.parse_overrides(["label=from-cli"])
    assert report.resolve_parameters(cfg, cli) == {"first": {"label": "from-cli"}, "second": {"label": "from-cli"}}
    cli = report.parse_overrides(["label=from-cli", "second.label=only-second", "first.fail=true"])
    assert report.resolve_parameters(cfg, cli) == {"first": {"label": "from-cli", "fail": True},
                                                   "second": {"label": "only-second"}}


def test_an_unknown_parameter_lists_the_known_ones_with_types_and_defaults(two_notebooks):
    tmp, first, _ = two_notebooks
    cfg = report.load_config(make_config(tmp, [{"name": "first", "path": str(first)}]))
    with pytest.raises(ConfigError) as err:
        report.resolve_parameters(cfg, report.parse_overrides(["lable=x"]))
    msg = str(err.value)
    assert "'lable'" in msg and "did you mean 'label'" in msg
    assert "label: str = a" in msg and "fail: bool = False" in msg
    with pytest.raises(ConfigError, match="notebook 'first' .* has no parameter 'colour'"):
        report.resolve_parameters(cfg, report.parse_overrides(["first.colour=red"]))


def test_a_parameter_of_the_wrong_type_is_refused(two_notebooks):
    tmp, first, _ = two_notebooks
    cfg = report.load_config(make_config(tmp, [{"name": "first", "path": str(first)}]))
    with pytest.raises(ConfigError, match=r"'fail' should be bool, got 'yes please' \(str\)"):
        report.resolve_parameters(cfg, report.parse_overrides(["fail=yes please"]))


def test_notebook_parameters_read_union_annotations_and_comments():
    from helpers import config

    declared = report.notebook_parameters(config.NOTEBOOKS_DIR / "01_data_loading.ipynb")
    assert declared["source"]["type"] == "str | None" and declared["source"]["default"] is None
    assert declared["output"]["default"] == "data/processed/events.parquet"
    assert "canonical events" in declared["output"]["help"]


@pytest.mark.parametrize("content, match", [
    ({"notebooks": []}, "no notebooks listed"),
    ({"notebooks": [{"path": "notebooks/nope.ipynb"}]}, "does not exist"),
    ({"notebooks": [{"name": "x"}]}, "needs at least a 'path'"),
    ({"notebook": []}, "unknown key"),
    ({"notebooks": [{"path": "notebooks"}]}, "is a folder, not a notebook"),
])
def test_bad_configs_are_config_errors(tmp_path, content, match):
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps(content))
    with pytest.raises(ConfigError, match=match):
        report.load_config(path)


def test_only_must_name_a_notebook(two_notebooks):
    tmp, first, _ = two_notebooks
    cfg = report.load_config(make_config(tmp, [{"name": "first", "path": str(first)}]))
    with pytest.raises(ConfigError, match="no notebook named 'funnel'.*notebooks: first"):
        report.resolve_parameters(cfg, only=["funnel"])


def test_bad_configuration_exits_with_code_2(tmp_path, capsys):
    assert report.main(["run", "--config", str(tmp_path / "missing.yaml"), "--reports-dir", str(tmp_path / "r")]) == 2
    assert "configuration error" in capsys.readouterr().err


# ----------------------------------------------------------------------------- runs


def test_a_run_publishes_html_an_index_and_latest(two_notebooks):
    tmp, first, second = two_notebooks
    cfg = make_config(tmp, [{"name": "first", "path": str(first)}, {"name": "second", "path": str(second), "index_first": True}])
    result = report.run(cfg, quiet=True, reports_dir=tmp / "reports")
    run_dir = result.run_dir
    assert run_dir.parent == tmp / "reports" and re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{8}", result.run_id)
    assert (tmp / "reports" / "latest").resolve() == run_dir.resolve()
    assert sorted(p.name for p in run_dir.glob("*.html")) == ["01_first.html", "02_second.html", "index.html"]
    assert set(result.durations) == {"first", "second"}
    assert not list((tmp / "reports").glob(".tmp-*"))

    page = (run_dir / "01_first.html").read_text()
    assert "the label is a, 6 x 7 = 42" in page  # the finding is shown
    assert "report.finding" not in page and "raise ValueError" not in page  # no code
    assert "log line for the analyst" not in page  # no stderr
    assert 'fail: bool = False' not in page  # no parameters cell
    assert not re.search(r"<script[^>]*src=\"https?://", page)  # nothing fetched from a CDN
    assert "data 2025-01-01 to 2025-01-31 (UTC)" in page  # header with the data range

    index = (run_dir / "index.html").read_text()
    assert '<b><a href="01_first.html">Answer</a>.</b> the label is a, 6 x 7 = 42' in index  # linked to its page
    assert index.index("Title of 02_second") < index.index("Title of 01_first")  # index_first
    assert "toy, 2025-01-01 to 2025-01-31" in index and "<td>events</td><td>3</td>" in index
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["parameters"] == {"first": {}, "second": {}} and "duckdb" in meta["versions"]


def test_a_failing_notebook_exits_1_keeps_the_partial_run_and_leaves_latest_alone(two_notebooks, capsys):
    tmp, first, second = two_notebooks
    cfg = make_config(tmp, [{"name": "first", "path": str(first)}, {"name": "second", "path": str(second)}])
    reports_dir = tmp / "reports"
    good = report.run(cfg, quiet=True, reports_dir=reports_dir)

    code = report.main(["run", "--config", str(cfg), "--param", "first.fail=true", "--quiet",
                        "--reports-dir", str(reports_dir)])
    err = capsys.readouterr().err
    assert code == 1
    # the line that raised, not the first line of its cell
    assert "notebook 'first' (01_first.ipynb) failed in cell 7 (In [7]), line 2: if fail: raise ValueError" in err
    assert "ValueError: planted failure" in err
    failed = list((reports_dir / "failed").iterdir())
    assert len(failed) == 1 and (failed[0] / "01_first.ipynb").exists() and (failed[0] / "error.txt").exists()
    assert not (failed[0] / "02_second.ipynb").exists()  # the run stopped at the failure
    assert (reports_dir / "latest").resolve() == good.run_dir.resolve()
    assert [p.name for p in reports_dir.iterdir() if p.name[0].isdigit()] == [good.run_id]  # nothing half-published
    assert not list(reports_dir.glob(".tmp-*"))


def test_reruns_with_the_same_config_give_the_same_outputs(two_notebooks):
    tmp, first, second = two_notebooks
    cfg = make_config(tmp, [{"name": "first", "path": str(first)}, {"name": "second", "path": str(second)}])
    runs = [report.run(cfg, quiet=True, reports_dir=tmp / f"r{i}") for i in range(2)]

    def outputs(run_dir: Path) -> list:
        nb = nbformat.read(run_dir / "02_second.ipynb", as_version=4)
        return [o.get("text") for c in nb.cells if c.cell_type == "code" for o in c.outputs]

    assert outputs(runs[0].run_dir) == outputs(runs[1].run_dir) == ["second ran 2 a\n"]
    assert runs[0].run_id.split("-")[1] == runs[1].run_id.split("-")[1]  # same config hash


# ----------------------------------------------------------------------------- privacy


def test_a_report_that_would_show_a_raw_user_id_or_email_is_not_published(tmp_path):
    ids = tmp_path / "events.parquet"
    pd.DataFrame({"user_id": ["customer-000123", "customer-000456"]}).to_parquet(ids)
    leaky = make_notebook(tmp_path / "01_leaky.ipynb", ["print('top customer: customer-000123')"])
    cfg = make_config(tmp_path, [{"name": "leaky", "path": str(leaky)}], ids_from=str(ids))
    with pytest.raises(PrivacyError, match=r"01_leaky.html: 1 raw user id") as err:
        report.run(cfg, quiet=True, reports_dir=tmp_path / "reports")
    assert "customer-000123" not in str(err.value)  # the message does not repeat the id
    assert not (tmp_path / "reports" / "latest").exists()
    assert isinstance(err.value, NotebookFailed)
    # the failed run keeps why, not the pages that show the id (a workflow may upload reports/failed)
    kept = {p.name for p in err.value.failed_dir.iterdir()}
    assert "error.txt" in kept and not [k for k in kept if k.endswith((".html", ".ipynb"))]
    assert not any("customer-000123" in p.read_text(errors="replace") for p in err.value.failed_dir.rglob("*")
                   if p.is_file())


def test_privacy_check_finds_emails_but_ignores_plotlys_own_bundle(tmp_path):
    page = tmp_path / "a.html"
    page.write_text("<script>/**\n* plotly.js v4.1.1\n* feross@feross.org */</script><p>fine</p>")
    assert report.privacy_problems([page], set()) == []
    page.write_text("<p>contact jane.doe@example.com</p>")
    assert report.privacy_problems([page], set()) == ["a.html: 1 e-mail address(es)"]


def test_pseudonymize_is_stable_within_a_salt_and_differs_across_salts():
    a = report.pseudonymize(pd.Series(["u1", "u2", "u1"]), salt="run-1")
    b = report.pseudonymize(pd.Series(["u1"]), salt="run-2")
    assert a[0] == a[2] != a[1] and a[0] != b[0]
    assert a.str.fullmatch(r"p[0-9a-f]{9}").all()


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[2] / "config").glob("report*.yaml")), ids=lambda p: p.name)
def test_shipped_report_configs_are_valid(path):
    cfg = report.load_config(path)
    params = report.resolve_parameters(cfg)
    assert set(params) == {nb.name for nb in cfg.notebooks}


def test_privacy_check_decodes_json_escapes_before_matching_ids(tmp_path):
    page = tmp_path / "a.html"
    page.write_text('<script>{"text": ["905 (74.6%)\\u003cbr\\u003e\\u221256 from previous"]}</script>')
    assert report.privacy_problems([page], {"u221256"}) == []
    page.write_text('<script>{"x": ["\\u0075221256"]}</script>')  # the id itself, escaped
    assert report.privacy_problems([page], {"u221256"}) == ["a.html: 1 raw user id(s); show counts or report.pseudonymize(ids)"]


def test_the_backend_comes_from_the_config(tmp_path):
    from helpers.report import ConfigError, load_config

    base = "notebooks:\n  - name: a\n    path: notebooks/01_data_loading.ipynb\n"
    (tmp_path / "spark.yaml").write_text(base + "backend: pyspark\nspark: {master: 'local[2]'}\n")
    cfg = load_config(tmp_path / "spark.yaml")
    assert (cfg.backend, cfg.spark_master) == ("pyspark", "local[2]")
    assert load_config("config/report.yaml").backend == "duckdb"
    (tmp_path / "bad.yaml").write_text(base + "backend: snowflake\n")
    with pytest.raises(ConfigError, match="backend must be 'duckdb' or 'pyspark'"):
        load_config(tmp_path / "bad.yaml")


def test_privacy_check_finds_ids_glued_into_names_with_underscores_or_hyphens(tmp_path):
    from helpers.report.privacy import privacy_problems

    page = tmp_path / "p.html"
    ids = {"u000001", "anon-7f3a9c21e0b4", "user_00042"}
    for text, leaks in [("<p>email_open_u000001</p>", 1), ("<p>session u000001-s3</p>", 1),
                        ("<p>seen on anon-7f3a9c21e0b4-2</p>", 1), ("<p>key user_00042_x and u000001</p>", 2),
                        ("<p>u0000012 and anon-7f3a9c21e0b</p>", 0)]:
        page.write_text(f"<html><body>{text}</body></html>")
        problems = privacy_problems([page], ids)
        assert (f"{leaks} raw user id(s)" in problems[0]) if leaks else problems == [], text


def test_a_partial_run_never_becomes_latest_unless_asked(two_notebooks, capsys):
    tmp, first, second = two_notebooks
    cfg = make_config(tmp, [{"name": "first", "path": str(first)}, {"name": "second", "path": str(second)}])
    reports_dir = tmp / "reports"
    full = report.run(cfg, quiet=True, reports_dir=reports_dir)
    assert report.main(["run", "--config", str(cfg), "--only", "second", "--quiet", "--reports-dir", str(reports_dir)]) == 0
    assert "reports/latest unchanged" in capsys.readouterr().out
    assert (reports_dir / "latest").resolve() == full.run_dir.resolve()
    asked = report.run(cfg, only=["second"], quiet=True, reports_dir=reports_dir, latest=True)
    assert (reports_dir / "latest").resolve() == asked.run_dir.resolve()


def test_a_wrong_privacy_id_source_is_an_error_not_a_silent_skip(two_notebooks, capsys):
    tmp, first, second = two_notebooks
    nbs = [{"name": "second", "path": str(second)}]
    not_parquet = tmp / "ids.csv"
    not_parquet.write_text("user_id\nu1\n")
    code = report.main(["run", "--config", str(make_config(tmp, nbs, ids_from=str(not_parquet))), "--quiet",
                        "--reports-dir", str(tmp / "r1")])
    assert code == 2 and "is not a readable Parquet file" in capsys.readouterr().err
    assert not (tmp / "r1").exists() or not list((tmp / "r1").iterdir())  # nothing ran
    code = report.main(["run", "--config", str(make_config(tmp, nbs, ids_from=str(tmp / "typo.parquet"))), "--quiet",
                        "--reports-dir", str(tmp / "r2")])
    assert code == 1 and "does not exist after the run" in capsys.readouterr().err
    assert not (tmp / "r2" / "latest").exists()


def test_two_runs_with_the_same_run_id_are_numbered_not_a_traceback(two_notebooks, monkeypatch):
    from helpers.report import runner

    tmp, first, second = two_notebooks
    cfg = make_config(tmp, [{"name": "second", "path": str(second)}])
    monkeypatch.setattr(runner, "_run_id", lambda *a: "20250101T000000Z-same")  # as if started in the same second
    a = report.run(cfg, quiet=True, reports_dir=tmp / "reports")
    b = report.run(cfg, quiet=True, reports_dir=tmp / "reports")
    assert (a.run_id, b.run_id) == ("20250101T000000Z-same", "20250101T000000Z-same-2")
    assert (tmp / "reports" / "latest").resolve() == b.run_dir.resolve()


def test_a_date_anywhere_in_a_parameter_is_passed_as_text(two_notebooks):
    tmp, first, second = two_notebooks
    nb = make_notebook(tmp / "03_dates.ipynb", ["print('cuts', cuts, type(cuts[0]).__name__)"],
                       params="cuts: list = []  # dates")
    (tmp / "dates.yaml").write_text("notebooks:\n  - {name: dates, path: %s, parameters: {cuts: [2025-01-01]}}\n"
                                    "privacy: {ids_from: null}\n" % nb)
    assert report.parse_overrides(["cuts=[2025-02-01, {at: 2025-03-01}]"]) == \
        {None: {"cuts": ["2025-02-01", {"at": "2025-03-01"}]}}
    result = report.run(tmp / "dates.yaml", quiet=True, reports_dir=tmp / "reports")
    ran = nbformat.read(result.run_dir / "03_dates.ipynb", as_version=4)
    assert "cuts ['2025-01-01'] str" in "".join(o.get("text", "") for c in ran.cells if c.cell_type == "code"
                                                  for o in c.outputs)


def test_a_reports_folder_that_cannot_be_written_is_a_configuration_error(two_notebooks, capsys):
    tmp, first, second = two_notebooks
    cfg = make_config(tmp, [{"name": "second", "path": str(second)}])
    (tmp / "a_file").write_text("")  # a folder under a file cannot be made, even by root
    code = report.main(["run", "--config", str(cfg), "--quiet", "--reports-dir", str(tmp / "a_file" / "reports")])
    err = capsys.readouterr().err
    assert code == 2 and "cannot start a run in" in err and "must be writable" in err and "Traceback" not in err


def test_a_full_disk_while_rendering_fails_the_run_by_name_and_publishes_nothing(two_notebooks, capsys, monkeypatch):
    import errno

    from helpers.report import runner

    tmp, first, second = two_notebooks
    cfg = make_config(tmp, [{"name": "second", "path": str(second)}])

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp / "reports" / "x.html"))

    monkeypatch.setattr(runner, "render_html", full)
    code = report.main(["run", "--config", str(cfg), "--quiet", "--reports-dir", str(tmp / "reports")])
    err = capsys.readouterr().err
    assert code == 1 and "the run could not be written: No space left on device" in err and "Traceback" not in err
    assert not (tmp / "reports" / "latest").exists() and not list((tmp / "reports").glob(".tmp-*"))
