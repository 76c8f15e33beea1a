"""Survival on lifetimes: Kaplan-Meier curves, Cox hazard ratios and early-behaviour retention drivers (landmark).

All from lifelines; the rules are in :mod:`helpers.retention`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import ibis
import numpy as np
import pandas as pd

from helpers.io import US_PER_DAY, EventDataError, as_ibis, epoch_us
from helpers.units import declare


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

    def tile(self, finding: str = "Lifetime"):
        """The index's headline number: the share still active at the last horizon (all users), with its interval.

        Examples
        --------
        >>> life = pd.DataFrame({"duration_days": [10, 40, 100, 120], "churned": [True, True, False, False]})
        >>> t = survival_curves(life).tile(); (t.label, t.value)
        ('still active after 90 days', '50%')
        """
        from helpers.report.notes import Tile

        last = _days_label(self.at[-1])
        m = self.medians
        row = m.iloc[0] if self.by is None else None
        if row is None or f"survival_{last}d" not in m.columns:
            return None
        low, high = row.get(f"survival_{last}d_low"), row.get(f"survival_{last}d_high")
        ci = f"95% CI {low:.0%}–{high:.0%}; " if low is not None and pd.notna(low) else ""
        return Tile(f"still active after {last} days", f"{row[f'survival_{last}d']:.0%}",
                    f"{ci}of {int(row['users']):,} users (Kaplan-Meier)", finding)


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
    declare(med, {"users": "count", "churned": "count", "median_days": "days", "median_low": "days",
                  "median_high": "days", **{c: "rate" for c in med.columns if str(c).startswith("survival_")}},
            headers={"group": "Group", "users": "Users", "churned": "Churned", "median_days": "Median lifetime",
                     "median": "Median lifetime",  # the header of its interval (median_low, median_high)
                     **{f"survival_{_days_label(d)}d": f"Still active after {_days_label(d)} days" for d in at}},
            missing={"median_days": "not reached (more than half still active)"})
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
    declare(table, {"hazard_ratio": "ratio", "ci_low": "ratio", "ci_high": "ratio", "p": "p_value"},
            headers={"hazard_ratio": "Hazard ratio", "baseline": "Compared with"})
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


def drivers_headline(drivers: pd.DataFrame, alpha: float = 0.05) -> str:
    """One sentence on :func:`retention_drivers`: the early behaviours that go with staying and with leaving,
    significant after Holm's correction, and who the comparison is among.

    Examples
    --------
    >>> d = pd.DataFrame({"event": ["invite", "help"], "users": [40, 30], "share": [0.4, 0.3], "hazard_ratio": [0.5, 1.8],
    ...                   "ci_low": [0.3, 1.2], "ci_high": [0.8, 2.7], "p": [0.001, 0.004], "phi": [0.2, -0.1],
    ...                   "p_holm": [0.002, 0.004]})
    >>> d.attrs.update(landmark_days=7, users=100)
    >>> drivers_headline(d)
    'Among the 100 users still there on day 7, those who did invite in their first 7 days churn at 0.50 times the rate of the others (95% CI 0.30-0.80); help goes with leaving (1.80 times).'
    """
    days, users = drivers.attrs.get("landmark_days"), drivers.attrs.get("users", 0)
    base = f"Among the {users:,} users still there on day {days}"
    sig = drivers[drivers["p_holm"] < alpha] if "p_holm" in drivers else drivers.iloc[0:0]
    if sig.empty:
        return base + f", no behaviour in the first {days} days changes the churn hazard significantly."
    stay, leave = sig[sig["hazard_ratio"] < 1], sig[sig["hazard_ratio"] > 1]
    parts = []
    if len(stay):
        s = stay.iloc[0]
        parts.append(f"{base}, those who did {s['event']} in their first {days} days churn at {s['hazard_ratio']:.2f} "
                     f"times the rate of the others (95% CI {s['ci_low']:.2f}-{s['ci_high']:.2f})")
    if len(leave):
        w = leave.iloc[-1]
        text = f"{w['event']} goes with leaving ({w['hazard_ratio']:.2f} times)"
        parts.append(text if parts else f"{base}, {text}")
    return "; ".join(parts) + "."


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
        from helpers.stats import holm_adjust

        out["p_holm"] = holm_adjust(out["p"].to_numpy())
        out = out.sort_values("hazard_ratio").reset_index(drop=True)
    out.attrs.update(landmark_days=first_days, users=len(life), adjusted_for=adjust_for if adjust is not None else None,
                     note=note)
    return declare(out, {"users": "count", "share": "rate", "hazard_ratio": "ratio", "ci_low": "ratio",
                         "ci_high": "ratio", "p": "p_value", "p_holm": "p_value", "phi": "number"},
                   headers={"users": "Users who did it", "share": "Share of users", "hazard_ratio": "Hazard ratio",
                            "p_holm": "p (Holm-adjusted)", "phi": "Correlation (phi)"})
