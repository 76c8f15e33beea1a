"""The steps of fitting personas, each a function of tables and arrays; :class:`PersonaModel` calls them in order.

1. :func:`check_features`: the features table is numeric, finite and not empty.
2. :func:`learn_scaling`: which columns are used (those of the chosen feature
   groups, constants left out) and how each is filled, log-transformed and
   scaled; :meth:`Scaling.transform` gives the clustering matrix.
3. :func:`choose_k`: the number of personas by silhouette on a sample, the
   smallest k within ``tolerance`` of the best.
4. :func:`fit_clusters` and :func:`assign_clusters`: k-means (minibatch from a
   k-means start on a sample above ``minibatch_above`` users) or NMF.
5. :func:`order_by_size`: persona numbers by size, largest first.
6. :func:`describe_personas`: the tidy profile and a one-line name per persona.
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


@dataclass(frozen=True)
class Scaling:
    """How features become the clustering matrix, learnt on the fitted users.

    Share features (``share`` True) keep their 0-1 scale, missing as 0. The
    others are filled (``fill``: the median; for ``days_to__*`` the slowest
    observed, since never reaching a milestone is slower than everyone who did),
    log-transformed where skewed (``log``), centred and scaled (standardized for
    k-means, min-max for NMF) and multiplied by ``spread``, the median spread of
    the share features, so that a standardized feature weighs like a typical
    share.
    """

    columns: list[str]
    dropped: list[str]
    share: np.ndarray
    fill: np.ndarray
    log: np.ndarray
    center: np.ndarray
    scale: np.ndarray
    spread: float
    method: str

    def transform(self, features: pd.DataFrame) -> np.ndarray:
        """The clustering matrix of ``features`` (the same columns as the fit; others are ignored)."""
        missing = [c for c in self.columns if c not in features.columns]
        if missing:
            raise EventDataError(f"The features lack column(s) the model was fitted on: {', '.join(missing[:5])}"
                                 f"{' ...' if len(missing) > 5 else ''}. Compute them with the same user_features settings.")
        X = features[self.columns].to_numpy(dtype=float, copy=True)
        X[:, self.share] = np.clip(np.nan_to_num(X[:, self.share], nan=0.0), 0.0, 1.0)
        other = ~self.share
        if other.any():
            Y = X[:, other]
            Y = np.where(np.isnan(Y), self.fill, Y)
            Y[:, self.log] = np.log1p(np.maximum(Y[:, self.log], 0.0))
            Y = (Y - self.center) / self.scale * self.spread
            X[:, other] = np.maximum(Y, 0.0) if self.method == "nmf" else Y
        return X


def learn_scaling(features: pd.DataFrame, feature_groups: Sequence[str], method: str = "kmeans") -> Scaling:
    """The columns of ``feature_groups`` that vary, and how to scale them (see :class:`Scaling`).

    Examples
    --------
    >>> f = pd.DataFrame({"share_page__a": [0.0, 0.5, 1.0], "events": [1, 10, 100], "share_page__b": [1.0, 1.0, 1.0]})
    >>> s = learn_scaling(f, ["content", "activity"])
    >>> s.columns, s.dropped, s.share.tolist()
    (['share_page__a', 'events'], ['share_page__b'], [True, False])
    """
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
    Z = Y.to_numpy(float)
    if other:
        Z[:, log] = np.log1p(Z[:, log])
    if method == "nmf":
        center, scale = Z.min(axis=0), np.ptp(Z, axis=0)
    else:
        center, scale = Z.mean(axis=0), Z.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    share_std = X[[c for c, s in zip(columns, share) if s]].std().to_numpy()
    # A standardized feature weighs like a typical share feature.
    spread = float(np.median(share_std)) if share_std.size else 1.0
    return Scaling(columns, constant, share, fill, log, center, scale, spread, method)


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


def choose_k(X: np.ndarray, candidates: Sequence[int], *, method: str = "kmeans", random_state: int = 0,
             selection_sample: int = 20_000, silhouette_sample: int = 5_000, tolerance: float = 0.02,
             minibatch_above: int = 100_000) -> tuple[int, pd.DataFrame]:
    """The number of personas, and the evidence: ``n_personas``, ``silhouette``, ``chosen`` per candidate.

    Each candidate is fitted on the same random sample of ``selection_sample``
    rows and scored by :func:`sampled_silhouette`; the chosen k is the smallest
    within ``tolerance`` of the best (a sampled silhouette varies by about
    0.003, and fewer personas are easier to act on).

    Examples
    --------
    >>> X = np.r_[np.zeros((20, 1)), np.ones((20, 1)), np.full((20, 1), 5.0)] + np.linspace(0, .05, 60)[:, None]
    >>> choose_k(X, [2, 3, 4])[0]
    3
    """
    n = len(X)
    rng = np.random.default_rng(random_state)
    sample = np.sort(rng.choice(n, size=min(n, selection_sample), replace=False))
    Xs = X[sample]
    scores = []
    for k in candidates:
        _, labels = fit_clusters(Xs, k, method=method, random_state=random_state, minibatch_above=minibatch_above)
        scores.append(sampled_silhouette(Xs, labels, sample=silhouette_sample, random_state=random_state))
    scores = np.array(scores)
    if np.isnan(scores).all():
        raise EventDataError("fit_personas: no candidate number of personas gave two or more groups.")
    best = np.nanmax(scores)
    k = next(k for k, s in zip(candidates, scores) if s >= best - tolerance)
    return k, pd.DataFrame({"n_personas": list(candidates), "silhouette": scores,
                            "chosen": [c == k for c in candidates]})


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
