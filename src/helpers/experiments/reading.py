"""What an experiment readout says, in sentences a stakeholder can act on, and the call per variant.

The call (:func:`decisions`) follows these rules, in order:

1. The split is broken (sample ratio mismatch): **fix the split**, whatever the metrics say.
2. The primary metric (the first one unless named) is judged on the CUPED-adjusted result when there is one,
   else the raw one; on the always-valid interval when the readout is sequential (it may have been looked at
   daily), else on the Holm-adjusted p value and the fixed interval.
3. Better with confidence: **ship**, unless a guardrail (any other metric) is worse with confidence, then
   **don't ship** (the guardrail named).
4. Worse with confidence: **don't ship**.
5. No confident difference: **don't ship** when ``minimum_effect`` is given and the whole interval lies below
   it (the change cannot be worth it); otherwise **keep running** (the interval still holds both no effect
   and a worthwhile one).

"Better" is higher, except for metrics named in ``lower_is_better`` (support tickets, cancellations).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ibis
import numpy as np
import pandas as pd

from helpers.experiments.metrics import Metric, as_metric, load_assignments
from helpers.experiments.readout import Readout
from helpers.io import as_ibis, event_names
from helpers.units import declare

CALLS = ("ship", "don't ship", "keep running", "fix the split")


def _number(x: float, kind: str) -> str:
    if kind == "conversion":
        return f"{100 * x:+.1f} points"
    return f"{x:+,.3g}" if abs(x) < 100 else f"{x:+,.0f}"


def _pct(x: float) -> str:
    return "n/a" if not np.isfinite(x) else f"{100 * x:+.1f}%"


def split_headline(r: Readout) -> str:
    """The split's health in a sentence: the persons per variant against the plan, and whether to trust what
    follows.

    Examples
    --------
    >>> from helpers.experiments import readout, conversion
    >>> t0 = pd.Timestamp("2024-01-01", tz="UTC")
    >>> a = pd.DataFrame({"user_id": [str(i) for i in range(2200)], "variant": ["A"] * 1000 + ["B"] * 1200,
    ...                   "assigned_at": t0})
    >>> ev = pd.DataFrame({"user_id": ["1"], "event": ["buy"], "timestamp": [t0]})
    >>> split_headline(readout(ev, a, ["buy"], control="A", observed_until=t0 + pd.Timedelta("1D")))[:62]
    'The split is broken: 1,000 persons in A and 1,200 in B, where '
    """
    srm = r.srm
    counts = " and ".join(f"{int(n):,} in {v}" if i else f"{int(n):,} persons in {v}"
                          for i, (v, n) in enumerate(zip(srm["variant"], srm["persons"])))
    plan = "/".join(f"{100 * w:.0f}" for w in srm["weight"])
    p = f"p = {r.srm_p:.2g}"
    if not r.split_ok:
        return (f"The split is broken: {counts}, where the plan was {plan} ({p}, sample ratio mismatch). "
                "Something assigns or logs one variant differently from the other; do not trust the results "
                "below until that is found and fixed.")
    return f"The split is healthy: {counts} against a planned {plan} ({p}); the comparison below can be read."


def _confident(row: pd.Series, sequential: bool, alpha: float) -> tuple[int, float, float]:
    """(+1 / -1 / 0: the direction of a confident difference, and the interval it was judged on)."""
    if sequential and "cs_low" in row.index:
        lo, hi = float(row["cs_low"]), float(row["cs_high"])
        return (1 if lo > 0 else -1 if hi < 0 else 0), lo, hi
    lo, hi = float(row["ci_low"]), float(row["ci_high"])
    if row["p_adjusted"] < alpha:
        return (1 if row["difference"] > 0 else -1), lo, hi
    return 0, lo, hi


def _directions(rows: pd.DataFrame, sequential: bool, alpha: float) -> np.ndarray:
    """:func:`_confident`'s direction for every row of a result table."""
    if sequential and "cs_low" in rows.columns:
        return np.where(rows["cs_low"] > 0, 1, np.where(rows["cs_high"] < 0, -1, 0))
    return np.where(rows["p_adjusted"] < alpha, np.sign(rows["difference"]), 0).astype(int)


