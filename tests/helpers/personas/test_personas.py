"""helpers.personas: each feature's value on a hand-made log, the persona model, the KPI table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers.io import EventDataError
from helpers.personas import PersonaModel, feature_group, fit_personas, persona_kpis, user_features

T0 = pd.Timestamp("2025-01-01", tz="UTC")


@pytest.fixture
def log():
    rows = [  # user, event, hours after T0, channel, value, session
        ("a", "visit", 0, "web", None, "s1"), ("a", "purchase", 1, "app", 20.0, "s1"),
        ("a", "nps_response", 30, "email", 9.0, "s2"), ("a", "repeat_purchase", 200, "app", 5.0, "s3"),
        ("b", "visit", 24, "web", None, "s4"), ("b", "first_value", 48, "web", None, "s5"),
    ]
    return pd.DataFrame({"user_id": [r[0] for r in rows], "event": [r[1] for r in rows],
                         "timestamp": [T0 + pd.Timedelta(hours=r[2]) for r in rows], "channel": [r[3] for r in rows],
                         "value": [r[4] for r in rows], "session_id": [r[5] for r in rows]})


def test_counts_sessions_days_tenure_and_recency(log):
    f = user_features(log, observed_until=T0 + pd.Timedelta(days=10))
    a, b = f.loc["a"], f.loc["b"]
    assert (a["events"], a["active_days"], a["sessions"]) == (4, 3, 3)
    assert a["events_per_active_day"] == pytest.approx(4 / 3)
    assert a["tenure_days"] == pytest.approx(200 / 24) and a["recency_days"] == pytest.approx(10 - 200 / 24)
    assert (b["events"], b["tenure_days"], b["recency_days"]) == (2, 1.0, 8.0)


def test_rfm_shares_milestones_and_survey(log):
    f = user_features(log)
    a, b = f.loc["a"], f.loc["b"]
    assert (a["purchases"], a["monetary_value"]) == (2, 25.0) and b["monetary_value"] == 0
    assert a["share_channel__app"] == 0.5 and a["share_event__visit"] == 0.25 and b["share_event__visit"] == 0.5
    assert a["days_to__purchase"] == pytest.approx(1 / 24) and np.isnan(a["days_to__first_value"])
    assert b["days_to__first_value"] == 1.0
    assert a["mean_survey_score"] == 9.0 and np.isnan(b["mean_survey_score"])
    assert f.index.tolist() == ["a", "b"] and f.index.name == "user_id"


def test_first_days_keeps_each_users_first_days_only(log):
    f = user_features(log, first_days=2)
    assert f.loc["a", "events"] == 3 and f.loc["a", "purchases"] == 1  # the repeat purchase on day 8 is out
    assert f.loc["b", "events"] == 2  # b's window starts at b's own first event


def test_user_attributes_are_one_hot(log):
    users = pd.DataFrame({"user_id": ["a", "b"], "plan": ["pro", None], "age": [31, 40]})
    f = user_features(log, users=users)
    assert f.loc["a", "attr__plan__pro"] == 1 and f.loc["b", "attr__plan__none"] == 1 and f.loc["b", "attr__age"] == 40


def test_sessions_are_made_when_the_data_has_none(log):
    f = user_features(log.drop(columns="session_id"))
    assert f.loc["a", "sessions"] == 4 and f.loc["b", "sessions"] == 2  # 30-minute gaps


def test_no_events_left_is_a_clear_error(log):
    with pytest.raises(EventDataError, match="no events"):
        user_features(log, observed_until=T0 - pd.Timedelta(days=1))


def test_rows_without_a_user_are_a_clear_error_not_one_none_user(log):
    log.loc[[4, 5], "user_id"] = None  # b's two rows, as a raw export's pre-login rows
    with pytest.raises(EventDataError, match=r"'user_id' is null on 2 rows \(for example on 'visit' events\).*stitch_identities"):
        user_features(log)


def test_property_shares_are_among_the_events_carrying_the_property():
    ev = pd.DataFrame({"user_id": ["a", "a", "a", "b"], "event": ["page_view", "page_view", "buy", "buy"],
                       "page": ["pricing", "docs", None, None],
                       "timestamp": [T0, T0 + pd.Timedelta(hours=1), T0 + pd.Timedelta(hours=2), T0]})
    f = user_features(ev)
    assert f.loc["a", "share_page__pricing"] == 0.5 and f.loc["a", "share_page__docs"] == 0.5
    assert f.loc["b", "share_page__pricing"] == 0  # no page views: zero, not NaN


def blobs(sizes=(50, 30, 20), seed=0):
    """Users in well-separated groups on two share features and a spend column."""
    rng = np.random.default_rng(seed)
    centres = [(.9, .05, 100.0), (.1, .85, 20.0), (.05, .1, 5.0)]
    rows = [np.column_stack([rng.normal(c[0], .03, n).clip(0, 1), rng.normal(c[1], .03, n).clip(0, 1),
                             rng.lognormal(np.log(c[2]), .2, n)]) for c, n in zip(centres, sizes)]
    f = pd.DataFrame(np.vstack(rows), columns=["share_page__deals", "share_channel__app", "monetary_value"])
    f.index = pd.Index([f"u{i:03d}" for i in range(len(f))], name="user_id")
    truth = np.repeat(np.arange(len(sizes)), sizes)
    return f, truth


def test_personas_are_numbered_by_size_and_match_the_groups():
    f, truth = blobs()
    m = fit_personas(f, 3)
    assert m.labels_.value_counts().sort_index().tolist() == [50, 30, 20]
    assert (m.labels_.to_numpy() == truth).all()  # the groups were built largest first
    assert m.labels_.index.equals(f.index) and m.labels_.name == "persona"
    assert m.columns_ == ["share_page__deals", "share_channel__app"]  # spend is profiled, not clustered, by default


def test_fit_is_deterministic_for_a_seed():
    f, _ = blobs((40, 40, 40), seed=3)
    a, b = fit_personas(f, 3, random_state=7), fit_personas(f, 3, random_state=7)
    assert a.labels_.equals(b.labels_) and a.names_ == b.names_


def test_automatic_k_finds_the_groups_and_keeps_the_evidence():
    f, _ = blobs((60, 50, 40))
    m = fit_personas(f)
    assert m.n_personas_ == 3
    assert m.k_scores_["n_personas"].tolist() == list(range(2, 9))
    assert m.k_scores_.loc[m.k_scores_["chosen"], "n_personas"].tolist() == [3]
    assert m.k_scores_["silhouette"].idxmax() == m.k_scores_["chosen"].idxmax()
    assert 0.7 < m.silhouette_ <= 1


def test_profile_holds_sizes_means_and_ratios():
    f, _ = blobs()
    m = fit_personas(f, 3)
    p = m.profile_
    deals = p[(p["persona"] == 0) & (p["feature"] == "share_page__deals")].iloc[0]
    assert deals["users"] == 50 and deals["share"] == 0.5
    assert deals["mean"] == pytest.approx(f["share_page__deals"].iloc[:50].mean())
    assert deals["ratio"] == pytest.approx(deals["mean"] / f["share_page__deals"].mean())
    assert set(p["feature"]) == set(f.columns) and p.loc[p["feature"] == "monetary_value", "used"].eq(False).all()
    assert m.profile_matrix().shape == (3, 2) and m.summary()["users"].sum() == 100


def test_names_say_what_is_distinctive_and_can_be_edited():
    f, _ = blobs()
    m = fit_personas(f, 3)
    ratio = f["share_page__deals"].iloc[:50].mean() / f["share_page__deals"].mean()
    spend = f["monetary_value"].iloc[:50].mean() / f["monetary_value"].mean()
    assert m.names_[0] == f"Deals page focused: {ratio:.1f}x deals page share, {spend:.1f}x spend"
    assert m.names_[1].startswith("App channel focused: ")
    assert m.names_[2].startswith("Low ")  # neither share is high: named by what they lack
    assert len(set(m.short_names_.values())) == 3
    m.rename({0: "Bargain hunters"})
    assert m.names_[0].startswith("Bargain hunters: ") and m.short_names_[0] == "Bargain hunters"
    assert set(m.profile_.loc[m.profile_["persona"] == 0, "name"]) == {"Bargain hunters"}
    with pytest.raises(KeyError, match="No persona 9"):
        m.rename({9: "x"})


def test_predict_assigns_new_users_to_the_nearest_persona():
    f, _ = blobs()
    m = fit_personas(f, 3)
    assert m.predict(f).equals(m.labels_)
    new = pd.DataFrame({"share_page__deals": [.88, .12], "share_channel__app": [.06, .8], "monetary_value": [1.0, 1.0]},
                       index=["n1", "n2"])
    assert m.predict(new).tolist() == [0, 1]
    with pytest.raises(EventDataError, match="share_channel__app"):
        m.predict(new.drop(columns="share_channel__app"))


def test_nmf_finds_the_groups_too():
    rng = np.random.default_rng(1)
    truth = np.repeat([0, 1, 2], [50, 30, 20])
    parts = np.repeat(np.eye(3), 2, axis=1) * .35  # each persona is mostly one part: two pages of six
    f = pd.DataFrame(rng.dirichlet(np.ones(6), 100) * .3 + parts[truth],
                     columns=[f"share_page__p{i}" for i in range(6)])
    m = fit_personas(f, 3, method="nmf")
    from sklearn.metrics import adjusted_rand_score
    assert adjusted_rand_score(truth, m.labels_) > 0.9


def test_feature_groups_choose_the_columns():
    f, _ = blobs()
    assert fit_personas(f, 3, feature_groups=["spend"]).columns_ == ["monetary_value"]
    assert fit_personas(f, 3, feature_groups="all").columns_ == list(f.columns)
    assert [feature_group(c) for c in ["days_to__purchase", "attr__plan__pro", "mean_survey_score", "x"]] == [
        "speed", "attributes", "satisfaction", "other"]
    with pytest.raises(ValueError, match="unknown group"):
        PersonaModel(3, feature_groups=["vibes"])
    with pytest.raises(EventDataError, match="no feature of the groups"):
        fit_personas(f, 3, feature_groups=["speed"])


def test_bad_input_gets_clear_errors():
    f, _ = blobs()
    with pytest.raises(EventDataError, match="no users"):
        fit_personas(f.iloc[:0], 2)
    with pytest.raises(EventDataError, match="at least 2 users"):
        fit_personas(f.iloc[:1], 2)
    with pytest.raises(EventDataError, match="every feature used is constant"):
        fit_personas(pd.DataFrame({"share_page__a": [.5] * 10}, index=[str(i) for i in range(10)]), 2)
    with pytest.raises(EventDataError, match="4 personas asked for.*3 distinct"):
        fit_personas(f.iloc[:3], 4)
    with pytest.raises(EventDataError, match="'share_page__deals' is not numeric.*'lots'"):
        fit_personas(f.assign(share_page__deals="lots"), 2)
    with pytest.raises(ValueError, match="at least 2"):
        fit_personas(f, 1)
    with pytest.warns(UserWarning, match="constant"):
        m = fit_personas(f.assign(share_page__home=0.0), 3)
    assert m.dropped_features_ == ["share_page__home"]


def test_planted_personas_are_recovered_on_the_sample():
    """The quality bar of #5: ARI >= 0.7 at the true k, and automatic selection finds that k."""
    from sklearn.metrics import adjusted_rand_score

    from helpers.sample import generate_journeys

    j = generate_journeys(20_000, seed=0)
    f = user_features(j.events)
    truth = j.truth.set_index("user_id").loc[f.index, "persona"].astype(str)
    model = fit_personas(f, 5)
    assert adjusted_rand_score(truth, model.labels_) >= 0.7
    assert fit_personas(f).n_personas_ == 5
    # Each planted persona is named after its signature page.
    signature = {"deal_seeker": "Deals page", "researcher": "Docs page", "social_sharer": "Reviews page",
                 "casual_browser": "Home page"}
    majority = pd.crosstab(truth, model.labels_.map(model.short_names_)).idxmax(axis=1)
    for persona, page in signature.items():
        assert majority[persona].startswith(page)


