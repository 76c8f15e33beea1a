"""The funnel engine: compute_funnel and its result (the rules are in :mod:`helpers.funnel`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping, Sequence

import ibis
import numpy as np
import pandas as pd

from helpers.funnel import fast
from helpers.funnel.plan import make_plan
from helpers.io import EventDataError, as_ibis, epoch_us, observed_end, to_utc, to_utc_series
from helpers.units import declare

NONE_SEGMENT = "(none)"
Order = Literal["ordered", "strict", "any"]
Engine = Literal["auto", "fast", "portable"]

# What the result tables hold, for every page that shows them (helpers.units).
_TABLE_UNITS = {"users": "count", "conversion_from_start": "rate", "conversion_from_previous": "rate",
                "dropped": "count", "in_progress": "count", "median_time_from_previous": "duration",
                "median_time_from_start": "duration"}
_TABLE_HEADERS = {"users": "Users", "conversion_from_start": "Conversion from start",
                  "conversion_from_previous": "Conversion from previous step", "dropped": "Dropped",
                  "in_progress": "Still in progress", "median_time_from_previous": "Median time from previous step",
                  "median_time_from_start": "Median time from start"}



@dataclass(frozen=True)
class Step:
    """A funnel step: an event name (``"*"`` for any) with optional exact-match property filters.

    Examples
    --------
    >>> Step("page_view", where={"page": "pricing"}).label
    'page_view[page=pricing]'
    """

    event: str | tuple[str, ...]
    where: Mapping[str, Any] = field(default_factory=dict)
    name: str | None = None

    @property
    def events(self) -> tuple[str, ...]:
        """The event names the step takes (any of them)."""
        return self.event if isinstance(self.event, tuple) else (self.event,)

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        filters = ",".join(f"{k}={v}" for k, v in self.where.items())
        names = " or ".join(self.events)
        return f"{names}[{filters}]" if filters else names

    def key(self) -> tuple:
        return (tuple(sorted(self.events)), tuple(sorted((k, str(v)) for k, v in self.where.items())))

    def matches(self, t: ibis.Table) -> ibis.expr.types.BooleanValue:
        if "*" in self.events:
            cond = ibis.literal(True)
        else:
            cond = t.event == self.events[0] if len(self.events) == 1 else t.event.isin(list(self.events))
        for col, value in self.where.items():
            cond = cond & (t[col] == value)
        return cond


@dataclass
class FunnelResult:
    """A computed funnel.

    ``table``: one row per step (per segment when ``by``): ``step_index``
    (1-based), ``step``, ``users``, ``conversion_from_start``,
    ``conversion_from_previous``, ``dropped``, ``in_progress``,
    ``median_time_from_previous``, ``median_time_from_start``.
    ``per_user``: ``user_id``, ``furthest_step``, ``in_progress``,
    ``attempt_start``, the segment, and ``step_k_at`` for each reached step.
    """

    table: pd.DataFrame
    per_user: pd.DataFrame
    steps: list[Step]
    conversion_window: pd.Timedelta
    order: str
    by: str | None
    observed_until: pd.Timestamp
    events: ibis.Table | None = field(default=None, repr=False)  # the events counted (up to observed_until)
    absent_steps: list[str] = field(default_factory=list)  # step events the data does not have

    def _repr_html_(self) -> str:
        return self.table.to_html(index=False)

    def biggest_drop_step(self) -> str | None:
        """The label of the step after which most users went no further (not counting those still in
        progress; all segments pooled), or ``None`` when nobody dropped."""
        pu, n = self.per_user, len(self.steps)
        lost = [(int(((pu["furthest_step"] == k) & ~pu["in_progress"]).sum()), k) for k in range(1, n)]
        worst, k = max(lost) if lost else (0, 0)
        return self.steps[k - 1].label if worst else None

    def absent_note(self) -> str:
        """A sentence naming the steps whose events the data does not have (``""`` when every step is there)."""
        if not self.absent_steps:
            return ""
        return (f"The data has no {', '.join(self.absent_steps)} event, so nobody reaches the step(s) that need it: set "
                "the funnel's steps (the stage map's `funnel:` or the `steps` parameter) to events of your data.")

    def headline(self) -> str:
        """One sentence: overall conversion, the biggest drop-off, users still in progress (all segments pooled)."""
        pu, n = self.per_user, len(self.steps)
        started = len(pu)
        if not started:
            return "No user did the first step."
        done = int((pu["furthest_step"] >= n).sum())
        lost = [(int(((pu["furthest_step"] == k) & ~pu["in_progress"]).sum()), k) for k in range(1, n)]
        worst, k = max(lost) if lost else (0, 0)
        entered = int((pu["furthest_step"] >= k).sum()) if k else 0
        text = (f"Of {started:,} users who did {self.steps[0].label}, {done:,} ({done / started:.1%}) reached "
                f"{self.steps[-1].label} within {_readable(self.conversion_window)}")
        if worst:
            text += (f"; the most users are lost at {self.steps[k - 1].label} → {self.steps[k].label}: {worst:,} "
                     f"({worst / entered:.1%} of those who got there) went no further")
        waiting = int(pu["in_progress"].sum())
        return text + (f"; {waiting:,} are still within their window." if waiting else ".")

    def timing_headline(self) -> str:
        """One sentence: how long those who reached the last step took from the first (median and 90th percentile),
        and how long the last step itself takes.

        Examples
        --------
        >>> import pandas as pd
        >>> ev = pd.DataFrame({"user_id": ["a", "a", "b", "b"], "event": ["signup", "buy", "signup", "buy"],
        ...                    "timestamp": pd.to_datetime(["2025-01-01 00:00", "2025-01-01 02:00", "2025-01-01 00:00",
        ...                                                 "2025-01-01 04:00"], utc=True)})
        >>> compute_funnel(ev, ["signup", "buy"]).timing_headline()
        'The 2 users who reached buy took a median 3 h from signup (90% within 3 h 48 min).'
        """
        from helpers.units import human_duration

        pu, n = self.per_user, len(self.steps)
        done = pu[pu["furthest_step"] >= n]
        if done.empty or n < 2:
            return f"Nobody reached {self.steps[-1].label} yet, so there is no time to convert."
        total = done[f"step_{n}_at"] - done["step_1_at"]
        text = (f"The {len(done):,} users who reached {self.steps[-1].label} took a median "
                f"{human_duration(total.median())} from {self.steps[0].label} "
                f"(90% within {human_duration(total.quantile(0.9))})")
        if n > 2:
            last = done[f"step_{n}_at"] - done[f"step_{n - 1}_at"]
            text += (f"; the last step, {self.steps[-2].label} → {self.steps[-1].label}, takes a median "
                     f"{human_duration(last.median())}")
        return text + "."

    def tiles(self, finding: str = "Funnel") -> list:
        """The index's headline numbers: who did the first step, and the share reaching the last in the window.

        Examples
        --------
        >>> import pandas as pd
        >>> ev = pd.DataFrame({"user_id": ["a", "a", "b"], "event": ["signup", "buy", "signup"],
        ...                    "timestamp": pd.to_datetime(["2025-01-01", "2025-01-02", "2025-01-01"], utc=True)})
        >>> [(t.label, t.value, t.detail) for t in compute_funnel(ev, ["signup", "buy"]).tiles()]
        [('did signup', '2', 'users'), ('reach buy within 14 days', '50.0%', '1 of 2 who did signup')]
        """
        from helpers.report.notes import Tile

        pu, n = self.per_user, len(self.steps)
        started = len(pu)
        done = int((pu["furthest_step"] >= n).sum()) if started else 0
        first, last = self.steps[0].label, self.steps[-1].label
        return [Tile(f"did {first}", f"{started:,}", "users", finding),
                Tile(f"reach {last} within {_readable(self.conversion_window)}",
                     f"{done / started:.1%}" if started else "–", f"{done:,} of {started:,} who did {first}", finding)]


def _readable(delta: pd.Timedelta) -> str:
    """'14 days', '36 hours', '90 minutes': how a person writes a window."""
    seconds = int(delta.total_seconds())
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds % size == 0 and seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return str(delta)


def _as_steps(steps: Sequence[str | Step]) -> list[Step]:
    if isinstance(steps, (str, Step)) or len(steps) == 0:
        raise EventDataError("steps must be a list of at least one event name or Step.")
    out = []
    for s in steps:
        if isinstance(s, Step):
            out.append(s)
        elif isinstance(s, (list, tuple)):
            if not s:
                raise EventDataError("a funnel step that is a list needs at least one event name.")
            out.append(Step(str(s[0]) if len(s) == 1 else tuple(dict.fromkeys(map(str, s)))))
        else:
            out.append(Step(str(s)))
    return out


def _absent_steps(t: ibis.Table, steps: list[Step]) -> list[str]:
    """Event names of ``steps`` that the data does not have, warned about with the closest names it has."""
    wanted = {e for s in steps for e in s.events if e != "*"}
    if not wanted:
        return []
    present = set(t.select("event").distinct().execute()["event"].astype(str))
    absent = sorted(wanted - present)
    _warn_absent(t, absent, stacklevel=4)
    return absent


def _warn_absent(t: ibis.Table, absent: list[str], stacklevel: int = 3) -> None:
    """Warn about step events the data does not have, naming the closest names it has (read only when needed)."""
    import difflib
    import warnings

    if not absent:
        return
    present = sorted(set(t.select("event").distinct().execute()["event"].astype(str)))
    hints = []
    for name in absent:
        close = difflib.get_close_matches(name, present, n=3, cutoff=0.5)
        hints.append(f"{name!r}" + (f" (closest: {', '.join(map(repr, close))})" if close else ""))
    warnings.warn(f"funnel step event(s) not in the data: {'; '.join(hints)}. Nobody reaches those steps.",
                  stacklevel=stacklevel)


def _segments_for_users(by: pd.Series | pd.DataFrame) -> tuple[pd.Series, str]:
    if isinstance(by, pd.DataFrame):
        frame = by.set_index("user_id") if "user_id" in by.columns else by
        if frame.shape[1] != 1:
            raise EventDataError(f"by: a user table needs exactly one column besides user_id, got {list(frame.columns)}.")
        by = frame.iloc[:, 0]
    name = str(by.name) if by.name is not None else "segment"
    series = by.copy()
    series.index = series.index.astype(str)
    if not series.index.is_unique:
        raise EventDataError(f"by: user ids must be unique in the segment table ({name}).")
    return series, name


def compute_funnel(
    events: pd.DataFrame | ibis.Table,
    steps: Sequence[str | Step],
    *,
    conversion_window: str | pd.Timedelta = "14D",
    order: Order = "ordered",
    by: str | pd.Series | pd.DataFrame | None = None,
    exclusions: Sequence[tuple[str, int, int]] = (),
    observed_until: str | pd.Timestamp | None = None,
    engine: Engine = "auto",
) -> FunnelResult:
    """Count the users who reach each step of a conversion funnel (see the module docstring).

    ``events`` (a canonical DataFrame or ibis table) is not modified.
    ``engine="auto"`` runs the fast path (:mod:`helpers.funnel.fast`) on DuckDB
    and the portable ibis plan elsewhere (Spark); ``"portable"`` forces the
    ibis plan, ``"fast"`` the fast path. Both follow the same rules.

    Examples
    --------
    >>> toy = pd.DataFrame({
    ...     "user_id": ["a", "a", "a", "b", "b", "c"],
    ...     "event": ["visit", "signup", "buy", "visit", "signup", "visit"],
    ...     "timestamp": pd.to_datetime(["2025-01-01", "2025-01-02", "2025-01-03",
    ...                                  "2025-01-01", "2025-01-05", "2025-01-01"], utc=True)})
    >>> compute_funnel(toy, ["visit", "signup", "buy"]).table["users"].tolist()
    [3, 2, 1]
    """
    steps_ = _as_steps(steps)
    n = len(steps_)
    if order not in ("ordered", "strict", "any"):
        raise EventDataError(f"order must be 'ordered', 'strict' or 'any', not {order!r}.")
    window = pd.Timedelta(conversion_window)
    if window < pd.Timedelta(0):
        raise EventDataError(f"conversion_window must not be negative, got {conversion_window!r}.")
    t = as_ibis(events)
    for s in steps_:
        missing = [c for c in s.where if c not in t.columns]
        if missing:
            raise EventDataError(f"step {s.label!r} filters on {missing}, not columns of the events ({', '.join(t.columns)}).")
    for ex in exclusions:
        if len(ex) != 3 or not (0 <= ex[1] < ex[2] < n):
            raise EventDataError(f"exclusion {ex!r}: expected (event, i, j) with 0 <= i < j < {n} (0-based step indices).")
    by_column = by if isinstance(by, str) else None
    if by_column is not None and by_column not in t.columns:
        raise EventDataError(f"by={by_column!r} is not a column of the events ({', '.join(t.columns)}).")
    if engine not in ("auto", "fast", "portable"):
        raise EventDataError(f"engine must be 'auto', 'fast' or 'portable', not {engine!r}.")
    if engine == "auto":
        engine = "fast" if t._find_backend(use_default=True).name == "duckdb" else "portable"

    if observed_until is not None:
        until = to_utc(observed_until)
        t = t.filter(t.timestamp <= until.to_pydatetime())
    else:  # the last event: nothing lies after it, so no filter (it costs a comparison per event)
        until = observed_end(t)
    if engine == "fast":
        plan = make_plan(steps_)
        window_us = int(window / pd.Timedelta(microseconds=1))
        rows, absent = fast.fetch(t, steps_, plan, order, by_column, exclusions, window_us)
        _warn_absent(t, absent)
        per_user = fast.attempts(rows, plan, window_us, order, exclusions)
        result = _summarise(per_user, steps_, window, order, by, by_column, until)
        result.events = t
        result.absent_steps = absent
        return result
    absent = _absent_steps(t, steps_)

    attempts = _attempts(t, steps_, window, order, by_column)
    for event, i, j in exclusions:
        attempts = _apply_exclusion(attempts, t, event, i, j)
    # among equal attempts (any order: several funnel events at one moment) the least segment, and of a strict
    # attempt and its fork the earlier step times, as the fast path
    best = attempts.mutate(_rank=ibis.row_number().over(ibis.window(
        group_by="user_id", order_by=[ibis.desc("reached"), "start", ibis.asc("seg", nulls_first=False),
                                      *[f"t_{k + 1}" for k in range(1, len(steps_))]])))
    best = best.filter(best._rank == 0).drop("_rank")
    # Arrow is faster than execute() for wide timestamp results, and sorts strings faster than pandas.
    per_user = best.to_pyarrow().sort_by("user_id").to_pandas()
    result = _summarise(per_user, steps_, window, order, by, by_column, until)
    result.events = t
    result.absent_steps = absent
    return result


def _attempts(t: ibis.Table, steps: list[Step], window: pd.Timedelta, order: str, by_column: str | None) -> ibis.Table:
    """One row per attempt: user_id, start, reached (1..n), t_1..t_n, seg."""
    n = len(steps)
    plan = make_plan(steps)
    step_spec, subsets, n_specs = list(plan.step_spec), list(plan.subsets), len(plan.specs)
    # Only the columns the funnel reads travel through the window sorts.
    needed = ["user_id", "event", "timestamp"] + sorted({c for st in steps for c in st.where}) + (
        [by_column] if by_column else [])
    t = t.select(*dict.fromkeys(needed))
    base = t.mutate(**{f"m{j}": s.matches(t) for j, s in enumerate(plan.specs)})
    any_match = ibis.or_(*[base[f"m{j}"] for j in range(n_specs)])

    def hall(counts: Callable[[str], ibis.Value], run: list[int], new: int) -> ibis.BooleanValue:
        """Can the steps of ``run`` (spec indices) take separate events, given that ``run`` without
        its last step could? Only the sets that contain the new step can newly fail."""
        return ibis.and_(*[counts(_cname(sub)) >= sum(j in sub for j in run) for sub in subsets if new in sub])

    if order == "any":
        return _any_order_attempts(base.filter(any_match), step_spec, n_specs, subsets, hall, window, by_column)

    # ordered / strict work on the user's distinct timestamps ("moments"): how many events of each set of
    # steps happened at that moment, and when each step next happens after it. Steps logged at the same
    # moment count in funnel order, so a run of consecutive steps may share a moment when Hall's condition
    # holds for the run; otherwise the next step is taken at its next moment (the earliest is always best).
    if order == "strict":
        # The user's next moment of any event: a step taken at a later moment must be at exactly that moment.
        # Sorting funnel events last among equal timestamps makes the following row's timestamp, read on the
        # last funnel event of a moment, the next moment (one cheap row frame instead of a range frame).
        base = base.mutate(_fe=any_match.cast("int8"))
        nxt = base.timestamp.lead().over(ibis.window(group_by="user_id", order_by=["timestamp", "_fe"]))
        base = base.mutate(_next_any=ibis.cases((nxt > base.timestamp, nxt), else_=None))
    counted = base.filter(any_match)
    aggs = {_cname(sub): ibis.or_(*[counted[f"m{j}"] for j in sub]).cast("int64").sum() for sub in subsets}
    if by_column:
        aggs["_seg"] = ibis.cases((counted[f"m{step_spec[0]}"], counted[by_column].cast("string")), else_=None).min()
    if order == "strict":
        aggs["_next_any"] = counted._next_any.max()
    g = counted.group_by(["user_id", "timestamp"]).aggregate(**aggs)
    if not by_column:
        g = g.mutate(_seg=ibis.literal(None, type="string"))
    following = ibis.window(group_by="user_id", order_by="timestamp", rows=(1, None))
    look = {f"nt{j}": ibis.cases((g[_cname((j,))] > 0, g.timestamp), else_=None).min().over(following)
            for j in sorted(set(step_spec[1:]))}
    g = g.mutate(**look)
    carried = [_cname(sub) for sub in subsets] + list(look) + (["_next_any"] if order == "strict" else [])

    first = g.filter(g[_cname((step_spec[0],))] > 0)
    a = first.select("user_id", start=first.timestamp, seg=first._seg, t_1=first.timestamp,
                     _run=ibis.literal(0, type="int64"), _ok=ibis.literal(True), _reached=ibis.literal(1, type="int64"),
                     **{c: first[c] for c in carried})
    deadline_of = ibis.interval(microseconds=int(window / pd.Timedelta(microseconds=1)))
    for k in range(1, n):
        j = step_spec[k]
        # _run: the first step of the run that shares the current moment
        needs = {tuple(sum(x in sub for x in step_spec[r:k + 1]) for sub in subsets if j in sub) for r in range(k)}
        if len(needs) == 1:  # the run's start does not matter (e.g. k distinct steps)
            same = ibis.coalesce(hall(lambda c: a[c], step_spec[k - 1:k + 1], j), False)
        else:
            same = ibis.cases(*[(a._run == r, hall(lambda c: a[c], step_spec[r:k + 1], j)) for r in range(k)],
                              else_=False)
        later = a[f"nt{j}"]
        cand = ibis.cases((same, a[f"t_{k}"]), else_=later)
        step_ok = a._ok & cand.notnull() & (cand <= a.start + deadline_of)
        fork = None
        if order == "strict":
            at_next = ibis.coalesce(later == a._next_any, False)
            step_ok = step_ok & (same | at_next)
            if k < n - 1:
                # A step that could share the moment could also take the very next one, and which reaches further
                # depends on the steps after it: such an attempt forks (rare: several step events at one moment).
                fork_ok = ibis.coalesce(a._ok & same & at_next & (later <= a.start + deadline_of), False)
                fork = a.filter(fork_ok).mutate(**{f"t_{k + 1}": later, "_run": ibis.literal(k, type="int64"),
                                                   "_ok": ibis.literal(True), "_reached": a._reached + 1})
        step_ok = ibis.coalesce(step_ok, False)
        a = a.mutate(**{f"t_{k + 1}": ibis.cases((step_ok, cand), else_=None),
                        "_run": ibis.cases((same, a._run), else_=k),
                        "_ok": step_ok, "_reached": a._reached + step_ok.cast("int64")})
        if fork is not None:
            a = a.union(fork.select(*a.columns))
        if k < n - 1:
            # Hop to the moment of the step just taken (the same moment when the run goes on).
            lk = g.select(_ku=g.user_id, _kt=g.timestamp, **{f"_L{c}": g[c] for c in carried})
            a = a.drop(*carried).left_join(lk, [a.user_id == lk._ku, a[f"t_{k + 1}"] == lk._kt])
            a = a.mutate(**{c: a[f"_L{c}"] for c in carried}).drop(*[f"_L{c}" for c in carried], "_ku", "_kt")
    return a.select("user_id", "start", "seg", reached=a._reached, **{f"t_{k + 1}": a[f"t_{k + 1}"] for k in range(n)})


def _cname(sub: tuple[int, ...]) -> str:
    return "c" + "_".join(map(str, sub))


def _any_order_attempts(rows: ibis.Table, step_spec: list[int], n_specs: int, subsets: list[tuple[int, ...]],
                        hall: Callable, window: pd.Timedelta, by_column: str | None) -> ibis.Table:
    """Any order: an attempt starts at any funnel event and reaches step k when steps 1..k can take separate
    events within the window from it."""
    n = len(step_spec)
    seg = rows[by_column].cast("string") if by_column else ibis.literal(None, type="string")
    rows = rows.mutate(_seg=seg, _us=epoch_us(rows.timestamp))  # integer frames: Spark rejects INTERVAL frames
    rw = ibis.window(group_by="user_id", order_by="_us", range=(0, int(window / pd.Timedelta(microseconds=1))))
    counts = {_cname(sub): ibis.or_(*[rows[f"m{j}"] for j in sub]).cast("int64").sum().over(rw) for sub in subsets}
    firsts = {f"f{k}": ibis.cases((rows[f"m{step_spec[k]}"], rows.timestamp), else_=None).min().over(rw)
              for k in range(n)}
    a = rows.mutate(**counts, **firsts)
    reached = 0
    ok = ibis.literal(True)
    times = {}
    completion = None
    for k in range(n):
        ok = ok & hall(lambda c: a[c], step_spec[:k + 1], step_spec[k])
        reached = reached + ok.cast("int64")
        completion = a[f"f{k}"] if completion is None else ibis.greatest(completion, a[f"f{k}"])
        times[f"t_{k + 1}"] = ibis.cases((ok, completion), else_=None)
    return a.select("user_id", start=a.timestamp, reached=reached, seg=a._seg, **times)


def _apply_exclusion(attempts: ibis.Table, t: ibis.Table, event: str, i: int, j: int) -> ibis.Table:
    ex = t.filter(t.event == event).select(_u=t.user_id, _t=t.timestamp)
    ti, tj = attempts[f"t_{i + 1}"], attempts[f"t_{j + 1}"]
    lo, hi = ibis.least(ti, tj), ibis.greatest(ti, tj)
    void = attempts.filter(tj.notnull()).join(ex, [attempts.user_id == ex._u, ex._t > lo, ex._t < hi]).select(
        "user_id", "start").distinct()
    void = void.rename(_vu="user_id", _vs="start")
    return attempts.anti_join(void, [attempts.user_id == void._vu, attempts.start == void._vs])


def _summarise(per_user: pd.DataFrame, steps: list[Step], window: pd.Timedelta, order: str,
               by: Any, by_column: str | None, until: pd.Timestamp) -> FunnelResult:
    n = len(steps)
    for c in ["start"] + [f"t_{k}" for k in range(1, n + 1)]:  # one unit whatever the engine and source
        if per_user[c].dtype != "datetime64[ns, UTC]":
            per_user[c] = to_utc_series(per_user[c]).astype("datetime64[ns, UTC]")
    if not (per_user["user_id"].dtype == object and len(per_user) and isinstance(per_user["user_id"].iat[0], str)):
        per_user["user_id"] = per_user["user_id"].astype(str)
    seg_name = None
    seg = per_user.pop("seg")  # first: a segment may itself be called "seg"
    if by is not None or by_column is not None:
        series, seg_name = (None, by_column) if by_column is not None else _segments_for_users(by)
        taken = {"user_id", "reached", "start", "in_progress", "furthest_step", "attempt_start",
                 *[f"t_{k}" for k in range(1, n + 1)], *[f"step_{k}_at" for k in range(1, n + 1)]}
        if seg_name in taken:
            raise EventDataError(f"by: the segment is named {seg_name!r}, a name the funnel's own columns use; "
                                 "rename it (e.g. series.rename('segment')).")
        values = seg if series is None else per_user["user_id"].map(series)
        per_user[seg_name] = values.astype("object").where(lambda s: s.notna(), NONE_SEGMENT).astype(str)
    per_user["reached"] = per_user["reached"].astype(int)
    per_user["in_progress"] = (per_user["reached"] < n) & (per_user["start"] > until - window)

    groups = [("all", per_user)] if seg_name is None else list(per_user.groupby(seg_name, sort=True))
    if not groups:  # nobody did the first step: one segment of zeros, not an empty table
        groups = [(NONE_SEGMENT, per_user)]
    tables = []
    for name, g in groups:
        rows = []
        furthest, waiting = g["reached"].to_numpy(), g["in_progress"].to_numpy()
        start_users = int((furthest >= 1).sum())
        for k in range(1, n + 1):
            reached = furthest >= k
            users = int(reached.sum())
            exactly = furthest == k
            prev = int((furthest >= k - 1).sum()) if k > 1 else users
            rows.append({
                "step_index": k, "step": steps[k - 1].label, "users": users,
                "conversion_from_start": users / start_users if start_users else np.nan,
                "conversion_from_previous": users / prev if prev else np.nan,
                "dropped": int((exactly & ~waiting).sum()) if k < n else 0,
                "in_progress": int((exactly & waiting).sum()) if k < n else 0,
                "median_time_from_previous": (g[f"t_{k}"][reached] - g[f"t_{k - 1}"][reached]).median() if k > 1 else pd.NaT,
                "median_time_from_start": (g[f"t_{k}"][reached] - g["t_1"][reached]).median() if k > 1 else pd.Timedelta(0),
            })
        table = pd.DataFrame(rows)
        if seg_name is not None:
            table.insert(0, seg_name, name)
        tables.append(table)
    table = declare(pd.concat(tables, ignore_index=True), _TABLE_UNITS, hidden=["step_index"], headers=_TABLE_HEADERS)
    out = per_user.rename(columns={"reached": "furthest_step", "start": "attempt_start",
                                   **{f"t_{k}": f"step_{k}_at" for k in range(1, n + 1)}})
    front = ["user_id", "furthest_step", "in_progress", "attempt_start"] + ([seg_name] if seg_name else [])
    out = out[front + [f"step_{k}_at" for k in range(1, n + 1)]]
    return FunnelResult(table, out, steps, window, order, seg_name, until)


