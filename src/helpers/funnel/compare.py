"""Comparing a funnel's segments, ranking its friction, and the value of a conversion."""

from __future__ import annotations

import ibis
import numpy as np
import pandas as pd
from scipy import stats

from helpers.funnel.engine import FunnelResult
from helpers.io import EventDataError, as_ibis
from helpers.stats import holm_adjust, wilson_interval
from helpers.units import declare

_COMPARE_UNITS = {"entered": "count", "converted": "count", "conversion": "rate", "ci_low": "rate", "ci_high": "rate",
                  "difference": "rate", "difference_ci_low": "rate", "difference_ci_high": "rate",
                  "p_value": "p_value", "p_holm": "p_value"}
_COMPARE_HEADERS = {"from_step": "From step", "step": "To step", "entered": "Users at the previous step",
                    "converted": "Users converted", "difference": "Difference (points)",
                    "p_value": "p", "p_holm": "p (Holm-adjusted)"}
_FRICTION_UNITS = {"users": "count", "users_lost": "count", "in_progress": "count", "downstream_conversion": "rate",
                   "share_lost": "rate", "value_lost": "money"}
_FRICTION_HEADERS = {"from_step": "From step", "to_step": "To step", "users": "Users at the step",
                     "users_lost": "Users lost", "in_progress": "Still in progress",
                     "downstream_conversion": "Of those passing, reach the end", "share_lost": "Share lost",
                     "value_lost": "Value lost"}


