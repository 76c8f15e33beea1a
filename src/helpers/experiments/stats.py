"""The tests an experiment readout runs, on per-arm summaries (NumPy arrays, so many metrics, variants, segments
and looks are tested in one call). The rules are stated in :mod:`helpers.experiments`.

- :func:`srm_test`: chi-square goodness of fit of persons per variant against the planned weights;
- :func:`welch_test`: difference of means with Welch's t (unequal variances, Welch-Satterthwaite df);
- :func:`two_proportion_test`: difference of conversion rates, pooled z test and an unpooled interval;
- :func:`relative_lift`: the ratio of means minus one with a delta-method interval;
- :func:`cuped_theta`: the CUPED coefficient pooled over the arms;
- :func:`confidence_sequence`: an always-valid interval (normal mixture) that may be looked at any number
  of times.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats as _st

__all__ = ["confidence_sequence", "cuped_theta", "relative_lift", "sequential_tuning", "srm_test",
           "two_proportion_test", "welch_test"]


def srm_test(persons: Sequence[float], weights: Sequence[float] | None = None) -> tuple[float, float, np.ndarray]:
    """Sample ratio mismatch: ``(chi-square, p value, expected persons)`` for the persons per variant against
    ``weights`` (equal when ``None``). Variants with weight 0 are left out of the test (their expected count
    is 0 and they carry no degree of freedom); the weights are rescaled to the others.

    Examples
    --------
    >>> round(srm_test([1000, 1200])[1], 10)
    2.00787e-05
    >>> round(srm_test([135, 115])[1], 4), round(srm_test([310, 98], [0.75, 0.25])[1], 4)
    (0.2059, 0.6474)
    """
    n = np.asarray(persons, dtype=float)
    w = np.ones_like(n) if weights is None else np.asarray(weights, dtype=float)
    if w.shape != n.shape or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weights must be one non-negative number per variant, not all 0: got {list(w)}")
    used = w > 0
    expected = np.zeros_like(n)
    expected[used] = n[used].sum() * w[used] / w[used].sum()
    if used.sum() < 2 or n[used].sum() == 0:
        return 0.0, 1.0, expected
    chi2 = float((((n - expected) ** 2)[used] / expected[used]).sum())
    return chi2, float(_st.chi2.sf(chi2, int(used.sum()) - 1)), expected


def welch_test(mean_a, sd_a, n_a, mean_b, sd_b, n_b, *, alpha: float = 0.05) -> dict[str, np.ndarray]:
    """Welch's t for the difference ``mean_b - mean_a``: ``difference, se, df, ci_low, ci_high, p``.

    Examples
    --------
    >>> r = welch_test(0.41, 3.9, 3407, 0.70, 6.2, 3461)
    >>> [round(float(r[k]), 4) for k in ("difference", "ci_low", "ci_high", "p")]
    [0.29, 0.0454, 0.5346, 0.0202]
    """
    mean_a, sd_a, n_a, mean_b, sd_b, n_b = (np.asarray(x, dtype=float) for x in (mean_a, sd_a, n_a, mean_b, sd_b,
                                                                              n_b))
    with np.errstate(invalid="ignore", divide="ignore"):
        va, vb = sd_a**2 / n_a, sd_b**2 / n_b
        se = np.sqrt(va + vb)
        df = (va + vb) ** 2 / (va**2 / (n_a - 1) + vb**2 / (n_b - 1))
        diff = mean_b - mean_a
        t = diff / se
        p = 2 * _st.t.sf(np.abs(t), df)
        q = _st.t.ppf(1 - alpha / 2, df)
    return {"difference": diff, "se": se, "df": df, "ci_low": diff - q * se, "ci_high": diff + q * se, "p": p}


def two_proportion_test(k_a, n_a, k_b, n_b, *, alpha: float = 0.05) -> dict[str, np.ndarray]:
    """Difference of conversion rates ``k_b/n_b - k_a/n_a``: the p value of the pooled two-proportion z test and
    the unpooled (Wald) interval of the difference: ``difference, se, ci_low, ci_high, p``.

    Examples
    --------
    >>> r = two_proportion_test(100, 1000, 130, 1000)
    >>> round(float(r["difference"]), 3), round(float(r["p"]), 4), round(float(r["ci_low"]), 4)
    (0.03, 0.0355, 0.0021)
    """
    k_a, n_a, k_b, n_b = (np.asarray(x, dtype=float) for x in (k_a, n_a, k_b, n_b))
    with np.errstate(invalid="ignore", divide="ignore"):
        pa, pb = k_a / n_a, k_b / n_b
        pooled = (k_a + k_b) / (n_a + n_b)
        se0 = np.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
        z = (pb - pa) / se0
        p = np.where(se0 > 0, 2 * _st.norm.sf(np.abs(z)), np.where(pb == pa, 1.0, 0.0))
        se = np.sqrt(pa * (1 - pa) / n_a + pb * (1 - pb) / n_b)
    q = _st.norm.ppf(1 - alpha / 2)
    return {"difference": pb - pa, "se": se, "ci_low": pb - pa - q * se, "ci_high": pb - pa + q * se, "p": p}


def relative_lift(mean_a, se_a, mean_b, se_b, *, alpha: float = 0.05) -> dict[str, np.ndarray]:
    """``mean_b / mean_a - 1`` with a delta-method interval, the arms independent:
    Var(b/a) ≈ se_b²/a² + b²·se_a²/a⁴ (``se_*`` are the standard errors of the means).

    Examples
    --------
    >>> r = relative_lift(0.10, 0.01, 0.12, 0.01)
    >>> round(float(r["lift"]), 3), round(float(r["se"]), 4)
    (0.2, 0.1562)
    """
    mean_a, se_a, mean_b, se_b = (np.asarray(x, dtype=float) for x in (mean_a, se_a, mean_b, se_b))
    with np.errstate(invalid="ignore", divide="ignore"):
        lift = mean_b / mean_a - 1
        se = np.sqrt(se_b**2 / mean_a**2 + mean_b**2 * se_a**2 / mean_a**4)
    q = _st.norm.ppf(1 - alpha / 2)
    return {"lift": lift, "se": se, "ci_low": lift - q * se, "ci_high": lift + q * se}


def cuped_theta(y: np.ndarray, x: np.ndarray) -> float:
    """θ = Cov(Y, X) / Var(X) over every person of every arm (0 when X does not vary).

    Examples
    --------
    >>> cuped_theta(np.array([1.0, 2.0, 3.0]), np.array([0.0, 1.0, 2.0]))
    1.0
    """
    x = np.asarray(x, dtype=float)
    if len(x) < 2:
        return 0.0
    var = float(np.var(x, ddof=1))
    return float(np.cov(y, x, ddof=1)[0, 1] / var) if var > 0 else 0.0


def sequential_tuning(planned_persons: float, alpha: float = 0.05) -> float:
    """The mixture parameter ρ that makes :func:`confidence_sequence` tightest at ``planned_persons`` persons
    (Howard et al. 2021, eq. 3.9's optimum, as GrowthBook and Eppo choose it):
    ρ = sqrt((−2 log α + log(1 − 2 log α)) / N).

    Examples
    --------
    >>> round(sequential_tuning(10_000), 4)
    0.0282
    """
    la = -2 * np.log(alpha)
    return float(np.sqrt((la + np.log(1 + la)) / planned_persons))


def confidence_sequence(estimate, se, persons, *, alpha: float = 0.05, tuning: float) -> tuple[np.ndarray,
                                                                                             np.ndarray]:
    """An always-valid (1 − α) confidence sequence for a difference, from its estimate, its standard error and
    the persons it rests on: the asymptotic normal-mixture sequence of Waudby-Smith et al. (2023), built on
    Howard et al.'s (2021) two-sided normal mixture boundary. With N persons, σ̂² = N·se² and mixture
    parameter ρ (``tuning``, see :func:`sequential_tuning`) the half width is

        σ̂ · sqrt( 2(Nρ² + 1) / (N²ρ²) · log( sqrt(Nρ² + 1) / α ) ),

    so that the chance the sequence *ever* excludes the true difference, over every look, is at most α (a
    fixed-horizon interval peeked at daily does not have that property).

    Examples
    --------
    >>> lo, hi = confidence_sequence(0.03, 0.01, 20_000, tuning=sequential_tuning(20_000))
    >>> round(float(lo), 4), round(float(hi), 4)
    (-0.0004, 0.0604)
    """
    estimate, se, n = (np.asarray(v, dtype=float) for v in (estimate, se, persons))
    with np.errstate(invalid="ignore", divide="ignore"):
        sigma = np.sqrt(n) * se
        r2 = tuning**2
        half = sigma * np.sqrt(2 * (n * r2 + 1) / (n**2 * r2) * np.log(np.sqrt(n * r2 + 1) / alpha))
    return estimate - half, estimate + half
