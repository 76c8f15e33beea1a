"""The funnel's fast path on DuckDB: one sorted fetch of the step events, then array passes over moments.

The portable engine (:mod:`helpers.funnel.engine`) states the rules as ibis
window functions and joins, one hop per step, so they run on Spark too. On
DuckDB the same rules run faster as two stages:

1. **One query** reads only the step (and exclusion) events up to
   ``observed_until``, with a bit per step definition, sorted by user and
   time. Strict funnels also need the user's next moment of any event after
   each step moment; rather than a window over every event (a sort of the
   whole table), the gaps between a user's consecutive fetched moments that
   are at most the window long go back to DuckDB, and one semi-join on user
   and time range says which of them hold some other event.
2. **NumPy over moments** (a user's distinct timestamps): per-moment counts of
   each set of steps (Hall's condition), a pointer from every moment to the
   user's next moment of each step, then every attempt advances one step at a
   time as whole-array operations (no loop over users or events). Exclusions
   are prefix counts of the excluded event over moments; the best attempt per
   user is a segmented maximum.

It follows the portable engine rule for rule (the tests run both on the same
hand-made logs and against the same brute-force reference): ordered and strict
attempts start at each moment of step 1 and take each step at the current
moment when Hall's condition holds for the run of steps sharing it, else at
the step's next moment; any-order attempts start at every funnel moment and
count separate occurrences within the window.
"""

from __future__ import annotations

from typing import Sequence

import ibis
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from helpers.funnel.plan import Plan
from helpers.io import epoch_us

NO_MOMENT = -1  # a step not reached: no moment index
NO_TIME = np.iinfo(np.int64).min  # no event time (epoch microseconds may be negative)


def fetch(t: ibis.Table, steps: list, plan: Plan, order: str, by_column: str | None,
          exclusions: Sequence[tuple[str, int, int]], window_us: int = 0) -> tuple[pa.Table, list[str]]:
    """The rows the funnel reads, sorted by user, time and segment, and the step event names the data has.

    Columns: ``user_id``, ``us`` (epoch microseconds), ``m`` (a bit per step
    definition that the event matches), ``x`` (a bit per excluded event name),
    ``seg`` (the segment where it may be read), ``nxt`` (strict only: the user's
    next moment of any event after this row's, when that is the next fetched
    moment, holds no other event before it, is at most ``window_us`` later
    and holds a step that can follow one of this moment's; else NO_TIME: a
    later step there is not next, out of the window or never walked to).
    """
    wanted = sorted({e for s in steps for e in s.events if e != "*"})
    excluded = sorted({e for e, _, _ in exclusions})
    everything = any("*" in s.events for s in steps)
    # A definition's bit proves its name is in the data when it has one name and no filter; otherwise the
    # rows also carry which wanted name they have (a filter may hide a name that the data has).
    by_bits = all(len(spec.events) == 1 and not spec.where for spec in plan.specs)
    m = sum((ibis.cases((spec.matches(t), 1 << j), else_=0) for j, spec in enumerate(plan.specs)),
            ibis.literal(0, type="int64"))
    x = sum((ibis.cases((t.event == e, 1 << q), else_=0) for q, e in enumerate(excluded)), ibis.literal(0, type="int64"))
    cols = {"user_id": t.user_id, "us": epoch_us(t.timestamp), "m": m.cast("int64"), "x": x.cast("int64")}
    if wanted and not by_bits:
        cols["ev"] = ibis.cases(*[(t.event == w, i) for i, w in enumerate(wanted)], else_=-1).cast("int16")
    if by_column:
        # ordered and strict read the segment at the attempt's step-1 event, any order at its first funnel event
        reads = (m & (1 << plan.step_spec[0])) != 0 if order != "any" else m != 0
        cols["seg"] = ibis.cases((reads, t[by_column].cast("string")), else_=None)
    rows = t
    if not everything:
        rows = rows.filter(t.event.isin(wanted + excluded))
    rows = rows.select(**cols)
    keys = ["user_id", "us"] + ([ibis.asc("seg", nulls_first=False)] if by_column else [])
    fetched = rows.order_by(keys).to_pyarrow()
    if order == "strict":
        fetched = fetched.append_column("nxt", _next_clean_moment(t, fetched, window_us, plan.step_spec))
    if everything:  # no filter on names: every wanted name present in the data has rows here
        present = set(wanted) & set(pc.unique(t.select("event").to_pyarrow()["event"]).to_pylist()) if wanted else set()
    elif by_bits:
        seen = int(np.bitwise_or.reduce(fetched["m"].to_numpy())) if fetched.num_rows else 0
        present = {spec.events[0] for j, spec in enumerate(plan.specs) if seen >> j & 1}
    else:
        present = {wanted[c] for c in np.unique(fetched["ev"].to_numpy()) if c >= 0}
    return fetched, sorted(set(wanted) - present)


