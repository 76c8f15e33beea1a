"""What an attribution report says: Markov orders compared on the same paths, headlines in words, and which
inputs a run on some events can use. Rules are in :mod:`helpers.attribution`.
"""

from __future__ import annotations

from typing import Sequence

import ibis
import pandas as pd

from helpers.attribution import MODEL_LABELS, NO_TOUCH, AttributionResult, attribute  # noqa: F401  (doctests)
from helpers.attribution import models as _models
from helpers.io import EventDataError, as_ibis
from helpers.units import declare


def markov_orders(result: AttributionResult, orders: Sequence[int] = (1, 2, 3)) -> pd.DataFrame:
    """Per channel, the Markov credit and removal effect for chains of several orders, on the same paths
    (columns ``credit_order_k``, ``removal_effect_order_k``).

    A first-order chain forgets where a person came from: a channel that makes the later steps convert better
    (an affiliate review before a plain web visit) is credited only for the traffic it carries. A higher order
    remembers more; once it covers the longest path, every path's conversion probability is reproduced and
    RE(c) is the share of conversions on paths that contain c. The table shows how much the story depends on it.

    Examples
    --------
    >>> ev = pd.DataFrame({"user_id": ["a", "a", "a", "b", "b"], "event": ["t", "t", "buy", "t", "t"],
    ...                    "timestamp": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03",
    ...                                                 "2024-01-01", "2024-01-02"], utc=True),
    ...                    "channel": ["review", "web", None, "ads", "web"]})
    >>> # ads, review, web at order 1, then at order 2 (which sees that the ads path never converts)
    >>> t = markov_orders(attribute(ev, "buy", n_bootstrap=0), (1, 2))
    >>> t["removal_effect_order_1"].tolist(), t["removal_effect_order_2"].tolist()
    ([0.5, 0.5, 1.0], [0.0, 1.0, 1.0])
    """
    if result.path_counts is None:
        raise EventDataError("this result holds no paths: run attribute() again.")
    pc_ = result.path_counts
    paths = _models.parse_paths(list(pc_["path"]), len(result.channels))
    conv, null = pc_["conversions"].to_numpy(float), pc_["nulls"].to_numpy(float)
    touched = float(conv.sum())
    table = pd.DataFrame({"channel": result.channels})
    kinds: dict[str, str] = {"channel": "text"}
    headers = {}
    effects = {k: _models.removal_effects(_models.chain(paths, int(k)), conv, null)[0] for k in orders}
    for k in orders:
        table[f"credit_order_{k}"] = _models.markov_credit(effects[k], touched)
        kinds[f"credit_order_{k}"] = "count"
        headers[f"credit_order_{k}"] = f"credit, order {k}"
    for k in orders:
        table[f"removal_effect_order_{k}"] = effects[k]
        kinds[f"removal_effect_order_{k}"] = "rate"
        headers[f"removal_effect_order_{k}"] = f"removal effect, order {k}"
    return declare(table, kinds, headers=headers)


