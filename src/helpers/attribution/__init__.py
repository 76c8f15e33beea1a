"""Which channels bring customers: multi-touch attribution of conversions to the channels of a journey.

:func:`attribute` builds every person's journeys from the canonical events and credits each conversion
to channels under several models, side by side, so that the disagreement between them is visible.

Journeys (the rule, one sentence each):

- A *touch* is an event with a non-null ``channel`` that is not a conversion event; a *conversion* is an
  event named ``conversion`` (one name or several). Only events up to ``observed_until`` (default: the last
  event) count.
- A touch belongs to the person's next conversion at or after it (a touch at the conversion's very moment
  counts for it), when it lies within ``lookback`` before that conversion (inclusive; ``None``: no limit).
  Touches after a conversion start the next journey, so each conversion has its own journey.
- A person's touches after their last conversion (all of them, for people who never convert) up to
  ``observed_until`` form a journey that ends in *null* (no lookback: the journey is still open). Null
  journeys count only in the Markov model, which needs them to know how often a path fails.
- Touches are ordered by time, ties by channel name (so a result never depends on row order). With
  ``collapse_repeats`` a run of one channel keeps only its first touch, and that touch's time.
- A conversion with no touch in its lookback is credited to ``(no touch)`` in every model, so each model's
  credit sums to the total conversions (and value).

Models (``models``):

- ``first`` / ``last``: all credit to the journey's first / last touch.
- ``linear``: an equal share to every touch.
- ``time_decay``: touch weight 2^(-age / half_life), age = conversion time minus touch time, normalised
  within the journey; ``half_life`` defaults to ``lookback / 4`` (7 days without a lookback).
- ``position``: ``position_weights`` (40 / 20 / 40) to the first, the middle touches (shared equally) and
  the last; one-touch journeys give it all to the touch, two-touch journeys half each.
- ``markov``: an absorbing Markov chain over states start, channels (order 1; with ``markov_order`` k a
  state is the last k channels), conversion and null, whose transition probabilities are the path counts'
  transition frequencies. P(conversion) is solved exactly (a linear solve of (I - Q) x = r, no simulation).
  The removal effect RE(c) = 1 - P(conversion without c) / P(conversion), where removing c sends all
  inflow into states containing c to null. Credit is proportional to RE and sums to the touched conversions
  (or their value).
- ``shapley``: the characteristic function v(S) is the number of conversions of journeys whose set of
  distinct channels lies within S (built from the conversions of journeys with exactly each set). Exact
  for up to 12 channels, seeded permutation sampling beyond; ``result.notes`` says which. For this v the
  Shapley value gives each journey's conversion in equal shares to its distinct channels (Zhao et al. 2018),
  which the tests check. Null journeys play no part.

Intervals: the Markov and Shapley credits get percentile bootstrap intervals over persons (``n_bootstrap``
resamples of the people, seeded): a replicate reweights the same distinct paths, so it costs path-level
work only.

Where things live::

    journeys.py   the event-level half on the backend (ibis): journeys, rule-based credit, one row per journey
    models.py     the path-level half (NumPy): Markov chain and its exact solve, Shapley
    reading.py    what a report says: Markov orders compared, headlines, which inputs a run can use
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import ibis
import numpy as np
import pandas as pd
from scipy import sparse

from helpers.attribution import journeys as _journeys
from helpers.attribution import models as _models
from helpers.io import EventDataError, as_ibis, to_utc
from helpers.units import declare

__all__ = ["MODELS", "NO_TOUCH", "AttributionResult", "attribute", "attribution_headline", "attribution_inputs",
           "intervals_headline", "last_touch_headline",
           "markov_orders", "orders_headline"]

MODELS = ("first", "last", "linear", "time_decay", "position", "markov", "shapley")
NO_TOUCH = "(no touch)"
MODEL_LABELS = {"first": "first touch", "last": "last touch", "linear": "linear", "time_decay": "time decay",
                "position": "position based", "markov": "Markov", "shapley": "Shapley"}


@dataclass
class AttributionResult:
    """What :func:`attribute` found.

    Attributes
    ----------
    credit : channel x model: conversions credited (each model column sums to ``conversions``).
    value_credit : the same for value (``None`` without ``value``).
    removal_effects : per channel, the Markov removal effect with its bootstrap interval.
    transition_matrix : Markov transition probabilities, from-state (rows) to to-state (columns).
    vs_last_touch : per channel and model, the credit, last touch's credit and the difference.
    intervals : per channel, Markov and Shapley credit with bootstrap percentile intervals.
    paths : the most common paths: journeys, conversions, conversion rate and value.
    summary : journeys, people, conversions, touched and untouched, distinct paths.
    notes : how Shapley was computed, and anything else a reader should know.
    """

    credit: pd.DataFrame
    value_credit: pd.DataFrame | None
    removal_effects: pd.DataFrame
    transition_matrix: pd.DataFrame
    vs_last_touch: pd.DataFrame
    intervals: pd.DataFrame
    paths: pd.DataFrame
    summary: pd.DataFrame
    conversions: int
    value: float
    conversion_probability: float
    models: tuple[str, ...]
    lookback: pd.Timedelta | None
    half_life: pd.Timedelta
    observed_until: pd.Timestamp
    notes: list[str] = field(default_factory=list)
    path_counts: pd.DataFrame | None = field(default=None, repr=False)  # distinct paths (codes), conversions, nulls
    channels: list[str] = field(default_factory=list, repr=False)

    def _repr_html_(self) -> str:
        return self.credit._repr_html_()


def _timedelta(value: Any, name: str) -> pd.Timedelta | None:
    if value is None:
        return None
    try:
        td = pd.Timedelta(value)
    except (ValueError, TypeError):
        raise EventDataError(f"{name}={value!r} is not a time span ('30D', '12h', a Timedelta).") from None
    if td <= pd.Timedelta(0):
        raise EventDataError(f"{name}={value!r} must be positive.")
    return td


def _check(models: Sequence[str], position_weights: Sequence[float], markov_order: int) -> None:
    unknown = [m for m in models if m not in MODELS]
    if unknown or not models:
        raise EventDataError(f"models={list(models)!r}: choose from {', '.join(MODELS)}.")
    if len(position_weights) != 3 or min(position_weights) < 0 or abs(sum(position_weights) - 1) > 1e-9:
        raise EventDataError(f"position_weights={tuple(position_weights)!r}: three non-negative shares (first, "
                             "middle, last) that sum to 1.")
    if not isinstance(markov_order, (int, np.integer)) or markov_order < 1:
        raise EventDataError(f"markov_order={markov_order!r} must be a whole number of at least 1.")


def _conversions_and_end(t: ibis.Table, conversion: list[str]) -> tuple[int, Any]:
    """How many conversion events there are and the last event's time, in one scan."""
    row = t.aggregate(n=t.event.isin(conversion).cast("int64").sum(), last=t.timestamp.max()).execute()
    n = row["n"].iloc[0]
    n = 0 if pd.isna(n) else int(n)
    if n == 0:
        known = sorted(t.select("event").distinct().limit(20).event.execute().astype(str))
        raise EventDataError(f"conversion {conversion!r}: no such event in the data (events include "
                             f"{', '.join(repr(k) for k in known)}).")
    return n, row["last"].iloc[0]


