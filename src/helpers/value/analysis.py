"""The customer value page in one call: which events are purchases, the fits on the calibration split and on
all the data, the holdout check, each customer's discounted value, and the tables and sentences the notebook
shows (p_alive by frequency and time since the last purchase, value by decile and by segment).

Nothing here shows a customer id: every table is an aggregate.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from helpers.io import EventDataError, as_ibis
from helpers.units import declare
from helpers.value.bgnbd import BGNBDModel, fit_bgnbd_penalized_if_needed
from helpers.value.checks import UNITS, HoldoutCheck, holdout_check
from helpers.value.fitting import ConvergenceError
from helpers.value.spend import GammaGammaModel, customer_value, fit_gamma_gamma
from helpers.value.summary import PERIOD_DAYS, purchase_summary

PERIOD_WORDS = UNITS
FREQUENCY_BINS = [(0, 0), (1, 1), (2, 2), (3, 3), (4, 5), (6, 9), (10, None)]
LAPSED_BELOW = 0.5  # p_alive under this: more likely gone than not


@dataclass
class ValueInputs:
    """What the data offers for the page: ``purchase_events`` found, the ``value`` column (``None``: no spend),
    ``cannot`` (why the page cannot be made, ``""`` when it can) and ``notes`` for the reader."""

    purchase_events: list[str]
    value: str | None
    cannot: str = ""
    notes: list[str] = field(default_factory=list)


def value_inputs(events: Any, purchase_events: Sequence[str] | None = None, *, value: str | None = "value",
                 stage_map: Any = None) -> ValueInputs:
    """Find the purchase events and the value column; say in a sentence what is missing.

    ``purchase_events=None`` takes the stage map's ``purchase`` and ``repeat_purchase`` events (its
    ``kpi_events``, else those names) that the data has.

    Examples
    --------
    >>> ev = pd.DataFrame({"user_id": ["a"], "event": ["buy"], "timestamp": [pd.Timestamp("2024-01-01", tz="UTC")]})
    >>> value_inputs(ev, ["buy"]).value is None, value_inputs(ev).cannot[:30]
    (True, 'There is no purchase or repeat')
    """
    t = as_ibis(events)
    present = set(t.select("event").distinct().execute()["event"].astype(str))
    if purchase_events is None:
        roles = ("purchase", "repeat_purchase")
        wanted = [stage_map.event(r) if stage_map is not None else r for r in roles]
    else:
        wanted = [purchase_events] if isinstance(purchase_events, str) else list(purchase_events)
    found = [e for e in dict.fromkeys(wanted) if e in present]
    notes = []
    if not found:
        return ValueInputs([], None, f"There is no {' or '.join(wanted)} event in the data, so there are no "
                                     "purchases to model customer value on.")
    column = value if value is not None and value in t.columns else None
    if value is not None and column is None:
        notes.append(f"The events have no {value!r} column, so the page predicts purchases but not spend or value.")
    return ValueInputs(found, column, "", notes)


@dataclass
class ValueAnalysis:
    """The page's results. ``values`` has one row per customer (``customer_value`` of all the data, or only
    ``p_alive`` and ``expected_purchases`` without spend); ``check`` is the holdout check of the model fitted
    on the calibration split (``None`` when the data is too short); ``notes`` say what was left out and why."""

    summary: pd.DataFrame
    bgnbd: BGNBDModel
    values: pd.DataFrame
    calibration_model: BGNBDModel | None
    check: HoldoutCheck | None
    gamma_gamma: GammaGammaModel | None
    period: str
    horizon_days: float
    discount_rate: float
    calibration_until: pd.Timestamp | None
    notes: list[str] = field(default_factory=list)

    @property
    def has_value(self) -> bool:
        return "customer_value" in self.values.columns


def _fit_spend(summary: pd.DataFrame, notes: list[str]) -> GammaGammaModel | None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            gg = fit_gamma_gamma(summary)
        except (ConvergenceError, EventDataError) as exc:
            notes.append(f"Spend per purchase is not modelled: {exc}")
            return None
    notes.extend(f"Spend model: {w.message}" for w in caught if issubclass(w.category, UserWarning))
    return gg


def analyse_value(events: Any, purchase_events: Sequence[str] | str = "purchase", *, value: str | None = "value",
                  period: str = "D", holdout: str | None = None, horizon: str = "365D", discount_rate: float = 0.01,
                  observed_until: Any = None) -> ValueAnalysis:
    """Fit BG/NBD (and Gamma-Gamma with a value column) and value every customer.

    The holdout check fits the purchase model on the data up to ``observed_until - holdout`` (default: the
    last third of the span from the first purchase to ``observed_until``) and compares its predictions with
    what customers then did; the values come from models fitted on all the data. A fit that does not
    converge even with a small penalty (:func:`fit_bgnbd_penalized_if_needed`, noted) raises
    :class:`ConvergenceError` (the notebook says so); a spend model that cannot be fitted
    leaves value out, with a note.

    Examples
    --------
    >>> from helpers.value.bgnbd import simulate_bgnbd
    >>> s = simulate_bgnbd(300, r=0.5, alpha=5.0, a=0.8, b=2.5, T=90.0, seed=1)
    >>> rows = s.loc[s.index.repeat(s["frequency"] + 1), ["user_id"]]
    >>> rows["timestamp"] = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(
    ...     rows.groupby("user_id").cumcount() * 3, unit="D")
    >>> a = analyse_value(rows.assign(event="purchase"), value=None, observed_until="2024-04-01")
    >>> a.has_value, a.check is not None, len(a.values) == a.summary.shape[0]
    (False, True, True)
    """
    names = [purchase_events] if isinstance(purchase_events, str) else list(purchase_events)
    notes: list[str] = []
    summary = purchase_summary(events, purchase_event=names, value=value, period=period, observed_until=observed_until)
    end = summary.attrs["observed_until"]
    if summary.attrs.get("missing_values"):
        notes.append(f"{summary.attrs['missing_values']:,} purchases have no value; they count as 0.")
    if summary.attrs.get("purchases_after_end"):
        notes.append(f"{summary.attrs['purchases_after_end']:,} purchases after {end:%Y-%m-%d} are left out.")
    start = summary["first_purchase"].min()
    if holdout is None:
        length = pd.Timedelta(days=max(np.floor((end - start) / pd.Timedelta("1D") / 3), 0))
    else:
        try:
            length = pd.Timedelta(holdout)
        except (TypeError, ValueError) as exc:
            raise EventDataError(f"holdout={holdout!r} is not a length of time (e.g. '60D').") from exc
    cal_until = end - length
    period_td = pd.Timedelta(days=PERIOD_DAYS[period])
    check = calibration_model = None
    if length < 2 * period_td or cal_until - start < 2 * length / 3:
        cal_until = None
        notes.append(f"The data spans {(end - start).days} days from the first purchase, too short to hold out "
                     f"{length.days} days and check the predictions; the model is not checked.")
    else:
        calibration = purchase_summary(events, purchase_event=names, value=value, period=period,
                                       observed_until=end, calibration_until=cal_until)
        calibration_model, note = fit_bgnbd_penalized_if_needed(calibration)
        notes.extend([f"Holdout check: {note}"] if note else [])
        check = holdout_check(calibration_model, calibration)
    bgnbd, note = fit_bgnbd_penalized_if_needed(summary)
    notes.extend([note] if note else [])
    gg = _fit_spend(summary, notes) if value is not None else None
    if gg is not None:
        values = customer_value(bgnbd, gg, summary, horizon=horizon, discount_rate=discount_rate)
    else:
        days = pd.Timedelta(horizon) / pd.Timedelta("1D")
        values = summary.assign(p_alive=bgnbd.p_alive(summary).to_numpy(),
                                expected_purchases=bgnbd.expected_purchases(days / PERIOD_DAYS[period], summary).to_numpy())
        values = declare(values.sort_values("expected_purchases", ascending=False, kind="stable"),
                         {"p_alive": "rate", "expected_purchases": "number"})
    return ValueAnalysis(summary, bgnbd, values, calibration_model, check, gg, period,
                         pd.Timedelta(horizon) / pd.Timedelta("1D"), discount_rate, cal_until, notes)


def value_page(events: Any, inputs: ValueInputs, **options: Any) -> tuple[ValueAnalysis | None, str]:
    """:func:`analyse_value` for the notebook: ``(result, "")``, or ``(None, why)`` when the data has no
    purchases or the purchase model does not converge on them, so that a report run says so in a sentence
    instead of failing. Bad input (a malformed column, an impossible parameter) still raises.
    """
    if inputs.cannot:
        return None, inputs.cannot
    try:
        return analyse_value(events, inputs.purchase_events, value=inputs.value, **options), ""
    except ConvergenceError as exc:
        return None, f"The purchase model could not be fitted on these purchases: {exc}"


def _bucket_labels(bins: Sequence[tuple[int, int | None]]) -> list[str]:
    return [f"{lo}+" if hi is None else str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in bins]


def p_alive_grid(a: ValueAnalysis, *, bins: int = 6) -> pd.DataFrame:
    """Customers and their mean ``p_alive`` by repeat purchases (rows) and time since the last purchase
    (columns, ``bins`` equal-width bands in days): the observed customers, not a model grid.

    Examples
    --------
    >>> v = pd.DataFrame({"frequency": [0, 2, 2], "recency": [0, 5, 50], "T": [60, 60, 60], "p_alive": [1.0, 0.2, 0.9]})
    >>> g = p_alive_grid(ValueAnalysis(v, None, v, None, None, None, "D", 365.0, 0.0, None), bins=2)
    >>> g[["repeat_purchases", "days_since_last", "customers", "p_alive"]].values.tolist()
    [['0', '30-60', 1, 1.0], ['2', '0-30', 1, 0.9], ['2', '30-60', 1, 0.2]]
    """
    v = a.values
    days = (v["T"] - v["recency"]).to_numpy(float) * PERIOD_DAYS[a.period]
    top = max(float(np.ceil(days.max())) if len(days) else 1.0, 1.0)
    width = max(int(np.ceil(top / bins)), 1)
    band = np.minimum(days // width, bins - 1).astype(int)
    freq = v["frequency"].to_numpy(int)
    names = _bucket_labels(FREQUENCY_BINS)
    row = np.select([(freq >= lo) & (freq <= (hi if hi is not None else np.inf)) for lo, hi in FREQUENCY_BINS],
                    range(len(FREQUENCY_BINS)))
    frame = pd.DataFrame({"row": row, "band": band, "p": v["p_alive"].to_numpy(float)})
    g = frame.groupby(["row", "band"]).agg(customers=("p", "size"), p_alive=("p", "mean")).reset_index()
    g.insert(0, "repeat_purchases", [names[i] for i in g["row"]])
    g.insert(1, "days_since_last", [f"{b * width}-{(b + 1) * width}" for b in g["band"]])
    return declare(g.drop(columns=["row", "band"]), {"repeat_purchases": "text", "days_since_last": "text",
                                                     "customers": "count", "p_alive": "rate"})


def value_deciles(a: ValueAnalysis) -> pd.DataFrame:
    """Customers ranked by predicted value (or expected purchases without spend) in ten equal groups, decile 1
    the most valuable: customers, the decile's total, its share and the cumulative share.

    Examples
    --------
    >>> v = pd.DataFrame({"customer_value": np.arange(1.0, 21.0), "p_alive": 1.0})
    >>> d = value_deciles(ValueAnalysis(v, None, v, None, None, None, "D", 365.0, 0.0, None))
    >>> d["customers"].tolist()[:2], round(float(d["share"].iloc[0]), 4)
    ([2, 2], 0.1857)
    """
    column = "customer_value" if "customer_value" in a.values.columns else "expected_purchases"
    x = np.sort(a.values[column].to_numpy(float))[::-1]
    decile = np.minimum(np.arange(len(x)) * 10 // max(len(x), 1), 9) + 1
    d = pd.DataFrame({"decile": decile, "x": x}).groupby("decile").agg(customers=("x", "size"), total=("x", "sum"))
    d = d.reset_index()
    whole = float(x.sum())
    d["share"] = d["total"] / whole if whole else np.nan
    d["cumulative_share"] = d["share"].cumsum()
    d.attrs["measure"] = column
    return declare(d, {"decile": "count", "customers": "count", "total": "money" if column == "customer_value" else "number",
                       "share": "rate", "cumulative_share": "rate"})


def value_by_segment(a: ValueAnalysis, segments: pd.Series | pd.DataFrame | None, *,
                     by: str | Sequence[str] = "persona") -> pd.DataFrame:
    """Per segment (e.g. persona): customers, mean and total predicted value (or expected purchases), the
    segment's share of all value, mean ``p_alive`` and the share likely lapsed (p_alive < 0.5). ``segments``
    is a Series indexed by ``user_id`` or a table with ``user_id`` and ``by`` (a list: the first of them the
    table has); customers without a segment are "(none)". The first column is the segment's. Returns an empty
    table without segments.

    Examples
    --------
    >>> v = pd.DataFrame({"user_id": ["a", "b", "c"], "customer_value": [10.0, 30.0, 60.0], "p_alive": [0.9, 0.2, 0.8]})
    >>> t = value_by_segment(ValueAnalysis(v, None, v, None, None, None, "D", 365.0, 0.0, None), pd.Series({"a": "x", "b": "x"}))
    >>> t[["persona", "customers", "total", "share", "lapsed_share"]].values.tolist()
    [['(none)', 1, 60.0, 0.6, 0.0], ['x', 2, 40.0, 0.4, 0.5]]
    """
    if segments is None:
        return pd.DataFrame()
    if isinstance(segments, pd.DataFrame):
        wanted = [by] if isinstance(by, str) else list(by)
        by = next((c for c in wanted if c in segments.columns and c != "user_id"), None)
        if by is None or "user_id" not in segments.columns:
            return pd.DataFrame()
        segments = segments.drop_duplicates("user_id").set_index("user_id")[by]
    elif not isinstance(by, str):
        by = segments.name or "segment"
    column = "customer_value" if a.has_value else "expected_purchases"
    v = a.values
    lookup = pd.Series(segments.to_numpy(), index=segments.index.astype(str))
    lookup = lookup[~lookup.index.duplicated()]
    seg = lookup.reindex(v["user_id"].astype(str).to_numpy()).astype("string").fillna("(none)")
    frame = pd.DataFrame({by: seg.to_numpy(), "x": v[column].to_numpy(float), "p": v["p_alive"].to_numpy(float)})
    frame["lapsed"] = (frame["p"] < LAPSED_BELOW).astype(float)
    t = frame.groupby(by).agg(customers=("x", "size"), mean=("x", "mean"), total=("x", "sum"), p_alive=("p", "mean"),
                              lapsed_share=("lapsed", "mean")).reset_index()
    whole = float(t["total"].sum())
    t.insert(4, "share", t["total"] / whole if whole else np.nan)
    t = t.sort_values("total", ascending=False, kind="stable").reset_index(drop=True)
    unit = "money" if a.has_value else "number"
    noun = "value" if a.has_value else "purchases"
    return declare(t, {by: "text", "customers": "count", "mean": unit, "total": unit, "share": "rate",
                       "p_alive": "rate", "lapsed_share": "rate"},
                   headers={"mean": f"predicted {noun} per customer", "total": f"predicted {noun}",
                            "share": f"share of predicted {noun}", "p_alive": "mean P(alive)",
                            "lapsed_share": "likely lapsed (P(alive) < 50%)"})


def likely_lapsed_high_value(a: ValueAnalysis, *, p_alive_below: float = LAPSED_BELOW,
                             top_share: float = 0.2) -> tuple[pd.Series, str]:
    """Customers among the top ``top_share`` by what they have spent (by purchases without a value column)
    whose probability of still being a customer is below ``p_alive_below``: the win-back audience.

    Examples
    --------
    >>> v = pd.DataFrame({"user_id": list("abcde"), "value_total": [500.0, 400, 10, 5, 1], "p_alive": [0.1, 0.9, 0.1, 1, 1],
    ...                   "frequency": [4, 3, 0, 0, 0]})
    >>> ids, why = likely_lapsed_high_value(ValueAnalysis(v, None, v, None, None, None, "D", 365.0, 0.0, None), top_share=0.4)
    >>> ids.tolist()
    ['a']
    """
    if not 0 < p_alive_below < 1 or not 0 < top_share <= 1:
        raise ValueError("p_alive_below and top_share are shares between 0 and 1.")
    v = a.values
    spent = "value_total" if "value_total" in v.columns else "frequency"
    rank = v[spent].rank(ascending=False, method="first")
    keep = (rank <= np.ceil(top_share * len(v))) & (v["p_alive"] < p_alive_below)
    what = "spend" if spent == "value_total" else "repeat purchases"
    reason = (f"top {top_share:.0%} of customers by {what} to date, probability of still being a customer "
              f"< {p_alive_below:.0%} (BG/NBD)")
    return v.loc[keep, "user_id"].astype(str).reset_index(drop=True), reason


def audience_headline(ids: pd.Series, a: ValueAnalysis, *, top_share: float = 0.2) -> str:
    """How many top spenders are likely lapsed, and what they spent (the win-back audience in a sentence)."""
    v = a.values
    spent = "value_total" if "value_total" in v.columns else None
    text = (f"{len(ids):,} of the top {top_share:.0%} of customers by spend to date are more likely gone than not; "
            "a win-back campaign should reach them first")
    if spent is not None and len(ids):
        share = v.loc[v["user_id"].isin(set(ids)), spent].sum() / v[spent].sum()
        text += f" (together they made {share:.1%} of all spend so far)"
    return text + "."


def model_headline(a: ValueAnalysis) -> str:
    """What the purchase model says about the customers, in two sentences."""
    p = a.bgnbd.params_
    unit = PERIOD_WORDS[a.period]
    rate = p["r"] / p["alpha"]
    dropout = p["a"] / (p["a"] + p["b"])
    text = (f"{a.bgnbd.n_customers:,} customers: while active, a typical customer makes a repeat purchase about "
            f"every {1 / rate:,.0f} {unit} (mean rate {rate:.3g} per {unit[:-1]}), and after each purchase "
            f"{dropout:.0%} of customers on average stop buying for good.")
    if a.check is not None:
        text += " " + a.check.headline()
    return text


def alive_headline(a: ValueAnalysis) -> str:
    """How many customers are probably still customers."""
    p = a.values["p_alive"].to_numpy(float)
    lapsed = float((p < LAPSED_BELOW).mean())
    text = (f"On average a customer is still a customer with probability {p.mean():.0%}; {lapsed:.0%} of customers "
            f"are more likely gone than not (P(alive) < 50%).")
    if "value_total" in a.values.columns:
        spent = a.values["value_total"].to_numpy(float)
        if spent.sum() > 0:
            text += f" They made {spent[p < LAPSED_BELOW].sum() / spent.sum():.0%} of the spend to date."
    return text


def value_headline(a: ValueAnalysis, deciles: pd.DataFrame) -> str:
    """The total predicted over the horizon and the top decile's share."""
    top = float(deciles["share"].iloc[0]) if len(deciles) else float("nan")
    months = a.horizon_days / 30
    if a.has_value:
        total = float(a.values["customer_value"].sum())
        return (f"Over the next {months:.0f} months the customers are worth {total:,.0f} in discounted purchases "
                f"({a.discount_rate:.1%} per month); the most valuable tenth of them brings {top:.0%} of it.")
    total = float(a.values["expected_purchases"].sum())
    return (f"Over the next {months:.0f} months the customers are expected to make {total:,.0f} repeat purchases; "
            f"the most active tenth of them makes {top:.0%} of them.")


