"""A report run: execute every notebook with papermill, render, check privacy, publish atomically, write the index.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import json
import os
import platform
import re
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import nbformat

from helpers import config
from helpers.report.notes import RUN_DIR_ENV, RUN_SALT_ENV
from helpers.report.pages import (
    _INDEX_CSP,
    _notebook_description,
    _notebook_title,
    _same_heading,
    finding_sections,
    render_html,
    sections,
)
from helpers.report.privacy import PrivacyError, _load_ids, check_id_source, privacy_problems
from helpers.report.settings import (
    ConfigError,
    NotebookFailed,
    ReportConfig,
    load_config,
    parse_overrides,
    resolve_parameters,
)
from helpers.report.workspace import (
    OWNER_FILE,
    changed_folders,
    claim,
    clean_abandoned,
    discard_workspace,
    open_workspace,
    publish_lock,
    publish_workspace,
    warn,
)

PACKAGES = ("ibis-framework", "duckdb", "pandas", "pyarrow", "numpy", "scikit-learn", "lifelines", "plotly",
            "seaborn", "papermill", "nbconvert")


@dataclass
class RunResult:
    """A finished run: its folder, id, seconds per notebook, and the data folders it changed but did not publish
    (a partial run that does not become ``latest``)."""

    run_dir: Path
    run_id: str
    durations: dict[str, float]
    unpublished: list[str] = field(default_factory=list)  # data folders a partial run changed but did not publish


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=config.PROJECT_ROOT, capture_output=True,
                             text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=config.PROJECT_ROOT,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def _run_id(cfg: ReportConfig, overrides: Mapping[str | None, Mapping[str, Any]], only: Sequence[str] | None) -> str:
    digest = hashlib.sha256(json.dumps([cfg.text, {str(k): v for k, v in overrides.items()}, list(only or [])],
                                       sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{digest}"


def _fail(tmp: Path, reports_dir: Path, run_id: str, message: str, cls: type[NotebookFailed] = NotebookFailed,
          workspace: Path | None = None):
    """Keep the partial run in ``reports/failed/<run_id>/`` (without its pages when they failed the privacy check:
    they show what must not be shown), delete its data copy, raise ``cls``."""
    discard_workspace(workspace)
    failed = reports_dir / "failed" / run_id
    try:
        if issubclass(cls, PrivacyError):
            for page in [*tmp.glob("*.html"), *tmp.glob("*.ipynb")]:
                page.unlink()
        (tmp / OWNER_FILE).unlink(missing_ok=True)
        failed.parent.mkdir(parents=True, exist_ok=True)
        (tmp / "error.txt").write_text(message + "\n")
        shutil.move(str(tmp), failed)
    except OSError as exc:  # a full disk: say what failed, keep what is there
        message += f"\n(the partial run could not be moved to {failed}: {exc.strerror}; it is in {tmp})"
        failed = tmp
    raise cls(message, failed)


def _describe_failure(name: str, path: Path, executed: Path, exc: Exception) -> str:
    """Which notebook and cell failed, and how: the cell numbered 1-based as in the source notebook."""
    ename, evalue = getattr(exc, "ename", type(exc).__name__), getattr(exc, "evalue", str(exc))
    where = "a cell"
    try:
        ran = nbformat.read(executed, as_version=4)
        failing = next(c for c in ran.cells if c.cell_type == "code"
                       and any(o.get("output_type") == "error" for o in c.get("outputs", [])))
        source = nbformat.read(path, as_version=4)
        number = next((i + 1 for i, c in enumerate(source.cells) if c.source == failing.source), None)
        lines = failing.source.splitlines() or [""]
        line_no = _failing_line(failing, len(lines))
        shown = (f"line {line_no}: {lines[line_no - 1].strip()[:100]}" if line_no
                 else lines[0].strip()[:100])
        where = (f"cell {number}" if number else "the injected parameters cell") + \
            f" (In [{failing.get('execution_count')}]), {shown}"
    except (StopIteration, OSError, ValueError):
        pass
    return f"notebook {name!r} ({path.name}) failed in {where}\n{ename}: {evalue}"


def _failing_line(cell: nbformat.NotebookNode, n_lines: int) -> int | None:
    """The line of ``cell`` that raised, from IPython's traceback ("Cell In[7], line 3"), 1-based."""
    error = next((o for o in cell.get("outputs", []) if o.get("output_type") == "error"), None)
    text = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(error.get("traceback", []))) if error else ""
    m = re.search(rf"Cell In\[{cell.get('execution_count')}\], line (\d+)", text)
    line = int(m.group(1)) if m else None
    return line if line and 1 <= line <= n_lines else None


