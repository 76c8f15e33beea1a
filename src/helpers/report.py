"""Report runs: execute the notebooks of a config with papermill, render offline HTML for stakeholders.

``python -m helpers.report run --config config/report.yaml [--param key=value ...] [--only NAME]``

- Parameters come from the config's global ``parameters``, then each
  notebook's own, then ``--param`` (``key=value`` for every notebook that
  declares ``key``, ``name.key=value`` for one notebook; values are YAML).
  Each is checked against the notebook's ``parameters`` cell: an unknown name
  is an error that lists the known ones with their types and defaults.
- A run is written to ``reports/.tmp-<run_id>/`` and moved to
  ``reports/<run_id>/`` (run id: UTC time plus a short hash of the config and
  overrides) only when every notebook ran, every HTML rendered and the
  privacy check passed; ``reports/latest`` then points to it. A failure keeps
  the partial run in ``reports/failed/<run_id>/`` and leaves ``latest`` and
  earlier runs untouched.
- The HTML has no code, no parameter cells, no warnings or logs; plotly.js is
  embedded once per file and nothing is fetched from the network.
- Privacy: no raw user id (from the processed events) or e-mail address may
  appear in any HTML; a run that would publish one fails.
- Hostile data: event names, channels and properties come from the tracked
  website, so every value from the data is escaped before it reaches HTML
  (:func:`escape`, :func:`say`, :func:`finding`, ``plots.styled`` and the
  plotly labels), and every page carries a Content-Security-Policy that lets
  only the scripts the renderer wrote run (by their SHA-256): no inline event
  handler, ``javascript:`` URL or injected ``<script>`` executes even if a
  value slipped through unescaped.

Exit codes: 0 success, 1 a notebook failed (or the privacy check did), 2 bad
configuration.

Notebooks talk to the run through :func:`record` (facts for the index, such
as the data range) and :func:`finding` (a sentence for the key findings);
both simply display or do nothing outside a run.
"""

from __future__ import annotations

import argparse
import datetime
import difflib
import functools
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
import pandas as pd
import yaml

from helpers import config

__all__ = [
    "ConfigError",
    "NotebookFailed",
    "NotebookSpec",
    "PrivacyError",
    "ReportConfig",
    "RunResult",
    "content_security_policy",
    "finding",
    "load_config",
    "notebook_parameters",
    "parse_overrides",
    "privacy_problems",
    "pseudonymize",
    "Prose",
    "escape",
    "record",
    "render_html",
    "resolve_parameters",
    "run",
    "say",
    "shorten",
]

RUN_DIR_ENV = "HELPERS_RUN_DIR"
RUN_SALT_ENV = "HELPERS_RUN_SALT"
HIDDEN_CELL_TAGS = {"parameters", "injected-parameters", "setup", "remove-cell"}
PACKAGES = ("ibis-framework", "duckdb", "pandas", "pyarrow", "numpy", "scikit-learn", "lifelines", "plotly",
            "seaborn", "papermill", "nbconvert")
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")


class ConfigError(ValueError):
    """A report configuration or parameter that cannot be run (exit code 2)."""


class NotebookFailed(RuntimeError):
    """A notebook raised; ``failed_dir`` keeps the partial run (exit code 1)."""

    def __init__(self, message: str, failed_dir: Path):
        super().__init__(message)
        self.failed_dir = failed_dir


class PrivacyError(NotebookFailed):
    """A rendered report would show raw user ids or e-mail addresses (exit code 1)."""


@dataclass
class NotebookSpec:
    """One notebook of a run: a short name, its path, its own parameters.

    ``index_first`` lists it first on the index page (the journey overview
    runs last but is read first).
    """

    name: str
    path: Path
    parameters: dict[str, Any] = field(default_factory=dict)
    index_first: bool = False


@dataclass
class ReportConfig:
    """A run: global parameters and the notebooks in execution order."""

    parameters: dict[str, Any]
    notebooks: list[NotebookSpec]
    source: Path | None = None
    title: str = "Customer journey report"
    privacy_ids_from: Path | None = None
    text: str = ""
    backend: str = "duckdb"
    spark_master: str | None = None


