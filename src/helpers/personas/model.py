""":class:`PersonaModel` and :func:`fit_personas`: settings in the constructor, fit learns, results end in ``_``.

The fitting steps are functions in :mod:`helpers.personas.fitting`.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from helpers.io import EventDataError
from helpers.personas.features import DEFAULT_FEATURE_GROUPS, FEATURE_GROUPS
from helpers.personas.fitting import (
    METHODS,
    assign_clusters,
    check_features,
    choose_k,
    describe_personas,
    fit_clusters,
    learn_scaling,
    order_by_size,
    persona_stability,
    sampled_silhouette,
)


class PersonaModel:
    """Behavioural personas: users clustered on their :func:`user_features`, lifelines-style.

    Settings go in the constructor, :meth:`fit` learns and returns the model, and
    everything learned ends in ``_``:

    - ``labels_``: persona per user (``Series`` named ``persona``, index ``user_id``);
      personas are numbered 0, 1, ... by size, largest first, so labels are stable
      for a fixed ``random_state``;
    - ``profile_``: per persona and feature (tidy): ``users``, ``share``, ``mean``,
      ``overall_mean``, ``ratio`` (mean / overall mean) and whether the feature
      was ``used`` for clustering;
    - ``names_``: persona -> a one-line description made from its most distinctive
      clustering features and its spend, e.g. ``"Deals page focused: 4.3x deals
      page share, 2.0x add to cart share, 0.6x spend"``; edit with :meth:`rename`;
      ``short_names_`` holds the part before the colon;
    - ``k_scores_``: stability and silhouette per candidate number of personas
      (the selection evidence) and ``silhouette_`` of the final model, both on
      random samples;
    - ``stability_``: per persona, the bootstrap Jaccard similarity
      (:func:`~helpers.personas.fitting.persona_stability`; above 0.75 stable,
      below 0.6 not a real pattern), also a column of :meth:`summary`;
    - ``columns_`` (features used), ``dropped_features_`` (constant, so unused), and
      ``scaling_`` (:class:`~helpers.personas.fitting.Scaling`: how features become the
      clustering matrix).

    With ``n_personas=None`` k is chosen in ``k_range`` on a random sample of
    ``selection_sample`` users: the largest k whose subsample stability (``pairs``
    pairs of 80% subsamples) is within ``tolerance`` of the most stable
    (:func:`~helpers.personas.fitting.choose_k` says why). ``group_weighting``
    is ``"columns"`` (every standardized column counts the same; the default,
    chosen on the planted family in the tests) or ``"groups"`` (each feature
    group counts the same however many columns it has). Above ``minibatch_above`` users the final fit uses
    MiniBatchKMeans, started from a full k-means on 50,000 sampled users. ``method="nmf"`` factorises the (non-negative) feature
    matrix into k parts, as Amplitude's Personas does with event-frequency
    profiles, and assigns each user to their largest part.
    See the module docstring for the feature groups and scaling.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> f = pd.DataFrame({"share_page__deals": np.r_[rng.uniform(.7, .9, 60), rng.uniform(0, .2, 40)],
    ...                   "monetary_value": np.r_[rng.uniform(10, 20, 60), rng.uniform(50, 90, 40)]},
    ...                  index=pd.Index([f"u{i}" for i in range(100)], name="user_id"))
    >>> model = PersonaModel(2).fit(f)
    >>> model.labels_.value_counts().sort_index().tolist()
    [60, 40]
    >>> model.names_[0]
    'Deals page focused: 1.5x deals page share, 0.4x spend'
    """

    def __init__(self, n_personas: int | None = None, *, method: str = "kmeans", random_state: int = 0,
                 feature_groups: Sequence[str] | str = DEFAULT_FEATURE_GROUPS, k_range: tuple[int, int] = (2, 8),
                 selection_sample: int = 20_000, silhouette_sample: int = 5_000, tolerance: float = 0.02,
                 pairs: int = 5, resamples: int = 10, group_weighting: str = "groups",
                 minibatch_above: int = 100_000) -> None:
        if method not in METHODS:
            raise ValueError(f"method must be 'kmeans' or 'nmf', got {method!r}.")
        if n_personas is not None and (not isinstance(n_personas, (int, np.integer)) or n_personas < 2):
            raise ValueError(f"n_personas must be an integer of at least 2 (or None to choose), got {n_personas!r}.")
        groups = tuple(FEATURE_GROUPS) if feature_groups == "all" else tuple([feature_groups] if isinstance(
            feature_groups, str) else feature_groups)
        unknown = [g for g in groups if g not in FEATURE_GROUPS]
        if unknown or not groups:
            raise ValueError(f"feature_groups: unknown group(s) {unknown or '(none given)'}; "
                             f"choose from {', '.join(FEATURE_GROUPS)} or 'all'.")
        self.n_personas, self.method, self.random_state = n_personas, method, random_state
        self.feature_groups, self.k_range = groups, k_range
        self.selection_sample, self.silhouette_sample = selection_sample, silhouette_sample
        self.tolerance, self.minibatch_above = tolerance, minibatch_above
        self.pairs, self.resamples, self.group_weighting = pairs, resamples, group_weighting

    def __repr__(self) -> str:
        fitted = f", fitted on {len(self.labels_):,} users" if hasattr(self, "labels_") else ""
        return f"<PersonaModel k={getattr(self, 'n_personas_', self.n_personas)}, method={self.method!r}{fitted}>"

    def _settings(self) -> dict:
        return {"method": self.method, "random_state": self.random_state, "minibatch_above": self.minibatch_above}

    def fit(self, features: pd.DataFrame) -> "PersonaModel":
        """Learn the scaling, choose k when asked to, cluster, and describe the personas (the steps of
        :mod:`helpers.personas.fitting`, in order)."""
        check_features(features)
        n = len(features)
        if n < 2:
            raise EventDataError("fit_personas: personas need at least 2 users; the features have 1.")
        self.scaling_ = learn_scaling(features, self.feature_groups, self.method, self.group_weighting)
        self.columns_, self.dropped_features_ = self.scaling_.columns, self.scaling_.dropped
        X = self.scaling_.transform(features)
        distinct = len(np.unique(X, axis=0)) if n <= 200_000 else n
        if self.n_personas is not None and self.n_personas > distinct:
            raise EventDataError(f"fit_personas: {self.n_personas} personas asked for, but the users have only "
                                 f"{distinct} distinct behaviour profile(s) ({n} users).")
        if self.n_personas is None:
            lo, hi = self.k_range
            candidates = [k for k in range(max(2, lo), hi + 1) if k < distinct]
            if not candidates:
                raise EventDataError(f"fit_personas: too few distinct users ({distinct}) to choose between "
                                     f"{lo} and {hi} personas; pass n_personas.")
            k, self.k_scores_ = choose_k(X, candidates, selection_sample=self.selection_sample,
                                         silhouette_sample=self.silhouette_sample, tolerance=self.tolerance,
                                         pairs=self.pairs, **self._settings())
        else:
            k = int(self.n_personas)
        self.estimator_, raw = fit_clusters(X, k, **self._settings())
        self._relabel = order_by_size(raw, k)
        labels = self._relabel[raw]
        self.n_personas_ = k
        self.silhouette_ = sampled_silhouette(X, labels, sample=self.silhouette_sample, random_state=self.random_state)
        if self.n_personas is not None:
            self.k_scores_ = pd.DataFrame({"n_personas": [k], "stability": [np.nan], "stability_se": [np.nan],
                                           "silhouette": [self.silhouette_], "chosen": [True]})
        self.stability_ = pd.Series(persona_stability(X, labels, k, resamples=self.resamples,
                                                      sample=self.selection_sample, method=self.method,
                                                      random_state=self.random_state),
                                    index=pd.RangeIndex(k, name="persona"), name="stability")
        self.labels_ = pd.Series(labels, index=features.index.astype(str), name="persona")
        self.labels_.index.name = "user_id"
        self._long, self.names_ = describe_personas(features, X, labels, k, self.columns_)
        self._refresh_names()
        return self

    def predict(self, features: pd.DataFrame) -> pd.Series:
        """Assign users (e.g. new ones) to the fitted personas; same columns as the fit.

        Examples
        --------
        >>> f = pd.DataFrame({"share_page__a": [1.0, .9, 0.0, .1]}, index=pd.Index(list("wxyz"), name="user_id"))
        >>> m = PersonaModel(2).fit(f)
        >>> m.predict(pd.DataFrame({"share_page__a": [.95, .05]}, index=["new1", "new2"])).tolist() == [m.labels_["w"], m.labels_["z"]]
        True
        """
        if not hasattr(self, "estimator_"):
            raise RuntimeError("PersonaModel.predict: call fit first.")
        check_features(features)
        labels = self._relabel[assign_clusters(self.estimator_, self.scaling_.transform(features), self.method)]
        out = pd.Series(labels, index=features.index.astype(str), name="persona")
        out.index.name = "user_id"
        return out

    def _refresh_names(self) -> None:
        self.short_names_ = {p: n.split(":")[0].strip() for p, n in self.names_.items()}
        prof = self._long.copy()
        prof.insert(1, "name", prof["persona"].map(self.short_names_))
        self.profile_ = prof[["persona", "name", "users", "share", "feature", "group", "used", "mean", "overall_mean",
                              "ratio"]]

    def rename(self, names: Mapping[int, str]) -> "PersonaModel":
        """Replace persona names (the analyst knows the business better); returns the model.

        A name without a colon keeps the generated evidence after it:
        ``rename({0: "Bargain hunters"})`` gives ``"Bargain hunters: 4.3x deals page share, ..."``.
        """
        for p, name in names.items():
            if p not in self.names_:
                raise KeyError(f"No persona {p!r}; personas are {sorted(self.names_)}.")
            if ":" not in name:
                name = f"{name}:{self.names_[p].split(':', 1)[1]}" if ":" in self.names_[p] else name
            self.names_[p] = name
        self._refresh_names()
        return self

    def selection_summary(self) -> str:
        """One sentence on how many personas and why (the stability evidence), and how stable each is."""
        s = self.k_scores_
        chosen = s[s["chosen"]].iloc[0]
        weakest = float(self.stability_.min())
        stable = (f" Every persona is stable (bootstrap Jaccard at least {weakest:.2f})." if weakest >= 0.75 else
                  f" The least stable persona has a bootstrap Jaccard of {weakest:.2f} (below 0.75): treat it "
                  "as a tendency, not a firm group.")
        if len(s) == 1:
            return (f"{self.n_personas_} personas, as asked; silhouette {self.silhouette_:.2f} "
                    "(0 = overlapping groups, 1 = perfectly separated)." + stable)
        finer = s[s["n_personas"] > chosen["n_personas"]]
        why = (f"the finest grouping that is as reproducible as the best (within {self.tolerance})"
               + (f"; {int(finer['n_personas'].iloc[0])} personas drop to {finer['stability'].iloc[0]:.2f}"
                  if len(finer) else ""))
        return (f"{self.n_personas_} personas: the same grouping comes back from random 80% subsamples of the users "
                f"(stability {chosen['stability']:.2f}, adjusted Rand index between subsamples), {why} "
                f"(candidates {int(s['n_personas'].min())}-{int(s['n_personas'].max())})." + stable)

    def groups_summary(self) -> str:
        """One sentence: which feature groups the personas were clustered on, and what that means for the
        breakdowns by persona (the circularity argument of :mod:`helpers.personas`)."""
        from helpers.personas.features import FEATURE_GROUPS

        used = [g for g in FEATURE_GROUPS if g in self.feature_groups]
        outcomes = [g for g in used if g in ("activity", "spend", "speed", "satisfaction")]
        text = f"Clustered on {', '.join(used)} ({len(self.columns_)} features)."
        if not outcomes:
            return (text + " That is behaviour only: how much people do, spend, how fast they get there and how "
                    "long they stay are left out, so the conversion, revenue and churn by persona below are "
                    "findings, not the definition of the personas. To group by volume and spend as well, "
                    "set feature_groups=\"all\".")
        return (text + f" The {', '.join(outcomes)} features are part of the definition, so differences in "
                "conversion, revenue or churn between personas are partly built in; the default "
                "(content, actions, channels) avoids that.")

    def who_headline(self) -> str:
        """One sentence: the largest and smallest persona, and the most distinctive trait of any persona."""
        s = self.summary().sort_values("users", ascending=False)
        if s.empty:
            return "No personas were found."
        big, small = s.iloc[0], s.iloc[-1]
        text = f"{len(s)} personas; the largest is {big['name']} ({big['share']:.0%} of users)"
        if len(s) > 1:
            text += f", the smallest {small['name']} ({small['share']:.0%})"
        ratio = self.profile_matrix("ratio").replace([np.inf, -np.inf], np.nan)
        if ratio.notna().any().any():
            persona, feature = ratio.stack().idxmax()
            from helpers.personas.features import _readable

            text += (f". The sharpest difference: {persona} users have {ratio.loc[persona, feature]:.1f} times the "
                     f"average {_readable(feature)}")
        return text + "."

    def summary(self) -> pd.DataFrame:
        """One row per persona: ``persona``, ``name``, ``users``, ``share``, ``description``, ``stability``."""
        sizes = self.profile_.drop_duplicates("persona")[["persona", "name", "users", "share"]].reset_index(drop=True)
        sizes["description"] = sizes["persona"].map(self.names_)
        sizes["stability"] = sizes["persona"].map(self.stability_)
        return sizes

    def profile_matrix(self, value: str = "ratio", *, used_only: bool = True) -> pd.DataFrame:
        """Personas (rows, by name) x features (columns): ``value`` is ``"ratio"`` or ``"mean"``."""
        prof = self.profile_[self.profile_["used"]] if used_only else self.profile_
        wide = prof.pivot(index="persona", columns="feature", values=value)
        wide.index = [self.short_names_[p] for p in wide.index]
        return wide[[c for c in self.profile_["feature"].drop_duplicates() if c in wide.columns]]

    def projection(self, features: pd.DataFrame, *, sample: int = 3_000) -> pd.DataFrame:
        """A 2-D PCA view of the clustering space on a random sample of users, for a scatter plot.

        Returns ``pc1``, ``pc2``, ``persona``, ``name`` (no user ids), and the share of
        variance the two axes keep in ``attrs["explained_variance"]``.
        """
        from sklearn.decomposition import PCA

        rng = np.random.default_rng(self.random_state)
        idx = np.sort(rng.choice(len(features), size=min(sample, len(features)), replace=False))
        X = self.scaling_.transform(features.iloc[idx])
        pca = PCA(n_components=2, random_state=self.random_state).fit(self.scaling_.transform(features))
        xy = pca.transform(X)
        labels = self.predict(features.iloc[idx]).to_numpy()
        out = pd.DataFrame({"pc1": xy[:, 0], "pc2": xy[:, 1], "persona": labels,
                            "name": [self.short_names_[p] for p in labels]})
        out.attrs["explained_variance"] = float(pca.explained_variance_ratio_.sum())
        return out


def fit_personas(features: pd.DataFrame, n_personas: int | None = None, *, method: str = "kmeans",
                 random_state: int = 0, **settings) -> PersonaModel:
    """Fit a :class:`PersonaModel` (see there for what it learns); ``settings`` go to its constructor.

    Examples
    --------
    >>> f = pd.DataFrame({"share_channel__app": [1.0, .9, .1, 0.0, .05]},
    ...                  index=pd.Index(list("abcde"), name="user_id"))
    >>> model = fit_personas(f, 2)
    >>> model.labels_.tolist()  # persona 0 is the largest
    [1, 1, 0, 0, 0]
    """
    return PersonaModel(n_personas, method=method, random_state=random_state, **settings).fit(features)