def attribute(
    events: pd.DataFrame | ibis.Table,
    conversion: str | Sequence[str],
    *,
    channel: str = "channel",
    lookback: str | pd.Timedelta | None = "30D",
    models: Sequence[str] = MODELS,
    value: str | None = None,
    collapse_repeats: bool = True,
    half_life: str | pd.Timedelta | None = None,
    position_weights: tuple[float, float, float] = (0.4, 0.2, 0.4),
    markov_order: int = 1,
    observed_until: Any = None,
    n_bootstrap: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
    top_paths: int = 20,
) -> AttributionResult:
    """Credit each conversion to the channels of its journey, under several models (rules in the module docstring).

    Parameters
    ----------
    events : canonical events (DataFrame or ibis table); not modified.
    conversion : the conversion event name (or names).
    channel : the column naming each touch's channel.
    lookback : how far before a conversion a touch still counts (inclusive); ``None``: no limit.
    models : which models to run, from :data:`MODELS`.
    value : a number column of the conversion events (revenue) to credit beside the conversions.
    collapse_repeats : keep only the first touch of a run of one channel.
    half_life : time decay's half life (default ``lookback / 4``).
    position_weights : position-based shares of the first, middle and last touches.
    markov_order : how many past channels a Markov state remembers.
    observed_until : the end of observation (default: the last event).
    n_bootstrap : resamples of persons for the Markov and Shapley intervals (0: none).
    confidence : the intervals' coverage.
    seed : seeds the bootstrap and Shapley sampling.
    top_paths : how many of the most common paths ``paths`` lists.

    Returns
    -------
    AttributionResult

    Examples
    --------
    >>> ev = pd.DataFrame({"user_id": ["a", "a", "a", "b", "b"],
    ...                    "event": ["visit", "visit", "buy", "visit", "buy"],
    ...                    "timestamp": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03",
    ...                                                 "2024-01-01", "2024-01-02"], utc=True),
    ...                    "channel": ["ads", "email", "web", "email", "web"]})
    >>> r = attribute(ev, "buy", models=("first", "last", "linear"), n_bootstrap=0)
    >>> r.credit.set_index("channel").round(2).to_dict("index")
    {'ads': {'first': 1.0, 'last': 0.0, 'linear': 0.5}, 'email': {'first': 1.0, 'last': 2.0, 'linear': 1.5}}
    """
    t = as_ibis(events)
    conversion_ = [conversion] if isinstance(conversion, str) else list(conversion)
    models = tuple(models)
    _journeys.check_columns(t, channel, value)
    _check(models, position_weights, markov_order)
    window = _timedelta(lookback, "lookback")
    half = _timedelta(half_life, "half_life") or (window / 4 if window is not None else pd.Timedelta("7D"))
    if observed_until is not None:
        until = to_utc(observed_until)
        t = t.filter(t.timestamp <= until.to_pydatetime())
        _conversions_and_end(t, conversion_)
    else:
        until = to_utc(_conversions_and_end(t, conversion_)[1])
    us = pd.Timedelta(microseconds=1)
    lookback_us = int(window / us) if window is not None else 2**62
    j = _journeys.build(t, conversion_, channel=channel, lookback_us=lookback_us, collapse=collapse_repeats,
                        half_life_us=half / us, value=value)
    return _assemble(j, models, value is not None, tuple(position_weights), markov_order, n_bootstrap, confidence,
                     seed, top_paths, window, half, until)


