"""The steps of fitting personas, each a function of tables and arrays; :class:`PersonaModel` calls them in order.

1. :func:`check_features`: the features table is numeric, finite and not empty.
2. :func:`learn_scaling`: which columns are used (those of the chosen feature
   groups, constants left out) and how each is filled, log-transformed and
   scaled; :meth:`Scaling.transform` gives the clustering matrix.
3. :func:`choose_k`: the number of personas by subsample :func:`stability` on a
   sample, the largest k within ``tolerance`` of the most stable.
4. :func:`fit_clusters` and :func:`assign_clusters`: k-means (minibatch from a
   k-means start on a sample above ``minibatch_above`` users) or NMF.
5. :func:`order_by_size`: persona numbers by size, largest first.
6. :func:`persona_stability`: bootstrap Jaccard per persona.
7. :func:`describe_personas`: the tidy profile and a one-line name per persona.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from helpers.io import EventDataError
from helpers.personas.features import _MIX_GROUPS, _ratio_text, _readable, feature_group

METHODS = ("kmeans", "nmf")


def check_features(features: pd.DataFrame) -> None:
    """Raise a clear error unless ``features`` is a non-empty, numeric, finite table.

    Examples
    --------
    >>> check_features(pd.DataFrame({"events": [1.0, float("inf")]}, index=["a", "b"]))
    Traceback (most recent call last):
    ...
    helpers.io.schema.EventDataError: fit_personas: feature column 'events' has an infinite value (user 'b').
    """
    if not isinstance(features, pd.DataFrame):
        raise TypeError(f"features must be a pandas DataFrame (from user_features), got {type(features).__name__}.")
    if len(features) == 0:
        raise EventDataError("fit_personas: there are no users in the features table.")
    bad = [c for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
    if bad:
        example = features[bad[0]].dropna().iloc[0] if features[bad[0]].notna().any() else None
        raise EventDataError(f"fit_personas: feature column {bad[0]!r} is not numeric (example value {example!r}); "
                             "drop it or one-hot it first.")
    values = features.to_numpy(dtype=float)
    if np.isinf(values).any():
        col = features.columns[np.isinf(values).any(axis=0)][0]
        user = features.index[np.isinf(features[col].to_numpy(float))][0]
        raise EventDataError(f"fit_personas: feature column {col!r} has an infinite value (user {user!r}).")


GROUP_WEIGHTINGS = ("columns", "groups")


@dataclass(frozen=True)
class Scaling:
    """How features become the clustering matrix, learnt on the fitted users.

    Share features (``share`` True) are clipped to 0-1 (missing as 0) and
    square-rooted: the Hellinger transform of a mix, which evens out the
    multinomial noise of a user's few events (a share's variance grows with
    the share), and under which a rare, noisy category weighs little; they are
    not standardized (standardizing gives a rare lifecycle event such as
    ``signup``, whose share is just 1 / events, the weight of a page; on the
    bundled sample that dropped the ARI from 0.85 to 0.43). The others are
    filled (``fill``: the median; for ``days_to__*`` the slowest observed,
    since never reaching a milestone is slower than everyone who did),
    log-transformed where skewed (``log``: counts, spend), standardized and
    scaled to the spread of a typical square-rooted share (for NMF:
    min-max scaled, so that everything is non-negative). Last, each column is multiplied by its
    group's ``weight``: 1/sqrt(columns in the group) with
    ``group_weighting="groups"`` (the default: each group counts the same,
    however many columns it has), or 1 with ``"columns"``.
    """

    columns: list[str]
    dropped: list[str]
    share: np.ndarray
    fill: np.ndarray
    log: np.ndarray
    center: np.ndarray
    scale: np.ndarray
    weight: np.ndarray
    method: str

    def transform(self, features: pd.DataFrame) -> np.ndarray:
        """The clustering matrix of ``features`` (the same columns as the fit; others are ignored)."""
        missing = [c for c in self.columns if c not in features.columns]
        if missing:
            raise EventDataError(f"The features lack column(s) the model was fitted on: {', '.join(missing[:5])}"
                                 f"{' ...' if len(missing) > 5 else ''}. Compute them with the same user_features settings.")
        X = _raw_matrix(features[self.columns].to_numpy(dtype=float, copy=True), self.share, self.fill, self.log)
        X = (X - self.center) / self.scale * self.weight
        return np.maximum(X, 0.0) if self.method == "nmf" else X


def _raw_matrix(X: np.ndarray, share: np.ndarray, fill: np.ndarray, log: np.ndarray) -> np.ndarray:
    """Shares clipped and square-rooted; the other columns filled and log-transformed where asked."""
    X[:, share] = np.sqrt(np.clip(np.nan_to_num(X[:, share], nan=0.0), 0.0, 1.0))
    other = ~share
    if other.any():
        Y = X[:, other]
        Y = np.where(np.isnan(Y), fill, Y)
        Y[:, log] = np.log1p(np.maximum(Y[:, log], 0.0))
        X[:, other] = Y
    return X


def learn_scaling(features: pd.DataFrame, feature_groups: Sequence[str], method: str = "kmeans",
                  group_weighting: str = "groups") -> Scaling:
    """The columns of ``feature_groups`` that vary, and how to scale them (see :class:`Scaling`).

    Examples
    --------
    >>> f = pd.DataFrame({"share_page__a": [0.0, 0.5, 1.0], "events": [1, 10, 100], "share_page__b": [1.0, 1.0, 1.0]})
    >>> s = learn_scaling(f, ["content", "activity"])
    >>> s.columns, s.dropped, s.share.tolist()
    (['share_page__a', 'events'], ['share_page__b'], [True, False])
    """
    if group_weighting not in GROUP_WEIGHTINGS:
        raise ValueError(f"group_weighting must be one of {', '.join(GROUP_WEIGHTINGS)}, got {group_weighting!r}.")
    wanted = [c for c in features.columns if feature_group(c) in feature_groups]
    if not wanted:
        present = sorted({feature_group(c) for c in features.columns})
        raise EventDataError(f"fit_personas: no feature of the groups {', '.join(feature_groups)}; "
                             f"the features have: {', '.join(present)}.")
    X = features[wanted].astype(float)
    constant = [c for c in wanted if X[c].nunique(dropna=False) <= 1]
    columns = [c for c in wanted if c not in constant]
    if not columns:
        raise EventDataError(f"fit_personas: every feature used is constant ({', '.join(constant[:5])}"
                             f"{' ...' if len(constant) > 5 else ''}): there is nothing to tell users apart.")
    if constant:
        warnings.warn(f"fit_personas: {len(constant)} constant feature(s) left out ({', '.join(constant[:5])}"
                      f"{' ...' if len(constant) > 5 else ''}): they cannot tell users apart.", UserWarning, stacklevel=3)
    share = np.array([feature_group(c) in _MIX_GROUPS for c in columns])
    other = [c for c, s in zip(columns, share) if not s]
    Y = X[other]
    # Never reaching a milestone is slower than everyone who did: fill with the slowest observed.
    fill = np.array([Y[c].max() if c.startswith("days_to__") else Y[c].median() for c in other], dtype=float)
    fill = np.nan_to_num(fill, nan=0.0)
    Y = Y.fillna(pd.Series(fill, index=other))
    log = np.array([bool((Y[c] >= 0).all() and Y[c].skew() > 1) for c in other], dtype=bool)
    Z = _raw_matrix(X[columns].to_numpy(float, copy=True), share, fill, log)
    if method == "nmf":
        center, scale = Z.min(axis=0), np.ptp(Z, axis=0)
    else:
        center, scale = Z.mean(axis=0), Z.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    if share.any():
        # Shares stay on their square-root scale (Hellinger distance: a rare, noisy category weighs
        # little); the other columns are standardized to the spread of a typical square-rooted share.
        spread = float(np.median(Z[:, share].std(axis=0)))
        spread = spread if spread > 0 else 1.0
        center = np.where(share, 0.0, center)
        scale = np.where(share, 1.0, scale / spread if method != "nmf" else scale)
    groups = np.array([feature_group(c) for c in columns])
    if group_weighting == "groups":
        sizes = pd.Series(groups).map(pd.Series(groups).value_counts()).to_numpy(float)
        weight = 1.0 / np.sqrt(sizes)
    else:
        weight = np.ones(len(columns))
    return Scaling(columns, constant, share, fill, log, center, scale, weight, method)


def _estimator(k: int, n: int, n_columns: int, *, method: str, random_state: int, minibatch_above: int) -> Any:
    from sklearn.cluster import KMeans, MiniBatchKMeans
    from sklearn.decomposition import NMF

    if method == "nmf":
        init = "nndsvda" if k <= min(n, n_columns) else "random"  # SVD start needs k <= features
        return NMF(n_components=k, init=init, random_state=random_state, max_iter=500)
    if n > minibatch_above:
        return MiniBatchKMeans(n_clusters=k, random_state=random_state, n_init=3, batch_size=4096)
    return KMeans(n_clusters=k, random_state=random_state, n_init=10)


def fit_clusters(X: np.ndarray, k: int, *, method: str = "kmeans", random_state: int = 0,
                 minibatch_above: int = 100_000) -> tuple[Any, np.ndarray]:
    """A fitted scikit-learn estimator with ``k`` clusters, and each row's cluster (numbered as the estimator does).

    Examples
    --------
    >>> X = np.array([[0.0], [0.1], [1.0], [1.1], [0.9]])
    >>> _, labels = fit_clusters(X, 2)
    >>> len(set(labels[:2])), len(set(labels[2:])), bool(labels[0] != labels[2])
    (1, 1, True)
    """
    est = _estimator(k, len(X), X.shape[1], method=method, random_state=random_state, minibatch_above=minibatch_above)
    if method == "kmeans" and len(X) > minibatch_above:
        # Minibatch updates from a random start land in poor solutions (ARI 0.61 against 0.84 on the
        # 500k-user sample); starting them from a full k-means on a sample keeps the quality.
        from sklearn.cluster import KMeans

        rng = np.random.default_rng(random_state)
        start = KMeans(n_clusters=k, random_state=random_state, n_init=10).fit(
            X[rng.choice(len(X), size=min(len(X), 50_000), replace=False)])
        est.set_params(init=start.cluster_centers_, n_init=1)
    if method == "nmf":
        labels = np.asarray(est.fit_transform(X)).argmax(axis=1)
    else:
        labels = est.fit(X).labels_
    return est, labels


def assign_clusters(estimator: Any, X: np.ndarray, method: str = "kmeans") -> np.ndarray:
    """Each row's cluster under a fitted estimator: the nearest centre, or the largest NMF part."""
    if method == "nmf":
        return np.asarray(estimator.transform(X)).argmax(axis=1)
    return estimator.predict(X)