def attribution_headline(result: AttributionResult) -> str:
    """One sentence a stakeholder can read: which channel each model credits most, and the biggest disagreement
    with last touch.

    Examples
    --------
    >>> ev = pd.DataFrame({"user_id": ["a", "a", "a"], "event": ["t", "t", "buy"],
    ...                    "timestamp": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"], utc=True),
    ...                    "channel": ["ads", "web", None]})
    >>> attribution_headline(attribute(ev, "buy", models=("first", "last"), n_bootstrap=0))
    'Of 1 conversions, last touch credits web most (1.0); first touch credits ads most (1.0).'
    """
    c = result.credit[result.credit["channel"] != NO_TOUCH].set_index("channel")
    if c.empty:
        return "No conversion had a touch in its lookback, so no channel can be credited."
    parts = []
    for m in [m for m in ("last", "markov", "shapley", "first", "linear") if m in result.models][:3]:
        top = c[m].idxmax()
        parts.append(f"{MODEL_LABELS[m]} credits {top} most ({c.loc[top, m]:,.1f})")
    text = f"Of {result.conversions:,} conversions, " + "; ".join(parts) + "."
    d = result.vs_last_touch
    d = d[(d["channel"] != NO_TOUCH) & d["model"].isin(["markov", "shapley", "linear"]) & (d["difference"] > 0)]
    if len(d):  # the channel last touch undervalues most, by a model that reads the whole journey
        # Ties (Shapley equals linear when no channel repeats) go to the model that reads most of the journey,
        # so the sentence does not depend on row order.
        rank = d["model"].map({"markov": 0, "shapley": 1, "linear": 2})
        row = d.assign(_d=-d["difference"].round(9), _r=rank).sort_values(["_d", "_r", "channel"]).iloc[0]
        text += (f" Last touch undervalues {row['channel']} most: {MODEL_LABELS[row['model']]} credits it with "
                 f"{row['credit']:,.0f} conversions against {row['last_touch']:,.0f}.")
    return text


def orders_headline(orders: pd.DataFrame) -> str:
    """In words, the channel whose Markov credit changes most between the lowest and highest order of
    :func:`markov_orders`.

    Examples
    --------
    >>> t = pd.DataFrame({"channel": ["ads", "review"], "credit_order_1": [3.0, 1.0], "credit_order_3": [2.0, 4.0]})
    >>> orders_headline(t)
    'Remembering 3 channels instead of 1 moves the most credit for review: 1 to 4 conversions (ads: 3 to 2).'
    """
    cols = sorted((c for c in orders.columns if c.startswith("credit_order_")), key=lambda c: int(c.rsplit("_", 1)[1]))
    if len(cols) < 2 or not len(orders):
        return "Only one order was compared."
    lo, hi = cols[0], cols[-1]
    change = (orders[hi] - orders[lo]).abs()
    top = orders.loc[change.idxmax()]
    rest = orders.drop(index=change.idxmax())
    other = rest.loc[(rest[hi] - rest[lo]).abs().idxmax()] if len(rest) else None
    text = (f"Remembering {hi.rsplit('_', 1)[1]} channels instead of {lo.rsplit('_', 1)[1]} moves the most credit "
            f"for {top['channel']}: {top[lo]:,.0f} to {top[hi]:,.0f} conversions")
    if other is not None:
        text += f" ({other['channel']}: {other[lo]:,.0f} to {other[hi]:,.0f})"
    return text + "."


def last_touch_headline(result: AttributionResult) -> str:
    """In words, what last touch misses: the conversions the journey-based models (Markov, Shapley, or linear
    when neither ran) move away from the closing channels, and to which channels.

    Examples
    --------
    >>> ev = pd.DataFrame({"user_id": ["a", "a", "a"], "event": ["t", "t", "buy"],
    ...                    "timestamp": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"], utc=True),
    ...                    "channel": ["ads", "web", None]})
    >>> last_touch_headline(attribute(ev, "buy", models=("last", "linear"), n_bootstrap=0))
    'Linear moves 0.5 of 1 conversions (50%) away from the channels last touch credits: ads gains 0.5; web loses 0.5.'
    """
    d = result.vs_last_touch
    model = next((m for m in ("markov", "shapley", "linear") if m in set(d["model"])), None)
    if model is None:
        return "No model that reads the whole journey was run, so there is nothing to set against last touch."
    d = d[(d["model"] == model) & (d["channel"] != NO_TOUCH)]
    moved = float(d["difference"].clip(lower=0).sum())
    if moved < 0.05 or not result.conversions:
        return f"{MODEL_LABELS[model][:1].upper() + MODEL_LABELS[model][1:]} and last touch agree: every journey's credit goes where it closes."
    gains = d[d["difference"] > 0].nlargest(3, "difference")
    losses = d[d["difference"] < 0].nsmallest(2, "difference")
    label = MODEL_LABELS[model]
    text = (f"{label[:1].upper() + label[1:]} moves {moved:,.1f} of {result.conversions:,} conversions "
            f"({moved / result.conversions:.0%}) away from the channels last touch credits: "
            + ", ".join(f"{r.channel} gains {r.difference:,.1f}" for r in gains.itertuples()))
    if len(losses):
        text += "; " + ", ".join(f"{r.channel} loses {-r.difference:,.1f}" for r in losses.itertuples())
    return text + "."