def _next_clean_moment(t: ibis.Table, rows: pa.Table, window_us: int, step_spec: Sequence[int]) -> pa.Array:
    """Per fetched row: the user's next fetched moment when no other event lies strictly before it, it is at
    most ``window_us`` later (the only later moment a strict step can take) and some step there can follow
    one here, else NO_TIME."""
    us = rows["us"].to_numpy()
    n = len(us)
    if n == 0:
        return pa.array([], pa.int64())
    users = rows["user_id"]
    same_user = np.zeros(n, dtype=bool)
    same_user[1:] = pc.equal(users.slice(1), users.slice(0, n - 1)).to_numpy(zero_copy_only=False)
    new_moment = ~same_user
    new_moment[1:] |= us[1:] != us[:-1]
    ms = np.flatnonzero(new_moment)
    following = np.append(ms[1:], n)  # first row of the next moment
    has_next = following < n
    has_next[has_next] &= same_user[following[has_next]]
    hi = np.where(has_next, us[np.minimum(following, n - 1)], NO_TIME)
    lo = us[ms]
    short = has_next & (hi - lo <= window_us)
    # Only a gap from a moment holding some step k to one holding step k + 1 can be walked by an attempt
    # (the current moment always holds the step last taken); every other nxt is never compared.
    bits = np.bitwise_or.reduceat(rows["m"].to_numpy(), ms)
    following_bits = np.append(bits[1:], 0)
    walkable = np.zeros(len(ms), dtype=bool)
    for prev, step in zip(step_spec[:-1], step_spec[1:]):
        walkable |= ((bits >> prev) & 1).astype(bool) & ((following_bits >> step) & 1).astype(bool)
    short &= walkable
    asked = np.flatnonzero(short & (hi - lo > 1))  # a 1 microsecond gap has no room for another event
    gaps = ibis.memtable(pa.table({"user_id": users.take(pa.array(ms[asked])), "lo": lo[asked], "hi": hi[asked],
                                   "g": asked}))
    other = t.select(user_id=t.user_id, at=epoch_us(t.timestamp))
    dirty = gaps.semi_join(other, [gaps.user_id == other.user_id, other.at > gaps.lo, other.at < gaps.hi])
    nxt = np.where(short, hi, NO_TIME)
    nxt[dirty.select("g").to_pyarrow()["g"].to_numpy()] = NO_TIME
    return pa.array(nxt[np.cumsum(new_moment) - 1])


