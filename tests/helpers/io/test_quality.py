"""helpers.io.quality: data_quality: counts on hand-made logs, suspicious ids."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from io_files import CSV, ts, write

from helpers.io import (
    data_quality,
    load_events,
    open_events,
    read_load_info,
    write_events,
)


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
