"""Is it getting better, and how long does it take: funnel conversion by entry period, and time to convert.

:func:`funnel_trend` counts one :func:`compute_funnel` run by the period in
which people entered: each row is exactly what ``compute_funnel`` gives when
rerun on that period's entrants. A period is *final* once its last entrant's
window has closed by ``observed_until``; before that its conversion can still
rise (people in progress are not drop-offs), so charts draw it apart and
takeaways never read it as a drop.

:func:`time_to_convert` describes how long converters took between two steps
(histogram, mean, percentiles) and draws a Kaplan-Meier "still not converted"
curve over everyone who reached the first step, in which people whose window
is still open are censored at ``observed_until`` and people whose window
closed without converting are censored at its end (the funnel cannot see a
later conversion).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import ibis
import numpy as np
import pandas as pd

from helpers.funnel.engine import FunnelResult, compute_funnel
from helpers.io import EventDataError
from helpers.stats import wilson_interval
from helpers.units import declare, human_duration

__all__ = ["TimeToConvert", "funnel_trend", "time_to_convert", "trend_headline"]

MAX_AUTO_BINS = 60


def _step_number(n: int, step: int, name: str) -> int:
    k = n + 1 + step if step < 0 else step
    if not 1 <= k <= n:
        raise EventDataError(f"{name}={step}: the funnel has steps 1..{n} (negative numbers count from the end).")
    return k


def _period_starts(times: pd.Series, period: str) -> pd.Series:
    try:
        starts = times.dt.tz_convert("UTC").dt.tz_localize(None).dt.to_period(period).dt.start_time
    except (ValueError, TypeError) as exc:
        raise EventDataError(f"period={period!r} is not a pandas period ('D', 'W', 'W-SUN', 'M', 'Q'): {exc}") from None
    return starts.dt.tz_localize("UTC")


def funnel_trend(
    events: pd.DataFrame | ibis.Table,
    steps: list,
    *,
    period: str = "W",
    from_step: int = 1,
    to_step: int = -1,
    by: Any = None,
    **funnel_kwargs: Any,
) -> pd.DataFrame:
    """Conversion from ``from_step`` to ``to_step`` by the period people entered ``from_step`` (and segment).

    One row per period (every period from the first entry to the last, empty ones included) and segment:
    ``period_start``, ``entered`` (reached ``from_step``), ``converted`` (reached ``to_step``),
    ``conversion`` with its Wilson interval, ``in_progress`` (not converted, window still open) and
    ``is_final`` (the period's last entrant's window has closed by ``observed_until``). Steps are numbered
    from 1; -1 is the last. ``funnel_kwargs`` go to :func:`compute_funnel` (``conversion_window``, ``order``,
    ``exclusions``, ``observed_until``...); the result is in ``table.attrs["funnel"]``.

    Examples
    --------
    >>> ts = pd.to_datetime(["2025-01-06", "2025-01-07", "2025-01-13", "2025-01-20"], utc=True)
    >>> ev = pd.DataFrame({"user_id": ["a", "a", "b", "c"], "event": ["visit", "buy", "visit", "visit"],
    ...                    "timestamp": ts})
    >>> t = funnel_trend(ev, ["visit", "buy"], conversion_window="2D")
    >>> t[["entered", "converted", "in_progress", "is_final"]].values.tolist()
    [[1, 1, 0, True], [1, 0, 0, True], [1, 0, 1, False]]
    """
    result = compute_funnel(events, steps, by=by, **funnel_kwargs)
    n = len(result.steps)
    k_from, k_to = _step_number(n, from_step, "from_step"), _step_number(n, to_step, "to_step")
    if k_to <= k_from:
        raise EventDataError(f"to_step ({to_step}) must come after from_step ({from_step}).")
    pu = result.per_user
    entered = pu[pu["furthest_step"] >= k_from]
    entry = entered[f"step_{k_from}_at"]
    segment = entered[result.by] if result.by else pd.Series("all", index=entered.index)
    converted = entered["furthest_step"] >= k_to
    window_end = entered["attempt_start"] + result.conversion_window  # windows run from the attempt's start
    people = pd.DataFrame({"segment": segment.astype(str).to_numpy(), "period_start": _period_starts(entry, period),
                           "converted": converted.to_numpy(),
                           "in_progress": (~converted & (window_end > result.observed_until)).to_numpy(),
                           "window_end": window_end.to_numpy()})
    if people.empty:
        out = pd.DataFrame(columns=["period_start", "entered", "converted", "conversion", "conversion_low",
                                    "conversion_high", "in_progress", "is_final"])
    else:
        g = people.groupby(["segment", "period_start"])
        out = pd.DataFrame({"entered": g.size(), "converted": g["converted"].sum(),
                            "in_progress": g["in_progress"].sum(), "last_window_end": g["window_end"].max()})
        # every period from the first entry to the last, for every segment (an empty week is a zero, not a gap)
        first, last = people["period_start"].min(), people["period_start"].max()
        grid = _period_starts(pd.Series(pd.date_range(first, last, freq="D", tz="UTC")), period).drop_duplicates()
        full = pd.MultiIndex.from_product([sorted(people["segment"].unique()), grid], names=["segment", "period_start"])
        out = out.reindex(full).reset_index()
        for c in ("entered", "converted", "in_progress"):
            out[c] = out[c].fillna(0).astype(np.int64)
        lo, hi = wilson_interval(out["converted"].to_numpy(float), out["entered"].to_numpy(float))
        with np.errstate(divide="ignore", invalid="ignore"):
            out["conversion"] = out["converted"] / out["entered"].where(out["entered"] > 0)
        out["conversion_low"], out["conversion_high"] = lo, hi
        last_end = pd.to_datetime(out["last_window_end"], utc=True)
        out["is_final"] = (last_end.isna() | (last_end <= result.observed_until)).to_numpy(bool)  # empty: final
        out = out.drop(columns="last_window_end")
        if result.by:
            out = out.rename(columns={"segment": result.by})
        else:
            out = out.drop(columns="segment")
    out.attrs["funnel"] = result
    out.attrs["from_step"], out.attrs["to_step"] = result.steps[k_from - 1].label, result.steps[k_to - 1].label
    return declare(out, {"entered": "count", "converted": "count", "in_progress": "count", "conversion": "rate",
                         "conversion_low": "rate", "conversion_high": "rate"},
                   headers={"period_start": "entered in the period from", "is_final": "final"})


def trend_headline(trend: pd.DataFrame) -> str:
    """One sentence comparing the latest final period with the one before (non-final periods are named apart).

    Examples
    --------
    >>> trend_headline(pd.DataFrame(columns=["period_start", "entered", "converted", "is_final"]))
    'No one entered the funnel, so there is no trend to read.'
    """
    if trend.empty or int(trend["entered"].sum()) == 0:
        return "No one entered the funnel, so there is no trend to read."
    seg_cols = [c for c in trend.columns if c not in {"period_start", "entered", "converted", "conversion",
                                                       "conversion_low", "conversion_high", "in_progress", "is_final"}]
    pooled = trend.groupby("period_start", as_index=False).agg(entered=("entered", "sum"),
                                                                converted=("converted", "sum"),
                                                                is_final=("is_final", "all"))
    final = pooled[pooled["is_final"] & (pooled["entered"] > 0)]
    open_periods = int((~pooled["is_final"]).sum())
    tail = (f" The latest {open_periods} period(s) are not final yet (people still inside their window), so their "
            "lower conversion is not a drop." if open_periods else "")
    what = f"{trend.attrs.get('from_step', 'the first step')} → {trend.attrs.get('to_step', 'the last step')}"
    if len(final) < 2:
        return f"Fewer than two final periods for {what}: too early to read a trend." + tail
    cur, prev = final.iloc[-1], final.iloc[-2]
    c, p = cur["converted"] / cur["entered"], prev["converted"] / prev["entered"]
    (lo_c,), (hi_c,) = wilson_interval(np.array([cur["converted"]], float), np.array([cur["entered"]], float))
    (lo_p,), (hi_p,) = wilson_interval(np.array([prev["converted"]], float), np.array([prev["entered"]], float))
    overlap = lo_c <= hi_p and lo_p <= hi_c
    verdict = ("within the noise of the two periods (their 95% intervals overlap)" if overlap else
               ("up" if c > p else "down") + " beyond the noise (their 95% intervals do not overlap)")
    by_note = f" (all {', '.join(seg_cols)} segments together)" if seg_cols else ""
    return (f"{what} conversion{by_note} was {c:.1%} for people who entered from {cur['period_start']:%Y-%m-%d} "
            f"({int(cur['entered']):,} people) against {p:.1%} the period before: {verdict}." + tail)


@dataclass
class TimeToConvert:
    """How long converters took from one step to another.

    ``histogram``: ``bin_start``, ``bin_end`` (durations), ``converters``. ``summary``: ``statistic``
    (``converters``, ``mean``, ``p25`` ... ``p99``) and ``value`` (a duration; the count for converters).
    ``curve``: Kaplan-Meier ``timeline`` (hours), ``still_not_converted`` with ``ci_low``/``ci_high``, over
    everyone who reached the first step (censored: window still open, or closed without converting).
    """

    histogram: pd.DataFrame
    summary: pd.DataFrame
    curve: pd.DataFrame
    from_step: str
    to_step: str
    entered: int
    converters: int
    censored_in_progress: int

    def percentiles(self) -> pd.DataFrame:
        """``summary`` as one row (converters, mean, p25 ... p99), declared as durations for the report."""
        row = pd.DataFrame([self.summary.set_index("statistic")["value"].to_dict()])
        row["converters"] = row["converters"].astype(np.int64)
        kinds = {c: "duration" for c in row.columns if c != "converters"}
        return declare(row, {"converters": "count", **kinds}, headers={"p25": "25%", "p50": "median", "p75": "75%",
                                                                       "p90": "90%", "p95": "95%", "p99": "99%"})

    def headline(self) -> str:
        """One sentence: median and 90th percentile, and how many were still in progress."""
        if not self.converters:
            return f"Nobody went from {self.from_step} to {self.to_step} yet, so there is no time to convert."
        s = self.summary.set_index("statistic")["value"]
        return (f"Of {self.entered:,} people who reached {self.from_step}, {self.converters:,} reached {self.to_step}: "
                f"half of them within {human_duration(s['p50'])}, 90% within {human_duration(s['p90'])}"
                + (f"; {self.censored_in_progress:,} still inside their window are counted as not converted yet, "
                   "not as never." if self.censored_in_progress else "."))


def _edges(hours: np.ndarray, bins: str | int, bin_width: Any) -> np.ndarray:
    if bin_width is not None:
        width = pd.Timedelta(bin_width) / pd.Timedelta(hours=1)
        if width <= 0:
            raise EventDataError(f"bin_width must be positive, got {bin_width!r}.")
        top = max(float(hours.max()) if len(hours) else 0.0, 0.0)
        # edges at fixed multiples of the width from 0: they do not move when the data changes
        return np.arange(0, (np.floor(top / width) + 2) * width, width)[: int(np.floor(top / width)) + 2]
    if len(hours) == 0:
        return np.array([0.0, 1.0])
    if isinstance(bins, (int, np.integer)) and not isinstance(bins, bool):
        if bins < 1:
            raise EventDataError(f"bins must be at least 1, got {bins}.")
        return np.linspace(0, max(float(hours.max()), 1e-9), int(bins) + 1)
    if bins != "auto":
        raise EventDataError(f"bins must be 'auto' or a number of bins, got {bins!r}.")
    edges = np.histogram_bin_edges(hours, bins="auto", range=(0, max(float(hours.max()), 1e-9)))
    if len(edges) - 1 > MAX_AUTO_BINS:
        edges = np.linspace(0, float(hours.max()), MAX_AUTO_BINS + 1)
    return edges


def time_to_convert(result: FunnelResult, from_step: int = 1, to_step: int = -1, *, bins: str | int = "auto",
                    bin_width: str | pd.Timedelta | None = None) -> TimeToConvert:
    """Time from ``from_step`` to ``to_step`` (1-based; -1 the last) for the people of ``result``.

    ``bins``: ``"auto"`` (numpy's rule, at most 60 bins) or a number of equal bins from 0; ``bin_width``
    (e.g. ``"1h"``, ``"1D"``) fixes the bins at multiples of the width instead, so they stay put as data
    arrives. Percentiles interpolate linearly between converters.

    Examples
    --------
    >>> ts = pd.Timestamp("2025-01-01", tz="UTC")
    >>> ev = pd.DataFrame({"user_id": ["a", "a", "b", "b", "c", "c"], "event": ["visit", "buy"] * 3,
    ...                    "timestamp": [ts, ts + pd.Timedelta(hours=1), ts, ts + pd.Timedelta(hours=2),
    ...                                  ts, ts + pd.Timedelta(hours=10)]})
    >>> r = time_to_convert(compute_funnel(ev, ["visit", "buy"], conversion_window="1D"))
    >>> r.summary.set_index("statistic").loc["p50", "value"]
    Timedelta('0 days 02:00:00')
    >>> int(r.histogram["converters"].sum())
    3
    """
    from helpers.retention import survival_curves

    n = len(result.steps)
    k_from, k_to = _step_number(n, from_step, "from_step"), _step_number(n, to_step, "to_step")
    if k_to <= k_from:
        raise EventDataError(f"to_step ({to_step}) must come after from_step ({from_step}).")
    pu = result.per_user
    entered = pu[pu["furthest_step"] >= k_from]
    t_from = entered[f"step_{k_from}_at"]
    converted = (entered["furthest_step"] >= k_to).to_numpy()
    took = (entered[f"step_{k_to}_at"] - t_from)[converted]
    hours = (took / pd.Timedelta(hours=1)).to_numpy(float)
    edges = _edges(hours, bins, bin_width)
    counts, _ = np.histogram(hours, bins=edges)
    histogram = pd.DataFrame({"bin_start": pd.to_timedelta(edges[:-1], unit="h"),
                              "bin_end": pd.to_timedelta(edges[1:], unit="h"), "converters": counts.astype(np.int64)})
    qs = {"p25": 25, "p50": 50, "p75": 75, "p90": 90, "p95": 95, "p99": 99}
    values: dict[str, Any] = {"converters": int(converted.sum())}
    values["mean"] = took.mean() if len(took) else pd.NaT
    for name, q in qs.items():
        values[name] = pd.Timedelta(hours=float(np.percentile(hours, q))) if len(hours) else pd.NaT
    summary = pd.DataFrame({"statistic": list(values), "value": list(values.values())})

    # Kaplan-Meier over everyone who reached from_step: censored at the window's end, or at observed_until
    window_end = np.minimum(entered["attempt_start"] + result.conversion_window, result.observed_until)
    follow = np.where(converted, (entered[f"step_{k_to}_at"] - t_from) / pd.Timedelta(hours=1),
                      (window_end - t_from) / pd.Timedelta(hours=1))
    in_progress = ~converted & (entered["attempt_start"] + result.conversion_window > result.observed_until).to_numpy()
    if len(entered):
        km = survival_curves(pd.DataFrame({"hours": np.maximum(follow.astype(float), 0.0), "converted": converted}),
                             duration_col="hours", event_col="converted", at=())
        curve = km.table.rename(columns={"survival": "still_not_converted"})[
            ["timeline", "still_not_converted", "ci_low", "ci_high", "at_risk", "events", "censored"]]
    else:
        curve = pd.DataFrame(columns=["timeline", "still_not_converted", "ci_low", "ci_high", "at_risk", "events",
                                      "censored"])
    declare(histogram, {"bin_start": "duration", "bin_end": "duration", "converters": "count"})
    return TimeToConvert(histogram, summary, curve, result.steps[k_from - 1].label, result.steps[k_to - 1].label,
                         len(entered), int(converted.sum()), int(in_progress.sum()))
