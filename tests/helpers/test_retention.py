"""helpers.retention: each definition pinned on hand-made logs, Kaplan-Meier against a hand computation, recovery."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers.io import EventDataError
from helpers.retention import cohort_retention, hazard_ratios, retention_drivers, survival_curves, user_lifetimes

UTC = "UTC"


def log(*rows):
    """rows: (user, event, ISO time)."""
    return pd.DataFrame({"user_id": [r[0] for r in rows], "event": [r[1] for r in rows],
                         "timestamp": pd.to_datetime([r[2] for r in rows], utc=True, format="ISO8601")})


def ts(text):
    return pd.Timestamp(text, tz=UTC)


# ----------------------------------------------------------------------------- cohort tables


def test_weeks_start_on_monday_by_default_and_on_the_day_asked():
    ev = log(("a", "x", "2025-01-05 23:59"), ("a", "x", "2025-01-06 00:00"),  # Sunday, then Monday
             ("b", "x", "2025-01-06 10:00"))
    monday = cohort_retention(ev, period="W", observed_until="2025-02-01")
    assert monday.counts.index.tolist() == [ts("2024-12-30"), ts("2025-01-06")]
    assert monday.counts.loc[ts("2024-12-30"), 1] == 1  # a's Monday event is the next week
    sunday = cohort_retention(ev, period="W", week_start="sunday", observed_until="2025-02-01")
    assert sunday.counts.index.tolist() == [ts("2025-01-05")]  # Sunday starts the week: one cohort of 2
    assert sunday.counts.loc[ts("2025-01-05"), 0] == 2 and sunday.counts.loc[ts("2025-01-05"), 1] == 0


def test_days_and_months_are_calendar_periods():
    ev = log(("a", "x", "2025-01-31 23:00"), ("a", "x", "2025-02-01 01:00"), ("a", "x", "2025-03-15"))
    daily = cohort_retention(ev, period="D", observed_until="2025-03-20")
    assert daily.counts.loc[ts("2025-01-31"), 1] == 1 and daily.counts.loc[ts("2025-01-31"), 43] == 1
    monthly = cohort_retention(ev, period="M", observed_until="2025-04-01")
    assert monthly.counts.loc[ts("2025-01-01")].tolist() == [1, 1, 1, 0]  # two hours later is the next month


def test_months_cross_the_year_boundary():
    ev = log(("a", "x", "2024-12-20"), ("a", "x", "2025-01-03"), ("b", "x", "2025-01-10"))
    r = cohort_retention(ev, period="M", observed_until="2025-02-01")
    assert r.counts.loc[ts("2024-12-01")].tolist() == [1, 1, 0]


def test_on_versus_on_or_after():
    ev = log(("a", "x", "2025-01-06"), ("a", "x", "2025-01-20"),  # back in week 2 only
             ("b", "x", "2025-01-07"), ("b", "x", "2025-01-14"))  # back in week 1 only
    on = cohort_retention(ev, period="W", mode="on", observed_until="2025-02-10")
    after = cohort_retention(ev, period="W", mode="on_or_after", observed_until="2025-02-10")
    assert on.counts.iloc[0].tolist()[:4] == [2, 1, 1, 0]
    assert after.counts.iloc[0].tolist()[:4] == [2, 2, 1, 0]  # a counts in week 1: active in a later week


def test_first_time_versus_recurring_cohorts():
    ev = log(("a", "buy", "2025-01-06"), ("a", "buy", "2025-01-13"), ("a", "visit", "2025-01-21"))
    first = cohort_retention(ev, period="W", cohort_event="buy", observed_until="2025-02-10")
    assert first.counts.index.tolist() == [ts("2025-01-06")] and first.counts.iloc[0].tolist()[:3] == [1, 1, 1]
    recurring = cohort_retention(ev, period="W", cohort_event="buy", cohort_type="recurring", observed_until="2025-02-10")
    assert recurring.counts.index.tolist() == [ts("2025-01-06"), ts("2025-01-13")]
    assert recurring.counts.loc[ts("2025-01-13")].tolist()[:2] == [1, 1]  # a joins again, returns the next week


def test_return_event_counts_only_that_event_and_column_zero_is_the_cohort_size():
    ev = log(("a", "signup", "2025-01-06"), ("a", "visit", "2025-01-14"), ("b", "signup", "2025-01-07"),
             ("b", "buy", "2025-01-15"))
    r = cohort_retention(ev, period="W", cohort_event="signup", return_event="buy", observed_until="2025-02-10")
    assert r.counts.iloc[0].tolist()[:2] == [2, 1] and r.rates.iloc[0, 1] == 0.5


def test_incomplete_cells_are_nan_and_flagged_never_zero():
    ev = log(("a", "x", "2025-01-06"), ("b", "x", "2025-01-13"), ("c", "x", "2025-01-20 12:00"))
    r = cohort_retention(ev, period="W", observed_until="2025-01-20 12:00")  # inside the week of Jan 20
    assert r.incomplete.to_numpy().tolist() == [[False, False, True], [False, True, True], [True, True, True]]
    assert np.isnan(r.rates.iloc[0, 2]) and r.rates.iloc[0, 1] == 0.0  # a complete zero is a zero
    assert r.counts.iloc[2, 0] == 1  # the forming cohort's size is still shown
    # A week ends exactly at the next Monday 00:00: observed until then, it is complete.
    done = cohort_retention(ev, period="W", observed_until="2025-01-27 00:00")
    assert not done.incomplete.iloc[2, 0] and done.incomplete.iloc[2, 1]


def test_average_weights_by_cohort_size_over_complete_cohorts_only():
    ev = log(("a", "x", "2025-01-06"), ("a", "x", "2025-01-13"), ("b", "x", "2025-01-06"),
             ("c", "x", "2025-01-13"), ("d", "x", "2025-01-13"), ("e", "x", "2025-01-13"), ("c", "x", "2025-01-20"))
    r = cohort_retention(ev, period="W", observed_until="2025-01-27")
    # offset 1: cohort of Jan 6 1/2 and of Jan 13 1/3, both complete: (1 + 1) / (2 + 3), not the mean of rates
    assert r.average.loc["all", 1] == pytest.approx(2 / 5)
    assert r.average.loc["all", 2] == 0.0  # only the Jan 6 cohort can be seen at offset 2
    early = cohort_retention(ev, period="W", observed_until="2025-01-26 23:59")
    assert early.average.loc["all", 1] == 0.5  # the week of Jan 20 is not over: the Jan 13 cohort drops out


def test_breakdown_uses_the_value_at_the_first_event():
    ev = log(("a", "x", "2025-01-06"), ("a", "x", "2025-01-13"), ("b", "x", "2025-01-06"))
    ev["channel"] = ["ads", "email", None]
    r = cohort_retention(ev, period="W", by="channel", observed_until="2025-02-10")
    assert r.counts.index.names == ["channel", "cohort"]
    assert r.counts.loc[("ads", ts("2025-01-06")), 1] == 1 and r.counts.loc[("(none)", ts("2025-01-06")), 1] == 0
    user_level = cohort_retention(ev, period="W", by=pd.Series({"a": "pro", "b": "free"}, name="plan"),
                                  observed_until="2025-02-10")
    assert user_level.average.loc["pro", 1] == 1.0 and user_level.average.loc["free", 1] == 0.0


# ----------------------------------------------------------------------------- lifetimes


def test_lifetimes_churn_by_event_by_inactivity_and_censoring():
    ev = log(("a", "signup", "2025-01-01"), ("a", "visit", "2025-01-10"),  # quiet for 50 days: churned at last visit
             ("b", "signup", "2025-01-01"), ("b", "cancel", "2025-02-20"), ("b", "visit", "2025-02-25"),  # cancelled
             ("c", "signup", "2025-02-01"), ("c", "visit", "2025-02-28"),  # active: censored
             ("d", "signup", "2025-01-30"),  # a single event exactly 30 days before the end: not more than 30
             ("e", "visit", "2025-01-05"))  # never signed up
    life = user_lifetimes(ev, start_event="signup", churn_event="cancel", inactivity="30D",
                          observed_until="2025-03-01").set_index("user_id")
    assert life.index.tolist() == ["a", "b", "c", "d"] and life.attrs["users_without_start"] == 1
    assert (life.loc["a", "churned"], life.loc["a", "duration_days"], life.loc["a", "churn_reason"]) == (True, 9.0, "inactivity")
    assert (life.loc["b", "churned"], life.loc["b", "duration_days"], life.loc["b", "churn_reason"]) == (True, 50.0, "churn_event")
    assert (life.loc["c", "churned"], life.loc["c", "duration_days"]) == (False, 28.0)
    assert (life.loc["d", "churned"], life.loc["d", "duration_days"]) == (False, 30.0)
    one_second_more = user_lifetimes(ev, start_event="signup", observed_until="2025-03-01 00:00:01").set_index("user_id")
    assert one_second_more.loc["d", "churned"] and one_second_more.loc["d", "duration_days"] == 0.0


def test_a_churn_event_before_the_start_does_not_count():
    ev = log(("a", "cancel", "2025-01-01"), ("a", "signup", "2025-01-03"), ("a", "cancel", "2025-01-08"),
             ("b", "cancel", "2025-01-01"), ("b", "signup", "2025-01-03"), ("b", "visit", "2025-02-25"),
             ("c", "signup", "2025-01-02"), ("c", "cancel", "2025-01-04"), ("c", "cancel", "2025-01-09"))
    life = user_lifetimes(ev, start_event="signup", churn_event="cancel", inactivity=None,
                          observed_until="2025-03-01").set_index("user_id")
    assert (life.loc["a", "churned"], life.loc["a", "duration_days"]) == (True, 5.0)  # the cancel after signing up
    assert (life.loc["b", "churned"], life.loc["b", "duration_days"]) == (False, 57.0)  # cancelled only before
    assert (life.loc["c", "churned"], life.loc["c", "duration_days"]) == (True, 2.0)  # the first one after the start
    assert life.index.tolist() == ["a", "b", "c"]


def test_lifetimes_default_to_the_data_end_and_ignore_later_events():
    ev = log(("a", "visit", "2025-01-01"), ("a", "visit", "2025-03-01"), ("b", "visit", "2025-01-15"))
    life = user_lifetimes(ev).set_index("user_id")
    assert life.attrs["observed_until"] == ts("2025-03-01")
    assert life.loc["b", "churned"] and life.loc["b", "duration_days"] == 0.0
    early = user_lifetimes(ev, observed_until="2025-02-01").set_index("user_id")
    assert early.loc["a", "last_seen"] == ts("2025-01-01") and early.loc["a", "churned"]


def test_lifetimes_bad_input():
    ev = log(("a", "visit", "2025-01-01"))
    with pytest.raises(EventDataError, match="no user did the start event 'signup'"):
        user_lifetimes(ev, start_event="signup")
    with pytest.raises(EventDataError, match="no events"):
        user_lifetimes(ev, observed_until="2024-01-01")


# ----------------------------------------------------------------------------- Kaplan-Meier


def product_limit(durations, events):
    """Kaplan-Meier by hand: at each distinct churn time, S *= 1 - deaths / at risk (censored at t still at risk)."""
    d, e = np.asarray(durations, float), np.asarray(events, bool)
    s, out = 1.0, {}
    for t in np.unique(d[e]):
        at_risk = (d >= t).sum()
        deaths = ((d == t) & e).sum()
        s *= 1 - deaths / at_risk
        out[t] = s
    return out


def test_kaplan_meier_agrees_with_a_hand_computation_with_ties_and_censoring():
    d = [2, 3, 3, 3, 5, 5, 8, 8, 8, 12, 12, 15, 20, 20]
    e = [1, 1, 1, 0, 1, 0, 1, 1, 0, 0, 1, 0, 1, 0]
    r = survival_curves(pd.DataFrame({"duration_days": d, "churned": np.array(e, bool)}))
    table = r.table.set_index("timeline")
    for t, s in product_limit(d, e).items():
        assert table.loc[t, "survival"] == pytest.approx(s, abs=1e-12)
    assert table.loc[3, "at_risk"] == 13 and table.loc[3, "events"] == 2 and table.loc[3, "censored"] == 1
    hand = product_limit(d, e)
    median = min(t for t, s in hand.items() if s <= 0.5)
    assert r.medians.loc[0, "median_days"] == median
    assert r.medians.loc[0, "survival_7d"] == pytest.approx(hand[5])  # step function: last value at or before day 7
    assert (r.table["ci_low"] <= r.table["survival"]).all() and (r.table["survival"] <= r.table["ci_high"]).all()


def test_groups_and_the_logrank_test():
    rng = np.random.default_rng(0)
    n = 400
    life = pd.DataFrame({"plan": np.repeat(["pro", "free"], n),
                         "duration_days": np.r_[rng.exponential(60, n), rng.exponential(20, n)], "churned": True})
    r = survival_curves(life, by="plan")
    assert r.medians["group"].tolist() == ["free", "pro"] and r.logrank_p < 1e-6
    assert r.medians.set_index("group").loc["pro", "median_days"] > r.medians.set_index("group").loc["free", "median_days"]
    same = life.assign(plan=rng.permutation(np.repeat(["x", "y"], n)))
    assert survival_curves(same, by="plan").logrank_p > 0.001
    assert "significant" in r.headline()


def test_survival_bad_input():
    with pytest.raises(EventDataError, match="no churn is observed"):
        survival_curves(pd.DataFrame({"duration_days": [1.0, 2.0], "churned": [False, False]}))
    with pytest.raises(EventDataError, match="negative.*-1"):
        survival_curves(pd.DataFrame({"duration_days": [-1.0, 2.0], "churned": [True, False]}))
    with pytest.raises(EventDataError, match="no column 'tenure'"):
        survival_curves(pd.DataFrame({"duration_days": [1.0]}), duration_col="tenure")


def test_survival_works_on_a_crm_table_without_events():
    crm = pd.DataFrame({"tenure_months": [1, 4, 4, 9, 12, 12], "cancelled": [1, 1, 0, 1, 0, 0]})
    r = survival_curves(crm, duration_col="tenure_months", event_col="cancelled")
    assert r.table["survival"].iloc[-1] == pytest.approx(5 / 6 * 4 / 5 * 2 / 3)  # 6, then 5, then 3 at risk


# ----------------------------------------------------------------------------- Cox


def test_hazard_ratios_name_the_baseline_and_refuse_a_constant_covariate():
    rng = np.random.default_rng(1)
    life = pd.DataFrame({"plan": np.repeat(["free", "pro", "team"], 300), "country": "US",
                         "duration_days": rng.exponential(np.repeat([10.0, 20.0, 40.0], 300)), "churned": True})
    r = hazard_ratios(life, ["plan"], baselines={"plan": "free"})
    assert r.table[["level", "baseline"]].values.tolist() == [["pro", "free"], ["team", "free"]]
    hr = r.table.set_index("level")["hazard_ratio"]
    assert 0.4 < hr["pro"] < 0.62 and 0.19 < hr["team"] < 0.32  # planted 0.5 and 0.25
    assert 0.5 < r.concordance < 1 and "proportional-hazards" in r.ph_summary
    with pytest.raises(EventDataError, match="'country' has a single value"):
        hazard_ratios(life, ["plan", "country"])
    with pytest.raises(EventDataError, match="baseline 'gold'"):
        hazard_ratios(life, ["plan"], baselines={"plan": "gold"})
    sampled = hazard_ratios(life, ["plan"], max_rows=500)
    assert sampled.users == 500 and "random sample of 500 of 900" in sampled.note


def test_hazard_ratios_recover_every_planted_ratio_on_the_sample():
    """The quality bar of #6: Cox on the true persona labels, true lifetimes, puts each planted ratio in its 95% CI."""
    from helpers.sample import generate_journeys

    j = generate_journeys(20_000, seed=0)
    tr = j.truth[j.truth["signed_up_at"].notna()].copy()
    open_days = (j.observed_until - tr["signed_up_at"]).dt.total_seconds() / 86_400
    tr["duration_days"] = np.where(tr["churned"], tr["lifetime_days"], open_days)
    tr["persona"] = tr["persona"].astype(str)
    r = hazard_ratios(tr, ["persona", "activated"], baselines={"persona": "researcher", "activated": False})
    got = r.table.assign(key=lambda t: np.where(t["covariate"] == "persona", "persona[" + t["level"] + "]", t["covariate"]))
    got = got.set_index("key")
    for _, row in j.hazard_ratios.iterrows():
        est = got.loc[row["covariate"]]
        assert est["ci_low"] <= row["hazard_ratio"] <= est["ci_high"], (row["covariate"], est.to_dict())


