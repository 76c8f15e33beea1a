"""Why people convert: what converters did that others did not, and early signals of the outcome.

:func:`conversion_drivers` (PostHog's correlation analysis, Mixpanel's Signal
for funnels), with censoring handled:

- Population: the people who entered step 1 of a :class:`FunnelResult`.
  *Success*: they reached the target step in their counted attempt.
  *Failure*: they did not, and their window (attempt start + conversion
  window) had fully elapsed by ``observed_until``. People still inside their
  window are in neither group (PostHog counts them as failures, which makes
  everything recent look like a reason to drop).
- A candidate is seen by a person when it happens between their attempt's
  start and their conversion (successes) or the end of their window
  (failures), both ends included. Candidates: an event name that is not one
  of the funnel's steps; an event property value (``page = pricing``) on any
  event in that span other than the funnel's step events (their properties
  mostly record reaching the step: the checkout page of ``checkout_started``);
  a user attribute value from ``user_table``. Persons are counted once per
  candidate. Leave out attributes that record the outcome itself (a paid plan
  for a purchase funnel): they come out on top and say nothing.
- Per candidate, with a, b the successes / failures who saw it and S, F the
  group sizes: ``odds_ratio = (a + prior)(F - b + prior) / ((S - a + prior)(b + prior))``
  (PostHog's rule, prior 1), its Woolf interval on the same smoothed counts,
  ``phi`` (the signed correlation of "saw it" and "converted"; scipy's
  ``pearsonr`` on the two indicators), Fisher's exact p (two-sided) with
  Holm's correction across the candidates kept, conversion among those who
  saw it and those who did not with Wilson intervals, and ``skewed`` when one
  group is more than 10 times the other (odds ratios are then unstable).
- Candidates seen by fewer than ``min(min_users, min_share * (S + F))``
  persons are dropped before testing, and counted.

These are associations: people who use a feature may convert for other
reasons. The table says which behaviours to look at, not what to change.
"""

from __future__ import annotations

from typing import Sequence

import ibis
import numpy as np
import pandas as pd
import pyarrow as pa
from scipy import stats

from helpers.funnel.engine import FunnelResult
from helpers.io import EventDataError, as_ibis
from helpers.stats import Z95, holm_adjust, wilson_interval
from helpers.units import declare

__all__ = ["conversion_drivers", "drivers_headline", "early_signals", "event_property_columns", "outcome_groups",
           "signal_outcome"]

CANONICAL_CORE = ("user_id", "event", "timestamp", "session_id", "value")
ID_LIKE = ("anonymous_id", "device_id", "distinct_id")
MAX_USER_VALUES = 50  # a user attribute with more values than this, or mostly unique values, is not one
SKEW = 10  # a group more than this many times the other: odds ratios swing on a few people

_COLUMNS = ["candidate_type", "candidate", "property", "value", "successes_seen", "failures_seen", "successes",
            "failures", "odds_ratio", "odds_ratio_low", "odds_ratio_high", "phi", "p_value", "p_adjusted",
            "conversion_seen", "conversion_seen_low", "conversion_seen_high", "conversion_not_seen",
            "conversion_not_seen_low", "conversion_not_seen_high", "skewed"]
_UNITS = {"successes_seen": "count", "failures_seen": "count", "successes": "count", "failures": "count",
          "odds_ratio": "ratio", "odds_ratio_low": "ratio", "odds_ratio_high": "ratio", "phi": "number",
          "p_value": "p_value", "p_adjusted": "p_value", "conversion_seen": "rate", "conversion_seen_low": "rate",
          "conversion_seen_high": "rate", "conversion_not_seen": "rate", "conversion_not_seen_low": "rate",
          "conversion_not_seen_high": "rate", "candidate_type": "text", "candidate": "text", "property": "text",
          "value": "text"}