def decisions(r: Readout, *, primary: str | None = None, lower_is_better: Sequence[str] = (),
              minimum_effect: float | None = None) -> pd.DataFrame:
    """The call per variant (rules in :mod:`helpers.experiments.reading`): ``variant``, ``call``, ``metric``,
    ``difference`` and the interval it was judged on, ``judged_on`` and ``reason``.

    Parameters
    ----------
    r : a :func:`~helpers.experiments.readout`.
    primary : the metric the decision rests on (default: the first).
    lower_is_better : metrics for which a fall is the improvement.
    minimum_effect : the smallest improvement of the primary metric worth shipping (in its units: 0.01 is one
        point of a conversion); with it, an interval wholly below it gives "don't ship" instead of
        "keep running".

    Examples
    --------
    >>> from helpers.experiments import readout, conversion
    >>> t0 = pd.Timestamp("2024-01-01", tz="UTC")
    >>> a = pd.DataFrame({"user_id": [str(i) for i in range(2000)], "variant": ["A", "B"] * 1000,
    ...                   "assigned_at": t0})
    >>> buyers = [str(i) for i in range(0, 2000, 4)] + [str(i) for i in range(1, 2000, 8)]  # 50% of A, 25% of B
    >>> ev = pd.DataFrame({"user_id": buyers, "event": "buy", "timestamp": t0 + pd.Timedelta("1h")})
    >>> d = decisions(readout(ev, a, ["buy"], control="A", observed_until=t0 + pd.Timedelta("2D")))
    >>> d[["variant", "call"]].values.tolist()
    [['B', "don't ship"]]
    """
    names = [m.name for m in r.metrics]
    primary = primary or names[0]
    if primary not in names:
        raise ValueError(f"primary={primary!r} is not a metric of the readout ({', '.join(names)}).")
    res = r.results
    if "segment" in res.columns:
        res = res[res["segment"].isna()] if res["segment"].isna().any() else res
    adjustment = "cuped" if r.cuped and (res["adjustment"] == "cuped").any() else "none"
    res = res[res["adjustment"] == adjustment]
    judged_on = ("always-valid, safe to look at daily" if r.sequential else "Holm-adjusted") + (
        ", CUPED" if adjustment == "cuped" else "")
    rows = []
    for variant in [v for v in r.variants if v != r.control]:
        mine = res[res["variant"] == variant]
        prow = mine[mine["metric"] == primary].iloc[0]
        sign = -1 if primary in lower_is_better else 1
        direction, lo, hi = _confident(prow, r.sequential, r.alpha)
        direction *= sign
        others = mine[mine["metric"] != primary]
        better_sign = np.where(others["metric"].isin(list(lower_is_better)), -1, 1)
        worse = others["metric"][_directions(others, r.sequential, r.alpha) * better_sign < 0].astype(str).tolist()
        effect = f"{_number(prow['difference'], prow['kind'])} ({_pct(prow['relative_lift'])})"
        if not r.split_ok:
            call, reason = "fix the split", "the split is broken, so no difference can be trusted"
        elif direction > 0 and worse:
            call, reason = "don't ship", f"{primary} is better ({effect}) but {', '.join(worse)} is worse"
        elif direction > 0:
            call, reason = "ship", f"{primary} is better: {effect}"
        elif direction < 0:
            call, reason = "don't ship", f"{primary} is worse: {effect}"
        else:
            best = hi if sign > 0 else -lo
            if minimum_effect is not None and best < minimum_effect:
                call, reason = "don't ship", (f"no difference shown, and even the best case "
                                              f"({_number(sign * best, prow['kind'])}) is below the minimum "
                                              f"worth shipping")
            else:
                call, reason = "keep running", f"no difference shown yet ({effect}; the interval includes zero)"
        rows.append({"variant": variant, "call": call, "metric": primary, "difference": float(prow["difference"]),
                     "low": lo, "high": hi, "judged_on": judged_on, "reason": reason})
    return declare(pd.DataFrame(rows), {"variant": "text", "call": "text", "metric": "text",
                                        "difference": "estimate", "low": "estimate", "high": "estimate",
                                        "judged_on": "text", "reason": "text"})