def sampled_silhouette(X: np.ndarray, labels: np.ndarray, *, sample: int = 5_000, random_state: int = 0) -> float:
    """The silhouette of ``labels`` on a random sample of ``sample`` rows; NaN when fewer than two groups.

    Examples
    --------
    >>> round(sampled_silhouette(np.array([[0.0], [0.1], [1.0], [1.1]]), np.array([0, 0, 1, 1])), 3)
    0.9
    """
    from sklearn.metrics import silhouette_score

    rng = np.random.default_rng(random_state)
    if len(np.unique(labels)) < 2 or len(np.unique(labels)) >= len(X):
        return float("nan")
    idx = rng.choice(len(X), size=min(len(X), sample), replace=False)
    if len(np.unique(labels[idx])) < 2:
        return float("nan")
    return float(silhouette_score(X[idx], labels[idx]))


def _fit_quick(X: np.ndarray, k: int, method: str, random_state: int) -> Any:
    """A fitted estimator for the resampling steps: a full k-means with 10 starts (with 3, a poor local
    optimum at the true k read as instability: 7 planted personas were chosen as 5)."""
    from sklearn.cluster import KMeans

    if method == "nmf":
        return _estimator(k, len(X), X.shape[1], method=method, random_state=random_state,
                          minibatch_above=len(X) + 1).fit(X)
    return KMeans(n_clusters=k, random_state=random_state, n_init=10).fit(X)


