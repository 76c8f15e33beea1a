"""Per-user features from events (:func:`user_features`) and the groups they belong to.

The feature semantics are in :mod:`helpers.personas`.
"""

from __future__ import annotations

import re
from typing import Sequence

import ibis
import numpy as np
import pandas as pd

from helpers.io import US_PER_DAY, EventDataError, as_ibis, epoch_us, observed_end, to_utc, utc_naive


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
        until = observed_end(t)
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

    # The null-id count rides on the event count's scan: a null user_id would become one "None" person.
    counts = (t.group_by("event").aggregate(n=t.count(), _no_user=t.user_id.isnull().sum())
              .order_by([ibis.desc("n"), "event"]).execute())
    if counts.empty:
        raise EventDataError("user_features: there are no events (after observed_until and first_days).")
    if counts["_no_user"].sum() > 0:
        example = counts.loc[counts["_no_user"] > 0, "event"].iloc[0]
        raise EventDataError(
            f"user_features: column 'user_id' is null on {int(counts['_no_user'].sum()):,} rows (for example on "
            f"{example!r} events); stitch identities first (helpers.identity.stitch_identities) or drop the anonymous rows, "
            "otherwise they would all count as one user.")
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


def informative_groups(features: pd.DataFrame, feature_groups: Sequence[str] | str = DEFAULT_FEATURE_GROUPS,
                       fallback: Sequence[str] = ("activity", "spend")) -> tuple[tuple[str, ...], str]:
    """The feature groups to cluster on, and a sentence when they had to change.

    ``feature_groups`` (``"all"``: every group) when at least one of their features varies between
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

    chosen = tuple(FEATURE_GROUPS) if feature_groups == "all" else tuple(
        [feature_groups] if isinstance(feature_groups, str) else feature_groups)
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
