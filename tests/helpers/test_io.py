"""helpers.io: every input becomes the canonical table, and every bad input says where and why."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from pathlib import Path

import ibis
import numpy as np
import pandas as pd
import pytest

from helpers.io import (
    EventDataError,
    as_ibis,
    data_quality,
    load_events,
    open_events,
    read_load_info,
    write_events,
)

UTC = "UTC"


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz=UTC)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


CSV = """user_id,event,timestamp,channel,value,page
007,visit,2025-01-01T10:00:00Z,web,,home
007,signup,2025-01-01T10:05:00+01:00,web,,
42,visit,2025-01-02 08:00:00,app,,pricing
42,purchase,2025-01-03T00:00:00Z,app,19.5,
"""


# ---------------------------------------------------------------- formats


def test_csv_loads_as_the_canonical_table_with_types_offsets_and_leading_zeros(tmp_path):
    ev = load_events(write(tmp_path / "e.csv", CSV))
    assert list(ev.columns) == ["user_id", "event", "timestamp", "channel", "value", "page"]
    assert ev["user_id"].tolist() == ["007", "007", "42", "42"]
    assert str(ev["timestamp"].dtype) == "datetime64[ns, UTC]"
    # +01:00 is converted; a value without an offset is taken as UTC.
    assert ev["timestamp"].tolist() == [ts("2025-01-01 10:00"), ts("2025-01-01 09:05"), ts("2025-01-02 08:00"), ts("2025-01-03")]
    assert ev["value"].dtype == "float64" and ev["value"].iloc[3] == 19.5
    assert ev["page"].iloc[0] == "home"


def test_gzipped_csv_tsv_parquet_jsonl_and_dataframe_give_the_same_table(tmp_path):
    base = load_events(write(tmp_path / "e.csv", CSV))
    with gzip.open(tmp_path / "e.csv.gz", "wt") as fh:
        fh.write(CSV)
    write(tmp_path / "e.tsv", CSV.replace(",", "\t"))
    raw = pd.read_csv(tmp_path / "e.csv", dtype={"user_id": str})
    raw.to_parquet(tmp_path / "e.parquet")
    with open(tmp_path / "e.jsonl", "w") as fh:
        for rec in raw.to_dict("records"):
            fh.write(json.dumps({k: (None if pd.isna(v) else v) for k, v in rec.items()}) + "\n")
    with gzip.open(tmp_path / "e.jsonl.gz", "wt") as fh:
        fh.write((tmp_path / "e.jsonl").read_text())
    for source in ("e.csv.gz", "e.tsv", "e.parquet", "e.jsonl", "e.jsonl.gz"):
        got = load_events(tmp_path / source)
        pd.testing.assert_frame_equal(got[base.columns[:5]], base[base.columns[:5]], check_dtype=False, obj=source)
    pd.testing.assert_frame_equal(load_events(raw)[base.columns[:5]], base[base.columns[:5]], check_dtype=False)


def test_parquet_folder_and_glob_read_every_part(tmp_path):
    frame = pd.read_csv(write(tmp_path / "e.csv", CSV), dtype={"user_id": str})
    (tmp_path / "parts").mkdir()
    frame.iloc[:2].to_parquet(tmp_path / "parts" / "a.parquet")
    frame.iloc[2:].to_parquet(tmp_path / "parts" / "b.parquet")
    assert len(load_events(tmp_path / "parts")) == 4
    assert len(load_events(str(tmp_path / "parts" / "*.parquet"))) == 4
    with pytest.raises(EventDataError, match="no file matches"):
        load_events(str(tmp_path / "parts" / "*.nothing.parquet"))


# ---------------------------------------------------------------- presets


def test_amplitude_preset_maps_columns_and_flattens_event_properties(tmp_path):
    lines = [
        {"user_id": "a@x.com", "event_type": "Play", "event_time": "2025-03-01 12:00:00.123456",
         "event_properties": {"song": "x"}, "device_id": "d1"},
        {"user_id": "b", "event_type": "Pause", "event_time": "2025-03-01 12:01:00.000000",
         "event_properties": {"song": "y"}, "device_id": "d2"},
    ]
    path = write(tmp_path / "amp.json", "\n".join(json.dumps(r) for r in lines))
    ev = load_events(path, mapping="amplitude")
    assert ev["event"].tolist() == ["Play", "Pause"]
    assert ev["timestamp"].iloc[0] == ts("2025-03-01 12:00:00.123456")
    assert ev["song"].tolist() == ["x", "y"]  # event_properties.song, shortened
    assert "device_id" in ev.columns


def test_segment_preset_falls_back_to_anonymous_id_and_keeps_its_own_channel_apart(tmp_path):
    lines = [
        {"userId": "u1", "anonymousId": "anon-1", "event": "Signed Up", "timestamp": "2025-01-01T00:00:00.000Z",
         "channel": "server", "properties": {"plan": "pro"}},
        {"userId": None, "anonymousId": "anon-2", "event": "Viewed", "timestamp": "2025-01-01T01:00:00.000Z",
         "channel": "client", "properties": {"plan": None}},
    ]
    ev = load_events(write(tmp_path / "seg.jsonl", "\n".join(json.dumps(r) for r in lines)), mapping="segment")
    assert ev["user_id"].tolist() == ["u1", "anon-2"]
    assert "channel" not in ev.columns and ev["segment_channel"].tolist() == ["server", "client"]
    assert ev["plan"].iloc[0] == "pro"


def test_mixpanel_preset_reads_epoch_seconds_inside_properties(tmp_path):
    lines = [
        {"event": "Login", "properties": {"distinct_id": 123, "time": 1735689600, "$os": "iOS"}},
        {"event": "Logout", "properties": {"distinct_id": 123, "time": 1735693200, "$os": "iOS"}},
    ]
    ev = load_events(write(tmp_path / "mp.jsonl", "\n".join(json.dumps(r) for r in lines)), mapping="mixpanel")
    assert ev["user_id"].tolist() == ["123", "123"]
    assert ev["timestamp"].tolist() == [ts("2025-01-01 00:00"), ts("2025-01-01 01:00")]
    assert ev["$os"].tolist() == ["iOS", "iOS"]


def test_ga4_preset_reads_epoch_microseconds(tmp_path):
    frame = pd.DataFrame({"user_pseudo_id": ["1.2", "3.4"], "event_name": ["page_view", "purchase"],
                          "event_timestamp": [1735689600123456, 1735689601000000]})
    frame.to_parquet(tmp_path / "ga4.parquet")
    ev = load_events(tmp_path / "ga4.parquet", mapping="ga4")
    assert ev["user_id"].tolist() == ["1.2", "3.4"]
    assert ev["timestamp"].iloc[0] == ts("2025-01-01 00:00:00.123456")


def test_a_dict_mapping_renames_export_columns(tmp_path):
    frame = pd.DataFrame({"customer": ["c1"], "action": ["buy"], "at": ["2025-01-01"], "amount": ["9.99"]})
    ev = load_events(frame, mapping={"customer": "user_id", "action": "event", "at": "timestamp", "amount": "value"})
    assert ev.iloc[0][["user_id", "event", "value"]].tolist() == ["c1", "buy", 9.99]


# ---------------------------------------------------------------- timestamps


@pytest.mark.parametrize(
    "raw, unit",
    [
        (1735689600, "s"),
        (1735689600.5, "s"),
        (1735689600000, "ms"),
        (1735689600000000, "us"),
        (1735689600000000000, "ns"),
    ],
)
def test_epoch_unit_is_read_from_magnitude(raw, unit):
    ev = load_events(pd.DataFrame({"user_id": ["u"], "event": ["e"], "timestamp": [raw]}))
    expected = pd.Timestamp(raw, unit=unit, tz=UTC) if unit != "s" else pd.Timestamp(raw, unit="s", tz=UTC)
    assert ev["timestamp"].iloc[0] == expected


def test_mixed_epoch_units_in_one_column_are_each_read_by_magnitude():
    frame = pd.DataFrame({"user_id": ["u", "u"], "event": ["a", "b"], "timestamp": [1735689600, 1735689600000]})
    assert load_events(frame)["timestamp"].tolist() == [ts("2025-01-01"), ts("2025-01-01")]


def test_timestamp_unit_overrides_the_magnitude_rule():
    frame = pd.DataFrame({"user_id": ["u"], "event": ["e"], "timestamp": [1735689600]})
    assert load_events(frame, timestamp_unit="ms")["timestamp"].iloc[0] == pd.Timestamp(1735689600, unit="ms", tz=UTC)


def test_epoch_numbers_written_as_text_are_read_as_epochs(tmp_path):
    path = write(tmp_path / "e.csv", "user_id,event,timestamp\nu,e,\"1735689600000\"\n")
    assert load_events(path)["timestamp"].iloc[0] == ts("2025-01-01")


def test_datetime_columns_naive_are_utc_and_aware_are_converted():
    naive = pd.DataFrame({"user_id": ["u"], "event": ["e"], "timestamp": [pd.Timestamp("2025-01-01 12:00")]})
    aware = naive.assign(timestamp=[pd.Timestamp("2025-01-01 12:00", tz="America/New_York")])
    assert load_events(naive)["timestamp"].iloc[0] == ts("2025-01-01 12:00")
    assert load_events(aware)["timestamp"].iloc[0] == ts("2025-01-01 17:00")


def test_start_and_end_keep_start_inclusive_end_exclusive_and_count_the_rest(tmp_path):
    ev = load_events(write(tmp_path / "e.csv", CSV), start="2025-01-01T09:30:00Z", end="2025-01-03")
    assert ev["event"].tolist() == ["visit", "visit"]
    assert ev.attrs["helpers.load"]["dropped"] == {"before start": 1, "at or after end": 1}


# ---------------------------------------------------------------- dropping and duplicates


def test_null_user_event_and_timestamp_rows_are_dropped_and_counted_per_reason():
    frame = pd.DataFrame({
        "user_id": ["u1", None, "", "u2", "u3", "u4"],
        "event": ["a", "a", "a", None, "a", "a"],
        "timestamp": ["2025-01-01", "2025-01-01", "2025-01-01", "2025-01-01", None, "2025-01-02"],
    })
    ev = load_events(frame)
    assert ev["user_id"].tolist() == ["u1", "u4"]
    assert ev.attrs["helpers.load"]["dropped"] == {"null user_id": 2, "null event": 1, "null timestamp": 1}
    assert ev.attrs["helpers.load"]["rows_read"] == 6


def test_exact_duplicates_are_removed_and_counted_but_near_duplicates_are_kept():
    frame = pd.DataFrame({
        "user_id": ["u1", "u1", "u1", "u1"],
        "event": ["a", "a", "a", "a"],
        "timestamp": ["2025-01-01T00:00:00Z", "2025-01-01T00:00:00Z", "2025-01-01T00:00:01Z", "2025-01-01T00:00:00Z"],
        "value": [1.0, 1.0, 1.0, 2.0],
    })
    ev = load_events(frame)
    assert len(ev) == 3
    assert ev.attrs["helpers.load"]["duplicates_removed"] == 1


def test_the_same_instant_written_two_ways_is_a_duplicate():
    frame = pd.DataFrame({"user_id": ["u", "u"], "event": ["a", "a"],
                          "timestamp": ["2025-01-01T01:00:00+01:00", "2025-01-01T00:00:00Z"]})
    assert load_events(frame).attrs["helpers.load"]["duplicates_removed"] == 1


def test_input_dataframe_and_source_file_are_never_modified(tmp_path):
    path = write(tmp_path / "e.csv", CSV + "007,visit,2025-01-01T10:00:00Z,web,,home\n")
    before = digest(path)
    load_events(path)
    assert digest(path) == before
    # Rows dropped (a duplicate, one before start) and a property column passed through as it is.
    frame = pd.DataFrame({"user_id": [1, 1, 2], "event": ["a", "a", "b"],
                          "timestamp": ["2025-01-01", "2025-01-01", "2024-12-31"], "page": ["x", "x", "y"]})
    copy = frame.copy()
    loaded = load_events(frame, start="2025-01-01")
    pd.testing.assert_frame_equal(frame, copy)
    assert loaded[["user_id", "page"]].values.tolist() == [["1", "x"]]


# ---------------------------------------------------------------- bad input


def test_missing_column_lists_the_columns_and_the_closest_name(tmp_path):
    path = write(tmp_path / "e.csv", "userid,event,timestamp\nu,e,2025-01-01\n")
    with pytest.raises(EventDataError) as err:
        load_events(path)
    msg = str(err.value)
    assert str(path) in msg and "'user_id'" in msg
    assert "Columns present: userid, event, timestamp" in msg
    assert "closest column is 'userid'" in msg


def test_missing_column_suggests_the_matching_preset(tmp_path):
    path = write(tmp_path / "e.csv", "user_id,event_type,event_time\nu,e,2025-01-01\n")
    with pytest.raises(EventDataError, match="mapping='amplitude'"):
        load_events(path)


def test_missing_column_through_a_preset_names_the_export_column(tmp_path):
    path = write(tmp_path / "e.csv", "user_pseudo_id,event_name,ts\nu,e,1\n")
    with pytest.raises(EventDataError, match=r"'event_timestamp' \(mapped to 'timestamp'\)"):
        load_events(path, mapping="ga4")


def test_unparseable_timestamps_name_the_file_column_and_rows(tmp_path):
    path = write(tmp_path / "e.csv",
                 "user_id,event,timestamp\nu,e,2025-01-01\nu,e,yesterday\nu,e,2025-13-45\nu,e,2025-01-02\n")
    with pytest.raises(EventDataError) as err:
        load_events(path)
    msg = str(err.value)
    assert str(path) in msg and "column 'timestamp'" in msg and "2 value(s)" in msg
    assert "row 2 (line 3): 'yesterday'" in msg and "row 3 (line 4): '2025-13-45'" in msg


def test_at_most_five_examples_are_shown():
    frame = pd.DataFrame({"user_id": ["u"] * 8, "event": ["e"] * 8, "timestamp": [f"bad{i}" for i in range(8)]})
    with pytest.raises(EventDataError) as err:
        load_events(frame)
    assert "8 value(s)" in str(err.value) and "'bad4'" in str(err.value) and "'bad5'" not in str(err.value)


def test_non_numeric_value_is_an_error_with_examples():
    frame = pd.DataFrame({"user_id": ["u", "u"], "event": ["buy", "buy"], "timestamp": ["2025-01-01"] * 2,
                          "value": ["12.5", "$13"]})
    with pytest.raises(EventDataError, match=r"column 'value'.*row 2: '\$13'"):
        load_events(frame)


def test_timestamp_unit_on_text_timestamps_is_an_error():
    frame = pd.DataFrame({"user_id": ["u"], "event": ["e"], "timestamp": ["2025-01-01"]})
    with pytest.raises(EventDataError, match="holds text, not epoch numbers"):
        load_events(frame, timestamp_unit="s")


@pytest.mark.parametrize("content, match", [("", "is empty"), ("user_id,event,timestamp\n", "no rows")])
def test_empty_files_are_errors(tmp_path, content, match):
    with pytest.raises(EventDataError, match=match):
        load_events(write(tmp_path / "e.csv", content))


def test_all_null_user_ids_is_an_error_not_an_empty_table(tmp_path):
    path = write(tmp_path / "e.csv", "user_id,event,timestamp\n,e,2025-01-01\n,e,2025-01-02\n")
    with pytest.raises(EventDataError, match=r"e.csv: column 'user_id' is null in all 2 rows"):
        load_events(path)


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(EventDataError, match="unknown mapping preset 'heap'; known presets: amplitude, ga4, mixpanel, segment"):
        load_events(pd.DataFrame({"a": [1]}), mapping="heap")


@pytest.mark.parametrize("name, content, match", [
    ("missing.csv", None, "no such file"),
    ("broken.parquet", b"not parquet at all", "cannot read as Parquet"),
    ("broken.jsonl", b'{"user_id": "u"}\n{not json\n', r"line 2 is not valid JSON"),
    ("events.xlsx", b"PK", "unknown file type"),
    ("binary.csv", b"\xff\xfe\x00\x01\x02", "cannot read as CSV"),
])
def test_unreadable_files_are_errors_that_name_the_file(tmp_path, name, content, match):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(EventDataError, match=match) as err:
        load_events(path)
    assert name in str(err.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_a_file_without_read_permission_is_an_error(tmp_path):
    path = write(tmp_path / "e.csv", CSV)
    path.chmod(0)
    with pytest.raises(EventDataError, match="not readable"):
        load_events(path)


def test_event_data_error_is_a_value_error():
    assert issubclass(EventDataError, ValueError)


# ---------------------------------------------------------------- writing, opening, ibis


def test_write_events_round_trips_and_keeps_the_load_record(tmp_path):
    ev = load_events(write(tmp_path / "e.csv", CSV + "007,visit,2025-01-01T10:00:00Z,web,,home\n"))
    out = write_events(ev, tmp_path / "out" / "events.parquet")
    back = load_events(out)
    pd.testing.assert_frame_equal(back.reset_index(drop=True), ev.reset_index(drop=True), check_dtype=False)
    assert read_load_info(out)["duplicates_removed"] == 1


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


# ---------------------------------------------------------------- quality report


def test_data_quality_counts_on_a_hand_made_log():
    frame = pd.DataFrame({
        "user_id": ["u1", "u1", "u1", "u2", "u3", None],
        "event": ["visit", "visit", "buy", "visit", "visit", "visit"],
        "timestamp": ["2025-01-01T10:00Z", "2025-01-01T10:00Z", "2025-01-02T00:00Z", "1970-01-01T00:00Z",
                      "2030-01-01T00:00Z", "2025-01-01T00:00Z"],
        "channel": ["web", "web", None, "app", "web", "web"],
    })
    q = data_quality(load_events(frame), as_of="2026-01-01")
    assert (q.rows, q.users, q.rows_read, q.duplicates_removed) == (4, 3, 6, 1)
    assert q.single_event_users == 2 and q.future_timestamps == 1 and q.pre_2000_timestamps == 1
    assert q.events_per_type.set_index("event")["events"].to_dict() == {"visit": 3, "buy": 1}
    assert q.channels.set_index("channel")["events"].to_dict() == {"web": 2, "app": 1, "(none)": 1}
    assert q.nulls.set_index("column").loc["channel", "nulls"] == 1
    assert q.dropped.to_dict("records") == [{"reason": "null user_id", "rows": 1}]
    assert q.first_timestamp == ts("1970-01-01") and q.last_timestamp == ts("2030-01-01")
    assert q.events_per_day["events"].sum() == 4
    assert any("after 2026-01-01" in w for w in q.warnings) and any("before 2000" in w for w in q.warnings)
    summary = q.summary.set_index("check")["value"]
    assert summary["exact duplicates removed"] == "1" and summary["users with a single event"] == "2 (66.7%)"
    assert "<table" in q._repr_html_()


def test_data_quality_works_on_an_ibis_table_with_a_stored_load_record(tmp_path):
    ev = load_events(write(tmp_path / "e.csv", CSV))
    path = write_events(ev, tmp_path / "events.parquet")
    q = data_quality(open_events(path), load_info=read_load_info(path), as_of="2026-01-01")
    assert (q.rows, q.users, q.duplicates_removed) == (4, 2, 0)
    assert np.isclose(q.events_per_type["share"].sum(), 1.0)


def test_duplicates_are_found_among_rows_with_nested_json_values(tmp_path):
    rec = {"user_id": "u", "event": "e", "timestamp": "2025-01-01T00:00:00Z", "tags": ["a", "b"]}
    other = {**rec, "tags": ["b", "a"]}
    path = write(tmp_path / "e.jsonl", "\n".join(json.dumps(r) for r in (rec, rec, other)))
    ev = load_events(path)
    assert len(ev) == 2 and ev.attrs["helpers.load"]["duplicates_removed"] == 1


def test_user_attribute_takes_the_first_column_found_and_skips_missing_files(tmp_path):
    from helpers.io import user_attribute

    users = tmp_path / "users.parquet"
    pd.DataFrame({"user_id": ["u1", "u2"], "acquisition_channel": ["ads", "search"]}).to_parquet(users)
    got = user_attribute(["persona", "acquisition_channel"], [tmp_path / "personas.parquet", users])
    assert got.name == "acquisition_channel" and got.to_dict() == {"u1": "ads", "u2": "search"}
    assert user_attribute("variant", ["data/sample/users.parquet"]).isin(["A", "B"]).all()  # relative to the root
    with pytest.raises(EventDataError, match=r"none of the columns \['persona'\]"):
        user_attribute("persona", [users])


def test_open_events_takes_a_backend_by_name(tmp_path):
    path = write_events(load_events(pd.DataFrame({"user_id": ["u1"], "event": ["a"], "timestamp": ["2025-01-01"]})),
                        tmp_path / "events.parquet")
    assert open_events(path, backend="duckdb").get_backend().name == "duckdb"
    with pytest.raises(EventDataError, match=r"backend='bigquery': the backend must be one of duckdb, pyspark"):
        open_events(path, backend="bigquery")


@pytest.fixture
def new_york_sessions():
    """DuckDB sessions whose time zone is not UTC (as on an analyst's laptop in New York)."""
    from helpers.io import default_backend

    cons = [ibis.get_backend(), default_backend("duckdb")]
    for con in cons:
        con.raw_sql("SET TimeZone = 'America/New_York'")
    yield
    for con in cons:
        con.raw_sql("SET TimeZone = 'UTC'")


def test_calendar_periods_are_utc_whatever_the_session_time_zone(new_york_sessions, tmp_path):
    from helpers.engagement import lifecycle
    from helpers.io import epoch_us, utc_naive
    from helpers.personas import user_features
    from helpers.retention import cohort_retention

    # 02:00 UTC on Monday 6 January is still Sunday evening in New York.
    ev = load_events(pd.DataFrame({"user_id": ["a", "a", "b"], "event": ["x", "y", "x"],
                                   "timestamp": ["2025-01-06 02:00", "2025-01-06 23:30", "2025-01-13 00:30"]}))
    for t in (as_ibis(ev), open_events(write_events(ev, tmp_path / "events.parquet"))):
        got = t.select("user_id", us=epoch_us(t.timestamp), day=utc_naive(t.timestamp).date()).order_by(
            ["user_id", "us"]).execute()
        assert got["us"].tolist() == [1736128800000000, 1736206200000000, 1736728200000000]
        assert got["day"].astype(str).tolist() == ["2025-01-06", "2025-01-06", "2025-01-13"]
        cohorts = cohort_retention(t, period="W", observed_until="2025-01-26 23:59")
        assert [str(c.date()) for c in cohorts.counts.index] == ["2025-01-06", "2025-01-13"]
        assert lifecycle(t, period="D", observed_until="2025-01-13 01:00")["period"].astype(str).tolist()[0] == (
            "2025-01-06 00:00:00+00:00")
        assert user_features(t).loc["a", "active_days"] == 1


# --------------------------------------------------------------------------- odd and hostile input


def frame(**columns) -> pd.DataFrame:
    n = max(len(v) for v in columns.values())
    base = {"user_id": ["u1"] * n, "event": ["e"] * n}
    return pd.DataFrame({**base, **columns})


@pytest.mark.parametrize("values, unit", [
    ([86_400_000, 90_000_000_000], "s"),  # milliseconds of 1970-72 read as seconds: years 1972 and 4822
    ([45658.5, 45659.25], "s"),          # spreadsheet serial days
    ([2025, 2024], "s"),                  # bare years
    ([20250101, 20250102], "s"),          # yyyymmdd integers
])
def test_an_implausible_guessed_epoch_unit_is_an_error_naming_the_unit_and_the_way_out(values, unit):
    with pytest.raises(EventDataError, match=rf"column 'timestamp'.*guessed.*'{unit}'.*timestamp_unit="):
        load_events(frame(timestamp=values))


def test_yyyymmdd_integers_are_recognised_in_the_error_and_load_with_timestamp_format(tmp_path):
    path = write(tmp_path / "orders.csv", "user_id,event,timestamp\nc1,purchase,20250101\nc1,purchase,20250315\n")
    with pytest.raises(EventDataError, match=r"yyyymmdd.*timestamp_format='%Y%m%d'"):
        load_events(path)
    ev = load_events(path, timestamp_format="%Y%m%d")
    assert ev["timestamp"].tolist() == [ts("2025-01-01"), ts("2025-03-15")]


@pytest.mark.parametrize("unit, value", [("ms", 1735689600123 * 10**7), ("s", 20_000_000_000 * 10**3)])
def test_epoch_numbers_that_overflow_at_the_given_unit_are_an_error_not_a_wrapped_date(unit, value):
    with pytest.raises(EventDataError, match=rf"column 'timestamp'.*timestamp_unit='{unit}'"):
        load_events(frame(timestamp=[value]), timestamp_unit=unit)


def test_plausible_epochs_of_every_unit_still_load():
    ev = load_events(frame(timestamp=[1735689600, 1735689600123, 1735689600123456, 1735689600123456789]))
    assert ev["timestamp"].dt.year.tolist() == [2025] * 4


def test_csv_properties_keep_their_text_unless_numeric_without_loss(tmp_path):
    path = write(tmp_path / "e.csv", "user_id,event,timestamp,zip,order_id,qty,price,big,flag\n"
                                     "u1,buy,2025-01-01,00123,A-1,2,9.5,12345678901234567890,true\n"
                                     "u2,buy,2025-01-02,45000,007,3,NA,1,false\n")
    ev = load_events(path)
    assert ev["zip"].tolist() == ["00123", "45000"]
    assert ev["order_id"].tolist() == ["A-1", "007"]
    assert ev["qty"].tolist() == [2, 3] and pd.api.types.is_integer_dtype(ev["qty"])
    assert ev["price"].iloc[0] == 9.5 and pd.isna(ev["price"].iloc[1])  # "NA" in a numeric column is missing
    assert ev["big"].tolist() == ["12345678901234567890", "1"]  # beyond exact integers: kept as text
    assert ev["flag"].tolist() == ["true", "false"]


def test_na_like_user_ids_are_ids_and_are_reported_as_suspicious(tmp_path):
    path = write(tmp_path / "e.csv", "user_id,event,timestamp\nNA,a,2025-01-01\nnull,a,2025-01-01\nNone,a,2025-01-01\n"
                                     "N/A,a,2025-01-01\nnan,a,2025-01-01\nu1,a,2025-01-01\n,a,2025-01-01\n")
    ev = load_events(path)
    assert ev["user_id"].tolist() == ["NA", "null", "None", "N/A", "nan", "u1"]
    assert ev.attrs["helpers.load"]["dropped"] == {"null user_id": 1}  # only the empty one
    q = data_quality(ev, as_of="2025-02-01")
    assert q.na_like_ids == 5
    assert "5 rows" in " ".join(q.warnings) and "user ids spelled like a missing value" in q.summary["check"].tolist()


def test_ids_differing_only_by_case_or_spaces_are_reported_and_merged_on_request():
    raw = pd.DataFrame({"user_id": ["u1", "U1", " u1 ", "u2", "u3", "U3"], "event": ["a"] * 6,
                        "timestamp": [f"2025-01-0{d}" for d in range(1, 7)]})
    q = data_quality(load_events(raw), as_of="2025-02-01")
    assert q.id_variants["ids"].tolist() == [3, 2]
    assert (q.users, q.users_if_normalized) == (6, 3)
    assert any("normalize_ids=True" in w for w in q.warnings)
    merged = load_events(raw, normalize_ids=True)
    assert merged["user_id"].tolist() == ["u1", "u1", "u1", "u2", "u3", "u3"]
    assert merged.attrs["helpers.load"]["ids_normalized"] == 6 - 3  # rows whose id changed: U1, " u1 ", U3


@pytest.mark.parametrize("line, kind", [("[1, 2]", "an array"), ("5", "a number"), ("null", "null"), ('"x"', "a string")])
def test_a_json_lines_record_that_is_not_an_object_is_an_error_naming_the_line(tmp_path, line, kind):
    path = write(tmp_path / "e.jsonl", '{"user_id": "u1", "event": "a", "timestamp": "2025-01-01"}\n' + line + "\n")
    with pytest.raises(EventDataError, match=rf"e.jsonl: .*line 2 is {kind}, not a JSON object"):
        load_events(path)


def test_a_flattened_json_name_that_clashes_with_a_top_level_key_is_an_error(tmp_path):
    path = write(tmp_path / "e.jsonl", '{"user_id": "u1", "event": "a", "timestamp": "2025-01-01", '
                                       '"page": {"url": "/x"}, "page.url": "/y"}\n')
    with pytest.raises(EventDataError, match=r"e.jsonl: .*'page.url'.*both"):
        load_events(path)


def test_a_mapping_that_sends_two_columns_to_one_is_an_error():
    raw = pd.DataFrame({"a": ["u1"], "b": ["u2"], "event": ["x"], "timestamp": ["2025-01-01"]})
    with pytest.raises(EventDataError, match=r"'a' and 'b'.*'user_id'"):
        load_events(raw, mapping={"a": "user_id", "b": "user_id"})


def test_a_parquet_timestamp_beyond_the_nanosecond_range_is_an_error_with_the_row(tmp_path):
    import datetime as dtm

    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"user_id": ["u1", "u2"], "event": ["a", "a"],
                      "timestamp": pa.array([dtm.datetime(2025, 1, 1), dtm.datetime(2500, 1, 1)], pa.timestamp("us", "UTC"))})
    pq.write_table(table, tmp_path / "e.parquet")
    with pytest.raises(EventDataError, match=r"e.parquet: column 'timestamp'.*row 2.*2500-01-01"):
        load_events(tmp_path / "e.parquet")