@dataclass
class RunResult:
    """A finished run: its folder, id, and seconds per notebook."""

    run_dir: Path
    run_id: str
    durations: dict[str, float]


# ----------------------------------------------------------------------------- config and parameters


def load_config(path: str | os.PathLike[str]) -> ReportConfig:
    """Read a report config (YAML).

    Keys: ``title``, ``parameters`` (for every notebook that declares them),
    ``notebooks`` (a list of ``{name, path, parameters, index_first}`` in
    execution order), ``privacy: {ids_from: <canonical events Parquet>}``, ``backend``
    (``duckdb``, the default, or ``pyspark``) and ``spark: {master: ...}``.

    Examples
    --------
    >>> cfg = load_config(config.CONFIG_DIR / "report.yaml")
    >>> cfg.notebooks[0].name, cfg.notebooks[0].path.name
    ('data_loading', '01_data_loading.ipynb')
    """
    path = config.resolve_path(path)
    try:
        text = path.read_text()
        raw = yaml.safe_load(text) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the report config: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with 'notebooks', got {type(raw).__name__}.")
    unknown = set(raw) - {"title", "parameters", "notebooks", "privacy", "backend", "spark"}
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {sorted(unknown)}; known: title, parameters, notebooks, privacy, "
                          "backend, spark.")
    backend = str(raw.get("backend") or "duckdb")
    if backend not in ("duckdb", "pyspark"):
        raise ConfigError(f"{path}: backend must be 'duckdb' or 'pyspark', got {backend!r}.")
    spark = raw.get("spark") or {}
    if not isinstance(spark, dict) or set(spark) - {"master"}:
        raise ConfigError(f"{path}: 'spark' takes {{master: ...}} (e.g. local[*] or spark://host:7077).")
    notebooks: list[NotebookSpec] = []
    for i, item in enumerate(raw.get("notebooks") or []):
        if not isinstance(item, dict) or "path" not in item:
            raise ConfigError(f"{path}: notebooks[{i}] needs at least a 'path'.")
        nb_path = config.resolve_path(item["path"])
        if not nb_path.exists():
            raise ConfigError(f"{path}: notebooks[{i}]: {nb_path} does not exist.")
        name = str(item.get("name") or nb_path.stem)
        if any(n.name == name for n in notebooks):
            raise ConfigError(f"{path}: two notebooks are named {name!r}.")
        params = item.get("parameters") or {}
        if not isinstance(params, dict):
            raise ConfigError(f"{path}: notebooks[{i}].parameters must be a mapping.")
        notebooks.append(NotebookSpec(name, nb_path, dict(params), bool(item.get("index_first", False))))
    if not notebooks:
        raise ConfigError(f"{path}: no notebooks listed under 'notebooks'.")
    params = raw.get("parameters") or {}
    if not isinstance(params, dict):
        raise ConfigError(f"{path}: 'parameters' must be a mapping.")
    ids_from = (raw.get("privacy") or {}).get("ids_from", "data/processed/events.parquet")
    return ReportConfig(dict(params), notebooks, path, str(raw.get("title") or ReportConfig.title),
                        config.resolve_path(ids_from) if ids_from else None, text, backend, spark.get("master"))