def run(config_path: str | os.PathLike[str], *, overrides: Iterable[str] | Mapping = (), only: Sequence[str] | None = None,
        quiet: bool = False, reports_dir: str | os.PathLike[str] | None = None,
        latest: bool | None = None, shared_assets: bool = False) -> RunResult:
    """Execute the notebooks of a report config and publish the run atomically (see the module docstring).

    ``latest``: point ``reports/latest`` at the run. By default a full run does and a partial one (``only``)
    does not, so that stakeholders never open a one-page report as the latest.

    ``shared_assets``: write plotly.js once into the run's ``assets/`` folder instead of into every page (the
    pages then need that folder beside them; by default each page is self-contained).

    Raises :class:`ConfigError` before anything runs, :class:`NotebookFailed`
    (or :class:`PrivacyError`) after moving the partial run to
    ``reports/failed/<run_id>/``.
    """
    import papermill as pm
    from tqdm.auto import tqdm

    cfg = load_config(config_path)
    parsed = parse_overrides(overrides) if not isinstance(overrides, Mapping) else dict(overrides)
    params = resolve_parameters(cfg, parsed, only)
    check_id_source(cfg.privacy_ids_from)  # an unreadable id source is a configuration error before anything runs
    reports = Path(reports_dir) if reports_dir else config.REPORTS_DIR
    try:
        reports.mkdir(parents=True, exist_ok=True)
        with publish_lock():
            warn(clean_abandoned(reports))
        run_id, tmp = _reserve(reports, _run_id(cfg, parsed, only))
        claim(tmp)
        workspace = open_workspace(run_id)
    except OSError as exc:
        raise ConfigError(f"cannot start a run in {reports} and {config.INTERIM_DIR}: {exc.strerror} "
                          f"({exc.filename}); the reports and data folders must be writable.") from None
    selected = [nb for nb in cfg.notebooks if not only or nb.name in only]
    durations: dict[str, float] = {}
    started = time.time()
    from helpers.io import BACKEND_ENV, SPARK_MASTER_ENV

    saved_env = {k: os.environ.get(k) for k in (RUN_DIR_ENV, RUN_SALT_ENV, "HELPERS_NOTEBOOK", BACKEND_ENV,
                                                SPARK_MASTER_ENV, config.RUN_DATA_ENV)}
    os.environ[RUN_DIR_ENV], os.environ[RUN_SALT_ENV] = str(tmp), secrets.token_hex(16)
    os.environ[config.RUN_DATA_ENV] = str(workspace)  # hand-offs and audiences: this run's own copies
    os.environ[BACKEND_ENV] = cfg.backend  # the notebooks' kernels open their events on it
    if cfg.spark_master:
        os.environ[SPARK_MASTER_ENV] = cfg.spark_master
    becomes_latest = latest if latest is not None else not only
    try:
        bar = tqdm(selected, desc="notebooks", unit="nb", disable=quiet, leave=False)
        for nb in bar:
            bar.set_postfix_str(nb.name)
            os.environ["HELPERS_NOTEBOOK"] = nb.name
            executed = tmp / nb.path.name
            t0 = time.perf_counter()
            try:
                pm.execute_notebook(str(nb.path), str(executed), parameters=params[nb.name], cwd=str(nb.path.parent),
                                    progress_bar=not quiet, log_output=False, report_mode=True)
            except Exception as exc:  # PapermillExecutionError, a dead kernel, a missing kernel...
                durations[nb.name] = time.perf_counter() - t0
                _fail(tmp, reports, run_id, _describe_failure(nb.name, nb.path, executed, exc), workspace=workspace)
            durations[nb.name] = time.perf_counter() - t0
        try:
            final, unpublished = _render_and_publish(cfg, selected, params, durations, started, tmp, reports, run_id, workspace,
                                        becomes_latest, shared_assets)
        except OSError as exc:  # a full disk or a folder that became read-only while rendering or publishing
            _fail(tmp, reports, run_id, f"the run could not be written: {exc.strerror} ({exc.filename})",
                  workspace=workspace)
    except BaseException:
        discard_workspace(workspace)
        if tmp.exists():  # interrupted or failed outside a notebook: keep what there is for debugging
            failed = reports / "failed" / run_id
            failed.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(tmp), failed)
        raise
    finally:
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return RunResult(final, run_id, durations, unpublished)


