"""Paths: sessions, the most common event sequences, next-event probabilities, what droppers did next.

Semantics:

- Events are ordered within a user (or session) by timestamp, then event name,
  so equal timestamps give the same order on every run and every backend.
- ``sessionize``: a new session starts at a user's first event and after any
  gap longer than ``gap``; ids are ``<user_id>-s<n>``, n from 0.
- ``top_paths``: a unit (a user, or a session with ``per="session"``) has one
  path: its first ``max_steps`` events from its first ``start`` event, or its
  last ``max_steps`` events up to its first ``end`` event, or from its first
  event when neither is given. A path to ``end`` ends at that event itself:
  other events logged at the same instant come before it (in name order); with ``collapse_repeats`` consecutive repeats of
  one event count once. ``goal_share`` is the share of the path's units that
  do ``goal`` at or after the path's first event (within the unit).
- ``transition_matrix``: for every event of a user, the user's next event
  (``(end)`` after the last one); events outside the ``top_events`` most
  frequent are ``(other)``; ``probability`` is the share of each ``from`` row.
"""

from __future__ import annotations

from typing import Literal

import ibis
import pandas as pd

from helpers.funnel import FunnelResult
from helpers.io import EventDataError, as_ibis, epoch_us
from helpers.units import declare

__all__ = ["drop_headline", "paths_before_drop", "paths_headline", "sessionize", "top_paths", "transition_matrix"]

ARROW = " → "


def _ordered(t: ibis.Table, unit: str) -> ibis.expr.types.Window:
    return ibis.window(group_by=unit, order_by=["timestamp", "event"])


def sessionize(events: pd.DataFrame | ibis.Table, gap: str | pd.Timedelta = "30min", *, overwrite: bool = False
               ) -> pd.DataFrame | ibis.Table:
    """Add a ``session_id`` (see the module docstring); returns the same kind of table it was given.

    An existing ``session_id`` column is kept unless ``overwrite``.

    Examples
    --------
    >>> ev = pd.DataFrame({"user_id": ["a", "a", "a"], "event": ["x", "y", "z"],
    ...                    "timestamp": pd.to_datetime(["2025-01-01 10:00", "2025-01-01 10:20", "2025-01-01 11:00"], utc=True)})
    >>> sessionize(ev)["session_id"].tolist()
    ['a-s0', 'a-s0', 'a-s1']
    """
    t = as_ibis(events)
    if "session_id" in t.columns and not overwrite:
        return events
    gap_us = int(pd.Timedelta(gap) / pd.Timedelta(microseconds=1))
    w = _ordered(t, "user_id")
    us = epoch_us(t.timestamp)  # integers: interval arithmetic on zoned timestamps is slow on DuckDB
    prev = us.lag().over(w)
    new = prev.isnull() | (us - prev > gap_us)
    t = t.mutate(_new=new.cast("int64"))
    number = t._new.sum().over(ibis.window(group_by="user_id", order_by=["timestamp", "event"], rows=(None, 0))) - 1
    out = t.mutate(session_id=t.user_id.concat("-s", number.cast("string"))).drop("_new")
    if isinstance(events, pd.DataFrame):
        frame = out.to_pyarrow().to_pandas()
        frame["timestamp"] = frame["timestamp"].astype("datetime64[ns, UTC]")
        return frame.sort_values(["user_id", "timestamp", "event"], ignore_index=True)
    return out