def stability(X: np.ndarray, k: int, *, pairs: int = 5, subsample: float = 0.8, method: str = "kmeans",
              random_state: int = 0) -> np.ndarray:
    """How reproducible a k-grouping is: per pair of random subsamples, the adjusted Rand index between the
    groupings of every row by a model fitted on each (1 = the same personas whichever users are drawn).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = np.r_[rng.normal(0, .1, (60, 2)), rng.normal(1, .1, (60, 2))]
    >>> float(stability(X, 2).mean()), bool(stability(X, 5).mean() < 1)
    (1.0, True)
    """
    from sklearn.metrics import adjusted_rand_score

    rng = np.random.default_rng([random_state, k])
    size = max(k + 1, int(round(subsample * len(X))))
    out = np.empty(pairs)
    for i in range(pairs):  # a handful of model fits, not a loop over users
        a, b = (np.sort(rng.choice(len(X), size=size, replace=False)) for _ in range(2))
        la = assign_clusters(_fit_quick(X[a], k, method, random_state + 2 * i), X, method)
        lb = assign_clusters(_fit_quick(X[b], k, method, random_state + 2 * i + 1), X, method)
        out[i] = adjusted_rand_score(la, lb)
    return out


def choose_k(X: np.ndarray, candidates: Sequence[int], *, method: str = "kmeans", random_state: int = 0,
             selection_sample: int = 20_000, silhouette_sample: int = 5_000, tolerance: float = 0.02,
             pairs: int = 5, minibatch_above: int = 100_000) -> tuple[int, pd.DataFrame]:
    """The number of personas, and the evidence per candidate: ``n_personas``, ``stability`` (mean of
    :func:`stability` over ``pairs`` subsample pairs), ``stability_se``, ``silhouette``, ``chosen``.

    The chosen k is the **largest whose stability is within** ``tolerance``
    **of the best**. Too many personas split a real one arbitrarily, and the
    split moves from subsample to subsample (stability drops); too few merge
    real ones, and a merge is just as reproducible, so among equally stable
    groupings the finest is the one that has not merged anything. Silhouette is
    reported, not used: on overlapping personas it peaks too early (on the
    planted family in the tests, the best silhouette is at the true k on 9 of
    14 logs and 7 planted personas read as 5; this rule finds the true k on 11
    of 14, never off by more than one; the old silhouette rule on the bundled
    sample's scaling found it on 3 of 14).
    Everything runs on the same random sample of ``selection_sample`` rows.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> X = np.r_[rng.normal(0, .1, (60, 2)), rng.normal([3, 0], .1, (60, 2)), rng.normal([0, 3], .1, (60, 2))]
    >>> choose_k(X, [2, 3, 4, 5])[0]
    3
    """
    n = len(X)
    rng = np.random.default_rng(random_state)
    sample = np.sort(rng.choice(n, size=min(n, selection_sample), replace=False))
    Xs = X[sample]
    rows = []
    for k in candidates:  # a few candidate numbers of personas
        _, labels = fit_clusters(Xs, k, method=method, random_state=random_state, minibatch_above=minibatch_above)
        s = stability(Xs, k, pairs=pairs, method=method, random_state=random_state)
        rows.append({"n_personas": k, "stability": float(s.mean()),
                     "stability_se": float(s.std(ddof=1) / np.sqrt(len(s))) if len(s) > 1 else float("nan"),
                     "silhouette": sampled_silhouette(Xs, labels, sample=silhouette_sample, random_state=random_state)})
    scores = pd.DataFrame(rows)
    if scores["silhouette"].isna().all():
        raise EventDataError("fit_personas: no candidate number of personas gave two or more groups.")
    best = scores["stability"].max()
    k = int(scores.loc[scores["stability"] >= best - tolerance, "n_personas"].max())
    scores["chosen"] = scores["n_personas"] == k
    return k, scores