def parse_overrides(items: Iterable[str]) -> dict[str | None, dict[str, Any]]:
    """``--param`` strings to ``{notebook or None: {key: value}}``; values are read as YAML.

    Examples
    --------
    >>> parse_overrides(["start=2025-02-01", "funnel.steps=[visit, buy]", "window=14"])
    {None: {'start': '2025-02-01', 'window': 14}, 'funnel': {'steps': ['visit', 'buy']}}
    """
    out: dict[str | None, dict[str, Any]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--param {item!r}: expected key=value or notebook.key=value.")
        notebook, _, name = key.strip().rpartition(".")
        try:
            parsed = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError:
            parsed = value
        if isinstance(parsed, (datetime.date, datetime.datetime)):
            parsed = value  # YAML reads 2025-01-01 as a date; notebooks take dates as text
        out.setdefault(notebook or None, {})[name] = parsed
    return out


def notebook_parameters(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """The parameters a notebook declares: ``{name: {"type", "default", "help"}}``.

    Read from the cell tagged ``parameters`` with ``ast`` (papermill's own
    inspector cannot read annotations such as ``str | None``): each
    ``name: type = default  # help`` line, defaults as Python literals.
    """
    import ast

    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])]
    if not cells:
        return {}
    source = cells[0].source
    lines = source.splitlines()
    out: dict[str, dict[str, Any]] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            name, annotation = node.target.id, ast.unparse(node.annotation)
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name, annotation = node.targets[0].id, "None"
        else:
            continue
        try:
            default = ast.literal_eval(node.value) if node.value is not None else None
        except ValueError:
            default = ast.unparse(node.value)
        annotation = _typing_to_union(annotation)
        comment = lines[node.end_lineno - 1].partition("#")[2].strip() if "#" in lines[node.end_lineno - 1] else ""
        if annotation == "None" and default is not None:
            annotation = type(default).__name__
        out[name] = {"type": annotation, "default": default, "help": comment}
    return out


def _typing_to_union(annotation: str) -> str:
    """``Optional[str]`` and ``Union[str, dict, None]`` (what papermill can parse) as ``str | None``...

    Examples
    --------
    >>> _typing_to_union("Optional[str]"), _typing_to_union("Union[str, dict, None]"), _typing_to_union("list[str]")
    ('str | None', 'str | dict | None', 'list[str]')
    """
    m = re.fullmatch(r"(Optional|Union)\[(.*)\]", annotation.strip())
    if not m:
        return annotation
    parts = [p.strip() for p in re.split(r",(?![^\[]*\])", m.group(2))]
    return " | ".join(parts + (["None"] if m.group(1) == "Optional" else []))


_TYPE_CHECKS: dict[str, tuple[type, ...]] = {
    "str": (str,), "int": (int,), "float": (int, float), "bool": (bool,), "list": (list, tuple),
    "dict": (dict,), "None": (type(None),), "tuple": (list, tuple),
}


def _type_ok(value: Any, annotation: str) -> bool:
    """Loose check of a value against a parameter's annotation (``str | None``, ``list[str]``...)."""
    names = [re.sub(r"\[.*", "", part.strip()) for part in annotation.split("|")]
    if not names or any(n not in _TYPE_CHECKS for n in names):
        return True  # an annotation we do not understand is not checked
    if isinstance(value, bool) and "bool" not in names:
        return False
    return any(isinstance(value, _TYPE_CHECKS[n]) for n in names)


def _describe(declared: Mapping[str, Mapping[str, Any]]) -> str:
    return "; ".join(f"{n}: {p['type']} = {p['default']}" for n, p in declared.items()) or "(none)"