_HEADERS = {"candidate": "did or was", "successes_seen": "converters who did", "failures_seen": "non-converters who did",
            "p_adjusted": "p (Holm)", "conversion_seen": "conversion if did", "conversion_not_seen": "conversion if not"}


def _target_index(result: FunnelResult, target_step: int) -> int:
    """The target as a 1-based step number (negative counts from the end: -1 is the last step)."""
    n = len(result.steps)
    k = n + 1 + target_step if target_step < 0 else target_step
    if not 2 <= k <= n:
        raise EventDataError(f"target_step={target_step}: the funnel has steps 1..{n}; the target must be a step after "
                             "the first (negative numbers count from the end, -1 is the last).")
    return k


def outcome_groups(result: FunnelResult, target_step: int = -1) -> pd.DataFrame:
    """Every step-1 entrant of ``result`` with ``user_id``, ``start``, ``end`` (when their span ends: the target
    step's time for converters, start + window for the others) and ``group``: ``"success"``, ``"failure"`` or
    ``"in_progress"`` (window still open at ``observed_until``: neither).

    Examples
    --------
    >>> from helpers.funnel import compute_funnel
    >>> toy = pd.DataFrame({"user_id": ["a", "a", "b"], "event": ["visit", "buy", "visit"],
    ...                     "timestamp": pd.to_datetime(["2025-01-01", "2025-01-02", "2025-01-01"], utc=True)})
    >>> outcome_groups(compute_funnel(toy, ["visit", "buy"], conversion_window="1D"))["group"].tolist()
    ['success', 'failure']
    """
    k = _target_index(result, target_step)
    pu = result.per_user
    success = (pu["furthest_step"] >= k).to_numpy()
    start = pu["attempt_start"]
    waiting = ~success & (start > result.observed_until - result.conversion_window).to_numpy()
    end = start + result.conversion_window
    end = end.where(~pd.Series(success, index=pu.index), pu[f"step_{k}_at"])
    group = np.where(success, "success", np.where(waiting, "in_progress", "failure"))
    # the Series themselves: to_numpy() on tz-aware times builds one Timestamp object per person
    return pd.DataFrame({"user_id": pu["user_id"].to_numpy(), "start": start.reset_index(drop=True),
                         "end": end.reset_index(drop=True), "group": group})


def event_property_columns(events: pd.DataFrame | ibis.Table) -> list[str]:
    """The event columns read as properties by default: ``channel`` and the extra text, boolean and integer
    columns, not the canonical ones (``session_id``, ``value``...) or ids.

    Examples
    --------
    >>> event_property_columns(pd.DataFrame({"user_id": ["a"], "event": ["x"], "timestamp": [pd.Timestamp(0, tz="UTC")],
    ...                                      "channel": ["ads"], "page": ["home"], "anonymous_id": ["d1"]}))
    ['channel', 'page']
    """
    return _property_columns(as_ibis(events), None)


def _property_columns(t: ibis.Table, properties: Sequence[str] | None) -> list[str]:
    if properties is not None:
        missing = [p for p in properties if p not in t.columns]
        if missing:
            raise EventDataError(f"properties {missing} are not columns of the events ({', '.join(t.columns)}).")
        return list(properties)
    schema = t.schema()
    return [c for c in t.columns if c not in CANONICAL_CORE and c not in ID_LIKE and not c.endswith("_id")
            and (schema[c].is_string() or schema[c].is_boolean() or schema[c].is_integer())]


