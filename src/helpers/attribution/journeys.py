"""Conversion journeys from the events, on the backend (ibis): the event-level half of attribution.

Every step here is a whole-column ibis expression (filters, windows partitioned by person and journey,
aggregates), so the same code runs on DuckDB and Spark; what comes back is small: the rule-based models'
credit per channel, and one row per journey (its path as channel codes), which the path-level models in
:mod:`helpers.attribution.models` reduce further to distinct paths.
"""

from __future__ import annotations

from dataclasses import dataclass

import ibis
import numpy as np
import pandas as pd

from helpers.io import EventDataError, epoch_us

RULE_MODELS = ("first", "last", "linear", "time_decay", "position")
SEP = ","  # between channel codes in a path (codes are integers, so no channel name can contain it)


@dataclass
class Journeys:
    """What the backend hands to the path-level models."""

    channels: list[str]  # code -> channel name
    rule_credit: pd.DataFrame  # channel code x (model, model_value) sums over converting journeys with touches
    journeys: pd.DataFrame  # one row per journey with touches: user_id, path, converted, amount, touches
    conversions: int  # every conversion event counted
    value: float  # their total value (0 without a value column)
    untouched_conversions: int  # conversions with no touch in their lookback
    untouched_value: float


def channel_codes(touch: ibis.Table, channel: str) -> list[str]:
    """The distinct channels of the touches, sorted (their position is their code)."""
    names = touch.select(c=touch[channel].cast("string")).distinct().c.execute()
    return sorted(str(c) for c in names)


def build(t: ibis.Table, conversion: list[str], *, channel: str, lookback_us: int, collapse: bool, half_life_us: float,
          position_weights: tuple[float, float, float], value: str | None) -> Journeys:
    """Journeys of every person (rules in :mod:`helpers.attribution`)."""
    is_conv = t.event.isin(conversion)
    touch_rows = t.filter(~is_conv & t[channel].notnull())
    channels = channel_codes(touch_rows, channel)
    amount = t[value].cast("float64").fill_null(0.0) if value else ibis.literal(0.0)
    # channel -> code as a CASE over the (few) channels: no join, so the scan stays one pass
    code = ibis.cases(*[(t[channel].cast("string") == c, i) for i, c in enumerate(channels)], else_=-1) \
        if channels else ibis.literal(-1)
    base = t.filter(is_conv | t[channel].notnull()).select(
        user_id=t.user_id,
        us=epoch_us(t.timestamp),
        conv=is_conv.cast("int64"),
        code=ibis.ifelse(is_conv, -1, code).cast("int64"),
        amount=ibis.ifelse(is_conv, amount, 0.0).cast("float64"),
    )
    # journey number: the conversions before this row; a touch at a conversion's moment sorts before it (conv 0 < 1)
    by_person = ibis.window(group_by=base.user_id, order_by=[base.us, base.conv, base.code], rows=(None, 0))
    base = base.mutate(journey=base.conv.sum().over(by_person) - base.conv)
    per_journey = ibis.window(group_by=[base.user_id, base.journey])
    base = base.mutate(conv_us=ibis.ifelse(base.conv == 1, base.us, None).max().over(per_journey),
                       conv_amount=base.amount.max().over(per_journey))
    # the conversion row itself, and a second conversion at the same moment (conv_us is the journey's only one)
    touch = base.filter((base.conv == 0) & (base.conv_us.isnull() | (base.conv_us - base.us <= lookback_us)))
    if collapse:  # a run of one channel keeps its first touch (and that touch's time)
        run = ibis.window(group_by=[touch.user_id, touch.journey], order_by=[touch.us, touch.code])
        touch = touch.mutate(previous=touch.code.lag().over(run))  # a window inside a filter fails on Spark
        touch = touch.filter(touch.previous.isnull() | (touch.previous != touch.code)).drop("previous")
    ordered = ibis.window(group_by=[touch.user_id, touch.journey], order_by=[touch.us, touch.code])
    whole = ibis.window(group_by=[touch.user_id, touch.journey])
    decay = (-(touch.conv_us - touch.us).cast("float64") / half_life_us * np.log(2.0)).exp()
    touch = touch.mutate(pos=ibis.row_number().over(ordered), n=touch.us.count().over(whole),
                         decay=decay)
    touch = touch.mutate(decay_total=touch.decay.sum().over(whole))
    first, middle, last = position_weights
    n, pos = touch.n, touch.pos
    weights = {
        "first": ibis.ifelse(pos == 0, 1.0, 0.0),
        "last": ibis.ifelse(pos == n - 1, 1.0, 0.0),
        "linear": 1.0 / n.cast("float64"),
        "time_decay": touch.decay / touch.decay_total,
        "position": ibis.cases((n == 1, 1.0), (n == 2, 0.5), (pos == 0, first), (pos == n - 1, last),
                               else_=middle / (n - 2).cast("float64")),
    }
    touch = touch.mutate(**{f"w_{name}": w.cast("float64") for name, w in weights.items()})
    converting = touch.filter(touch.conv_us.notnull())
    credit = converting.group_by(converting.code).aggregate(
        **{name: converting[f"w_{name}"].sum() for name in weights},
        **{f"{name}_value": (converting[f"w_{name}"] * converting.conv_amount).sum() for name in weights},
    ).order_by("code").execute()
    journeys = touch.group_by([touch.user_id, touch.journey]).aggregate(
        path=touch.code.cast("string").group_concat(SEP, order_by=[touch.us, touch.code]),
        converted=touch.conv_us.notnull().max(),
        amount=touch.conv_amount.max(),
        touches=touch.us.count(),
    ).execute()
    totals = base.filter(base.conv == 1).aggregate(n=base.us.count(), v=base.amount.sum()).execute()
    conversions = int(totals["n"].iloc[0])
    total_value = float(totals["v"].iloc[0] or 0.0)
    conv_j = journeys[journeys["converted"].astype(bool)]
    return Journeys(channels=channels, rule_credit=credit, journeys=journeys.drop(columns="journey"),
                    conversions=conversions, value=total_value,
                    untouched_conversions=conversions - len(conv_j),
                    untouched_value=total_value - float(conv_j["amount"].sum()))


def check_columns(t: ibis.Table, conversion: list[str], channel: str, value: str | None) -> None:
    """Clear errors for a missing channel or value column, or a conversion that is not an event."""
    if channel not in t.columns:
        raise EventDataError(f"channel={channel!r} is not a column of the events ({', '.join(t.columns)}); "
                             "attribution needs the channel of each touch.")
    if value is not None:
        if value not in t.columns:
            raise EventDataError(f"value={value!r} is not a column of the events ({', '.join(t.columns)}).")
        if not t[value].type().is_numeric():
            raise EventDataError(f"value={value!r} must be a number column (revenue per conversion); it holds "
                                 f"{t[value].type()}.")
