"""Behavioural personas: per-user features from events, clustered into a few explainable groups.

Feature semantics (one row per user who has at least one event, index ``user_id``):

- ``events``: events counted; ``active_days``: distinct UTC dates with an event;
  ``sessions``: distinct ``session_id`` values (30-minute sessions when the data
  has none); ``events_per_active_day`` = events / active_days;
- ``tenure_days``: first to last event; ``recency_days``: last event to
  ``observed_until`` (default: the last timestamp in the data);
- ``purchases``: count of ``purchase_events``; ``monetary_value``: the sum of their
  ``value``; ``purchases_per_active_day``;
- ``share_<property>__<value>``: for each of ``properties`` (default ``page``), the
  share of the user's events carrying that property that have ``<value>``
  (e.g. the share of their page views that were ``pricing``), for the
  ``top_values`` most frequent values; 0 for users without such events;
- ``share_event__<name>``: the share of the user's events that are ``<name>``, for
  the ``top_events`` most frequent event types; ``share_channel__<name>``: the
  same for every channel;
- ``days_to__<event>``: days from the first event to the first ``<event>``, for
  each of ``milestones`` present in the data (NaN when never);
- ``mean_survey_score``: the mean ``value`` of ``survey_event`` (NaN without one);
- ``attr__<column>__<value>``: one-hot user attributes, when ``users`` is given.

With ``first_days=7`` only each user's first 7 days of events count (from
their first event): features of new users, usable as early predictors.

Personas (:func:`fit_personas`, :class:`PersonaModel`) cluster users on the
feature groups named in :data:`FEATURE_GROUPS`. By default only the behaviour
*mix* is used (``content``, ``actions`` and ``channels``: what people look at,
what they do, where they come from), not volume, tenure, spend or milestones:
those measure how far along a user is and how long they stayed, which are the
outcomes the funnel and retention analyses break down by persona, so
clustering on them would make those breakdowns circular and split users by
lifecycle stage rather than behaviour. Every feature still appears in the
profile and the names. Share features keep their natural 0-1 scale (a
Euclidean distance between behaviour mixes, in which a rare, noisy event type
weighs little); other features are log-transformed when skewed, standardized,
and scaled to the spread of a typical share feature.
"""

from __future__ import annotations

import re
import warnings
from typing import Mapping, Sequence

import ibis
import numpy as np
import pandas as pd

from helpers.io import US_PER_DAY, EventDataError, as_ibis, epoch_us, to_utc, utc_naive

__all__ = ["DEFAULT_FEATURE_GROUPS", "FEATURE_GROUPS", "PersonaModel", "feature_group", "fit_personas",
           "informative_groups", "kpi_headline",
           "persona_kpis", "persona_table", "save_personas",
           "user_features"]


def _safe(name: str) -> str:
    return re.sub(r"[^0-9A-Za-z_]+", "_", str(name)).strip("_") or "blank"


