"""helpers.io.timestamps: Timestamps: epoch units read or refused, text and datetimes to UTC, the time range."""

from __future__ import annotations

import pandas as pd
import pytest
from io_files import CSV, UTC, frame, ts, write

from helpers.io import (
    EventDataError,
    load_events,
)


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


def test_unparseable_timestamps_name_the_file_column_and_rows(tmp_path):
    path = write(tmp_path / "e.csv",
                 "user_id,event,timestamp\nu,e,2025-01-01\nu,e,yesterday\nu,e,2025-13-45\nu,e,2025-01-02\n")
    with pytest.raises(EventDataError) as err:
        load_events(path)
    msg = str(err.value)
    assert str(path) in msg and "column 'timestamp'" in msg and "2 value(s)" in msg
    assert "row 2 (line 3): 'yesterday'" in msg and "row 3 (line 4): '2025-13-45'" in msg


def test_timestamp_unit_on_text_timestamps_is_an_error():
    frame = pd.DataFrame({"user_id": ["u"], "event": ["e"], "timestamp": ["2025-01-01"]})
    with pytest.raises(EventDataError, match="holds text, not epoch numbers"):
        load_events(frame, timestamp_unit="s")


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


def test_a_parquet_timestamp_beyond_the_nanosecond_range_is_an_error_with_the_row(tmp_path):
    import datetime as dtm

    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"user_id": ["u1", "u2"], "event": ["a", "a"],
                      "timestamp": pa.array([dtm.datetime(2025, 1, 1), dtm.datetime(2500, 1, 1)], pa.timestamp("us", "UTC"))})
    pq.write_table(table, tmp_path / "e.parquet")
    with pytest.raises(EventDataError, match=r"e.parquet: column 'timestamp'.*row 2.*2500-01-01"):
        load_events(tmp_path / "e.parquet")


@pytest.mark.parametrize("bound", ["start", "end"])
def test_an_unparseable_start_or_end_is_an_error_naming_it(bound):
    with pytest.raises(EventDataError, match=rf"{bound}='yesterday'"):
        load_events(frame(timestamp=["2025-01-01"]), **{bound: "yesterday"})
