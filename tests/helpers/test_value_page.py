"""The customer value page and its integrations: event-level simulation recovered through the whole pipeline,
the page's tables (they add up), the win-back audience, P(alive) in the health score, value per persona."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers import audiences, risk
from helpers.io import EventDataError
from helpers.personas import persona_kpis
from helpers.value import (
    analyse_value,
    fit_bgnbd,
    fit_bgnbd_penalized_if_needed,
    fit_gamma_gamma,
    likely_lapsed_high_value,
    p_alive_grid,
    purchase_summary,
    simulate_bgnbd_purchases,
    takeaways,
    value_by_segment,
    value_deciles,
    value_inputs,
    value_page,
)

TRUTH = {"r": 0.6, "alpha": 30.0, "a": 0.7, "b": 3.0}
SPEND = (6.0, 4.0, 150.0)


@pytest.fixture(scope="module")
def simulated():
    return simulate_bgnbd_purchases(20_000, **TRUTH, days=365.0, spend=SPEND, seed=3)


@pytest.fixture(scope="module")
def page(simulated):
    events, _ = simulated
    return analyse_value(events, "purchase", value="value", holdout="90D", observed_until="2024-12-31")


def test_event_level_simulation_is_recovered_through_the_summary(simulated):
    """Events -> daily summary -> fits: each parameter within 4 standard errors of the truth (daily periods
    round the continuous process, so the tolerance is wider than on simulated summaries)."""
    events, _ = simulated
    s = purchase_summary(events, observed_until="2024-12-31")
    bg = fit_bgnbd(s).summary.set_index("parameter")
    for name, true in TRUTH.items():
        assert abs(bg.loc[name, "estimate"] - true) < 4 * bg.loc[name, "se"], (name, bg.loc[name].to_dict())
    gg = fit_gamma_gamma(s).summary.set_index("parameter")
    for name, true in zip(("p", "q", "gamma"), SPEND):
        assert abs(gg.loc[name, "estimate"] - true) < 4 * gg.loc[name, "se"], (name, gg.loc[name].to_dict())


def test_p_alive_separates_the_simulated_alive_from_the_dropped(simulated, page):
    _, truth = simulated
    v = page.values.merge(truth, on="user_id")
    repeat = v[v["frequency"] > 0]
    alive, gone = repeat.loc[repeat["alive"], "p_alive"], repeat.loc[~repeat["alive"], "p_alive"]
    assert alive.mean() > gone.mean() + 0.3
    # calibrated: the mean P(alive) matches the share actually alive within 3 points
    assert repeat["p_alive"].mean() == pytest.approx(repeat["alive"].mean(), abs=0.03)


def test_the_page_checks_on_a_holdout_and_values_every_customer(page):
    assert page.check is not None and page.check.unit == "days" and page.check.duration == 90
    assert page.check.total_predicted == pytest.approx(page.check.total_actual, rel=0.1)
    assert len(page.values) == len(page.summary) == page.bgnbd.n_customers
    assert page.has_value and (page.values["customer_value"] >= 0).all()
    assert page.values["customer_value"].is_monotonic_decreasing


def test_deciles_and_segments_add_up(page):
    d = value_deciles(page)
    assert d["customers"].sum() == len(page.values) and d["share"].sum() == pytest.approx(1.0)
    assert d["total"].is_monotonic_decreasing and d["cumulative_share"].iloc[-1] == pytest.approx(1.0)
    assert d["total"].sum() == pytest.approx(page.values["customer_value"].sum())
    ids = page.values["user_id"]
    segments = pd.DataFrame({"user_id": ids.iloc[:15_000], "plan": np.where(np.arange(15_000) % 3, "basic", "pro")})
    t = value_by_segment(page, segments, by=["persona", "plan"])
    assert list(t.columns[:1]) == ["plan"] and set(t["plan"]) == {"basic", "pro", "(none)"}
    assert t["customers"].sum() == len(page.values) and t["share"].sum() == pytest.approx(1.0)
    none = t.set_index("plan").loc["(none)"]
    assert none["customers"] == len(page.values) - 15_000
    assert value_by_segment(page, None).empty and value_by_segment(page, segments, by="persona").empty


def test_the_p_alive_grid_counts_every_customer_and_nobody_without_repeats_has_left(page):
    g = p_alive_grid(page)
    assert g["customers"].sum() == len(page.values)
    assert (g.loc[g["repeat_purchases"] == "0", "p_alive"] == 1.0).all()
    # among one-repeat customers P(alive) falls with time since the last purchase
    ones = g[g["repeat_purchases"] == "1"]
    assert ones["p_alive"].is_monotonic_decreasing


def test_the_win_back_audience_is_top_spenders_more_likely_gone(page):
    ids, reason = likely_lapsed_high_value(page, top_share=0.2)
    v = page.values.set_index("user_id")
    chosen = v.loc[ids]
    assert len(ids) > 0 and (chosen["p_alive"] < 0.5).all()
    assert chosen["value_total"].min() >= v["value_total"].quantile(0.8) - 1e-9
    assert "top 20%" in reason and "< 50%" in reason
    # every top spender below the threshold is in it
    top = v["value_total"].rank(ascending=False, method="first") <= np.ceil(0.2 * len(v))
    assert len(ids) == int((top & (v["p_alive"] < 0.5)).sum())


def test_inputs_say_what_is_missing():
    ev = pd.DataFrame({"user_id": ["a"], "event": ["visit"], "timestamp": [pd.Timestamp("2024-01-01", tz="UTC")]})
    i = value_inputs(ev)
    assert i.cannot.startswith("There is no purchase or repeat_purchase event")
    assert value_page(ev, i) == (None, i.cannot)
    buy = ev.assign(event="buy")
    j = value_inputs(buy, ["buy"], value="price")
    assert j.purchase_events == ["buy"] and j.value is None and "no 'price' column" in j.notes[0]


def test_a_model_that_needs_a_penalty_gets_one_and_says_so():
    """Customers who never stop buying: without a penalty the dropout runs off to zero and the fit fails."""
    rng = np.random.default_rng(0)
    n = 300
    ev = pd.DataFrame({"user_id": [f"u{i}" for i in rng.integers(0, n, 3 * n)], "event": "purchase",
                       "timestamp": pd.Timestamp("2025-01-01", tz="UTC") + pd.to_timedelta(rng.uniform(0, 90, 3 * n), unit="D")})
    s = purchase_summary(ev, value=None)
    with pytest.raises(Exception, match="did not converge"):
        fit_bgnbd(s)
    model, note = fit_bgnbd_penalized_if_needed(s)
    assert model.penalizer > 0 and "penalizer=" in note
    # Nobody drops out; the penalty pulls a and b towards each other (a mean dropout of about 11% here), so
    # P(alive) is pessimistic, but still high: the price of a penalty, and why the page says it used one.
    assert model.p_alive(s).mean() > 0.8


def test_too_short_data_skips_the_check_and_says_so(simulated):
    events, _ = simulated
    short = events[events["timestamp"] < "2024-01-20"]
    a = analyse_value(short, value="value", holdout="30D")
    assert a.check is None and any("too short" in n for n in a.notes)
    assert "could not be checked" in takeaways(a, value_deciles(a), pd.DataFrame())[0]


def test_health_score_carries_p_alive_validated_against_churn(simulated):
    events, truth = simulated
    others = pd.DataFrame({"user_id": ["visitor"] * 3, "event": "page_view",
                           "timestamp": pd.to_datetime(["2024-11-01", "2024-12-01", "2024-12-30"], utc=True)})
    h = risk.health_score(pd.concat([events, others], ignore_index=True), horizon="60D", inactivity="60D",
                          purchase_events=("purchase",))
    s = h.scores.set_index("user_id")
    assert np.isnan(s.loc["visitor", "p_alive"])  # never bought
    assert s["p_alive"].drop("visitor").between(0, 1).all()
    assert h.validation["p_alive_users"] > 1000 and h.validation["p_alive_concordance"] > 0.55
    assert "concordance" in risk.p_alive_headline(h)
    days = np.arange(90)
    views = pd.DataFrame({"user_id": np.repeat([f"v{i}" for i in range(40)], 90), "event": "page_view",
                          "timestamp": pd.Timestamp("2025-01-01", tz="UTC") + pd.to_timedelta(np.tile(days, 40), unit="D")})
    views = views[(views["user_id"].str[1:].astype(int) % 2 == 0) | (np.tile(days, 40) < 62)]  # half go quiet
    no_buyers = risk.health_score(views, horizon="20D", inactivity="10D")
    assert "p_alive" not in no_buyers.scores.columns and "not shown" in risk.p_alive_headline(no_buyers)


def test_persona_kpis_carry_predicted_value_per_user():
    values = pd.DataFrame({"user_id": ["a", "b", "c"], "customer_value": [10.0, 30.0, 60.0], "p_alive": [0.9, 0.2, 0.8]})
    ev = pd.DataFrame({"user_id": ["a", "b", "c", "d"], "event": "purchase", "value": 5.0,
                       "timestamp": pd.to_datetime(["2025-03-01"] * 4, utc=True)})
    k = persona_kpis(ev, pd.Series({"a": "x", "b": "x", "c": "y", "d": "y"}), customer_values=values).set_index("persona")
    assert k.loc["x", "predicted_value_per_user"] == pytest.approx(20.0)
    assert k.loc["y", "predicted_value_per_user"] == pytest.approx(30.0)  # d never valued: counts 0
    assert k.loc["x", "p_alive"] == pytest.approx(0.55) and k.loc["y", "p_alive"] == pytest.approx(0.8)
    assert k.loc["(all)", "predicted_value_per_user"] == pytest.approx(25.0)


def test_the_standard_audience_is_built_or_skipped_with_a_reason(tmp_path, simulated):
    events, _ = simulated
    out = audiences.export_standard(["likely_lapsed_high_value"], events=events, directory=tmp_path)
    assert out[0]["users"] > 0 and (tmp_path / "likely_lapsed_high_value.csv").exists()
    ev = pd.DataFrame({"user_id": ["a"], "event": ["visit"], "timestamp": [pd.Timestamp("2024-01-01", tz="UTC")]})
    skipped = audiences.export_standard(["likely_lapsed_high_value"], events=ev, directory=tmp_path)
    assert skipped[0]["users"] is None and "no purchase" in skipped[0]["skipped"]
    with pytest.raises(EventDataError, match="no purchase"):
        audiences.likely_lapsed_high_value(ev)
