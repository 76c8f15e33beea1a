"""Statistics every analysis shares: intervals for proportions and corrections for testing many things at once.

- :func:`wilson_interval`: the Wilson score interval for k successes out of n,
  which behaves at 0 and n (unlike the normal approximation);
- :func:`holm_adjust`: Holm's step-down adjustment, controlling the
  family-wise error when several segments, KPIs or candidates are tested.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Z95", "holm_adjust", "wilson_interval"]

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile: two-sided 95%


def wilson_interval(k: np.ndarray, n: np.ndarray, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval (95% by default) for k successes out of n; NaN where n is 0.

    Examples
    --------
    >>> lo, hi = wilson_interval(np.array([5.0]), np.array([10.0]))
    >>> round(float(lo[0]), 4), round(float(hi[0]), 4)
    (0.2366, 0.7634)
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
        half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    return centre - half, centre + half


def holm_adjust(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment of p-values (family-wise error); NaN stays NaN.

    Examples
    --------
    >>> holm_adjust(np.array([0.01, 0.04, np.nan, 0.03])).round(2).tolist()
    [0.03, 0.06, nan, 0.06]
    """
    p = np.asarray(p, dtype=float)
    out = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    vals = p[ok]
    order = np.argsort(vals)
    m = len(vals)
    adjusted = np.maximum.accumulate((m - np.arange(m)) * vals[order]).clip(max=1.0)
    res = np.empty(m)
    res[order] = adjusted
    out[ok] = res
    return out
