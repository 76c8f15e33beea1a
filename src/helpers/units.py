"""What each column of a result holds (a rate, a ratio, a score, a count, a duration...), declared where the
result is made, so that a table shows every number as what it is.

A result table carries ``table.attrs["units"]`` (``{column: kind}``), and optionally the columns a reader
does not need (``attrs["hidden"]``) and headers (``attrs["headers"]``); pandas keeps ``attrs`` through
selections, renames and merges. ``plots.styled`` reads them: a hazard ratio's interval is shown as
``0.46–0.58``, a conversion's as ``46.1%–57.7%``, an NPS's as ``7.7–13.9``. A column with no declared kind
is shown by its type (integers as counts, durations as durations), never by a pattern in its name, except
that ``p`` and ``p_*`` are p values and ``conversion*``, ``share*`` and ``survival*`` are rates.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

KINDS = {
    "rate": "a share of people or events, 0 to 1, shown as a percentage",
    "ratio": "a ratio such as a hazard ratio or an odds ratio, shown with two decimals",
    "score": "a score on its own scale (NPS -100 to 100, CSAT 1 to 5), one decimal",
    "count": "a count of people or events, thousands separated, no decimals",
    "money": "an amount of money, two decimals",
    "days": "a number of days",
    "duration": "a time span (Timedelta), as 4 h 16 min",
    "p_value": "a p value: < 0.001 or three decimals",
    "number": "any other number, two decimals",
    "estimate": "an estimate that may be small (a difference in means), three significant digits",
    "text": "text from the data, escaped",
}


def declare(table: pd.DataFrame, kinds: Mapping[str, str] | None = None, *, hidden: Iterable[str] = (),
            headers: Mapping[str, str] | None = None, missing: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Record in ``table.attrs`` what its columns hold (added to what it declared before); returns ``table``.

    ``missing``: what an empty cell of a column means, in words (a median lifetime not reached yet).

    Examples
    --------
    >>> t = declare(pd.DataFrame({"hazard_ratio": [0.52], "ci_low": [0.46], "ci_high": [0.58]}),
    ...             {"hazard_ratio": "ratio", "ci_low": "ratio", "ci_high": "ratio"})
    >>> t.attrs["units"]["ci_low"]
    'ratio'
    """
    unknown = {k for k in (kinds or {}).values() if k not in KINDS}
    if unknown:
        raise ValueError(f"unknown column kind(s) {sorted(unknown)}; known: {', '.join(KINDS)}.")
    table.attrs["units"] = {**table.attrs.get("units", {}), **(kinds or {})}
    if hidden:
        table.attrs["hidden"] = sorted({*table.attrs.get("hidden", ()), *hidden})
    if headers:
        table.attrs["headers"] = {**table.attrs.get("headers", {}), **headers}
    if missing:
        table.attrs["missing"] = {**table.attrs.get("missing", {}), **missing}
    return table


def kind_of(table: pd.DataFrame, column: Any) -> str:
    """The kind of ``column``: declared, else from its name's few fixed meanings, else from its type.

    An interval bound (``ci_low``, ``ci_high``, ``*_ci_low``...) without a declaration takes the kind of the
    estimate it belongs to: the column named before it without the suffix, or the column just before it.

    Examples
    --------
    >>> t = pd.DataFrame({"step": ["a"], "users": [3], "conversion": [0.5], "ci_low": [0.4], "ci_high": [0.6]})
    >>> [kind_of(t, c) for c in t.columns]
    ['text', 'count', 'rate', 'rate', 'rate']
    """
    declared = table.attrs.get("units", {})
    if column in declared:
        return declared[column]
    name = str(column)
    for bound in ("ci_low", "ci_high"):
        if name == bound or name.endswith("_" + bound) or name.startswith(bound + "_"):
            stem = name.replace(bound, "").strip("_")
            columns = list(table.columns)
            estimate = stem if stem in columns else None
            if estimate is None:
                position = columns.index(column)
                before = [c for c in columns[:position] if not str(c).startswith("ci_") and "_ci_" not in str(c)]
                estimate = before[-1] if before else None
            return kind_of(table, estimate) if estimate is not None else "number"
    if name == "p" or name.startswith("p_") or name.endswith("_p"):
        return "p_value"
    if name.startswith(("conversion", "share", "survival")) or name.endswith("_share"):
        return "rate"
    dtype = table[column].dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "text"
    if pd.api.types.is_integer_dtype(dtype):
        return "count"
    if pd.api.types.is_float_dtype(dtype):
        return "number"
    if pd.api.types.is_timedelta64_dtype(dtype):
        return "duration"
    return "text"


def format_value(value: Any, kind: str) -> str:
    """``value`` as text for a reader, by its kind (missing values are empty).

    Examples
    --------
    >>> [format_value(v, k) for v, k in [(0.4613, "rate"), (0.52, "ratio"), (10.84, "score"), (9909, "count"),
    ...  (0.0004, "p_value"), (0.0412, "p_value"), (pd.Timedelta(hours=4, minutes=16), "duration"), (3.5, "days"),
    ...  (0.04275, "estimate"), (-1716.9, "estimate")]]
    ['46.1%', '0.52', '10.8', '9,909', '< 0.001', '0.041', '4 h 16 min', '3.5 days', '0.0428', '-1,717']
    """
    if value is None or (not isinstance(value, str) and _missing(value)):
        return ""
    if kind == "text":
        return str(value)
    if kind == "duration":
        return human_duration(pd.Timedelta(value))
    value = float(value)
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    if kind == "rate":
        return f"{value:.1%}"
    if kind == "ratio":
        return f"{value:,.2f}"
    if kind == "score":
        return f"{value:,.1f}"
    if kind == "count":
        return f"{value:,.0f}"
    if kind == "money":
        return f"{value:,.2f}"
    if kind == "days":
        return f"{value:,.1f} days" if abs(value) >= 1 else human_duration(pd.Timedelta(days=value))
    if kind == "p_value":
        return "< 0.001" if value < 0.001 else f"{value:.3f}"
    if kind == "estimate":  # 0.000535, 0.0428, 1.72, 1,717: never scientific notation
        size = abs(value)
        return f"{value:,.0f}" if size >= 100 else f"{value:.3g}" if size >= 1e-4 or value == 0 else f"{value:.2e}"
    return f"{value:,.2f}"


def human_duration(span: pd.Timedelta) -> str:
    """A time span as a reader says it: ``45 s``, ``12 min``, ``4 h 16 min``, ``3 d 5 h``.

    Examples
    --------
    >>> human_duration(pd.Timedelta(days=3, hours=5, minutes=2)), human_duration(pd.Timedelta(seconds=45))
    ('3 d 5 h', '45 s')
    """
    if pd.isna(span):
        return ""
    seconds = span.total_seconds()
    sign, seconds = ("−" if seconds < 0 else ""), abs(seconds)
    days, rest = divmod(round(seconds), 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{sign}{days} d {hours} h" if hours else f"{sign}{days} d"
    if hours:
        return f"{sign}{hours} h {minutes} min" if minutes else f"{sign}{hours} h"
    if minutes:
        return f"{sign}{minutes} min"
    return f"{sign}{secs} s"


def header(table: pd.DataFrame, column: Any) -> str:
    """A column's header for a reader: declared, else its name in words (``users_lost`` → ``Users lost``)."""
    declared = table.attrs.get("headers", {})
    if column in declared:
        return declared[column]
    words = str(column).replace("_", " ").strip()
    return words[:1].upper() + words[1:]


def _missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False