def user_features(
    events: pd.DataFrame | ibis.Table,
    *,
    users: pd.DataFrame | None = None,
    observed_until: str | pd.Timestamp | None = None,
    first_days: int | None = None,
    top_events: int = 12,
    purchase_events: Sequence[str] = ("purchase", "repeat_purchase"),
    milestones: Sequence[str] = ("first_value", "purchase"),
    survey_event: str = "nps_response",
    properties: Sequence[str] = ("page",),
    top_values: int = 10,
) -> pd.DataFrame:
    """Per-user behaviour features, computed in one aggregation over the events (see the module docstring).

    Examples
    --------
    >>> ev = pd.DataFrame({"user_id": ["a", "a", "a", "b"], "event": ["visit", "purchase", "visit", "visit"],
    ...                    "channel": ["web", "app", "app", "web"], "value": [None, 20.0, None, None],
    ...                    "timestamp": pd.to_datetime(["2025-01-01 00:00", "2025-01-01 01:00", "2025-01-03 00:00",
    ...                                                 "2025-01-02 00:00"], utc=True)})
    >>> f = user_features(ev)
    >>> f.loc["a", ["events", "active_days", "purchases", "monetary_value", "share_channel__app"]].tolist()
    [3.0, 2.0, 1.0, 20.0, 0.6666666666666666]
    >>> round(float(f.loc["a", "days_to__purchase"]), 4), float(f.loc["b", "recency_days"])
    (0.0417, 1.0)
    """
    t = as_ibis(events)
    until = None
    if observed_until is not None:
        until = to_utc(observed_until)
        t = t.filter(t.timestamp <= until.to_pydatetime())
    elif first_days is not None:  # recency is measured to the data's end, not to the end of the first days
        until = to_utc(t.timestamp.max().execute())
    # else: the data's last timestamp, taken from the users' last_seen below (no separate scan)
    if first_days is not None:
        if first_days <= 0:
            raise EventDataError(f"first_days must be positive, got {first_days}.")
        # The window over every user's events is costly (1.5 s at 12.8M events): only when it is needed.
        t = t.mutate(_first=t.timestamp.min().over(ibis.window(group_by="user_id")))
        # On the stored microseconds: adding days to a zoned timestamp is slow on DuckDB (see io.utc_naive).
        t = t.filter(epoch_us(t.timestamp) < epoch_us(t._first) + int(first_days) * US_PER_DAY).drop("_first")
    if "session_id" not in t.columns:
        from helpers.paths import sessionize

        t = sessionize(t)

    counts = t.group_by("event").aggregate(n=t.count()).order_by([ibis.desc("n"), "event"]).execute()
    if counts.empty:
        raise EventDataError("user_features: there are no events (after observed_until and first_days).")
    top = counts["event"].head(top_events).tolist()
    present = set(counts["event"])
    channels = (t.group_by("channel").aggregate(n=t.count()).order_by([ibis.desc("n"), "channel"]).execute()["channel"]
                .dropna().tolist()
                if "channel" in t.columns else [])

    is_purchase = t.event.isin(list(purchase_events))
    aggs = {
        "events": t.count(),
        "active_days": utc_naive(t.timestamp).date().nunique(),
        "sessions": t.session_id.nunique(),
        "_first_seen": t.timestamp.min(),
        "_last_seen": t.timestamp.max(),
        "purchases": is_purchase.cast("int64").sum(),
    }
    if "value" in t.columns:
        aggs["monetary_value"] = t.value.sum(where=is_purchase).fill_null(0)
        if survey_event in present:
            aggs["mean_survey_score"] = t.value.mean(where=t.event == survey_event)
    else:
        aggs["monetary_value"] = ibis.literal(0.0)
    for e in top:
        aggs[f"_n_event__{_safe(e)}"] = (t.event == e).cast("int64").sum()
    for c in channels:
        aggs[f"_n_channel__{_safe(c)}"] = (t.channel == c).cast("int64").sum()
    for m in milestones:
        if m in present:
            aggs[f"_first__{_safe(m)}"] = t.timestamp.min(where=t.event == m)
    prop_values: dict[str, list] = {}
    for prop in [p for p in properties if p in t.columns]:
        vals = t.filter(t[prop].notnull()).group_by(prop).aggregate(n=lambda s: s.count())
        prop_values[prop] = vals.order_by([ibis.desc("n"), prop]).limit(top_values).execute()[prop].tolist()
        aggs[f"_n_{_safe(prop)}"] = t[prop].notnull().cast("int64").sum()
        for v in prop_values[prop]:
            aggs[f"_n_{_safe(prop)}__{_safe(v)}"] = (t[prop] == v).cast("int64").sum()
    raw = t.group_by("user_id").aggregate(**aggs).to_pyarrow().to_pandas()

    f = pd.DataFrame(index=pd.Index(raw["user_id"].astype(str), name="user_id"))
    f["events"] = raw["events"].to_numpy(float)
    f["active_days"] = raw["active_days"].to_numpy(float)
    f["sessions"] = raw["sessions"].to_numpy(float)
    f["events_per_active_day"] = f["events"] / f["active_days"]
    first_seen, last_seen = pd.to_datetime(raw["_first_seen"], utc=True), pd.to_datetime(raw["_last_seen"], utc=True)
    if until is None:
        until = last_seen.max()
    f["tenure_days"] = ((last_seen - first_seen).dt.total_seconds() / 86_400).to_numpy()
    f["recency_days"] = ((until - last_seen).dt.total_seconds() / 86_400).to_numpy()
    f["purchases"] = raw["purchases"].to_numpy(float)
    f["monetary_value"] = raw["monetary_value"].to_numpy(float)
    f["purchases_per_active_day"] = f["purchases"] / f["active_days"]
    for e in top:
        f[f"share_event__{_safe(e)}"] = raw[f"_n_event__{_safe(e)}"].to_numpy(float) / f["events"].to_numpy()
    for prop, values in prop_values.items():
        with_prop = raw[f"_n_{_safe(prop)}"].to_numpy(float)
        for v in values:
            hits = raw[f"_n_{_safe(prop)}__{_safe(v)}"].to_numpy(float)
            f[f"share_{_safe(prop)}__{_safe(v)}"] = np.divide(hits, with_prop, out=np.zeros_like(hits), where=with_prop > 0)
    for c in channels:
        f[f"share_channel__{_safe(c)}"] = raw[f"_n_channel__{_safe(c)}"].to_numpy(float) / f["events"].to_numpy()
    for m in milestones:
        if m in present:
            when = pd.to_datetime(raw[f"_first__{_safe(m)}"], utc=True)
            f[f"days_to__{_safe(m)}"] = ((when - first_seen).dt.total_seconds() / 86_400).to_numpy()
    if "mean_survey_score" in raw.columns:
        f["mean_survey_score"] = raw["mean_survey_score"].to_numpy(float)
    if users is not None:
        f = f.join(_one_hot(users), how="left")
    return f.sort_index()


