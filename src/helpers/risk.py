"""Early warning: who is likely to churn soon, and a health score, each validated out of time.

Looking ahead, unlike :mod:`helpers.retention`, which describes what happened.

- Churn within ``horizon`` after a snapshot moment: no event in the horizon, or
  the ``churn_event`` in it. A user counts at a snapshot when active: an event
  in the ``inactivity`` before it and no churn event yet.
- Features at a snapshot use only events at or before it (:data:`RISK_FEATURES`).
- :func:`churn_risk`: a Cox model (lifelines) gives ``1 - S(horizon | x)``,
  fitted one ``lookback`` before the validation cut ``observed_until - horizon``,
  judged on who churned after the cut (concordance, calibration by decile, lift),
  recalibrated by isotonic regression learnt one split earlier.
- :func:`health_score`: a fixed 0-100 formula, validated at the same cut.
- :func:`risk_by_segment`, :func:`risk_factor_counts`: the scores broken down.

Every result is a :class:`RiskResult`; nothing is shown without its validation.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Sequence

import ibis
import numpy as np
import pandas as pd

from helpers.io import EventDataError, as_ibis, observed_end, to_utc, utc_naive
from helpers.units import declare

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

    def tile(self, threshold: float, finding: str = "Churn early warning"):
        """The index's headline number: active users whose churn probability is at least ``threshold``.

        Examples
        --------
        >>> r = RiskResult(pd.DataFrame({"churn_probability": [0.2, 0.7, 0.9]}), {}, pd.DataFrame(), pd.DataFrame(),
        ...                pd.Timedelta("30D"), pd.Timestamp("2025-01-01", tz="UTC"))
        >>> t = r.tile(0.5); (t.label, t.value, t.detail)
        ('active users at risk', '2', '67% of 3 scored; churn probability 50% or more within 30 days')
        """
        from helpers.report.notes import Tile

        n, total = int((self.scores[self.probability] >= threshold).sum()), len(self.scores)
        share = f"{n / total:.0%} of {total:,} scored; " if total else ""
        return Tile("active users at risk", f"{n:,}",
                    f"{share}churn probability {threshold:.0%} or more within {self.horizon.days} days", finding)

    @property
    def probability(self) -> str:
        """The score column to act on: ``calibrated_probability`` when the scores have it, else
        ``churn_probability`` (the at-risk audience, the share at risk per segment and the risk chart use it)."""
        return "calibrated_probability" if "calibrated_probability" in self.scores.columns else "churn_probability"

    def calibration_facts(self) -> dict:
        """The calibration in numbers, for the run's record (and the README's sentences, filled from it): the decile
        with the largest gap, its predicted and observed churn, the mean gap, and after recalibration the mean and
        largest gap (shares, 0 to 1).

        Examples
        --------
        >>> cal = pd.DataFrame({"risk_decile": [1, 2], "users": [10, 10], "predicted": [0.1, 0.4], "observed": [0.1, 0.7],
        ...                     "calibrated": [0.12, 0.65]})
        >>> r = RiskResult(pd.DataFrame(), {}, cal, pd.DataFrame(), pd.Timedelta("30D"), pd.Timestamp("2025-01-01", tz="UTC"))
        >>> {k: round(v, 3) for k, v in r.calibration_facts().items()}
        {'worst_decile': 2, 'worst_predicted': 0.4, 'worst_observed': 0.7, 'mean_gap': 0.15, 'recalibrated_mean_gap': 0.035, 'recalibrated_max_gap': 0.05}
        """
        c = self.calibration
        if c.empty:
            return {}
        gap = (c["observed"] - c["predicted"]).abs().to_numpy(float)
        row = c.iloc[int(np.nanargmax(gap))]
        facts = {"worst_decile": int(row["risk_decile"]), "worst_predicted": float(row["predicted"]),
                 "worst_observed": float(row["observed"]), "mean_gap": float(np.nanmean(gap))}
        if "calibrated" in c.columns:
            fixed = (c["observed"] - c["calibrated"]).abs().to_numpy(float)
            facts.update(recalibrated_mean_gap=float(np.nanmean(fixed)), recalibrated_max_gap=float(np.nanmax(fixed)))
        return facts

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
    until = observed_end(t, observed_until)
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
    # A factor says which way it pushes: "persona is not X" when not being in X is what raises the risk.
    above, below = _factor_words(cols, covariates)
    is_above = np.take_along_axis(X.to_numpy() > cph._norm_mean.reindex(cols).to_numpy(), order, axis=1)
    picked = np.take_along_axis(contrib, order, axis=1) > 0
    chosen = pd.DataFrame(np.where(picked, np.where(is_above, above[order], below[order]), ""), index=X.index)
    factors = chosen[0].str.cat([chosen[1], chosen[2]], sep=", ").str.replace(r"(, )+$", "", regex=True)
    factors = factors.str.replace(r"^(, )+", "", regex=True).str.replace(r"(, ){2,}", ", ", regex=True)
    scores = pd.DataFrame({"user_id": X.index, "churn_probability": p, "calibrated_probability": mapping(p),
                           "risk_decile": pd.qcut(pd.Series(p).rank(method="first"), 10, labels=range(1, 11)).astype(int),
                           "top_factors": factors.to_numpy()}).sort_values("churn_probability", ascending=False)
    coefficients = cph.summary[["exp(coef)", "exp(coef) lower 95%", "exp(coef) upper 95%", "p"]].rename(columns={
        "exp(coef)": "hazard_ratio", "exp(coef) lower 95%": "ci_low", "exp(coef) upper 95%": "ci_high"})
    coefficients = declare(coefficients.reset_index().rename(columns={"covariate": "feature"}),
                           {"hazard_ratio": "ratio", "ci_low": "ratio", "ci_high": "ratio", "p": "p_value"},
                           headers={"hazard_ratio": "Hazard ratio (per unit)"})
    checked = pd.DataFrame({"user_id": Xv.index, "churn_probability": pv, "churned": yv["churned"].to_numpy()})
    return RiskResult(scores.reset_index(drop=True), validation, calibration, coefficients, horizon_td, until, checked)


def _factor_words(cols: Sequence[str], covariates: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Each model column in words, for a user above and below its mean: a one-hot level of a covariate reads
    ``persona is X`` / ``persona is not X``, a behaviour ``sessions 30d higher than usual`` / ``... lower ...``.

    Examples
    --------
    >>> above, below = _factor_words(["sessions_30d", "persona_Deal hunter"], ["persona"])
    >>> above.tolist(), below.tolist()
    (['sessions 30d higher than usual', 'persona is Deal hunter'], ['sessions 30d lower than usual', 'persona is not Deal hunter'])
    """
    above, below = [], []
    for col in cols:
        owner = next((c for c in covariates if col.startswith(f"{c}_")), None)
        if owner is not None:
            level = col[len(owner) + 1:]
            above.append(f"{owner} is {level}")
            below.append(f"{owner} is not {level}")
        else:
            words = col.replace("_", " ")
            above.append(f"{words} higher than usual")
            below.append(f"{words} lower than usual")
    return np.array(above, dtype=object), np.array(below, dtype=object)


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