def persona_stability(X: np.ndarray, labels: np.ndarray, k: int, *, resamples: int = 20, sample: int = 20_000,
                      method: str = "kmeans", random_state: int = 0) -> np.ndarray:
    """Per persona, the mean bootstrap Jaccard similarity (Hennig's ``clusterboot``): refit on a bootstrap
    resample and take the best-matching new group's Jaccard overlap with the persona, over the resampled
    users. Above 0.85 a persona is highly stable, 0.75-0.85 stable, below 0.6 it is not a real pattern.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = np.r_[rng.normal(0, .1, (50, 2)), rng.normal(1, .1, (50, 2))]
    >>> persona_stability(X, np.repeat([0, 1], 50), 2, resamples=5).round(2).tolist()
    [1.0, 1.0]
    """
    rng = np.random.default_rng([random_state, 5])
    if len(X) > sample:
        keep = np.sort(rng.choice(len(X), size=sample, replace=False))
        X, labels = X[keep], labels[keep]
    total, done = np.zeros(k), 0
    for i in range(resamples):  # a few refits, each vectorised over users
        idx = np.unique(rng.choice(len(X), size=len(X), replace=True))
        if len(np.unique(X[idx], axis=0)) <= k:  # too few users left to make k groups from
            continue
        done += 1
        new = assign_clusters(_fit_quick(X[idx], k, method, random_state + i), X[idx], method)
        both = pd.crosstab(labels[idx], new).reindex(index=range(k), fill_value=0).to_numpy(float)
        union = both.sum(axis=1, keepdims=True) + both.sum(axis=0, keepdims=True) - both
        with np.errstate(divide="ignore", invalid="ignore"):
            total += np.nan_to_num(both / union).max(axis=1)
    return total / done if done else np.full(k, np.nan)


