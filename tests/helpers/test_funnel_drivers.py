"""Conversion drivers and early signals: known answers from hand-made logs, scipy cross-checks, planted drivers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from helpers.funnel import (
    compute_funnel,
    conversion_drivers,
    early_signals,
    holm_adjust,
    wilson_interval,
)
from helpers.io import EventDataError

T0 = pd.Timestamp("2025-01-01", tz="UTC")
H = pd.Timedelta(hours=1)


def frame(rows: list[tuple], **extra) -> pd.DataFrame:
    """rows: (user, event, hours after T0)."""
    out = pd.DataFrame({"user_id": [r[0] for r in rows], "event": [r[1] for r in rows],
                        "timestamp": [T0 + r[2] * H for r in rows]})
    for k, v in extra.items():
        out[k] = v
    return out


def ten_and_ten(seen_by_success: int, seen_by_failure: int, candidate: str = "tour") -> pd.DataFrame:
    """10 converters and 10 non-converters (visit -> buy); ``candidate`` done by the first few of each group, plus a
    late entrant still in their window at the end of the data."""
    rows = []
    for i in range(10):
        rows += [(f"s{i}", "visit", 0), (f"s{i}", "buy", 2)] + ([(f"s{i}", candidate, 1)] if i < seen_by_success else [])
        rows += [(f"f{i}", "visit", 0)] + ([(f"f{i}", candidate, 1)] if i < seen_by_failure else [])
    rows += [("late", "visit", 24 * 30), ("late", candidate, 24 * 30 + 1)]  # in progress: in neither group
    return frame(rows)


UNTIL = T0 + pd.Timedelta(days=30, hours=2)  # every hand-made window has closed by then, except the late entrant's


def drivers(ev, steps=("visit", "buy"), window="7D", until=UNTIL, **kw):
    kw.setdefault("min_users", 1)
    return conversion_drivers(ev, compute_funnel(ev, list(steps), conversion_window=window, observed_until=until), **kw)


def test_odds_ratio_is_posthogs_rule_with_a_prior_of_one():
    d = drivers(ten_and_ten(5, 0))
    row = d.set_index("candidate").loc["tour"]
    assert (row["successes_seen"], row["failures_seen"], row["successes"], row["failures"]) == (5, 0, 10, 10)
    assert row["odds_ratio"] == pytest.approx(11.0)  # (5+1)(10-0+1) / ((10-5+1)(0+1))
    d = drivers(ten_and_ten(0, 5))
    assert d.set_index("candidate").loc["tour", "odds_ratio"] == pytest.approx(1 / 11)
    d = drivers(ten_and_ten(5, 0), prior=0.5)
    assert d.set_index("candidate").loc["tour", "odds_ratio"] == pytest.approx(5.5 * 10.5 / (5.5 * 0.5))


def test_in_progress_people_never_enter_either_group():
    d = drivers(ten_and_ten(5, 0))
    assert d.attrs["in_progress"] == 1 and d.attrs["successes"] == 10 and d.attrs["failures"] == 10
    # the late entrant did the candidate, yet it is still seen by 5 + 0 people
    assert int(d.set_index("candidate").loc["tour", ["successes_seen", "failures_seen"]].sum()) == 5


@pytest.mark.parametrize("a, b, S, F", [(5, 0, 10, 10), (3, 7, 10, 12), (40, 12, 60, 140), (0, 9, 15, 9),
                                        (7, 7, 7, 30)])
def test_phi_is_the_correlation_of_the_two_indicators_and_fisher_p_is_scipys(a, b, S, F):
    rows = []
    for i in range(S):
        rows += [(f"s{i}", "visit", 0), (f"s{i}", "buy", 2)] + ([(f"s{i}", "x", 1)] if i < a else [])
    for i in range(F):
        rows += [(f"f{i}", "visit", 0)] + ([(f"f{i}", "x", 1)] if i < b else [])
    row = drivers(frame(rows)).set_index("candidate").loc["x"]
    converted = np.r_[np.ones(S), np.zeros(F)]
    saw = np.r_[np.arange(S) < a, np.arange(F) < b].astype(float)
    table = [[a, S - a], [b, F - b]]
    assert row["phi"] == pytest.approx(stats.pearsonr(saw, converted)[0])
    # |phi| is Cramer's V on a 2x2 table; scipy's "pearson" method is the contingency coefficient sqrt(phi²/(1+phi²))
    assert abs(row["phi"]) == pytest.approx(stats.contingency.association(table, method="cramer"))
    assert stats.contingency.association(table, method="pearson") == pytest.approx(
        np.sqrt(row["phi"] ** 2 / (1 + row["phi"] ** 2)))
    assert row["p_value"] == pytest.approx(stats.fisher_exact(table)[1])
    lo, hi = wilson_interval(np.array([a]), np.array([a + b]))
    assert (row["conversion_seen"], row["conversion_seen_low"], row["conversion_seen_high"]) == pytest.approx(
        (a / (a + b), lo[0], hi[0]))
    assert row["conversion_not_seen"] == pytest.approx((S - a) / (S - a + F - b))


def test_a_candidate_counts_between_the_start_and_the_conversion_or_the_end_of_the_window():
    rows = [("s", "visit", 0), ("s", "before", -1), ("s", "inside", 1), ("s", "buy", 2), ("s", "after", 3),
            ("s", "at_buy", 2),
            ("f", "visit", 0), ("f", "inside", 5), ("f", "at_end", 24), ("f", "after", 25)]
    d = drivers(frame(rows), window="1D")
    seen = {r.candidate: (r.successes_seen, r.failures_seen) for r in d.itertuples()}
    assert seen == {"inside": (1, 1), "at_buy": (1, 0), "at_end": (0, 1)}  # both ends inclusive; nothing outside


def test_funnel_steps_are_not_candidates_and_neither_are_their_events_properties():
    rows = [("s", "visit", 0), ("s", "view", 1), ("s", "buy", 2), ("s", "browse", 1), ("f", "visit", 0),
            ("f", "view", 1), ("f", "browse", 1)]
    ev = frame(rows, page=["home", "pricing", "checkout", "docs", "home", "blog", "faq"])
    d = drivers(ev, steps=("visit", "view", "buy"))
    # only the non-step event and its property values: no "page = checkout" (buy's) or "page = pricing" (view's)
    assert set(d["candidate"]) == {"browse", "page = docs", "page = faq"}
    assert d.set_index("candidate").loc["page = docs", ["successes_seen", "failures_seen"]].tolist() == [1, 0]


def test_user_properties_count_and_ids_or_emails_are_never_candidates():
    ev = ten_and_ten(5, 0)
    users = pd.DataFrame({"user_id": [f"s{i}" for i in range(10)] + [f"f{i}" for i in range(10)],
                          "plan": ["pro"] * 8 + ["basic"] * 2 + ["pro"] * 2 + ["basic"] * 8,
                          "email": [f"x{i}@example.com" for i in range(20)]})
    d = drivers(ev, user_table=users)
    row = d.set_index("candidate").loc["plan = pro"]
    assert (row["successes_seen"], row["failures_seen"], row["candidate_type"]) == (8, 2, "user_property")
    assert d.set_index("candidate").loc["plan = basic", ["successes_seen", "failures_seen"]].tolist() == [2, 8]
    assert d.attrs["skipped_user_properties"] == ["email"] and not d["candidate"].str.contains("@").any()
    d = drivers(ev, user_table=users, ignore=["plan"])
    assert not d["candidate"].str.startswith("plan").any()


def test_ignored_event_properties_are_left_out():
    rows = [("s", "visit", 0), ("s", "browse", 1), ("s", "buy", 2), ("f", "visit", 0), ("f", "browse", 1)]
    ev = frame(rows, page=["home", "docs", "checkout", "home", "faq"], channel=["ads"] * 5)
    assert {"page = docs", "channel = ads"} <= set(drivers(ev)["candidate"])
    assert not drivers(ev, ignore=["page"])["candidate"].str.startswith("page").any()


def test_rare_candidates_are_dropped_and_counted_and_holm_runs_over_those_kept():
    rows = []
    for i in range(50):
        rows += [(f"s{i}", "visit", 0), (f"s{i}", "buy", 3)] + ([(f"s{i}", "common", 1)] if i < 30 else []) + (
            [(f"s{i}", "rare", 1)] if i < 2 else [])
        rows += [(f"f{i}", "visit", 0)] + ([(f"f{i}", "common", 1)] if i < 10 else []) + (
            [(f"f{i}", "mid", 1)] if i < 12 else [])
    ev = frame(rows)
    d = drivers(ev, min_users=25, min_share=0.05)  # threshold min(25, 0.05 * 100) = 5
    assert set(d["candidate"]) == {"common", "mid"} and d.attrs["dropped"] == 1
    assert d["p_adjusted"].tolist() == pytest.approx(holm_adjust(d["p_value"].to_numpy()).tolist())
    assert d["candidate"].tolist() == ["common", "mid"]  # sorted by odds ratio, strongest positive first


def test_an_intermediate_target_step_counts_success_at_that_step():
    rows = [("a", "visit", 0), ("a", "tour", 1), ("a", "signup", 2),
            ("b", "visit", 0), ("b", "signup", 2), ("b", "buy", 3),
            ("c", "visit", 0), ("c", "tour", 1)]
    d = drivers(frame(rows), steps=("visit", "signup", "buy"), target_step=2)
    assert d.attrs["successes"] == 2 and d.attrs["failures"] == 1 and d.attrs["target"] == "signup"
    assert d.set_index("candidate").loc["tour", ["successes_seen", "failures_seen"]].tolist() == [1, 1]
    with pytest.raises(EventDataError, match="target_step"):
        drivers(frame(rows), steps=("visit", "signup", "buy"), target_step=1)


def planted(seed: int, n: int = 4000) -> pd.DataFrame:
    """A generator unlike the sample: a trial product where ``invite_sent`` doubles the odds of upgrading, a
    ``help_opened`` event that goes with failing, and noise events that do nothing; a week of entrants every day."""
    rng = np.random.default_rng(seed)
    start = rng.uniform(0, 24 * 60, n)  # hours: entry over 60 days
    invite = rng.random(n) < 0.3
    trouble = rng.random(n) < 0.2
    logit = -1.0 + np.log(2.5) * invite - np.log(2.0) * trouble
    upgrades = rng.random(n) < 1 / (1 + np.exp(-logit))
    rows = []
    users = np.array([f"t{i:05d}" for i in range(n)])
    rows.append(pd.DataFrame({"user_id": users, "event": "trial_started", "h": start}))
    up_at = start + rng.uniform(2, 24 * 6, n)
    rows.append(pd.DataFrame({"user_id": users[upgrades], "event": "upgraded", "h": up_at[upgrades]}))
    rows.append(pd.DataFrame({"user_id": users[invite], "event": "invite_sent",
                              "h": start[invite] + (up_at[invite] - start[invite]) * rng.random(invite.sum())}))
    rows.append(pd.DataFrame({"user_id": users[trouble], "event": "help_opened",
                              "h": start[trouble] + (up_at[trouble] - start[trouble]) * rng.random(trouble.sum())}))
    for name in ("theme_changed", "export_csv", "avatar_set"):
        did = rng.random(n) < 0.25
        rows.append(pd.DataFrame({"user_id": users[did], "event": name, "h": start[did] + 1}))
    ev = pd.concat(rows, ignore_index=True)
    ev["timestamp"] = T0 + pd.to_timedelta(ev.pop("h"), unit="h")
    return ev


@pytest.mark.parametrize("seed", [1, 2])
def test_a_planted_driver_comes_out_on_top_and_noise_does_not(seed):
    ev = planted(seed)
    d = drivers(ev, steps=("trial_started", "upgraded"), min_users=25, until=None)
    top = d.iloc[0]
    assert top["candidate"] == "invite_sent" and top["p_adjusted"] < 1e-6
    assert 1.8 < top["odds_ratio"] < 3.5  # planted 2.5 (the odds ratio of seeing it, not of doing it)
    assert d.iloc[-1]["candidate"] == "help_opened" and d.iloc[-1]["p_adjusted"] < 1e-3
    noise = d[d["candidate"].isin(["theme_changed", "export_csv", "avatar_set"])]
    assert len(noise) == 3 and (noise["p_adjusted"] > 0.05).all()
    assert d.attrs["in_progress"] > 0  # entrants of the last week are left out, not counted as failures


def test_early_signals_find_the_threshold_that_separates_the_outcome():
    # converters open the app 3+ times in their first 2 days; others at most twice, or later
    rows = []
    for i in range(30):
        rows += [(f"s{i}", "trial_started", 0), (f"s{i}", "upgraded", 24 * 5)]
        rows += [(f"s{i}", "app_open", 2 + j) for j in range(3)]
    for i in range(30):
        rows += [(f"f{i}", "trial_started", 0)] + [(f"f{i}", "app_open", 2 + j) for j in range(2)]
        rows += [(f"f{i}", "app_open", 24 * 3 + j) for j in range(3)]
    ev = frame(rows)
    r = compute_funnel(ev, ["trial_started", "upgraded"], conversion_window="7D", observed_until=UNTIL)
    g = early_signals(ev, r, max_times=5, max_days=7)
    assert "upgraded" not in set(g["event"])  # the outcome's own event is not a signal
    best = g[g["best"] & (g["event"] == "app_open")].iloc[0]
    assert (best["times"], best["days"], best["phi"]) == (3, 1, pytest.approx(1.0))
    assert (best["precision"], best["recall"], best["share_above"]) == pytest.approx((1.0, 1.0, 0.5))
    cell = g[(g["event"] == "app_open") & (g["times"] == 3) & (g["days"] == 4)].iloc[0]
    assert cell["above"] == 60 and cell["precision"] == pytest.approx(0.5) and cell["phi"] != cell["phi"]  # nan: all


def test_the_samples_planted_tutorial_comes_out_on_top():
    from helpers import io
    from helpers.sample import generate_journeys

    j = generate_journeys(6000, seed=3)
    ev = io.load_events(j.export())
    steps = ["signup", "first_value", "add_to_cart", "checkout_started", "purchase"]
    d = conversion_drivers(ev, compute_funnel(ev, steps, conversion_window="14D"), user_table=j.users, ignore=["plan"])
    top = d.iloc[0]
    assert top["candidate"] == "tutorial_completed" and top["p_adjusted"] < 1e-20 and top["odds_ratio"] > 3
    # the planted shares (55% of buyers, 12% of other signups) show through among closed windows
    assert 0.45 < top["successes_seen"] / d.attrs["successes"] < 0.65
    assert bool(j.truth["completed_tutorial"].any())


def test_signal_outcomes_from_a_funnel_step_and_from_lifetimes_leave_censored_people_out():
    from helpers.funnel import signal_outcome
    from helpers.retention import user_lifetimes

    rows = [("a", "visit", 0), ("a", "signup", 1), ("b", "visit", 0), ("c", "visit", 24 * 30)]
    r = compute_funnel(frame(rows), ["visit", "signup", "buy"], conversion_window="7D", observed_until=UNTIL)
    out = signal_outcome(r, step=2)
    assert dict(zip(out["user_id"], out["outcome"])) == {"a": True, "b": False}  # c still in its window
    ev = frame([("a", "visit", 0), ("a", "visit", 24 * 40), ("b", "visit", 0), ("c", "visit", 24 * 25)])
    life = user_lifetimes(ev, inactivity="30D", observed_until=T0 + pd.Timedelta(days=45))
    out = signal_outcome(life, retained_days=30)
    # a stays past day 30; b churned (inactive) before; c was seen for under 30 days and has not churned: left out
    assert dict(zip(out["user_id"], out["outcome"])) == {"a": True, "b": False}
    g = early_signals(ev, out, max_times=2, max_days=2)
    assert g.attrs["people"] == 2 and g.attrs["with_outcome"] == 1
