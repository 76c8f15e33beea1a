"""Retention: cohort tables that know which cells are incomplete, and survival analysis that handles censoring.

Cohort tables (:func:`cohort_retention`)
----------------------------------------
- A user's cohort is the calendar period (``"D"``, ``"W"`` starting on
  ``week_start``, ``"M"``; UTC) of their first ``cohort_event`` (any event when
  None). With ``cohort_type="recurring"`` a user joins every period in which they
  did the cohort event.
- Offset k counts calendar periods after the cohort period. ``mode="on"``: the
  user was active (did any ``return_event``; any event when None) in period
  cohort + k. ``mode="on_or_after"``: active in that period or any later one.
- ``counts`` has one row per cohort and one column per offset; column 0 is the
  cohort size. ``rates`` = counts / cohort size. A cell whose period had not
  ended by ``observed_until`` (default: the last timestamp) is incomplete: NaN in
  ``rates`` and True in ``incomplete``, never a zero. ``average`` weights each
  offset's rate by cohort size over the cohorts complete at that offset.

Lifetimes and survival
----------------------
- :func:`user_lifetimes`: ``start`` is a user's first event (or first
  ``start_event``). A user has churned when ``churn_event`` happened at or after
  the start, or when their last activity is more than ``inactivity`` before
  ``observed_until``. A churned user's duration runs from start to the first
  churn event (or, churned by inactivity, to their last activity); everyone else
  is censored at ``observed_until``.
- :func:`survival_curves`: Kaplan-Meier per group (lifelines), medians and
  survival at 7/30/90 days with intervals, and a multivariate log-rank test.
- :func:`hazard_ratios`: a Cox proportional-hazards model (lifelines) with
  categorical covariates one-hot against a named baseline.
- :func:`retention_drivers`: behaviours in a user's first days that predict
  staying, as a landmark analysis: only users still there at day ``first_days``
  count, and their time is measured from that day, so that doing something in
  the first week is not credited with having survived the first week.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import ibis
import numpy as np
import pandas as pd

from helpers.io import US_PER_DAY, EventDataError, as_ibis, epoch_us, to_utc, to_utc_series, utc_naive

__all__ = ["HEALTH_WEIGHTS", "RISK_FEATURES", "HazardResult", "RetentionTable", "RiskResult", "SurvivalResult",
           "churn_risk", "cohort_retention", "hazard_ratios", "health_score", "retention_drivers", "risk_by_segment",
           "risk_factor_counts", "survival_curves", "user_lifetimes"]

DAY = pd.Timedelta(days=1)
_PERIODS = {"D": "day", "W": "week", "M": "month"}
_WEEK_STARTS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _observed_until(t: ibis.Table, observed_until: Any) -> pd.Timestamp:
    if observed_until is not None:
        return to_utc(observed_until)
    last = t.timestamp.max().execute()
    if last is None or pd.isna(last):
        raise EventDataError("There are no events.")
    return to_utc(last)


# ----------------------------------------------------------------------------- cohort tables


@dataclass
class RetentionTable:
    """Cohort retention: ``counts``, ``rates`` and ``incomplete`` (cohort x offset), and ``average`` per offset.

    With ``by``, the index is (segment, cohort) and ``average`` has one row per segment.
    """

    counts: pd.DataFrame
    rates: pd.DataFrame
    incomplete: pd.DataFrame
    average: pd.DataFrame
    period: str
    mode: str
    observed_until: pd.Timestamp
    by: str | None = None

    def headline(self, offset: int = 1) -> str:
        """One sentence: the average retention at ``offset`` periods and the range over complete cohorts."""
        avg = self.average
        if offset not in avg.columns or self.by is not None:
            offset = 1 if 1 in avg.columns else 0
        rate = float(avg[offset].iloc[0])
        col = self.rates[offset].dropna()
        unit = _PERIODS[self.period]
        kind = "active in" if self.mode == "on" else "active in or after"
        span = f" (cohorts range {col.min():.0%}-{col.max():.0%})" if len(col) > 1 else ""
        return (f"On average {rate:.0%} of a cohort is {kind} {unit} {offset} after joining{span}, "
                f"over the {len(col)} cohort(s) complete at that point.")


def _truncate(ts: ibis.Value, period: str, week_start: str) -> ibis.Value:
    """The start of ``ts``'s UTC calendar period, as a timestamp without time zone (see ``io.utc_naive``)."""
    ts = utc_naive(ts)
    if period == "W":
        shift = _WEEK_STARTS.index(week_start)  # DuckDB weeks start on Monday
        if shift:
            return (ts - ibis.interval(days=shift)).truncate("W") + ibis.interval(days=shift)
        return ts.truncate("W")
    return ts.truncate(period)


def _offset(later: ibis.Value, start: ibis.Value, period: str) -> ibis.Value:
    """Whole periods between two period starts (both truncated the same way)."""
    if period == "M":
        return (later.year() * 12 + later.month()) - (start.year() * 12 + start.month())
    days = (later.epoch_seconds() - start.epoch_seconds()) / 86_400
    return (days if period == "D" else days / 7).round().cast("int64")


def _period_bounds(starts: pd.Series, period: str) -> pd.Series:
    """End (exclusive) of each period that starts at ``starts``."""
    if period == "M":
        return starts + pd.offsets.MonthBegin(1)
    return starts + (DAY if period == "D" else 7 * DAY)