def _one_hot(users: pd.DataFrame) -> pd.DataFrame:
    if "user_id" not in users.columns:
        raise EventDataError(f"users: a user table needs a 'user_id' column (columns: {', '.join(users.columns)}).")
    table = users.set_index(users["user_id"].astype(str)).drop(columns="user_id")
    out = pd.DataFrame(index=table.index)
    for col in table.columns:
        values = table[col]
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            out[f"attr__{_safe(col)}"] = values.astype(float)
        else:
            dummies = pd.get_dummies(values.astype("string").fillna("(none)"), dtype=float)
            dummies.columns = [f"attr__{_safe(col)}__{_safe(v)}" for v in dummies.columns]
            out = out.join(dummies)
    out.index.name = "user_id"
    return out


# ----------------------------------------------------------------------------- personas

FEATURE_GROUPS: dict[str, str] = {
    "content": "share of each property value, e.g. share_page__pricing",
    "actions": "share of each event type (share_event__*)",
    "channels": "share of each channel (share_channel__*)",
    "activity": "events, active_days, sessions, events_per_active_day, tenure_days, recency_days",
    "spend": "purchases, monetary_value, purchases_per_active_day",
    "speed": "days to each milestone (days_to__*)",
    "satisfaction": "mean_survey_score",
    "attributes": "user attributes (attr__*)",
    "other": "any other numeric column",
}
DEFAULT_FEATURE_GROUPS: tuple[str, ...] = ("content", "actions", "channels")
_MIX_GROUPS = {"content", "actions", "channels"}
_ACTIVITY = {"events", "active_days", "sessions", "events_per_active_day", "tenure_days", "recency_days"}
_SPEND = {"purchases", "monetary_value", "purchases_per_active_day"}
_READABLE = {"monetary_value": "spend", "mean_survey_score": "survey score", "recency_days": "days since last seen",
             "tenure_days": "tenure", "active_days": "active days", "events_per_active_day": "events per active day",
             "purchases_per_active_day": "purchases per active day"}


def feature_group(column: str) -> str:
    """The feature group (a key of :data:`FEATURE_GROUPS`) a :func:`user_features` column belongs to.

    Examples
    --------
    >>> [feature_group(c) for c in ["share_page__deals", "share_event__search", "share_channel__app", "tenure_days"]]
    ['content', 'actions', 'channels', 'activity']
    """
    if column.startswith("share_event__"):
        return "actions"
    if column.startswith("share_channel__"):
        return "channels"
    if column.startswith("share_"):
        return "content"
    if column.startswith("days_to__"):
        return "speed"
    if column.startswith("attr__"):
        return "attributes"
    if column in _ACTIVITY:
        return "activity"
    if column in _SPEND:
        return "spend"
    if column == "mean_survey_score":
        return "satisfaction"
    return "other"


def _readable(column: str) -> str:
    """'share_page__deals' -> 'deals page share', 'share_event__add_to_cart' -> 'add to cart share'."""
    if column.startswith("share_"):
        prop, _, value = column[len("share_"):].partition("__")
        value = value.replace("_", " ")
        return f"{value} share" if prop == "event" else f"{value} {prop.replace('_', ' ')} share"
    if column.startswith("days_to__"):
        return "time to " + column[len("days_to__"):].replace("_", " ")
    if column.startswith("attr__"):
        parts = column[len("attr__"):].split("__")
        return "=".join(parts)
    return _READABLE.get(column, column.replace("_", " "))