def _reserve(reports: Path, base_id: str) -> tuple[str, Path]:
    """The run's id and its temporary folder, created; two runs of one config in the same second are numbered."""
    run_id = base_id
    for attempt in range(2, 1000):
        tmp = reports / f".tmp-{run_id}"
        if not (reports / run_id).exists() and not (reports / "failed" / run_id).exists():
            try:
                tmp.mkdir()
                return run_id, tmp
            except FileExistsError:
                pass
        run_id = f"{base_id}-{attempt}"
    raise ConfigError(f"{reports}: a thousand runs with the id {base_id} exist already.")


def _render_and_publish(cfg: ReportConfig, selected: list, params: dict, durations: dict[str, float], started: float,
                        tmp: Path, reports: Path, run_id: str, workspace: Path,
                        becomes_latest: bool, shared_assets: bool = False) -> tuple[Path, list[str]]:
    """Render every executed notebook, check privacy, write the index, then publish the run (its reports and, when
    it becomes ``latest``, its data folders) under one lock. Returns the published folder and the data folders
    the run changed but did not publish."""
    record_facts = json.loads((tmp / "record.json").read_text()) if (tmp / "record.json").exists() else {}
    data = record_facts.get("data", {})
    run_date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started))
    data_range = f"data {data.get('first', '?')[:10]} to {data.get('last', '?')[:10]} (UTC)" if data else "data range unknown"
    titles = {nb.name: _notebook_title(nb.path) for nb in selected}
    reading = sorted(selected, key=lambda nb: not nb.index_first)  # the order of the index
    htmls, anchors = [], {}
    for i, nb in enumerate(reading):
        pager = _pager(reading[i - 1] if i else None, reading[i + 1] if i + 1 < len(reading) else None, titles)
        header = (f'<div class="report-header"><a href="index.html">{html.escape(cfg.title)}</a> · '
                  f"run {run_date} · {html.escape(data_range)}</div>{pager}")
        page = render_html(tmp / nb.path.name, tmp / f"{nb.path.stem}.html", header=header, footer=pager,
                           assets=tmp / "assets" if shared_assets else None)
        htmls.append(page)
        found = sections(page.read_text(encoding="utf-8"))
        for title, heading in finding_sections(tmp / nb.path.name).items():
            anchor = next((a for a, text in found if heading and _same_heading(text, heading)), None)
            anchors[(nb.name, title)] = f"{page.name}#{anchor}" if anchor else page.name
    try:
        # this run's events (config.resolve_path points data/processed at the run's copy)
        ids = _load_ids(config.resolve_path(cfg.privacy_ids_from) if cfg.privacy_ids_from else None)
    except ConfigError as exc:  # the id source vanished or never appeared: no page is published unchecked
        _fail(tmp, reports, run_id, f"privacy check failed, nothing published: {exc}", PrivacyError, workspace)
    problems = privacy_problems(htmls, ids)
    if problems:
        _fail(tmp, reports, run_id, "privacy check failed, nothing published:\n  " + "\n  ".join(problems),
              PrivacyError, workspace)
    meta = {
        "run_id": run_id, "title": cfg.title, "config": str(cfg.source), "started": run_date,
        "seconds": round(time.time() - started, 1), "durations": {k: round(v, 1) for k, v in durations.items()},
        "parameters": params, "git_commit": _git_commit(), "versions": _versions(), "record": record_facts,
        "notebooks": [{"name": nb.name, "file": f"{nb.path.stem}.html", "title": titles[nb.name],
                       "description": _notebook_description(nb.path), "index_first": nb.index_first}
                      for nb in selected],
    }
    (tmp / "run.json").write_text(json.dumps(meta, indent=2, default=str))
    nb_files = {nb.name: f"{nb.path.stem}.html" for nb in selected}
    findings = [{**f, "href": anchors.get((f["notebook"], f.get("finding") if f.get("kind") == "tile" else f["title"]),
                                          f"{nb_files.get(f['notebook'], '')}")}
                for f in _findings(tmp, [nb.name for nb in selected])]
    (tmp / "index.html").write_text(_index_html(meta, findings), encoding="utf-8")
    (tmp / OWNER_FILE).unlink(missing_ok=True)
    final = reports / run_id
    unpublished: list[str] = []
    with publish_lock():  # the reports, the hand-offs and the audiences readers see come from one run
        if becomes_latest:
            publish_workspace(workspace, run_id)
        else:
            unpublished = changed_folders(workspace)
        os.replace(tmp, final)
        if becomes_latest:
            _point_latest(reports, final)
    discard_workspace(workspace)  # what was not published (a partial run's data) goes
    return final, unpublished


