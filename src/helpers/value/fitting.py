"""Maximum likelihood shared by the BG/NBD and Gamma-Gamma fits: positive parameters optimised on the log
scale, standard errors from a numerical Hessian, and a clear error when the optimiser does not converge."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from scipy import optimize

from helpers.stats import Z95


RIDGE = 10.0  # a standard error this many times its estimate: the data cannot pin the parameter down


class ConvergenceError(RuntimeError):
    """A model fit that did not converge; the message says what to try."""


def check_summary(summary: pd.DataFrame, columns: Sequence[str], where: str = "summary") -> None:
    """Raise a ``ValueError`` naming the column and a customer when the summary cannot be fitted."""
    from helpers.io import EventDataError

    missing = [c for c in columns if c not in summary.columns]
    if missing:
        raise EventDataError(f"{where} has no column {', '.join(missing)} (columns: "
                             f"{', '.join(map(str, summary.columns))}); make it with purchase_summary().")
    ids = summary["user_id"] if "user_id" in summary.columns else pd.Series(summary.index, index=summary.index)

    def fail(mask: pd.Series, what: str) -> None:
        if mask.any():
            row = summary[mask].iloc[0]
            shown = ", ".join(f"{c}={row[c]!r}" for c in columns)
            raise EventDataError(f"{where}: {what}, e.g. customer {ids[mask].iloc[0]!r} ({shown}); "
                                 f"{int(mask.sum())} such customers.")

    for c in columns:
        values = pd.to_numeric(summary[c], errors="coerce")
        fail(values.isna() | ~np.isfinite(values.fillna(0)), f"column {c} holds a missing or non-numeric value")
        fail(values < 0, f"column {c} is negative")
    if "frequency" in columns:
        f = summary["frequency"].astype(float)
        fail(f != np.round(f), "column frequency is not a whole number of repeat purchases")
    if {"recency", "T"} <= set(columns):
        fail(summary["recency"].astype(float) > summary["T"].astype(float), "recency is larger than T")
    if {"frequency", "recency"} <= set(columns):
        fail((summary["frequency"] == 0) & (summary["recency"] != 0), "frequency is 0 but recency is not")


def maximise(negative_ll: Callable[[np.ndarray], float], names: Sequence[str], start: np.ndarray, *,
             model: str, n: int, penalizer: float,
             hint: str = "or check the data") -> tuple[np.ndarray, float, pd.DataFrame]:
    """Minimise ``negative_ll(params) / n + penalizer·Σ params²`` over ``log(params)``; returns the params, the
    log-likelihood at them (without the penalty) and a summary table with Hessian standard errors and Wald
    95% intervals (lifetimes' and lifelines' convention)."""
    def objective(log_params: np.ndarray) -> float:
        params = np.exp(log_params)
        value = negative_ll(params) / n + penalizer * float(np.sum(params**2))
        return value if np.isfinite(value) else 1e100

    # Overflow on the way to a far corner is expected and handled (the objective turns it into 1e100); it
    # must not print warnings into a report.
    with np.errstate(all="ignore"):
        best = optimize.minimize(objective, np.log(start), method="L-BFGS-B",
                                 options={"maxiter": 2000, "ftol": 1e-14, "gtol": 1e-9})
        if not best.success:  # a second opinion that needs no gradient, from where the first stopped
            polish = optimize.minimize(objective, best.x, method="Nelder-Mead",
                                       options={"maxiter": 20000, "xatol": 1e-10, "fatol": 1e-14})
            best = polish if polish.fun <= best.fun else best
        params = np.exp(best.x)
        ll = -negative_ll(params)
        se = _standard_errors(lambda p: negative_ll(p) + n * penalizer * float(np.sum(p**2)), params)
    # A maximum has finite parameters and a positive definite Hessian; a likelihood that keeps rising as a
    # parameter runs off to 0 or infinity has neither, whatever the optimiser's own flag says. Where along
    # such a ridge the optimiser stops differs between machines (floating-point paths), so without a penalty a
    # parameter whose standard error is more than RIDGE times its estimate counts as not pinned down too. (A
    # penalty is what pins such a parameter: a penalised estimate near 0 is its answer, however wide.)
    ridge = np.isfinite(se) & (se > RIDGE * params) & (penalizer == 0)
    if not np.isfinite(ll) or np.any(np.abs(best.x) > 25) or not np.all(np.isfinite(se)) or ridge.any():
        shown = ", ".join(f"{k}={v:.4g}" for k, v in zip(names, params))
        raise ConvergenceError(
            f"The {model} fit did not converge: the optimiser ended at {shown} (log-likelihood {ll:.6g}), "
            f"where the likelihood is {'flat or still rising' if np.isfinite(ll) else 'not finite'}. "
            f"Parameters running off to 0 or infinity mean the data cannot pin them down: there may be too "
            f"few customers or repeat purchases ({n} customers), or purchases may not follow the model. Try a "
            f"small penalizer (penalizer=0.001, then 0.01), {hint}.")
    table = pd.DataFrame({"parameter": list(names), "estimate": params, "se": se,
                          "ci_low": params - Z95 * se, "ci_high": params + Z95 * se})
    return params, ll, table


def _standard_errors(f: Callable[[np.ndarray], float], x: np.ndarray) -> np.ndarray:
    """Square roots of the diagonal of the inverse Hessian of ``f`` at ``x`` (central differences, step
    relative to each parameter); NaN where the Hessian is not positive definite."""
    k = len(x)
    h = 1e-4 * np.maximum(np.abs(x), 1e-8)
    hess = np.empty((k, k))
    for i in range(k):
        for j in range(i, k):
            ei, ej = np.eye(k)[i] * h[i], np.eye(k)[j] * h[j]
            value = (f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)) / (4 * h[i] * h[j])
            hess[i, j] = hess[j, i] = value
    try:
        cov = np.linalg.inv(hess)
    except np.linalg.LinAlgError:
        return np.full(k, np.nan)
    diag = np.diag(cov)
    return np.where(diag > 0, np.sqrt(np.abs(diag)), np.nan)
