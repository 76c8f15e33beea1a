"""The BG/NBD model (Fader, Hardie and Lee 2005): how often customers buy, and whether they are still customers.

While alive, a customer buys as a Poisson process with rate λ; rates vary across customers as Gamma(r, α)
(shape r, rate α). After each repeat purchase a customer drops out with probability p, which varies as
Beta(a, b). A customer with ``frequency`` x, ``recency`` t_x and age ``T`` (one period unit) has likelihood

    L = Γ(r+x) α^r / Γ(r) · B(a, b+x) / B(a, b) · [ (α+T)^−(r+x) + 1{x>0} · a/(b+x−1) · (α+t_x)^−(r+x) ]

(the paper's equation 6). From it, per customer: P(alive) = 1 / (1 + 1{x>0} · a/(b+x−1) · ((α+T)/(α+t_x))^(r+x))
(1 for a customer without repeats, by the model's definition: only a repeat purchase can be followed by a
drop-out), the conditional expected purchases in the next t periods (equation 10), and for a new customer
E[X(t)] (equation 9) and P(X(t) = n) (equation 8).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy import special

from helpers.units import declare
from helpers.value.fitting import ConvergenceError, check_summary, maximise

PARAMS = ("r", "alpha", "a", "b")
COLUMNS = ("frequency", "recency", "T")


def bgnbd_log_likelihood(params: Any, frequency: Any, recency: Any, T: Any) -> np.ndarray:
    """Each customer's BG/NBD log-likelihood at ``params = (r, alpha, a, b)``.

    Examples
    --------
    >>> ll = bgnbd_log_likelihood((0.243, 4.414, 0.793, 2.426), [2], [30.43], [38.86])
    >>> round(float(ll[0]), 4)
    -9.4586
    """
    r, alpha, a, b = (float(v) for v in params)
    x, tx, T = (np.asarray(v, dtype=float) for v in (frequency, recency, T))
    ln_a1 = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
    ln_a2 = special.betaln(a, b + x) - special.betaln(a, b)
    ln_a3 = -(r + x) * np.log(alpha + T)
    with np.errstate(invalid="ignore", divide="ignore"):
        ln_a4 = np.log(a) - np.log(b + x - 1) - (r + x) * np.log(alpha + tx)
    tail = np.where(x > 0, np.logaddexp(ln_a3, np.where(x > 0, ln_a4, -np.inf)), ln_a3)
    return ln_a1 + ln_a2 + tail


@dataclass
class BGNBDModel:
    """A fitted BG/NBD model: ``params_`` (r, alpha, a, b), ``summary`` (estimates, standard errors, 95%
    intervals), ``log_likelihood_``, the period unit and the customers it was fitted on (``data``)."""

    params_: dict[str, float]
    summary: pd.DataFrame
    log_likelihood_: float
    n_customers: int
    period: str = "D"
    penalizer: float = 0.0
    data: pd.DataFrame | None = field(default=None, repr=False)

    def _columns(self, summary: pd.DataFrame | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, pd.Index]:
        s = self.data if summary is None else summary
        if s is None:
            raise ValueError("pass a summary: this model keeps no data.")
        check_summary(s, COLUMNS)
        return (s["frequency"].to_numpy(float), s["recency"].to_numpy(float), s["T"].to_numpy(float), s.index)

    def p_alive(self, summary: pd.DataFrame | None = None) -> pd.Series:
        """P(still a customer | frequency, recency, T) per customer (1 without repeat purchases).

        Examples
        --------
        >>> m = BGNBDModel({"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}, pd.DataFrame(), 0.0, 0)
        >>> s = pd.DataFrame({"frequency": [0, 2, 2], "recency": [0, 30.43, 10.0], "T": [38.86] * 3})
        >>> m.p_alive(s).round(3).tolist()
        [1.0, 0.727, 0.268]
        """
        r, alpha, a, b = (self.params_[k] for k in PARAMS)
        x, tx, T, index = self._columns(summary)
        with np.errstate(invalid="ignore", divide="ignore"):
            log_odds = np.log(a) - np.log(b + x - 1) + (r + x) * (np.log(alpha + T) - np.log(alpha + tx))
        p = np.where(x > 0, special.expit(-np.where(x > 0, log_odds, 0.0)), 1.0)
        return pd.Series(p, index=index, name="p_alive")

    def expected_purchases(self, t: float, summary: pd.DataFrame | None = None) -> pd.Series:
        """Expected purchases in the next ``t`` periods per customer, given their history (equation 10).

        Examples
        --------
        >>> m = BGNBDModel({"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}, pd.DataFrame(), 0.0, 0)
        >>> round(float(m.expected_purchases(39, pd.DataFrame({"frequency": [2], "recency": [30.43],
        ...                                                    "T": [38.86]})).iloc[0]), 3)
        1.226
        """
        r, alpha, a, b = (self.params_[k] for k in PARAMS)
        x, tx, T, index = self._columns(summary)
        t = float(t)
        z = t / (alpha + T + t)
        hyp = special.hyp2f1(r + x, b + x, a + b + x - 1, z)
        ahead = (a + b + x - 1) / (a - 1) * (1 - np.exp((r + x) * np.log((alpha + T) / (alpha + T + t))) * hyp)
        return pd.Series(ahead * self.p_alive(summary).to_numpy(), index=index, name="expected_purchases")

    def expected_purchases_population(self, t: Any) -> np.ndarray | float:
        """E[X(t)]: the expected purchases of a new customer in their first ``t`` periods (equation 9).

        Examples
        --------
        >>> m = BGNBDModel({"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}, pd.DataFrame(), 0.0, 0)
        >>> np.round(m.expected_purchases_population([1.0, 32.0, 78.0]), 4).tolist()
        [0.0533, 1.0452, 1.8605]
        """
        r, alpha, a, b = (self.params_[k] for k in PARAMS)
        t_ = np.asarray(t, dtype=float)
        out = (a + b - 1) / (a - 1) * (1 - (alpha / (alpha + t_)) ** r
                                       * special.hyp2f1(r, b, a + b - 1, t_ / (alpha + t_)))
        return float(out) if out.ndim == 0 else out

    def probability_of_purchases(self, n: Any, t: float) -> np.ndarray | float:
        """P(X(t) = n): the chance that a new customer makes exactly ``n`` purchases in ``t`` periods
        (equation 8).

        Examples
        --------
        >>> m = BGNBDModel({"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}, pd.DataFrame(), 0.0, 0)
        >>> p = m.probability_of_purchases(np.arange(200), 39.0)
        >>> round(float(p.sum()), 6), round(float((np.arange(200) * p).sum()), 4)  # sums to 1, mean E[X(39)]
        (1.0, 1.1967)
        """
        r, alpha, a, b = (self.params_[k] for k in PARAMS)
        n_ = np.asarray(n, dtype=float)
        t = float(t)
        stay, go = np.log(alpha / (alpha + t)), np.log(t / (alpha + t))
        first = np.exp(special.betaln(a, b + n_) - special.betaln(a, b) + special.gammaln(r + n_)
                       - special.gammaln(r) - special.gammaln(n_ + 1) + r * stay + n_ * go)
        # Σ_{j<n} Γ(r+j)/(Γ(r) j!) (t/(α+t))^j, by a cumulative sum over j up to the largest n
        top = int(n_.max()) if n_.size else 0
        j = np.arange(max(top, 1))
        terms = np.exp(special.gammaln(r + j) - special.gammaln(r) - special.gammaln(j + 1) + j * go)
        partial = np.concatenate([[0.0], np.cumsum(terms)])[n_.astype(int)]
        with np.errstate(invalid="ignore"):
            second = np.where(n_ > 0, np.exp(special.betaln(a + 1, b + n_ - 1) - special.betaln(a, b))
                              * (1 - np.exp(r * stay) * partial), 0.0)
        out = first + second
        return float(out) if out.ndim == 0 else out

    def _repr_html_(self) -> str:
        from helpers.plots import styled

        return styled(self.summary)._repr_html_()


def fit_bgnbd(summary: pd.DataFrame, *, penalizer: float = 0.0) -> BGNBDModel:
    """Fit the BG/NBD model by maximum likelihood (equation 6, scipy on log parameters).

    Parameters
    ----------
    summary : :func:`~helpers.value.purchase_summary` output (``frequency``, ``recency``, ``T``).
    penalizer : adds ``penalizer · Σ params²`` to the mean negative log-likelihood (lifetimes' convention);
        0 is plain maximum likelihood.

    Raises
    ------
    ConvergenceError : when the optimiser does not settle on finite parameters; the message says what to try.

    Examples
    --------
    >>> s = simulate_bgnbd(5000, r=0.5, alpha=10.0, a=0.8, b=2.5, T=120.0, seed=1)
    >>> m = fit_bgnbd(s)
    >>> bool(m.summary.set_index("parameter").eval("ci_low <= estimate <= ci_high").all())
    True
    """
    check_summary(summary, COLUMNS)
    if penalizer < 0:
        raise ValueError(f"penalizer must be 0 or more, not {penalizer}.")
    x, tx, T = (summary[c].to_numpy(float) for c in COLUMNS)
    # Customers with the same (x, t_x, T) share a likelihood: fit on the distinct rows, weighted.
    rows, weights = np.unique(np.column_stack([x, tx, T]), axis=0, return_counts=True)

    def negative_ll(params: np.ndarray) -> float:
        return -float(weights @ bgnbd_log_likelihood(params, rows[:, 0], rows[:, 1], rows[:, 2]))

    start = np.array([1.0, max(float(np.mean(T)), 1.0), 1.0, 1.0])
    params, ll, table = maximise(negative_ll, PARAMS, start, model="BG/NBD", n=len(x), penalizer=penalizer,
                                  hint="a longer observation period, or check the summary (frequency, recency "
                                       "and T in one period unit)")
    table = declare(table, {"parameter": "text", "estimate": "estimate", "se": "estimate", "ci_low": "estimate",
                            "ci_high": "estimate"})
    return BGNBDModel(dict(zip(PARAMS, map(float, params))), table, ll, len(x),
                      period=summary.attrs.get("period", "D"), penalizer=penalizer, data=summary)


def fit_bgnbd_penalized_if_needed(summary: pd.DataFrame, *, penalizers: Sequence[float] = (0.0, 0.001, 0.01)
                                  ) -> tuple[BGNBDModel, str]:
    """:func:`fit_bgnbd` without a penalty, then with each of ``penalizers`` in turn if it does not converge
    (what the :class:`ConvergenceError` advises); returns the model and a sentence saying which penalty was
    needed ("" for none). Raises the last error when no penalty helps.

    Examples
    --------
    >>> s = simulate_bgnbd(2000, r=0.5, alpha=8.0, a=0.8, b=2.5, T=100.0, seed=1)
    >>> m, note = fit_bgnbd_penalized_if_needed(s)
    >>> m.penalizer, note
    (0.0, '')
    """
    error: ConvergenceError | None = None
    for penalizer in penalizers:
        try:
            model = fit_bgnbd(summary, penalizer=penalizer)
        except ConvergenceError as exc:
            error = exc
            continue
        note = "" if penalizer == 0 else (
            f"The purchase model did not converge without a penalty (the data cannot pin a parameter down, often "
            f"the dropout when customers rarely stop), so it was fitted with penalizer={penalizer:g}, which "
            "pulls the parameters slightly towards zero.")
        return model, note
    raise error if error is not None else ValueError("penalizers is empty.")


def simulate_bgnbd(n_customers: int, *, r: float, alpha: float, a: float, b: float, T: Any,
                   holdout: float | None = None, seed: int = 0) -> pd.DataFrame:
    """Customers drawn from the BG/NBD process (continuous time), as a summary: ``frequency``, ``recency``,
    ``T``, and the truth ``alive`` at T. ``T`` is one age for all or one per customer. With ``holdout``, also
    ``purchases_holdout`` (purchases in the next ``holdout`` periods) and ``duration_holdout``.

    Each customer gets λ ~ Gamma(r, rate α) and p ~ Beta(a, b); they would make K ~ Poisson(λT) purchases
    in (0, T] if never dropping out, and drop out after the N-th repeat purchase, N ~ Geometric(p); so they
    make m = min(K, N) repeats, and the last one, the m-th of K uniform times, is T · Beta(m, K − m + 1).
    In the holdout a customer still alive makes min(K', N − m) more, K' ~ Poisson(λ · holdout).

    Examples
    --------
    >>> s = simulate_bgnbd(3, r=1.0, alpha=1.0, a=1.0, b=1.0, T=10.0, seed=0)
    >>> list(s.columns), bool((s["recency"] <= s["T"]).all())
    (['user_id', 'frequency', 'recency', 'T', 'alive'], True)
    """
    rng = np.random.default_rng(seed)
    ages = np.broadcast_to(np.asarray(T, dtype=float), (n_customers,)).copy()
    lam = rng.gamma(r, 1 / alpha, n_customers)
    p = rng.beta(a, b, n_customers)
    k = rng.poisson(lam * ages)
    n = rng.geometric(np.clip(p, 1e-12, 1))
    m = np.minimum(k, n)
    recency = np.zeros(n_customers)
    some = m > 0
    recency[some] = ages[some] * rng.beta(m[some], k[some] - m[some] + 1)
    out = pd.DataFrame({"user_id": [f"c{i:06d}" for i in range(n_customers)], "frequency": m.astype("int64"),
                        "recency": recency, "T": ages, "alive": k < n})
    if holdout is not None:
        more = rng.poisson(lam * float(holdout))
        out["purchases_holdout"] = np.where(k < n, np.minimum(more, n - m), 0).astype("int64")
        out["duration_holdout"] = float(holdout)
    return out


def repeat_times(start: np.ndarray, exposure: np.ndarray, orders: np.ndarray, stops_after: np.ndarray,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Repeat purchase times of the BG/NBD process, vectorised: customer i's ``orders[i]`` purchases without
    dropping out (K ~ Poisson(λ · exposure)) fall uniformly in ``start[i] + [0, exposure[i])``; sorted, they are
    cut after the ``stops_after[i]``-th (N ~ Geometric(p): the repeat after which the customer drops out).
    Returns ``(owner, time)`` sorted by owner, then time.

    Examples
    --------
    >>> owner, at = repeat_times(np.array([0.0, 10.0]), np.array([5.0, 5.0]), np.array([3, 2]), np.array([1, 9]),
    ...                          np.random.default_rng(0))
    >>> owner.tolist(), bool(10 <= at[1] <= at[2] < 15)
    ([0, 1, 1], True)
    """
    owner = np.repeat(np.arange(start.size), orders)
    at = start[owner] + rng.random(owner.size) * exposure[owner]
    order = np.lexsort((at, owner))
    owner, at = owner[order], at[order]
    rank = np.arange(owner.size) - np.repeat(np.cumsum(orders) - orders, orders)  # 0-based among the K
    keep = rank < stops_after[owner]
    return owner[keep], at[keep]


def simulate_bgnbd_purchases(n_customers: int, *, r: float, alpha: float, a: float, b: float,
                             start: Any = "2024-01-01", days: float = 365.0, acquisition_days: float | None = None,
                             spend: tuple[float, float, float] | None = (6.0, 4.0, 150.0), seed: int = 0,
                             event: str = "purchase") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Canonical purchase events from the BG/NBD process in daily units (and Gamma-Gamma spend), with the truth.

    Customer i's first purchase falls uniformly in the first ``acquisition_days`` (default: half of ``days``)
    after ``start``; they then buy at rate λ ~ Gamma(r, rate α) per day and, after each repeat purchase, drop
    out with probability p ~ Beta(a, b), until ``start + days``. With ``spend = (p, q, γ)`` each purchase is
    worth Gamma(p, rate ν) with ν ~ Gamma(q, rate γ) per customer. Vectorised: the K ~ Poisson(λ · age)
    purchase times a customer would make without dropping out are uniform, sorted, and cut at the N-th
    repeat, N ~ Geometric(p).

    Returns ``(events, truth)``; ``truth`` has per customer ``rate``, ``dropout``, ``alive`` (at the end) and
    ``spend_mean`` (E[value] = p / ν).

    Examples
    --------
    >>> ev, truth = simulate_bgnbd_purchases(50, r=0.5, alpha=20.0, a=0.8, b=2.5, days=90.0, seed=1)
    >>> list(ev.columns), ev["user_id"].nunique() == 50, bool(ev["timestamp"].max() < pd.Timestamp("2024-03-31", tz="UTC"))
    (['user_id', 'event', 'timestamp', 'value'], True, True)
    """
    rng = np.random.default_rng(seed)
    origin = pd.Timestamp(start, tz="UTC") if pd.Timestamp(start).tzinfo is None else pd.Timestamp(start)
    acquisition = days / 2 if acquisition_days is None else float(acquisition_days)
    first = rng.uniform(0, acquisition, n_customers)
    age = days - first
    lam = rng.gamma(r, 1 / alpha, n_customers)
    p = rng.beta(a, b, n_customers)
    k = rng.poisson(lam * age)
    n = rng.geometric(np.clip(p, 1e-12, 1))
    owner, at = repeat_times(first, age, k, n, rng)
    who = np.concatenate([np.arange(n_customers), owner])
    when = np.concatenate([first, at])
    us = (when * 86_400e6).astype("int64")
    ts = pd.to_datetime(origin.value // 1000 + us, unit="us", utc=True)
    ids = np.array([f"c{i:06d}" for i in range(n_customers)], dtype=object)
    events = pd.DataFrame({"user_id": ids[who], "event": event, "timestamp": ts})
    truth = pd.DataFrame({"user_id": ids, "rate": lam, "dropout": p, "alive": k < n})
    if spend is not None:
        shape, q, gamma = spend
        nu = rng.gamma(q, 1 / gamma, n_customers)
        events["value"] = rng.gamma(shape, 1 / nu[who])
        truth["spend_mean"] = shape / nu
    events = events.sort_values(["user_id", "timestamp"], kind="stable").reset_index(drop=True)
    return events, truth
