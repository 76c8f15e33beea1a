"""Executed notebooks to stakeholder HTML: no code, plotly.js once per file, and a Content-Security-Policy.

The policy lets only the scripts the renderer wrote run, by their SHA-256.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from pathlib import Path
from typing import Iterable

import nbformat

HIDDEN_CELL_TAGS = {"parameters", "injected-parameters", "setup", "remove-cell", "analyst"}  # analyst: notes for JupyterLab only


def _strip_external_scripts(text: str) -> str:
    # nbconvert's template adds require.js and MathJax from a CDN, plotly a MathJax per figure: offline they
    # only fail; nothing in a report needs them.
    return re.sub(r"<script[^>]*\bsrc=[\"']https?://[^\"']*[\"'][^>]*>\s*</script>", "", text)


_STYLE = """
<style>
  body { max-width: 1180px; margin: 0 auto; padding: 0 24px 48px; font-family: system-ui, -apple-system, "Segoe UI", sans-serif; }
  .report-header { border-bottom: 1px solid #ddd; margin: 24px 0 8px; padding-bottom: 8px; color: #444; font-size: 14px; }
  .report-header a { color: #1f5fa8; }
  .jp-RenderedHTMLCommon table, table.dataframe { max-width: 100%; }
  .jp-RenderedHTMLCommon.jp-OutputArea-output table td, .jp-RenderedHTMLCommon.jp-OutputArea-output table th {
    white-space: normal; overflow-wrap: break-word; text-align: left; }  /* words left, numbers right (per column) */
  /* A table wider than the screen scrolls inside its own box, and a shadow at the edge shows there is more. */
  .jp-OutputArea-output:has(> table), .jp-OutputArea-output:has(> style + table) { overflow-x: auto;
    background: linear-gradient(to right, #fff 30%, rgba(255,255,255,0)) left / 24px 100% no-repeat local,
                linear-gradient(to left, #fff 30%, rgba(255,255,255,0)) right / 24px 100% no-repeat local,
                radial-gradient(farthest-side at 0 50%, rgba(0,0,0,.18), transparent) left / 10px 100% no-repeat scroll,
                radial-gradient(farthest-side at 100% 50%, rgba(0,0,0,.18), transparent) right / 10px 100% no-repeat scroll; }
  /* A phone: smaller table text, headers and names wrap (numbers stay whole, breaking only at a dash). */
  @media (max-width: 640px) {
    body { padding: 0 10px 32px; }
    .jp-RenderedHTMLCommon table { font-size: 12px; }
    .jp-RenderedHTMLCommon td, .jp-RenderedHTMLCommon th { white-space: normal !important; padding: 4px 3px; }
  }
  nav.toc { background: #f5f8fc; border-left: 4px solid #1f5fa8; padding: 8px 20px; margin: 12px 0 20px; font-size: 14px; }
  nav.toc ol { margin: 4px 0; padding-left: 20px; } nav.toc a, nav.pager a { color: #1f5fa8; }
  nav.pager { display: flex; justify-content: space-between; gap: 16px; margin: 24px 0 8px; font-size: 14px; }
</style>
"""


def render_html(executed: str | os.PathLike[str], out: str | os.PathLike[str], *, header: str = "",
                footer: str = "", assets: str | os.PathLike[str] | None = None) -> Path:
    """Render an executed notebook to stakeholder HTML: prose, tables and charts only.

    Drops code, the (injected) parameter and setup cells, stderr and warnings,
    and external scripts; prepends ``header`` (HTML) to the body and appends ``footer``; puts a table of
    contents (the page's sections) under its title; and adds a
    Content-Security-Policy that lets only the scripts the renderer wrote run
    (see :func:`content_security_policy`).

    ``assets``: a folder beside ``out`` to hold plotly.js once for all the pages of a run (``--shared-assets``):
    the page loads it from there instead of carrying its own 4.8 MB copy, and its policy then also allows
    scripts from the page's own origin (``'self'``), which only the folder the report sits in can provide.
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
    if assets is not None:
        body = _share_bundles(body, Path(assets), Path(out).parent)
        policy = policy.replace("script-src ", "script-src 'self' ", 1)
    body = re.sub(r"(<head[^>]*>)", lambda m: m.group(1) + f'\n<meta http-equiv="Content-Security-Policy" content="{policy}">',
                  body, count=1)
    body = body.replace("</head>", _STYLE + "</head>", 1)
    body = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + header, body, count=1)
    body = _with_contents(body)
    if footer:
        body = body.replace("</body>", footer + "</body>", 1)
    out = Path(out)
    out.write_text(body, encoding="utf-8")
    return out


_BUNDLE = re.compile(r"<script\b[^>]*>(/\*\*\s*\n\* plotly\.js v[\d.]+.*?)</script\s*>", re.S)


def _share_bundles(body: str, assets: Path, page_dir: Path) -> str:
    """``body`` with each inline plotly.js bundle written once to ``assets`` (named by its hash) and loaded from
    there. Only the library moves: every script that carries data from the events stays in the page, where the
    privacy check reads it."""
    def move(m: re.Match) -> str:
        code = m.group(1)
        name = f"plotly-{hashlib.sha256(code.encode('utf-8')).hexdigest()[:16]}.js"
        assets.mkdir(parents=True, exist_ok=True)
        if not (assets / name).exists():
            (assets / name).write_text(code, encoding="utf-8")
        return f'<script src="{os.path.relpath(assets / name, page_dir)}"></script>'
    return _BUNDLE.sub(move, body)


_H2 = re.compile(r'<h2 id="([^"]+)">(.*?)<a class="anchor-link"', re.S)


def sections(page: str) -> list[tuple[str, str]]:
    """The ``(anchor, text)`` of each section heading (``##``) of a rendered page, in order.

    Examples
    --------
    >>> sections('<h2 id="Why-x?">Why <b>x</b>?<a class="anchor-link" href="#Why-x?">¶</a></h2>')
    [('Why-x?', 'Why x?')]
    """
    import html

    return [(anchor, html.unescape(re.sub(r"<[^>]+>", "", text)).strip()) for anchor, text in _H2.findall(page)]


def _with_contents(body: str) -> str:
    """The page with a table of contents of its sections after its title (nothing for a page with one section)."""
    import html

    found = sections(body)
    if len(found) < 2:
        return body
    items = "".join(f'<li><a href="#{anchor}">{html.escape(text)}</a></li>' for anchor, text in found)
    nav = f'<nav class="toc" aria-label="On this page"><b>On this page</b><ol>{items}</ol></nav>'
    at = body.find("</h1>")
    return body[:at + 5] + nav + body[at + 5:] if at >= 0 else body


def finding_sections(executed: str | os.PathLike[str]) -> dict[str, str]:
    """For each finding a notebook records (``report.finding("Title", ...)``), the text of the ``##`` section it
    sits in, so that the index can link to it."""
    nb = nbformat.read(executed, as_version=4)
    current, out = "", {}
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("## "):
                    current = line[3:].strip()
        elif cell.cell_type == "code":
            for title in re.findall(r"""report\.finding\(\s*["']([^"']+)["']""", cell.source):
                out.setdefault(title, current)
    return out


def _same_heading(a: str, b: str) -> bool:
    norm = lambda text: re.sub(r"[^0-9a-z]+", "", text.lower())  # noqa: E731 - markdown marks and HTML differ
    return norm(a) == norm(b)


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


def _notebook_description(path: Path) -> str:
    """The first sentence of the paragraph under a notebook's title: the index's one-line description of it."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "markdown" and re.search(r"^#\s+", cell.source, flags=re.M):
            body = re.sub(r"^#.*$", "", cell.source, flags=re.M).strip()
            paragraph = body.split("\n\n")[0].replace("\n", " ").strip()
            plain = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", paragraph).replace("*", "").replace("`", "")
            m = re.match(r"(.+?[.?!])(\s|$)", plain)
            return (m.group(1) if m else plain)[:300]
    return ""


def _visible_text(text: str) -> str:
    """The HTML without plotly.js's own bundle (its license names an e-mail address), JSON escapes decoded.

    Decoding matters both ways: ``\\u2212`` (a minus sign) before ``56`` must not
    read as an id ``u221256``, and an id written with escapes must not hide.
    """
    text = re.sub(r"<script[^>]*>(?:(?!</script>).)*?\* plotly\.js v.*?</script>", "", text, flags=re.S)
    return re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), text)