def _difference_interval(k1: np.ndarray, n1: np.ndarray, k0: np.ndarray, n0: np.ndarray
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Newcombe's hybrid score interval (his method 10) for p1 - p0, built from the two Wilson intervals: the
    interval of the lift itself, which is what a reader of a difference needs (not the variant's rate's).

    Examples
    --------
    >>> lo, hi = _difference_interval(np.array([56.]), np.array([70.]), np.array([48.]), np.array([80.]))
    >>> round(float(lo[0]), 4), round(float(hi[0]), 4)  # Newcombe (1998), Statist. Med. 17:873, 56/70 - 48/80
    (0.0524, 0.3339)
    """
    l1, u1 = wilson_interval(k1, n1)
    l0, u0 = wilson_interval(k0, n0)
    with np.errstate(invalid="ignore", divide="ignore"):
        p1, p0 = k1 / n1, k0 / n0
    d = p1 - p0
    return d - np.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2), d + np.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2)



def compare_segments(result: FunnelResult, baseline: str | None = None, *, min_users: int = 30) -> pd.DataFrame:
    """Conversion per step and segment, with Wilson intervals and Holm-corrected tests against a baseline.

    For every step after the first and every segment: ``entered`` (users at
    the previous step), ``converted`` (users at this step), ``conversion``
    (step from previous) with its 95% Wilson interval, ``difference`` to the
    baseline segment (or, with ``baseline=None``, to all other segments
    pooled) with its own 95% interval (``difference_ci_low``/``_high``,
    Newcombe's hybrid score interval; empty for the baseline itself),
    a two-sided two-proportion z-test ``p_value`` and ``p_holm``
    (Holm over all comparisons made), and ``small`` when fewer than
    ``min_users`` entered the step.

    Examples
    --------
    >>> toy = pd.DataFrame({"user_id": list("abcd") * 2, "event": ["visit"] * 4 + ["buy"] * 4,
    ...                     "timestamp": pd.to_datetime(["2025-01-01"] * 4 + ["2025-01-02"] * 4, utc=True)})
    >>> from helpers.funnel import compute_funnel
    >>> r = compute_funnel(toy, ["visit", "buy"], by=pd.Series({"a": "A", "b": "A", "c": "B", "d": "B"}, name="variant"))
    >>> compare_segments(r, baseline="A")[["variant", "conversion", "difference"]].values.tolist()
    [['A', 1.0, 0.0], ['B', 1.0, 0.0]]
    """
    if result.by is None:
        raise EventDataError("compare_segments needs a funnel computed with by=...")
    seg = result.by
    table = result.table.sort_values([seg, "step_index"])
    table = table.assign(entered=table.groupby(seg)["users"].shift(1)).dropna(subset=["entered"])
    table = table.rename(columns={"users": "converted"})
    table["entered"] = table["entered"].astype(int)
    segments = sorted(table[seg].unique())
    if baseline is not None and baseline not in segments:
        raise EventDataError(f"baseline {baseline!r} is not a segment; segments: {segments}.")
    rows = []
    for step_index, g in table.groupby("step_index"):
        g = g.set_index(seg)
        for s in segments:
            if s not in g.index:
                continue
            k1, n1 = g.loc[s, "converted"], g.loc[s, "entered"]
            if baseline is None:
                others = g.drop(index=s)
                k0, n0 = others["converted"].sum(), others["entered"].sum()
            else:
                k0, n0 = g.loc[baseline, "converted"], g.loc[baseline, "entered"]
            p1 = k1 / n1 if n1 else np.nan
            p0 = k0 / n0 if n0 else np.nan
            compared = not (baseline is not None and s == baseline) and n1 > 0 and n0 > 0
            p_value = np.nan
            if compared:
                pooled = (k1 + k0) / (n1 + n0)
                se = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n0))
                p_value = 1.0 if se == 0 else float(2 * stats.norm.sf(abs((p1 - p0) / se)))
            rows.append({seg: s, "step_index": step_index, "step": g.loc[s, "step"],
                         "from_step": result.steps[step_index - 2].label, "entered": int(n1), "converted": int(k1),
                         "conversion": p1, "difference": (p1 - p0) if not np.isnan(p0) else np.nan,
                         "_k0": float(k0), "_n0": float(n0) if compared else np.nan,
                         "p_value": p_value, "small": n1 < min_users})
    out = pd.DataFrame(rows)
    lo, hi = wilson_interval(out["converted"].to_numpy(float), out["entered"].to_numpy(float))
    out.insert(out.columns.get_loc("conversion") + 1, "ci_low", lo)
    out.insert(out.columns.get_loc("ci_low") + 1, "ci_high", hi)
    d_lo, d_hi = _difference_interval(out["converted"].to_numpy(float), out["entered"].to_numpy(float),
                                      out["_k0"].to_numpy(), out["_n0"].to_numpy())
    out.insert(out.columns.get_loc("difference") + 1, "difference_ci_low", d_lo)
    out.insert(out.columns.get_loc("difference_ci_low") + 1, "difference_ci_high", d_hi)
    out = out.drop(columns=["_k0", "_n0"])
    out["p_holm"] = holm_adjust(out["p_value"].to_numpy())
    return declare(out.reset_index(drop=True), _COMPARE_UNITS, hidden=["step_index", "small"], headers=_COMPARE_HEADERS)


def rank_friction(result: FunnelResult, value_per_conversion: float | None = None) -> pd.DataFrame:
    """Every step transition ranked by users lost (and value lost when a value per conversion is known).

    ``users_lost`` counts users who reached the step before and dropped there
    (in-progress users are not lost yet); ``value_lost`` is ``users_lost`` times
    the share of those users who would have converted to the end at the
    downstream rate, times ``value_per_conversion``.
    """
    seg = result.by
    table = result.table.copy()
    keys = [seg] if seg else []
    table = table.sort_values(keys + ["step_index"])
    table["to_step"] = table.groupby(keys)["step"].shift(-1) if keys else table["step"].shift(-1)
    table["final_users"] = table.groupby(keys)["users"].transform("last") if keys else table["users"].iloc[-1]
    table = table[table["to_step"].notna()].copy()
    # Downstream conversion: of those who passed this transition, the share who reached the end.
    passed = table["users"] - table["dropped"] - table["in_progress"]
    table["downstream_conversion"] = table["final_users"] / passed.where(passed > 0)
    out = table.rename(columns={"step": "from_step", "dropped": "users_lost"})[
        keys + ["step_index", "from_step", "to_step", "users", "users_lost", "in_progress", "downstream_conversion"]]
    out["share_lost"] = out["users_lost"] / out["users"]
    sort = ["users_lost"]
    if value_per_conversion is not None:
        out["value_lost"] = out["users_lost"] * out["downstream_conversion"].fillna(0) * value_per_conversion
        sort = ["value_lost", "users_lost"]
    return declare(out.sort_values(sort, ascending=False, ignore_index=True), _FRICTION_UNITS, hidden=["step_index"],
                   headers=_FRICTION_HEADERS)


def friction_headline(friction: pd.DataFrame) -> str:
    """One sentence from :func:`rank_friction`: the transition to fix first, by the measure it was ranked by
    (value lost when a value per conversion is known, else users lost), and the biggest by users lost when that
    is another one, so that no two pages name different "biggest" drop-offs without saying why.

    Examples
    --------
    >>> f = pd.DataFrame({"from_step": ["a", "b"], "to_step": ["b", "c"], "users": [100, 60], "users_lost": [40, 30],
    ...                   "downstream_conversion": [0.1, 0.5], "value_lost": [400.0, 1500.0]}).sort_values(
    ...                   "value_lost", ascending=False)
    >>> friction_headline(f)
    'Fix b → c first: 30 users lost there (50.0% of those who got there), worth about 1,500 in conversions (users lost × the share who would have reached the end × the value per conversion); by users lost alone, a → b loses more (40).'
    """
    if friction.empty or not friction["users_lost"].max():
        return "Nobody dropped out of the funnel."
    top = friction.iloc[0]
    text = (f"Fix {top['from_step']} → {top['to_step']} first: {int(top['users_lost']):,} users lost there "
            f"({top['users_lost'] / top['users']:.1%} of those who got there)")
    if "value_lost" in friction.columns and pd.notna(top.get("value_lost")):
        text += (f", worth about {top['value_lost']:,.0f} in conversions (users lost × the share who would have "
                 "reached the end × the value per conversion)")
        most = friction.sort_values("users_lost", ascending=False).iloc[0]
        if (most["from_step"], most["to_step"]) != (top["from_step"], top["to_step"]):
            text += (f"; by users lost alone, {most['from_step']} → {most['to_step']} loses more "
                     f"({int(most['users_lost']):,})")
    return text + "."


def friction_tile(friction: pd.DataFrame, finding: str = "Fix first"):
    """The index's headline number for :func:`rank_friction`: what the costliest transition loses (value, else users).

    Examples
    --------
    >>> f = pd.DataFrame({"from_step": ["b"], "to_step": ["c"], "users": [60], "users_lost": [30], "value_lost": [1500.0]})
    >>> t = friction_tile(f); (t.label, t.value, t.detail)
    ('lost at b → c', '1,500', 'in conversions; 30 users (50.0%) lost there')
    """
    from helpers.report.notes import Tile

    if friction.empty or not friction["users_lost"].max():
        return None
    top = friction.iloc[0]
    lost = f"{int(top['users_lost']):,} users ({top['users_lost'] / top['users']:.1%}) lost there"
    if "value_lost" in friction.columns and pd.notna(top.get("value_lost")):
        return Tile(f"lost at {top['from_step']} → {top['to_step']}", f"{top['value_lost']:,.0f}", f"in conversions; {lost}",
                    finding)
    return Tile(f"lost at {top['from_step']} → {top['to_step']}", f"{int(top['users_lost']):,}", "users", finding)


def comparison_headline(comparison: pd.DataFrame) -> str:
    """One sentence on the most significant difference in a :func:`compare_segments` table."""
    tested = comparison.dropna(subset=["p_holm"])
    if tested.empty:
        return "No segment comparison could be tested."
    seg = comparison.columns[0]
    row = tested.sort_values(["p_holm", "difference"], ascending=[True, False]).iloc[0]
    verb = "lifts" if row["difference"] > 0 else "lowers"
    verdict = "significant" if row["p_holm"] < 0.05 else "not significant"
    return (f"{seg} {row[seg]} {verb} {row['from_step']} → {row['step']} by {abs(row['difference']) * 100:.1f} points "
            f"(95% CI of the difference {row['difference_ci_low'] * 100:+.1f} to {row['difference_ci_high'] * 100:+.1f} "
            f"points; {row['conversion']:.1%} converted; Holm-adjusted p = {row['p_holm']:.2g}, {verdict}).")


def value_per_conversion(events: pd.DataFrame | ibis.Table, event: str = "purchase") -> float | None:
    """Mean total ``value`` of ``event`` per user who did it: what one conversion is worth (None without values).

    Examples
    --------
    >>> toy = pd.DataFrame({"user_id": ["a", "a", "b"], "event": ["purchase"] * 3, "value": [10.0, 20.0, 30.0],
    ...                     "timestamp": pd.to_datetime(["2025-01-01", "2025-01-02", "2025-01-01"], utc=True)})
    >>> value_per_conversion(toy)
    30.0
    """
    t = as_ibis(events)
    if "value" not in t.columns:
        return None
    hits = t.filter(t.event == event)
    per_user = hits.group_by("user_id").aggregate(v=hits.value.sum())
    mean = per_user.v.mean().execute()
    return None if mean is None or pd.isna(mean) else float(mean)
