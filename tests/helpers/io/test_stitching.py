"""load_events stitches one person across ids for the presets that carry several, and reports the counts."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from helpers.funnel import compute_funnel
from helpers.io import data_quality, load_events
from io_files import write


def jsonl(path, rows):
    return write(path, "\n".join(json.dumps(r) for r in rows))


def test_segment_joins_the_anonymous_visit_to_the_signed_up_user_and_falls_back_without_stitching(tmp_path):
    rows = [{"userId": None, "anonymousId": "anon-1", "event": "Viewed Pricing", "timestamp": "2025-01-01T00:00:00Z"},
            {"userId": "u1", "anonymousId": "anon-1", "event": "Signed Up", "timestamp": "2025-01-01T00:05:00Z"},
            {"userId": "u1", "anonymousId": "anon-9", "event": "Order Completed", "timestamp": "2025-01-03T00:00:00Z"},
            {"userId": None, "anonymousId": "anon-2", "event": "Viewed Pricing", "timestamp": "2025-01-02T00:00:00Z"}]
    path = jsonl(tmp_path / "seg.jsonl", rows)
    ev = load_events(path, mapping="segment")
    assert ev["user_id"].tolist() == ["u1", "u1", "u1", "anon-2"]
    assert ev["anonymous_id"].tolist() == ["anon-1", "anon-1", "anon-9", "anon-2"]  # kept for auditing
    info = ev.attrs["helpers.load"]["identity"]
    assert info["persons"] == 2 and info["events re-keyed"] == 2 and info["merges refused"] == 0
    funnel = compute_funnel(ev, ["Viewed Pricing", "Order Completed"], conversion_window="7D").table
    assert funnel["users"].tolist() == [2, 1]
    plain = load_events(path, mapping="segment", stitch=False)
    assert plain["user_id"].tolist() == ["anon-1", "u1", "u1", "anon-2"] and "identity" not in plain.attrs["helpers.load"]


def test_amplitude_stitches_device_ids(tmp_path):
    rows = [{"user_id": None, "device_id": "d1", "event_type": "Open", "event_time": "2025-03-01 12:00:00.000000"},
            {"user_id": "amy", "device_id": "d1", "event_type": "Login", "event_time": "2025-03-01 12:01:00.000000"}]
    ev = load_events(jsonl(tmp_path / "amp.json", rows), mapping="amplitude")
    assert ev["user_id"].tolist() == ["amy", "amy"]


def test_mixpanel_id_merge_exports_stitch_distinct_and_device_ids_and_old_exports_keep_distinct_id(tmp_path):
    rows = [{"event": "Page", "properties": {"distinct_id": "$device:x1", "$device_id": "x1", "time": 1735689600}},
            {"event": "Sign Up", "properties": {"distinct_id": "bob", "$device_id": "x1", "$user_id": "bob",
                                                "time": 1735689700}},
            {"event": "Page", "properties": {"distinct_id": "$device:x2", "$device_id": "x2", "time": 1735689800}}]
    ev = load_events(jsonl(tmp_path / "mp.jsonl", rows), mapping="mixpanel")
    assert ev["user_id"].tolist() == ["bob", "bob", "$device:x2"]  # x2's person is named by its earliest id
    old = [{"event": "Login", "properties": {"distinct_id": 123, "time": 1735689600}}]
    assert load_events(jsonl(tmp_path / "old.jsonl", old), mapping="mixpanel")["user_id"].tolist() == ["123"]


def test_ga4_stitches_user_pseudo_id_to_user_id(tmp_path):
    frame = pd.DataFrame({"user_pseudo_id": ["1.2", "1.2", "3.4"], "user_id": [None, "c9", None],
                          "event_name": ["page_view", "purchase", "page_view"],
                          "event_timestamp": [1735689600123456, 1735689601000000, 1735689602000000]})
    frame.to_parquet(tmp_path / "ga4.parquet")
    ev = load_events(tmp_path / "ga4.parquet", mapping="ga4")
    assert ev["user_id"].tolist() == ["c9", "c9", "3.4"]
    # without a user_id column, the pseudo id is the user, as before
    frame.drop(columns="user_id").to_parquet(tmp_path / "plain.parquet")
    assert load_events(tmp_path / "plain.parquet", mapping="ga4")["user_id"].tolist() == ["1.2", "1.2", "3.4"]


def test_an_anonymous_id_column_stitches_without_a_preset_and_rows_without_any_id_are_counted():
    raw = pd.DataFrame({"user_id": [None, "u1", None, None], "anonymous_id": ["a", "a", "b", None],
                        "event": ["visit", "signup", "visit", "visit"],
                        "timestamp": ["2025-01-01", "2025-01-02", "2025-01-03", "2025-01-04"]})
    ev = load_events(raw)
    assert ev["user_id"].tolist() == ["u1", "u1", "b"]
    assert ev.attrs["helpers.load"]["dropped"] == {"no id (user_id, anonymous_id)": 1}
    q = data_quality(ev)
    assert "3 anonymous, device and user ids were stitched into 2 persons" in q.headline()
    assert "2 persons" in q.identity_note() and "identity stitching" in set(q.summary["check"])
    with pytest.raises(Exception, match="null in all"):
        load_events(raw.assign(user_id=None), stitch=False)


def test_a_refused_merge_is_reported_by_data_quality():
    raw = pd.DataFrame({"user_id": ["bob", "alice"], "anonymous_id": ["laptop", "laptop"], "event": ["login"] * 2,
                        "timestamp": ["2025-01-01", "2025-01-02"]})
    q = data_quality(load_events(raw))
    assert q.identity["merges refused"] == 1 and "1 merges were refused" in q.identity_note()
