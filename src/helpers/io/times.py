"""Time helpers on the backend (epoch_us, utc_naive) and in Python (to_utc).
"""

from __future__ import annotations

import weakref
from typing import Any

import ibis
import ibis.expr.datatypes as dt
import pandas as pd
import pyarrow as pa


US_PER_DAY = 86_400_000_000  # microseconds in a (UTC) day, for arithmetic on epoch_us


# DuckDB runs every calendar function on a time-zone-aware timestamp (truncate, date, year, subtraction,
# adding days) through its ICU extension: on 12.8M events date_trunc('week') took 1.7 s, + INTERVAL 14 DAY
# 2.1 s and a timestamp difference 37 s, against 0.1 s for max(timestamp). The same functions on a plain
# timestamp rebuilt from the stored microseconds cost 0.14-0.22 s, so calendar work goes through these.


@ibis.udf.scalar.builtin(name="epoch_us")
def _duckdb_epoch_us(ts: dt.Timestamp(timezone="UTC")) -> dt.int64:  # type: ignore[valid-type]
    """DuckDB's epoch_us: the stored microseconds, no time-zone work."""


@ibis.udf.scalar.builtin(name="unix_micros")
def _spark_unix_micros(ts: dt.Timestamp(timezone="UTC")) -> dt.int64:  # type: ignore[valid-type]
    """Spark's unix_micros."""


@ibis.udf.scalar.builtin(name="make_timestamp")
def _duckdb_make_timestamp(us: dt.int64) -> dt.Timestamp():  # type: ignore[valid-type]
    """DuckDB's make_timestamp(microseconds): a timestamp without time zone."""


def _backend_name(expr: ibis.Expr) -> str:
    # Tables made from DataFrames run on ibis's default backend (DuckDB).
    return expr._find_backend(use_default=True).name


def epoch_us(ts: ibis.Value) -> ibis.Value:
    """Microseconds since 1970-01-01 UTC as an integer expression (cheap on every backend).

    Examples
    --------
    >>> from helpers.io import as_ibis, load_events
    >>> t = as_ibis(load_events(pd.DataFrame({"user_id": ["u1"], "event": ["a"],
    ...                                       "timestamp": ["1970-01-02 00:00:01"]})))
    >>> int(t.select(us=epoch_us(t.timestamp)).us.execute().iloc[0])
    86401000000
    """
    name = _backend_name(ts)
    if name == "duckdb":
        return _duckdb_epoch_us(ts)
    if name == "pyspark":
        return _spark_unix_micros(ts)
    epoch = ibis.timestamp("1970-01-01 00:00:00").cast(ts.type())
    return ts.delta(epoch, unit="microsecond").cast("int64")


def utc_naive(ts: ibis.Value) -> ibis.Value:
    """The UTC wall-clock time of ``ts`` as a timestamp without time zone, for calendar work.

    ``truncate``, ``date``, ``year``, ``month`` and ``epoch_seconds`` on the
    result give UTC days, weeks and months whatever the session's time zone,
    at a fraction of their cost on a time-zone-aware timestamp (see above).
    Values fetched from it are naive: localize them to UTC in pandas.

    Examples
    --------
    >>> from helpers.io import as_ibis, load_events
    >>> t = as_ibis(load_events(pd.DataFrame({"user_id": ["u1"], "event": ["a"],
    ...                                       "timestamp": ["2025-03-05T23:30:00-02:00"]})))
    >>> t.select(d=utc_naive(t.timestamp).date()).d.execute().astype(str).tolist()
    ['2025-03-06']
    """
    if _backend_name(ts) == "duckdb":
        return _duckdb_make_timestamp(_duckdb_epoch_us(ts))
    return ts  # Spark: calendar functions follow the session time zone, which default_backend sets to UTC


def to_utc(value: Any) -> pd.Timestamp:
    """A timestamp in UTC: naive values are taken as UTC, aware ones converted (``observed_until``, ``split_at``...).

    Examples
    --------
    >>> to_utc("2025-01-01 12:00+02:00")
    Timestamp('2025-01-01 10:00:00+0000', tz='UTC')
    """
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


# The last event time of tables that open_events read from Parquet footers giving it: the end of observation
# without a scan of every timestamp (0.34 s on 52M events, more than a tenth of a funnel).
_KNOWN_END: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def remember_end(t: ibis.Table, last: pd.Timestamp) -> None:
    """Record that the table ``t`` (exactly this expression, not one derived from it) ends at ``last``."""
    _KNOWN_END[t.op()] = to_utc(last)


def observed_end(t: ibis.Table, observed_until: Any = None, *, name: str = "observed_until") -> pd.Timestamp:
    """The end of observation in UTC: ``observed_until`` when given, else the last event's timestamp (the
    template's default everywhere: nothing is known after the data ends).

    Raises :class:`~helpers.io.EventDataError` when there are no events or ``observed_until`` is not a time.

    Examples
    --------
    >>> ev = pd.DataFrame({"timestamp": pd.to_datetime(["2025-01-01", "2025-02-01"], utc=True)})
    >>> observed_end(ibis.memtable(ev)), observed_end(ibis.memtable(ev), "2025-03-01")
    (Timestamp('2025-02-01 00:00:00+0000', tz='UTC'), Timestamp('2025-03-01 00:00:00+0000', tz='UTC'))
    """
    from helpers.io.schema import EventDataError

    if observed_until is not None:
        try:
            return to_utc(observed_until)
        except (ValueError, TypeError) as exc:
            raise EventDataError(f"{name}={observed_until!r} is not a time.") from exc
    known = _KNOWN_END.get(t.op())
    if known is not None:
        return known
    last = t.timestamp.max().execute()
    if last is None or pd.isna(last):
        raise EventDataError("There are no events.")
    return to_utc(last)


def to_utc_series(values: pd.Series) -> pd.Series:
    """Timestamps fetched from a backend as tz-aware UTC (all-null columns arrive as objects; ``to_datetime`` is
    slow on values that are timestamps already, so it only runs on the others).

    Examples
    --------
    >>> to_utc_series(pd.Series([None, "2025-01-01 12:00"])).tolist()
    [NaT, Timestamp('2025-01-01 12:00:00+0000', tz='UTC')]
    >>> arrow = pd.Series([None, 1_735_732_800_000_000], dtype=pd.ArrowDtype(pa.timestamp("us")))  # no zone: UTC
    >>> to_utc_series(arrow).tolist()
    [NaT, Timestamp('2025-01-01 12:00:00+0000', tz='UTC')]
    """
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC")
    if isinstance(values.dtype, pd.ArrowDtype) and pa.types.is_timestamp(values.dtype.pyarrow_dtype):
        # Arrow-backed (read with dtype_backend="pyarrow"): converted as one array; to_datetime would make one
        # Timestamp per value (0.9 s for 500k). Times without a zone are UTC, as to_datetime(utc=True) reads them.
        out = pd.Series(pa.array(values.array).to_pandas(), index=values.index, name=values.name)
        return out.dt.tz_convert("UTC") if out.dt.tz is not None else out.dt.tz_localize("UTC")
    return pd.to_datetime(values, utc=True)