def _paths(t: ibis.Table, unit: str, *, start: str | None, end: str | None, max_steps: int,
           collapse_repeats: bool) -> ibis.Table:
    """One row per unit: unit, user_id, anchor time, step_1..step_k."""
    w = _ordered(t, unit)
    if collapse_repeats:
        # The window goes into a column before the filter: a window inside a filter does not compile on Spark.
        t = t.mutate(_previous=t.event.lag().over(w))
        t = t.filter(t._previous.isnull() | (t.event != t._previous)).drop("_previous")
    if start is not None:
        anchor = t.filter(t.event == start).group_by(unit).aggregate(_anchor=lambda s: s.timestamp.min())
        t = t.join(anchor, unit).filter(lambda s: s.timestamp >= s._anchor)
        pos = ibis.row_number().over(_ordered(t, unit))
    elif end is not None:
        anchor = t.filter(t.event == end).group_by(unit).aggregate(_anchor=lambda s: s.timestamp.min())
        t = t.join(anchor, unit).filter(lambda s: s.timestamp <= s._anchor)
        # Count back from the end event itself: among events of its instant it comes last, so a path to the goal
        # ends at the goal (a case log writes several events at one instant).
        t = t.mutate(_is_end=(t.event == end).cast("int8"))
        pos = ibis.row_number().over(ibis.window(group_by=unit, order_by=[ibis.desc("timestamp"), ibis.desc("_is_end"),
                                                                        ibis.desc("event")]))
    else:
        t = t.mutate(_anchor=t.timestamp.min().over(ibis.window(group_by=unit)))
        pos = ibis.row_number().over(_ordered(t, unit))
    t = t.mutate(_pos=pos).filter(lambda s: s._pos < max_steps)
    if end is not None:  # positions counted backwards: step 1 is the earliest kept event
        t = t.mutate(_pos=t._pos.max().over(ibis.window(group_by=unit)) - t._pos)
    steps = {f"step_{i + 1}": t.event.max(where=t._pos == i) for i in range(max_steps)}
    if unit == "user_id":
        return t.group_by(unit).aggregate(_anchor=t._anchor.min(), **steps)
    return t.group_by(unit).aggregate(user_id=t.user_id.max(), _anchor=t._anchor.min(), **steps)


def top_paths(
    events: pd.DataFrame | ibis.Table,
    *,
    start: str | None = None,
    end: str | None = None,
    max_steps: int = 5,
    collapse_repeats: bool = True,
    top: int = 20,
    per: Literal["user", "session"] = "user",
    goal: str | None = None,
) -> pd.DataFrame:
    """The most common event sequences after ``start`` or before ``end`` (see the module docstring).

    Returns ``path`` (``"a → b → c"``), ``steps`` (the number of events),
    ``units``, ``users``, ``share`` (of all units with a path) and, with a
    ``goal``, ``goal_share``; the ``top`` paths by units.

    Examples
    --------
    >>> ev = pd.DataFrame({"user_id": ["a", "a", "b", "b", "c"], "event": ["home", "buy", "home", "buy", "home"],
    ...                    "timestamp": pd.to_datetime(["2025-01-01 10:00", "2025-01-01 10:01"] * 2 + ["2025-01-01 10:00"], utc=True)})
    >>> top_paths(ev, start="home")[["path", "users", "share"]].values.tolist()
    [['home → buy', 2, 0.6666666666666666], ['home', 1, 0.3333333333333333]]
    """
    if start is not None and end is not None:
        raise EventDataError("top_paths takes start or end, not both.")
    if max_steps < 1:
        raise EventDataError(f"max_steps must be at least 1, got {max_steps}.")
    t = as_ibis(events)
    if per == "session":
        if "session_id" not in t.columns:
            t = sessionize(t)
        unit = "session_id"
    elif per == "user":
        unit = "user_id"
    else:
        raise EventDataError(f"per must be 'user' or 'session', not {per!r}.")
    paths = _paths(t, unit, start=start, end=end, max_steps=max_steps, collapse_repeats=collapse_repeats)
    if goal is not None:
        g = t.filter(t.event == goal).select(_gu=t[unit], _gt=t.timestamp)
        reached = paths.left_join(g, [paths[unit] == g._gu, g._gt >= paths._anchor]).group_by(unit).aggregate(
            _goal=lambda s: s._gu.notnull().any())
        paths = paths.join(reached, unit)
    step_cols = [f"step_{i + 1}" for i in range(max_steps)]
    aggs = {"units": paths.count(), "users": paths.user_id.nunique()}
    if goal is not None:
        aggs["goal_units"] = paths._goal.cast("int64").sum()
    counts = paths.group_by(step_cols).aggregate(**aggs).to_pyarrow().to_pandas()
    if counts.empty:
        return pd.DataFrame(columns=["path", "steps", "units", "users", "share"] + (["goal_share"] if goal else []))
    seqs = counts[step_cols].astype("object")
    path = seqs["step_1"].astype(str)
    for col in step_cols[1:]:  # column by column (at most max_steps), never row by row
        path = path.where(seqs[col].isna(), path + ARROW + seqs[col].astype(str))
    counts["path"] = path
    counts["steps"] = seqs.notna().sum(axis=1)
    counts["share"] = counts["units"] / counts["units"].sum()
    cols = ["path", "steps", "units", "users", "share"]
    if goal is not None:
        counts["goal_share"] = counts["goal_units"] / counts["units"]
        cols.append("goal_share")
    out = counts.sort_values(["units", "path"], ascending=[False, True], ignore_index=True)[cols].head(top)
    return declare(out, {"steps": "count", "units": "count", "users": "count", "share": "rate", "goal_share": "rate"},
                   headers={"units": f"{unit.removesuffix('_id').capitalize()}s", "share": "Share",
                            "goal_share": f"Share reaching {goal}" if goal else "Share reaching the goal"})