# ----------------------------------------------------------------------------- drivers


def test_retention_drivers_find_a_planted_protective_behaviour():
    rng = np.random.default_rng(2)
    n = 1500
    users = [f"u{i}" for i in range(n)]
    start = ts("2025-01-01") + pd.to_timedelta(rng.uniform(0, 30, n), "D")
    habit = rng.random(n) < 0.4  # did "invite" in their first days: half the hazard
    life_days = 8 + rng.exponential(np.where(habit, 80.0, 40.0))
    rows = [(u, "start", s) for u, s in zip(users, start)]
    rows += [(u, "invite", s + pd.Timedelta(days=2)) for u, s, h in zip(users, start, habit) if h]
    rows += [(u, "noise", s + pd.Timedelta(days=3)) for u, s in zip(users, start) if rng.random() < 0.5]
    visits = np.ceil(life_days / 5).astype(int)  # a visit every 5 days while alive, the last at the end
    for u, s, d, k in zip(users, start, life_days, visits):
        rows += [(u, "visit", s + pd.Timedelta(days=float(min(5 * (i + 1), d)))) for i in range(k)]
    ev = pd.DataFrame(rows, columns=["user_id", "event", "timestamp"])
    until = ts("2025-04-15")
    ev = ev[ev["timestamp"] <= until]
    life = user_lifetimes(ev, inactivity="14D", observed_until=until)
    d = retention_drivers(ev, life, first_days=7, adjust_for=None).set_index("event")
    assert d.loc["invite", "share"] == pytest.approx(habit.mean(), abs=0.01)
    assert d.loc["invite", "ci_high"] < 0.8 and d.loc["invite", "phi"] > 0.1
    assert d.loc["noise", "ci_low"] < 1 < d.loc["noise", "ci_high"]
    assert d.attrs["landmark_days"] == 7


