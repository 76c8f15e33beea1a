"""helpers.paths on hand-made logs."""

from __future__ import annotations

import pandas as pd
import pytest

from helpers.funnel import compute_funnel
from helpers.io import EventDataError, as_ibis
from helpers.paths import paths_before_drop, sessionize, top_paths, transition_matrix

T0 = pd.Timestamp("2025-01-01", tz="UTC")


def log(rows):
    return pd.DataFrame({"user_id": [r[0] for r in rows], "event": [r[1] for r in rows],
                         "timestamp": [T0 + pd.Timedelta(minutes=r[2]) for r in rows]})


def test_sessionize_starts_a_session_after_a_gap_longer_than_the_limit():
    ev = log([("a", "x", 0), ("a", "y", 30), ("a", "z", 61), ("b", "x", 0), ("b", "x", 200)])
    out = sessionize(ev, gap="30min")
    assert out.set_index(["user_id", "event", "timestamp"])["session_id"].tolist() == ["a-s0", "a-s0", "a-s1", "b-s0", "b-s1"]
    assert "session_id" not in ev.columns  # input untouched
    kept = ev.assign(session_id="given")
    assert sessionize(kept)["session_id"].eq("given").all()
    assert sessionize(as_ibis(ev)).session_id.nunique().execute() == 4


def test_top_paths_from_a_start_event_collapse_repeats_and_goal_share():
    ev = log([("a", "ad", 0), ("a", "home", 1), ("a", "home", 2), ("a", "pricing", 3), ("a", "buy", 4),
              ("b", "home", 0), ("b", "pricing", 1), ("b", "leave", 2),
              ("c", "home", 0), ("c", "blog", 1)])
    out = top_paths(ev, start="home", max_steps=2, goal="buy")
    assert out[["path", "units", "users", "goal_share"]].values.tolist() == [
        ["home → pricing", 2, 2, 0.5], ["home → blog", 1, 1, 0.0]]
    raw = top_paths(ev, start="home", max_steps=2, collapse_repeats=False)
    assert "home → home" in raw["path"].tolist()


def test_top_paths_before_an_end_event_keep_the_last_steps_in_order():
    ev = log([("a", "x", 0), ("a", "y", 1), ("a", "z", 2), ("a", "buy", 3), ("a", "after", 4),
              ("b", "y", 0), ("b", "z", 1), ("b", "buy", 2)])
    out = top_paths(ev, end="buy", max_steps=3)
    assert out[["path", "users"]].values.tolist() == [["y → z → buy", 2]]


def test_top_paths_per_session():
    ev = log([("a", "x", 0), ("a", "y", 1), ("a", "x", 100), ("a", "z", 101)])
    out = top_paths(ev, per="session", max_steps=2)
    assert sorted(out["path"]) == ["x → y", "x → z"] and out["users"].tolist() == [1, 1]


def test_transition_matrix_rows_sum_to_one_and_match_a_pandas_count():
    ev = log([("a", "x", 0), ("a", "y", 1), ("a", "x", 2), ("a", "z", 3), ("b", "x", 0), ("b", "y", 1), ("b", "y", 2)])
    m = transition_matrix(ev)
    assert m.groupby("from")["probability"].sum().round(12).eq(1).all()
    s = ev.sort_values(["user_id", "timestamp"])
    expected = pd.Series(list(zip(s["event"], s.groupby("user_id")["event"].shift(-1).fillna("(end)")))).value_counts()
    assert dict(zip(zip(m["from"], m["to"]), m["count"])) == expected.to_dict()
    other = transition_matrix(ev, top_events=1)
    assert set(other["from"]) == {"x", "(other)"}


def test_paths_before_drop_shows_what_droppers_did_next():
    ev = log([("a", "visit", 0), ("a", "cart", 1), ("a", "faq", 2), ("a", "leave", 3),
              ("b", "visit", 0), ("b", "cart", 1), ("b", "faq", 5),
              ("c", "visit", 0), ("c", "cart", 1),
              ("d", "visit", 0), ("d", "cart", 1), ("d", "buy", 2), ("z", "x", 60 * 24 * 30)])
    r = compute_funnel(ev, ["visit", "cart", "buy"])
    out = paths_before_drop(r, "cart", ev, max_steps=2)
    assert out[["path", "users"]].values.tolist() == [["(nothing)", 1], ["faq", 1], ["faq → leave", 1]]
    assert (out["after_step"] == "cart").all()
    pd.testing.assert_frame_equal(paths_before_drop(r, "cart", max_steps=2), out)  # events default to the funnel's
    assert out["share"].sum() == pytest.approx(1.0)
    with pytest.raises(EventDataError, match="before the last"):
        paths_before_drop(r, 3, ev)


def test_a_path_to_the_goal_ends_at_the_goal_even_when_other_events_share_its_instant():
    """A case log writes several events at one instant (BPIC 2012: A_APPROVED with O_SENT, A_REGISTERED...)."""
    at = pd.Timestamp("2025-01-01 10:00", tz="UTC")
    ev = pd.DataFrame({"user_id": ["c1"] * 4 + ["c2"] * 2,
                       "event": ["A_SUBMITTED", "A_APPROVED", "O_SENT", "A_REGISTERED", "A_SUBMITTED", "A_APPROVED"],
                       "timestamp": [at, at + pd.Timedelta(hours=1), at + pd.Timedelta(hours=1), at + pd.Timedelta(hours=1),
                                     at, at + pd.Timedelta(days=1)]})
    paths = top_paths(ev, end="A_APPROVED", max_steps=4)
    assert all(p.endswith("A_APPROVED") for p in paths["path"])
    assert sorted(paths["path"]) == ["A_SUBMITTED → A_APPROVED", "A_SUBMITTED → A_REGISTERED → O_SENT → A_APPROVED"]