def _assemble(j: _journeys.Journeys, models: tuple[str, ...], with_value: bool,
              position_weights: tuple[float, float, float], markov_order: int, n_bootstrap: int, confidence: float,
              seed: int, top_paths: int, window: pd.Timedelta | None, half: pd.Timedelta,
              until: pd.Timestamp) -> AttributionResult:
    channels = j.channels
    n_ch = len(channels)
    touched_journey = j.length > 0
    untouched = j.converted & ~touched_journey
    conversions, total_value = int(j.converted.sum()), float(j.amount[j.converted].sum())
    untouched_conversions, untouched_value = int(untouched.sum()), float(j.amount[untouched].sum())
    keys = j.path_keys()[touched_journey]
    converted = j.converted[touched_journey]
    amount = np.where(converted, j.amount[touched_journey], 0.0)
    path_id, path_strings = pd.factorize(keys, sort=True)
    paths = _models.parse_paths(list(path_strings), n_ch)
    n_paths = len(path_strings)
    conv_p = np.bincount(path_id, weights=converted, minlength=n_paths)
    null_p = np.bincount(path_id, weights=~converted, minlength=n_paths)
    value_p = np.bincount(path_id, weights=amount, minlength=n_paths)
    touched, touched_value = float(conv_p.sum()), float(value_p.sum())
    notes: list[str] = []

    conv_credit = pd.DataFrame(index=range(n_ch), dtype=float)
    val_credit = pd.DataFrame(index=range(n_ch), dtype=float)
    rule = _journeys.rule_credit(j, position_weights)
    for m in models:
        if m in _journeys.RULE_MODELS:
            conv_credit[m] = rule[m].to_numpy(float)
            val_credit[m] = rule[f"{m}_value"].to_numpy(float)

    ch = _models.chain(paths, markov_order)
    effects, p_conv, prob = _models.removal_effects(ch, conv_p, null_p)
    set_of_path, member, member_set = _models.path_sets(paths)
    n_sets = int(set_of_path.max()) + 1 if n_paths else 0
    shap_map, how = _models.shapley_matrix(member, member_set, n_sets, n_ch, seed=seed)
    if "markov" in models:
        conv_credit["markov"] = _models.markov_credit(effects, touched)
        val_credit["markov"] = _models.markov_credit(effects, touched_value)
    if "shapley" in models:
        conv_credit["shapley"] = shap_map @ np.bincount(set_of_path, weights=conv_p, minlength=n_sets)
        val_credit["shapley"] = shap_map @ np.bincount(set_of_path, weights=value_p, minlength=n_sets)
        notes.append(f"Shapley values: {how}.")

    names = list(channels)
    if untouched_conversions > 0:
        names.append(NO_TOUCH)
        conv_credit.loc[n_ch] = float(untouched_conversions)
        val_credit.loc[n_ch] = float(untouched_value)
        notes.append(f"{untouched_conversions:,} of {conversions:,} conversions had no touch in their lookback; "
                     f"every model credits them to {NO_TOUCH}.")
    conv_credit.insert(0, "channel", names)
    val_credit.insert(0, "channel", names)
    kinds = {m: "count" for m in models}
    credit = declare(conv_credit.reset_index(drop=True), {"channel": "text", **kinds},
                     headers={m: MODEL_LABELS[m] for m in models})
    value_credit = declare(val_credit.reset_index(drop=True), {"channel": "text", **{m: "money" for m in models}},
                           headers={m: MODEL_LABELS[m] for m in models}) if with_value else None

    intervals, re_low, re_high = _bootstrap(j.user_id[touched_journey], path_id, converted, amount, ch, set_of_path, n_sets, shap_map,
                                            models, n_bootstrap, confidence, seed, conv_credit, n_ch, names)
    removal = declare(pd.DataFrame({"channel": channels, "removal_effect": effects,
                                    "removal_effect_low": re_low, "removal_effect_high": re_high}),
                      {"channel": "text", "removal_effect": "rate", "removal_effect_low": "rate",
                       "removal_effect_high": "rate"})
    return AttributionResult(
        credit=credit, value_credit=value_credit, removal_effects=removal,
        transition_matrix=_transition_table(ch, prob, channels),
        vs_last_touch=_vs_last(credit, models), intervals=intervals,
        paths=_top_paths(path_strings, conv_p, null_p, value_p, channels, top_paths, with_value),
        summary=_summary(j, conversions, untouched_conversions, n_paths), conversions=conversions,
        value=total_value,
        conversion_probability=p_conv, models=models, lookback=window, half_life=half, observed_until=until,
        notes=notes, channels=list(channels),
        path_counts=pd.DataFrame({"path": list(path_strings), "conversions": conv_p, "nulls": null_p}))


