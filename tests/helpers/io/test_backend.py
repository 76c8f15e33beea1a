"""helpers.io.backend: as_ibis and open_events on DuckDB, backends by name."""

from __future__ import annotations

import ibis
import pandas as pd
import pytest
from io_files import CSV, ts, write

from helpers.io import (
    EventDataError,
    as_ibis,
    load_events,
    open_events,
    write_events,
)


def test_open_events_reads_canonical_parquet_in_place(tmp_path):
    ev = load_events(write(tmp_path / "e.csv", CSV))
    path = write_events(ev, tmp_path / "events.parquet")
    t = open_events(path)
    assert isinstance(t, ibis.Table)
    assert t.schema()["timestamp"] == ibis.dtype("timestamp('UTC', 6)")
    assert "read_parquet" in ibis.to_sql(t) or "parquet" in ibis.to_sql(t).lower()
    assert t.count().execute() == 4
    assert t.filter(t.event == "purchase").value.sum().execute() == 19.5


def test_open_events_converts_a_raw_export_through_load_events(tmp_path):
    t = open_events(write(tmp_path / "e.csv", CSV))
    assert t.user_id.nunique().execute() == 2
    raw_parquet = tmp_path / "raw.parquet"
    pd.DataFrame({"uid": ["a"], "name": ["e"], "t": [1735689600]}).to_parquet(raw_parquet)
    t = open_events(raw_parquet, mapping={"uid": "user_id", "name": "event", "t": "timestamp"})
    assert t.timestamp.max().execute() == ts("2025-01-01")


def test_as_ibis_registers_a_dataframe_once_and_rejects_other_types(tmp_path):
    ev = load_events(write(tmp_path / "e.csv", CSV))
    assert as_ibis(ev) is as_ibis(ev)
    assert as_ibis(ev).filter(lambda t: t.user_id == "007").count().execute() == 2
    with pytest.raises(EventDataError, match="DataFrame or an ibis table"):
        as_ibis([1, 2, 3])


def test_open_events_takes_a_backend_by_name(tmp_path):
    path = write_events(load_events(pd.DataFrame({"user_id": ["u1"], "event": ["a"], "timestamp": ["2025-01-01"]})),
                        tmp_path / "events.parquet")
    assert open_events(path, backend="duckdb").get_backend().name == "duckdb"
    with pytest.raises(EventDataError, match=r"backend='bigquery': the backend must be one of duckdb, pyspark"):
        open_events(path, backend="bigquery")
