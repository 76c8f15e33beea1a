"""Engagement trends: is the active base growing or slipping, and how often do people come back?

Lifecycle (:func:`lifecycle`), per calendar period P (UTC; weeks start on Monday):

- ``new``: active in P, and P is the first period they were ever active in;
- ``retained``: active in P and in the period before it;
- ``resurrected``: active in P, not in the period before, but active in some
  earlier period;
- ``dormant``: active in the period before P, not in P (shown as a negative
  number in charts, counted positive here);
- ``quick_ratio`` = (new + resurrected) / dormant: above 1 the active base grows.

``active`` = new + retained + resurrected. A period that had not ended by
``observed_until`` is flagged ``complete=False`` (its counts are partial).

Stickiness (:func:`stickiness`), per period: ``dau_mau`` = the mean number of
daily active users over the period's days / the users active in the period, and
the distribution of active days per user.
"""

from __future__ import annotations

from typing import Any

import ibis
import numpy as np
import pandas as pd

from helpers.io import US_PER_DAY, EventDataError, as_ibis, epoch_us, observed_end, utc_naive

__all__ = ["lifecycle", "lifecycle_headline", "stickiness"]

_FREQ = {"D": "D", "W": "W-MON", "M": "MS"}




def _period_number(ts: ibis.Value, period: str) -> ibis.Value:
    """Consecutive integers per UTC calendar period (days or Monday weeks since the epoch, or months)."""
    if period == "M":
        ts = utc_naive(ts)
        return ts.year() * 12 + ts.month() - 1
    days = epoch_us(ts) // US_PER_DAY
    # 1970-01-01 was a Thursday: shift by 3 days so that weeks start on Monday.
    return days if period == "D" else (days + 3) // 7