def _seen_counts(t: ibis.Table, spans: pd.DataFrame, step_names: set[str], kinds: Sequence[str],
                 properties: list[str]) -> pd.DataFrame:
    """Distinct persons per (candidate_type, property, value, success) who saw the candidate in their span: one
    query over the events joined to the spans."""
    w = ibis.memtable(pa.table({"_u": pa.array(spans["user_id"].astype(str).to_numpy(), pa.string()),
                                "_lo": pa.Array.from_pandas(spans["start"]),
                                "_hi": pa.Array.from_pandas(spans["end"]),
                                "_s": pa.array(spans["group"].to_numpy() == "success")}))
    j = t.inner_join(w, t.user_id == w._u)
    j = j.filter((j.timestamp >= j._lo) & (j.timestamp <= j._hi))
    parts = []
    if "event" in kinds:
        ev = j.filter(~j.event.isin(sorted(step_names))) if step_names else j
        parts.append(ev.group_by(value=ev.event, _s=ev._s).aggregate(n=ev.user_id.nunique()).mutate(
            candidate_type=ibis.literal("event"), property=ibis.null("string")))
    if "event_property" in kinds:
        base = j.filter(~j.event.isin(sorted(step_names))) if step_names else j
        for p in properties:
            sel = base.filter(base[p].notnull())
            parts.append(sel.group_by(value=sel[p].cast("string"), _s=sel._s).aggregate(n=sel.user_id.nunique()).mutate(
                candidate_type=ibis.literal("event_property"), property=ibis.literal(p)))
    if not parts:
        return pd.DataFrame(columns=["candidate_type", "property", "value", "_s", "n"])
    q = ibis.union(*parts, distinct=False) if len(parts) > 1 else parts[0]
    return q.select("candidate_type", "property", "value", "_s", "n").to_pyarrow().to_pandas()


