"""Cohort tables (:func:`cohort_retention`) that mark incomplete cells instead of showing zeros.

The rules are in :mod:`helpers.retention`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import ibis
import pandas as pd

from helpers.io import EventDataError, as_ibis, observed_end, utc_naive

DAY = pd.Timedelta(days=1)
_PERIODS = {"D": "day", "W": "week", "M": "month"}
_WEEK_STARTS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


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
    until = observed_end(t, observed_until)
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
