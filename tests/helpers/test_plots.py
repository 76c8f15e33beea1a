"""Charts stay small at scale: a report page carries bins and thinned curves, never one value per user."""

from __future__ import annotations

import numpy as np
import pandas as pd

from helpers import plots
from helpers.retention import survival_curves


def test_thinning_keeps_the_first_point_and_the_last_of_each_slice():
    curve = pd.DataFrame({"timeline": [0.0, 0.1, 0.2, 1.1, 1.5, 2.0], "survival": [1, 0.9, 0.8, 0.7, 0.6, 0.5]})
    thin = plots._thin_steps(curve, 1.0)
    assert thin["timeline"].tolist() == [0.0, 0.2, 1.5, 2.0]
    assert thin["survival"].tolist() == [1, 0.8, 0.6, 0.5]


def test_a_survival_chart_of_many_distinct_times_is_thinned_but_ends_where_the_curve_ends():
    rng = np.random.default_rng(0)
    n = 40_000
    lifetimes = pd.DataFrame({"duration_days": rng.exponential(60, n).clip(max=180), "churned": rng.random(n) < 0.7,
                              "group": rng.choice(["a", "b"], n)})
    result = survival_curves(lifetimes, by="group")
    fig = plots.survival_chart(result, max_points=500)
    curves = [tr for tr in fig.data if tr.name in ("a", "b")]
    assert len(curves) == 2
    for tr in curves:
        full = result.table[result.table["group"] == tr.name]
        assert len(full) > 10_000 and len(tr.x) <= 502
        assert tr.y[-1] == full["survival"].iloc[-1] and tr.x[-1] == full["timeline"].iloc[-1]
        # every drawn point is a point of the true curve (so a step moves by at most one slice)
        true_at = np.interp(np.asarray(tr.x), full["timeline"], full["survival"])
        assert np.allclose(true_at, tr.y)
    # at-risk numbers come from the full curve: at day 0 everyone in the group is at risk
    at_risk = [tr for tr in fig.data if tr.mode == "text"]
    assert sorted(int(t.text[0].replace(",", "")) for t in at_risk) == sorted(lifetimes["group"].value_counts())


def test_histograms_are_counted_in_python_not_embedded_per_user():
    values = pd.Series(np.random.default_rng(1).random(100_000))
    bar = plots._binned(values, 40, "#000000", "%{y}")
    assert len(bar.x) == 40 and int(np.sum(bar.y)) == 100_000
    assert np.allclose(np.asarray(bar.customdata)[:, 1] - np.asarray(bar.customdata)[:, 0], np.asarray(bar.width))
    empty = plots._binned(pd.Series([], dtype=float), 40, "#000000", "%{y}")
    assert len(empty.x) == 0