def _ratio_text(ratio: float) -> str:
    return f"{ratio:.1f}x" if np.isfinite(ratio) else "n/a"


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
    - ``k_scores_``: silhouette per candidate number of personas (the selection
      evidence) and ``silhouette_`` of the final model, both on random samples;
    - ``columns_`` (features used), ``dropped_features_`` (constant, so unused).

    With ``n_personas=None`` k is chosen in ``k_range`` by silhouette, fitted on
    a random sample of ``selection_sample`` users and scored on ``silhouette_sample``
    of them: the smallest k whose silhouette is within ``tolerance`` of the best
    (a parsimony rule: a sampled silhouette varies by about 0.003, and fewer personas are
    easier to act on). Above ``minibatch_above`` users the final fit uses
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
                 minibatch_above: int = 100_000) -> None:
        if method not in ("kmeans", "nmf"):
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

    def __repr__(self) -> str:
        fitted = f", fitted on {len(self.labels_):,} users" if hasattr(self, "labels_") else ""
        return f"<PersonaModel k={getattr(self, 'n_personas_', self.n_personas)}, method={self.method!r}{fitted}>"

    # --- preparing the matrix
    def _check(self, features: pd.DataFrame) -> None:
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

    def _matrix(self, features: pd.DataFrame) -> np.ndarray:
        missing = [c for c in self.columns_ if c not in features.columns]
        if missing:
            raise EventDataError(f"The features lack column(s) the model was fitted on: {', '.join(missing[:5])}"
                                 f"{' ...' if len(missing) > 5 else ''}. Compute them with the same user_features settings.")
        X = features[self.columns_].to_numpy(dtype=float, copy=True)
        X[:, self._share] = np.clip(np.nan_to_num(X[:, self._share], nan=0.0), 0.0, 1.0)
        other = ~self._share
        if other.any():
            Y = X[:, other]
            Y = np.where(np.isnan(Y), self._fill, Y)
            Y[:, self._log] = np.log1p(np.maximum(Y[:, self._log], 0.0))
            Y = (Y - self._center) / self._scale * self._spread
            X[:, other] = np.maximum(Y, 0.0) if self.method == "nmf" else Y
        return X

    def _learn_scaling(self, features: pd.DataFrame) -> None:
        wanted = [c for c in features.columns if feature_group(c) in self.feature_groups]
        if not wanted:
            present = sorted({feature_group(c) for c in features.columns})
            raise EventDataError(f"fit_personas: no feature of the groups {', '.join(self.feature_groups)}; "
                                 f"the features have: {', '.join(present)}.")
        X = features[wanted].astype(float)
        constant = [c for c in wanted if X[c].nunique(dropna=False) <= 1]
        self.dropped_features_ = constant
        self.columns_ = [c for c in wanted if c not in constant]
        if not self.columns_:
            raise EventDataError(f"fit_personas: every feature used is constant ({', '.join(constant[:5])}"
                                 f"{' ...' if len(constant) > 5 else ''}): there is nothing to tell users apart.")
        if constant:
            warnings.warn(f"fit_personas: {len(constant)} constant feature(s) left out ({', '.join(constant[:5])}"
                          f"{' ...' if len(constant) > 5 else ''}): they cannot tell users apart.", UserWarning, stacklevel=3)
        self._share = np.array([feature_group(c) in _MIX_GROUPS for c in self.columns_])
        other = [c for c, s in zip(self.columns_, self._share) if not s]
        Y = X[other]
        # Never reaching a milestone is slower than everyone who did: fill with the slowest observed.
        self._fill = np.array([Y[c].max() if c.startswith("days_to__") else Y[c].median() for c in other], dtype=float)
        self._fill = np.nan_to_num(self._fill, nan=0.0)
        Y = Y.fillna(pd.Series(self._fill, index=other))
        self._log = np.array([bool((Y[c] >= 0).all() and Y[c].skew() > 1) for c in other], dtype=bool)
        Z = Y.to_numpy(float)
        if other:
            Z[:, self._log] = np.log1p(Z[:, self._log])
        if self.method == "nmf":
            self._center, self._scale = Z.min(axis=0), np.ptp(Z, axis=0)
        else:
            self._center, self._scale = Z.mean(axis=0), Z.std(axis=0)
        self._scale = np.where(self._scale > 0, self._scale, 1.0)
        share_std = X[[c for c, s in zip(self.columns_, self._share) if s]].std().to_numpy()
        # A standardized feature weighs like a typical share feature.
        self._spread = float(np.median(share_std)) if share_std.size else 1.0

    # --- clustering
    def _estimator(self, k: int, n: int):
        from sklearn.cluster import KMeans, MiniBatchKMeans
        from sklearn.decomposition import NMF

        if self.method == "nmf":
            init = "nndsvda" if k <= min(n, len(self.columns_)) else "random"  # SVD start needs k <= features
            return NMF(n_components=k, init=init, random_state=self.random_state, max_iter=500)
        if n > self.minibatch_above:
            return MiniBatchKMeans(n_clusters=k, random_state=self.random_state, n_init=3, batch_size=4096)
        return KMeans(n_clusters=k, random_state=self.random_state, n_init=10)

    def _assign(self, estimator, X: np.ndarray) -> np.ndarray:
        if self.method == "nmf":
            return np.asarray(estimator.transform(X)).argmax(axis=1)
        return estimator.predict(X)

    def _fit_labels(self, k: int, X: np.ndarray):
        est = self._estimator(k, len(X))
        if self.method == "kmeans" and len(X) > self.minibatch_above:
            # Minibatch updates from a random start land in poor solutions (ARI 0.61 against 0.84 on the
            # 500k-user sample); starting them from a full k-means on a sample keeps the quality.
            from sklearn.cluster import KMeans

            rng = np.random.default_rng(self.random_state)
            start = KMeans(n_clusters=k, random_state=self.random_state, n_init=10).fit(
                X[rng.choice(len(X), size=min(len(X), 50_000), replace=False)])
            est.set_params(init=start.cluster_centers_, n_init=1)
        if self.method == "nmf":
            labels = np.asarray(est.fit_transform(X)).argmax(axis=1)
        else:
            labels = est.fit(X).labels_
        return est, labels

    def _silhouette(self, X: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> float:
        from sklearn.metrics import silhouette_score

        if len(np.unique(labels)) < 2 or len(np.unique(labels)) >= len(X):
            return float("nan")
        idx = rng.choice(len(X), size=min(len(X), self.silhouette_sample), replace=False)
        if len(np.unique(labels[idx])) < 2:
            return float("nan")
        return float(silhouette_score(X[idx], labels[idx]))

    def fit(self, features: pd.DataFrame) -> "PersonaModel":
        """Learn the scaling, choose k when asked to, cluster, and describe the personas."""
        self._check(features)
        n = len(features)
        if n < 2:
            raise EventDataError("fit_personas: personas need at least 2 users; the features have 1.")
        self._learn_scaling(features)
        X = self._matrix(features)
        distinct = len(np.unique(X, axis=0)) if n <= 200_000 else n
        if self.n_personas is not None and self.n_personas > distinct:
            raise EventDataError(f"fit_personas: {self.n_personas} personas asked for, but the users have only "
                                 f"{distinct} distinct behaviour profile(s) ({n} users).")
        rng = np.random.default_rng(self.random_state)
        if self.n_personas is None:
            lo, hi = self.k_range
            candidates = [k for k in range(max(2, lo), hi + 1) if k < distinct]
            if not candidates:
                raise EventDataError(f"fit_personas: too few distinct users ({distinct}) to choose between "
                                     f"{lo} and {hi} personas; pass n_personas.")
            sample = np.sort(rng.choice(n, size=min(n, self.selection_sample), replace=False))
            Xs = X[sample]
            scores = []
            for k in candidates:
                _, labels = self._fit_labels(k, Xs)
                scores.append(self._silhouette(Xs, labels, np.random.default_rng(self.random_state)))
            scores = np.array(scores)
            if np.isnan(scores).all():
                raise EventDataError("fit_personas: no candidate number of personas gave two or more groups.")
            best = np.nanmax(scores)
            k = next(k for k, s in zip(candidates, scores) if s >= best - self.tolerance)
            self.k_scores_ = pd.DataFrame({"n_personas": candidates, "silhouette": scores,
                                           "chosen": [c == k for c in candidates]})
        else:
            k = int(self.n_personas)
        self.estimator_, raw = self._fit_labels(k, X)
        sizes = np.bincount(raw, minlength=k)
        order = np.lexsort((np.arange(k), -sizes))  # largest first; ties by cluster number (seeded)
        self._relabel = np.empty(k, dtype=int)
        self._relabel[order] = np.arange(k)
        labels = self._relabel[raw]
        self.n_personas_ = k
        self.silhouette_ = self._silhouette(X, labels, np.random.default_rng(self.random_state))
        if self.n_personas is not None:
            self.k_scores_ = pd.DataFrame({"n_personas": [k], "silhouette": [self.silhouette_], "chosen": [True]})
        self.labels_ = pd.Series(labels, index=features.index.astype(str), name="persona")
        self.labels_.index.name = "user_id"
        self._describe(features, X, labels)
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
        self._check(features)
        labels = self._relabel[self._assign(self.estimator_, self._matrix(features))]
        out = pd.Series(labels, index=features.index.astype(str), name="persona")
        out.index.name = "user_id"
        return out

    # --- describing
    def _describe(self, features: pd.DataFrame, X: np.ndarray, labels: np.ndarray) -> None:
        k = self.n_personas_
        numeric = features.astype(float)
        means = numeric.groupby(labels).mean().reindex(range(k))
        overall = numeric.mean()
        users = np.bincount(labels, minlength=k)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = means / overall.where(overall != 0)
        used = set(self.columns_)
        long = means.stack(future_stack=True).rename("mean").reset_index()
        long.columns = ["persona", "feature", "mean"]
        long["ratio"] = ratio.stack(future_stack=True).to_numpy()
        long["overall_mean"] = long["feature"].map(overall)
        long["group"] = long["feature"].map(feature_group)
        long["used"] = long["feature"].isin(used)
        long["users"] = users[long["persona"]]
        long["share"] = long["users"] / len(labels)
        # Distinctiveness: how far the persona's centre is from everyone's, in the clustering space.
        Xc = pd.DataFrame(X, columns=self.columns_).groupby(labels).mean().reindex(range(k))
        spread = X.std(axis=0)
        effect = (Xc - X.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
        self._effect = effect
        names = {}
        for p in range(k):
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
        self.names_ = names
        self._long = long
        self._refresh_names()

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
        """One sentence on how many personas and why (the silhouette evidence)."""
        s = self.k_scores_
        chosen = s[s["chosen"]].iloc[0]
        if len(s) == 1:
            return (f"{self.n_personas_} personas, as asked; silhouette {self.silhouette_:.2f} "
                    "(0 = overlapping groups, 1 = perfectly separated).")
        best = s.loc[s["silhouette"].idxmax()]
        why = ("the best-separated grouping" if best["n_personas"] == chosen["n_personas"] else
               f"k={int(best['n_personas'])} scores {best['silhouette']:.3f}, within {self.tolerance} of it, so the "
               "simpler grouping is kept")
        return (f"{self.n_personas_} personas: silhouette {chosen['silhouette']:.3f} on a sample of users, {why} "
                f"(candidates {int(s['n_personas'].min())}-{int(s['n_personas'].max())}).")

    def summary(self) -> pd.DataFrame:
        """One row per persona: ``persona``, ``name``, ``users``, ``share``, ``description``."""
        sizes = self.profile_.drop_duplicates("persona")[["persona", "name", "users", "share"]].reset_index(drop=True)
        sizes["description"] = sizes["persona"].map(self.names_)
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
        X = self._matrix(features.iloc[idx])
        pca = PCA(n_components=2, random_state=self.random_state).fit(self._matrix(features))
        xy = pca.transform(X)
        labels = self.predict(features.iloc[idx]).to_numpy()
        out = pd.DataFrame({"pc1": xy[:, 0], "pc2": xy[:, 1], "persona": labels,
                            "name": [self.short_names_[p] for p in labels]})
        out.attrs["explained_variance"] = float(pca.explained_variance_ratio_.sum())
        return out


def informative_groups(features: pd.DataFrame, feature_groups: Sequence[str] = DEFAULT_FEATURE_GROUPS,
                       fallback: Sequence[str] = ("activity", "spend")) -> tuple[tuple[str, ...], str]:
    """The feature groups to cluster on, and a sentence when they had to change.

    ``feature_groups`` when at least one of their features varies between
    users; otherwise (a purchases-only log: one event type, no pages, no
    channels) the ``fallback`` groups, with a sentence saying so and what it
    costs: breakdowns of conversion or churn by personas made from activity and
    spend are partly circular.

    Examples
    --------
    >>> f = pd.DataFrame({"share_event__purchase": [1.0, 1.0, 1.0], "events": [1, 4, 9], "monetary_value": [5.0, 1.0, 7.0]})
    >>> informative_groups(f)[0]
    ('activity', 'spend')
    """
    def varies(groups: Sequence[str]) -> bool:
        return any(features[c].nunique(dropna=False) > 1 for c in features.columns if feature_group(c) in groups)

    chosen = tuple(feature_groups)
    if varies(chosen):
        return chosen, ""
    usable = tuple(g for g in fallback if varies([g]))
    if not usable:
        raise EventDataError(f"user_features: no feature of {', '.join(chosen)} or {', '.join(fallback)} varies "
                             "between users: there is nothing to tell them apart.")
    return usable, (f"Every user has the same {', '.join(chosen)} mix in this data (for example a single event type and "
                    f"no pages or channels), so the personas are made from {' and '.join(usable)} instead; read the "
                    "conversion and churn of such personas with care, since they are partly what the personas were "
                    "made from.")


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


def persona_kpis(
    events: pd.DataFrame | ibis.Table,
    labels: pd.Series | pd.DataFrame,
    *,
    purchase_events: Sequence[str] | None = None,
    survey_event: str = "nps_response",
    churn_event: str | None = "subscription_cancelled",
    inactivity: str = "30D",
    observed_until: str | pd.Timestamp | None = None,
    names: Mapping | None = None,
) -> pd.DataFrame:
    """The table a stakeholder asks for first: per persona, conversion, revenue, NPS and churn.

    One row per persona and a last row ``(all)``:

    - ``users``, ``share_of_users``;
    - ``purchasers`` (users with any of ``purchase_events``), ``conversion`` with its
      95% Wilson interval ``conversion_low`` / ``conversion_high``;
    - ``revenue_per_user``: the sum of purchase ``value`` over all the persona's users;

    ``purchase_events=None`` takes ``purchase`` and ``repeat_purchase`` when the
    data has them, else every event that carries a ``value`` except the survey
    answers (``*_response``); with none of those, conversion and revenue are
    unavailable (NaN, and ``.attrs["unavailable"]`` says why), never a crash.
    - ``nps_respondents``, ``nps``: % promoters (9-10) minus % detractors (0-6) of each
      respondent's latest ``survey_event`` score, with a 95% normal interval
      (``nps_low``, ``nps_high``; variance ``(p + d - (p - d)^2) / n``);
    - ``churned``, ``churn_share``: users who did ``churn_event`` or whose last event is
      more than ``inactivity`` before ``observed_until`` (default: the last timestamp).

    ``labels`` is a Series (index ``user_id``, e.g. ``PersonaModel.labels_``) or a
    DataFrame with ``user_id`` and ``persona``; only labelled users count, and a
    labelled user without events counts as a user who did nothing. ``names``
    maps persona to a display name (``PersonaModel.short_names_``).

    Examples
    --------
    >>> ev = pd.DataFrame({"user_id": ["a", "a", "b", "c"], "event": ["purchase", "nps_response", "visit", "nps_response"],
    ...                    "value": [30.0, 10.0, None, 3.0],
    ...                    "timestamp": pd.to_datetime(["2025-03-01", "2025-03-02", "2025-01-01", "2025-03-02"], utc=True)})
    >>> k = persona_kpis(ev, pd.Series({"a": "fans", "b": "others", "c": "others"}))
    >>> k[["persona", "users", "conversion", "revenue_per_user", "nps", "churn_share"]].values.tolist()
    [['fans', 1, 1.0, 30.0, 100.0, 0.0], ['others', 2, 0.0, 0.0, -100.0, 0.5], ['(all)', 3, 0.3333333333333333, 10.0, 0.0, 0.3333333333333333]]
    """
    from helpers.funnel import wilson_interval

    if isinstance(labels, pd.DataFrame):
        if not {"user_id", "persona"} <= set(labels.columns):
            raise EventDataError(f"persona_kpis: labels need 'user_id' and 'persona' columns, got {list(labels.columns)}.")
        labels = labels.set_index("user_id")["persona"]
    labels = labels.copy()
    labels.index = labels.index.astype(str)
    labels.index.name = "user_id"
    if labels.empty:
        raise EventDataError("persona_kpis: no labelled users.")
    t = as_ibis(events)
    until = to_utc(observed_until if observed_until is not None else t.timestamp.max().execute())
    t = t.filter(t.timestamp <= until.to_pydatetime())
    has_value = "value" in t.columns
    purchase_events = _revenue_events(t, purchase_events, has_value)
    # (events are never null: a column that is always false, so the aggregations keep their shape)
    is_purchase = t.event.isin(purchase_events) if purchase_events else t.event.isnull()
    aggs = {"_purchases": is_purchase.cast("int64").sum(), "_last_seen": t.timestamp.max(),
            "_revenue": t.value.sum(where=is_purchase) if has_value else ibis.literal(0.0),
            "_cancelled": (t.event == churn_event).cast("int64").sum() if churn_event else ibis.literal(0)}
    if has_value:
        aggs["_score"] = t.value.argmax(t.timestamp, where=(t.event == survey_event) & t.value.notnull())
    per_user = t.group_by("user_id").aggregate(**aggs).to_pyarrow().to_pandas()
    per_user["user_id"] = per_user["user_id"].astype(str)
    per_user = per_user.set_index("user_id").reindex(labels.index)
    last_seen = pd.to_datetime(per_user["_last_seen"], utc=True)
    quiet = (until - last_seen) > pd.Timedelta(inactivity)
    score = per_user["_score"].astype(float) if has_value else pd.Series(np.nan, index=per_user.index)
    df = pd.DataFrame({
        "persona": labels.to_numpy(),
        "purchaser": per_user["_purchases"].fillna(0).to_numpy() > 0,
        "revenue": per_user["_revenue"].astype(float).fillna(0.0).to_numpy(),
        "respondent": score.notna().to_numpy(),
        "promoter": (score >= 9).to_numpy(),
        "detractor": (score <= 6).to_numpy(),
        "churned": ((per_user["_cancelled"].fillna(0).to_numpy() > 0) | quiet.fillna(False).to_numpy()),
    })
    grouped = df.groupby("persona", sort=True, observed=True).sum(numeric_only=False)
    grouped["users"] = df.groupby("persona", sort=True, observed=True).size()
    total = df.drop(columns="persona").sum().to_frame().T
    total["users"] = len(df)
    total.index = ["(all)"]
    table = pd.concat([grouped, total])
    out = pd.DataFrame({"persona": table.index.astype(object), "users": table["users"].astype(int).to_numpy()})
    if names is not None:
        out.insert(1, "name", [names.get(p, str(p)) for p in table.index[:-1]] + ["(all)"])
    n = out["users"].to_numpy(float)
    out["share_of_users"] = n / len(df)
    out["purchasers"] = table["purchaser"].astype(int).to_numpy()
    out["conversion"] = out["purchasers"] / n
    out["conversion_low"], out["conversion_high"] = wilson_interval(out["purchasers"].to_numpy(float), n)
    out["revenue_per_user"] = table["revenue"].astype(float).to_numpy() / n
    r = table["respondent"].astype(float).to_numpy()
    out["nps_respondents"] = r.astype(int)
    with np.errstate(invalid="ignore", divide="ignore"):
        p, d = table["promoter"].to_numpy(float) / r, table["detractor"].to_numpy(float) / r
        half = 1.959963984540054 * np.sqrt((p + d - (p - d) ** 2) / r)
    out["nps"] = 100 * (p - d)
    out["nps_low"], out["nps_high"] = 100 * (p - d - half), 100 * (p - d + half)
    out["churned"] = table["churned"].astype(int).to_numpy()
    out["churn_share"] = out["churned"] / n
    out = out.reset_index(drop=True)
    unavailable = {}
    if not purchase_events:
        out[["purchasers", "conversion", "conversion_low", "conversion_high", "revenue_per_user"]] = np.nan
        unavailable["conversion"] = unavailable["revenue"] = "no purchase event and no event with a value"
    elif not has_value:
        out["revenue_per_user"] = np.nan
        unavailable["revenue"] = "the events have no value column"
    if not out["nps_respondents"].sum():
        unavailable["nps"] = f"no {survey_event} answers with a score"
    out.attrs.update(purchase_events=list(purchase_events), unavailable=unavailable)
    return out


def _revenue_events(t: ibis.Table, given: Sequence[str] | None, has_value: bool) -> list[str]:
    if given is not None:
        return list(given)
    present = set(t.select("event").distinct().execute()["event"].astype(str))
    named = [e for e in ("purchase", "repeat_purchase") if e in present]
    if named or not has_value:
        return named
    valued = t.filter(t.value.notnull() & ~t.event.endswith("_response")).select("event").distinct().execute()
    return sorted(valued["event"].astype(str))


def persona_table(model: PersonaModel, kpis: pd.DataFrame) -> pd.DataFrame:
    """The table the business acts on: each persona's name, what sets it apart, size and KPIs, and its revenue share.

    ``kpis`` comes from :func:`persona_kpis` on ``model.labels_``; ``revenue_share`` is
    the persona's share of all revenue, next to its ``share`` of users.
    """
    k = kpis[kpis["persona"].astype(str) != "(all)"].copy()
    k["persona"] = k["persona"].astype(int)
    out = model.summary().merge(k.drop(columns=[c for c in ("name", "users") if c in k.columns]), on="persona", how="left")
    revenue = out["revenue_per_user"] * out["users"]
    out["revenue_share"] = revenue / revenue.sum() if revenue.sum() > 0 else np.nan
    return out[["name", "description", "users", "share", "conversion", "revenue_per_user", "revenue_share", "nps",
                "nps_respondents", "churn_share"]]


def kpi_headline(table: pd.DataFrame, kpis: pd.DataFrame | None = None) -> str:
    """One sentence from :func:`persona_table`: the persona worth most and the one most at risk.

    With ``kpis`` (from :func:`persona_kpis`), the measures it could not compute are named, with the reason.

    Examples
    --------
    >>> t = pd.DataFrame({"name": ["A", "B"], "share": [.6, .4], "revenue_share": [.2, .8], "churn_share": [.5, .1],
    ...                   "conversion": [.1, .7]})
    >>> kpi_headline(t)
    'B: 40% of users bring 80% of revenue (70% convert). A churns most: 50% of its users are gone.'
    """
    parts = []
    if table["revenue_share"].notna().any():
        best = table.loc[table["revenue_share"].idxmax()]
        parts.append(f"{best['name']}: {best['share']:.0%} of users bring {best['revenue_share']:.0%} of revenue "
                     f"({best['conversion']:.0%} convert).")
    elif table["conversion"].notna().any():
        best = table.loc[table["conversion"].idxmax()]
        parts.append(f"{best['name']} converts most: {best['conversion']:.0%} ({best['share']:.0%} of users); "
                     "revenue is unavailable.")
    else:
        largest = table.loc[table["share"].idxmax()]
        parts.append(f"{largest['name']} is the largest persona ({largest['share']:.0%} of users); conversion and "
                     "revenue are unavailable (no purchase event and no value in the data).")
    if table["churn_share"].notna().any():
        risk = table.loc[table["churn_share"].idxmax()]
        parts.append(f"{risk['name']} churns most: {risk['churn_share']:.0%} of its users are gone.")
    missing = (kpis.attrs.get("unavailable") or {}) if kpis is not None else {}
    if missing:
        parts.append("Unavailable: " + "; ".join(f"{k} ({why})" for k, why in missing.items()) + ".")
    return " ".join(parts)


def save_personas(model: PersonaModel, path, events_path=None) -> pd.DataFrame:
    """Write ``user_id``, ``persona`` (short name) and ``persona_id`` to Parquet, atomically; returns the table.

    The funnel and retention notebooks read it for their persona breakdowns.
    With ``events_path`` the file is stamped with those events' fingerprint
    (:func:`helpers.io.write_handoff`), so a later run on other data ignores it.
    """
    from helpers.io import write_handoff

    table = pd.DataFrame({"user_id": model.labels_.index.astype(str),
                          "persona": model.labels_.map(model.short_names_).astype(str).to_numpy(),
                          "persona_id": model.labels_.to_numpy()})
    if events_path is not None:
        write_handoff(table, path, events_path)
        return table
    from pathlib import Path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    table.to_parquet(tmp, index=False)
    tmp.replace(path)
    return table
