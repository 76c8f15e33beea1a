"""Per-user lifetimes (:func:`user_lifetimes`): a start, a duration and whether churn was observed or censored.

The rules are in :mod:`helpers.retention`.
"""

from __future__ import annotations

from typing import Any

import ibis
import numpy as np
import pandas as pd

from helpers.io import EventDataError, as_ibis, to_utc, to_utc_series


def user_lifetimes(
    events: pd.DataFrame | ibis.Table,
    *,
    start_event: str | None = None,
    churn_event: str | None = None,
    inactivity: str | pd.Timedelta | None = "30D",
    observed_until: Any = None,
    users: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per user: ``start``, ``last_seen``, ``churned``, ``duration_days`` (see the module docstring).

    Users who never did ``start_event`` are left out (their count is in
    ``attrs["users_without_start"]``). ``inactivity=None`` churns by ``churn_event``
    only. ``users`` (a user table with ``user_id``) adds its columns.

    Examples
    --------
    >>> ev = pd.DataFrame({"user_id": ["a", "a", "b", "b", "c"], "event": ["signup", "visit", "signup", "cancel", "signup"],
    ...                    "timestamp": pd.to_datetime(["2025-01-01", "2025-01-05", "2025-01-01", "2025-01-03",
    ...                                                 "2025-02-20"], utc=True)})
    >>> life = user_lifetimes(ev, churn_event="cancel", inactivity="30D", observed_until="2025-03-01")
    >>> life[["user_id", "churned", "duration_days"]].values.tolist()
    [['a', True, 4.0], ['b', True, 2.0], ['c', False, 9.0]]
    """
    t = as_ibis(events)
    if observed_until is not None:
        until = to_utc(observed_until)
        t = t.filter(t.timestamp <= until.to_pydatetime())
    # else: the data's last timestamp, read below from the users' last_seen (no separate scan)
    aggs = {"last_seen": t.timestamp.max(), "_first": t.timestamp.min()}
    if start_event is not None:
        aggs["start"] = t.timestamp.min(where=t.event == start_event)
    if churn_event is not None:
        aggs["churn_at"] = t.timestamp.min(where=t.event == churn_event)
    per = t.group_by("user_id").aggregate(**aggs)
    df = per.order_by("user_id").to_pyarrow().to_pandas()
    if df.empty:
        raise EventDataError("user_lifetimes: there are no events up to observed_until.")
    df["user_id"] = df["user_id"].astype(str)
    for col in [c for c in ("last_seen", "_first", "start", "churn_at") if c in df.columns]:
        df[col] = to_utc_series(df[col])
    if observed_until is None:
        until = df["last_seen"].max()
    if start_event is None:
        df["start"] = df["_first"]
    if churn_event is not None and start_event is not None:
        # The churn that counts is the first at or after the start (a user may cancel, sign up again and
        # cancel again). The first churn overall is that one unless it came before the start; only then
        # are the churn events read again, for those users.
        early = df["churn_at"].notna() & df["start"].notna() & (df["churn_at"] < df["start"])
        if early.any():
            begin = ibis.memtable(df.loc[early, ["user_id", "start"]].rename(columns={"start": "_begin"}))
            churns = t.filter(t.event == churn_event).join(begin, "user_id")
            churns = churns.filter(churns.timestamp >= churns._begin)
            later = churns.group_by("user_id").aggregate(_at=churns.timestamp.min()).to_pyarrow().to_pandas()
            df.loc[early, "churn_at"] = df.loc[early, "user_id"].map(
                later.assign(user_id=later["user_id"].astype(str)).set_index("user_id")["_at"].pipe(to_utc_series))
    missing = int(df["start"].isna().sum())
    if missing == len(df):
        raise EventDataError(f"user_lifetimes: no user did the start event {start_event!r}.")
    df = df[df["start"].notna()].copy()
    by_event = df["churn_at"].notna() if "churn_at" in df.columns else pd.Series(False, index=df.index)
    if inactivity is not None:
        quiet = (until - df["last_seen"]) > pd.Timedelta(inactivity)
    else:
        quiet = pd.Series(False, index=df.index)
    df["churned"] = by_event | quiet
    end = pd.Series(until, index=df.index)
    end = end.where(~quiet, df["last_seen"])
    if "churn_at" in df.columns:
        end = end.where(~by_event, df["churn_at"])
    df["churn_reason"] = np.select([by_event, quiet], ["churn_event", "inactivity"], "")
    df["duration_days"] = ((end - df["start"]).dt.total_seconds() / 86_400).clip(lower=0)
    out = df[["user_id", "start", "last_seen", "churned", "churn_reason", "duration_days"]].reset_index(drop=True)
    if users is not None:
        if "user_id" not in users.columns:
            raise EventDataError(f"user_lifetimes: the users table needs a 'user_id' column ({list(users.columns)}).")
        extra = users.assign(user_id=users["user_id"].astype(str))
        out = out.merge(extra.drop(columns=[c for c in extra.columns if c in out.columns and c != "user_id"]),
                        on="user_id", how="left")
    out.attrs["users_without_start"] = missing
    out.attrs["observed_until"] = until
    out.attrs["definition"] = (f"start at {'the first ' + start_event if start_event else 'the first event'}; churned "
                               + " or ".join(filter(None, [f"at {churn_event}" if churn_event else "",
                                                           f"after {inactivity} without activity" if inactivity else ""]))
                               + f"; censored at {until:%Y-%m-%d %H:%M} UTC")
    return out