def readout_headline(r: Readout, *, primary: str | None = None, lower_is_better: Sequence[str] = (),
                     minimum_effect: float | None = None) -> str:
    """The takeaway: the split first, then the call per variant with the effect on the primary metric and its
    interval. Says "ship" or "don't ship" only when the numbers support it (see :func:`decisions`).

    Examples
    --------
    >>> from helpers.experiments import readout
    >>> t0 = pd.Timestamp("2024-01-01", tz="UTC")
    >>> a = pd.DataFrame({"user_id": [str(i) for i in range(400)], "variant": ["A", "B"] * 200, "assigned_at": t0})
    >>> ev = pd.DataFrame({"user_id": [str(i) for i in range(0, 400, 4)] + [str(i) for i in range(1, 400, 6)],
    ...                    "event": "buy", "timestamp": t0})  # 50% of A bought, 33.5% of B
    >>> readout_headline(readout(ev, a, ["buy"], control="A", observed_until=t0 + pd.Timedelta("1D")))
    "Don't ship B: buy is worse: -16.5 points (-33.0%). The 95% interval runs from -26.1 points to -6.9 points (Holm-adjusted, CUPED)."
    """
    d = decisions(r, primary=primary, lower_is_better=lower_is_better, minimum_effect=minimum_effect)
    if not r.split_ok:
        return split_headline(r)
    parts = []
    for row in d.itertuples():
        verb = {"ship": "Ship", "don't ship": "Don't ship", "keep running": "Keep running"}[row.call]
        kind = next(m.kind for m in r.metrics if m.name == row.metric)
        parts.append(f"{verb} {row.variant}: {row.reason}. The {100 * (1 - r.alpha):.0f}% interval runs from "
                     f"{_number(row.low, kind)} to {_number(row.high, kind)} ({row.judged_on}).")
    return " ".join(parts)


def cuped_headline(r: Readout) -> str:
    """How much CUPED narrowed each metric's interval, and why it could not where it did not.

    Examples
    --------
    >>> from helpers.experiments import readout
    >>> t0 = pd.Timestamp("2024-01-01", tz="UTC")
    >>> a = pd.DataFrame({"user_id": ["1", "2", "3", "4"], "variant": ["A", "B"] * 2, "assigned_at": t0})
    >>> ev = pd.DataFrame({"user_id": ["1", "2"], "event": "buy", "timestamp": t0})
    >>> cuped_headline(readout(ev, a, ["buy"], control="A", observed_until=t0 + pd.Timedelta("1D")))[:52]
    'CUPED could not narrow any interval: nobody did the '
    """
    if not r.cuped:
        return "CUPED was switched off: the intervals are the raw ones."
    res = r.results
    if "segment" in res.columns:
        res = res[res["segment"].isna()] if res["segment"].isna().any() else res
    raw = res[res["adjustment"] == "none"].set_index(["metric", "variant"])
    adj = res[res["adjustment"] == "cuped"].set_index(["metric", "variant"])
    width = ((adj["ci_high"] - adj["ci_low"]) / (raw["ci_high"] - raw["ci_low"])).groupby(level=0).mean()
    reduction = adj["variance_reduction"].groupby(level=0).mean()
    helped = reduction[reduction > 0.01].sort_values(ascending=False)
    pre = f"the {r.pre_period.days}-day pre-period" if r.pre_period is not None else "the pre-period"
    if helped.empty:
        return (f"CUPED could not narrow any interval: nobody did the metric's events in {pre} before their "
                "assignment often enough to predict what they did after it (in an experiment on new users, such "
                "as one assigned at signup, there is no history to use). The raw and adjusted results agree.")
    parts = [f"{m} by {100 * (1 - width[m]):.0f}% (variance {100 * reduction[m]:.0f}% lower)" for m in helped.index]
    rest = [m for m in reduction.index if m not in helped.index]
    text = f"Using {pre} as the covariate, CUPED narrowed the interval of " + "; ".join(parts) + "."
    if rest:
        text += f" It could not help {', '.join(rest)}: too little pre-period behaviour predicts it."
    return text


