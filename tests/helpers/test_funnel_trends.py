"""Funnel trends by entry period and time to convert: each trend row is a funnel rerun, censoring is honoured."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers.funnel import compute_funnel, funnel_trend, time_to_convert, trend_headline
from helpers.io import EventDataError

T0 = pd.Timestamp("2025-01-06", tz="UTC")  # a Monday
H = pd.Timedelta(hours=1)


def frame(rows: list[tuple]) -> pd.DataFrame:
    """rows: (user, event, hours after T0[, channel])."""
    out = pd.DataFrame({"user_id": [r[0] for r in rows], "event": [r[1] for r in rows],
                        "timestamp": [T0 + r[2] * H for r in rows]})
    if rows and len(rows[0]) > 3:
        out["channel"] = [r[3] for r in rows]
    return out


def random_log(seed: int, n: int = 600) -> pd.DataFrame:
    """Entrants over ten weeks whose conversion improves week by week, with a 3-step funnel and noise events."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        start = rng.uniform(0, 24 * 70)
        p = 0.2 + 0.5 * start / (24 * 70)
        rows.append((f"u{i}", "visit", start, "ads" if i % 3 else "email"))
        t = start
        for step in ("signup", "buy"):
            if rng.random() > p + 0.2:
                break
            t += rng.exponential(30)
            rows.append((f"u{i}", step, t, "ads" if i % 3 else "email"))
        if rng.random() < 0.3:
            rows.append((f"u{i}", "visit", start + rng.uniform(1, 24 * 20), "ads"))  # a second attempt
    return frame(rows)


@pytest.mark.parametrize("seed, from_step, period", [(0, 1, "W"), (1, 2, "W"), (2, 1, "D"), (3, 1, "M")])
def test_every_row_equals_the_funnel_rerun_on_that_periods_entrants(seed, from_step, period):
    ev = random_log(seed)
    steps = ["visit", "signup", "buy"]
    trend = funnel_trend(ev, steps, period=period, from_step=from_step, conversion_window="5D")
    result = trend.attrs["funnel"]
    pu = result.per_user
    entered = pu[pu["furthest_step"] >= from_step]
    period_of = entered[f"step_{from_step}_at"].dt.tz_localize(None).dt.to_period(period).dt.start_time
    checked = 0
    for row in trend.itertuples():
        ids = entered.loc[(period_of == row.period_start.tz_localize(None)).to_numpy(), "user_id"]
        if not len(ids):
            assert row.entered == 0 and np.isnan(row.conversion)
            continue
        again = compute_funnel(ev[ev["user_id"].isin(ids)], steps, conversion_window="5D",
                               observed_until=result.observed_until)
        users = again.table["users"].tolist()
        waiting = again.per_user[(again.per_user["furthest_step"] >= from_step)]["in_progress"].sum()
        assert (row.entered, row.converted, row.in_progress) == (users[from_step - 1], users[-1], waiting)
        assert row.is_final == (row.in_progress == 0 and (again.per_user["attempt_start"] + pd.Timedelta("5D")
                                                           <= result.observed_until).all())
        checked += 1
    assert checked >= 3 and int(trend["entered"].sum()) == len(entered)


def test_empty_periods_are_zero_rows_and_open_periods_are_not_final():
    rows = [("a", "visit", 0), ("a", "buy", 5),          # week 1: converted
            ("b", "visit", 24 * 14),                      # week 3: dropped (window closed)
            ("c", "visit", 24 * 21 + 1), ("c", "buy", 24 * 21 + 2),
            ("d", "visit", 24 * 22)]                      # week 4: d still in progress at the end
    t = funnel_trend(frame(rows), ["visit", "buy"], conversion_window="3D", observed_until=T0 + 24 * 23 * H)
    assert t["period_start"].dt.strftime("%Y-%m-%d").tolist() == ["2025-01-06", "2025-01-13", "2025-01-20",
                                                                  "2025-01-27"]
    assert t["entered"].tolist() == [1, 0, 1, 2] and t["converted"].tolist() == [1, 0, 0, 1]
    assert t["in_progress"].tolist() == [0, 0, 0, 1] and t["is_final"].tolist() == [True, True, True, False]
    assert "not final yet" in trend_headline(t) and "not a drop" in trend_headline(t)