def _pager(previous, following, titles: Mapping[str, str]) -> str:
    """Previous / next links between the pages of a run, in the index's order."""
    def link(nb, arrow: str) -> str:
        if nb is None:
            return "<span></span>"
        text = html.escape(titles[nb.name])
        return f'<a href="{html.escape(nb.path.stem)}.html">{"← " if arrow == "prev" else ""}{text}{" →" if arrow == "next" else ""}</a>'
    return f'<nav class="pager" aria-label="Pages">{link(previous, "prev")}{link(following, "next")}</nav>'


def _point_latest(reports: Path, target: Path) -> None:
    link = reports / "latest"
    tmp_link = reports / f".latest-{target.name}"
    if tmp_link.is_symlink() or tmp_link.exists():
        tmp_link.unlink()
    tmp_link.symlink_to(target.name, target_is_directory=True)
    os.replace(tmp_link, link)  # atomic: readers see the old run or the new one, never neither


def _findings(run_dir: Path, order: list[str]) -> list[dict[str, str]]:
    path = run_dir / "findings.jsonl"
    if not path.exists():
        return []
    items = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    rank = {name: i for i, name in enumerate(order)}
    return sorted(items, key=lambda f: rank.get(f["notebook"], len(rank)))


_INDEX_STYLE = """
 body { max-width: 960px; margin: 32px auto; padding: 0 24px; font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; }
 h1 { margin-bottom: 4px; } .meta { color: #555; margin-top: 0; }
 a { color: #1f5fa8; }
 table { border-collapse: collapse; margin: 8px 0 24px; max-width: 100%; }
 td, th { border-bottom: 1px solid #e3e3e3; padding: 6px 12px; text-align: left; vertical-align: top; overflow-wrap: anywhere; }
 .tiles { display: grid; grid-template-columns: repeat(auto-fill, minmax(160px, 1fr)); gap: 12px; margin: 20px 0; }
 .tile { display: block; border: 1px solid #dde3ea; border-radius: 8px; padding: 12px 14px; text-decoration: none; color: #222; }
 .tile:hover { border-color: #1f5fa8; }
 .tile .value { display: block; font-size: 28px; font-weight: 600; color: #1f3b57; }
 .tile .label { display: block; font-size: 14px; margin-top: 2px; }
 .tile .detail { display: block; font-size: 12px; color: #555; margin-top: 4px; }
 .findings { background: #f5f8fc; border-left: 4px solid #1f5fa8; padding: 8px 24px 12px; }
 .findings li, .pages li, .more li { margin: 6px 0; }
 .pages .time { color: #777; font-size: 12px; }
 code { font-size: 12px; } details { margin: 16px 0; }
 @media (max-width: 640px) { body { padding: 0 12px; margin-top: 16px; } .tiles { grid-template-columns: 1fr 1fr; }
   .tile .value { font-size: 22px; } }
"""


def _index_html(meta: Mapping[str, Any], findings: list[Mapping[str, str]]) -> str:
    """The front page: headline numbers as tiles, what matters most (the ranked findings, each linking to its
    section), the pages with a line each, the other findings, then data quality and how the run was made."""
    esc = html.escape
    data = meta["record"].get("data", {})
    notebooks = sorted(meta["notebooks"], key=lambda n: not n["index_first"])
    tiles = [f for f in findings if f.get("kind") == "tile"]
    notes = [f for f in findings if f.get("kind") != "tile"]
    key = sorted((f for f in notes if f.get("key") is not None), key=lambda f: f["key"])
    rest = [f for f in notes if f.get("key") is None]

    def item(f: Mapping[str, str]) -> str:
        head = (f'<b><a href="{esc(f["href"])}">{esc(f["title"])}</a>.</b> ' if f.get("href") else
                f"<b>{esc(f['title'])}.</b> ")
        return f"<li>{head}{esc(f['text'])}</li>"

    tile_html = "".join(f'<a class="tile" href="{esc(t["href"])}"><span class="value">{esc(t["value"])}</span>'
                        f'<span class="label">{esc(t["label"])}</span><span class="detail">{esc(t["detail"])}</span></a>'
                        for t in tiles)
    first = "".join(item(f) for f in key) if key else "".join(item(f) for f in rest[:5])
    more = "".join(item(f) for f in (rest if key else rest[5:]))
    pages = "".join(f'<li><a href="{esc(n["file"])}">{esc(n["title"])}</a>'
                    f'{" — " + esc(n["description"]) if n.get("description") else ""} '
                    f'<span class="time">({meta["durations"].get(n["name"], 0):.1f} s)</span></li>' for n in notebooks)
    quality = "".join(f"<tr><td>{esc(str(r['check']))}</td><td>{esc(str(r['value']))}</td></tr>" for r in data.get("summary", []))
    params = "".join(f"<tr><td>{esc(name)}</td><td><code>{esc(json.dumps(p, default=str))}</code></td></tr>"
                     for name, p in meta["parameters"].items())
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
    data_line = (f"Data: {esc(str(data.get('source', '?')))}, {esc(str(data.get('first', '?'))[:10])} to "
                 f"{esc(str(data.get('last', '?'))[:10])} (UTC)") if data else "Data: not recorded"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{_INDEX_CSP}"><title>{esc(meta['title'])}</title>