def resolve_parameters(cfg: ReportConfig, overrides: Mapping[str | None, Mapping[str, Any]] | None = None,
                       only: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """Merged and validated parameters per notebook: global, then the notebook's, then overrides.

    A global or command-line ``key`` goes to every notebook that declares it
    and must be declared by at least one; a notebook's own parameters and
    ``name.key`` overrides must be declared by that notebook.
    """
    overrides = dict(overrides or {})
    names = [nb.name for nb in cfg.notebooks]
    for target in [t for t in overrides if t is not None] + list(only or []):
        if target not in names:
            raise ConfigError(f"no notebook named {target!r} in {cfg.source}; notebooks: {', '.join(names)}.")
    declared = {nb.name: notebook_parameters(nb.path) for nb in cfg.notebooks}
    cli_shared = dict(overrides.get(None, {}))
    shared = {**cfg.parameters, **cli_shared}
    for key in shared:
        if not any(key in d for d in declared.values()):
            every = sorted({k for d in declared.values() for k in d})
            close = difflib.get_close_matches(key, every, n=1)
            raise ConfigError(
                f"parameter {key!r} is declared by no notebook{f' (did you mean {close[0]!r}?)' if close else ''}. "
                "Known parameters: "
                + " | ".join(f"{n}: {_describe(d)}" for n, d in declared.items()))
    merged: dict[str, dict[str, Any]] = {}
    for nb in cfg.notebooks:
        known = declared[nb.name]
        own = {**nb.parameters, **overrides.get(nb.name, {})}
        for key in own:
            if key not in known:
                close = difflib.get_close_matches(key, list(known), n=1)
                raise ConfigError(f"notebook {nb.name!r} ({nb.path.name}) has no parameter {key!r}"
                                  f"{f' (did you mean {close[0]!r}?)' if close else ''}. "
                                  f"Its parameters: {_describe(known)}.")
        # Precedence: config global < config notebook < command line global < command line notebook.key
        values = ({k: v for k, v in cfg.parameters.items() if k in known} | nb.parameters
                  | {k: v for k, v in cli_shared.items() if k in known} | overrides.get(nb.name, {}))
        for key, value in values.items():
            if not _type_ok(value, known[key]["type"]):
                raise ConfigError(f"notebook {nb.name!r}: parameter {key!r} should be {known[key]['type']}, "
                                  f"got {value!r} ({type(value).__name__}).")
        merged[nb.name] = values
    return merged


# ----------------------------------------------------------------------------- inside a notebook


def _run_dir() -> Path | None:
    value = os.environ.get(RUN_DIR_ENV)
    return Path(value) if value else None


def record(section: str, facts: Mapping[str, Any]) -> None:
    """Store facts about this run (e.g. the data range) for the index page; a no-op outside a run."""
    run_dir = _run_dir()
    if run_dir is None:
        return
    path = run_dir / "record.json"
    current = json.loads(path.read_text()) if path.exists() else {}
    current[section] = json.loads(json.dumps(facts, default=str))
    path.write_text(json.dumps(current, indent=2))


def shorten(value: Any, limit: int | None = 200) -> str:
    """``value`` as text of at most ``limit`` characters (an ellipsis marks the cut); ``None`` keeps it whole.

    Names from the data can be anything, a 5 MB event name included; labels
    and table cells show the start of it.

    Examples
    --------
    >>> shorten("checkout_started", 8)
    'checkout…'
    """
    text = str(value)
    return text if limit is None or len(text) <= limit else text[:limit] + "…"


def escape(value: Any, limit: int | None = 200) -> str:
    """Text from the data made safe for HTML: shortened (:func:`shorten`), then ``& < > " '`` escaped.

    Examples
    --------
    >>> escape('<img src=x onerror="alert(1)">')
    '&lt;img src=x onerror=&quot;alert(1)&quot;&gt;'
    """
    return html.escape(shorten(value, limit), quote=True)


class Prose:
    """A sentence (or a few) for a notebook and its HTML report, with every character of it escaped.

    The text is plain: only ```code``` spans are formatted. Markdown is not
    used on purpose: a value from the data interpolated into Markdown could
    carry raw HTML or a ``javascript:`` link.
    """

    limit = 5_000  # characters; a sentence built around a 5 MB event name stays readable

    def __init__(self, text: str, title: str | None = None):
        self.text, self.title = str(text), title

    def _repr_html_(self) -> str:
        body = re.sub(r"`([^`]+)`", r"<code>\1</code>", escape(self.text, self.limit))
        title = f"<b>{escape(self.title, self.limit)}.</b> " if self.title else ""
        return f"<p>{title}{body}</p>"

    def __repr__(self) -> str:
        return (f"{self.title}. " if self.title else "") + shorten(self.text, self.limit)


def say(text: str) -> Prose:
    """Show a sentence in a notebook and its report, escaped (use it instead of ``Markdown(f"...")``).

    Examples
    --------
    >>> say("3 users did <script>x</script>")._repr_html_()
    '<p>3 users did &lt;script&gt;x&lt;/script&gt;</p>'
    """
    return Prose(text)


def finding(title: str, text: str) -> Prose:
    """Show a key finding in the notebook and collect it for the report's index page.

    Returns a :class:`Prose` (escaped), so it is the cell's visible output.

    Examples
    --------
    >>> finding("Funnel", "most users drop at <b>checkout</b>")._repr_html_()
    '<p><b>Funnel.</b> most users drop at &lt;b&gt;checkout&lt;/b&gt;</p>'
    """
    run_dir = _run_dir()
    if run_dir is not None:
        with open(run_dir / "findings.jsonl", "a") as fh:
            fh.write(json.dumps({"notebook": os.environ.get("HELPERS_NOTEBOOK", ""), "title": title, "text": text}) + "\n")
    return Prose(text, title)


def pseudonymize(ids: pd.Series | Sequence[str], salt: str | None = None) -> pd.Series:
    """Pseudonymous ids for drill-down tables: a salted hash, stable within one run only.

    The salt is the run's own (``HELPERS_RUN_SALT``), so ids cannot be joined
    across runs or reversed without it; outside a run a fresh one is drawn.

    Examples
    --------
    >>> p = pseudonymize(["u1", "u2", "u1"], salt="s")
    >>> p.tolist()[0] == p.tolist()[2], p.tolist()[0] != p.tolist()[1], p.str.len().tolist()
    (True, True, [10, 10, 10])
    """
    salt = salt or os.environ.get(RUN_SALT_ENV) or secrets.token_hex(16)
    values = pd.Series(ids, dtype="string")
    return values.map(lambda v: "p" + hashlib.sha256(f"{salt}:{v}".encode()).hexdigest()[:9] if v is not pd.NA else v)


# ----------------------------------------------------------------------------- HTML


def _strip_external_scripts(text: str) -> str:
    # nbconvert's template adds require.js and MathJax from a CDN, plotly a MathJax per figure: offline they
    # only fail; nothing in a report needs them.
    return re.sub(r"<script[^>]*\bsrc=[\"']https?://[^\"']*[\"'][^>]*>\s*</script>", "", text)


_STYLE = """
<style>
  body { max-width: 1180px; margin: 0 auto; padding: 0 24px 48px; font-family: system-ui, -apple-system, "Segoe UI", sans-serif; }
  .report-header { border-bottom: 1px solid #ddd; margin: 24px 0 8px; padding-bottom: 8px; color: #444; font-size: 14px; }
  .report-header a { color: #1f5fa8; }
  .jp-RenderedHTMLCommon table, table.dataframe { display: block; max-width: 100%; overflow-x: auto; }
  .jp-RenderedHTMLCommon td, .jp-RenderedHTMLCommon th { white-space: nowrap; }
</style>
"""


def render_html(executed: str | os.PathLike[str], out: str | os.PathLike[str], *, header: str = "") -> Path:
    """Render an executed notebook to stakeholder HTML: prose, tables and charts only.

    Drops code, the (injected) parameter and setup cells, stderr and warnings,
    and external scripts; prepends ``header`` (HTML) to the body; and adds a
    Content-Security-Policy that lets only the scripts the renderer wrote run
    (see :func:`content_security_policy`).
    """
    from nbconvert.preprocessors import TagRemovePreprocessor

    nb = nbformat.read(executed, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs
                            if not (o.get("output_type") == "stream" and o.get("name") == "stderr")]
    exporter = _exporter()
    remover = TagRemovePreprocessor(remove_cell_tags=HIDDEN_CELL_TAGS, enabled=True)
    exporter.register_preprocessor(remover, enabled=True)
    body, _ = exporter.from_notebook_node(nb)
    body = _strip_external_scripts(body)
    policy = content_security_policy(body, _trusted_scripts(nb))
    body = re.sub(r"(<head[^>]*>)", lambda m: m.group(1) + f'\n<meta http-equiv="Content-Security-Policy" content="{policy}">',
                  body, count=1)
    body = body.replace("</head>", _STYLE + "</head>", 1)
    body = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + header, body, count=1)
    out = Path(out)
    out.write_text(body, encoding="utf-8")
    return out


