"""Per-customer purchase summary (frequency, recency, T, monetary) from canonical events, in one ibis query."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ibis
import numpy as np
import pandas as pd

from helpers.io import EventDataError, as_ibis, epoch_us, utc_naive
from helpers.io.times import observed_end, to_utc
from helpers.units import declare

US_PER_HOUR = 3_600_000_000
US_PER_DAY = 24 * US_PER_HOUR
# The length of each period unit in days (a month is the mean calendar month), for horizons and discounting.
PERIOD_DAYS = {"H": 1 / 24, "D": 1.0, "W": 7.0, "M": 365.25 / 12}


def period_index(us: int | ibis.Value, period: str, ts: ibis.Value | None = None) -> Any:
    """The integer period a moment falls in: hours, days or Monday-start weeks since 1970-01-01 (UTC), or
    months since January 1970. ``us`` is microseconds since the epoch (a Python int or an ibis expression).

    Examples
    --------
    >>> period_index(int(pd.Timestamp("1970-01-05", tz="UTC").value // 1000), "W")  # the first Monday
    1
    """
    if period == "M":
        if ts is None:
            t = pd.Timestamp(us * 1000, tz="UTC")
            return (t.year - 1970) * 12 + t.month - 1
        naive = utc_naive(ts)
        return (naive.year() - 1970) * 12 + naive.month() - 1
    if period == "H":
        return us // US_PER_HOUR
    if period == "D":
        return us // US_PER_DAY
    if period == "W":  # 1970-01-01 was a Thursday: shift by three days so that weeks start on Monday
        return (us // US_PER_DAY + 3) // 7
    raise EventDataError(f"period must be one of {', '.join(PERIOD_DAYS)} (hours, days, weeks, months), not "
                         f"{period!r}.")


def _moment(value: Any, name: str) -> pd.Timestamp:
    try:
        return to_utc(value)
    except (ValueError, TypeError) as exc:
        raise EventDataError(f"{name}={value!r} is not a time.") from exc


def purchase_summary(events: pd.DataFrame | ibis.Table, *, purchase_event: str | Sequence[str] = "purchase",
                     value: str | None = "value", period: str = "D", observed_until: Any = None,
                     calibration_until: Any = None) -> pd.DataFrame:
    """One row per customer (a person with at least one purchase): ``frequency``, ``recency``, ``T`` and
    ``monetary``, in ``period`` units, as the BG/NBD and Gamma-Gamma models read them.

    Purchases are grouped into periods (UTC hours, days, Monday-start weeks or calendar months): a period
    with one or more purchases is one transaction, whose value is the sum of its purchases' values.

    - ``frequency``: the number of repeat transactions, the distinct periods with a purchase minus one;
    - ``recency``: the last transaction's period minus the first's (0 without repeats);
    - ``T``: the period of ``observed_until`` (or ``calibration_until``) minus the first transaction's;
    - ``monetary``: the mean value of the repeat transactions (the first one left out; 0 without repeats);
    - ``value_total``: the value of all the customer's transactions, the first included (not a model input).

    These are the rules of ``lifetimes.utils.summary_data_from_transaction_data``. Purchases after
    ``observed_until`` (default: the last event of any kind) are left out, and counted in
    ``attrs["purchases_after_end"]``; missing values count 0, and are counted in ``attrs["missing_values"]``.

    With ``calibration_until`` the summary covers purchases up to the end of its period (inclusive, as in
    ``lifetimes``: a split inside a day keeps that whole day in the calibration), only customers whose first
    purchase falls by then, and ``T`` runs to it; the holdout columns describe what came after, up to
    ``observed_until``: ``purchases_holdout`` (distinct periods with a purchase), ``value_holdout`` (their
    total value) and ``duration_holdout`` (the holdout's length in periods).

    Parameters
    ----------
    events : canonical events (not modified).
    purchase_event : the event name(s) that are purchases.
    value : the column holding each purchase's value; ``None`` for no ``monetary`` column.
    period : ``"H"``, ``"D"``, ``"W"`` or ``"M"``.
    observed_until, calibration_until : times (anything :func:`pandas.Timestamp` reads; naive means UTC).

    Examples
    --------
    >>> ev = pd.DataFrame({"user_id": ["a", "a", "a", "b"], "event": "purchase", "value": [10.0, 5.0, 7.0, 3.0],
    ...                    "timestamp": pd.to_datetime(["2024-01-01 09:00", "2024-01-01 18:00", "2024-01-04 00:00",
    ...                                                 "2024-01-03 00:00"], utc=True)})
    >>> s = purchase_summary(ev, observed_until="2024-01-11")
    >>> s[["user_id", "frequency", "recency", "T", "monetary"]].values.tolist()
    [['a', 1, 3, 10, 7.0], ['b', 0, 0, 8, 0.0]]
    """
    t = as_ibis(events)
    names = [purchase_event] if isinstance(purchase_event, str) else list(purchase_event)
    if not names:
        raise EventDataError("purchase_event names no event.")
    period_index(0, period)  # checks the unit
    if value is not None and value not in t.columns:
        raise EventDataError(f"the events have no {value!r} column to read purchase values from (columns: "
                             f"{', '.join(t.columns)}); pass value=None for frequency and recency only.")
    end = observed_end(t, observed_until)
    cal = None if calibration_until is None else _moment(calibration_until, "calibration_until")
    if cal is not None and cal >= end:
        raise EventDataError(f"calibration_until ({cal}) must come before observed_until ({end}): the holdout "
                             "period would be empty.")
    end_us = int(end.value // 1000)
    split_us = end_us if cal is None else int(cal.value // 1000)

    p = t.filter(t.event.isin(names))
    us = epoch_us(p.timestamp)
    p = p.select(user_id=p.user_id, us=us, period=period_index(us, period, p.timestamp),
                 v=(p[value].cast("float64") if value is not None else ibis.literal(0.0)),
                 late=(us > end_us).cast("int64"))
    checks = p.aggregate(late=p.late.sum(), missing=p.v.isnull().cast("int64").sum(), n=p.count()).execute()
    n_purchases = int(checks["n"].iloc[0])
    if n_purchases == 0:
        raise EventDataError(f"no {' or '.join(map(repr, names))} event in the data: there are no customers to "
                             "summarise.")
    p = p.filter(p.late == 0).mutate(v=p.v.fill_null(0.0))

    def per_customer(rows: ibis.Table) -> ibis.Table:
        per = rows.group_by(["user_id", "period"]).aggregate(v=rows.v.sum(), first_us=rows.us.min())
        return per.group_by("user_id").aggregate(n=per.count(), first=per.period.min(), last=per.period.max(),
                                                 total=per.v.sum(), first_value=per.v.argmin(per.period),
                                                 first_us=per.first_us.min())

    # Split by whole periods, as lifetimes does: the period holding calibration_until is calibration, so a split
    # inside a day neither drops that day from T nor counts it in both parts.
    split_period = period_index(split_us, period)
    c = per_customer(p.filter(p.period <= split_period))
    if cal is not None:
        h = p.filter(p.period > split_period)
        h = h.group_by(["user_id", "period"]).aggregate(v=h.v.sum())
        h = h.group_by("user_id").aggregate(purchases_holdout=h.count(), value_holdout=h.v.sum())
        c = c.left_join(h, "user_id").drop("user_id_right")
    out = c.order_by("user_id").to_pandas()
    if out.empty:
        raise EventDataError(f"no customer made a purchase by {cal if cal is not None else end}.")
    end_period = period_index(split_us, period)
    repeats = (out["n"] - 1).astype("int64")
    summary = pd.DataFrame({
        "user_id": out["user_id"].astype(str),
        "frequency": repeats,
        "recency": (out["last"] - out["first"]).astype("int64"),
        "T": (end_period - out["first"]).astype("int64"),
    })
    if value is not None:
        with np.errstate(invalid="ignore", divide="ignore"):
            monetary = (out["total"] - out["first_value"]) / repeats
        summary["monetary"] = np.where(repeats > 0, monetary, 0.0)
        summary["value_total"] = out["total"].astype(float)  # every transaction's value, the first included
    summary["first_purchase"] = pd.to_datetime(out["first_us"].astype("int64"), unit="us", utc=True)
    kinds = {"user_id": "text", "frequency": "count", "recency": "number", "T": "number", "monetary": "money",
             "value_total": "money"}
    if cal is not None:
        summary["purchases_holdout"] = out["purchases_holdout"].fillna(0).astype("int64")
        if value is not None:
            summary["value_holdout"] = out["value_holdout"].fillna(0.0).astype(float)
        summary["duration_holdout"] = int(period_index(end_us, period) - end_period)
        kinds |= {"purchases_holdout": "count", "value_holdout": "money", "duration_holdout": "number"}
    summary.attrs.update(period=period, observed_until=end, calibration_until=cal,
                         purchases_after_end=int(checks["late"].iloc[0] or 0),
                         missing_values=int(checks["missing"].iloc[0] or 0) if value is not None else 0)
    return declare(summary, {k: v for k, v in kinds.items() if k in summary.columns}, hidden=["user_id"])