def test_segments_get_their_own_rows_and_wilson_intervals():
    ev = random_log(5)
    t = funnel_trend(ev, ["visit", "signup", "buy"], by="channel", conversion_window="5D")
    assert set(t["channel"]) == {"ads", "email"}
    assert t.groupby("channel")["period_start"].nunique().nunique() == 1  # the same periods for every segment
    ok = t["entered"] > 0
    assert ((t.loc[ok, "conversion_low"] <= t.loc[ok, "conversion"]) &
            (t.loc[ok, "conversion"] <= t.loc[ok, "conversion_high"])).all()


def test_a_planted_improvement_reads_as_up_once_periods_are_final():
    ev = random_log(7, n=3000)
    t = funnel_trend(ev, ["visit", "signup", "buy"], period="M", conversion_window="5D")
    final = t[t["is_final"] & (t["entered"] > 0)]
    assert final["conversion"].is_monotonic_increasing or final["conversion"].iloc[-1] > final["conversion"].iloc[0]


def test_bad_steps_and_periods_are_clear_errors():
    ev = random_log(0, n=50)
    with pytest.raises(EventDataError, match="to_step"):
        funnel_trend(ev, ["visit", "buy"], from_step=2, to_step=1)
    with pytest.raises(EventDataError, match="period"):
        funnel_trend(ev, ["visit", "buy"], period="fortnight")


def three_converters(extra: list[tuple] = ()) -> pd.DataFrame:
    rows = [("a", "visit", 0), ("a", "buy", 1), ("b", "visit", 0), ("b", "buy", 2), ("c", "visit", 0),
            ("c", "buy", 10), ("d", "visit", 0), *extra]
    return frame(rows)


def test_three_converters_at_1_2_and_10_hours_have_a_median_of_2_hours():
    r = time_to_convert(compute_funnel(three_converters(), ["visit", "buy"], conversion_window="1D"))
    s = r.summary.set_index("statistic")["value"]
    assert s["p50"] == pd.Timedelta(hours=2) and s["converters"] == 3
    assert s["mean"] == pd.Timedelta(hours=13) / 3
    assert s["p90"] == pd.Timedelta(hours=float(np.percentile([1, 2, 10], 90)))
    assert int(r.histogram["converters"].sum()) == 3 and r.entered == 4 and r.converters == 3
    assert "half of them within 2 h" in r.headline()


def test_fixed_bin_widths_do_not_move_when_data_arrives_and_auto_bins_are_capped():
    first = time_to_convert(compute_funnel(three_converters(), ["visit", "buy"], conversion_window="1D"),
                            bin_width="1h")
    later = time_to_convert(compute_funnel(three_converters([("e", "visit", 0), ("e", "buy", 13.5)]),
                                           ["visit", "buy"], conversion_window="1D"), bin_width="1h")
    assert first.histogram["bin_start"].tolist() == later.histogram["bin_start"].tolist()[:len(first.histogram)]
    assert (later.histogram["bin_end"] - later.histogram["bin_start"] == pd.Timedelta(hours=1)).all()
    assert later.histogram.set_index("bin_start").loc[pd.Timedelta(hours=13), "converters"] == 1
    rng = np.random.default_rng(0)
    rows = [r for i in range(3000) for r in [(f"u{i}", "visit", 0), (f"u{i}", "buy", float(rng.pareto(1.2)))]]
    many = time_to_convert(compute_funnel(frame(rows), ["visit", "buy"], conversion_window="400D"))
    assert len(many.histogram) <= 60 and int(many.histogram["converters"].sum()) == 3000
    assert len(time_to_convert(compute_funnel(three_converters(), ["visit", "buy"]), bins=4).histogram) == 4


def test_the_still_not_converted_curve_censors_people_still_in_their_window():
    from lifelines import KaplanMeierFitter

    # a, b convert at 1 h and 3 h; c's window closed without converting (censored at 24 h);
    # d entered 2 h before the end of the data (censored at 2 h, not a failure)
    rows = [("a", "visit", 0), ("a", "buy", 1), ("b", "visit", 0), ("b", "buy", 3), ("c", "visit", 0),
            ("d", "visit", 46)]
    r = time_to_convert(compute_funnel(frame(rows), ["visit", "buy"], conversion_window="1D",
                                       observed_until=T0 + 48 * H))
    kmf = KaplanMeierFitter().fit([1, 3, 24, 2], [True, True, False, False])
    expected = kmf.survival_function_.iloc[:, 0]
    got = r.curve.set_index("timeline")["still_not_converted"]
    assert got.to_dict() == pytest.approx(expected.to_dict())
    assert r.censored_in_progress == 1 and got.loc[3.0] == pytest.approx(0.75 * (1 - 1 / 2))