def _exporter():
    from nbconvert import HTMLExporter

    return HTMLExporter(template_name="lab", exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)


_SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script\s*>", re.S | re.I)
_JS_TYPES = {"", "text/javascript", "application/javascript", "module"}
# Styles stay inline (plotly writes its own at run time; escaped text cannot open a style element);
# images are the embedded PNGs (data:) and plotly's downloads (blob:); nothing is fetched, framed or posted.
_CSP = ("default-src 'none'; script-src {scripts}; style-src 'unsafe-inline'; img-src data: blob:; font-src data:; "
        "base-uri 'none'; form-action 'none'")
_INDEX_CSP = _CSP.format(scripts="'none'")  # the index page runs no script at all


def _is_javascript(attrs: str) -> bool:
    m = re.search(r"""\btype\s*=\s*["']?([^"'\s>]+)""", attrs, flags=re.I)
    return (m.group(1).lower() if m else "") in _JS_TYPES


@functools.cache
def _template_scripts() -> frozenset[str]:
    """The inline scripts nbconvert's template writes into every page (an empty notebook rendered)."""
    body, _ = _exporter().from_notebook_node(nbformat.v4.new_notebook())
    return frozenset(b for _, b in _SCRIPT.findall(_strip_external_scripts(body)))


@functools.cache
def _plotly_bundle_scripts() -> frozenset[str]:
    """The plotly.js bundle and its config, as ``plots.init_notebook``'s renderer embeds them (whitespace-normalised
    for the short config script)."""
    from plotly.offline import get_plotlyjs

    out = {get_plotlyjs().strip()}
    try:
        from plotly.io._base_renderers import _mathjax_config, _window_plotly_config

        out.add(" ".join((_window_plotly_config + "\n" + _mathjax_config).split()))
    except ImportError:  # a plotly without these names: the bundle output is then not trusted, charts fail loudly
        pass
    return frozenset(out)


