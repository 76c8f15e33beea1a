"""The canonical event table's columns and the error every loader raises."""

from __future__ import annotations

import difflib

import numpy as np
import pandas as pd

# pandas' spellings of a missing value ('NA', 'null', 'None', 'N/A', 'nan', '#N/A'...), the empty string aside.
from pandas._libs.parsers import STR_NA_VALUES as _PANDAS_NA

CANONICAL_COLUMNS = ("user_id", "event", "timestamp")
OPTIONAL_COLUMNS = ("session_id", "channel", "value")
STRING = pd.StringDtype("pyarrow")
_LOAD_INFO_KEY = "helpers.load"
NA_SPELLINGS = tuple(sorted(set(_PANDAS_NA) - {""}))


class EventDataError(ValueError):
    """An input that cannot become a canonical event table; the message says where and why."""


def _examples(values: pd.Series, mask: np.ndarray, where: str) -> str:
    """Up to five offending values as "row 3: 'abc'", numbered 1-based in the source."""
    positions = np.flatnonzero(mask)[:5]
    out = []
    for pos in positions:
        row = pos + 1
        place = f"row {row} (line {row + 1})" if where == "csv" else (f"line {row}" if where == "jsonl" else f"row {row}")
        value = values.iloc[pos]
        out.append(f"{place}: {value.item() if isinstance(value, np.generic) else value!r}")
    return ", ".join(out)


def _as_string(s: pd.Series) -> pd.Series:
    """Text column with nulls (and empty strings) as <NA>; whole floats lose their '.0'."""
    if pd.api.types.is_float_dtype(s.dtype):
        whole = s.notna() & (s == np.floor(s))
        if whole[s.notna()].all():
            s = s.astype("Int64")
    out = s.astype(STRING)
    empty = (out == "").fillna(False).to_numpy(dtype=bool)
    return out.mask(empty) if empty.any() else out  # masking copies the column: only when needed


def _closest(name: str, columns: list[str]) -> str:
    close = difflib.get_close_matches(name, columns, n=1, cutoff=0.5)
    if close:
        return f" The closest column is '{close[0]}'."
    return ""
