"""The experiment readout: split health first, then every metric against the control, raw and CUPED-adjusted,
with Holm correction, and an always-valid sequential view. Rules are in :mod:`helpers.experiments`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import ibis
import numpy as np
import pandas as pd
from scipy import stats as _st

from helpers.experiments import metrics as _metrics
from helpers.experiments import stats as _stats
from helpers.io import EventDataError, as_ibis
from helpers.io.times import observed_end
from helpers.stats import holm_adjust, wilson_interval
from helpers.units import declare


@dataclass
class Readout:
    """What :func:`readout` found.

    Attributes
    ----------
    srm : per variant: persons, planned weight, expected persons; ``attrs`` hold ``chi2`` and ``p``.
    srm_p : the sample ratio mismatch p value; ``split_ok`` is ``srm_p >= srm_alpha``.
    arms : per metric, adjustment and variant: persons, mean, standard deviation and a 95% interval (Wilson for
        conversions).
    results : per metric, variant and adjustment (``none`` / ``cuped``): the difference from control with its
        interval, the relative lift with a delta-method interval, p, Holm-adjusted p, and for CUPED rows θ and
        the variance reduction; with ``sequential``, the always-valid interval ``cs_low``/``cs_high``.
    sequential_view : with ``sequential``, per metric, variant and daily look: persons, the difference, the
        always-valid interval and the fixed-horizon one (which is not valid when looked at daily).
    exclusions : why persons were left out, and how many (per metric for the censored).
    """

    srm: pd.DataFrame
    srm_p: float
    split_ok: bool
    arms: pd.DataFrame
    results: pd.DataFrame
    exclusions: pd.DataFrame
    sequential_view: pd.DataFrame | None
    control: str
    variants: list[str]
    metrics: list[_metrics.Metric]
    alpha: float
    cuped: bool
    sequential: bool
    observed_until: pd.Timestamp
    post_period: pd.Timedelta | None
    pre_period: pd.Timedelta | None
    persons: pd.DataFrame = field(repr=False, default=None)  # per person: variant, segment, metric values

    def _repr_html_(self) -> str:
        return self.results._repr_html_()


def _timedelta(value: Any, name: str) -> pd.Timedelta | None:
    if value is None:
        return None
    try:
        td = pd.Timedelta(value)
    except (ValueError, TypeError) as exc:
        raise EventDataError(f"{name}={value!r} is not a duration (for example '14D').") from exc
    if td <= pd.Timedelta(0):
        raise EventDataError(f"{name}={value!r} must be positive.")
    return td


def readout(events: pd.DataFrame | ibis.Table, assignments: pd.DataFrame | str,
            metrics: Sequence[_metrics.Metric | str | Mapping[str, Any]], *, control: str,
            weights: Mapping[str, float] | Sequence[float] | None = None, pre_period: str | pd.Timedelta | None = "14D",
            post_period: str | pd.Timedelta | None = None, cuped: bool = True, sequential: bool = False,
            alpha: float = 0.05, srm_alpha: float = 0.001, variant_column: str = "variant",
            by: str | None = None, observed_until: Any = None, sequential_tuning: float = 5000) -> Readout:
    """An experiment readout (rules in :mod:`helpers.experiments`).

    Parameters
    ----------
    events : canonical events.
    assignments : a user-level table ``user_id, variant, assigned_at`` (extra columns may hold segments for
        ``by``), or the name of the exposure event whose ``variant_column`` property names the variant.
    metrics : :func:`conversion`, :func:`count`, :func:`value` specs, event names (conversions) or mappings.
    control : the control variant.
    weights : the planned share of each variant (a mapping by name, or one per variant in sorted order);
        equal when ``None``. A weight of 0 leaves that variant out of the SRM test.
    pre_period : the window before the assignment whose metric value is CUPED's covariate.
    post_period : the window after the assignment a metric counts in; ``None``: up to ``observed_until``.
    cuped : also report CUPED-adjusted results (the raw ones are always there).
    sequential : add always-valid confidence sequences (needs ``post_period``) and the daily view.
    alpha, srm_alpha : the significance level of the metrics and of the split check.
    by : a column of ``assignments`` to break the results down by (a persona, a platform); Holm then runs over
        metrics × variants × segments.
    observed_until : the end of observation (default: the last event).
    sequential_tuning : the number of persons at which the confidence sequence is narrowest.

    Examples
    --------
    >>> from helpers.experiments import conversion
    >>> t0 = pd.Timestamp("2024-01-01", tz="UTC")
    >>> a = pd.DataFrame({"user_id": [f"u{i}" for i in range(200)], "variant": ["A", "B"] * 100,
    ...                   "assigned_at": t0})
    >>> ev = pd.DataFrame({"user_id": [f"u{i}" for i in range(0, 200, 3)], "event": "buy",
    ...                    "timestamp": t0 + pd.Timedelta("1D")})
    >>> r = readout(ev, a, [conversion("buy")], control="A", post_period="7D", observed_until=t0 + pd.Timedelta("9D"))
    >>> row = r.results.iloc[0]  # u0, u3, u6...: 34 of the 100 in A and 33 of the 100 in B bought
    >>> r.split_ok, int(row["persons_control"]), round(float(row["mean_control"]), 2), round(float(row["difference"]), 2)
    (True, 100, 0.34, -0.01)
    """
    t = as_ibis(events)
    pre = _timedelta(pre_period, "pre_period")
    post = _timedelta(post_period, "post_period")
    if sequential and post is None:
        raise EventDataError("sequential=True needs a post_period: a person's metric must be final (their "
                             "window elapsed) before a look can count them.")
    if not 0 < alpha < 1 or not 0 < srm_alpha < 1:
        raise EventDataError(f"alpha and srm_alpha must lie between 0 and 1, not {alpha} and {srm_alpha}.")
    specs = [_metrics.as_metric(m) for m in metrics]
    if not specs:
        raise EventDataError("a readout needs at least one metric.")
    names = [m.name for m in specs]
    if len(set(names)) < len(names):
        raise EventDataError(f"two metrics have the same name: {names}; pass name=... to tell them apart.")
    until = observed_end(t, observed_until)

    if isinstance(assignments, str):
        table = _metrics.exposures(t, assignments, variant_column)
        where = f"the {assignments!r} exposure events"
    else:
        table, where = assignments, "assignments"
    assigned, why = _metrics.normalise_assignments(table, where)
    if by is not None:
        if isinstance(assignments, str) or by not in assignments.columns:
            raise EventDataError(f"by={by!r} must be a column of the assignments table.")
        seg = assignments.assign(user_id=_metrics.id_column(assignments["user_id"])).drop_duplicates("user_id")
        assigned = assigned.merge(seg[["user_id", by]].rename(columns={by: "segment"}), on="user_id", how="left")
        assigned["segment"] = assigned["segment"].astype("string").fillna("(none)")
    late = assigned["assigned_at"] > until
    why["assigned after the end of the data"] = int(late.sum())
    assigned = assigned[~late].reset_index(drop=True)
    variants = sorted(assigned["variant"].unique().tolist())
    if control not in variants:
        raise EventDataError(f"control={control!r} is not a variant of {where} (variants: "
                             f"{', '.join(variants) or 'none'}).")
    if len(variants) < 2:
        raise EventDataError(f"{where} has only one variant ({control}); there is nothing to compare.")

    srm, srm_p = _srm_table(assigned, variants, weights)
    values = _metrics.person_metrics(t, assigned, specs, pre_period=pre, post_period=post, observed_until=until)
    # person_metrics keeps the assignment order, so a column concat stands in for a string join
    persons = pd.concat([assigned, values.drop(columns="user_id").set_index(assigned.index)], axis=1)
    arm_all = pd.Categorical(persons["variant"], categories=variants).codes.astype(np.int64)
    segments = sorted(persons["segment"].unique().tolist()) if by is not None else [None]

    arm_rows, result_rows, view_rows, exclusion_rows = [], [], [], []
    for reason, n in why.items():
        exclusion_rows.append({"reason": reason, "metric": "(all)", "persons": n})
    if sequential:  # naive UTC datetime64: a tz-aware to_numpy() makes one Timestamp object per person
        window_end = (persons["assigned_at"] + post).dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
    for i, m in enumerate(specs):
        censored = np.zeros(len(persons), dtype=bool)
        if m.kind == "conversion" and post is not None:
            censored = (persons["assigned_at"] + post > until).to_numpy()
            exclusion_rows.append({"reason": "post period not elapsed by the end of the data", "metric": m.name,
                                   "persons": int(censored.sum())})
        for segment in segments:
            keep = ~censored if segment is None else ~censored & (persons["segment"] == segment).to_numpy()
            y = persons[str(i)].to_numpy(float)[keep]
            x = persons[f"{i}_pre"].to_numpy(float)[keep]
            arm = arm_all[keep]
            a_rows, r_rows = _compare(m, y, x, arm, variants, control, alpha, cuped)
            for r in a_rows + r_rows:
                r["segment"] = segment
            arm_rows += a_rows
            result_rows += r_rows
            if sequential and segment is None:
                done = window_end[keep]
                view_rows.append(_sequential_view(m, y, x, arm, done, variants, control, alpha, cuped,
                                                  sequential_tuning, until))

    results = pd.DataFrame(result_rows)
    for adjustment in results["adjustment"].unique():  # Holm within each family: raw, and CUPED
        rows = results["adjustment"] == adjustment
        results.loc[rows, "p_adjusted"] = holm_adjust(results.loc[rows, "p_value"].to_numpy())
    results["significant"] = results["p_adjusted"] < alpha
    if sequential:
        lo, hi = _stats.confidence_sequence(results["difference"], results["se"], results["persons_control"]
                                            + results["persons_variant"], alpha=alpha,
                                            tuning=_stats.sequential_tuning(sequential_tuning, alpha))
        results["cs_low"], results["cs_high"] = lo, hi
    arms = pd.DataFrame(arm_rows)
    if by is None:
        results = results.drop(columns="segment")
        arms = arms.drop(columns="segment")
    results = _declare_results(results)
    arms = declare(arms, {"metric": "text", "adjustment": "text", "variant": "text", "persons": "count",
                          "mean": "estimate", "sd": "estimate", "ci_low": "estimate", "ci_high": "estimate"})
    view = pd.concat(view_rows, ignore_index=True) if view_rows else None
    return Readout(srm=srm, srm_p=srm_p, split_ok=bool(srm_p >= srm_alpha), arms=arms, results=results,
                   exclusions=declare(pd.DataFrame(exclusion_rows), {"reason": "text", "metric": "text",
                                                                     "persons": "count"}),
                   sequential_view=view, control=control, variants=variants, metrics=specs, alpha=alpha,
                   cuped=cuped, sequential=sequential, observed_until=until, post_period=post, pre_period=pre,
                   persons=persons)


def _srm_table(assigned: pd.DataFrame, variants: list[str],
               weights: Mapping[str, float] | Sequence[float] | None) -> tuple[pd.DataFrame, float]:
    n = assigned["variant"].value_counts().reindex(variants, fill_value=0).to_numpy(float)
    if weights is None:
        w = np.ones(len(variants))
    elif isinstance(weights, Mapping):
        unknown = sorted(set(weights) - set(variants))
        if unknown:
            raise EventDataError(f"weights name variants that are not assigned: {unknown} (variants: {variants}).")
        w = np.array([float(weights.get(v, 0.0)) for v in variants])
    else:
        w = np.asarray(list(weights), dtype=float)
        if len(w) != len(variants):
            raise EventDataError(f"weights has {len(w)} numbers for {len(variants)} variants {variants}.")
    try:
        chi2, p, expected = _stats.srm_test(n, w)
    except ValueError as exc:
        raise EventDataError(str(exc)) from exc
    table = pd.DataFrame({"variant": variants, "persons": n.astype(int), "weight": w / w.sum(),
                          "expected": expected, "share": n / n.sum()})
    table.attrs.update(chi2=chi2, p=p)
    return declare(table, {"variant": "text", "persons": "count", "weight": "rate", "expected": "count",
                           "share": "rate"}), p


def _adjusted(y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, float, float]:
    """CUPED: Y − θ(X − X̄) with θ pooled over every arm, θ, and the variance reduction 1 − Var(Y_adj)/Var(Y)."""
    theta = _stats.cuped_theta(y, x)
    adj = y - theta * (x - x.mean()) if len(x) else y
    var = float(np.var(y, ddof=1)) if len(y) > 1 else 0.0
    reduction = 1 - float(np.var(adj, ddof=1)) / var if var > 0 else 0.0
    return adj, theta, reduction


def _compare(m: _metrics.Metric, y: np.ndarray, x: np.ndarray, arm: np.ndarray, variants: list[str], control: str,
             alpha: float, cuped: bool) -> tuple[list[dict], list[dict]]:
    k = len(variants)
    c = variants.index(control)
    arm_rows, rows = [], []
    families = [("none", y, np.nan, np.nan)]
    if cuped:
        adj, theta, reduction = _adjusted(y, x)
        families.append(("cuped", adj, theta, reduction))
    q = _st.norm.ppf(1 - alpha / 2)
    for adjustment, values, theta, reduction in families:
        n, mean, sd = _metrics.counts_by_arm(values, arm, k)
        if m.kind == "conversion" and adjustment == "none":
            hits = np.bincount(arm, weights=values, minlength=k)
            lo, hi = wilson_interval(hits, n, z=q)
        else:
            with np.errstate(invalid="ignore", divide="ignore"):
                half = _st.t.ppf(1 - alpha / 2, np.maximum(n - 1, 1)) * sd / np.sqrt(n)
            lo, hi = mean - half, mean + half
        for v in range(k):
            arm_rows.append({"metric": m.name, "adjustment": adjustment, "variant": variants[v],
                             "persons": int(n[v]), "mean": mean[v], "sd": sd[v], "ci_low": lo[v], "ci_high": hi[v]})
        for v in range(k):
            if v == c:
                continue
            if m.kind == "conversion" and adjustment == "none":
                test = _stats.two_proportion_test(mean[c] * n[c], n[c], mean[v] * n[v], n[v], alpha=alpha)
                name = "two-proportion z"
            else:
                test = _stats.welch_test(mean[c], sd[c], n[c], mean[v], sd[v], n[v], alpha=alpha)
                name = "Welch t"
            with np.errstate(invalid="ignore", divide="ignore"):
                lift = _stats.relative_lift(mean[c], sd[c] / np.sqrt(n[c]), mean[v], sd[v] / np.sqrt(n[v]),
                                            alpha=alpha)
            rows.append({"metric": m.name, "kind": m.kind, "variant": variants[v], "control": control,
                         "adjustment": adjustment, "test": name, "persons_control": int(n[c]),
                         "persons_variant": int(n[v]), "mean_control": mean[c], "mean_variant": mean[v],
                         "difference": float(test["difference"]), "se": float(test["se"]),
                         "ci_low": float(test["ci_low"]), "ci_high": float(test["ci_high"]),
                         "relative_lift": float(lift["lift"]), "relative_ci_low": float(lift["ci_low"]),
                         "relative_ci_high": float(lift["ci_high"]), "p_value": float(test["p"]),
                         "theta": theta, "variance_reduction": reduction})
    return arm_rows, rows


def _sequential_view(m: _metrics.Metric, y: np.ndarray, x: np.ndarray, arm: np.ndarray, done: np.ndarray,
                     variants: list[str], control: str, alpha: float, cuped: bool, tuning: float,
                     until: pd.Timestamp) -> pd.DataFrame:
    """Daily looks: at each day's end, the persons whose window has elapsed, with the running difference, its
    fixed-horizon interval and the always-valid one. Each person falls in the first look at or after the end
    of their window; sums per look and arm (no sort of the persons), summed up over the looks."""
    k, c = len(variants), variants.index(control)
    if not len(done):
        return pd.DataFrame()
    first = pd.Timestamp(done.min()).tz_localize("UTC").ceil("D")
    looks = pd.date_range(first, until.ceil("D"), freq="D")
    bucket = np.searchsorted(looks.tz_convert(None).to_numpy().astype(done.dtype), done, side="left")
    cell = bucket * k + arm  # persons final only after the last look fall past the last row and are left out
    cum = {name: np.cumsum(np.bincount(cell, weights=v, minlength=(len(looks) + 1) * k).reshape(-1, k)[:len(looks)],
                           axis=0)
           for name, v in (("n", np.ones_like(y)), ("y", y), ("yy", y * y), ("x", x), ("xx", x * x), ("xy", x * y))}
    with np.errstate(invalid="ignore", divide="ignore"):
        n = cum["n"]
        if cuped:  # θ pooled over arms at each look
            N = n.sum(1)
            sx, sy = cum["x"].sum(1), cum["y"].sum(1)
            var_x = (cum["xx"].sum(1) - sx * sx / N) / (N - 1)
            cov = (cum["xy"].sum(1) - sx * sy / N) / (N - 1)
            theta = np.where(var_x > 0, cov / var_x, 0.0)[:, None]
            xbar = (sx / N)[:, None]
        else:
            theta, xbar = np.zeros((len(looks), 1)), np.zeros((len(looks), 1))
        mean_y, mean_x = cum["y"] / n, cum["x"] / n
        var_y = (cum["yy"] - n * mean_y**2) / (n - 1)
        var_x_arm = (cum["xx"] - n * mean_x**2) / (n - 1)
        cov_arm = (cum["xy"] - n * mean_x * mean_y) / (n - 1)
        mean = mean_y - theta * (mean_x - xbar)
        var = np.maximum(var_y - 2 * theta * cov_arm + theta**2 * var_x_arm, 0)
    frames = []
    for v in range(k):
        if v == c:
            continue
        test = _stats.welch_test(mean[:, c], np.sqrt(var[:, c]), n[:, c], mean[:, v], np.sqrt(var[:, v]), n[:, v],
                                 alpha=alpha)
        lo, hi = _stats.confidence_sequence(test["difference"], test["se"], n[:, c] + n[:, v], alpha=alpha,
                                            tuning=_stats.sequential_tuning(tuning, alpha))
        frames.append(pd.DataFrame({"metric": m.name, "variant": variants[v], "look": looks,
                                    "persons": (n[:, c] + n[:, v]).astype(int), "difference": test["difference"],
                                    "ci_low": test["ci_low"], "ci_high": test["ci_high"], "cs_low": lo,
                                    "cs_high": hi}))
    out = pd.concat(frames, ignore_index=True)
    out = out[(out["persons"] > 0) & np.isfinite(out["cs_low"])].reset_index(drop=True)
    return declare(out, {"metric": "text", "variant": "text", "persons": "count", "difference": "estimate",
                         "ci_low": "estimate", "ci_high": "estimate", "cs_low": "estimate", "cs_high": "estimate"})


def _declare_results(results: pd.DataFrame) -> pd.DataFrame:
    kinds = {"metric": "text", "kind": "text", "variant": "text", "control": "text", "adjustment": "text",
             "test": "text", "persons_control": "count", "persons_variant": "count", "mean_control": "estimate",
             "mean_variant": "estimate", "difference": "estimate", "ci_low": "estimate", "ci_high": "estimate",
             "relative_lift": "rate", "relative_ci_low": "rate", "relative_ci_high": "rate", "p_value": "p_value",
             "p_adjusted": "p_value", "theta": "estimate", "variance_reduction": "rate", "segment": "text",
             "cs_low": "estimate", "cs_high": "estimate"}
    return declare(results, {k: v for k, v in kinds.items() if k in results.columns}, hidden=["se", "kind"],
                   headers={"cs": "Always-valid", "relative": "Relative lift", "p_adjusted": "Holm p",
                            "theta": "CUPED θ"})