def segment_headline(table: pd.DataFrame) -> str:
    """The segment with the most predicted value and the one most likely lapsed."""
    if table.empty:
        return ""
    by = table.columns[0]
    named = table[table[by] != "(none)"]
    if named.empty:
        return ""
    best = named.iloc[0]
    worst = named.sort_values("lapsed_share", ascending=False, kind="stable").iloc[0]
    text = (f"{best[by]} holds {best['share']:.0%} of the predicted value with {best['customers']:,} customers "
            f"({best['customers'] / table['customers'].sum():.0%} of them)")
    if worst[by] == best[by]:
        return text + f"; it also has the largest share likely lapsed ({worst['lapsed_share']:.0%})."
    return text + f"; {worst[by]} has the largest share likely lapsed ({worst['lapsed_share']:.0%})."


def takeaways(a: ValueAnalysis, deciles: pd.DataFrame, table: pd.DataFrame) -> list[str]:
    """What the numbers support, as short sentences for the end of the page."""
    out = []
    if a.check is not None:
        gap = a.check.total_predicted / a.check.total_actual - 1 if a.check.total_actual else float("nan")
        if abs(gap) <= 0.15:
            out.append(f"The purchase model came within {gap:+.0%} of the purchases customers made in the holdout, "
                       "close enough to plan with.")
        else:
            out.append(f"The purchase model missed the holdout's purchases by {gap:+.0%}: read its predictions as "
                       "rough, and check whether buying changed over time (a season, a campaign).")
    else:
        out.append("The model could not be checked on held-out data, so treat its predictions as unvalidated.")
    if len(deciles):
        top = float(deciles["share"].iloc[0])
        if top >= 0.3:
            out.append(f"Value is concentrated: the top tenth of customers carries {top:.0%} of it, so keeping "
                       "them matters more than anything done for the long tail.")
        else:
            out.append(f"Value is spread widely: the top tenth of customers carries {top:.0%} of it (an even "
                       "spread would be 10%), so no small group decides the total.")
    p = a.values["p_alive"].to_numpy(float)
    out.append(f"{int((p < LAPSED_BELOW).sum()):,} customers are more likely lapsed than not; the ones who spent most "
               "are exported as the 'likely lapsed high-value customers' audience for a win-back campaign.")
    line = segment_headline(table)
    if line:
        out.append(line)
    return out