def test_the_proportional_hazards_check_runs_on_a_refitted_sample_above_ph_rows():
    rng = np.random.default_rng(4)
    life = pd.DataFrame({"plan": rng.choice(["free", "pro"], 3000), "duration_days": rng.exponential(20, 3000),
                         "churned": rng.random(3000) < 0.7})
    r = hazard_ratios(life, ["plan"], ph_rows=500)
    assert r.users == 3000 and len(r.ph_check) == 1 and 0 <= r.ph_check["p"].iloc[0] <= 1


def test_a_yes_no_churn_column_gets_a_clear_message_naming_the_conversion():
    life = pd.DataFrame({"duration_days": [1, 2, 3], "churned": ["Yes", "No", "Yes"]})
    with pytest.raises(EventDataError, match=r"'churned' must be True/False.*'Yes'.*eq\('Yes'\)"):
        survival_curves(life)


def test_survival_is_read_at_the_horizons_asked_for_in_the_durations_unit():
    months = pd.DataFrame({"duration_days": [3, 6, 12, 24, 30], "churned": [True, True, False, True, False]})
    r = survival_curves(months, at=(6, 12, 24))
    assert [c for c in r.medians.columns if c.startswith("survival_") and c.count("_") == 1] == [
        "survival_6d", "survival_12d", "survival_24d"]
    assert r.medians.loc[0, "survival_6d"] == pytest.approx(0.6)
    assert "after 12 days" in r.headline() and "after 24" in r.headline()
