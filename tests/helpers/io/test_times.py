"""helpers.io.times: Time helpers: calendar periods in UTC whatever the session's time zone."""

from __future__ import annotations

import ibis
import pandas as pd
import pytest

from helpers.io import (
    as_ibis,
    load_events,
    open_events,
    write_events,
)


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
