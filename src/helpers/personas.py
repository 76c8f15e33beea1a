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
"""

from __future__ import annotations

import re
from typing import Sequence

import ibis
import numpy as np
import pandas as pd

from helpers.io import EventDataError, as_ibis

__all__ = ["user_features"]


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
    until = observed_until if observed_until is not None else t.timestamp.max().execute()
    until = pd.Timestamp(until)
    until = until.tz_localize("UTC") if until.tzinfo is None else until.tz_convert("UTC")
    t = t.filter(t.timestamp <= until.to_pydatetime())
    first = t.timestamp.min().over(ibis.window(group_by="user_id"))
    t = t.mutate(_first=first)
    if first_days is not None:
        if first_days <= 0:
            raise EventDataError(f"first_days must be positive, got {first_days}.")
        t = t.filter(t.timestamp < t._first + ibis.interval(days=int(first_days)))
    if "session_id" not in t.columns:
        from helpers.paths import sessionize

        t = sessionize(t)

    counts = t.group_by("event").aggregate(n=t.count()).order_by([ibis.desc("n"), "event"]).execute()
    if counts.empty:
        raise EventDataError("user_features: there are no events (after observed_until and first_days).")
    top = counts["event"].head(top_events).tolist()
    present = set(counts["event"])
    channels = (t.group_by("channel").aggregate(n=t.count()).execute()["channel"].dropna().tolist()
                if "channel" in t.columns else [])

    is_purchase = t.event.isin(list(purchase_events))
    aggs = {
        "events": t.count(),
        "active_days": t.timestamp.date().nunique(),
        "sessions": t.session_id.nunique(),
        "_first_seen": t._first.min(),
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
