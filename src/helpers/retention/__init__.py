"""Retention: cohort tables that know which cells are incomplete, and survival analysis that handles censoring.

Cohort tables (:func:`cohort_retention`)
----------------------------------------
- A user's cohort is the calendar period (``"D"``, ``"W"`` starting on
  ``week_start``, ``"M"``; UTC) of their first ``cohort_event`` (any event when
  None). With ``cohort_type="recurring"`` a user joins every period in which they
  did the cohort event.
- Offset k counts calendar periods after the cohort period. ``mode="on"``: the
  user was active (did any ``return_event``; any event when None) in period
  cohort + k. ``mode="on_or_after"``: active in that period or any later one.
- ``counts`` has one row per cohort and one column per offset; column 0 is the
  cohort size. ``rates`` = counts / cohort size. A cell whose period had not
  ended by ``observed_until`` (default: the last timestamp) is incomplete: NaN in
  ``rates`` and True in ``incomplete``, never a zero. ``average`` weights each
  offset's rate by cohort size over the cohorts complete at that offset.

Lifetimes and survival
----------------------
- :func:`user_lifetimes`: ``start`` is a user's first event (or first
  ``start_event``). A user has churned when ``churn_event`` happened at or after
  the start, or when their last activity is more than ``inactivity`` before
  ``observed_until``. A churned user's duration runs from start to the first
  churn event (or, churned by inactivity, to their last activity); everyone else
  is censored at ``observed_until``.
- :func:`survival_curves`: Kaplan-Meier per group (lifelines), medians and
  survival at 7/30/90 days with intervals, and a multivariate log-rank test.
- :func:`hazard_ratios`: a Cox proportional-hazards model (lifelines) with
  categorical covariates one-hot against a named baseline.
- :func:`retention_drivers`: behaviours in a user's first days that predict
  staying, as a landmark analysis: only users still there at day ``first_days``
  count, and their time is measured from that day, so that doing something in
  the first week is not credited with having survived the first week.

Churn risk and the health score, which look ahead rather than back, are in
:mod:`helpers.risk` (still importable from here).

Where things live::

    cohorts.py    cohort_retention, RetentionTable
    lifetimes.py  user_lifetimes
    survival.py   survival_curves, hazard_ratios, retention_drivers and their results
"""

from __future__ import annotations

from typing import Any

from helpers.retention.cohorts import DAY, RetentionTable, cohort_retention
from helpers.retention.lifetimes import user_lifetimes
from helpers.retention.survival import (
    HazardResult,
    SurvivalResult,
    drivers_headline,
    hazard_ratios,
    retention_drivers,
    survival_curves,
)

__all__ = [
    "cohort_retention", "DAY", "drivers_headline", "hazard_ratios", "HazardResult", "retention_drivers", "RetentionTable",
    "survival_curves", "SurvivalResult", "user_lifetimes",
]

# Moved to helpers.risk; still importable from here. Resolved on first use, because helpers.risk imports
# helpers.retention.lifetimes (importing it here eagerly would be circular).
_MOVED_TO_RISK = ("HEALTH_WEIGHTS", "RISK_FEATURES", "RiskResult", "churn_risk", "health_score", "risk_by_segment",
                  "risk_factor_counts")


def __getattr__(name: str) -> Any:
    if name in _MOVED_TO_RISK:
        from helpers import risk

        return getattr(risk, name)
    raise AttributeError(f"module 'helpers.retention' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_MOVED_TO_RISK])