def attempts(rows: pa.Table, plan: Plan, window_us: int, order: str,
             exclusions: Sequence[tuple[str, int, int]]) -> pd.DataFrame:
    """The best attempt of every user who did step 1: ``user_id``, ``start``, ``seg``, ``reached``, ``t_1..t_n``."""
    n = len(plan.step_spec)
    m_all = rows["m"].to_numpy()
    x_all = rows["x"].to_numpy()
    keep = (m_all != 0) | (x_all != 0)
    if not keep.all():
        rows = rows.filter(pa.array(keep))
        m_all, x_all = m_all[keep], x_all[keep]
    if rows.num_rows == 0:
        return _empty(n)
    us = rows["us"].to_numpy()
    users = rows["user_id"]
    new_user = np.ones(len(us), dtype=bool)
    new_user[1:] = pc.not_equal(users.slice(1), users.slice(0, len(us) - 1)).to_numpy(zero_copy_only=False)
    new_moment = new_user.copy()
    new_moment[1:] |= us[1:] != us[:-1]
    ms = np.flatnonzero(new_moment)  # first row of each moment
    mu = np.cumsum(new_user[ms], dtype=np.int64)  # user number of each moment (a new user starts a new moment)
    mu -= 1
    mt = us[ms]
    counts = _moment_counts(m_all, ms, plan)
    single = {sub[0]: counts[i] for i, sub in enumerate(plan.subsets) if len(sub) == 1}
    funnel_moment = sum(single.values()) > 0

    if order == "any":
        starts, times = _any_order(plan, single, counts, funnel_moment, mu, mt, window_us)
    else:
        next_any = None
        if order == "strict":
            next_any = rows["nxt"].to_numpy()[ms]  # every row of a moment carries the same nxt
        starts, times = _ordered(plan, single, counts, mu, mt, window_us, next_any)

    valid = np.ones(len(starts), dtype=bool)
    if exclusions:
        excluded = sorted({e for e, _, _ in exclusions})
        for event, i, j in exclusions:
            bit = 1 << excluded.index(event)
            cum = np.cumsum(np.add.reduceat(((x_all & bit) != 0).astype(np.int64), ms))
            lo, hi = np.minimum(times[i], times[j]), np.maximum(times[i], times[j])
            both = times[j] != NO_MOMENT
            lo_, hi_ = np.where(both, lo, 0), np.where(both, hi, 0)
            between = np.where(hi_ > lo_, cum[np.maximum(hi_ - 1, 0)] - cum[lo_], 0)
            valid &= ~(both & (between > 0))
    starts, times = starts[valid], [tk[valid] for tk in times]
    reached = sum((tk != NO_MOMENT).astype(np.int64) for tk in times)

    # best attempt per user: the furthest step, the earliest start among ties (attempts are in start order)
    au = mu[starts]
    if len(au) == 0:
        return _empty(n)
    first = np.flatnonzero(np.r_[True, au[1:] != au[:-1]])
    best_reach = np.maximum.reduceat(reached, first)
    is_best = reached == np.repeat(best_reach, np.diff(np.r_[first, len(au)]))
    cand = np.flatnonzero(is_best)
    pick = cand[np.r_[True, au[cand][1:] != au[cand][:-1]]]

    start_m = starts[pick]
    first_rows = pa.array(ms[start_m])
    # to_numpy: Python strings without to_pandas' deduplication pass (several times faster)
    out = {"user_id": users.take(first_rows).to_numpy(zero_copy_only=False),
           "start": _timestamps(mt[start_m]),
           "seg": (rows["seg"].take(first_rows).to_numpy(zero_copy_only=False) if "seg" in rows.column_names
                   else np.full(len(pick), None, dtype=object)),
           "reached": reached[pick]}
    for k in range(n):
        tk = times[k][pick]
        out[f"t_{k + 1}"] = _timestamps(np.where(tk == NO_MOMENT, 0, mt[np.maximum(tk, 0)]), tk == NO_MOMENT)
    return pd.DataFrame(out, copy=False)


