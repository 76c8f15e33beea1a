"""Lifecycle and stickiness on hand-made logs."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.engagement import lifecycle, stickiness
from event_logs import log, ts



# ----------------------------------------------------------------------------- lifecycle


def test_each_lifecycle_category_on_a_hand_made_log():
    ev = log(("a", "x", "2025-01-06"), ("a", "x", "2025-01-14"),  # new in week 1, retained in week 2
             ("a", "x", "2025-01-28"),  # gone in week 3 (dormant), back in week 4 (resurrected)
             ("b", "x", "2025-01-15"), ("b", "x", "2025-01-16"),  # new in week 2 (twice in a week: once)
             ("c", "x", "2025-01-27 23:59"))  # new in week 4
    lc = lifecycle(ev, period="W", observed_until="2025-02-02 23:59:59").set_index("period")
    assert lc.loc[ts("2025-01-06"), ["new", "retained", "resurrected", "dormant"]].tolist() == [1, 0, 0, 0]
    assert lc.loc[ts("2025-01-13"), ["new", "retained", "resurrected", "dormant"]].tolist() == [1, 1, 0, 0]
    assert lc.loc[ts("2025-01-20"), ["new", "retained", "resurrected", "dormant"]].tolist() == [0, 0, 0, 2]
    assert lc.loc[ts("2025-01-27"), ["new", "retained", "resurrected", "dormant", "active"]].tolist() == [1, 0, 1, 0, 2]
    assert np.isnan(lc.loc[ts("2025-01-06"), "quick_ratio"]) and lc.loc[ts("2025-01-20"), "quick_ratio"] == 0.0
    assert not lc.loc[ts("2025-01-27"), "complete"] and lc.loc[ts("2025-01-20"), "complete"]


def test_lifecycle_months_and_the_quick_ratio():
    ev = log(("a", "x", "2025-01-10"), ("b", "x", "2025-01-11"), ("b", "x", "2025-02-11"), ("c", "x", "2025-02-12"),
             ("d", "x", "2025-02-13"))
    lc = lifecycle(ev, period="M", observed_until="2025-03-01").set_index("period")
    feb = lc.loc[ts("2025-02-01")]
    assert (feb["new"], feb["retained"], feb["dormant"], feb["quick_ratio"]) == (2, 1, 1, 2.0)
    assert lc.loc[ts("2025-02-01"), "complete"] and not lc.loc[ts("2025-03-01"), "complete"]


def test_stickiness_active_days_and_dau_mau():
    ev = log(*[("a", "x", f"2025-01-{d:02d}") for d in range(1, 11)], ("b", "x", "2025-01-05"), ("b", "x", "2025-01-05 18:00"))
    s = stickiness(ev, period="M", observed_until="2025-02-01").iloc[0]
    assert s["users"] == 2 and s["mean_dau"] == pytest.approx(11 / 31) and s["dau_mau"] == pytest.approx(11 / 31 / 2)
    assert (s["share_1_day"], s["share_8_plus_days"]) == (0.5, 0.5) and s["median_active_days"] == 5.5


# ----------------------------------------------------------------------------- churn risk and health