def cohort_retention(
    events: pd.DataFrame | ibis.Table,
    *,
    period: str = "W",
    cohort_event: str | None = None,
    return_event: str | Sequence[str] | None = None,
    mode: str = "on",
    cohort_type: str = "first_time",
    week_start: str = "monday",
    observed_until: Any = None,
    by: str | pd.Series | None = None,
) -> RetentionTable:
    """Cohort retention table with incomplete cells marked (see the module docstring for the rules).

    Examples
    --------
    >>> ev = pd.DataFrame({"user_id": ["a", "a", "b", "b", "c"], "event": ["visit"] * 5,
    ...                    "timestamp": pd.to_datetime(["2025-01-06", "2025-01-14", "2025-01-07", "2025-01-22",
    ...                                                 "2025-01-13"], utc=True)})
    >>> r = cohort_retention(ev, period="W", observed_until="2025-01-27")
    >>> r.counts.to_dict("index")   # doctest: +NORMALIZE_WHITESPACE
    {Timestamp('2025-01-06 00:00:00+0000', tz='UTC'): {0: 2, 1: 1, 2: 1, 3: 0},
     Timestamp('2025-01-13 00:00:00+0000', tz='UTC'): {0: 1, 1: 0, 2: 0, 3: 0}}
    >>> r.rates.iloc[1].tolist()  # the week of Jan 27 has not ended: unknown, not zero
    [1.0, 0.0, nan, nan]
    """
    if period not in _PERIODS:
        raise ValueError(f"period must be one of {', '.join(_PERIODS)}, got {period!r}.")
    if mode not in ("on", "on_or_after"):
        raise ValueError(f"mode must be 'on' or 'on_or_after', got {mode!r}.")
    if cohort_type not in ("first_time", "recurring"):
        raise ValueError(f"cohort_type must be 'first_time' or 'recurring', got {cohort_type!r}.")
    if week_start not in _WEEK_STARTS:
        raise ValueError(f"week_start must be one of {', '.join(_WEEK_STARTS)}, got {week_start!r}.")
    t = as_ibis(events)
    until = _observed_until(t, observed_until)
    t = t.filter(t.timestamp <= until.to_pydatetime())
    seg_name = None
    if isinstance(by, str):
        if by not in t.columns:
            raise EventDataError(f"cohort_retention: by={by!r} is not a column of the events ({', '.join(t.columns)}).")
        seg_name = by
    elif by is not None:
        seg_name = by.name or "segment"

    t = t.select(*dict.fromkeys(["user_id", "event", "timestamp"] + ([by] if isinstance(by, str) else [])))
    returns = t if return_event is None else t.filter(
        t.event.isin([return_event] if isinstance(return_event, str) else list(return_event)))
    active = returns.select("user_id", _a=_truncate(returns.timestamp, period, week_start)).distinct()
    starters = t if cohort_event is None else t.filter(t.event == cohort_event)
    starters = starters.mutate(_p=_truncate(starters.timestamp, period, week_start))
    if cohort_event is None and return_event is None and not isinstance(by, str):
        # Any event starts and any event returns: the cohorts follow from the active periods (2M rows
        # for 12.8M events), so the events are read once.
        cohorts = (active.group_by("user_id").aggregate(_p=active._a.min()) if cohort_type == "first_time"
                   else active.select("user_id", _p=active._a))
    elif cohort_type == "first_time":
        first = starters.group_by("user_id").aggregate(_p=starters._p.min(), _first=starters.timestamp.min())
        cohorts = first
        if isinstance(by, str):  # first touch: the value at the user's first cohort event
            at_first = starters.filter(starters[by].notnull()).group_by("user_id").aggregate(
                _seg=starters[by].argmin(starters.timestamp))
            cohorts = cohorts.left_join(at_first, "user_id").select("user_id", "_p", "_seg")
        else:
            cohorts = cohorts.select("user_id", "_p")
    else:
        if isinstance(by, str):
            cohorts = starters.group_by(["user_id", "_p"]).aggregate(_seg=starters[by].argmin(starters.timestamp))
        else:
            cohorts = starters.select("user_id", "_p").distinct()
    joined = cohorts.join(active, "user_id").filter(lambda x: x._a >= x._p)
    joined = joined.mutate(_k=_offset(joined._a, joined._p, period))
    keys = ["_p"] + (["_seg"] if isinstance(by, str) else [])
    if mode == "on":
        # (user, cohort period) and (user, active period) are both unique, so a row is one user at one offset.
        per = joined.group_by(keys + ["_k"]).aggregate(n=joined.count())
    else:
        last = joined.group_by(keys + ["user_id"]).aggregate(_k=joined._k.max())
        per = last.group_by(keys + ["_k"]).aggregate(n=last.count())
    # One query for the cells and the cohort sizes (offset -1), so the events are scanned once.
    size_rows = cohorts.group_by(keys).aggregate(_k=ibis.literal(-1, "int64"), n=cohorts.count())
    both = per.select(*keys, _k=per._k.cast("int64"), n=per.n.cast("int64")).union(
        size_rows.select(*keys, "_k", n=size_rows.n.cast("int64"))).to_pyarrow().to_pandas()
    sizes = both[both["_k"] == -1].drop(columns="_k").rename(columns={"n": "size"}).reset_index(drop=True)
    cells = both[both["_k"] >= 0].reset_index(drop=True)
    if sizes.empty:
        raise EventDataError(f"cohort_retention: no user did the cohort event {cohort_event!r}.")
    for frame in (sizes, cells):
        frame["_p"] = pd.to_datetime(frame["_p"]).dt.tz_localize("UTC") if pd.to_datetime(
            frame["_p"]).dt.tz is None else pd.to_datetime(frame["_p"]).dt.tz_convert("UTC")
    return _assemble(sizes, cells, keys, period, mode, until, seg_name, by if not isinstance(by, str) else None,
                     cohorts if (by is not None and not isinstance(by, str)) else None, joined)


def _assemble(sizes, cells, keys, period, mode, until, seg_name, user_segments, cohorts, joined) -> RetentionTable:
    if user_segments is not None:
        seg = user_segments.copy()
        seg.index = seg.index.astype(str)
        per_user = cohorts.to_pyarrow().to_pandas()
        per_user["_seg"] = per_user["user_id"].astype(str).map(seg)
        if mode == "on":
            act = joined.select("user_id", "_p", "_k").distinct().to_pyarrow().to_pandas()
        else:
            act = joined.group_by(["user_id", "_p"]).aggregate(_k=joined._k.max()).to_pyarrow().to_pandas()
        act["_seg"] = act["user_id"].astype(str).map(seg)
        for frame in (per_user, act):
            frame["_seg"] = frame["_seg"].astype(object).where(frame["_seg"].notna(), "(none)")
            p = pd.to_datetime(frame["_p"])
            frame["_p"] = p.dt.tz_localize("UTC") if p.dt.tz is None else p.dt.tz_convert("UTC")
        keys = ["_p", "_seg"]
        sizes = per_user.groupby(keys).size().rename("size").reset_index()
        cells = act.groupby(keys + ["_k"]).size().rename("n").reset_index()
    elif "_seg" in keys:
        for frame in (sizes, cells):
            frame["_seg"] = frame["_seg"].astype(object).where(frame["_seg"].notna(), "(none)")
    index_keys = (["_seg", "_p"] if "_seg" in keys else ["_p"])
    sizes = sizes.set_index(index_keys)["size"].sort_index()
    starts = pd.Series(sizes.index.get_level_values("_p"), index=sizes.index)
    first_start = starts.min()
    # Offsets up to the one that reaches the period holding observed_until, from the earliest cohort.
    all_periods = pd.Series(pd.date_range(first_start, until, freq={"D": "D", "W": "7D", "M": "MS"}[period]))
    max_k = len(all_periods) - 1 if period != "M" else (until.year * 12 + until.month) - (first_start.year * 12 + first_start.month)
    offsets = list(range(0, max(max_k, 0) + 1))
    counts = pd.DataFrame(0, index=sizes.index, columns=offsets, dtype="int64")
    if len(cells):
        pivot = cells.pivot_table(index=index_keys, columns="_k", values="n", aggfunc="sum", fill_value=0)
        pivot = pivot.reindex(index=sizes.index, columns=offsets, fill_value=0)
        counts = pivot.astype("int64")
    if mode == "on_or_after":  # active at k or later = last active offset >= k
        counts = counts.iloc[:, ::-1].cumsum(axis=1).iloc[:, ::-1]
    counts[0] = sizes.to_numpy()
    # The period cohort + k ends at start(cohort + k) + one period; before observed_until it is complete.
    cell_start = {k: (starts + pd.offsets.MonthBegin(k) if period == "M" else
                      starts + k * (DAY if period == "D" else 7 * DAY)) for k in offsets}
    incomplete = pd.DataFrame({k: (_period_bounds(cell_start[k], period) > until).to_numpy() for k in offsets},
                              index=sizes.index)
    rates = counts.div(sizes, axis=0).astype(float).mask(incomplete)
    group_keys = ["_seg"] if "_seg" in index_keys else None
    complete_counts = counts.where(~incomplete, 0)
    complete_sizes = (~incomplete).mul(sizes, axis=0)
    if group_keys:
        num, den = complete_counts.groupby(level="_seg").sum(), complete_sizes.groupby(level="_seg").sum()
    else:
        num, den = complete_counts.sum().to_frame("all").T, complete_sizes.sum().to_frame("all").T
    average = (num / den.where(den > 0)).astype(float)
    names = {"_p": "cohort", "_seg": seg_name or "segment"}
    for frame in (counts, rates, incomplete):
        frame.index = frame.index.set_names([names[n] for n in frame.index.names])
        frame.columns.name = "offset"
    average.index.name = seg_name if group_keys else None
    average.columns.name = "offset"
    return RetentionTable(counts, rates, incomplete, average, period, mode, until, seg_name)


# ----------------------------------------------------------------------------- lifetimes


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


# ----------------------------------------------------------------------------- survival


