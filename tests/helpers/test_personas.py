"""helpers.personas.user_features: each feature's value on a hand-made log."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers.io import EventDataError
from helpers.personas import user_features

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


def test_property_shares_are_among_the_events_carrying_the_property():
    ev = pd.DataFrame({"user_id": ["a", "a", "a", "b"], "event": ["page_view", "page_view", "buy", "buy"],
                       "page": ["pricing", "docs", None, None],
                       "timestamp": [T0, T0 + pd.Timedelta(hours=1), T0 + pd.Timedelta(hours=2), T0]})
    f = user_features(ev)
    assert f.loc["a", "share_page__pricing"] == 0.5 and f.loc["a", "share_page__docs"] == 0.5
    assert f.loc["b", "share_page__pricing"] == 0  # no page views: zero, not NaN


def test_planted_personas_are_recoverable_from_page_shares_on_the_sample():
    """The signal the persona model must find is in the sample (ARI on page shares alone; #5 builds the model)."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    from helpers.sample import generate_journeys

    j = generate_journeys(20_000, seed=0)
    f = user_features(j.events)
    pages = f[[c for c in f.columns if c.startswith("share_page__")]]
    truth = j.truth.set_index("user_id").loc[pages.index, "persona"].astype(str)
    labels = KMeans(5, n_init=10, random_state=0).fit_predict(pages)
    assert adjusted_rand_score(truth, labels) >= 0.7
