"""A timestamp column to UTC moments.

ISO text with or without an offset, text in a given format, datetimes, and
epoch numbers whose unit is given (checked for overflow) or guessed from the
magnitude (a guess must land between 1990 and a year from now).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from helpers.io.reading import _label, _na_like, _where
from helpers.io.schema import STRING, EventDataError, _examples
from helpers.io.times import to_utc

_TIMESTAMP_UNITS = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}
# Epoch magnitudes that separate the units: 1e11 s is the year 5138, 1e11 ms is 1973.
_UNIT_BOUNDS = ((1e11, "s"), (1e14, "ms"), (1e17, "us"))
_OFFSET = r"(?:[zZ]|[+-]\d{2}(?::?\d{2})?)$"  # an explicit UTC offset at the end of ISO text
# Epoch numbers whose guessed unit puts them outside these years are refused (see _epoch_to_ns).
PLAUSIBLE_FROM = pd.Timestamp("1990-01-01", tz="UTC")


def _epoch_to_ns(values: pd.Series, unit: str | None, label: str = "DataFrame", column: str = "timestamp",
                 where: str = "frame") -> np.ndarray:
    """Epoch numbers to int64 nanoseconds, unit per value by magnitude unless given.

    A given unit is checked for overflow (past 2262 at nanoseconds); a guessed
    one must put every value between ``PLAUSIBLE_FROM`` and a year from now.
    Either failure is an :class:`EventDataError` with examples and the way out.
    """
    numeric = pd.to_numeric(values, errors="coerce")
    is_int = pd.api.types.is_integer_dtype(numeric.dtype)
    x = numeric.to_numpy(dtype="float64", na_value=np.nan)
    if unit is not None:
        factor = np.full(len(x), _TIMESTAMP_UNITS[unit], dtype="int64")
    else:
        mag = np.abs(x)
        conditions = [mag < bound for bound, _ in _UNIT_BOUNDS]
        factor = np.select(conditions, [_TIMESTAMP_UNITS[u] for _, u in _UNIT_BOUNDS], default=1).astype("int64")
    present = ~np.isnan(x)
    approx = x * factor  # float nanoseconds: enough to judge the range, and it cannot wrap around
    if unit is None:
        _check_plausible(values, approx, present, factor, label, column, where)
    overflow = present & (np.abs(approx) >= np.iinfo("int64").max)  # int64 nanoseconds would wrap around
    if overflow.any():
        raise EventDataError(
            f"{label}: column '{column}' has {int(overflow.sum()):,} epoch number(s) too large for "
            f"timestamp_unit={unit!r}: they would fall after the year 2262, e.g. {_examples(values, overflow, where)}. "
            "Check the unit (s, ms, us, ns).")
    if is_int:  # exact integer arithmetic; float64 cannot hold epoch nanoseconds exactly
        ints = numeric.to_numpy(dtype="int64", na_value=0)
        out = ints * factor
    else:
        out = np.round(np.nan_to_num(x) * factor).astype("int64")
    out[~present] = np.iinfo("int64").min  # NaT
    return out


def _check_plausible(values: pd.Series, approx_ns: np.ndarray, present: np.ndarray, factor: np.ndarray, label: str,
                     column: str, where: str) -> None:
    """A unit guessed from the numbers' size must put them between ``PLAUSIBLE_FROM`` and a year from now."""
    latest = pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=366)
    odd = present & ((approx_ns < PLAUSIBLE_FROM.value) | (approx_ns > latest.value))
    if not odd.any():
        return
    names = {v: k for k, v in _TIMESTAMP_UNITS.items()}

    def when(ns: float) -> str:
        return f"{pd.Timestamp(int(ns), tz='UTC'):%Y-%m-%d}" if abs(ns) < 9.2e18 else f"the year {1970 + ns / 3.15576e16:,.0f}"

    examples = ", ".join(f"{_examples(values, np.arange(len(values)) == i, where)} (as {names[int(factor[i])]!r}: "
                         f"{when(approx_ns[i])})" for i in np.flatnonzero(odd)[:5])
    raise EventDataError(
        f"{label}: column '{column}' holds epoch numbers whose unit was guessed from their size, and "
        f"{int(odd.sum()):,} of them would fall outside {PLAUSIBLE_FROM:%Y} to {latest:%Y} at the guessed unit, "
        f"e.g. {examples}.{_epoch_hint(np.asarray(_values_float(values))[present])} If they are epochs, pass "
        "timestamp_unit='s', 'ms', 'us' or 'ns'.")


def _values_float(values: pd.Series) -> np.ndarray:
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def _epoch_hint(x: np.ndarray) -> str:
    """What numbers that are no plausible epoch probably are."""
    whole = bool(np.all(x == np.floor(x)))
    if whole and np.all((x >= 19000101) & (x <= 21001231)):
        days = pd.to_datetime(pd.Series(x.astype("int64")).astype(str), format="%Y%m%d", errors="coerce")
        if days.notna().all():
            return " They look like yyyymmdd dates: pass timestamp_format='%Y%m%d'."
    if whole and np.all((x >= 1900) & (x <= 2100)):
        return " They look like bare years, not moments: convert them to dates first."
    if np.all((x >= 20000) & (x < 80000)):
        return (" They look like spreadsheet serial days (days since 1899-12-30): convert them to ISO 8601 text "
                "first.")
    return ""