def intervals_headline(result: AttributionResult) -> str:
    """In words, how much the Markov and Shapley credits move when people are resampled: the widest interval,
    and whether each model's top channel is clear of its runner-up.

    Examples
    --------
    >>> ev = pd.DataFrame({"user_id": ["a", "a", "a"], "event": ["t", "t", "buy"],
    ...                    "timestamp": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"], utc=True),
    ...                    "channel": ["ads", "web", None]})
    >>> intervals_headline(attribute(ev, "buy", models=("last", "markov"), n_bootstrap=0))
    'No bootstrap was run (n_bootstrap=0), so the credits carry no intervals.'
    """
    iv = result.intervals
    if iv.empty:
        return "Neither Markov nor Shapley was run, so there are no intervals."
    if iv["low"].isna().all():
        return "No bootstrap was run (n_bootstrap=0), so the credits carry no intervals."
    iv = iv[iv["channel"] != NO_TOUCH].assign(width=lambda t: t["high"] - t["low"])
    widest = iv.loc[iv["width"].idxmax()]
    text = (f"Resampling people, the widest 95% interval is {MODEL_LABELS[widest['model']]}'s credit for "
            f"{widest['channel']}: {widest['low']:,.0f} to {widest['high']:,.0f} conversions.")
    for model, t in iv.groupby("model", sort=False):
        if len(t) < 2:
            continue
        first, second = t.nlargest(2, "credit").itertuples()
        clear = first.low > second.high
        text += (f" {MODEL_LABELS[model]}'s top channel, {first.channel}, is "
                 + (f"clearly ahead of {second.channel}." if clear
                    else f"not clearly ahead of {second.channel}: their intervals overlap."))
    return text


def attribution_inputs(events: pd.DataFrame | ibis.Table, conversion: str | Sequence[str], *,
                       channel: str = "channel", value: str | None = "value") -> tuple[str | None, str | None]:
    """What an attribution run on these events can use: ``(value column or None, why it cannot run or None)``.

    The value column is used when it is a number column with a value on some conversion; attribution cannot run
    without a channel column holding some channel, or without a conversion event. A report section says the
    reason instead of failing.

    Examples
    --------
    >>> ev = pd.DataFrame({"user_id": ["a"], "event": ["buy"], "timestamp": pd.to_datetime(["2024-01-01"], utc=True)})
    >>> attribution_inputs(ev, "buy")
    (None, 'The events have no channel column, so no conversion can be credited to a channel.')
    """
    t = as_ibis(events)
    names = [conversion] if isinstance(conversion, str) else list(conversion)
    if channel not in t.columns:
        return None, f"The events have no {channel} column, so no conversion can be credited to a channel."
    conv = t.event.isin(names)
    aggs = {"n": conv.cast("int64").sum(), "touches": (t[channel].notnull() & ~conv).cast("int64").sum()}
    use_value = value is not None and value in t.columns and t[value].type().is_numeric()
    if use_value:
        aggs["valued"] = (conv & t[value].notnull()).cast("int64").sum()
    row = t.aggregate(**aggs).execute().fillna(0).iloc[0]
    if row["n"] == 0:
        return None, f"No {', '.join(names)} event in the data, so there is no conversion to attribute."
    if row["touches"] == 0:
        return None, f"No event has a {channel}, so no conversion can be credited to a channel."
    return (value if use_value and row["valued"] > 0 else None), None
