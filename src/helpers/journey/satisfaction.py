"""Survey scores per stage: NPS and CSAT with their intervals (:func:`satisfaction`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import ibis
import numpy as np
import pandas as pd

from helpers.io import as_ibis, to_utc
from helpers.journey.stages import StageMap, _stage_at, load_stage_map
from helpers.stats import Z95, wilson_interval


def _survey_scores(t: ibis.Table, event: str) -> pd.DataFrame:
    """Each respondent's latest score of ``event`` (the ``value`` column)."""
    if "value" not in t.columns:
        return pd.DataFrame(columns=["user_id", "score", "timestamp"])
    s = t.filter((t.event == event) & t.value.notnull())
    latest = s.group_by("user_id").aggregate(score=s.value.argmax(s.timestamp), timestamp=s.timestamp.max())
    out = latest.to_pyarrow().to_pandas()
    out["user_id"] = out["user_id"].astype(str)
    return out


def _nps_summary(scores: pd.Series) -> dict:
    n = len(scores)
    if n == 0:
        return {"value": np.nan, "numerator": 0, "denominator": 0}
    p, d = float((scores >= 9).mean()), float((scores <= 6).mean())
    half = Z95 * np.sqrt(max(p + d - (p - d) ** 2, 0.0) / n)
    return {"value": 100 * (p - d), "numerator": int((scores >= 9).sum() - (scores <= 6).sum()), "denominator": n,
            "ci_low": 100 * (p - d - half), "ci_high": 100 * (p - d + half)}


MIN_RESPONSES = 30  # below this, a score is shown as "too few responses" (its interval is still shown)


def too_few_responses(kpis: pd.DataFrame) -> np.ndarray:
    """Which rows of :func:`helpers.journey.stage_kpis` are survey scores on fewer than :data:`MIN_RESPONSES`."""
    return ((kpis["unit"] == "score") & (kpis["denominator"].fillna(0) < MIN_RESPONSES)).to_numpy()

SURVEYS = {
    "nps": ("nps_response", "0-10; NPS = % promoters (9-10) - % detractors (0-6), -100..100"),
    "csat": ("csat_response", "1-5; CSAT = % satisfied (4 or 5)"),
    "ces": ("ces_response", "1-7, higher = easier; CES = mean score"),
}


def satisfaction(
    events: pd.DataFrame | ibis.Table,
    *,
    stage_map: StageMap | str | Path | Mapping[str, Any] | None = None,
    by: pd.Series | None = None,
    observed_until: Any = None,
    min_responses: int = MIN_RESPONSES,
) -> pd.DataFrame:
    """NPS, CSAT and CES from survey events where present, overall, by stage and by a user-level segment.

    Each respondent's latest answer counts once. By stage: the stage the user was
    in when they answered (the stage of their latest stage event at or before the
    answer). ``by``: a Series indexed by ``user_id`` (e.g. persona). Columns:
    ``metric``, ``breakdown`` (overall / stage / the Series name), ``group``,
    ``respondents``, ``value``, ``ci_low``, ``ci_high``, ``convention``, ``too_few`` (fewer than
    ``min_responses`` respondents: the value is computed, but pages show "too few responses" with its interval,
    since an NPS of 4 answers moves by 50 points with one answer).
    Score conventions are in :data:`SURVEYS` (event names from the map's ``kpi_events``).
    """
    t = as_ibis(events)
    sm = None if stage_map is None else (stage_map if isinstance(stage_map, StageMap) else load_stage_map(stage_map))
    if observed_until is not None:
        t = t.filter(t.timestamp <= to_utc(observed_until).to_pydatetime())
    rows = []
    for metric, (default_event, convention) in SURVEYS.items():
        event = sm.event(default_event) if sm else default_event
        scores = _survey_scores(t, event)
        if scores.empty:
            continue
        groups = [("overall", pd.Series("all", index=scores.index))]
        if sm is not None:
            groups.append(("stage", _stage_at(t, sm, scores)))
        if by is not None:
            seg = by.copy()
            seg.index = seg.index.astype(str)
            groups.append((by.name or "segment", scores["user_id"].map(seg).astype(object).fillna("(none)")))
        for breakdown, labels in groups:
            for group, part in scores.groupby(labels.to_numpy(), sort=True):
                rows.append({"metric": metric, "breakdown": breakdown, "group": group, "respondents": len(part),
                             **_survey_value(metric, part["score"].astype(float)), "convention": convention})
    cols = ["metric", "breakdown", "group", "respondents", "value", "ci_low", "ci_high", "convention"]
    out = pd.DataFrame(rows, columns=cols)
    out["too_few"] = out["respondents"] < min_responses
    out.attrs["min_responses"] = min_responses
    return out