def _parse_timestamps(s: pd.Series, unit: str | None, source: Any, column: str,
                      timestamp_format: str | None = None) -> pd.Series:
    label, where = _label(source), _where(source)
    if isinstance(s.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(s.dtype):
        _check_nanosecond_range(s, label, column, where)
        aware = s.dt.tz_convert("UTC") if isinstance(s.dtype, pd.DatetimeTZDtype) else s.dt.tz_localize("UTC")
        return aware.astype("datetime64[ns, UTC]")
    if isinstance(s.dtype, pd.ArrowDtype) and pa.types.is_timestamp(s.dtype.pyarrow_dtype):
        return _parse_timestamps(pd.Series(s.to_numpy(), index=s.index), unit, source, column, timestamp_format)
    notnull = s.notna().to_numpy() & ~_na_like(s)  # 'NA', 'null'... are missing times: dropped and counted
    if not notnull.all():
        s = s.where(notnull)
    if timestamp_format is not None:
        text = s.astype("Int64").astype(STRING) if pd.api.types.is_numeric_dtype(s.dtype) else s.astype(STRING)
        parsed = pd.to_datetime(text.str.strip(), format=timestamp_format, errors="coerce", utc=True)
        bad = notnull & parsed.isna().to_numpy()
        if bad.any():
            raise EventDataError(
                f"{label}: column '{column}' has {int(bad.sum()):,} value(s) that do not match "
                f"timestamp_format={timestamp_format!r}, e.g. {_examples(s, bad, where)}.")
        return pd.Series(parsed, index=s.index).astype("datetime64[ns, UTC]")
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        numeric = True
    else:
        as_num = pd.to_numeric(s, errors="coerce")
        numeric = bool(notnull.any()) and bool((as_num.notna().to_numpy() == notnull).all())
    if numeric:
        ns = _epoch_to_ns(s, unit, label, column, where)
        return pd.Series(pd.to_datetime(ns, unit="ns", utc=True), index=s.index)
    if unit is not None:
        raise EventDataError(
            f"{label}: column '{column}' holds text, not epoch numbers, though timestamp_unit={unit!r} "
            f"was given, e.g. {_examples(s, notnull, where)}. Leave timestamp_unit=None for ISO 8601 text."
        )
    text = s.astype("string[pyarrow]").str.strip()
    # Parsed apart: in one call pandas applies an offset seen on some values to the naive ones.
    has_offset = text.str.contains(_OFFSET, regex=True).fillna(False).to_numpy(dtype=bool)
    parsed = pd.Series(pd.NaT, index=s.index, dtype="datetime64[ns, UTC]")
    for mask in (has_offset & notnull, ~has_offset & notnull):
        if mask.any():
            part = pd.to_datetime(text[mask].astype(object), format="ISO8601", errors="coerce", utc=True)
            parsed[mask] = part
    bad = notnull & parsed.isna().to_numpy()
    if bad.any():
        raise EventDataError(
            f"{label}: column '{column}' has {int(bad.sum()):,} value(s) that are not timestamps, e.g. "
            f"{_examples(s, bad, where)}. Expected ISO 8601 text ('2025-01-31T12:00:00Z', offsets allowed) "
            "or epoch numbers (s, ms, us or ns)."
        )
    return pd.Series(parsed, index=s.index).astype("datetime64[ns, UTC]")


def _check_nanosecond_range(s: pd.Series, label: str, column: str, where: str) -> None:
    """Timestamps stored at a coarser unit (Parquet's microseconds) may lie beyond what nanoseconds hold."""
    unit = s.dtype.unit if isinstance(s.dtype, pd.DatetimeTZDtype) else np.datetime_data(s.dtype)[0]
    if unit == "ns":
        return
    values = s.dt.tz_localize(None) if isinstance(s.dtype, pd.DatetimeTZDtype) else s
    raw = values.to_numpy()
    lo, hi = (np.datetime64(pd.Timestamp.min.ceil("us").to_datetime64(), unit),
              np.datetime64(pd.Timestamp.max.floor("us").to_datetime64(), unit))
    bad = ~np.isnat(raw) & ((raw < lo) | (raw > hi))
    if bad.any():
        raise EventDataError(
            f"{label}: column '{column}' has {int(bad.sum()):,} timestamp(s) outside the range the event table holds "
            f"(1677-09-22 to 2262-04-11), e.g. {_examples(s, bad, where)}. Such dates are usually placeholders "
            "(9999-12-31) or a wrong unit: fix or filter them in the export.")


def _bound(name: str, value: Any) -> pd.Timestamp:
    try:
        return to_utc(value)
    except (ValueError, TypeError):
        raise EventDataError(f"{name}={value!r} is not a date or a time; give ISO 8601 such as '2025-01-01' or "
                             "'2025-01-01T12:00:00Z' (UTC unless an offset is given).") from None
