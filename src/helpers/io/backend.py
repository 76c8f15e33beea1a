"""Where event-level work runs: DuckDB in-process by default, Spark when configured.

:func:`as_ibis` is what every analysis calls on its ``events`` argument;
:func:`open_events` opens a file or DataFrame as a lazy ibis table.
"""

from __future__ import annotations

import os
import weakref
from pathlib import Path
from typing import Any

import ibis
import pandas as pd
import pyarrow as pa

from helpers.io.canonical import load_events
from helpers.io.reading import _format_kind, _parquet_files
from helpers.io.schema import CANONICAL_COLUMNS, EventDataError
from helpers.io.times import remember_end, to_utc

_CONNECTIONS: dict[str, ibis.BaseBackend] = {}  # one shared connection per backend name
# DataFrames already converted, keyed by id, so each is converted once while it lives.
_REGISTERED: dict[int, tuple[weakref.ref, ibis.Table]] = {}
BACKEND_ENV = "JOURNEY_BACKEND"  # "duckdb" (default) or "pyspark"; a report run sets it from its config
SPARK_MASTER_ENV = "JOURNEY_SPARK_MASTER"  # e.g. "local[*]" (default) or "spark://host:7077"
BACKENDS = ("duckdb", "pyspark")


def default_backend(name: str | None = None) -> ibis.BaseBackend:
    """The connection that files are opened on: DuckDB in-process, or Spark.

    ``name`` (``"duckdb"`` or ``"pyspark"``) picks one; ``None`` follows
    ``JOURNEY_BACKEND`` (a report run sets it from its config), else DuckDB.
    Created on first use and shared. Both run with UTC as the session time zone,
    so that dates, weeks and months are UTC calendar periods (on Spark a local
    time zone would shift week buckets).

    Examples
    --------
    >>> default_backend("duckdb").name
    'duckdb'
    """
    source = "backend" if name is not None else BACKEND_ENV
    name = name if name is not None else (os.environ.get(BACKEND_ENV, "duckdb") or "duckdb")
    if name not in BACKENDS:
        raise EventDataError(f"{source}={name!r}: the backend must be one of {', '.join(BACKENDS)}.")
    if name not in _CONNECTIONS:
        if name == "duckdb":
            con = ibis.duckdb.connect()
            con.raw_sql("SET TimeZone = 'UTC'")
            try:  # scheduled runs' logs stay clean (in Jupyter DuckDB refuses the setting without ipywidgets)
                con.raw_sql("SET enable_progress_bar = false")
            except Exception:  # noqa: BLE001 - cosmetic setting only
                pass
        else:
            from pyspark.sql import SparkSession

            session = (SparkSession.builder.master(os.environ.get(SPARK_MASTER_ENV, "local[*]"))
                       .appName("customer-journey").config("spark.sql.session.timeZone", "UTC")
                       .config("spark.ui.enabled", "false")
                       .config("spark.ui.showConsoleProgress", "false")  # scheduled runs' logs stay readable
                       .getOrCreate())
            con = ibis.pyspark.connect(session)
        _CONNECTIONS[name] = con
    return _CONNECTIONS[name]


def _canonical_ibis(t: ibis.Table, label: str) -> ibis.Table:
    missing = [c for c in CANONICAL_COLUMNS if c not in t.columns]
    if missing:
        raise EventDataError(
            f"{label}: not a canonical event table; missing {', '.join(missing)} (columns: {', '.join(t.columns)}). "
            "Load the export with load_events(...) first."
        )
    casts = {}
    if not t.schema()["user_id"].is_string():
        casts["user_id"] = t.user_id.cast("string")
    ts_type = t.schema()["timestamp"]
    if not (ts_type.is_timestamp() and ts_type.timezone == "UTC"):
        casts["timestamp"] = t.timestamp.cast(ibis.dtype("timestamp('UTC')"))
    return t.mutate(**casts) if casts else t


def _is_canonical_frame(df: pd.DataFrame) -> bool:
    return (
        all(c in df.columns for c in CANONICAL_COLUMNS)
        and isinstance(df["timestamp"].dtype, pd.DatetimeTZDtype)
        and str(df["timestamp"].dt.tz) == "UTC"
    )


def _register(df: pd.DataFrame) -> ibis.Table:
    """An ibis table over the frame, converted to Arrow once per frame (zero-copy for Arrow strings).

    ``ibis.memtable`` over a pandas frame converts it again on every
    execution; over an Arrow table it is a view whose data lives as long as
    any expression built on it, however short-lived the frame.
    """
    key = id(df)
    hit = _REGISTERED.get(key)
    if hit is not None and hit[0]() is df:
        return hit[1]
    expr = ibis.memtable(pa.Table.from_pandas(df, preserve_index=False))
    _REGISTERED[key] = (weakref.ref(df, lambda _ref, k=key: _REGISTERED.pop(k, None)), expr)
    return expr


