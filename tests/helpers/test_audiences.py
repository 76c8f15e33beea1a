"""Audience builders and exports."""

from __future__ import annotations

import pandas as pd
import pytest

from helpers.audiences import (
    at_risk,
    audience_summary,
    dropped_at_step,
    export_audience,
    promoters_without_referral,
    stalled_new_users,
)
from helpers.funnel import compute_funnel
from event_logs import log



def test_export_writes_unique_ids_with_reason_and_date(tmp_path):
    info = export_audience(pd.Series(["b", "a", "b", None]), "win-back", reason="quiet for 20 days",
                           as_of="2025-06-30", directory=tmp_path)
    csv = pd.read_csv(tmp_path / "win-back.csv")
    assert csv["user_id"].tolist() == ["a", "b"] and set(csv["reason"]) == {"quiet for 20 days"}
    assert set(csv["as_of"]) == {"2025-06-30T00:00:00+00:00"} and set(csv["audience"]) == {"win-back"}
    assert pd.read_parquet(tmp_path / "win-back.parquet").equals(csv)
    summary = audience_summary([info])
    assert summary.columns.tolist() == ["audience", "users", "definition", "as of"] and summary["users"].iloc[0] == 2
    with pytest.raises(ValueError, match="file name"):
        export_audience(["a"], "../etc", reason="x", as_of="2025-01-01", directory=tmp_path)
    with pytest.raises(ValueError, match="reason"):
        export_audience(["a"], "ok", reason=" ", as_of="2025-01-01", directory=tmp_path)


def test_audience_builders_on_a_hand_made_log():
    ev = log(("a", "nps_response", "2025-01-02", 10), ("a", "referral_sent", "2025-01-03"),
             ("b", "nps_response", "2025-01-02", 3), ("b", "nps_response", "2025-01-05", 9),  # latest answer counts
             ("c", "nps_response", "2025-01-02", 9), ("c", "nps_response", "2025-01-06", 5),
             ("d", "signup", "2025-01-20"), ("e", "signup", "2025-01-20"), ("e", "first_value", "2025-01-21"),
             ("f", "signup", "2025-01-28"), ("g", "signup", "2024-12-01"), ("z", "x", "2025-01-31"))
    ids, reason = promoters_without_referral(ev)
    assert ids.tolist() == ["b"] and "9-10" in reason
    stalled, why = stalled_new_users(ev, after_days=7)
    assert stalled.tolist() == ["d"] and "first_value" in why  # f is too recent, g too old, e reached value
    funnel_ev = log(("a", "visit", "2025-01-01"), ("a", "cart", "2025-01-02"), ("b", "visit", "2025-01-20"),
                    ("c", "visit", "2025-01-30"), ("z", "x", "2025-01-31"))
    dropped, text = dropped_at_step(compute_funnel(funnel_ev, ["visit", "cart"], conversion_window="7D"), "visit")
    assert dropped.tolist() == ["b"] and "not cart" in text  # c is still in progress


def test_at_risk_takes_users_above_the_threshold(sample_risk):
    r = sample_risk
    ids, reason = at_risk(r, 0.5)
    assert len(ids) == (r.scores["calibrated_probability"] >= 0.5).sum() and "concordance" in reason
    assert "calibrated" in reason
    with pytest.raises(ValueError):
        at_risk(r, 50)


def test_audience_csv_quotes_every_field_and_disarms_formulas_and_parquet_keeps_ids_exact(tmp_path):
    import csv

    hostile = ["=HYPERLINK(\"http://x\",\"y\")", "+1", "-2", "@SUM(A1)", "\tTAB", "cr\rinside", "comma,id",
               'quote"id', "line\nfeed", "plain"]
    export_audience(hostile, "hostile", reason="test", as_of="2025-01-01", directory=tmp_path)
    raw = (tmp_path / "hostile.csv").read_bytes()
    with open(tmp_path / "hostile.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["user_id", "audience", "reason", "as_of"] and len(rows) == 1 + len(hostile)
    written = [r[0] for r in rows[1:]]
    expected = sorted(hostile)
    assert written == ["'" + i if i.startswith(("=", "+", "-", "@", "\t", "\r")) else i for i in expected]
    assert all(line.startswith(b'"') for line in raw.split(b"\r\n") if line and not line.startswith((b"inside", b"feed")))
    assert sorted(pd.read_parquet(tmp_path / "hostile.parquet")["user_id"]) == expected  # exact in Parquet