def _trusted_scripts(nb: nbformat.NotebookNode) -> set[str]:
    """Bodies of the scripts the renderer wrote: the template's, plotly's figures (their data is JSON inside the
    script, with ``<`` escaped by plotly) and the plotly.js bundle. Any other script in a page is not run."""
    trusted = set(_template_scripts())
    bundle = _plotly_bundle_scripts()
    for cell in nb.cells:
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            data = output.get("data", {})
            text = data.get("text/html")
            if not text:
                continue
            scripts = [b for _, b in _SCRIPT.findall(text if isinstance(text, str) else "".join(text))]
            if "application/vnd.plotly.v1+json" in data:
                trusted.update(scripts)
            elif scripts and all(b.strip() in bundle or " ".join(b.split()) in bundle for b in scripts):
                trusted.update(scripts)
    return trusted


def content_security_policy(page: str, trusted: Iterable[str]) -> str:
    """The policy for a rendered page: the SHA-256 of each inline script of ``page`` whose body is ``trusted``.

    No ``'unsafe-inline'`` for scripts: an inline event handler (``onerror=``),
    a ``javascript:`` URL or a script tag that is not the renderer's own is
    refused by the browser.

    Examples
    --------
    >>> page = "<script>draw()</script><script>alert(1)</script>"
    >>> content_security_policy(page, {"draw()"}).split("; ")[1]
    "script-src 'sha256-...'"
    """
    import base64

    trusted = set(trusted)
    hashes = sorted({"'sha256-" + base64.b64encode(hashlib.sha256(body.encode("utf-8")).digest()).decode() + "'"
                     for attrs, body in _SCRIPT.findall(page) if _is_javascript(attrs) and body in trusted})
    return _CSP.format(scripts=" ".join(hashes) or "'none'")


def _notebook_title(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            m = re.search(r"^#\s+(.+)$", cell.source, flags=re.M)
            if m:
                return m.group(1).strip()
    return path.stem


def _visible_text(text: str) -> str:
    """The HTML without plotly.js's own bundle (its license names an e-mail address), JSON escapes decoded.

    Decoding matters both ways: ``\\u2212`` (a minus sign) before ``56`` must not
    read as an id ``u221256``, and an id written with escapes must not hide.
    """
    text = re.sub(r"<script[^>]*>(?:(?!</script>).)*?\* plotly\.js v.*?</script>", "", text, flags=re.S)
    return re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), text)


