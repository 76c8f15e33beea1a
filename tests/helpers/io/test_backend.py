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


# ------------------------------------------------ the end of observation from Parquet footers


def _events(times: list[str | None], users: list[str] | None = None) -> pd.DataFrame:
    return pd.DataFrame({"user_id": users or [f"u{i % 3}" for i in range(len(times))], "event": "a",
                         "timestamp": pd.to_datetime(times, utc=True, format="ISO8601")})


def test_the_footer_end_is_the_scans_end_on_files_folders_units_and_null_row_groups(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from helpers.io.backend import footer_last_time

    times = ["2025-01-02T00:00:00", "2025-03-04T05:06:07.123456", "2025-02-01T00:00:00"]
    path = write_events(load_events(_events(times)), tmp_path / "one.parquet")
    assert footer_last_time(str(path)) == pd.Timestamp("2025-03-04 05:06:07.123456", tz="UTC")
    # a folder of files; the latest is in the second
    (tmp_path / "dir").mkdir()
    write_events(load_events(_events(times[:1])), tmp_path / "dir" / "a.parquet")
    write_events(load_events(_events(times[1:])), tmp_path / "dir" / "b.parquet")
    assert footer_last_time(str(tmp_path / "dir")) == pd.Timestamp("2025-03-04 05:06:07.123456", tz="UTC")
    # nanoseconds, and a row group of nothing but null times (skipped, not a reason to scan)
    ns = pa.table({"timestamp": pa.array([None, None, 1_740_000_000_123_456_789], pa.timestamp("ns", tz="UTC"))})
    pq.write_table(ns, tmp_path / "ns.parquet", row_group_size=2)
    assert pq.ParquetFile(tmp_path / "ns.parquet").metadata.num_row_groups == 2
    assert footer_last_time(str(tmp_path / "ns.parquet")) == pd.Timestamp(1_740_000_000_123_456_789, tz="UTC")
    # no statistics, times without a zone, no timestamp column, no such file: no answer (the caller scans)
    pq.write_table(pa.table({"timestamp": pa.array([1], pa.timestamp("us", tz="UTC"))}), tmp_path / "bare.parquet",
                   write_statistics=False)
    pq.write_table(pa.table({"timestamp": pa.array([1], pa.timestamp("us"))}), tmp_path / "naive.parquet")
    pq.write_table(pa.table({"when": pa.array([1], pa.timestamp("us", tz="UTC"))}), tmp_path / "other.parquet")
    for name in ("bare", "naive", "other", "missing"):
        assert footer_last_time(str(tmp_path / f"{name}.parquet")) is None


def test_observed_end_of_an_opened_file_needs_no_scan_and_a_derived_table_still_scans(tmp_path, monkeypatch):
    from helpers.io import observed_end

    times = ["2025-01-02T00:00:00", "2025-03-04T05:06:07", "2025-02-01T00:00:00"]
    t = open_events(write_events(load_events(_events(times, ["a", "b", "a"])), tmp_path / "e.parquet"))
    scans = []
    original = ibis.expr.types.Column.max

    def counting(self, *args, **kwargs):
        scans.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ibis.expr.types.Column, "max", counting)
    assert observed_end(t) == pd.Timestamp("2025-03-04 05:06:07", tz="UTC") and not scans
    only_a = t.filter(t.user_id == "a")  # another table: its own last event, from a scan
    assert observed_end(only_a) == pd.Timestamp("2025-02-01", tz="UTC") and len(scans) == 1


def test_a_funnel_on_an_opened_file_censors_at_the_same_end_as_on_the_frame(tmp_path):
    from helpers.funnel import compute_funnel

    ev = load_events(pd.DataFrame({
        "user_id": ["a", "a", "b", "c", "c", "z"], "event": ["s", "p", "s", "s", "p", "x"],
        "timestamp": ["2025-01-01", "2025-01-03", "2025-01-08", "2025-01-02", "2025-01-05", "2025-01-10"]}))
    path = write_events(ev, tmp_path / "e.parquet")
    on_file = compute_funnel(open_events(path), ["s", "p"], conversion_window="7D")
    on_frame = compute_funnel(ev, ["s", "p"], conversion_window="7D")
    # b entered on the 8th: its 7 days had not elapsed by the last event (the 10th), so it is in progress
    assert on_file.per_user.set_index("user_id").loc["b", "in_progress"]
    pd.testing.assert_frame_equal(on_file.table, on_frame.table)
    pd.testing.assert_frame_equal(on_file.per_user, on_frame.per_user)