def test_persona_kpis_on_a_hand_made_log():
    ev = pd.DataFrame({"user_id": ["a", "a", "a", "b", "b", "c", "c", "d"],
                       "event": ["purchase", "nps_response", "nps_response", "purchase", "subscription_cancelled",
                                 "nps_response", "visit", "visit"],
                       "value": [30.0, 3.0, 10.0, 20.0, None, 7.0, None, None],
                       "timestamp": [T0, T0 + pd.Timedelta(days=1), T0 + pd.Timedelta(days=2), T0, T0 + pd.Timedelta(days=3),
                                     T0, T0 + pd.Timedelta(days=50), T0]})
    labels = pd.DataFrame({"user_id": ["a", "b", "c", "d", "e"], "persona": [1, 1, 2, 2, 2]})
    k = persona_kpis(ev, labels, names={1: "buyers", 2: "lookers"}).set_index("persona")
    assert k.loc[1, "name"] == "buyers" and k.loc["(all)", "users"] == 5  # e has no events: counted, did nothing
    assert (k.loc[1, "purchasers"], k.loc[1, "conversion"], k.loc[1, "revenue_per_user"]) == (2, 1.0, 25.0)
    # a's latest score (10) counts, not the earlier 3; c's 7 is passive: NPS of persona 2 is 0 from one respondent.
    assert (k.loc[1, "nps_respondents"], k.loc[1, "nps"]) == (1, 100.0) and k.loc[2, "nps"] == 0.0
    # b cancelled; d and e... d last seen 50 days before the end; a's last event 48 days before it.
    assert k.loc[1, "churned"] == 2 and k.loc[2, "churned"] == 1  # e has no events: not counted as churned
    lo, hi = k.loc["(all)", ["conversion_low", "conversion_high"]]
    assert lo == pytest.approx(0.1176, abs=1e-4) and hi == pytest.approx(0.7693, abs=1e-4)  # Wilson 2/5
    # NPS interval: p=1/2, d=0 over 2 respondents (a: 10, c: 7): 50 +- 1.96 * 100 * sqrt((.5 - .25) / 2)
    assert k.loc["(all)", "nps"] == 50.0
    assert k.loc["(all)", "nps_high"] - 50 == pytest.approx(1.959964 * 100 * np.sqrt(0.125), rel=1e-5)


def test_persona_kpis_churn_by_inactivity_uses_observed_until():
    ev = pd.DataFrame({"user_id": ["a", "b"], "event": ["visit", "visit"],
                       "timestamp": [T0, T0 + pd.Timedelta(days=20)]})
    labels = pd.Series({"a": "x", "b": "x"})
    assert persona_kpis(ev, labels)["churned"].tolist() == [0, 0]  # 20 days apart: nobody quiet for 30
    assert persona_kpis(ev, labels, observed_until=T0 + pd.Timedelta(days=45))["churned"].tolist() == [1, 1]
