"""helpers.journey: the stage map's parsing, progression, each KPI's definition, touchpoints, satisfaction, changes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers.funnel import compute_funnel
from helpers.io import EventDataError
from helpers.journey import (
    changes_headline,
    journey_changes,
    load_stage_map,
    satisfaction,
    stage_display,
    stage_kpis,
    stage_progression,
    touchpoint_matrix,
)

T0 = pd.Timestamp("2025-01-01", tz="UTC")


def log(*rows, columns=("user_id", "event", "hours")):
    df = pd.DataFrame(rows, columns=list(columns))
    df["timestamp"] = T0 + pd.to_timedelta(df.pop("hours"), "h")
    return df


MAP = {"stages": [{"name": "aware", "events": ["ad_click"], "kpis": ["reach", "click_through_rate"]},
                  {"name": "consider", "events": [{"event": "page_view", "where": {"page": ["pricing", "docs"]}}, "search"],
                   "kpis": ["pages_per_session", "bounce_rate", "time_on_site"]},
                  {"name": "buy", "events": ["purchase"], "kpis": ["checkout_completion", "repeat_purchase_rate"]},
                  {"name": "advocate", "events": ["referral_sent"], "kpis": ["nps", "referral_rate", "review_volume"]}]}


# ----------------------------------------------------------------------------- the map


def test_the_bundled_map_loads_and_fits_the_sample(tmp_path):
    m = load_stage_map("config/journey.yaml")
    assert m.names == ["awareness", "consideration", "signup", "activation", "purchase_intent", "purchase", "retention",
                       "advocacy"]
    assert m.stages[1].rules[0].where == {"page": ["pricing", "features", "docs", "blog", "deals", "reviews"]}
    assert m.stages[0].line == 10 and m.event("purchase") == "purchase"


@pytest.mark.parametrize("text, message", [
    ("stages:\n  - name: a\n    events: [x]\n  - name: a\n    events: [y]\n", r"line 4: stage 'a' is defined twice \(first at line 2\)"),
    ("stages:\n  - name: a\n    events: []\n", r"line 2: stage 'a' has no events"),
    ("stages:\n  - name: a\n    events: [x]\n    kpis: [vibes]\n", r"line 2: unknown KPI\(s\) \['vibes'\]"),
    ("stages:\n  - name: a\n    events:\n      - x\n      - {where: {page: a}}\n", r"line 5: an event is a name"),
    ("title: no stages\n", "needs a non-empty 'stages' list"),
    ("stages: [\n", "not valid YAML"),
])
def test_a_malformed_map_is_a_clear_error_naming_the_line(tmp_path, text, message):
    path = tmp_path / "journey.yaml"
    path.write_text(text)
    with pytest.raises(EventDataError, match=message):
        load_stage_map(path)


def test_an_unknown_event_names_the_line(tmp_path):
    path = tmp_path / "journey.yaml"
    path.write_text("stages:\n  - name: a\n    events:\n      - visit\n      - vist\n")
    with pytest.raises(EventDataError, match=r"line 5: stage 'a' lists event 'vist', which is not in the data"):
        stage_progression(log(("u", "visit", 0)), path)


# ----------------------------------------------------------------------------- progression


def test_progression_is_ordered_and_counts_time_current_stage_and_loops():
    ev = log(("a", "ad_click", 0), ("a", "search", 24), ("a", "purchase", 72), ("a", "search", 80),
             ("b", "search", 0), ("b", "ad_click", 5),  # considered before any ad: reaches consideration only after it
             ("c", "ad_click", 0), ("c", "purchase", 1),  # skips consideration: reaches aware only
             ("d", "ad_click", 0))
    ev.loc[len(ev)] = ["d", "visit", T0 + pd.Timedelta(days=60)]  # d is still around, in awareness
    p = stage_progression(ev, {"stages": [{"name": "aware", "events": ["ad_click"]}, {"name": "consider", "events": ["search"]},
                                          {"name": "buy", "events": ["purchase"]}]})
    s = p.stages.set_index("stage")
    assert s["users"].tolist() == [4, 1, 1]  # b's search came before the ad; c never considered
    assert s["entered"].tolist() == [4, 2, 2]  # in any order: b considered, c bought
    assert s.loc["consider", "share_of_previous"] == 0.25 and s.loc["buy", "median_days_from_previous"] == 2.0
    # Now (day 60): a is back in consideration but lapsed; d is active in awareness; c's latest is buy.
    assert s.loc["consider", "current_lapsed"] == 1 and s.loc["aware", "current_active"] == 1
    assert s.loc["buy", "current_lapsed"] == 1 and s["current_active"].sum() + s["current_lapsed"].sum() == 4
    flows = p.flows.set_index(["from_stage", "to_stage"])
    assert flows.loc[("buy", "consider"), "direction"] == "back" and flows.loc[("aware", "buy"), "direction"] == "skip"
    assert flows.loc[("aware", "buy"), "users"] == 1 and flows.loc[("consider", "aware"), "users"] == 1


def test_progression_agrees_with_an_unbounded_ordered_funnel():
    rng = np.random.default_rng(0)
    n = 3000
    ev = pd.DataFrame({"user_id": rng.integers(0, 300, n).astype(str),
                       "event": rng.choice(["ad_click", "search", "purchase", "referral_sent", "other"], n),
                       "timestamp": T0 + pd.to_timedelta(rng.integers(0, 60 * 24 * 30, n), "min")})
    ev.loc[:40, "timestamp"] = T0  # ties: equal timestamps count in stage order, as in the funnel
    simple = {"stages": [{"name": e, "events": [e]} for e in ["ad_click", "search", "purchase", "referral_sent"]]}
    p = stage_progression(ev, simple)
    f = compute_funnel(ev, ["ad_click", "search", "purchase", "referral_sent"], conversion_window="100000D")
    assert p.stages["users"].tolist() == f.table["users"].tolist()


def test_the_stage_table_shows_each_stages_events_and_entered_is_the_funnels_first_step(tmp_path):
    rng = np.random.default_rng(1)
    n = 4000
    ev = pd.DataFrame({"user_id": rng.integers(0, 400, n).astype(str),
                       "event": rng.choice(["page_view", "signup", "add_to_cart", "purchase"], n),
                       "page": rng.choice(["home", "pricing"], n),
                       "timestamp": T0 + pd.to_timedelta(rng.integers(0, 60 * 24 * 30, n), "min")})
    m = {"stages": [{"name": "awareness", "events": [{"event": "page_view", "where": {"page": "home"}}]},
                    {"name": "signup", "events": ["signup"]}, {"name": "intent", "events": ["add_to_cart", "purchase"]}]}
    p = stage_progression(ev, m)
    t = stage_display(p, m).set_index("stage")
    assert t.loc["awareness", "events"] == "page_view[page=home]" and t.loc["intent", "events"] == "add_to_cart, purchase"
    # "Signed up" on the journey page is the funnel page's first step: everyone with a signup, in any order.
    for stage, step in (("signup", "signup"), ("intent", ("add_to_cart", "purchase"))):
        first = compute_funnel(ev, [step, "page_view"]).table["users"].iloc[0]
        assert t.loc[stage, "entered"] == first == ev[ev["event"].isin([step] if isinstance(step, str) else step)].user_id.nunique()
    assert (t["users"] <= t["entered"]).all() and pd.isna(t["share_of_previous"].iloc[0])
    assert t.attrs["headers"]["entered"] == "Entered (any order)"


# ----------------------------------------------------------------------------- KPIs


def kpi_log():
    rows = [  # user, event, hours, session, channel, page, value
        ("a", "ad_impression", 0, "s1", "ads", None, None), ("a", "ad_click", 0.1, "s1", "ads", None, None),
        ("a", "page_view", 0.2, "s1", "web", "pricing", None), ("a", "page_view", 0.7, "s1", "web", "docs", None),
        ("a", "checkout_started", 30, "s2", "web", None, None), ("a", "purchase", 30.5, "s2", "web", None, 20.0),
        ("a", "repeat_purchase", 100, "s3", "app", None, 20.0), ("a", "nps_response", 101, "s4", "email", None, 10.0),
        ("b", "ad_impression", 0, "s5", "ads", None, None), ("b", "page_view", 1, "s5", "web", "home", None),
        ("b", "checkout_started", 2, "s6", "web", None, None), ("b", "nps_response", 3, "s7", "email", None, 3.0),
        ("b", "nps_response", 50, "s8", "email", None, 8.0),  # b's latest answer (8) counts: passive
        ("c", "ad_click", 0, "s9", "social", None, None), ("c", "referral_sent", 5, "s10", "app", None, None),
        ("c", "review", 6, "s10", "app", None, 4.0), ("c", "review", 7, "s11", "app", None, 5.0),
        ("e", "search", 1, "s12", "web", None, None),
    ]
    return log(*rows, columns=("user_id", "event", "hours", "session_id", "channel", "page", "value"))


def test_each_kpi_follows_its_definition():
    k = stage_kpis(kpi_log(), MAP).set_index("kpi")
    assert k.loc["reach", "value"] == 2  # a and c clicked an ad
    assert k.loc["click_through_rate", "value"] == 0.5  # of a and b who saw an impression, a clicked
    assert k.loc["pages_per_session", "value"] == pytest.approx(3 / 12)
    assert k.loc["bounce_rate", "value"] == pytest.approx(8 / 12)  # s1, s2, s5, s10 have more than one event
    assert k.loc["time_on_site", "value"] == pytest.approx(51.0)  # median of 42, 30, 60 and 60 minutes
    assert k.loc["checkout_completion", "value"] == 0.5 and k.loc["repeat_purchase_rate", "value"] == 1.0
    assert k.loc["nps", "value"] == 50.0  # a promoter (10), b passive (8): (1 - 0) / 2
    assert k.loc["referral_rate", "value"] == pytest.approx(1 / 4) and k.loc["review_volume", "value"] == 2
    lo, hi = k.loc["referral_rate", ["ci_low", "ci_high"]]
    assert lo < 1 / 4 < hi and k["definition"].str.len().min() > 10


def test_a_kpi_without_its_events_is_unavailable_not_zero():
    ev = kpi_log()
    k = stage_kpis(ev[ev["event"] != "ad_impression"], MAP).set_index("kpi")
    assert not k.loc["click_through_rate", "available"] and np.isnan(k.loc["click_through_rate", "value"])
    assert "no ad_impression events" in k.loc["click_through_rate", "definition"]
    assert k.loc["reach", "available"]


def test_funnel_and_retention_kpis_on_a_hand_log():
    ev = log(("a", "signup", 0), ("a", "first_value", 12), ("a", "purchase", 24), ("a", "subscription_renewed", 24 * 31),
             ("b", "signup", 0), ("b", "first_value", 36), ("b", "subscription_cancelled", 48),
             ("c", "signup", 0), ("d", "visit", 24 * 40))
    m = {"stages": [{"name": "signup", "events": ["signup"], "kpis": ["signup_rate"]},
                    {"name": "adopt", "events": ["first_value"], "kpis": ["activation_rate", "time_to_first_value"]},
                    {"name": "stay", "events": ["purchase"], "kpis": ["churn_rate", "renewal_rate", "add_to_cart_rate"]}]}
    k = stage_kpis(ev, m).set_index("kpi")
    assert k.loc["signup_rate", "value"] == 0.75 and k.loc["activation_rate", "value"] == pytest.approx(2 / 3)
    assert k.loc["time_to_first_value", "value"] == 1.0  # median of 0.5 and 1.5 days
    # b cancelled; c signed up and was silent for 40 days; a renewed on day 31 (9 days before the end): 2 of 3
    assert k.loc["churn_rate", "value"] == pytest.approx(2 / 3)
    assert k.loc["renewal_rate", "value"] == 1.0 and not k.loc["add_to_cart_rate", "available"]


# ----------------------------------------------------------------------------- touchpoints, satisfaction, changes


def test_touchpoint_matrix_counts_users_per_stage_and_channel_and_who_went_on():
    tp = touchpoint_matrix(kpi_log(), MAP).set_index(["stage", "channel"])
    assert tp.loc[("aware", "ads"), "users"] == 1 and tp.loc[("aware", "ads"), "conversion_to_next"] == 1.0
    assert tp.loc[("aware", "social"), "conversion_to_next"] == 0.0  # c never considered
    assert np.isnan(tp.loc[("advocate", "app"), "conversion_to_next"])  # the last stage has no next


def test_satisfaction_overall_by_stage_and_by_segment():
    ev = kpi_log()
    ev.loc[len(ev)] = ["c", "csat_response", "s13", "email", None, 4.0, T0 + pd.Timedelta(hours=8)]
    s = satisfaction(ev, stage_map=MAP, by=pd.Series({"a": "pro", "b": "free", "c": "pro"}, name="plan"))
    s = s.set_index(["metric", "breakdown", "group"])
    assert s.loc[("nps", "overall", "all"), "value"] == 50.0 and s.loc[("nps", "overall", "all"), "respondents"] == 2
    assert s.loc[("nps", "stage", "buy"), "value"] == 100.0  # a answered after buying
    assert s.loc[("nps", "stage", "(before any stage)"), "value"] == 0.0  # b never reached a stage
    assert s.loc[("nps", "plan", "free"), "value"] == 0.0 and s.loc[("csat", "plan", "pro"), "value"] == 1.0
    assert ("ces", "overall", "all") not in s.index  # no CES answers: no row


def test_journey_changes_compare_equal_windows_and_test_shares():
    rng = np.random.default_rng(3)
    n = 4000
    day = rng.integers(0, 60, n)
    signed = rng.random(n) < np.where(day >= 30, 0.6, 0.4)  # the change lifts signup from 40% to 60%
    ev = pd.concat([pd.DataFrame({"user_id": np.arange(n).astype(str), "event": "ad_click",
                                  "timestamp": T0 + pd.to_timedelta(day, "D")}),
                    pd.DataFrame({"user_id": np.arange(n)[signed].astype(str), "event": "signup",
                                  "timestamp": T0 + pd.to_timedelta(day[signed], "D") + pd.Timedelta(hours=1)})])
    m = {"stages": [{"name": "aware", "events": ["ad_click"]},
                    {"name": "signup", "events": ["signup"], "kpis": ["signup_rate"]}]}
    c = journey_changes(ev, m, split_at="2025-01-31").set_index("kpi")
    assert c.loc["signup_rate", "value_before"] == pytest.approx(0.4, abs=0.03)
    assert c.loc["signup_rate", "difference"] == pytest.approx(0.2, abs=0.04) and c.loc["signup_rate", "p"] < 1e-6
    with pytest.raises(EventDataError, match="must fall inside the data"):
        journey_changes(ev, m, split_at="2026-01-01")


def _arrivals(days, event="ad_click"):
    return pd.DataFrame({"user_id": [f"u{i}" for i in range(len(days))], "event": event,
                         "timestamp": [T0 + pd.Timedelta(days=d) for d in days]})


M2 = {"stages": [{"name": "aware", "events": ["ad_click"], "kpis": ["reach"]},
                 {"name": "signup", "events": ["signup"], "kpis": ["signup_rate"]}]}


def test_journey_changes_windows_are_as_long_as_the_shorter_side_allows():
    ev = pd.concat([_arrivals(range(0, 100)), _arrivals([50.5], "signup").assign(user_id="u50")])
    c = journey_changes(ev, M2, split_at=T0 + pd.Timedelta(days=80))
    (b0, b1), (a0, a1) = c.attrs["before"], c.attrs["after"]
    assert b1 - b0 == a1 - a0 == pd.Timedelta(days=19)  # 19 days after the split: 19 days before it, not 80


def test_journey_changes_refuse_a_window_that_does_not_fit_and_sides_without_new_users():
    ev = pd.concat([_arrivals(range(0, 40)), _arrivals([1.5], "signup").assign(user_id="u1"),
                    _arrivals([60]).assign(user_id="u0")])  # after day 39 only an old user comes back
    fit = journey_changes(ev, M2, split_at=T0 + pd.Timedelta(days=30), window="60D")
    assert fit.empty and "does not fit" in fit.attrs["refused"] and "No before/after comparison" in changes_headline(fit)
    none_new = journey_changes(ev, M2, split_at=T0 + pd.Timedelta(days=45))
    assert none_new.empty and "no new users arrived after" in none_new.attrs["refused"]


def test_journey_changes_accept_an_event_seen_on_one_side_only():
    ev = pd.concat([_arrivals(range(0, 60)), _arrivals([40.5, 41.5], "signup").assign(user_id=["u40", "u41"])])
    c = journey_changes(ev, M2, split_at=T0 + pd.Timedelta(days=30)).set_index("kpi")
    assert c.loc["signup_rate", "value_before"] == 0 and c.loc["signup_rate", "value_after"] == pytest.approx(2 / 30)
