"""Spend per transaction (the Gamma-Gamma model, Fader, Hardie and Lee 2005b) and discounted customer value.

Gamma-Gamma: a customer's transaction values vary around their own mean spend ζ as Gamma(p, ν); ν varies
across customers as Gamma(q, γ). For a customer with x repeat transactions of mean value m̄ (``frequency``,
``monetary``), the likelihood is

    f(m̄ | x) = Γ(px+q) / (Γ(px) Γ(q)) · γ^q · m̄^(px−1) · x^(px) / (γ + m̄x)^(px+q),

and the expected spend per transaction is E[M | x, m̄] = (γ + m̄x) · p / (px + q − 1): a weighted mean of the
population's mean p·γ / (q − 1) and the customer's own m̄, the weight on m̄ growing with x. The model
assumes spend is independent of how often a customer buys; the fit warns when the two correlate.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from helpers.io import EventDataError
from helpers.units import declare
from helpers.value.bgnbd import BGNBDModel
from helpers.value.fitting import check_summary, maximise
from helpers.value.summary import PERIOD_DAYS

PARAMS = ("p", "q", "gamma")
CORRELATION_WARNING = 0.3  # |Pearson r| of frequency and monetary above which the independence assumption is doubtful
MONTH_DAYS = 30.0  # a discounting month, as in lifetimes' customer_lifetime_value


def gamma_gamma_log_likelihood(params: Any, frequency: Any, monetary: Any) -> np.ndarray:
    """Each repeat customer's Gamma-Gamma log-likelihood at ``params = (p, q, gamma)``.

    Examples
    --------
    >>> round(float(gamma_gamma_log_likelihood((6.25, 3.74, 15.44), [2], [22.35])[0]), 4)
    -3.5513
    """
    p, q, gamma = (float(v) for v in params)
    x, m = np.asarray(frequency, dtype=float), np.asarray(monetary, dtype=float)
    px = p * x
    return (special.gammaln(px + q) - special.gammaln(px) - special.gammaln(q) + q * np.log(gamma)
            + (px - 1) * np.log(m) + px * np.log(x) - (px + q) * np.log(gamma + m * x))


@dataclass
class GammaGammaModel:
    """A fitted Gamma-Gamma spend model: ``params_`` (p, q, gamma), ``summary``, ``log_likelihood_``, the
    customers fitted (those with repeat purchases of positive value), how many were left out and why, and
    the correlation of frequency and monetary value among them."""

    params_: dict[str, float]
    summary: pd.DataFrame
    log_likelihood_: float
    n_customers: int
    left_out: dict[str, int] = field(default_factory=dict)
    frequency_monetary_correlation: float = float("nan")

    @property
    def population_mean(self) -> float:
        """The mean spend per transaction across customers, p·γ / (q − 1) (infinite when q ≤ 1)."""
        p, q, gamma = (self.params_[k] for k in PARAMS)
        return p * gamma / (q - 1) if q > 1 else float("inf")

    def expected_value(self, summary: pd.DataFrame) -> pd.Series:
        """E[spend per transaction | frequency, monetary] per customer; the population mean for customers
        without repeat purchases.

        Examples
        --------
        >>> m = GammaGammaModel({"p": 6.25, "q": 3.74, "gamma": 15.44}, pd.DataFrame(), 0.0, 0)
        >>> m.expected_value(pd.DataFrame({"frequency": [2, 0], "monetary": [22.35, 0.0]})).round(2).tolist()
        [24.66, 35.22]
        """
        check_summary(summary, ("frequency", "monetary"))
        p, q, gamma = (self.params_[k] for k in PARAMS)
        x = summary["frequency"].to_numpy(float)
        m = np.where(x > 0, summary["monetary"].to_numpy(float), 0.0)
        return pd.Series((gamma + m * x) * p / (p * x + q - 1), index=summary.index, name="expected_value")

    def _repr_html_(self) -> str:
        from helpers.plots import styled

        return styled(self.summary)._repr_html_()


def fit_gamma_gamma(summary: pd.DataFrame, *, penalizer: float = 0.0) -> GammaGammaModel:
    """Fit the Gamma-Gamma spend model on customers with ``frequency > 0`` and positive ``monetary`` (the
    others are left out and counted in ``left_out``). Warns when frequency and monetary value correlate
    (|r| > 0.3), as the model assumes they do not.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.integers(1, 6, 3000)
    >>> nu = rng.gamma(4.0, 1 / 20.0, 3000)  # q = 4, gamma = 20
    >>> mbar = rng.gamma(6.0 * x, 1 / (nu * x))  # the mean of x Gamma(6, nu) values
    >>> m = fit_gamma_gamma(pd.DataFrame({"frequency": x, "monetary": mbar}))
    >>> bool(m.summary.set_index("parameter").eval("ci_low <= estimate <= ci_high").all())
    True
    """
    check_summary(summary, ("frequency",))
    if "monetary" not in summary.columns:
        raise EventDataError("the summary has no monetary column: make it with purchase_summary(..., value=...).")
    x = summary["frequency"].to_numpy(float)
    m = pd.to_numeric(summary["monetary"], errors="coerce").to_numpy(float)
    repeat = x > 0
    usable = repeat & np.isfinite(m) & (m > 0)
    left_out = {"no repeat purchase": int((~repeat).sum()),
                "repeat purchases of zero or negative mean value": int((repeat & ~usable).sum())}
    if usable.sum() < 10:
        raise EventDataError(f"only {int(usable.sum())} customers have repeat purchases of positive value; the "
                             "Gamma-Gamma model needs more (at least 10, and far more for stable estimates).")
    x, m = x[usable], m[usable]
    corr = float(np.corrcoef(x, m)[0, 1]) if x.std() > 0 and m.std() > 0 else float("nan")
    if np.isfinite(corr) and abs(corr) > CORRELATION_WARNING:
        warnings.warn(f"frequency and monetary value correlate (Pearson r = {corr:.2f}) among the {len(x)} "
                      "repeat customers; the Gamma-Gamma model assumes spend does not depend on how often a "
                      "customer buys, so its expected values lean the wrong way.", UserWarning, stacklevel=2)

    def negative_ll(params: np.ndarray) -> float:
        return -float(gamma_gamma_log_likelihood(params, x, m).sum())

    start = np.array([1.0, 2.0, max(float(np.mean(m)), 1e-6)])
    params, ll, table = maximise(negative_ll, PARAMS, start, model="Gamma-Gamma", n=len(x),
                                  penalizer=penalizer, hint="or check that spend varies between customers (a "
                                                            "q running off to infinity means it barely does)")
    table = declare(table, {"parameter": "text", "estimate": "estimate", "se": "estimate", "ci_low": "estimate",
                            "ci_high": "estimate"})
    return GammaGammaModel(dict(zip(PARAMS, map(float, params))), table, ll, len(x), left_out, corr)


def _days(value: Any, name: str) -> float:
    try:
        days = pd.Timedelta(value) / pd.Timedelta("1D")
    except (ValueError, TypeError) as exc:
        raise EventDataError(f"{name}={value!r} is not a length of time (e.g. '365D').") from exc
    if days <= 0:
        raise EventDataError(f"{name} must be positive, not {value!r}.")
    return days


def customer_value(bgnbd: BGNBDModel, gamma_gamma: GammaGammaModel, summary: pd.DataFrame, *,
                   horizon: str | pd.Timedelta = "365D", discount_rate: float = 0.01) -> pd.DataFrame:
    """Discounted expected value per customer over ``horizon``.

    The horizon is cut into 30-day months (the last one partial). Month i contributes the customer's
    expected purchases in it (the BG/NBD conditional expectation at its end minus at its start) times their
    expected spend per transaction (Gamma-Gamma), discounted by (1 + ``discount_rate``)^(its end / 30 days).
    ``discount_rate`` is per month: 0.01 is about 12.7% a year. With a horizon of whole months this is
    lifetimes' ``customer_lifetime_value``.

    Returns ``summary``'s customers with ``p_alive``, ``expected_purchases`` (over the horizon),
    ``expected_value`` (per transaction) and ``customer_value``, highest value first.

    Examples
    --------
    >>> bg = BGNBDModel({"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}, pd.DataFrame(), 0.0, 0, period="W")
    >>> gg = GammaGammaModel({"p": 6.25, "q": 3.74, "gamma": 15.44}, pd.DataFrame(), 0.0, 0)
    >>> s = pd.DataFrame({"user_id": ["a"], "frequency": [2], "recency": [30.43], "T": [38.86], "monetary": [22.35]})
    >>> v = customer_value(bg, gg, s, horizon="360D", discount_rate=0.0)
    >>> bool(np.isclose(v["customer_value"].iloc[0], v["expected_purchases"].iloc[0] * v["expected_value"].iloc[0]))
    True
    """
    if not 0 <= discount_rate < 1:
        raise EventDataError(f"discount_rate is per month and must lie in [0, 1), not {discount_rate}.")
    days = _days(horizon, "horizon")
    period_days = PERIOD_DAYS.get(bgnbd.period, 1.0)
    ends = np.append(np.arange(MONTH_DAYS, days, MONTH_DAYS), days)  # month ends in days, the last = horizon
    ends = ends[ends > 0]
    spend = gamma_gamma.expected_value(summary).to_numpy()
    total = np.zeros(len(summary))
    before = np.zeros(len(summary))
    for end in ends:  # a dozen months, each a vectorised pass over all customers
        upto = bgnbd.expected_purchases(end / period_days, summary).to_numpy()
        total += (upto - before) * spend / (1 + discount_rate) ** (end / MONTH_DAYS)
        before = upto
    out = summary.copy()
    out["p_alive"] = bgnbd.p_alive(summary).to_numpy()
    out["expected_purchases"] = before
    out["expected_value"] = spend
    out["customer_value"] = total
    out = out.sort_values("customer_value", ascending=False, kind="stable")
    out.attrs.update(summary.attrs, horizon_days=days, discount_rate=discount_rate)
    return declare(out, {"p_alive": "rate", "expected_purchases": "number", "expected_value": "money",
                         "customer_value": "money"})