def _load_ids(path: Path | None) -> set[str]:
    if path is None or not path.exists():
        return set()
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    ids = pc.unique(pq.read_table(path, columns=["user_id"]).column("user_id").combine_chunks())
    # Short or numeric-only ids would match ordinary numbers in a report; they are not checked.
    return {i for i in ids.to_pylist() if i and (len(i) >= 9 or (len(i) >= 4 and re.search(r"[A-Za-z]", i)))}


def privacy_problems(html_paths: Iterable[Path], ids: set[str]) -> list[str]:
    """Raw user ids or e-mail addresses found in rendered reports, as messages that do not repeat them."""
    problems = []
    for path in html_paths:
        text = _visible_text(path.read_text(encoding="utf-8"))
        emails = set(EMAIL.findall(text))
        tokens = set(re.split(r"[\s<>\"'=,;:(){}\[\]|/\\]+", text)) if ids else set()
        leaked = tokens & ids
        if emails:
            problems.append(f"{path.name}: {len(emails)} e-mail address(es)")
        if leaked:
            problems.append(f"{path.name}: {len(leaked)} raw user id(s); show counts or report.pseudonymize(ids)")
    return problems


# ----------------------------------------------------------------------------- running


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


def _fail(tmp: Path, reports_dir: Path, run_id: str, message: str, cls: type[NotebookFailed] = NotebookFailed):
    failed = reports_dir / "failed" / run_id
    failed.parent.mkdir(parents=True, exist_ok=True)
    (tmp / "error.txt").write_text(message + "\n")
    shutil.move(str(tmp), failed)
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
        quiet: bool = False, reports_dir: str | os.PathLike[str] | None = None) -> RunResult:
    """Execute the notebooks of a report config and publish the run atomically (see the module docstring).

    Raises :class:`ConfigError` before anything runs, :class:`NotebookFailed`
    (or :class:`PrivacyError`) after moving the partial run to
    ``reports/failed/<run_id>/``.
    """
    import papermill as pm
    from tqdm.auto import tqdm

    cfg = load_config(config_path)
    parsed = parse_overrides(overrides) if not isinstance(overrides, Mapping) else dict(overrides)
    params = resolve_parameters(cfg, parsed, only)
    reports = Path(reports_dir) if reports_dir else config.REPORTS_DIR
    reports.mkdir(parents=True, exist_ok=True)
    run_id = _run_id(cfg, parsed, only)
    tmp = reports / f".tmp-{run_id}"
    tmp.mkdir()
    selected = [nb for nb in cfg.notebooks if not only or nb.name in only]
    durations: dict[str, float] = {}
    started = time.time()
    from helpers.io import BACKEND_ENV, SPARK_MASTER_ENV

    saved_env = {k: os.environ.get(k) for k in (RUN_DIR_ENV, RUN_SALT_ENV, "HELPERS_NOTEBOOK", BACKEND_ENV,
                                                SPARK_MASTER_ENV)}
    os.environ[RUN_DIR_ENV], os.environ[RUN_SALT_ENV] = str(tmp), secrets.token_hex(16)
    os.environ[BACKEND_ENV] = cfg.backend  # the notebooks' kernels open their events on it
    if cfg.spark_master:
        os.environ[SPARK_MASTER_ENV] = cfg.spark_master
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
                _fail(tmp, reports, run_id, _describe_failure(nb.name, nb.path, executed, exc))
            durations[nb.name] = time.perf_counter() - t0
        record_facts = json.loads((tmp / "record.json").read_text()) if (tmp / "record.json").exists() else {}
        data = record_facts.get("data", {})
        run_date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started))
        data_range = f"data {data.get('first', '?')[:10]} to {data.get('last', '?')[:10]} (UTC)" if data else "data range unknown"
        titles = {nb.name: _notebook_title(nb.path) for nb in selected}
        htmls = []
        for nb in selected:
            header = (f'<div class="report-header"><a href="index.html">{html.escape(cfg.title)}</a> · '
                      f"run {run_date} · {html.escape(data_range)}</div>")
            htmls.append(render_html(tmp / nb.path.name, tmp / f"{nb.path.stem}.html", header=header))
        problems = privacy_problems(htmls, _load_ids(cfg.privacy_ids_from))
        if problems:
            _fail(tmp, reports, run_id, "privacy check failed, nothing published:\n  " + "\n  ".join(problems), PrivacyError)
        meta = {
            "run_id": run_id, "title": cfg.title, "config": str(cfg.source), "started": run_date,
            "seconds": round(time.time() - started, 1), "durations": {k: round(v, 1) for k, v in durations.items()},
            "parameters": params, "git_commit": _git_commit(), "versions": _versions(), "record": record_facts,
            "notebooks": [{"name": nb.name, "file": f"{nb.path.stem}.html", "title": titles[nb.name],
                           "index_first": nb.index_first} for nb in selected],
        }
        (tmp / "run.json").write_text(json.dumps(meta, indent=2, default=str))
        (tmp / "index.html").write_text(_index_html(meta, _findings(tmp, [nb.name for nb in selected])), encoding="utf-8")
        final = reports / run_id
        os.replace(tmp, final)
        _point_latest(reports, final)
    except BaseException:
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
    return RunResult(final, run_id, durations)


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