@dataclass
class ExperimentInputs:
    """What an experiment run on these events can use (:func:`experiment_inputs`): the assignments (a table,
    or the exposure event's name), the metrics that have events, the segment column, and ``cannot``: why no
    readout can run (``None`` when one can). ``notes`` say what was left out."""

    assignments: pd.DataFrame | str | None
    metrics: list[Metric]
    by: str | None
    cannot: str | None
    notes: list[str]


def experiment_inputs(events: pd.DataFrame | ibis.Table, metrics: Sequence[Metric | str | Mapping[str, Any]], *,
                      control: str, assignments: str | os.PathLike[str] | pd.DataFrame | None = None,
                      experiment: str | None = None, exposure_event: str | None = None,
                      variant_column: str = "variant", users: pd.DataFrame | None = None,
                      by: str | Sequence[str] | None = None) -> ExperimentInputs:
    """Check what a readout on these events can use, so that a report section says why it cannot run instead of
    failing: the assignments (``exposure_event`` when given, else the ``assignments`` file or table), the
    metrics with at least one of their events in the data (the others left out and named), the control among
    the variants, and the first of ``by`` that the assignments (with ``users`` joined) have.

    Examples
    --------
    >>> ev = pd.DataFrame({"user_id": ["a"], "event": ["buy"], "timestamp": pd.to_datetime(["2024-01-01"], utc=True)})
    >>> experiment_inputs(ev, ["buy"], control="A").cannot
    'There is no assignment table and no exposure event, so there is no experiment to read.'
    >>> a = pd.DataFrame({"user_id": ["a", "b"], "variant": ["A", "B"], "assigned_at": ["2024-01-01"] * 2})
    >>> i = experiment_inputs(ev, ["buy", "refund"], control="A", assignments=a)
    >>> [m.name for m in i.metrics], i.notes
    (['buy'], ['No refund event in the data: that metric is left out.'])
    """
    specs = [as_metric(m) for m in metrics]
    notes: list[str] = []

    def cannot(why: str) -> ExperimentInputs:
        return ExperimentInputs(None, specs, None, why, notes)

    t = as_ibis(events)
    if exposure_event:
        if variant_column not in t.columns:
            return cannot(f"The events have no {variant_column} column, so the {exposure_event} exposures name no "
                          "variant.")
        n = t.filter(t.event == exposure_event).count().execute()
        if not n:
            return cannot(f"No {exposure_event} exposure event in the data, so nobody is assigned.")
        table: pd.DataFrame | str = exposure_event
        variants = set(t.filter(t.event == exposure_event)[variant_column].cast("string").name("v").as_table()
                       .distinct().to_pandas()["v"].dropna())
        columns: list[str] = []
    elif assignments is None:
        return cannot("There is no assignment table and no exposure event, so there is no experiment to read.")
    else:
        if not isinstance(assignments, pd.DataFrame) and not Path(assignments).exists():
            return cannot(f"There is no assignment table at {Path(assignments).name}, so there is no experiment "
                          "to read (give assignments_path, or exposure_event for an exposure logged as an event).")
        table = load_assignments(assignments, experiment=experiment, users=users)
        variants = set(table["variant"].dropna().astype(str))
        columns = list(table.columns)
    if control not in variants:
        return cannot(f"The control {control} is not a variant of this experiment (variants: "
                      f"{', '.join(sorted(variants)) or 'none'}).")
    if len(variants) < 2:
        return cannot(f"The experiment has only one variant ({control}); there is nothing to compare.")
    present = event_names(t)
    keep = []
    for m in specs:
        needed = m.steps if m.steps else m.events
        missing = [str(e) for e in needed if isinstance(e, str) and e not in present]
        if missing:
            notes.append(f"No {', '.join(missing)} event in the data: that metric is left out.")
        elif m.kind == "value" and m.column not in t.columns:
            notes.append(f"The events have no {m.column} column: the {m.name} metric is left out.")
        else:
            keep.append(m)
    if not keep:
        return ExperimentInputs(None, [], None, "None of the metrics' events is in the data, so nothing can "
                                "be compared. " + " ".join(notes), notes)
    wanted = [by] if isinstance(by, str) else list(by or [])
    segment = next((c for c in wanted if c in columns), None)
    return ExperimentInputs(table, keep, segment, None, notes)


