"""Each persona-fitting step on its own, with known answers and independent computations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score, silhouette_score

from helpers.io import EventDataError
from helpers.personas.fitting import (assign_clusters, check_features, choose_k, describe_personas, fit_clusters,
                                      learn_scaling, order_by_size, persona_stability, sampled_silhouette,
                                      stability)


def planted(k: int, per: int, *, seed: int = 0, spread: float = 0.03) -> tuple[np.ndarray, np.ndarray]:
    """k well-separated blobs (the corners of a simplex), ``per`` points each, non-negative, with the true labels."""
    rng = np.random.default_rng(seed)
    centres = np.eye(max(k, 3))[:k]
    truth = np.repeat(np.arange(k), per)
    return np.abs(centres[truth] + rng.normal(0, spread, (k * per, centres.shape[1]))), truth


def test_check_features_names_the_column_and_an_example():
    with pytest.raises(EventDataError, match=r"'plan' is not numeric \(example value 'pro'\)"):
        check_features(pd.DataFrame({"events": [1, 2], "plan": ["pro", "free"]}))
    with pytest.raises(EventDataError, match="no users"):
        check_features(pd.DataFrame({"events": []}))
    with pytest.raises(EventDataError, match=r"'events' has an infinite value \(user 'b'\)"):
        check_features(pd.DataFrame({"events": [1.0, -np.inf]}, index=["a", "b"]))
    with pytest.raises(TypeError):
        check_features(np.zeros((2, 2)))


def test_scaling_square_roots_shares_standardizes_the_rest_weighs_groups_and_fills_milestones_with_the_slowest():
    f = pd.DataFrame({"share_page__a": [0.0, 0.2, 0.6, 1.0], "share_page__b": [1.0, 0.8, 0.4, 0.0],
                      "events": [2.0, 4.0, 6.0, 8.0], "days_to__purchase": [1.0, 3.0, np.nan, 2.0],
                      "share_event__x": [0.5, 0.5, 0.5, 0.5]})
    with pytest.warns(UserWarning, match="1 constant feature"):
        s = learn_scaling(f, ["content", "actions", "activity", "speed"])
    assert s.columns == ["share_page__a", "share_page__b", "events", "days_to__purchase"]
    assert s.dropped == ["share_event__x"] and s.share.tolist() == [True, True, False, False]
    assert s.fill.tolist() == [5.0, 3.0]  # the median of events; the slowest milestone for the never-reached
    X = s.transform(f)
    # Hellinger: square-rooted shares, not centred; the content group's two columns weigh 1/sqrt(2) each.
    roots = np.sqrt(f[["share_page__a", "share_page__b"]].to_numpy())
    np.testing.assert_allclose(X[:, :2], roots / np.sqrt(2))
    spread = np.median(roots.std(axis=0))  # population std of the square-rooted shares
    # standardized (population std) then scaled to the square-rooted shares' spread; one column: weight 1
    np.testing.assert_allclose(X[:, 2].std(), spread) and np.testing.assert_allclose(X[:, 2].mean(), 0, atol=1e-12)
    assert X[2, 3] == pytest.approx(X[1, 3])  # NaN filled with 3 days, as the slowest user
    same = learn_scaling(f.drop(columns="share_event__x"), ["content", "activity", "speed"], group_weighting="columns")
    np.testing.assert_allclose(same.transform(f)[:, :2], roots)
    with pytest.raises(EventDataError, match="lack column"):
        s.transform(f.drop(columns="events"))
    with pytest.raises(ValueError, match="group_weighting"):
        learn_scaling(f, ["content"], group_weighting="vibes")


def test_nmf_scaling_is_non_negative_and_min_max():
    f = pd.DataFrame({"share_page__a": [0.0, 0.5, 1.0], "events": [10.0, 20.0, 40.0]})
    X = learn_scaling(f, ["content", "activity"], method="nmf").transform(f)
    assert (X >= 0).all() and X[0, 1] == 0


def test_every_group_constant_or_absent_is_an_error_that_says_what_the_features_have():
    f = pd.DataFrame({"share_page__a": [0.5, 0.5], "events": [1.0, 3.0]})
    with pytest.raises(EventDataError, match="every feature used is constant"):
        learn_scaling(f, ["content"])
    with pytest.raises(EventDataError, match="the features have: activity, content"):
        learn_scaling(f, ["channels"])


@pytest.mark.parametrize("k", [2, 3, 5])
def test_choose_k_finds_planted_blobs_and_clusters_recover_them(k):
    X, truth = planted(k, 60, seed=k)
    chosen, scores = choose_k(X, list(range(2, 8)))
    if k == 2:
        # A known cost of "the finest stable grouping": 60 points per blob, and one blob split the same way
        # by every subsample's 10-start k-means, so 3 is as stable as 2 here (planted(2, 80) gives 2).
        assert chosen == 3 and choose_k(*planted(2, 80)[:1], list(range(2, 8)))[0] == 2
        return
    assert chosen == k and scores["chosen"].sum() == 1 and scores.loc[scores["chosen"], "n_personas"].item() == k
    _, labels = fit_clusters(X, k)
    assert adjusted_rand_score(truth, labels) == 1.0
    est, labels = fit_clusters(X, k, method="nmf")
    assert adjusted_rand_score(truth, assign_clusters(est, X, "nmf")) == adjusted_rand_score(truth, labels)


def test_choose_k_takes_the_largest_k_within_tolerance_of_the_most_stable():
    X, _ = planted(3, 50)
    _, scores = choose_k(X, [2, 3, 4, 5])
    assert scores.columns.tolist() == ["n_personas", "stability", "stability_se", "silhouette", "chosen"]
    assert choose_k(X, [2, 3, 4, 5], tolerance=1.0)[0] == 5  # everything is within 1 of the best
    best = scores["stability"].max()
    expected = scores.loc[scores["stability"] >= best - 0.02, "n_personas"].max()
    assert choose_k(X, [2, 3, 4, 5])[0] == expected == 3
    # Three blobs: k=3 always comes back the same; k=4 or 5 split one blob differently per subsample.
    assert scores.set_index("n_personas").loc[3, "stability"] == 1.0
    assert scores.set_index("n_personas").loc[4, "stability"] < 0.95


def test_stability_is_the_ari_between_models_fitted_on_two_subsamples():
    from sklearn.cluster import KMeans

    X, _ = planted(4, 40, seed=3, spread=0.3)
    got = stability(X, 4, pairs=2, random_state=0)
    rng = np.random.default_rng([0, 4])  # the same draws, by hand
    want = []
    for i in range(2):
        a, b = (np.sort(rng.choice(len(X), size=128, replace=False)) for _ in range(2))
        la = KMeans(4, random_state=2 * i, n_init=10).fit(X[a]).predict(X)
        lb = KMeans(4, random_state=2 * i + 1, n_init=10).fit(X[b]).predict(X)
        want.append(adjusted_rand_score(la, lb))
    np.testing.assert_allclose(got, want)


def test_persona_stability_is_high_for_real_groups_and_low_for_an_arbitrary_split():
    X, truth = planted(3, 60, seed=2)
    np.testing.assert_allclose(persona_stability(X, truth, 3, resamples=10), 1.0)
    # A wide blob cut in two at random by hand (no refit can reproduce that cut, so both halves score
    # low) and a tight blob far away, which every refit keeps whole (it splits the wide blob instead).
    rng = np.random.default_rng(0)
    wide, tight = rng.normal(0, 1, (200, 2)), rng.normal(10, 0.05, (200, 2))
    split = persona_stability(np.r_[wide, tight], np.r_[rng.integers(0, 2, 200), np.full(200, 2)], 3, resamples=10)
    assert split[2] == 1.0 and split[:2].max() < 0.6


def test_minibatch_from_a_kmeans_start_recovers_planted_blobs():
    X, truth = planted(3, 400, seed=7, spread=0.1)
    _, labels = fit_clusters(X, 3, minibatch_above=500)
    assert adjusted_rand_score(truth, labels) > 0.99


def test_sampled_silhouette_equals_sklearn_on_the_whole_data_and_is_nan_for_one_group():
    X, truth = planted(3, 30)
    assert sampled_silhouette(X, truth, sample=10_000) == pytest.approx(silhouette_score(X, truth))
    assert np.isnan(sampled_silhouette(X, np.zeros(len(X), dtype=int)))
    assert np.isnan(sampled_silhouette(X[:3], np.arange(3)))  # every point its own group


def test_order_by_size_numbers_personas_largest_first_ties_by_cluster():
    raw = np.array([1, 1, 0, 0, 2, 2, 2, 3])
    relabel = order_by_size(raw, 4)
    assert relabel.tolist() == [1, 2, 0, 3]
    sizes = np.bincount(relabel[raw])
    assert (np.diff(sizes) <= 0).all()


def test_describe_names_each_persona_by_its_most_distinctive_feature_and_numbers_twins():
    f = pd.DataFrame({"share_page__deals": [0.9, 0.8, 0.1, 0.0, 0.1, 0.0],
                      "share_page__blog": [0.1, 0.2, 0.9, 1.0, 0.9, 1.0],
                      "monetary_value": [10.0, 10.0, 40.0, 40.0, 40.0, 40.0]})
    labels = np.array([0, 0, 1, 1, 2, 2])
    X = f[["share_page__deals", "share_page__blog"]].to_numpy()
    profile, names = describe_personas(f, X, labels, 3, ["share_page__deals", "share_page__blog"])
    assert names[0].startswith("Deals page focused: ") and "spend" in names[0]
    assert names[1].startswith("Blog page focused 1:") and names[2].startswith("Blog page focused 2:")
    row = profile[(profile["persona"] == 0) & (profile["feature"] == "monetary_value")].iloc[0]
    assert row["mean"] == 10.0 and row["overall_mean"] == 30.0 and row["ratio"] == pytest.approx(1 / 3)
    assert row["users"] == 2 and row["share"] == pytest.approx(1 / 3) and not row["used"]
    assert "0.3x spend" in names[0]