@dataclass
class SurvivalResult:
    """Kaplan-Meier curves per group.

    ``table``: group, timeline (days), survival, ci_low, ci_high, at_risk, events
    (churns at that time), censored. ``medians``: group, users, churned,
    median_days and its interval (NaN when the curve never falls to 0.5), and
    survival at each of ``at`` days (``survival_<d>d`` with ``_low``/``_high``).
    ``logrank_p``: multivariate log-rank test across the groups (NaN with one group).
    """

    table: pd.DataFrame
    medians: pd.DataFrame
    logrank_p: float
    by: str | None
    alpha: float
    fitters: dict = field(default_factory=dict, repr=False)
    at: tuple[float, ...] = (7, 30, 90)

    def headline(self) -> str:
        m = self.medians
        mid, last = (_days_label(d) for d in (self.at[len(self.at) // 2], self.at[-1]))
        if self.by is None:
            row = m.iloc[0]
            med = "not reached" if np.isnan(row["median_days"]) else f"{row['median_days']:.0f} days"
            return (f"Median lifetime {med}; {row[f'survival_{mid}d']:.0%} are still there after {mid} days and "
                    f"{row[f'survival_{last}d']:.0%} after {last} (of {int(row['users']):,} users, "
                    f"{int(row['churned']):,} churned).")
        best = m.loc[m[f"survival_{last}d"].idxmax()]
        worst = m.loc[m[f"survival_{last}d"].idxmin()]
        sig = ("the difference is significant" if self.logrank_p < self.alpha else "the difference could be chance")
        return (f"After {last} days {best[f'survival_{last}d']:.0%} of {best['group']} remain against "
                f"{worst[f'survival_{last}d']:.0%} of {worst['group']}; log-rank p={self.logrank_p:.2g}, so {sig}.")


def _days_label(days: float) -> str:
    """7 -> '7', 365.25 -> '365.25': how a horizon is written in a column name."""
    return f"{days:g}"


def _check_survival_table(df: pd.DataFrame, duration_col: str, event_col: str, where: str) -> pd.DataFrame:
    for col in (duration_col, event_col):
        if col not in df.columns:
            raise EventDataError(f"{where}: no column {col!r} (columns: {', '.join(map(str, df.columns))}).")
    if len(df) == 0:
        raise EventDataError(f"{where}: the table has no rows.")
    d = pd.to_numeric(df[duration_col], errors="coerce")
    bad = d.isna() | (d < 0)
    if bad.any():
        example = df.loc[bad, duration_col].iloc[0]
        raise EventDataError(f"{where}: {int(bad.sum())} row(s) of {duration_col!r} are missing, negative or not numbers "
                             f"(e.g. {example!r}).")
    e = df[event_col]
    numeric = pd.to_numeric(e, errors="coerce") if not pd.api.types.is_bool_dtype(e.dtype) else e.astype(float)
    bad = e.isna().to_numpy() | ~numeric.isin([0, 1]).to_numpy()
    if bad.any():
        example = e[bad].iloc[0]
        hint = (f" Text flags such as 'Yes'/'No' need converting first: df[{event_col!r}].eq('Yes')."
                if isinstance(example, str) else "")
        raise EventDataError(f"{where}: {event_col!r} must be True/False (or 1/0), e.g. not {example!r} "
                             f"({int(bad.sum()):,} such row(s)).{hint}")
    e = numeric.astype(bool)
    if not e.astype(bool).any():
        raise EventDataError(f"{where}: no churn is observed at all ({event_col!r} is never true): survival cannot "
                             "be estimated; check the churn definition or observe longer.")
    return df.assign(**{duration_col: d.astype(float), event_col: e.to_numpy()})


def _at(fitter, days: float, alpha: float) -> tuple[float, float, float]:
    """Survival and its interval at ``days`` (step function: the last value at or before)."""
    sf = fitter.survival_function_
    ci = fitter.confidence_interval_survival_function_
    idx = sf.index.searchsorted(days, side="right") - 1
    if idx < 0:
        return 1.0, 1.0, 1.0
    if days > sf.index.max():
        return np.nan, np.nan, np.nan  # beyond the last observation: unknown
    return float(sf.iloc[idx, 0]), float(ci.iloc[idx, 0]), float(ci.iloc[idx, 1])


def survival_curves(
    lifetimes: pd.DataFrame,
    *,
    by: str | None = None,
    duration_col: str = "duration_days",
    event_col: str = "churned",
    alpha: float = 0.05,
    at: Sequence[float] = (7, 30, 90),
) -> SurvivalResult:
    """Kaplan-Meier survival per group (lifelines), medians, survival at ``at`` days and a log-rank test.

    ``at`` are the horizons read off each curve, in the unit of ``duration_col``
    (days for :func:`user_lifetimes`; e.g. ``(90, 365, 730)`` for subscriptions
    of years), as columns ``survival_<d>d``.

    Works on any table with a duration and an event column (e.g. a CRM export of
    subscriptions), not only on :func:`user_lifetimes`. Missing ``by`` values form
    a ``(none)`` group.

    Examples
    --------
    >>> life = pd.DataFrame({"duration_days": [1, 2, 2, 3, 5], "churned": [True, True, False, True, False]})
    >>> r = survival_curves(life)
    >>> r.table["survival"].round(4).tolist()
    [1.0, 0.8, 0.6, 0.3, 0.3]
    >>> float(r.medians["median_days"].iloc[0])
    3.0
    """
    from lifelines import KaplanMeierFitter
    from lifelines.statistics import multivariate_logrank_test
    from lifelines.utils import median_survival_times

    df = _check_survival_table(lifetimes, duration_col, event_col, "survival_curves")
    if by is not None:
        if by not in df.columns:
            raise EventDataError(f"survival_curves: no column {by!r} to group by (columns: {', '.join(map(str, df.columns))}).")
        groups = df[by].astype(object).where(df[by].notna(), "(none)").astype(str)
    else:
        groups = pd.Series("all", index=df.index)
    tables, medians, fitters = [], [], {}
    for name in sorted(groups.unique()):
        part = df[groups == name]
        kmf = KaplanMeierFitter(alpha=alpha).fit(part[duration_col], part[event_col], label=str(name))
        fitters[name] = kmf
        ci = kmf.confidence_interval_survival_function_
        ev = kmf.event_table
        tab = pd.DataFrame({"group": name, "timeline": kmf.survival_function_.index.to_numpy(float),
                            "survival": kmf.survival_function_.iloc[:, 0].to_numpy(),
                            "ci_low": ci.iloc[:, 0].to_numpy(), "ci_high": ci.iloc[:, 1].to_numpy(),
                            "at_risk": ev["at_risk"].reindex(kmf.survival_function_.index).to_numpy(),
                            "events": ev["observed"].reindex(kmf.survival_function_.index).to_numpy(),
                            "censored": ev["censored"].reindex(kmf.survival_function_.index).to_numpy()})
        tables.append(tab)
        med_ci = median_survival_times(kmf.confidence_interval_)
        row = {"group": name, "users": len(part), "churned": int(part[event_col].sum()),
               "median_days": float(kmf.median_survival_time_),
               "median_low": float(med_ci.iloc[0, 0]), "median_high": float(med_ci.iloc[0, 1])}
        for days in at:
            s, lo, hi = _at(kmf, days, alpha)
            d = _days_label(days)
            row.update({f"survival_{d}d": s, f"survival_{d}d_low": lo, f"survival_{d}d_high": hi})
        medians.append(row)
    med = pd.DataFrame(medians).replace([np.inf, -np.inf], np.nan)
    p = float("nan")
    if groups.nunique() > 1:
        p = float(multivariate_logrank_test(df[duration_col], groups, df[event_col]).p_value)
    return SurvivalResult(pd.concat(tables, ignore_index=True), med, p, by, alpha, fitters, tuple(at))


@dataclass
class HazardResult:
    """A Cox proportional-hazards fit.

    ``table``: covariate, level, baseline, hazard_ratio, ci_low, ci_high, p
    (one row per numeric covariate and per non-baseline level of a categorical
    one). ``concordance``: Harrell's C. ``ph_check``: the proportional-hazards
    test (Schoenfeld residuals, rank time) per term; ``ph_summary`` says it in
    words. ``note`` says when the fit used a random sample.
    """

    table: pd.DataFrame
    concordance: float
    ph_check: pd.DataFrame
    ph_summary: str
    note: str
    users: int
    model: Any = field(repr=False, default=None)

    def headline(self) -> str:
        sig = self.table[self.table["p"] < 0.05]
        if sig.empty:
            return f"No covariate changes the churn hazard significantly (concordance {self.concordance:.2f})."
        top = sig.loc[(np.log(sig["hazard_ratio"])).abs().idxmax()]
        what = f"{top['covariate']}={top['level']}" if top["level"] != "" else top["covariate"]
        vs = f" (against {top['baseline']})" if top["baseline"] != "" else ""
        return (f"Strongest effect: {what}{vs} multiplies the churn hazard by {top['hazard_ratio']:.2f} "
                f"(95% CI {top['ci_low']:.2f}-{top['ci_high']:.2f}); concordance {self.concordance:.2f}.")


def hazard_ratios(
    lifetimes: pd.DataFrame,
    covariates: Sequence[str],
    *,
    duration_col: str = "duration_days",
    event_col: str = "churned",
    strata: Sequence[str] | None = None,
    baselines: Mapping[str, Any] | None = None,
    max_rows: int = 200_000,
    ph_rows: int = 20_000,
    random_state: int = 0,
) -> HazardResult:
    """Cox proportional-hazards model (lifelines): the hazard ratio of each covariate with its 95% interval.

    Categorical covariates (strings, categories, booleans) are one-hot encoded
    against a baseline level: ``baselines[col]`` when given, else the most common
    level. Above ``max_rows`` users the model is fitted on a random sample of that
    size (a Cox fit grows faster than linearly), and ``note`` says so; the
    proportional-hazards test uses at most ``ph_rows`` of them.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> group = np.repeat(["slow", "fast"], 300)
    >>> life = pd.DataFrame({"group": group, "duration_days": rng.exponential(np.where(group == "fast", 10, 20)),
    ...                      "churned": True})
    >>> r = hazard_ratios(life, ["group"], baselines={"group": "slow"})
    >>> r.table[["covariate", "level", "baseline"]].values.tolist()
    [['group', 'fast', 'slow']]
    >>> bool(1.5 < r.table["hazard_ratio"].iloc[0] < 2.6)
    True
    """
    from lifelines import CoxPHFitter
    from lifelines.statistics import proportional_hazard_test

    df = _check_survival_table(lifetimes, duration_col, event_col, "hazard_ratios")
    covariates = list(covariates)
    strata = list(strata or [])
    missing = [c for c in covariates + strata if c not in df.columns]
    if missing:
        raise EventDataError(f"hazard_ratios: no column(s) {missing} (columns: {', '.join(map(str, df.columns))}).")
    if not covariates:
        raise EventDataError("hazard_ratios: give at least one covariate.")
    note = ""
    if len(df) > max_rows:
        note = (f"Fitted on a random sample of {max_rows:,} of {len(df):,} users (seed {random_state}); "
                "intervals reflect the sample size.")
        df = df.sample(max_rows, random_state=random_state)
    baselines = dict(baselines or {})
    design = pd.DataFrame(index=df.index)
    rows_meta = []
    for col in covariates:
        values = df[col]
        if values.nunique(dropna=True) < 2:
            example = values.dropna().iloc[0] if values.notna().any() else None
            raise EventDataError(f"hazard_ratios: covariate {col!r} has a single value ({example!r}): it cannot "
                                 "explain any difference; drop it.")
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            if values.isna().any():
                raise EventDataError(f"hazard_ratios: covariate {col!r} has {int(values.isna().sum())} missing value(s); "
                                     "fill or drop them first.")
            design[col] = values.astype(float)
            rows_meta.append((col, col, "", ""))
            continue
        levels = values.astype(object).where(values.notna(), "(none)").astype(str)
        base = str(baselines.get(col, levels.value_counts().idxmax()))
        if base not in set(levels):
            raise EventDataError(f"hazard_ratios: baseline {base!r} is not a value of {col!r} "
                                 f"(values: {', '.join(sorted(set(levels))[:10])}).")
        for level in sorted(set(levels) - {base}):
            name = f"{col}[{level}]"
            design[name] = (levels == level).astype(float)
            rows_meta.append((name, col, level, base))
    for col in strata:
        design[col] = df[col].astype(str)
    design[duration_col] = df[duration_col].clip(lower=1e-9)  # a zero duration is a churn on day 0
    design[event_col] = df[event_col].astype(int)
    cph = CoxPHFitter()
    try:
        cph.fit(design, duration_col=duration_col, event_col=event_col, strata=strata or None)
    except Exception as err:  # lifelines' convergence errors name no column; add what we know
        raise EventDataError(f"hazard_ratios: the Cox model did not converge ({err.__class__.__name__}: "
                             f"{str(err).splitlines()[0]}). A covariate level with no churn, or covariates that "
                             "duplicate each other, are the usual causes.") from err
    n_fitted = len(design)
    s = cph.summary
    table = pd.DataFrame({
        "covariate": [m[1] for m in rows_meta], "level": [m[2] for m in rows_meta], "baseline": [m[3] for m in rows_meta],
        "hazard_ratio": s.loc[[m[0] for m in rows_meta], "exp(coef)"].to_numpy(),
        "ci_low": s.loc[[m[0] for m in rows_meta], "exp(coef) lower 95%"].to_numpy(),
        "ci_high": s.loc[[m[0] for m in rows_meta], "exp(coef) upper 95%"].to_numpy(),
        "p": s.loc[[m[0] for m in rows_meta], "p"].to_numpy(),
    })
    # The Schoenfeld-residual test grows quadratically (82 s at 100k rows against 8 s for the fit): a diagnostic,
    # so above ph_rows it runs on a model refitted to a random ph_rows of them (lifelines tests a model on its own data).
    checked = cph
    if len(design) > ph_rows:
        design = design.sample(ph_rows, random_state=random_state)
        checked = CoxPHFitter().fit(design, duration_col=duration_col, event_col=event_col, strata=strata or None)
    ph = proportional_hazard_test(checked, design, time_transform="rank").summary[["test_statistic", "p"]]
    ph = ph.reset_index().rename(columns={"index": "term"})
    bad = ph[ph["p"] < 0.01]
    if bad.empty:
        ph_summary = (f"The proportional-hazards assumption holds for every term (smallest p={ph['p'].min():.2g}): "
                      "each ratio applies throughout a user's lifetime.")
    else:
        ph_summary = (f"The hazard of {', '.join(bad['term'].astype(str))} changes over time (proportional-hazards test "
                      f"p<0.01): read {'its ratio' if len(bad) == 1 else 'their ratios'} as an average over the lifetime, "
                      "or stratify.")
    return HazardResult(table, float(cph.concordance_index_), ph, ph_summary, note, n_fitted, cph)


def retention_drivers(
    events: pd.DataFrame | ibis.Table,
    lifetimes: pd.DataFrame,
    *,
    first_days: int = 7,
    top_events: int = 15,
    adjust_for: str | None = "channel",
    active_at: int = 30,
    min_users: int = 30,
    max_rows: int = 50_000,
    random_state: int = 0,
) -> pd.DataFrame:
    """Which behaviours in a user's first days predict staying: the journey's "moments that matter".

    A landmark analysis: only users still there ``first_days`` days after their
    start count, and their time is measured from that day. For each of the
    ``top_events`` most common events in users' first days: ``share`` of users who
    did it at least once in their first ``first_days`` days; the Cox
    ``hazard_ratio`` (with interval and p) of having done it, adjusted for the
    acquisition channel (the ``adjust_for`` value on the user's first event);
    and ``phi``, the correlation between doing it and still being active at day
    ``active_at`` among users observed that long. Events done by fewer than
    ``min_users`` users (or by all but that many) are left out. The Cox fits (one
    per event) use a random sample of ``max_rows`` users when there are more
    (``attrs["note"]`` says so); shares and phi use everyone.
    """
    from lifelines import CoxPHFitter

    t = as_ibis(events)
    life = lifetimes[lifetimes["duration_days"] >= first_days].copy()
    if life.empty:
        raise EventDataError(f"retention_drivers: no user stayed {first_days} days.")
    starts = ibis.memtable(pd.DataFrame({"user_id": life["user_id"].astype(str), "_start": life["start"]}))
    early = t.join(starts, "user_id")
    early = early.filter((early.timestamp >= early._start)
                         & (epoch_us(early.timestamp) < epoch_us(early._start) + int(first_days) * US_PER_DAY))
    top = (early.group_by("event").aggregate(n=early.user_id.nunique()).order_by([ibis.desc("n"), "event"])
           .limit(top_events).execute()["event"].tolist())
    aggs = {f"_did_{i}": (early.event == e).cast("int64").max() for i, e in enumerate(top)}
    if adjust_for is not None and adjust_for in t.columns:
        aggs["_adjust"] = early[adjust_for].argmin(early.timestamp)
    did = early.group_by("user_id").aggregate(**aggs).to_pyarrow().to_pandas()
    did["user_id"] = did["user_id"].astype(str)
    life = life.merge(did, on="user_id", how="left")
    life["_landmark_duration"] = life["duration_days"] - first_days
    active = life["duration_days"] >= active_at
    # Active at day N is known for churners, and for censored users observed at least N days.
    observed_long = life["churned"].astype(bool) | active
    adjust = None
    if "_adjust" in life.columns:
        levels = life["_adjust"].astype(object).where(life["_adjust"].notna(), "(none)").astype(str)
        common = levels.value_counts()
        adjust = pd.get_dummies(levels, dtype=float).drop(columns=common.idxmax())
        adjust = adjust.loc[:, adjust.sum() >= min_users]
        adjust.columns = [f"_adj_{c}" for c in adjust.columns]
    cox_rows = life.index if len(life) <= max_rows else life.sample(max_rows, random_state=random_state).index
    note = "" if len(cox_rows) == len(life) else (f"Hazard ratios from a random sample of {max_rows:,} of "
                                                   f"{len(life):,} users (seed {random_state}).")
    rows = []
    for i, event in enumerate(top):
        x = life[f"_did_{i}"].fillna(0).astype(float)
        n_did = int(x.sum())
        if n_did < min_users or len(x) - n_did < min_users:
            continue
        design = pd.DataFrame({"did": x, "T": life["_landmark_duration"].clip(lower=1e-9),
                               "E": life["churned"].astype(int)})
        if adjust is not None:
            design = pd.concat([design, adjust], axis=1)
        try:
            cph = CoxPHFitter(penalizer=1e-4).fit(design.loc[cox_rows], duration_col="T", event_col="E")
            s = cph.summary.loc["did"]
            hr, lo, hi, p = s["exp(coef)"], s["exp(coef) lower 95%"], s["exp(coef) upper 95%"], s["p"]
        except Exception:  # a degenerate event (e.g. done only by churners): report without a ratio
            hr = lo = hi = p = np.nan
        a, b = x[observed_long].to_numpy(), active[observed_long].astype(float).to_numpy()
        phi = float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else np.nan
        rows.append({"event": event, "users": n_did, "share": n_did / len(life), "hazard_ratio": hr, "ci_low": lo,
                     "ci_high": hi, "p": p, "phi": phi})
    out = pd.DataFrame(rows, columns=["event", "users", "share", "hazard_ratio", "ci_low", "ci_high", "p", "phi"])
    if len(out):
        from helpers.funnel import holm_adjust

        out["p_holm"] = holm_adjust(out["p"].to_numpy())
        out = out.sort_values("hazard_ratio").reset_index(drop=True)
    out.attrs.update(landmark_days=first_days, users=len(life), adjusted_for=adjust_for if adjust is not None else None,
                     note=note)
    return out


# ----------------------------------------------------------------------------- churn early warning

RISK_FEATURES = ("recency_days", "events_30d", "active_days_30d", "breadth", "tenure_days", "purchases",
                 "mean_survey_score", "support_tickets_30d")


def _snapshot_features(t: ibis.Table, at: pd.Timestamp, *, inactivity: str, churn_event: str | None,
                       survey_event: str, support_event: str, purchase_events: Sequence[str]) -> pd.DataFrame:
    """Behaviour of the users active at ``at`` (an event in the ``inactivity`` before it, no churn event yet),
    from events at or before ``at`` only."""
    past = t.filter(t.timestamp <= at.to_pydatetime())
    recent = past.timestamp > (at - pd.Timedelta(days=30)).to_pydatetime()
    aggs = {
        "_last": past.timestamp.max(), "_first": past.timestamp.min(),
        "events_30d": recent.cast("int64").sum(),
        "active_days_30d": utc_naive(past.timestamp).date().nunique(where=recent),
        "breadth": past.event.nunique(),
        "purchases": past.event.isin(list(purchase_events)).cast("int64").sum(),
        "support_tickets_30d": ((past.event == support_event) & recent).cast("int64").sum(),
    }
    if "value" in past.columns:
        aggs["mean_survey_score"] = past.value.mean(where=past.event == survey_event)
    if churn_event is not None:
        aggs["_cancelled"] = (past.event == churn_event).cast("int64").sum()
    f = past.group_by("user_id").aggregate(**aggs).to_pyarrow().to_pandas()
    f["user_id"] = f["user_id"].astype(str)
    last, first = pd.to_datetime(f["_last"], utc=True), pd.to_datetime(f["_first"], utc=True)
    f["recency_days"] = (at - last).dt.total_seconds() / 86_400
    f["tenure_days"] = (at - first).dt.total_seconds() / 86_400
    active = f["recency_days"] <= pd.Timedelta(inactivity) / pd.Timedelta(days=1)
    if "_cancelled" in f.columns:
        active &= f["_cancelled"] == 0
    if "mean_survey_score" not in f.columns:
        f["mean_survey_score"] = np.nan
    # Sorted: the backend's group-by order varies from run to run, and the cross-fitted halves follow row order.
    return f[active].set_index("user_id").sort_index()[list(RISK_FEATURES)].astype(float)


def _outcome(t: ibis.Table, users: pd.Index, at: pd.Timestamp, horizon: pd.Timedelta, churn_event: str | None) -> pd.DataFrame:
    """Churned within ``horizon`` after ``at``: no event in (at, at + horizon], or the churn event in it.
    ``days``: time to the churn (the cancellation, or ``at`` itself for silence)."""
    window = t.filter((t.timestamp > at.to_pydatetime()) & (t.timestamp <= (at + horizon).to_pydatetime()))
    aggs = {"_n": window.count()}
    if churn_event is not None:
        aggs["_cancel_at"] = window.timestamp.min(where=window.event == churn_event)
    seen = window.group_by("user_id").aggregate(**aggs).to_pyarrow().to_pandas()
    seen["user_id"] = seen["user_id"].astype(str)
    seen = seen.set_index("user_id").reindex(users)
    silent = seen["_n"].isna()
    cancelled = seen["_cancel_at"].notna() if "_cancel_at" in seen.columns else pd.Series(False, index=users)
    churned = silent | cancelled
    days = pd.Series(horizon / pd.Timedelta(days=1), index=users, dtype=float)
    if "_cancel_at" in seen.columns:
        cancel_days = (pd.to_datetime(seen["_cancel_at"], utc=True) - at).dt.total_seconds() / 86_400
        days = days.where(~cancelled, cancel_days)
    days = days.where(~silent, 1e-6)  # silence from the snapshot on: churned at once
    return pd.DataFrame({"churned": churned.to_numpy(), "days": days.to_numpy()}, index=users)


def _design(features: pd.DataFrame, fill: pd.Series | None = None) -> tuple[pd.DataFrame, pd.Series]:
    X = features.copy()
    fill = X.median() if fill is None else fill
    X = X.fillna(fill).fillna(0.0)
    for col in ("events_30d", "active_days_30d", "purchases", "support_tickets_30d", "recency_days", "tenure_days"):
        if col in X.columns:
            X[col] = np.log1p(X[col].clip(lower=0))  # counts and days are skewed
    return X, fill


@dataclass
class RiskResult:
    """Churn risk per active user, and the evidence that it can be trusted.

    ``scores``: per user active at ``observed_until``: ``churn_probability`` within
    ``horizon`` (the Cox model's), ``calibrated_probability`` (the same, mapped
    onto the churn rates observed on the time split; see :func:`churn_risk`),
    ``risk_decile`` (10 = riskiest) and ``top_factors`` (the features that raise
    this user's risk most, relative to the average user).
    ``validation``: ``concordance`` and ``top_decile_lift`` from the time split,
    the mean absolute calibration gap over the deciles before
    (``calibration_gap``) and after recalibration (``calibrated_gap``), and how
    the latter was checked (``calibration_check``);
    ``calibration``: per risk decile, ``predicted`` (the model), ``calibrated``
    (by a mapping not fitted on these outcomes: see ``validation["calibration_check"]``)
    and ``observed`` churn;
    ``coefficients``: the Cox model's hazard ratios (per unit of the log-scaled features).
    ``validation_scores``: per user scored at the cut, the probability and what happened.
    """

    scores: pd.DataFrame
    validation: dict
    calibration: pd.DataFrame
    coefficients: pd.DataFrame
    horizon: pd.Timedelta
    observed_until: pd.Timestamp
    validation_scores: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)

    def headline(self) -> str:
        v = self.validation
        return (f"Validated on a time split ({v['cut']:%Y-%m-%d}): concordance {v['concordance']:.2f}; the riskiest "
                f"tenth churned {v['top_decile_churn']:.0%} within {self.horizon.days} days against {v['base_churn']:.0%} "
                f"on average ({v['top_decile_lift']:.1f}x). {len(self.scores):,} active users scored.")

    @property
    def probability(self) -> str:
        """The score column to act on: ``calibrated_probability`` when the scores have it, else
        ``churn_probability`` (the at-risk audience, the share at risk per segment and the risk chart use it)."""
        return "calibrated_probability" if "calibrated_probability" in self.scores.columns else "churn_probability"

    def calibration_note(self, tolerance: float = 0.10) -> str:
        """In words: do the validated probabilities match what happened, decile by decile?

        A gap larger than ``tolerance`` (10 points) in some decile means the
        probabilities rank users well but are not exact chances there: thresholds
        such as "at risk from 0.5" should then be set from the calibration table.

        Examples
        --------
        >>> cal = pd.DataFrame({"risk_decile": [1, 2], "users": [10, 10], "predicted": [0.1, 0.4], "observed": [0.1, 0.7]})
        >>> r = RiskResult(pd.DataFrame(), {}, cal, pd.DataFrame(), pd.Timedelta("30D"), pd.Timestamp("2025-01-01", tz="UTC"))
        >>> print(r.calibration_note())  # doctest: +NORMALIZE_WHITESPACE
        Calibration: predicted and observed churn differ by 15 points on average over the deciles; the largest gap is
        in decile 2 (predicted 40%, observed 70%). The model understates the risk there: read the probabilities as a
        ranking, and set an at-risk threshold from the observed rates in the calibration table rather than from the
        probability alone.
        """
        c = self.calibration
        gap = (c["observed"] - c["predicted"]).to_numpy(float)
        worst = int(np.nanargmax(np.abs(gap)))
        row = c.iloc[worst]
        text = (f"Calibration: predicted and observed churn differ by {np.nanmean(np.abs(gap)) * 100:.0f} points on "
                f"average over the deciles; the largest gap is in decile {int(row['risk_decile'])} (predicted "
                f"{row['predicted']:.0%}, observed {row['observed']:.0%}).")
        if abs(gap[worst]) <= tolerance:
            return text + " The probabilities can be read as chances."
        direction = "under" if gap[worst] > 0 else "over"
        if "calibrated" in c.columns:
            fixed = (c["observed"] - c["calibrated"]).abs().to_numpy(float)
            how = self.validation.get("calibration_check", "on other outcomes")
            return (text + f" The model {direction}states the risk there. After recalibration the gap is "
                    f"{np.nanmean(fixed) * 100:.0f} points on average and at most {np.nanmax(fixed) * 100:.0f} "
                    f"(checked {how}): read `calibrated_probability` as the chance of churning, and set at-risk "
                    "thresholds on it.")
        return (text + f" The model {direction}states the risk there: read the probabilities as a ranking, and set "
                "an at-risk threshold from the observed rates in the calibration table rather than from the "
                "probability alone.")


def _isotonic(predicted: np.ndarray, churned: np.ndarray):
    """The isotonic regression of churn on the predicted probabilities, as a function of probabilities."""
    from sklearn.isotonic import IsotonicRegression

    fitted = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(predicted, churned)
    return lambda p: fitted.predict(np.asarray(p, dtype=float))


def _cross_fitted(predicted: np.ndarray, churned: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """Each half of the users (a seeded random split) mapped by the isotonic regression fitted on the other half,
    so that no user's calibrated value comes from a fit that saw their outcome."""
    half = np.random.default_rng(seed).permutation(len(predicted)) % 2 == 0
    crossed = np.empty(len(predicted))
    for part in (half, ~half):
        crossed[part] = _isotonic(predicted[~part], churned[~part])(predicted[part])
    return crossed


def _check_outcome(y: pd.DataFrame, at: pd.Timestamp, horizon: Any, where: str, purpose: str) -> None:
    """A time split where every active user churned, or none did, has no contrast: a clear error instead of
    lifelines' ZeroDivisionError in the concordance."""
    if not y["churned"].any() or y["churned"].all():
        raise EventDataError(f"{where}: at {at:%Y-%m-%d} {'no' if not y['churned'].any() else 'every'} active user "
                             f"churned within {horizon}: there is nothing {purpose}. Try another horizon or lookback.")


def churn_risk(
    events: pd.DataFrame | ibis.Table,
    *,
    horizon: str = "30D",
    lookback: str = "60D",
    observed_until: Any = None,
    inactivity: str = "30D",
    churn_event: str | None = "subscription_cancelled",
    users: pd.DataFrame | None = None,
    covariates: Sequence[str] = (),
    survey_event: str = "nps_response",
    support_event: str = "support_ticket",
    purchase_events: Sequence[str] = ("purchase", "repeat_purchase"),
    calibrate: bool = True,
) -> RiskResult:
    """The probability that each active user churns within ``horizon``, validated on a time split.

    Churn within the horizon after a snapshot = no event in it, or the churn
    event in it. Features at a snapshot use only events at or before it
    (:data:`RISK_FEATURES`: recency, frequency and active days in the last 30
    days, breadth of event types, tenure, purchases, mean survey score, support
    load), plus user-level ``covariates`` from ``users`` (e.g. persona), one-hot.
    A Cox model on (time to churn, capped at the horizon) gives
    ``1 - S(horizon | x)``.

    Validation (built in): cut = ``observed_until - horizon``; the model is fitted
    on the snapshot at ``cut - lookback`` (its outcomes end by the cut when
    ``lookback >= horizon``, so nothing after the cut is used), scores the users
    active at the cut, and is compared with who churned in the following horizon:
    concordance, a calibration table by risk decile, and the lift of the top
    decile. The scores shown are then from the same procedure refitted at
    ``observed_until - horizon`` (outcomes up to ``observed_until``) and applied at
    ``observed_until``.

    Recalibration: a Cox model ranks well but its probabilities can be off by
    decile (on the sample it understates the riskiest deciles by up to 30
    points). An isotonic regression of the validation outcomes on the
    validation probabilities maps probabilities onto observed churn rates, and
    ``calibrated_probability`` is the refitted model's probability mapped so.
    That mapping is learnt on one split and applied to the next, so it is
    checked the same way, out of time: the same procedure one lookback earlier
    (fit at ``cut - 2 * lookback``, score at ``cut - lookback``, outcomes by the
    cut) learns a mapping that is applied to the validation probabilities
    (``calibration["calibrated"]``, ``validation["calibration_check"]``). When
    the data is too short for that earlier split, the check is cross-fitted on
    the validation users instead (each half mapped by the regression fitted on
    the other half), which does not test the transfer, and the check says so.
    ``calibrate=False`` leaves ``calibrated_probability`` equal to the model's.
    """
    from lifelines import CoxPHFitter
    from lifelines.exceptions import ConvergenceError
    from lifelines.utils import concordance_index

    t = as_ibis(events)
    until = _observed_until(t, observed_until)
    t = t.filter(t.timestamp <= until.to_pydatetime())
    horizon_td, lookback_td = pd.Timedelta(horizon), pd.Timedelta(lookback)
    if lookback_td < horizon_td:
        raise EventDataError(f"churn_risk: lookback ({lookback}) must be at least the horizon ({horizon}), or the "
                             "training outcomes would run past the validation cut.")
    first = to_utc(t.timestamp.min().execute())
    cut = until - horizon_td
    train_at = cut - lookback_td
    if train_at - pd.Timedelta(days=7) < first:
        raise EventDataError(f"churn_risk: the data ({first:%Y-%m-%d} to {until:%Y-%m-%d}) is too short for a "
                             f"{horizon} horizon and a {lookback} lookback: the training snapshot {train_at:%Y-%m-%d} "
                             "needs at least a week of history before it.")
    kw = dict(inactivity=inactivity, churn_event=churn_event, survey_event=survey_event, support_event=support_event,
              purchase_events=purchase_events)
    extra = _covariates(users, covariates)
    # A snapshot is both scored (as a validation cut) and fitted on (as the next training point): read it once.

    @functools.cache
    def features(at: pd.Timestamp) -> pd.DataFrame:
        return _snapshot_features(t, at, **kw)

    @functools.cache
    def outcome(at: pd.Timestamp) -> pd.DataFrame:
        """What happened in the horizon after ``at`` to the users active at ``at``."""
        return _outcome(t, features(at).index, at, horizon_td, churn_event)

    def fit(at: pd.Timestamp):
        f = features(at)
        if f.empty:
            raise EventDataError(f"churn_risk: no user is active at {at:%Y-%m-%d} (an event in the {inactivity} before).")
        y = outcome(at)
        _check_outcome(y, at, horizon, "churn_risk", "to learn from")
        X, fill = _design(f.join(extra, how="left") if extra is not None else f)
        X = X.loc[:, X.std() > 0]
        data = X.assign(_T=y["days"].clip(lower=1e-6), _E=y["churned"].astype(int))
        cph = CoxPHFitter(penalizer=0.01).fit(data, "_T", "_E")
        return cph, list(X.columns), fill

    def score(cph, columns, fill, at):
        f = features(at)
        X, _ = _design(f.join(extra, how="left") if extra is not None else f, fill)
        X = X.reindex(columns=columns, fill_value=0.0)
        surv = cph.predict_survival_function(X, times=[horizon_td / pd.Timedelta(days=1)])
        return X, 1.0 - surv.iloc[0].to_numpy()

    # Validation on the time split.
    cph_v, cols_v, fill_v = fit(train_at)
    Xv, pv = score(cph_v, cols_v, fill_v, cut)
    yv = outcome(cut)
    _check_outcome(yv, cut, horizon, "churn_risk", "to validate the model on")
    c_index = float(concordance_index(yv["days"], -pv, yv["churned"]))
    deciles = pd.qcut(pd.Series(pv).rank(method="first"), 10, labels=range(1, 11)).astype(int)
    calib = pd.DataFrame({"risk_decile": deciles.to_numpy(), "predicted": pv, "observed": yv["churned"].to_numpy()})
    churned_v = yv["churned"].to_numpy().astype(float)
    check, calib["calibrated"] = "none (calibrate=False)", pv
    mapping = lambda q: np.asarray(q, dtype=float)  # noqa: E731 - the identity when not calibrating
    if calibrate:
        mapping = _isotonic(pv, churned_v)  # learnt on the latest complete split, applied to the scores below
        earlier = train_at - lookback_td
        check = None
        if earlier - pd.Timedelta(days=7) >= first:
            try:
                cph_e, cols_e, fill_e = fit(earlier)
                _, pe = score(cph_e, cols_e, fill_e, train_at)
                calib["calibrated"] = _isotonic(pe, outcome(train_at)["churned"].to_numpy().astype(float))(pv)
                check = (f"out of time: a mapping learnt on the split one lookback earlier, fitted "
                         f"{earlier:%Y-%m-%d} and scored {train_at:%Y-%m-%d}, applied to this split")
            except (EventDataError, ConvergenceError):  # nobody (or everybody) churned there: nothing to learn
                pass
        if check is None:
            calib["calibrated"] = _cross_fitted(pv, churned_v)
            check = ("cross-fitted on this split's users; the data is too short for an out-of-time check, so the "
                     "transfer to the next split is not tested")
    calibration = calib.groupby("risk_decile").agg(users=("predicted", "size"), predicted=("predicted", "mean"),
                                                   calibrated=("calibrated", "mean"),
                                                   observed=("observed", "mean")).reset_index()
    base = float(yv["churned"].mean())
    top = float(calibration.loc[calibration["risk_decile"] == 10, "observed"].iloc[0])
    validation = {"cut": cut, "trained_at": train_at, "users_scored": len(Xv), "concordance": c_index,
                  "base_churn": base, "top_decile_churn": top, "top_decile_lift": top / base if base else np.nan,
                  "calibration_gap": float((calibration["observed"] - calibration["predicted"]).abs().mean()),
                  "calibrated_gap": float((calibration["observed"] - calibration["calibrated"]).abs().mean()),
                  "calibration_check": check}

    # Refit on the latest complete outcomes and score the users active now.
    cph, cols, fill = fit(cut)
    X, p = score(cph, cols, fill, until)
    contrib = (X.to_numpy() - cph._norm_mean.reindex(cols).to_numpy()) * cph.params_.reindex(cols).to_numpy()
    order = np.argsort(-contrib, axis=1)[:, :3]
    names = np.array(cols, dtype=object)
    picked = np.take_along_axis(contrib, order, axis=1) > 0
    chosen = pd.DataFrame(np.where(picked, names[order], ""), index=X.index)
    factors = chosen[0].str.cat([chosen[1], chosen[2]], sep=", ").str.replace(r"(, )+$", "", regex=True)
    factors = factors.str.replace(r"^(, )+", "", regex=True).str.replace(r"(, ){2,}", ", ", regex=True)
    scores = pd.DataFrame({"user_id": X.index, "churn_probability": p, "calibrated_probability": mapping(p),
                           "risk_decile": pd.qcut(pd.Series(p).rank(method="first"), 10, labels=range(1, 11)).astype(int),
                           "top_factors": factors.to_numpy()}).sort_values("churn_probability", ascending=False)
    coefficients = cph.summary[["exp(coef)", "exp(coef) lower 95%", "exp(coef) upper 95%", "p"]].rename(columns={
        "exp(coef)": "hazard_ratio", "exp(coef) lower 95%": "ci_low", "exp(coef) upper 95%": "ci_high"})
    coefficients = coefficients.reset_index().rename(columns={"covariate": "feature"})
    checked = pd.DataFrame({"user_id": Xv.index, "churn_probability": pv, "churned": yv["churned"].to_numpy()})
    return RiskResult(scores.reset_index(drop=True), validation, calibration, coefficients, horizon_td, until, checked)


def _covariates(users: pd.DataFrame | None, covariates: Sequence[str]) -> pd.DataFrame | None:
    if users is None or not covariates:
        return None
    missing = [c for c in covariates if c not in users.columns]
    if missing:
        raise EventDataError(f"churn_risk: the users table has no column(s) {missing}.")
    table = users.assign(user_id=users["user_id"].astype(str)).set_index("user_id")[list(covariates)]
    dummies = pd.get_dummies(table.astype("string").fillna("(none)"), dtype=float)
    # One level per covariate is the baseline: drop the most common.
    drop = [f"{c}_{table[c].astype('string').fillna('(none)').value_counts().idxmax()}" for c in covariates]
    return dummies.drop(columns=[d for d in drop if d in dummies.columns])


# ----------------------------------------------------------------------------- health score

HEALTH_WEIGHTS = {"recency": 30, "frequency": 25, "breadth": 20, "satisfaction": 15, "support": 10}


def _health(f: pd.DataFrame) -> pd.DataFrame:
    """The documented health formula on snapshot features (see :func:`health_score`)."""
    comp = pd.DataFrame(index=f.index)
    comp["recency"] = 1 - f["recency_days"].rank(pct=True)
    comp["frequency"] = f["active_days_30d"].rank(pct=True)
    comp["breadth"] = f["breadth"].rank(pct=True)
    comp["satisfaction"] = (f["mean_survey_score"] / 10).clip(0, 1).fillna(0.5)  # no answer: neutral
    comp["support"] = (1 - f["support_tickets_30d"] / 3).clip(0, 1)
    score = sum(HEALTH_WEIGHTS[c] * comp[c] for c in HEALTH_WEIGHTS)
    return comp.assign(health=score.round(1))


def health_score(
    events: pd.DataFrame | ibis.Table,
    *,
    horizon: str = "30D",
    observed_until: Any = None,
    inactivity: str = "30D",
    churn_event: str | None = "subscription_cancelled",
    survey_event: str = "nps_response",
    support_event: str = "support_ticket",
    purchase_events: Sequence[str] = ("purchase", "repeat_purchase"),
) -> RiskResult:
    """A 0-100 health score per active customer, with a fixed formula, validated like :func:`churn_risk`.

    health = 30 x recency (1 - percentile of days since last seen) + 25 x frequency
    (percentile of active days in the last 30) + 20 x breadth (percentile of distinct
    event types used) + 15 x satisfaction (mean 0-10 survey score / 10; 0.5 without
    an answer) + 10 x support load (1 - tickets in the last 30 days / 3, floored at
    0). Percentiles are among the users active at the snapshot.

    Validation at ``observed_until - horizon``: concordance between health (higher =
    stays longer) and churn within the horizon, and churn by health decile
    (decile 1 = least healthy). Returned as a :class:`RiskResult` whose ``scores``
    have ``health`` and the five components, and whose ``calibration`` has the
    observed churn per decile.
    """
    from lifelines.utils import concordance_index

    t = as_ibis(events)
    until = _observed_until(t, observed_until)
    t = t.filter(t.timestamp <= until.to_pydatetime())
    horizon_td = pd.Timedelta(horizon)
    cut = until - horizon_td
    kw = dict(inactivity=inactivity, churn_event=churn_event, survey_event=survey_event, support_event=support_event,
              purchase_events=purchase_events)
    fv = _snapshot_features(t, cut, **kw)
    if fv.empty:
        raise EventDataError(f"health_score: no user is active at {cut:%Y-%m-%d}.")
    hv = _health(fv)
    yv = _outcome(t, fv.index, cut, horizon_td, churn_event)
    _check_outcome(yv, cut, horizon, "health_score", "to validate the score on")
    c_index = float(concordance_index(yv["days"], hv["health"], yv["churned"]))
    deciles = pd.qcut(hv["health"].rank(method="first"), 10, labels=range(1, 11)).astype(int)
    calibration = pd.DataFrame({"health_decile": deciles.to_numpy(), "health": hv["health"].to_numpy(),
                                "observed": yv["churned"].to_numpy()}).groupby("health_decile").agg(
        users=("health", "size"), mean_health=("health", "mean"), observed=("observed", "mean")).reset_index()
    base = float(yv["churned"].mean())
    worst = float(calibration.loc[calibration["health_decile"] == 1, "observed"].iloc[0])
    validation = {"cut": cut, "users_scored": len(fv), "concordance": c_index, "base_churn": base,
                  "top_decile_churn": worst, "top_decile_lift": worst / base if base else np.nan}
    f = _snapshot_features(t, until, **kw)
    h = _health(f).reset_index()
    scores = h[["user_id", "health"] + list(HEALTH_WEIGHTS)].sort_values("health").reset_index(drop=True)
    checked = pd.DataFrame({"user_id": fv.index, "health": hv["health"].to_numpy(), "churned": yv["churned"].to_numpy()})
    weights = pd.DataFrame({"feature": list(HEALTH_WEIGHTS), "weight": list(HEALTH_WEIGHTS.values())})
    return RiskResult(scores, validation, calibration, weights, horizon_td, until, checked)


def risk_by_segment(risk: RiskResult, segment: pd.Series, *, threshold: float = 0.5) -> pd.DataFrame:
    """Per segment (a Series indexed by ``user_id``, e.g. persona): active users, mean churn probability, and the
    share at or above ``threshold`` (on :attr:`RiskResult.probability`, as ``audiences.at_risk``)."""
    seg = segment.copy()
    seg.index = seg.index.astype(str)
    s = risk.scores.assign(segment=risk.scores["user_id"].map(seg).astype(object).fillna("(none)"))
    out = s.groupby("segment").agg(users=("user_id", "size"), mean_probability=(risk.probability, "mean"),
                                   share_at_risk=(risk.probability, lambda p: float((p >= threshold).mean())))
    return out.sort_values("mean_probability", ascending=False).reset_index().rename(columns={"segment": segment.name or "segment"})


def risk_factor_counts(risk: RiskResult, *, min_decile: int = 9) -> pd.DataFrame:
    """How often each feature is among the top factors of the users in risk deciles ``min_decile``-10."""
    top = risk.scores[risk.scores["risk_decile"] >= min_decile]["top_factors"]
    counts = top.str.split(", ").explode().replace("", np.nan).dropna().value_counts()
    return pd.DataFrame({"factor": counts.index, "users": counts.to_numpy(), "share": counts.to_numpy() / max(len(top), 1)})
