"""Before and after a date (a release): stage KPIs of the new users of two equal windows, tested (:func:`journey_changes`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import ibis
import numpy as np
import pandas as pd

from helpers.io import EventDataError, as_ibis, observed_end, to_utc
from helpers.journey.kpis import stage_kpis
from helpers.journey.stages import StageMap, load_stage_map
from helpers.stats import Z95, holm_adjust


def journey_changes(
    events: pd.DataFrame | ibis.Table,
    stage_map: StageMap | str | Path | Mapping[str, Any],
    *,
    split_at: Any,
    observed_until: Any = None,
    window: str | pd.Timedelta | None = None,
) -> pd.DataFrame:
    """Each stage KPI before and after ``split_at`` (a release, a campaign), with the difference and its significance.

    Two windows of equal length meet at ``split_at``: as long as the shorter
    side of the data allows (the data from its first event to ``split_at``, and
    from ``split_at`` to ``observed_until``, default the last timestamp), or
    ``window`` when given and it fits on both sides. When it does not fit, or a
    window has no new users, the comparison is refused: an empty table whose
    ``attrs["refused"]`` says why (:func:`changes_headline` shows it). The stage
    map is checked against all the events once, so an event seen on one side
    only (a release that adds one) is fine. Each window measures the users who *arrived* in it (first event in
    the window), on their events in the window, as :func:`stage_kpis` would: two
    cohorts of new users, so that customers who signed up long before the split
    do not count as "did not sign up" after it. Equal lengths keep the edge
    effects alike: users who arrive late in a window have had little time to
    convert in either.
    Shares are compared with a two-proportion z-test, NPS with a normal test on
    the difference; other KPIs get no p-value. ``significant`` uses Holm-adjusted
    p-values (``p_holm``) over the KPIs tested. The windows are in ``attrs``.
    """
    t = as_ibis(events)
    split = to_utc(split_at)
    until = observed_end(t, observed_until)
    first = to_utc(t.timestamp.min().execute())
    if not first < split <= until:
        raise EventDataError(f"journey_changes: split_at {split} must fall inside the data ({first} to {until}).")
    stage_map = stage_map if isinstance(stage_map, StageMap) else load_stage_map(stage_map)
    present = set(t.select("event").distinct().execute()["event"])
    stage_map.check_events(present)
    room = min(split - first, until - split)
    if not any(stage.kpis for stage in stage_map.stages):
        return _refused("the stage map lists no KPIs to compare (add `kpis:` to its stages)", split - room, split,
                        split + room)
    length = pd.Timedelta(window) if window is not None else room
    start, end = split - length, split + length
    if length > room:
        return _refused(f"a window of {length} does not fit on both sides of {split:%Y-%m-%d} (the data allows "
                        f"{room.days} days before and after); windows of unequal length are not compared", start, split, end)
    if length < pd.Timedelta(days=1):
        return _refused(f"{split:%Y-%m-%d %H:%M} leaves less than a day of data on one side", start, split, end)
    # Each KPI query below joins the users' first timestamps: cached, they are computed once, not per query.
    with t.group_by("user_id").aggregate(_first=t.timestamp.min()).cache() as first_seen:
        arrivals = first_seen.aggregate(
            before=((first_seen._first >= start.to_pydatetime()) & (first_seen._first < split.to_pydatetime())).sum(),
            after=((first_seen._first >= split.to_pydatetime()) & (first_seen._first <= end.to_pydatetime())).sum(),
        ).execute().iloc[0]
        empty = [side for side in ("before", "after") if not int(arrivals[side] or 0)]
        if empty:
            return _refused(f"no new users arrived {' or '.join(empty)} {split:%Y-%m-%d} (within {length.days} days)",
                            start, split, end)
        return _changes(t.join(first_seen, "user_id"), stage_map, split, start, end, present)


_CHANGE_COLUMNS = ["stage", "kpi", "unit", "value_before", "value_after", "difference", "p", "p_holm", "significant",
                   "denominator_before", "denominator_after"]


def _refused(reason: str, start: pd.Timestamp, split: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    out = pd.DataFrame(columns=_CHANGE_COLUMNS)
    out.attrs.update(split_at=split, before=(start, split), after=(split, end), refused=reason)
    return out


def _changes(t: ibis.Table, stage_map: StageMap, split: pd.Timestamp, start: pd.Timestamp, end: pd.Timestamp,
             present: set[str]) -> pd.DataFrame:
    from scipy.stats import norm

    def window_of(a: pd.Timestamp, b: pd.Timestamp, closed: bool) -> ibis.Table:
        upper = (t.timestamp <= b.to_pydatetime()) if closed else (t.timestamp < b.to_pydatetime())
        new_users = (t._first >= a.to_pydatetime()) & ((t._first <= b.to_pydatetime()) if closed else
                                                        (t._first < b.to_pydatetime()))
        return t.filter(new_users & upper).drop("_first")

    before = stage_kpis(window_of(start, split, False), stage_map, observed_until=split - pd.Timedelta(microseconds=1),
                        known_events=present)
    after = stage_kpis(window_of(split, end, True), stage_map, observed_until=end, known_events=present)
    out = before[["stage", "kpi", "unit", "value", "numerator", "denominator", "ci_low", "ci_high"]].merge(
        after[["stage", "kpi", "value", "numerator", "denominator", "ci_low", "ci_high"]], on=["stage", "kpi"],
        suffixes=("_before", "_after"))
    out["difference"] = out["value_after"] - out["value_before"]
    p = np.full(len(out), np.nan)
    share = (out["unit"] == "share").to_numpy()
    k1, n1 = out["numerator_before"].to_numpy(float), out["denominator_before"].to_numpy(float)
    k2, n2 = out["numerator_after"].to_numpy(float), out["denominator_after"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        pooled = (k1 + k2) / (n1 + n2)
        se = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
        z = (k2 / n2 - k1 / n1) / se
        p = np.where(share & (se > 0), 2 * norm.sf(np.abs(z)), p)
        nps = (out["kpi"] == "nps").to_numpy()
        se_nps = np.sqrt(((out["value_before"] - out["ci_low_before"]) / Z95) ** 2
                         + ((out["value_after"] - out["ci_low_after"]) / Z95) ** 2).to_numpy()
        p = np.where(nps & (se_nps > 0), 2 * norm.sf(np.abs(out["difference"].to_numpy() / se_nps)), p)
    out["p"] = p
    out["p_holm"] = holm_adjust(p)  # a dozen KPIs tested at once: control the family-wise error
    out["significant"] = out["p_holm"] < 0.05
    out.attrs.update(split_at=split, before=(start, split), after=(split, end))
    return out[_CHANGE_COLUMNS]


def _fmt(value: float, unit: str) -> str:
    if pd.isna(value):
        return "unavailable"
    if unit == "share":
        return f"{value:.1%}"
    if unit in ("users", "count"):
        return f"{value:,.0f}"
    if unit == "score":
        return f"{value:+.1f}"
    return f"{value:.2f} {unit}"


def kpi_display(kpis: pd.DataFrame) -> pd.DataFrame:
    """:func:`stage_kpis` as text for a report table: stage, KPI, value with its unit, interval, definition."""
    from helpers.journey.satisfaction import MIN_RESPONSES, too_few_responses

    interval = [("" if pd.isna(lo) else f"{_fmt(lo, u)} – {_fmt(hi, u)}")
                for lo, hi, u in zip(kpis["ci_low"], kpis["ci_high"], kpis["unit"])]
    value = [f"too few responses ({int(n)} of {MIN_RESPONSES} needed)" if few else _fmt(v, u)
             for v, u, n, few in zip(kpis["value"], kpis["unit"], kpis["denominator"].fillna(0),
                                     too_few_responses(kpis))]
    return pd.DataFrame({"Stage": kpis["stage"], "KPI": kpis["kpi"].str.replace("_", " "), "Value": value,
                         "95% CI": interval, "Definition": kpis["definition"]})


def changes_display(changes: pd.DataFrame) -> pd.DataFrame:
    """:func:`journey_changes` as text: before, after, change, p-value."""
    units = changes["unit"]
    diff = [("" if pd.isna(d) else (f"{d * 100:+.1f} pts" if u == "share" else f"{d:+,.2f}"))
            for d, u in zip(changes["difference"], units)]
    from helpers.units import format_value

    return pd.DataFrame({"Stage": changes["stage"], "KPI": changes["kpi"].str.replace("_", " "),
                         "Before": [_fmt(v, u) for v, u in zip(changes["value_before"], units)],
                         "After": [_fmt(v, u) for v, u in zip(changes["value_after"], units)],
                         "Change": diff, "p (Holm-adjusted)": changes["p_holm"].map(lambda p: format_value(p, "p_value"))})


def changes_headline(changes: pd.DataFrame) -> str:
    """One sentence: the windows compared and the significant changes, largest first."""
    before, after = changes.attrs.get("before"), changes.attrs.get("after")
    if changes.attrs.get("refused"):
        return f"No before/after comparison: {changes.attrs['refused']}."
    span = (f"{before[0]:%Y-%m-%d} to {before[1]:%Y-%m-%d} against {after[0]:%Y-%m-%d} to {after[1]:%Y-%m-%d}"
            if before else "before and after the split")
    sig = changes[changes["significant"]]
    if sig.empty:
        return f"Comparing {span}: no KPI changed significantly (Holm-adjusted p < 0.05)."
    sig = sig.reindex(sig["difference"].abs().sort_values(ascending=False).index)
    parts = [f"{r['kpi'].replace('_', ' ')} {_fmt(r['value_before'], r['unit'])} → {_fmt(r['value_after'], r['unit'])}"
             for r in sig.head(4).to_dict("records")]
    return f"Comparing {span}, significant changes (Holm-adjusted p < 0.05): " + "; ".join(parts) + "."


def midpoint(events: pd.DataFrame | ibis.Table) -> pd.Timestamp:
    """The midpoint of the data's time range, a default date to compare before and after."""
    t = as_ibis(events)
    span = t.aggregate(a=t.timestamp.min(), b=t.timestamp.max()).execute().iloc[0]
    a, b = to_utc(span["a"]), to_utc(span["b"])
    return (a + (b - a) / 2).floor("D")