def _user_counts(spans: pd.DataFrame, user_table: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Persons per (attribute, value, success) from a user table; attributes with too many values are skipped."""
    if "user_id" not in user_table.columns:
        raise EventDataError(f"user_table needs a user_id column (it has {', '.join(map(str, user_table.columns))}).")
    users = user_table.assign(user_id=user_table["user_id"].astype(str)).drop_duplicates("user_id")
    people = spans[["user_id", "group"]].assign(user_id=spans["user_id"].astype(str)).merge(users, on="user_id",
                                                                                            how="left")
    rows, skipped = [], []
    for col in [c for c in users.columns if c != "user_id"]:
        values = people[col]
        distinct, known_count = values.nunique(dropna=True), int(values.notna().sum())
        # an id, an e-mail or a free text: too many values to be a trait, and not for a report
        if distinct > MAX_USER_VALUES or (distinct > 5 and distinct > known_count / 2):
            skipped.append(col)
            continue
        known = values.notna()
        g = pd.DataFrame({"value": values[known].astype(str), "_s": people.loc[known, "group"] == "success"})
        counted = g.groupby(["value", "_s"]).size().rename("n").reset_index()
        rows.append(counted.assign(candidate_type="user_property", property=str(col)))
    if not rows:
        return pd.DataFrame(columns=["candidate_type", "property", "value", "_s", "n"]), skipped
    return pd.concat(rows, ignore_index=True), skipped


def conversion_drivers(
    events: pd.DataFrame | ibis.Table,
    result: FunnelResult,
    *,
    target_step: int = -1,
    candidates: Sequence[str] = ("event", "event_property", "user_property"),
    prior: float = 1,
    min_users: int = 25,
    min_share: float = 0.02,
    user_table: pd.DataFrame | None = None,
    properties: Sequence[str] | None = None,
    ignore: Sequence[str] = (),
) -> pd.DataFrame:
    """What converters did that non-converters did not (rules in the module docstring).

    ``target_step``: the step that counts as converting (1-based; -1 the last).
    ``properties``: the event property columns to read (default: ``channel``
    and the extra text, boolean and integer columns, not ids). ``ignore``:
    user attributes and event properties left out (those that record the
    outcome itself, such as a paid plan in a purchase funnel). One row per
    candidate kept, sorted by odds ratio (strongest positive first);
    ``table.attrs`` holds ``successes``, ``failures``, ``in_progress`` (left
    out), ``dropped`` (candidates below the minimum), ``skewed`` and
    ``skipped_user_properties``.

    Examples
    --------
    >>> from helpers.funnel import compute_funnel
    >>> ts = pd.Timestamp("2025-01-01", tz="UTC")
    >>> rows = [(f"u{i}", e, ts + pd.Timedelta(hours=h)) for i in range(20)
    ...         for e, h in [("visit", 0)] + ([("tour", 1)] if i < 5 else []) + ([("buy", 2)] if i < 10 else [])]
    >>> rows.append(("late", "visit", ts + pd.Timedelta(days=30)))
    >>> ev = pd.DataFrame(rows, columns=["user_id", "event", "timestamp"])
    >>> d = conversion_drivers(ev, compute_funnel(ev, ["visit", "buy"], conversion_window="7D"), min_users=1)
    >>> d[["candidate", "successes_seen", "failures_seen", "odds_ratio"]].values.tolist()
    [['tour', 5, 0, 11.0]]
    >>> d.attrs["in_progress"]
    1
    """
    unknown = [c for c in candidates if c not in ("event", "event_property", "user_property")]
    if unknown:
        raise EventDataError(f"candidates {unknown}: choose from 'event', 'event_property', 'user_property'.")
    if prior < 0:
        raise EventDataError(f"prior must not be negative, got {prior!r}.")
    k = _target_index(result, target_step)
    spans = outcome_groups(result, target_step)
    in_progress = int((spans["group"] == "in_progress").sum())
    spans = spans[spans["group"] != "in_progress"].reset_index(drop=True)
    S = int((spans["group"] == "success").sum())
    F = int((spans["group"] == "failure").sum())
    attrs = {"successes": S, "failures": F, "in_progress": in_progress, "dropped": 0, "target_step": k,
             "target": result.steps[k - 1].label, "skewed": bool(S and F and (S / F > SKEW or F / S > SKEW)),
             "skipped_user_properties": []}
    parts = []
    if S and F and ({"event", "event_property"} & set(candidates)):
        t = as_ibis(events)
        step_names = {e for s in result.steps for e in s.events if e != "*"}
        props = [c for c in _property_columns(t, properties) if c not in ignore] if "event_property" in candidates else []
        parts.append(_seen_counts(t, spans, step_names, candidates, props))
    if S and F and "user_property" in candidates and user_table is not None:
        kept = user_table.drop(columns=[c for c in ignore if c in user_table.columns and c != "user_id"])
        counted, attrs["skipped_user_properties"] = _user_counts(spans, kept)
        parts.append(counted)
    counts = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        columns=["candidate_type", "property", "value", "_s", "n"])
    wide = counts.pivot_table(index=["candidate_type", "property", "value"], columns="_s", values="n", aggfunc="sum",
                              fill_value=0, dropna=False) if len(counts) else pd.DataFrame()
    if len(wide):
        wide = wide.reindex(columns=[True, False], fill_value=0).reset_index()
        wide = wide.rename(columns={True: "successes_seen", False: "failures_seen"})
        wide = wide[(wide["successes_seen"] + wide["failures_seen"]) > 0]
    table = _score(wide, S, F, prior, min_users, min_share, attrs)
    table.attrs.update(attrs)
    return declare(table, _UNITS, hidden=["property", "value", "successes", "failures", "skewed"], headers=_HEADERS)


def _score(wide: pd.DataFrame, S: int, F: int, prior: float, min_users: int, min_share: float,
           attrs: dict) -> pd.DataFrame:
    if not len(wide):
        return pd.DataFrame({c: pd.Series(dtype=float if c not in ("candidate_type", "candidate", "property", "value")
                                          else object) for c in _COLUMNS})
    threshold = min(min_users, min_share * (S + F))
    a_all, b_all = wide["successes_seen"].to_numpy(float), wide["failures_seen"].to_numpy(float)
    keep = (a_all + b_all) >= threshold
    attrs["dropped"] = int((~keep).sum())
    wide = wide[keep].reset_index(drop=True)
    a, b = wide["successes_seen"].to_numpy(float), wide["failures_seen"].to_numpy(float)
    odds = (a + prior) * (F - b + prior) / ((S - a + prior) * (b + prior))
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.sqrt(1 / (a + prior) + 1 / (F - b + prior) + 1 / (S - a + prior) + 1 / (b + prior))
        phi = (a * (F - b) - (S - a) * b) / np.sqrt(S * F * (a + b) * (S - a + F - b))
    p = np.array([stats.fisher_exact([[int(x), int(S - x)], [int(y), int(F - y)]])[1] for x, y in zip(a, b)])
    seen_lo, seen_hi = wilson_interval(a, a + b)
    not_lo, not_hi = wilson_interval(S - a, S - a + F - b)
    with np.errstate(divide="ignore", invalid="ignore"):
        table = pd.DataFrame({
            "candidate_type": wide["candidate_type"].astype(str).to_numpy(),
            "candidate": np.where(wide["candidate_type"] == "event", wide["value"].astype(str),
                                  wide["property"].astype(str) + " = " + wide["value"].astype(str)),
            "property": wide["property"].to_numpy(dtype=object), "value": wide["value"].astype(str).to_numpy(),
            "successes_seen": a.astype(np.int64), "failures_seen": b.astype(np.int64), "successes": S, "failures": F,
            "odds_ratio": odds, "odds_ratio_low": odds * np.exp(-Z95 * se), "odds_ratio_high": odds * np.exp(Z95 * se),
            "phi": phi, "p_value": p, "p_adjusted": holm_adjust(p),
            "conversion_seen": a / (a + b), "conversion_seen_low": seen_lo, "conversion_seen_high": seen_hi,
            "conversion_not_seen": (S - a) / (S - a + F - b), "conversion_not_seen_low": not_lo,
            "conversion_not_seen_high": not_hi, "skewed": attrs["skewed"]})
    return table.sort_values(["odds_ratio", "candidate"], ascending=[False, True], kind="mergesort").reset_index(drop=True)


def drivers_headline(drivers: pd.DataFrame, alpha: float = 0.05) -> str:
    """One sentence on the strongest significant driver each way (or why there is none), with the population.

    Examples
    --------
    >>> drivers_headline(pd.DataFrame(columns=["candidate"]))
    'No behaviour was seen by enough people to compare converters with the others.'
    """
    at = drivers.attrs
    if not len(drivers):
        if at.get("successes", 1) == 0 or at.get("failures", 1) == 0:
            return (f"Drivers need both converters and non-converters whose window has closed; this funnel has "
                    f"{at.get('successes', 0):,} and {at.get('failures', 0):,}.")
        return "No behaviour was seen by enough people to compare converters with the others."
    sig = drivers[drivers["p_adjusted"] < alpha]
    base = (f"Among {at['successes'] + at['failures']:,} people whose window had closed ({at['successes']:,} reached "
            f"{at['target']}; {at['in_progress']:,} still in their window were left out)")
    if not len(sig):
        return base + f", no behaviour separates converters from the others after correcting for {len(drivers)} tests."
    texts = []
    up, down = sig[sig["odds_ratio"] > 1], sig[sig["odds_ratio"] < 1]
    if len(up):
        r = up.iloc[0]
        texts.append(f"those who did {r['candidate']} converted at {r['conversion_seen']:.1%} against "
                     f"{r['conversion_not_seen']:.1%} for those who did not (odds ratio {r['odds_ratio']:.1f})")
    if len(down):
        r = down.iloc[-1]
        texts.append(f"{r['candidate']} goes with lower conversion ({r['conversion_seen']:.1%} against "
                     f"{r['conversion_not_seen']:.1%}, odds ratio {r['odds_ratio']:.2f})")
    note = " These are associations, not proof that the behaviour causes conversion."
    return base + ", " + "; ".join(texts) + "." + note


def signal_outcome(source: FunnelResult | pd.DataFrame, *, step: int = -1,
                   retained_days: float | None = None) -> pd.DataFrame:
    """An outcome table for :func:`early_signals`: ``user_id``, ``start``, ``outcome``, censored people left out.

    From a :class:`FunnelResult`: reached ``step`` (1-based; -1 the last) in the counted attempt, started at the
    attempt's start; people who did not and whose window is still open are left out. From
    :func:`helpers.retention.user_lifetimes` with ``retained_days``: still there after that many days
    (``duration_days`` above it); people not churned but observed for less than that are left out.

    Examples
    --------
    >>> life = pd.DataFrame({"user_id": ["a", "b", "c"], "start": pd.to_datetime(["2025-01-01"] * 3, utc=True),
    ...                      "churned": [True, False, False], "duration_days": [3.0, 40.0, 10.0]})
    >>> signal_outcome(life, retained_days=30)[["user_id", "outcome"]].values.tolist()
    [['a', False], ['b', True]]
    """
    if isinstance(source, FunnelResult):
        g = outcome_groups(source, step)
        g = g[g["group"] != "in_progress"]
        return pd.DataFrame({"user_id": g["user_id"].astype(str).to_numpy(), "start": g["start"].to_numpy(),
                             "outcome": (g["group"] == "success").to_numpy()})
    if retained_days is None:
        raise EventDataError("signal_outcome: give retained_days for a lifetimes table (or pass a FunnelResult).")
    missing = [c for c in ("user_id", "start", "churned", "duration_days") if c not in source.columns]
    if missing:
        raise EventDataError(f"signal_outcome: a lifetimes table needs user_id, start, churned, duration_days "
                             f"(missing {missing}); use helpers.retention.user_lifetimes.")
    retained = source["duration_days"] > retained_days
    known = retained | source["churned"].astype(bool)
    kept = source[known]
    return pd.DataFrame({"user_id": kept["user_id"].astype(str).to_numpy(), "start": kept["start"].to_numpy(),
                         "outcome": retained[known].to_numpy()})


def early_signals(events: pd.DataFrame | ibis.Table, outcome: FunnelResult | pd.DataFrame, *, max_times: int = 10,
                  max_days: int = 14, events_to_test: Sequence[str] | None = None) -> pd.DataFrame:
    """Amplitude Compass / Mixpanel Signal: "did X at least k times within d days of the start" against an outcome.

    ``outcome``: a :class:`FunnelResult` (outcome: reached its last step; start: the attempt's start; people
    still in their window are left out), or a table with ``user_id``, ``start`` and a boolean ``outcome``, as
    :func:`signal_outcome` makes from a funnel step or from ``user_lifetimes`` (retained past a day).
    For every event, k in 1..``max_times`` and d in 1..``max_days``: the share of people at or above the
    threshold, precision (outcome rate above it), recall (share of the outcome's people above it) and phi.
    Returns the grid with ``best`` marking each event's (k, d) of the largest phi.

    Examples
    --------
    >>> ts = pd.Timestamp("2025-01-01", tz="UTC")
    >>> ev = pd.DataFrame({"user_id": ["a", "a", "b", "c"], "event": ["x", "x", "x", "y"],
    ...                    "timestamp": [ts, ts + pd.Timedelta(days=1), ts, ts]})
    >>> out = pd.DataFrame({"user_id": ["a", "b", "c"], "start": [ts] * 3, "outcome": [True, False, False]})
    >>> g = early_signals(ev, out, max_times=2, max_days=2)
    >>> g[g["best"] & (g["event"] == "x")][["times", "days", "phi"]].to_dict("records")
    [{'times': 2, 'days': 2, 'phi': 1.0}]
    """
    leaks: list[str] = []
    if isinstance(outcome, FunnelResult):
        leaks = [e for e in outcome.steps[-1].events if e != "*"]  # the outcome's own event is not a signal of it
        g = outcome_groups(outcome, -1)
        g = g[g["group"] != "in_progress"]
        people = pd.DataFrame({"user_id": g["user_id"].astype(str), "start": g["start"],
                               "outcome": g["group"] == "success"})
    else:
        missing = [c for c in ("user_id", "start", "outcome") if c not in outcome.columns]
        if missing:
            raise EventDataError(f"early_signals: the outcome table needs user_id, start and outcome (missing {missing}).")
        people = outcome[["user_id", "start", "outcome"]].assign(user_id=outcome["user_id"].astype(str),
                                                                 outcome=outcome["outcome"].astype(bool))
    if max_times < 1 or max_days < 1:
        raise EventDataError("max_times and max_days must be at least 1.")
    t = as_ibis(events)
    w = ibis.memtable(pa.table({"_u": pa.array(people["user_id"].to_numpy(), pa.string()),
                                "_start": pa.Array.from_pandas(pd.to_datetime(people["start"], utc=True)
                                                               .reset_index(drop=True))}))
    j = t.inner_join(w, t.user_id == w._u)
    if events_to_test is not None:
        j = j.filter(j.event.isin(list(events_to_test)))
    elif leaks:
        j = j.filter(~j.event.isin(leaks))
    # the day of the start an event falls on: 1 = within the first 24 h
    day = ((j.timestamp.epoch_seconds() - j._start.epoch_seconds()) // 86400 + 1).cast("int64")
    j = j.mutate(_day=day).filter((day >= 1) & (day <= max_days))
    per_day = j.group_by(["user_id", "event", "_day"]).aggregate(n=j.count()).to_pyarrow().to_pandas()
    n_people = len(people)
    n_pos = int(people["outcome"].sum())
    rows = []
    if len(per_day):
        per_day["user_id"] = per_day["user_id"].astype(str)
        wide = per_day.pivot_table(index=["event", "user_id"], columns="_day", values="n", aggfunc="sum",
                                   fill_value=0).reindex(columns=range(1, max_days + 1), fill_value=0)
        cum = np.cumsum(wide.to_numpy(), axis=1)  # events by the end of day d
        ev_names = wide.index.get_level_values(0).to_numpy()
        positive = wide.index.get_level_values(1).map(dict(zip(people["user_id"], people["outcome"]))).to_numpy(bool)
        times = np.arange(1, max_times + 1)
        for name in pd.unique(ev_names):
            sel = ev_names == name
            c, pos = cum[sel], positive[sel]
            # above[k, d]: people with at least k events by day d (people without the event are below every k)
            above = (c[None, :, :] >= times[:, None, None])
            n_above = above.sum(axis=1)
            tp = (above & pos[None, :, None]).sum(axis=1)
            for ki, k in enumerate(times):
                for d in range(max_days):
                    rows.append((name, int(k), d + 1, int(n_above[ki, d]), int(tp[ki, d])))
    grid = pd.DataFrame(rows, columns=["event", "times", "days", "above", "above_with_outcome"])
    a, x = grid["above_with_outcome"].to_numpy(float), grid["above"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        b = x - a
        S, F = n_pos, n_people - n_pos
        grid["share_above"] = x / n_people
        grid["precision"] = a / x
        grid["recall"] = a / S if S else np.nan
        grid["phi"] = (a * (F - b) - (S - a) * b) / np.sqrt(S * F * x * (n_people - x))
    grid["phi"] = grid["phi"].astype(float)
    best = grid.assign(_p=grid["phi"].fillna(-np.inf)).sort_values(["event", "_p", "times", "days"],
                                                                     ascending=[True, False, True, True])
    grid["best"] = False
    grid.loc[best.groupby("event").head(1).index, "best"] = True
    grid.attrs.update({"people": n_people, "with_outcome": n_pos})
    return declare(grid, {"above": "count", "above_with_outcome": "count", "share_above": "rate", "precision": "rate",
                          "recall": "rate", "phi": "number", "times": "count", "days": "count"})