def order_by_size(raw: np.ndarray, k: int) -> np.ndarray:
    """A map from estimator cluster numbers to persona numbers: 0 the largest, ties by cluster number.

    Examples
    --------
    >>> order_by_size(np.array([2, 2, 0, 1, 1, 1]), 3).tolist()  # cluster 1 is largest: persona 0
    [2, 0, 1]
    """
    sizes = np.bincount(raw, minlength=k)
    order = np.lexsort((np.arange(k), -sizes))
    relabel = np.empty(k, dtype=int)
    relabel[order] = np.arange(k)
    return relabel


def describe_personas(features: pd.DataFrame, X: np.ndarray, labels: np.ndarray, k: int,
                      columns: Sequence[str]) -> tuple[pd.DataFrame, dict[int, str]]:
    """The tidy profile of each persona and a one-line name made from its most distinctive features.

    Profile columns: ``persona``, ``feature``, ``mean``, ``ratio`` (mean / overall
    mean), ``overall_mean``, ``group``, ``used`` (for clustering), ``users``,
    ``share``. A name leads with the one or two clustering features whose
    persona centre is furthest above everyone's (in spreads of the clustering
    space, above 0.25), and adds spend: ``"Deals page focused: 4.3x deals page
    share, 0.6x spend"``. The same title twice is numbered.
    """
    numeric = features.astype(float)
    means = numeric.groupby(labels).mean().reindex(range(k))
    overall = numeric.mean()
    users = np.bincount(labels, minlength=k)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = means / overall.where(overall != 0)
    long = means.stack(future_stack=True).rename("mean").reset_index()
    long.columns = ["persona", "feature", "mean"]
    long["ratio"] = ratio.stack(future_stack=True).to_numpy()
    long["overall_mean"] = long["feature"].map(overall)
    long["group"] = long["feature"].map(feature_group)
    long["used"] = long["feature"].isin(set(columns))
    long["users"] = users[long["persona"]]
    long["share"] = long["users"] / len(labels)
    # Distinctiveness: how far the persona's centre is from everyone's, in the clustering space.
    Xc = pd.DataFrame(X, columns=list(columns)).groupby(labels).mean().reindex(range(k))
    spread = X.std(axis=0)
    effect = (Xc - X.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
    names = {}
    for p in range(k):  # k personas, not users: a handful of iterations
        e = effect.loc[p].sort_values(ascending=False)
        top = [c for c in e.index[:2] if e[c] > 0.25] or [effect.loc[p].abs().idxmax()]
        lead = top[0]
        title = (_readable(lead).removesuffix(" share").capitalize() + " focused") if e[lead] > 0 \
            else "Low " + _readable(lead).removesuffix(" share")
        shown = list(top) + (["monetary_value"] if "monetary_value" in features.columns
                             and "monetary_value" not in top else [])
        parts = [f"{_ratio_text(ratio.loc[p, c])} {_readable(c)}" for c in shown]
        names[p] = f"{title}: {', '.join(parts)}"
    titles = [n.split(":")[0] for n in names.values()]
    for p in range(k):  # the same title twice: number them
        title = names[p].split(":")[0]
        if titles.count(title) > 1:
            names[p] = names[p].replace(title, f"{title} {titles[:p + 1].count(title)}", 1)
    return long, names