def test_binary_user_ids_in_parquet_load_when_utf8_and_are_an_error_otherwise(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    good = pa.table({"user_id": pa.array([b"u1", b"u2"], pa.binary()), "event": ["a", "a"],
                     "timestamp": ["2025-01-01", "2025-01-02"]})
    pq.write_table(good, tmp_path / "good.parquet")
    assert load_events(tmp_path / "good.parquet")["user_id"].tolist() == ["u1", "u2"]
    bad = good.set_column(0, "user_id", pa.array([b"u1", b"\xff\xfe"], pa.binary()))
    pq.write_table(bad, tmp_path / "bad.parquet")
    with pytest.raises(EventDataError, match=r"bad.parquet: column 'user_id' is not UTF-8 text.*row 2"):
        load_events(tmp_path / "bad.parquet")


def test_a_glob_of_parquet_files_with_different_types_loads_like_the_folder(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "parts"
    folder.mkdir()
    pq.write_table(pa.table({"user_id": ["u1"], "event": ["a"], "timestamp": ["2025-01-01T00:00:00Z"]}), folder / "a.parquet")
    pq.write_table(pa.table({"user_id": [2], "event": ["b"], "extra": [1],
                             "timestamp": pa.array([pd.Timestamp("2025-01-02", tz=UTC)], pa.timestamp("us", "UTC"))}),
                   folder / "b.parquet")
    by_glob, by_folder = load_events(str(folder / "*.parquet")), load_events(folder)
    assert by_glob["user_id"].tolist() == ["u1", "2"]
    assert by_glob["timestamp"].tolist() == [ts("2025-01-01"), ts("2025-01-02")]
    pd.testing.assert_frame_equal(by_glob, by_folder)
    assert by_folder["extra"].isna().tolist() == [True, False]  # a later file's extra column is kept


@pytest.mark.parametrize("bound", ["start", "end"])
def test_an_unparseable_start_or_end_is_an_error_naming_it(bound):
    with pytest.raises(EventDataError, match=rf"{bound}='yesterday'"):
        load_events(frame(timestamp=["2025-01-01"]), **{bound: "yesterday"})


def test_xes_case_logs_load_with_cases_as_users_and_case_attributes_as_properties(tmp_path):
    xes = ('<?xml version="1.0"?><log xmlns="http://www.xes-standard.org/">'
           '<trace><string key="concept:name" value="173688"/><string key="AMOUNT_REQ" value="20000"/>'
           '<event><string key="concept:name" value="A_SUBMITTED"/><date key="time:timestamp" value="2011-10-01T00:38:44.546+02:00"/></event>'
           '<event><string key="concept:name" value="A_PARTLYSUBMITTED"/><date key="time:timestamp" value="2011-10-01T00:38:44.880+02:00"/>'
           '<string key="org:resource" value="112"/></event></trace>'
           '<trace><string key="concept:name" value="173691"/>'
           '<event><string key="concept:name" value="A_SUBMITTED"/><date key="time:timestamp" value="2011-10-01T08:08:58.256+02:00"/></event>'
           '</trace></log>')
    ev = load_events(write(tmp_path / "log.xes", xes))
    assert ev["user_id"].tolist() == ["173688", "173688", "173691"]
    assert ev["event"].tolist() == ["A_SUBMITTED", "A_PARTLYSUBMITTED", "A_SUBMITTED"]
    assert ev["timestamp"].iloc[0] == pd.Timestamp("2011-09-30 22:38:44.546", tz=UTC)
    assert ev["case:AMOUNT_REQ"].fillna("-").tolist() == ["20000", "20000", "-"] and ev["org:resource"].iloc[1] == "112"
    with pytest.raises(EventDataError, match=r"log2.xes: not a readable XES"):
        load_events(write(tmp_path / "log2.xes", "<log><trace>"))


def test_whitespace_separated_txt_with_default_event_and_real_repeats_kept(tmp_path):
    path = write(tmp_path / "cdnow.txt", "customer date quantity amount\n00001 19970101 1 11.77\n"
                                         "00002 19970112 1 12.00\n00002 19970112 1 12.00\n")
    kw = dict(mapping={"customer": "user_id", "date": "timestamp", "amount": "value"}, default_event="purchase",
              timestamp_format="%Y%m%d")
    removed = load_events(path, **kw)
    assert len(removed) == 2 and removed.attrs["helpers.load"]["duplicates_removed"] == 1
    kept = load_events(path, drop_duplicates=False, **kw)
    assert kept["user_id"].tolist() == ["00001", "00002", "00002"] and kept["event"].tolist() == ["purchase"] * 3
    info = kept.attrs["helpers.load"]
    assert (info["duplicates_removed"], info["duplicates_kept"]) == (0, 1)
    assert info["duplicate_examples"] == [{"event": "purchase", "timestamp": "1997-01-12T00:00:00+00:00"}]
    q = data_quality(kept, as_of="2000-01-01")
    assert "1 duplicate rows were kept as real repeats" in q.headline()
    assert any("rule: rows equal to an earlier row in every column" in w for w in q.warnings)


def test_a_handoff_is_read_only_for_the_events_it_was_made_from(tmp_path):
    from helpers.io import current_handoff, handoff_note, write_handoff

    ev = load_events(pd.DataFrame({"user_id": ["u1"], "event": ["a"], "timestamp": ["2025-01-01"]}))
    events = write_events(ev, tmp_path / "events.parquet")
    personas = write_handoff(pd.DataFrame({"user_id": ["u1"], "persona": ["x"]}), tmp_path / "personas.parquet", events)
    assert current_handoff(personas, events) == personas and handoff_note(personas, events) == ""
    write_events(ev, events)  # a later run writes its events: the personas belong to the earlier one
    assert current_handoff(personas, events) is None
    assert "made from other events, so it is not used" in handoff_note(personas, events)
