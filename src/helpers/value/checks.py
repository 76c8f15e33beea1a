"""How well a fitted BG/NBD model predicts purchases it did not see: the calibration / holdout check."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from helpers.io import EventDataError
from helpers.units import declare
from helpers.value.bgnbd import BGNBDModel

UNITS = {"H": "hours", "D": "days", "W": "weeks", "M": "months"}


@dataclass
class HoldoutCheck:
    """``table``: per calibration-period frequency (the last bucket "n+"), the customers, their mean actual and
    predicted holdout purchases; ``mae``: the mean absolute error of the per-customer predictions;
    ``total_actual`` and ``total_predicted``: holdout purchases over all customers."""

    table: pd.DataFrame
    mae: float
    total_actual: float
    total_predicted: float
    duration: float
    unit: str = "periods"

    def headline(self) -> str:
        """One sentence on the holdout fit."""
        gap = self.total_predicted / self.total_actual - 1 if self.total_actual else float("nan")
        return (f"Over a holdout of {self.duration:g} {self.unit} the model predicted {self.total_predicted:,.0f} "
                f"repeat purchases against {self.total_actual:,.0f} made ({gap:+.1%}); per customer it is off "
                f"by {self.mae:.2f} purchases on average.")


def holdout_check(bgnbd: BGNBDModel, summary: pd.DataFrame, *, max_frequency: int = 7) -> HoldoutCheck:
    """Compare the model's expected holdout purchases with the actual ones, by calibration frequency.

    ``summary`` is :func:`~helpers.value.purchase_summary` with ``calibration_until`` (it has
    ``purchases_holdout`` and ``duration_holdout``), and ``bgnbd`` was fitted on it.

    Examples
    --------
    >>> from helpers.value.bgnbd import simulate_bgnbd
    >>> s = simulate_bgnbd(200, r=0.5, alpha=10.0, a=0.8, b=2.5, T=60.0, seed=3)
    >>> s["purchases_holdout"], s["duration_holdout"] = 0, 30.0
    >>> m = BGNBDModel({"r": 0.5, "alpha": 10.0, "a": 0.8, "b": 2.5}, pd.DataFrame(), 0.0, 0)
    >>> check = holdout_check(m, s, max_frequency=2)
    >>> check.table["frequency"].tolist()
    ['0', '1', '2+']
    """
    missing = [c for c in ("purchases_holdout", "duration_holdout") if c not in summary.columns]
    if missing:
        raise EventDataError(f"the summary has no {', '.join(missing)}: make it with purchase_summary(..., "
                             "calibration_until=...).")
    durations = summary["duration_holdout"].unique()
    duration = float(durations[0]) if len(durations) == 1 else float("nan")
    if len(durations) != 1:
        raise EventDataError("the holdout must have one length for every customer.")
    predicted = bgnbd.expected_purchases(duration, summary).to_numpy()
    actual = summary["purchases_holdout"].to_numpy(float)
    bucket = np.minimum(summary["frequency"].to_numpy(int), max_frequency)
    frame = pd.DataFrame({"bucket": bucket, "actual": actual, "predicted": predicted})
    table = frame.groupby("bucket").agg(customers=("actual", "size"), actual=("actual", "mean"),
                                        predicted=("predicted", "mean")).reset_index()
    table.insert(0, "frequency", [f"{b}+" if b == max_frequency else str(b) for b in table["bucket"]])
    table = declare(table.drop(columns="bucket"), {"frequency": "text", "customers": "count", "actual": "number",
                                                   "predicted": "number"},
                    headers={"frequency": "repeat purchases (calibration)", "actual": "actual (holdout, mean)",
                             "predicted": "predicted (holdout, mean)"})
    return HoldoutCheck(table=table, mae=float(np.mean(np.abs(predicted - actual))),
                        total_actual=float(actual.sum()), total_predicted=float(predicted.sum()), duration=duration,
                        unit=UNITS.get(bgnbd.period, "periods"))