def as_ibis(events: pd.DataFrame | ibis.Table) -> ibis.Table:
    """The events as an ibis table: what every analysis calls on its input.

    An ibis table is checked and returned; a canonical DataFrame is
    converted to Arrow once (zero-copy for Arrow strings, cached for as long
    as the frame lives) and runs on the default backend; any other DataFrame goes through
    :func:`load_events` first.

    Examples
    --------
    >>> ev = load_events(pd.DataFrame({"user_id": ["u1", "u2"], "event": ["a", "b"],
    ...                                "timestamp": ["2025-01-01", "2025-01-02"]}))
    >>> as_ibis(ev).count().execute()
    2
    >>> as_ibis(ev) is as_ibis(ev)
    True
    """
    if isinstance(events, ibis.Table):
        return _canonical_ibis(events, "ibis table")
    if isinstance(events, pd.DataFrame):
        if not _is_canonical_frame(events):
            events = load_events(events)
        return _register(events)
    raise EventDataError(f"events must be a pandas DataFrame or an ibis table, not {type(events).__name__}.")


def open_events(source: str | os.PathLike[str] | pd.DataFrame | ibis.Table, *, backend: str | None = None,
                **load_kwargs: Any) -> ibis.Table:
    """Open events as a lazy ibis table, on DuckDB in-process (or on Spark: see :func:`default_backend`).

    A canonical Parquet file, folder or glob (as :func:`write_events` writes
    them) is read in place on ``backend`` (``"duckdb"``, ``"pyspark"``, or
    ``None`` for the report's setting): nothing is loaded into pandas. A DataFrame is
    registered once. Any other input (CSV, JSON lines, a raw export) goes
    through :func:`load_events` with ``load_kwargs`` first.

    Examples
    --------
    >>> from helpers.io import write_events
    >>> import tempfile
    >>> ev = load_events(pd.DataFrame({"user_id": ["u1", "u1"], "event": ["a", "b"],
    ...                                "timestamp": ["2025-01-01", "2025-01-02"]}))
    >>> path = write_events(ev, Path(tempfile.mkdtemp()) / "events.parquet")
    >>> t = open_events(path)
    >>> t.group_by("user_id").aggregate(n=t.count()).execute()
      user_id  n
    0      u1  2
    """
    if isinstance(source, ibis.Table):
        return _canonical_ibis(source, "ibis table")
    if isinstance(source, pd.DataFrame):
        return as_ibis(source if _is_canonical_frame(source) and not load_kwargs else load_events(source, **load_kwargs))
    text = str(source)
    path = Path(text).expanduser()
    is_parquet = path.is_dir() or any(ch in text for ch in "*?[") or _format_kind(path) == "parquet"
    if is_parquet and not load_kwargs:
        files = _parquet_files(path if path.is_dir() else text)
        if isinstance(files, str) and not Path(files).exists():
            raise EventDataError(f"{files}: no such file or folder.")
        target = str(Path(files) / "**" / "*.parquet") if isinstance(files, str) and Path(files).is_dir() else files
        try:
            t = default_backend(backend).read_parquet(target)
        except Exception as exc:  # DuckDB raises its own IOException / InvalidInputException types
            raise EventDataError(f"{text}: cannot read as Parquet: {exc}") from None
        try:
            t = _canonical_ibis(t, text)
        except EventDataError:
            pass  # a raw export in Parquet: validate and convert it in pandas below
        else:
            last = footer_last_time(files)
            if last is not None:
                remember_end(t, last)
            return t
    return as_ibis(load_events(source, **load_kwargs))


def footer_last_time(files: list[str] | str) -> pd.Timestamp | None:
    """The latest ``timestamp`` in Parquet files (a file, a folder or a list of files) from their footers'
    statistics, without reading the data; ``None`` when a file cannot be read this way, or when the column is
    not a UTC timestamp or a row group holding times has no statistics. The value is exact: the statistics of an
    int64 column are its values, not bounds.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "e.parquet"
    >>> pd.DataFrame({"timestamp": pd.to_datetime(["2025-01-02 00:00", None, "2025-03-04 05:06"], utc=True)}).to_parquet(path)
    >>> footer_last_time(str(path))
    Timestamp('2025-03-04 05:06:00+0000', tz='UTC')
    """
    import json

    import pyarrow.parquet as pq

    paths = files if isinstance(files, list) else (
        [str(f) for f in sorted(Path(files).rglob("*.parquet"))] if Path(files).is_dir() else [files])
    last = None
    try:
        for path in paths:
            meta = pq.ParquetFile(path).metadata
            names = [meta.schema.column(j).path for j in range(meta.num_columns)]
            if "timestamp" not in names:
                return None
            i = names.index("timestamp")
            kind = json.loads(meta.schema.column(i).logical_type.to_json())
            if kind.get("Type") != "Timestamp" or kind.get("isAdjustedToUTC") is not True:
                return None  # times without a zone: how the backend reads them is its setting, so scan
            for g in range(meta.num_row_groups):
                column = meta.row_group(g).column(i)
                stats = column.statistics
                if stats is None or not stats.has_min_max:
                    if stats is not None and stats.null_count == column.num_values:
                        continue  # only nulls here
                    return None
                high = to_utc(stats.max)
                last = high if last is None or high > last else last
    except Exception:  # noqa: BLE001 - any footer that cannot be read: the scan gives the answer instead
        return None
    return last


def event_names(events: pd.DataFrame | ibis.Table) -> set[str]:
    """The distinct event names of the events (one small query), e.g. to check which optional events exist.

    Examples
    --------
    >>> sorted(event_names(load_events(pd.DataFrame({"user_id": ["a", "b"], "event": ["x", "y"],
    ...                                               "timestamp": ["2025-01-01", "2025-01-02"]}))))
    ['x', 'y']
    """
    t = as_ibis(events)
    return set(t.select("event").distinct().execute()["event"].astype(str))