<style>{_INDEX_STYLE}</style></head>
<body>
<h1>{esc(meta['title'])}</h1>
<p class="meta">Run {esc(meta['started'])} · {data_line}</p>
{f'<section class="tiles" aria-label="Headline numbers">{tile_html}</section>' if tile_html else ''}
<section class="findings"><h2>What matters most</h2><ol>{first or '<li>No findings were recorded.</li>'}</ol></section>
<h2>The pages</h2><ul class="pages">{pages}</ul>
{f'<h2>Other findings</h2><ul class="more">{more}</ul>' if more else ''}
<h2>Data quality</h2><table>{quality or '<tr><td>not recorded</td></tr>'}</table>
<details><summary>How this run was made</summary>
<table><tr><td>run id</td><td>{esc(meta['run_id'])}</td></tr>
<tr><td>config</td><td>{esc(Path(meta['config']).name)}</td></tr>
<tr><td>git commit</td><td>{esc(str(meta['git_commit'] or 'not a git checkout'))}</td></tr>
<tr><td>total time</td><td>{meta['seconds']:.1f} s</td></tr>
<tr><td>packages</td><td>{esc(versions)}</td></tr></table>
<h3>Parameters</h3><table>{params}</table></details>
</body></html>
"""


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m helpers.report run --config FILE [--param k=v ...] [--only NAME] [--quiet]``."""
    parser = argparse.ArgumentParser(prog="python -m helpers.report", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="execute the notebooks of a report config and render the HTML reports")
    p.add_argument("--config", default=str(config.CONFIG_DIR / "report.yaml"), help="report config (YAML)")
    p.add_argument("--param", action="append", default=[], metavar="[NOTEBOOK.]KEY=VALUE",
                   help="override a parameter (repeatable; the value is read as YAML)")
    p.add_argument("--only", action="append", default=None, metavar="NAME",
                   help="run only this notebook (repeatable; the others' outputs must already exist)")
    p.add_argument("--reports-dir", default=None, help="where runs are written (default: reports/)")
    p.add_argument("--latest", action="store_true",
                   help="point reports/latest at this run even when it is partial (--only)")
    p.add_argument("--quiet", action="store_true", help="no progress bars (for cron)")
    p.add_argument("--shared-assets", action="store_true",
                   help="write plotly.js once per run (assets/) instead of into every page; pages then need that folder")
    r = sub.add_parser("readme", help="rewrite the README's marked numbers from a run's record (reports/latest)")
    r.add_argument("--run", default=str(config.REPORTS_DIR / "latest"),
                   help="the run folder whose record.json the numbers come from")
    r.add_argument("--readme", default=str(config.PROJECT_ROOT / "README.md"))
    r.add_argument("--check", action="store_true", help="only list the numbers that are stale (exit 1 if any)")
    args = parser.parse_args(argv)
    if args.command == "readme":
        from helpers.report.readme import update

        changed = update(args.readme, args.run, check=args.check)
        for line in changed:
            print(("stale: " if args.check else "updated: ") + line)
        return 1 if (changed and args.check) else 0
    try:
        result = run(args.config, overrides=args.param, only=args.only, quiet=args.quiet, reports_dir=args.reports_dir,
                     latest=True if args.latest else None, shared_assets=args.shared_assets)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except NotebookFailed as exc:
        print(f"run failed: {exc}\npartial run kept in {exc.failed_dir}", file=sys.stderr)
        return 1
    except OSError as exc:  # the disk filled up, or a folder became unwritable, outside any notebook
        print(f"run failed: {exc.strerror or exc} ({exc.filename}); nothing was published", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("run interrupted; partial run kept under reports/failed/", file=sys.stderr)
        return 1
    if not args.quiet:
        for name, seconds in result.durations.items():
            print(f"  {name:28} {seconds:6.1f} s")
    published = args.latest or not args.only
    print(f"report written to {result.run_dir}" + (" (reports/latest)" if published else
                                                    " (a partial run: reports/latest unchanged; --latest to point it here)"))
    if result.unpublished:
        print(f"this partial run changed {' and '.join('data/' + f for f in result.unpublished)}, which stays as the "
              "latest run left it; rerun with --latest to publish them with this run", file=sys.stderr)
    return 0