def _bootstrap(person_ids: np.ndarray, path_id: np.ndarray, converted: np.ndarray, amount: np.ndarray,
               ch: _models.Chain, set_of_path: np.ndarray, n_sets: int, shap_map: np.ndarray,
               models: tuple[str, ...], n_bootstrap: int, confidence: float, seed: int, credit: pd.DataFrame,
               n_ch: int, names: list[str]) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Percentile intervals over persons for the Markov and Shapley credits (and the removal effects)."""
    wanted = [m for m in ("markov", "shapley") if m in models]
    nan = np.full(n_ch, np.nan)
    rows = []
    if n_bootstrap <= 0 or len(person_ids) == 0:
        for m in wanted:
            rows.append(pd.DataFrame({"channel": names[:n_ch], "model": m, "credit": credit[m].to_numpy()[:n_ch],
                                      "low": nan, "high": nan}))
        re_low = re_high = nan
    else:
        n_paths = int(path_id.max()) + 1
        size, conv_of, null_of = _people_alike(person_ids, path_id, converted, n_paths)
        n_people = int(size.sum())
        rng = np.random.default_rng([seed, 19])
        markov = np.empty((n_bootstrap, n_ch))
        effects = np.empty((n_bootstrap, n_ch))
        shapley = np.empty((n_bootstrap, n_ch))
        for b in range(n_bootstrap):
            # resampling n people with replacement draws each kind of person a multinomial number of times
            w = rng.multinomial(n_people, size / n_people).astype(float)
            conv, null = conv_of @ w, null_of @ w
            if "markov" in wanted:
                effects[b] = _models.removal_effects(ch, conv, null)[0]
                markov[b] = _models.markov_credit(effects[b], conv.sum())
            if "shapley" in wanted:
                shapley[b] = shap_map @ np.bincount(set_of_path, weights=conv, minlength=n_sets)
        alpha = (1 - confidence) / 2
        q = [alpha, 1 - alpha]
        for m, draws in (("markov", markov), ("shapley", shapley)):
            if m in wanted:
                lo, hi = np.quantile(draws, q, axis=0)
                rows.append(pd.DataFrame({"channel": names[:n_ch], "model": m,
                                          "credit": credit[m].to_numpy()[:n_ch], "low": lo, "high": hi}))
        if "markov" in wanted:
            re_low, re_high = np.quantile(effects, q, axis=0)
        else:
            re_low = re_high = nan
    table = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(
        columns=["channel", "model", "credit", "low", "high"])
    return declare(table, {"channel": "text", "model": "text", "credit": "count", "low": "count",
                           "high": "count"}), re_low, re_high


def _people_alike(person_ids: np.ndarray, path_id: np.ndarray, converted: np.ndarray,
                  n_paths: int) -> tuple[np.ndarray, sparse.csr_matrix, sparse.csr_matrix]:
    """People grouped by what they contribute (the same journeys: paths and outcomes): how many people each
    kind has, and (paths x kinds) the conversions and nulls one person of each kind adds to each path.

    A bootstrap resample of the people only needs how many of each kind it drew, so a replicate costs the
    number of kinds (thousands), not of people. Kinds are numbered by their journeys, never by row order.
    """
    person, _ = pd.factorize(person_ids)
    n_people = int(person.max()) + 1
    journey_code = path_id.astype(np.int64) * 2 + converted
    order = np.lexsort((journey_code, person))
    offsets = np.zeros(n_people + 1, np.int64)
    np.cumsum(np.bincount(person, minlength=n_people), out=offsets[1:])
    kind, _ = pd.factorize(_journeys.joined_codes(offsets, journey_code[order]), sort=True)
    size = np.bincount(kind)
    first = np.full(len(size), n_people)
    np.minimum.at(first, kind, np.arange(n_people))  # one person stands for each kind
    mine = first[kind[person]] == person
    shape = (n_paths, len(size))
    rows, cols = path_id[mine], kind[person[mine]]
    conv_of = sparse.csr_matrix((converted[mine].astype(float), (rows, cols)), shape=shape)
    null_of = sparse.csr_matrix(((~converted[mine]).astype(float), (rows, cols)), shape=shape)
    return size, conv_of, null_of


def _state_labels(ch: _models.Chain, channels: list[str]) -> list[str]:
    labels = []
    for key in ch.state_key:
        history = [channels[c] for c in key[::-1] if c >= 0]  # oldest first
        labels.append(" > ".join(history))
    return labels


def _transition_table(ch: _models.Chain, prob: Any, channels: list[str]) -> pd.DataFrame:
    states = _state_labels(ch, channels)
    dense = prob if isinstance(prob, np.ndarray) else np.asarray(prob.todense())
    rows = states + ["(start)"]
    cols = states + ["(conversion)", "(null)"]
    table = pd.DataFrame(dense[: ch.n_states + 1, :][:, list(range(ch.n_states)) + [ch.n_states + 1, ch.n_states + 2]],
                         index=rows, columns=cols)
    table = table.loc[["(start)"] + states]
    table.index.name = "from"
    return declare(table, {c: "rate" for c in cols})


def _vs_last(credit: pd.DataFrame, models: tuple[str, ...]) -> pd.DataFrame:
    cols = ["channel", "model", "credit", "last_touch", "difference", "relative_difference"]
    if "last" not in models:
        return pd.DataFrame(columns=cols)
    parts = []
    for m in models:
        if m == "last":
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where(credit["last"] > 0, credit[m] / credit["last"] - 1, np.nan)
        parts.append(pd.DataFrame({"channel": credit["channel"], "model": m, "credit": credit[m],
                                   "last_touch": credit["last"], "difference": credit[m] - credit["last"],
                                   "relative_difference": rel}))
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)
    return declare(table, {"channel": "text", "model": "text", "credit": "count", "last_touch": "count",
                           "difference": "number", "relative_difference": "rate"})


def _top_paths(path_strings: Any, conv: np.ndarray, null: np.ndarray, value: np.ndarray, channels: list[str],
               top: int, with_value: bool) -> pd.DataFrame:
    total = conv + null
    order = np.lexsort((np.arange(len(total)), -total))[:top]
    labels = [" > ".join(channels[int(c)] for c in str(path_strings[i]).split(_journeys.SEP)) for i in order]
    table = pd.DataFrame({"path": labels, "journeys": total[order].astype(int),
                          "conversions": conv[order].astype(int), "conversion": conv[order] / total[order]})
    kinds = {"path": "text", "journeys": "count", "conversions": "count", "conversion": "rate"}
    if with_value:
        table["value"] = value[order]
        kinds["value"] = "money"
    return declare(table, kinds)


def _summary(j: _journeys.Journeys, conversions: int, untouched: int, n_paths: int) -> pd.DataFrame:
    length = j.length
    touched = length > 0
    converting = touched & j.converted
    median = float(np.median(length[converting])) if converting.any() else float("nan")
    rows = [
        ("people with touches", f"{len(pd.unique(j.user_id[touched])):,}"),
        ("journeys with touches", f"{int(touched.sum()):,}"),
        ("converting journeys with touches", f"{int(converting.sum()):,}"),
        ("journeys without conversion (null)", f"{int((touched & ~j.converted).sum()):,}"),
        ("conversions", f"{conversions:,}"),
        ("conversions without a touch", f"{untouched:,}"),
        ("distinct paths", f"{n_paths:,}"),
        ("median touches per converting journey", f"{median:g}"),
    ]
    return declare(pd.DataFrame(rows, columns=["measure", "value"]), {"measure": "text", "value": "text"})


from helpers.attribution.reading import (  # noqa: E402  (reading.py uses AttributionResult and attribute)
    attribution_headline,
    attribution_inputs,
    intervals_headline,
    last_touch_headline,
    markov_orders,
    orders_headline,
)
