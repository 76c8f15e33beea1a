"""Numbers in the README that describe the bundled sample come from a report run, not from a hand.

A number is written between markers naming where it comes from in the run's ``record.json`` and how it is
shown::

    on the sample it predicts <!-- run: risk.worst_predicted pct -->66%<!-- /run --> where ...

``python -m helpers.report readme`` rewrites every marked number from ``reports/latest`` (``make readme``);
``--check`` only says which are stale (a test runs it against a fresh sample run).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Mapping

MARKER = re.compile(r"<!-- run: (?P<key>[\w.]+) (?P<fmt>\w+) -->(?P<value>.*?)<!-- /run -->", re.S)

FORMATS = {
    "pct": lambda v: f"{float(v):.0%}",  # 0.66 -> 66%
    "points": lambda v: f"{float(v) * 100:.0f}",  # a gap of 0.10 -> 10 (points)
    "count": lambda v: f"{int(v):,}",
    "int": lambda v: f"{int(v)}",
}


def _lookup(record: Mapping[str, Any], key: str) -> Any:
    value: Any = record
    for part in key.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise KeyError(f"the run's record has no {key!r} (at {part!r})")
        value = value[part]
    return value


def fill(text: str, record: Mapping[str, Any]) -> tuple[str, list[str]]:
    """``text`` with every marked number rewritten from ``record``, and the markers whose number changed.

    Examples
    --------
    >>> fill("predicts <!-- run: risk.p pct -->60%<!-- /run -->.", {"risk": {"p": 0.66}})
    ('predicts <!-- run: risk.p pct -->66%<!-- /run -->.', ['risk.p: 60% -> 66%'])
    """
    changed: list[str] = []

    def replace(m: re.Match) -> str:
        key, fmt = m.group("key"), m.group("fmt")
        if fmt not in FORMATS:
            raise ValueError(f"README marker {key!r}: unknown format {fmt!r} (known: {', '.join(FORMATS)})")
        new = FORMATS[fmt](_lookup(record, key))
        if new != m.group("value"):
            changed.append(f"{key}: {m.group('value')} -> {new}")
        return f"<!-- run: {key} {fmt} -->{new}<!-- /run -->"

    return MARKER.sub(replace, text), changed


def update(readme: str | Path, run_dir: str | Path, *, check: bool = False) -> list[str]:
    """Rewrite ``readme``'s marked numbers from ``run_dir/record.json`` (only report them with ``check``)."""
    readme, run_dir = Path(readme), Path(run_dir)
    record = json.loads((run_dir / "record.json").read_text())
    text, changed = fill(readme.read_text(encoding="utf-8"), record)
    if changed and not check:
        readme.write_text(text, encoding="utf-8")
    return changed