def transition_matrix(events: pd.DataFrame | ibis.Table, *, top_events: int = 15) -> pd.DataFrame:
    """Next-event probabilities (see the module docstring), as a tidy table ``from``, ``to``, ``count``, ``probability``.

    Examples
    --------
    >>> ev = pd.DataFrame({"user_id": ["a", "a", "a", "b"], "event": ["x", "y", "x", "x"],
    ...                    "timestamp": pd.to_datetime(["2025-01-01 10:00", "2025-01-01 10:01", "2025-01-01 10:02",
    ...                                                 "2025-01-01 10:00"], utc=True)})
    >>> transition_matrix(ev).values.tolist()
    [['x', '(end)', 2, 0.6666666666666666], ['x', 'y', 1, 0.3333333333333333], ['y', 'x', 1, 1.0]]
    """
    t = as_ibis(events)
    top = t.group_by("event").aggregate(n=t.count()).order_by([ibis.desc("n"), "event"]).limit(top_events)
    keep = set(top.execute()["event"])
    w = _ordered(t, "user_id")
    label = ibis.cases((t.event.isin(list(keep)), t.event), else_="(other)")
    nxt = t.event.lead().over(w)
    nxt_label = ibis.cases((nxt.isnull(), "(end)"), (nxt.isin(list(keep)), nxt), else_="(other)")
    pairs = t.mutate(_from=label, _to=nxt_label).group_by(["_from", "_to"]).aggregate(count=lambda s: s.count())
    out = pairs.to_pyarrow().to_pandas().rename(columns={"_from": "from", "_to": "to"})
    out["probability"] = out["count"] / out.groupby("from")["count"].transform("sum")
    return out.sort_values(["from", "count", "to"], ascending=[True, False, True], ignore_index=True)


def paths_headline(paths: pd.DataFrame, goal: str) -> str:
    """One sentence on :func:`top_paths` before ``goal``: the most common path and how much the top paths cover.

    Examples
    --------
    >>> p = pd.DataFrame({"path": ["a → buy", "b → buy"], "steps": [2, 2], "units": [6, 2], "users": [6, 2],
    ...                   "share": [0.6, 0.2]})
    >>> paths_headline(p, "buy")
    'The most common way to buy is a → buy (6 users, 60% of paths); the 2 paths shown cover 80%.'
    """
    if paths.empty:
        return f"Nobody reached {goal}, so there are no paths to it."
    top = paths.iloc[0]
    return (f"The most common way to {goal} is {top['path']} ({int(top['users']):,} users, {top['share']:.0%} of "
            f"paths); the {len(paths)} paths shown cover {paths['share'].sum():.0%}.")