def _ordered(plan: Plan, single: dict, counts: list, mu: np.ndarray, mt: np.ndarray, window_us: int,
             next_any: np.ndarray | None) -> tuple[np.ndarray, list[np.ndarray]]:
    """Ordered / strict attempts: one per moment of step 1; each step at the current moment when the run of steps
    sharing it can take separate events there (Hall), else at the step's next moment."""
    spec = plan.step_spec
    n = len(spec)
    flagged = {j: np.flatnonzero(single[j] > 0) for j in set(spec[1:])}
    starts = np.flatnonzero(single[spec[0]] > 0)
    cur = starts.copy()
    deadline = mt[starts] + window_us
    run = np.zeros(len(starts), dtype=np.int64)
    ok = np.ones(len(starts), dtype=bool)
    times = [starts.copy()]
    for k in range(1, n):
        j = spec[k]
        by_need: dict[tuple, list[int]] = {}
        for r in range(k):
            by_need.setdefault(tuple(plan.needs(spec[r:k + 1], j)), []).append(r)
        same = np.zeros(len(starts), dtype=bool)
        for need, runs in by_need.items():
            holds = np.ones(len(starts), dtype=bool)
            for i, c in need:
                holds &= counts[i][cur] >= c
            same |= holds & (np.isin(run, runs) if len(by_need) > 1 else True)
        later = _next_flagged(flagged[j], cur, mu)
        cand = np.where(same, cur, later)
        step_ok = ok & (cand != NO_MOMENT)
        step_ok &= np.where(step_ok, mt[np.maximum(cand, 0)], 0) <= deadline
        if next_any is not None:  # strict: a later step must be at the user's very next moment of any event
            at_next = (later != NO_MOMENT) & (mt[np.maximum(later, 0)] == next_any[cur])
            step_ok &= same | at_next
            if k < n - 1:
                # A step that could share the moment could also take the very next one, and which reaches further
                # depends on the steps after it: such an attempt forks (rare: several step events at one moment).
                f = np.flatnonzero(ok & same & at_next & (mt[np.maximum(later, 0)] <= deadline))
                if len(f):
                    starts, deadline, cur, run = (np.r_[starts, starts[f]], np.r_[deadline, deadline[f]],
                                                  np.r_[cur, cur[f]], np.r_[run, run[f]])
                    times = [np.r_[tk, tk[f]] for tk in times]
                    cand, step_ok = np.r_[cand, later[f]], np.r_[step_ok, np.ones(len(f), bool)]
                    same = np.r_[same, np.zeros(len(f), bool)]
        times.append(np.where(step_ok, cand, NO_MOMENT))
        run = np.where(same, run, k)
        cur = np.where(step_ok, cand, cur)
        ok = step_ok
    # attempts in start order, then by the earliest step times: of a fork and its attempt reaching equally far,
    # the earlier steps win (the portable plan breaks the tie the same way)
    order = np.lexsort(times[::-1])
    return starts[order], [tk[order] for tk in times]