def satisfaction_headline(table: pd.DataFrame, metric: str = "nps") -> str:
    """One sentence on :func:`satisfaction`: the stages where the score is highest and lowest, with intervals, and
    how many stages have too few answers to say.

    Examples
    --------
    >>> t = pd.DataFrame({"metric": "nps", "breakdown": "stage", "group": ["a", "b", "c"], "value": [30.0, -10.0, 50.0],
    ...                   "ci_low": [20.0, -20.0, -10.0], "ci_high": [40.0, 0.0, 90.0], "respondents": [100, 80, 5],
    ...                   "too_few": [False, False, True]})
    >>> satisfaction_headline(t)
    'NPS is highest at a (+30, 95% CI +20 to +40) and lowest at b (-10, -20 to +0); 1 stage has too few answers to say.'
    """
    rows = table[(table["metric"] == metric) & (table["breakdown"] == "stage")] if len(table) else table
    if rows.empty:
        return f"There are no {metric.upper()} answers to place on the journey."
    few = rows["too_few"].astype(bool) if "too_few" in rows else pd.Series(False, index=rows.index)
    ok = rows[~few]
    name = metric.upper()
    tail = f"; {int(few.sum())} stage{'s have' if few.sum() != 1 else ' has'} too few answers to say" if few.any() else ""
    if ok.empty:
        return f"Every stage has too few {name} answers to say how customers feel there{tail[1:] and ''}."
    hi, lo = ok.loc[ok["value"].idxmax()], ok.loc[ok["value"].idxmin()]
    text = f"{name} is highest at {hi['group']} ({hi['value']:+.0f}, 95% CI {hi['ci_low']:+.0f} to {hi['ci_high']:+.0f})"
    if lo["group"] != hi["group"]:
        text += f" and lowest at {lo['group']} ({lo['value']:+.0f}, {lo['ci_low']:+.0f} to {lo['ci_high']:+.0f})"
    return text + tail + "."


def satisfaction_display(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`satisfaction` as text for a report: each score in its own unit (NPS points, CSAT share, CES mean),
    "too few responses" below the minimum, and the interval always.

    Examples
    --------
    >>> t = pd.DataFrame({"metric": ["nps", "csat"], "breakdown": "overall", "group": "all", "respondents": [4, 200],
    ...                   "value": [50.0, 0.81], "ci_low": [-10.0, 0.75], "ci_high": [100.0, 0.86], "convention": "",
    ...                   "too_few": [True, False]})
    >>> satisfaction_display(t)[["Score", "95% CI"]].values.tolist()
    [['too few responses (4 of 30 needed)', '-10.0 – 100.0'], ['81.0%', '75.0% – 86.0%']]
    """
    from helpers.units import format_value

    need = table.attrs.get("min_responses", MIN_RESPONSES)
    fmt = lambda value, metric: format_value(value, "rate" if metric == "csat" else "score")  # noqa: E731

    score = [f"too few responses ({n} of {need} needed)" if few else fmt(v, m)
             for v, m, n, few in zip(table["value"], table["metric"], table["respondents"], table["too_few"])]
    interval = ["" if pd.isna(lo) else f"{fmt(lo, m)} – {fmt(hi, m)}"
                for lo, hi, m in zip(table["ci_low"], table["ci_high"], table["metric"])]
    return pd.DataFrame({"Survey": table["metric"].str.upper(), "Breakdown": table["breakdown"], "Group": table["group"],
                         "Respondents": table["respondents"].map("{:,}".format), "Score": score, "95% CI": interval})


def _survey_value(metric: str, scores: pd.Series) -> dict:
    n = len(scores)
    if metric == "nps":
        s = _nps_summary(scores)
        return {"value": s["value"], "ci_low": s.get("ci_low", np.nan), "ci_high": s.get("ci_high", np.nan)}
    if metric == "csat":
        k = int((scores >= 4).sum())
        lo, hi = wilson_interval(np.array([float(k)]), np.array([float(n)]))
        return {"value": k / n, "ci_low": float(lo[0]), "ci_high": float(hi[0])}
    half = Z95 * scores.std(ddof=1) / np.sqrt(n) if n > 1 else np.nan
    return {"value": float(scores.mean()), "ci_low": float(scores.mean() - half), "ci_high": float(scores.mean() + half)}