def sequential_headline(r: Readout, metric: str | None = None) -> str:
    """When the always-valid interval of ``metric`` (default: the first) first excluded zero, if it did, and
    how that compares with the fixed-horizon interval looked at daily.

    Examples
    --------
    >>> t0 = pd.Timestamp("2024-01-01", tz="UTC")
    >>> a = pd.DataFrame({"user_id": [str(i) for i in range(40)], "variant": ["A", "B"] * 20,
    ...                   "assigned_at": t0 + pd.to_timedelta(range(40), unit="h")})
    >>> ev = pd.DataFrame({"user_id": [str(i) for i in range(0, 40, 3)], "event": "buy", "timestamp": t0 + pd.Timedelta("3D")})
    >>> from helpers.experiments import readout
    >>> r = readout(ev, a, ["buy"], control="A", post_period="2D", observed_until=t0 + pd.Timedelta("6D"), sequential=True)
    >>> sequential_headline(r)[:60]
    'Looked at daily, the always-valid interval of buy never excl'
    """
    if r.sequential_view is None or not len(r.sequential_view):
        return "The readout was not sequential, so its intervals hold for one look at the end only."
    metric = metric or r.metrics[0].name
    v = r.sequential_view[r.sequential_view["metric"] == metric]
    parts = []
    for variant, g in v.groupby("variant", sort=False):
        cs = g[(g["cs_low"] > 0) | (g["cs_high"] < 0)]
        ci = g[(g["ci_low"] > 0) | (g["ci_high"] < 0)]
        if len(cs):
            first = cs.iloc[0]
            parts.append(f"the always-valid interval of {metric} for {variant} first excluded zero on "
                         f"{first['look']:%Y-%m-%d}, with {int(first['persons']):,} persons")
        else:
            parts.append(f"the always-valid interval of {metric} for {variant} never excluded zero")
        if len(ci):
            parts[-1] += (f" (the fixed-horizon interval did so first on {ci.iloc[0]['look']:%Y-%m-%d}, but it is "
                          "only valid for one look)")
    text = "Looked at daily, " + "; ".join(parts) + "."
    if len(parts) == 1:
        text = text.replace(f" for {v['variant'].iloc[0]}", "") if len(v) else text
    return text


def segments_headline(r: Readout, primary: str | None = None) -> str:
    """Which segments of a readout ``by`` a column show a difference in ``primary`` after Holm's correction
    over metrics × variants × segments, and which do not.

    Examples
    --------
    >>> t0 = pd.Timestamp("2024-01-01", tz="UTC")
    >>> a = pd.DataFrame({"user_id": [str(i) for i in range(8)], "variant": ["A", "B"] * 4, "assigned_at": t0,
    ...                   "plan": ["x"] * 4 + ["y"] * 4})
    >>> ev = pd.DataFrame({"user_id": ["1"], "event": ["buy"], "timestamp": [t0]})
    >>> from helpers.experiments import readout
    >>> segments_headline(readout(ev, a, ["buy"], control="A", by="plan", observed_until=t0))
    'After Holm correction over 2 segments, no segment shows a difference in buy.'
    """
    if "segment" not in r.results.columns:
        return "The readout has no segments."
    primary = primary or r.metrics[0].name
    adjustment = "cuped" if r.cuped else "none"
    s = r.results[(r.results["metric"] == primary) & (r.results["adjustment"] == adjustment)
                  & r.results["segment"].notna()]
    n = s["segment"].nunique()
    sig = s[s["significant"]]
    if sig.empty:
        return f"After Holm correction over {n} segments, no segment shows a difference in {primary}."
    listed = ", ".join(f"{row.segment} ({_number(row.difference, row.kind)})" for row in sig.itertuples())
    rest = n - sig["segment"].nunique()
    return (f"After Holm correction over {n} segments, {primary} differs in {listed}"
            + (f"; {rest} other segment{'s' if rest != 1 else ''} show{'s' if rest == 1 else ''} no difference"
               " (too few persons, or no effect there)." if rest else "."))