def _any_order(plan: Plan, single: dict, counts: list, funnel_moment: np.ndarray, mu: np.ndarray, mt: np.ndarray,
               window_us: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Any order: an attempt at every funnel moment; step k is reached when steps 1..k can take separate events
    within the window from the start, at the moment the first k had all happened."""
    spec = plan.step_spec
    starts = np.flatnonzero(funnel_moment)
    last = _window_end(mu, mt, window_us)[starts]  # the attempt's last moment within the window
    prefix = [np.concatenate([[0], np.cumsum(c, dtype=np.int64)]) for c in counts]
    inside = [p[last + 1] - p[starts] for p in prefix]
    ok = np.ones(len(starts), dtype=bool)
    completion = np.full(len(starts), NO_MOMENT, dtype=np.int64)
    times = []
    for k in range(len(spec)):
        for i, c in plan.needs(spec[:k + 1], spec[k]):
            ok &= inside[i] >= c
        first = _first_flagged_from(single[spec[k]] > 0, starts)
        completion = np.maximum(completion, np.where(first <= last, first, NO_MOMENT))
        times.append(np.where(ok, completion, NO_MOMENT))
    return starts, times


def _next_flagged(pos: np.ndarray, at: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """For every moment in ``at``, the same user's next later moment among ``pos`` (sorted; NO_MOMENT when none)."""
    nxt = np.append(pos, NO_MOMENT)[np.searchsorted(pos, at, side="right")]
    return np.where((nxt != NO_MOMENT) & (mu[np.maximum(nxt, 0)] == mu[at]), nxt, NO_MOMENT)


def _first_flagged_from(flag: np.ndarray, at: np.ndarray) -> np.ndarray:
    """For every index in ``at``, the first moment at or after it where ``flag`` holds (a huge index when none:
    the caller bounds it by the user's window). A running minimum from the end: one pass, no search."""
    index = np.where(flag, np.arange(len(flag), dtype=np.int64), np.iinfo(np.int64).max)
    return np.minimum.accumulate(index[::-1])[::-1][at]


def _window_end(mu: np.ndarray, mt: np.ndarray, window_us: int, key_limit: int = 2**62) -> np.ndarray:
    """For every moment, the user's last moment at most ``window_us`` later (inclusive).

    One ascending key over (user, time), ``user * span + time``, turns it into a single search; where that key
    would pass ``key_limit`` (many users over a long time range) the users go in blocks whose keys fit.
    """
    out = np.empty(len(mt), dtype=np.int64)
    if len(mt) == 0:
        return out
    t0 = int(mt.min())
    span = int(mt.max()) - t0 + window_us + 1
    users_per_block = max(1, key_limit // span)
    n_users = int(mu[-1]) + 1
    bounds = np.searchsorted(mu, np.append(np.arange(0, n_users, users_per_block), n_users))
    for lo, hi in zip(bounds[:-1], bounds[1:]):  # one block when the keys fit, as on most data
        if lo == hi:
            continue
        base = (mu[lo:hi] - mu[lo]).astype(np.int64) * span + (mt[lo:hi] - t0)
        out[lo:hi] = lo + np.searchsorted(base, base + window_us, side="right") - 1
    return out


def _moment_counts(m_all: np.ndarray, ms: np.ndarray, plan: Plan) -> list[np.ndarray]:
    """Per moment, how many of its rows match each subset of ``plan`` (rows of a moment are adjacent).

    Most moments are one row (ties are rare), so a moment's count is its first row's flag, plus the flags of the
    few rows that continue a moment, added where they belong (no running count over every row).
    """
    n_rows = len(m_all)
    if len(ms) < n_rows:
        first = np.zeros(n_rows, dtype=bool)
        first[ms] = True
        more = np.flatnonzero(~first)  # rows after the first of their moment
        more_moment = np.searchsorted(ms, more, side="right") - 1
    out = []
    for sub in plan.subsets:
        flag = (m_all & _bits(sub)) != 0
        if len(ms) == n_rows:
            out.append(flag.astype(np.int32))
            continue
        counts = flag[ms].astype(np.int32)
        np.add.at(counts, more_moment, flag[more])
        out.append(counts)
    return out


def _bits(sub: tuple[int, ...]) -> int:
    return sum(1 << j for j in sub)


def _timestamps(us: np.ndarray, missing: np.ndarray | None = None) -> pd.Series:
    """Epoch microseconds as tz-aware UTC nanoseconds, the unit the results carry (NaT where ``missing``)."""
    ns = us * 1000 if missing is None else np.where(missing, np.iinfo(np.int64).min, us * 1000)  # int64 min is NaT
    return pd.Series(ns.astype(np.int64, copy=False), dtype="datetime64[ns, UTC]")  # no copy: ns is ours


def _empty(n: int) -> pd.DataFrame:
    frame = {"user_id": pd.Series([], dtype=object), "start": _timestamps(np.array([], dtype=np.int64)),
             "seg": pd.Series([], dtype=object), "reached": np.array([], dtype=np.int64)}
    for k in range(n):
        frame[f"t_{k + 1}"] = _timestamps(np.array([], dtype=np.int64))
    return pd.DataFrame(frame)