def _index_html(meta: Mapping[str, Any], findings: list[Mapping[str, str]]) -> str:
    esc = html.escape
    data = meta["record"].get("data", {})
    notebooks = sorted(meta["notebooks"], key=lambda n: not n["index_first"])
    rows = "".join(f'<tr><td><a href="{esc(n["file"])}">{esc(n["title"])}</a></td>'
                   f'<td style="text-align:right">{meta["durations"].get(n["name"], 0):.1f} s</td></tr>' for n in notebooks)
    found = "".join(f"<li><b>{esc(f['title'])}.</b> {esc(f['text'])}</li>" for f in findings) or "<li>No findings were recorded.</li>"
    quality = "".join(f"<tr><td>{esc(str(r['check']))}</td><td>{esc(str(r['value']))}</td></tr>" for r in data.get("summary", []))
    params = "".join(f"<tr><td>{esc(name)}</td><td><code>{esc(json.dumps(p, default=str))}</code></td></tr>"
                     for name, p in meta["parameters"].items())
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
    data_line = (f"Data: {esc(str(data.get('source', '?')))}, {esc(str(data.get('first', '?'))[:10])} to "
                 f"{esc(str(data.get('last', '?'))[:10])} (UTC)") if data else "Data: not recorded"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_INDEX_CSP}"><title>{esc(meta['title'])}</title>
<style>
 body {{ max-width: 960px; margin: 32px auto; padding: 0 24px; font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; }}
 h1 {{ margin-bottom: 4px; }} .meta {{ color: #555; margin-top: 0; }}
 table {{ border-collapse: collapse; margin: 8px 0 24px; display: block; max-width: 100%; overflow-x: auto; }}
 td, th {{ border-bottom: 1px solid #e3e3e3; padding: 6px 12px; text-align: left; vertical-align: top; }}
 .findings {{ background: #f5f8fc; border-left: 4px solid #1f5fa8; padding: 12px 24px; }}
 code {{ font-size: 12px; }} details {{ margin: 16px 0; }}
</style></head>
<body>
<h1>{esc(meta['title'])}</h1>
<p class="meta">Run {esc(meta['started'])} · {data_line}</p>
<section class="findings"><h2>Key findings</h2><ul>{found}</ul></section>
<h2>Reports</h2><table><tr><th>Report</th><th>Run time</th></tr>{rows}</table>
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
    p.add_argument("--quiet", action="store_true", help="no progress bars (for cron)")
    args = parser.parse_args(argv)
    try:
        result = run(args.config, overrides=args.param, only=args.only, quiet=args.quiet, reports_dir=args.reports_dir)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except NotebookFailed as exc:
        print(f"run failed: {exc}\npartial run kept in {exc.failed_dir}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("run interrupted; partial run kept under reports/failed/", file=sys.stderr)
        return 1
    if not args.quiet:
        for name, seconds in result.durations.items():
            print(f"  {name:28} {seconds:6.1f} s")
    print(f"report written to {result.run_dir} (reports/latest)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