def drop_headline(paths: pd.DataFrame, step: str) -> str:
    """One sentence on :func:`paths_before_drop`: what those who dropped after ``step`` did most often instead.

    Examples
    --------
    >>> p = pd.DataFrame({"path": ["(nothing)", "help"], "steps": [0, 1], "units": [5, 3], "users": [5, 3],
    ...                   "share": [0.5, 0.3]})
    >>> drop_headline(p, "cart")
    'Of those who stopped after cart, 50% did nothing more; the most common path was help (30%).'
    """
    if paths.empty:
        return f"Nobody dropped out after {step}."
    gone = paths.loc[paths["path"] == "(nothing)", "share"].sum()
    rest = paths[paths["path"] != "(nothing)"]
    text = f"Of those who stopped after {step}, " + (f"{gone:.0%} did nothing more; " if gone else "")
    if rest.empty:
        return text.rstrip("; ") + "."
    top = rest.iloc[0]
    text += f"the most common path was {top['path']} ({top['share']:.0%})"
    if top["share"] < 0.1:
        text += ": no single path stands out, so they scattered rather than leaving one way"
    return text + "."


def paths_before_drop(
    result: FunnelResult,
    step: int | str,
    events: pd.DataFrame | ibis.Table | None = None,
    *,
    max_steps: int = 3,
    top: int = 10,
    collapse_repeats: bool = True,
) -> pd.DataFrame:
    """What users who dropped after ``step`` did next: their next events after reaching it.

    ``step`` is a 1-based index or a step label of the funnel; dropped users
    are those whose furthest step it is and who are not in progress. Their
    paths start with the first event after the step's time (same counting as
    :func:`top_paths`); users with no later event have the path ``(nothing)``.
    ``events`` defaults to the events the funnel counted.
    """
    labels = [s.label for s in result.steps]
    k = labels.index(step) + 1 if isinstance(step, str) else int(step)
    if not 1 <= k < len(labels):
        raise EventDataError(f"step must be one of the funnel's steps before the last: {labels[:-1]}, got {step!r}.")
    pu = result.per_user
    dropped = pu[(pu["furthest_step"] == k) & ~pu["in_progress"]][["user_id", f"step_{k}_at"]]
    dropped = dropped.rename(columns={f"step_{k}_at": "_since"})
    if dropped.empty:
        return pd.DataFrame(columns=["path", "steps", "units", "users", "share"])
    if events is None and result.events is None:
        raise EventDataError("paths_before_drop needs the events: the funnel result does not hold them.")
    t = as_ibis(events) if events is not None else result.events
    since = ibis.memtable(dropped.assign(user_id=dropped["user_id"].astype(str)))
    later = t.join(since, "user_id").filter(lambda s: s.timestamp > s._since).drop("_since")
    paths = top_paths(later, max_steps=max_steps, top=10**9, collapse_repeats=collapse_repeats)
    nothing = len(dropped) - int(paths["users"].sum())
    if nothing > 0:
        paths = pd.concat([paths, pd.DataFrame([{"path": "(nothing)", "steps": 0, "units": nothing, "users": nothing}])],
                          ignore_index=True)
    paths["share"] = paths["users"] / len(dropped)
    paths.insert(0, "after_step", labels[k - 1])
    out = paths.sort_values(["users", "path"], ascending=[False, True], ignore_index=True).head(top)
    # one path per user here, so "units" repeats "users"
    return declare(out, {"steps": "count", "users": "count", "share": "rate"}, hidden=["units"],
                   headers={"after_step": "After step", "path": "What they did next", "users": "Users",
                            "share": "Share of those who dropped"})
