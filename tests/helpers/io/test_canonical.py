"""helpers.io.canonical: load_events: dropped rows counted by rule, duplicates, missing columns and bad values named, inputs untouched."""

from __future__ import annotations

import pandas as pd
import pytest
from io_files import CSV, digest, write

from helpers.io import (
    EventDataError,
    data_quality,
    load_events,
)


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


def test_missing_column_lists_the_columns_and_the_closest_name(tmp_path):
    path = write(tmp_path / "e.csv", "userid,event,timestamp\nu,e,2025-01-01\n")
    with pytest.raises(EventDataError) as err:
        load_events(path)
    msg = str(err.value)
    assert str(path) in msg and "'user_id'" in msg
    assert "Columns present: userid, event, timestamp" in msg
    assert "closest column is 'userid'" in msg


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


def test_all_null_user_ids_is_an_error_not_an_empty_table(tmp_path):
    path = write(tmp_path / "e.csv", "user_id,event,timestamp\n,e,2025-01-01\n,e,2025-01-02\n")
    with pytest.raises(EventDataError, match=r"e.csv: column 'user_id' is null in all 2 rows"):
        load_events(path)


def test_event_data_error_is_a_value_error():
    assert issubclass(EventDataError, ValueError)


def test_na_like_user_ids_are_ids_and_are_reported_as_suspicious(tmp_path):
    path = write(tmp_path / "e.csv", "user_id,event,timestamp\nNA,a,2025-01-01\nnull,a,2025-01-01\nNone,a,2025-01-01\n"
                                     "N/A,a,2025-01-01\nnan,a,2025-01-01\nu1,a,2025-01-01\n,a,2025-01-01\n")
    ev = load_events(path)
    assert ev["user_id"].tolist() == ["NA", "null", "None", "N/A", "nan", "u1"]
    assert ev.attrs["helpers.load"]["dropped"] == {"null user_id": 1}  # only the empty one
    q = data_quality(ev, as_of="2025-02-01")
    assert q.na_like_ids == 5
    assert "5 rows" in " ".join(q.warnings) and "user ids spelled like a missing value" in q.summary["check"].tolist()


@pytest.mark.parametrize("text", ["inf", "-inf", "Infinity"])  # 1e309 is refused as no number
def test_an_infinite_value_is_an_error_with_its_row(tmp_path, text):
    path = write(tmp_path / "v.csv", f"user_id,event,timestamp,value\nu1,purchase,2025-01-01,5\nu2,purchase,2025-01-02,{text}\n")
    with pytest.raises(EventDataError, match=rf"v.csv: column 'value' has 1 infinite value\(s\), e.g. row 2 \(line 3\): '{text}'"):
        load_events(path)