def _period_start(number: pd.Series, period: str) -> pd.Series:
    n = number.astype("int64")
    if period == "M":
        return pd.to_datetime(pd.DataFrame({"year": n // 12, "month": n % 12 + 1, "day": 1})).dt.tz_localize("UTC")
    days = n if period == "D" else n * 7 - 3
    return pd.Timestamp("1970-01-01", tz="UTC") + pd.to_timedelta(days, "D")


def _period_end(start: pd.Series, period: str) -> pd.Series:
    if period == "M":
        return start + pd.offsets.MonthBegin(1)
    return start + pd.Timedelta(days=1 if period == "D" else 7)


def lifecycle_headline(lc: pd.DataFrame) -> str:
    """One sentence on :func:`lifecycle`: in the last complete period, who came (new, back) against who went
    dormant, and what the quick ratio says.

    Examples
    --------
    >>> lc = pd.DataFrame({"period": pd.to_datetime(["2025-01-06", "2025-01-13"]), "new": [10, 4], "retained": [0, 6],
    ...                    "resurrected": [0, 1], "dormant": [0, 10], "quick_ratio": [float("nan"), 0.5],
    ...                    "complete": [True, True]})
    >>> lifecycle_headline(lc)
    'In the last complete period (from 2025-01-13), 5 users were new or came back and 10 went dormant: a quick ratio of 0.50, so the active base is shrinking.'
    """
    done = lc[lc["complete"]] if "complete" in lc else lc
    if done.empty:
        return "No period is complete yet, so it is too early to say."
    r = done.iloc[-1]
    came, went = int(r["new"] + r["resurrected"]), int(r["dormant"])
    if not went:
        verdict = "nobody went dormant, so the active base is growing" if came else "nothing moved"
        return f"In the last complete period (from {pd.Timestamp(r['period']):%Y-%m-%d}), {came:,} users were new or came back; {verdict}."
    q = came / went
    verdict = "growing" if q > 1.05 else ("shrinking" if q < 0.95 else "holding steady")
    return (f"In the last complete period (from {pd.Timestamp(r['period']):%Y-%m-%d}), {came:,} users were new or came "
            f"back and {went:,} went dormant: a quick ratio of {q:.2f}, so the active base is {verdict}.")


def lifecycle(events: pd.DataFrame | ibis.Table, *, period: str = "W", observed_until: Any = None) -> pd.DataFrame:
    """New, retained, resurrected and dormant users per period, and the quick ratio (see the module docstring).

    Examples
    --------
    >>> ev = pd.DataFrame({"user_id": ["a", "a", "a", "b", "b"], "event": "x",
    ...                    "timestamp": pd.to_datetime(["2025-01-06", "2025-01-13", "2025-01-27", "2025-01-13",
    ...                                                 "2025-01-20"], utc=True)})
    >>> lc = lifecycle(ev, period="W", observed_until="2025-02-02 23:59")
    >>> lc[["period", "new", "retained", "resurrected", "dormant"]].astype({"period": str}).values.tolist()
    [['2025-01-06 00:00:00+00:00', 1, 0, 0, 0], ['2025-01-13 00:00:00+00:00', 1, 1, 0, 0], ['2025-01-20 00:00:00+00:00', 0, 1, 0, 1], ['2025-01-27 00:00:00+00:00', 0, 0, 1, 1]]
    """
    if period not in _FREQ:
        raise ValueError(f"period must be one of {', '.join(_FREQ)}, got {period!r}.")
    t = as_ibis(events)
    until = observed_end(t, observed_until)
    t = t.filter(t.timestamp <= until.to_pydatetime())
    active = t.select("user_id", p=_period_number(t.timestamp, period)).distinct()
    w = ibis.window(group_by="user_id", order_by="p")
    seq = active.mutate(prev=active.p.lag().over(w), nxt=active.p.lead().over(w), first=active.p.min().over(w))
    kind = ibis.cases((seq.p == seq.first, "new"), (seq.prev == seq.p - 1, "retained"), else_="resurrected")
    # Dormant in P+1: active in P, not in P+1 (nothing next, or a gap). Counted in the same pass as the kinds
    # (one scan of the events instead of two).
    tagged = seq.mutate(kind=kind, gone=(seq.nxt.isnull() | (seq.nxt != seq.p + 1)).cast("int64"))
    counts = tagged.group_by(["p", "kind"]).aggregate(n=tagged.count(), gone=tagged.gone.sum()).to_pyarrow().to_pandas()
    dormant = counts.groupby("p", as_index=False)["gone"].sum().rename(columns={"gone": "n"})
    if counts.empty:
        raise EventDataError("lifecycle: there are no events up to observed_until.")
    wide = counts.pivot_table(index="p", columns="kind", values="n", aggfunc="sum", fill_value=0)
    last = int(_period_number(ibis.literal(until.to_pydatetime()), period).execute())
    periods = pd.RangeIndex(int(wide.index.min()), last + 1)
    wide = wide.reindex(index=periods, columns=["new", "retained", "resurrected"], fill_value=0)
    wide["dormant"] = dormant.set_index(dormant["p"] + 1)["n"].reindex(periods, fill_value=0)
    out = wide.astype("int64").reset_index(names="p")
    out.insert(0, "period", _period_start(out.pop("p"), period).to_numpy())
    out["active"] = out["new"] + out["retained"] + out["resurrected"]
    with np.errstate(divide="ignore", invalid="ignore"):
        out["quick_ratio"] = np.where(out["dormant"] > 0, (out["new"] + out["resurrected"]) / out["dormant"], np.nan)
    out["complete"] = (_period_end(out["period"], period) <= until).to_numpy()
    out.columns.name = None
    return out


def stickiness(events: pd.DataFrame | ibis.Table, *, period: str = "M", observed_until: Any = None) -> pd.DataFrame:
    """Per period: users active, mean DAU, ``dau_mau`` (mean DAU / period actives), and the active-days distribution.

    Columns: ``period``, ``users``, ``mean_dau``, ``dau_mau``, ``median_active_days``,
    ``share_1_day``, ``share_2_3_days``, ``share_4_7_days``, ``share_8_plus_days``, ``complete``.

    Examples
    --------
    >>> ev = pd.DataFrame({"user_id": ["a", "a", "b"], "event": "x",
    ...                    "timestamp": pd.to_datetime(["2025-01-01", "2025-01-02", "2025-01-01"], utc=True)})
    >>> s = stickiness(ev, period="M", observed_until="2025-02-01")
    >>> s[["users", "mean_dau", "median_active_days"]].values.tolist()
    [[2.0, 0.0967741935483871, 1.5]]
    """
    if period not in ("W", "M"):
        raise ValueError(f"period must be 'W' or 'M', got {period!r}.")
    t = as_ibis(events)
    until = observed_end(t, observed_until)
    t = t.filter(t.timestamp <= until.to_pydatetime())
    # p is a function of d, so the distinct rows are the user's active days.
    days = t.select("user_id", d=_period_number(t.timestamp, "D"), p=_period_number(t.timestamp, period)).distinct()
    per_user = days.group_by(["p", "user_id"]).aggregate(n=days.count())
    bins = ibis.cases((per_user.n == 1, "share_1_day"), (per_user.n <= 3, "share_2_3_days"),
                      (per_user.n <= 7, "share_4_7_days"), else_="share_8_plus_days")
    binned = per_user.mutate(b=bins)
    labels = ["share_1_day", "share_2_3_days", "share_4_7_days", "share_8_plus_days"]
    # One pass: totals and the active-days bins together.
    agg = binned.group_by("p").aggregate(users=binned.count(), user_days=binned.n.sum(),
                                         median_active_days=binned.n.median(),
                                         **{label: (binned.b == label).cast("int64").sum() for label in labels})
    out = agg.to_pyarrow().to_pandas().sort_values("p").reset_index(drop=True)
    if out.empty:
        raise EventDataError("stickiness: there are no events up to observed_until.")
    start = _period_start(out["p"], period)
    end = _period_end(start, period)
    n_days = ((end - start).dt.days).to_numpy(float)
    out.insert(0, "period", start.to_numpy())
    out["mean_dau"] = out["user_days"] / n_days
    out["dau_mau"] = out["mean_dau"] / out["users"]
    for label in labels:
        out[label] = out[label].to_numpy(float) / out["users"].to_numpy()
    out["complete"] = (end <= until).to_numpy()
    out["users"] = out["users"].astype(float)
    return out[["period", "users", "median_active_days", "mean_dau", "dau_mau", *labels, "complete"]]