def _p_alive(t: ibis.Table, at: pd.Timestamp, purchase_events: Sequence[str]) -> tuple[pd.Series | None, str]:
    """Each customer's BG/NBD probability of still being a customer at ``at`` (daily periods), fitted on the
    purchases up to ``at``; ``(None, why)`` when there are no purchases or the model does not converge."""
    from helpers.value import ConvergenceError, fit_bgnbd_penalized_if_needed, purchase_summary

    try:
        summary = purchase_summary(t, purchase_event=list(purchase_events), value=None, observed_until=at)
        model, _ = fit_bgnbd_penalized_if_needed(summary)
    except (EventDataError, ConvergenceError) as exc:
        return None, str(exc)
    return pd.Series(model.p_alive(summary).to_numpy(), index=summary["user_id"].to_numpy()), ""


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
    p_alive: bool = True,
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

    With ``p_alive`` (and purchases in the data), ``scores`` also has ``p_alive``: the customer's probability
    of still being a customer from a BG/NBD model (:mod:`helpers.value`, daily periods) fitted on the
    purchases up to the snapshot (with a small penalty when it does not converge without); it is not part of the score (NaN for users who never bought). It is
    validated like the score: ``validation["p_alive_concordance"]`` is its concordance with churn at the
    cut, among the users active then who had bought (``p_alive_users``); ``validation["p_alive_note"]`` says
    why it is missing when it is.

    Examples
    --------
    >>> from helpers.value import simulate_bgnbd_purchases  # buyers who drop out: a model the fit can pin down
    >>> ev, _ = simulate_bgnbd_purchases(300, r=0.5, alpha=10.0, a=0.8, b=2.5, days=120.0, seed=1)
    >>> h = health_score(ev, horizon="20D", inactivity="20D")
    >>> "p_alive" in h.scores.columns, h.scores["p_alive"].between(0, 1).all()
    (True, np.True_)
    """
    from lifelines.utils import concordance_index

    t = as_ibis(events)
    until = observed_end(t, observed_until)
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
    if p_alive:
        then, note = _p_alive(t, cut, purchase_events)
        now, note_now = _p_alive(t, until, purchase_events) if then is not None else (None, note)
        if now is not None:
            scores["p_alive"] = scores["user_id"].astype(str).map(now).astype(float)
            pv = pd.Series(fv.index.astype(str), index=fv.index).map(then).astype(float).to_numpy()
            known = np.isfinite(pv)
            validation["p_alive_users"] = int(known.sum())
            validation["p_alive_concordance"] = (
                float(concordance_index(yv["days"].to_numpy()[known], pv[known], yv["churned"].to_numpy()[known]))
                if known.sum() > 1 and yv["churned"].to_numpy()[known].any() else np.nan)
        else:
            validation["p_alive_note"] = note_now or note
    checked = pd.DataFrame({"user_id": fv.index, "health": hv["health"].to_numpy(), "churned": yv["churned"].to_numpy()})
    weights = pd.DataFrame({"feature": list(HEALTH_WEIGHTS), "weight": list(HEALTH_WEIGHTS.values())})
    return RiskResult(scores, validation, calibration, weights, horizon_td, until, checked)


def p_alive_headline(health: RiskResult) -> str:
    """One sentence on the health score's ``p_alive`` column: how many customers are likely lapsed and how
    well it ranked churn at the validation cut, or why it is missing."""
    v = health.validation
    if "p_alive" not in health.scores.columns:
        return f"The probability of still being a customer is not shown: {v.get('p_alive_note', 'it was not asked for')}"
    p = health.scores["p_alive"].dropna()
    conc = v.get("p_alive_concordance", np.nan)
    checked = (f"at {v['cut']:%Y-%m-%d} it ranked who churned next with concordance {conc:.2f} over "
               f"{v.get('p_alive_users', 0):,} customers (0.5 is chance)" if np.isfinite(conc)
               else "it could not be checked against churn at the time split")
    return (f"Of the {len(p):,} active users who have bought, {(p < 0.5).mean():.0%} are more likely to have "
            f"stopped buying than not (P(alive) < 50%); {checked}.")


def risk_by_segment(risk: RiskResult, segment: pd.Series, *, threshold: float = 0.5) -> pd.DataFrame:
    """Per segment (a Series indexed by ``user_id``, e.g. persona): active users, mean churn probability, and the
    share at or above ``threshold`` (on :attr:`RiskResult.probability`, as ``audiences.at_risk``)."""
    seg = segment.copy()
    seg.index = seg.index.astype(str)
    s = risk.scores.assign(segment=risk.scores["user_id"].map(seg).astype(object).fillna("(none)"))
    out = s.groupby("segment").agg(users=("user_id", "size"), mean_probability=(risk.probability, "mean"),
                                   share_at_risk=(risk.probability, lambda p: float((p >= threshold).mean())))
    out = out.sort_values("mean_probability", ascending=False).reset_index().rename(columns={"segment": segment.name or "segment"})
    return declare(out, {"users": "count", "mean_probability": "rate", "share_at_risk": "rate"}, headers={
        "users": "Active users", "mean_probability": "Mean churn probability",
        "share_at_risk": f"Share at or above {threshold:.0%}"})


def risk_factor_counts(risk: RiskResult, *, min_decile: int = 9) -> pd.DataFrame:
    """How often each feature is among the top factors of the users in risk deciles ``min_decile``-10."""
    top = risk.scores[risk.scores["risk_decile"] >= min_decile]["top_factors"]
    counts = top.str.split(", ").explode().replace("", np.nan).dropna().value_counts()
    out = pd.DataFrame({"factor": counts.index, "users": counts.to_numpy(), "share": counts.to_numpy() / max(len(top), 1)})
    out.attrs["caption"] = (f"What pushes the risk up for the {len(top):,} riskiest active users (risk deciles "
                            f"{min_decile}–10 of {len(risk.scores):,} scored): how many have each factor among their "
                            "top three, in the direction it pushes.")
    return declare(out, {"users": "count", "share": "rate"}, headers={
        "factor": "Factor (raises the risk)", "users": "Riskiest users with it", "share": "Share of the riskiest users"})
