"""What notebooks call during a run: record facts for the index, say and find sentences (escaped), pseudonymize ids.

Outside a run these simply display, or do nothing.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

RUN_DIR_ENV = "HELPERS_RUN_DIR"
RUN_SALT_ENV = "HELPERS_RUN_SALT"


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
        if not self.text and not self.title:
            return ""  # nothing to say (an empty note): no empty paragraph
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


def finding(title: str, text: str, *, key: int | None = None) -> Prose:
    """Show a key finding in the notebook and collect it for the report's index page.

    ``key``: the finding's rank among the few the index puts first ("what matters most": 1 is first); other
    findings are listed after them, in page order. Returns a :class:`Prose` (escaped), so it is the cell's
    visible output.

    Examples
    --------
    >>> finding("Funnel", "most users drop at <b>checkout</b>")._repr_html_()
    '<p><b>Funnel.</b> most users drop at &lt;b&gt;checkout&lt;/b&gt;</p>'
    """
    run_dir = _run_dir()
    if run_dir is not None:
        with open(run_dir / "findings.jsonl", "a") as fh:
            fh.write(json.dumps({"notebook": os.environ.get("HELPERS_NOTEBOOK", ""), "title": title, "text": text,
                                 "key": key}) + "\n")
    return Prose(text, title)


@dataclass(frozen=True)
class Tile:
    """A headline number for the index's tiles: what it counts, the number as text, a line of context, and the
    title of the finding (on the same page) that explains it, which the tile links to."""

    label: str
    value: str
    detail: str = ""
    finding: str = ""


def tile(item: Tile | Sequence[Tile] | None) -> None:
    """Collect a headline number (or several) for the index page's tiles (nothing outside a run, or for ``None``).

    Examples
    --------
    >>> tile(Tile("signed up", "9,909", "users who did signup", finding="Funnel"))  # outside a run: nothing
    """
    run_dir = _run_dir()
    if run_dir is None or item is None:
        return
    with open(run_dir / "findings.jsonl", "a") as fh:
        for one in [item] if isinstance(item, Tile) else item:
            fh.write(json.dumps({"notebook": os.environ.get("HELPERS_NOTEBOOK", ""), "kind": "tile", **asdict(one)}) + "\n")


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
