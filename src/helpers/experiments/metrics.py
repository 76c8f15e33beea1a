"""What an experiment measures per person, and who is in it: metric specifications, the assignment table, and
one ibis query that returns every assigned person's metric events inside the post period and the pre period
(the CUPED covariate), summed per person in NumPy. Rules are in :mod:`helpers.experiments`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import ibis
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from helpers.io import EventDataError, as_ibis, epoch_us
from helpers.io.times import to_utc, to_utc_series

KINDS = ("conversion", "count", "value")
ID_DTYPE = pd.ArrowDtype(pa.string())  # person ids of a loaded assignment table: Arrow text, not a Python object each


@dataclass(frozen=True)
class Metric:
    """One metric of a readout: ``kind`` is ``conversion`` (reached ``events``, or step ``step`` of the
    ordered funnel ``steps``, in the window), ``count`` (events in the window) or ``value`` (the sum of
    ``column`` over ``events`` in the window). Make them with :func:`conversion`, :func:`count`, :func:`value`.
    """

    name: str
    kind: str
    events: tuple[str, ...] = ()
    steps: tuple[Any, ...] = ()
    step: int = -1
    column: str | None = None
    funnel_options: Mapping[str, Any] = field(default_factory=dict)


def conversion(target: str | Sequence[str], *, steps: Sequence[Any] | None = None, step: int = -1,
               name: str | None = None, **funnel_options: Any) -> Metric:
    """A conversion metric: 1 for a person who did ``target`` (an event, or any of several) within the post
    period, else 0. With ``steps``, a person converts when they reach step ``step`` (1-based; -1: the last) of
    the ordered funnel ``steps`` (``compute_funnel`` rules, ``funnel_options`` passed on) inside the window;
    ``target`` then only names the metric.

    Examples
    --------
    >>> conversion("purchase").name, conversion("x", steps=["signup", "first_value"], step=2).kind
    ('purchase', 'conversion')
    """
    if steps is not None:
        steps = tuple(steps)
        if len(steps) < 1:
            raise EventDataError("a funnel conversion metric needs at least one step.")
        k = step if step > 0 else len(steps) + 1 + step
        if not 1 <= k <= len(steps):
            raise EventDataError(f"step {step} is not a step of the {len(steps)}-step funnel {list(steps)}.")
        label = name or (target if isinstance(target, str) else "/".join(target))
        return Metric(label, "conversion", steps=steps, step=k, funnel_options=dict(funnel_options))
    events = (target,) if isinstance(target, str) else tuple(target)
    return Metric(name or "/".join(events), "conversion", events=events)


def count(event: str | Sequence[str], *, name: str | None = None) -> Metric:
    """A count metric: how many ``event`` events a person had in the window.

    Examples
    --------
    >>> count("page_view").name
    'page_view count'
    """
    events = (event,) if isinstance(event, str) else tuple(event)
    return Metric(name or f"{'/'.join(events)} count", "count", events=events)


def value(event: str | Sequence[str] = "purchase", column: str = "value", *, name: str | None = None) -> Metric:
    """A value metric: the sum of ``column`` over a person's ``event`` events in the window (revenue per
    person; missing values count 0).

    Examples
    --------
    >>> value().name
    'purchase value'
    """
    events = (event,) if isinstance(event, str) else tuple(event)
    return Metric(name or f"{'/'.join(events)} {column}", "value", events=events, column=column)


def as_metric(spec: Metric | str | Mapping[str, Any]) -> Metric:
    """A :class:`Metric` from a metric, an event name (a conversion) or a mapping such as
    ``{"kind": "count", "event": "page_view"}`` (what a config file or a notebook parameter holds).

    Examples
    --------
    >>> as_metric({"kind": "value", "event": "purchase", "column": "value"}).name
    'purchase value'
    """
    if isinstance(spec, Metric):
        return spec
    if isinstance(spec, str):
        return conversion(spec)
    if isinstance(spec, Mapping):
        spec = dict(spec)
        kind = spec.pop("kind", "conversion")
        target = spec.pop("event", spec.pop("events", None))
        if kind not in KINDS:
            raise EventDataError(f"metric kind {kind!r} is not one of {', '.join(KINDS)}.")
        if target is None and not spec.get("steps"):
            raise EventDataError(f"the metric {spec} names no event.")
        if kind == "conversion":
            return conversion(target if target is not None else spec.get("name", "funnel"), **spec)
        return (count if kind == "count" else value)(target, **spec)
    raise EventDataError(f"a metric is a Metric, an event name or a mapping, not {type(spec).__name__}.")


def normalise_assignments(assignments: pd.DataFrame, where: str = "assignments") -> tuple[pd.DataFrame,
                                                                                           dict[str, int]]:
    """``(one row per person: user_id, variant, assigned_at, exclusions)`` from a user-level table. Rows
    without a variant or a time are dropped and counted; a person with rows of two variants is excluded and
    counted; a person with several rows of one variant keeps the earliest time.

    Examples
    --------
    >>> a = pd.DataFrame({"user_id": ["a", "b", "b", "c", "c"], "variant": ["A", "B", "A", "B", "B"],
    ...                   "assigned_at": ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-05", "2024-01-04"]})
    >>> t, why = normalise_assignments(a)
    >>> t["user_id"].tolist(), str(t["assigned_at"].iloc[1].date()), why["assigned to more than one variant"]
    (['a', 'c'], '2024-01-04', 1)
    """
    missing = [c for c in ("user_id", "variant", "assigned_at") if c not in assignments.columns]
    if missing:
        raise EventDataError(f"{where} has no column {', '.join(missing)}: it needs user_id, variant and "
                             f"assigned_at (one row per person), or pass the exposure event's name instead.")
    try:
        assigned_at = to_utc_series(assignments["assigned_at"])
    except (ValueError, TypeError) as exc:
        raw = assignments["assigned_at"]
        bad = raw[pd.to_datetime(raw, errors="coerce", utc=True).isna() & raw.notna()]
        example = bad.iloc[0] if len(bad) else raw.iloc[0]
        raise EventDataError(f"{where}, column assigned_at: {example!r} is not a time.") from exc
    # One Arrow table from here (hash aggregation, string sort): pandas' object columns of 500k ids are the
    # slow way (its sort of them took 2 s, more than the metrics' query).
    table = pa.table({"user_id": _text_array(assignments["user_id"]), "variant": _text_array(assignments["variant"]),
                      "assigned_at": pa.array(assigned_at.to_numpy("datetime64[us]"), mask=assigned_at.isna().to_numpy())})
    incomplete = pc.or_(pc.or_(table["user_id"].is_null(), table["variant"].is_null()), table["assigned_at"].is_null())
    n_incomplete = int(pc.sum(incomplete).as_py() or 0)
    if n_incomplete:
        table = table.filter(pc.invert(incomplete))
    table = table.take(pc.sort_indices(table, sort_keys=[("user_id", "ascending")]))
    ids = table["user_id"]
    repeated = table.num_rows > 1 and pc.any(pc.equal(ids.slice(1), ids.slice(0, table.num_rows - 1))).as_py()
    if not repeated:  # the usual table, one row per person (seen on the sorted ids: no hashing)
        per = table.rename_columns(["user_id", "variant_min", "assigned_at_min"])
        twice = pa.array(np.zeros(len(per), dtype=bool))
    else:
        per = table.group_by("user_id").aggregate([("variant", "count_distinct"), ("variant", "min"),
                                                   ("assigned_at", "min")])
        twice = pc.greater(per["variant_count_distinct"], 1)
        per = per.filter(pc.invert(twice))
        per = per.take(pc.sort_indices(per, sort_keys=[("user_id", "ascending")]))
    # Arrow text columns as they are: a Python object per person is slow to make and to hand back to the backend
    out = pd.DataFrame({"user_id": pd.arrays.ArrowExtensionArray(per["user_id"]),
                        "variant": pd.arrays.ArrowExtensionArray(per["variant_min"]),
                        "assigned_at": pd.to_datetime(per["assigned_at_min"].to_numpy(), utc=True)})
    why = {"assignment rows without a person, variant or time (dropped)": n_incomplete,
           "assigned to more than one variant": int(pc.sum(twice).as_py() or 0)}
    return out, why


def id_column(values: pd.Series) -> pd.arrays.ArrowExtensionArray:
    """Person ids as Arrow text for a pandas column, as :func:`normalise_assignments` gives them (numbers as
    their text, nulls kept).

    Examples
    --------
    >>> id_column(pd.Series([7, None])).tolist()
    ['7.0', <NA>]
    """
    return pd.arrays.ArrowExtensionArray(pa.array(_text_array(values)))


def _text_array(values: pd.Series) -> pa.ChunkedArray | pa.Array:
    """A column as Arrow strings, nulls kept (ids may arrive as numbers: their text, as ``astype(str)`` gives)."""
    if isinstance(values.dtype, pd.ArrowDtype) and pa.types.is_string(values.dtype.pyarrow_dtype):
        return pa.array(values.array)  # as it is (a conversion would make a Python object per id)
    if isinstance(values.dtype, pd.ArrowDtype) or str(values.dtype).startswith("string"):
        return pa.array(values.astype("string[pyarrow]"), pa.string())
    try:
        return pa.array(values, pa.string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        missing = values.isna().to_numpy()
        return pa.array(values.astype(str).to_numpy(object), pa.string(), mask=missing)


def exposures(events: pd.DataFrame | ibis.Table, exposure_event: str, variant_column: str) -> pd.DataFrame:
    """A user-level assignment table from exposure events: each person's first exposure time, and their
    variant (``variant_column`` of the exposure events; a person exposed to two variants keeps both rows, so
    that :func:`normalise_assignments` excludes them).

    Examples
    --------
    >>> ev = pd.DataFrame({"user_id": ["a", "a", "b"], "event": ["seen"] * 3, "variant": ["A", "A", "B"],
    ...                    "timestamp": pd.to_datetime(["2024-01-02", "2024-01-01", "2024-01-01"], utc=True)})
    >>> exposures(ev, "seen", "variant").sort_values("user_id")["variant"].tolist()
    ['A', 'B']
    """
    t = as_ibis(events)
    if variant_column not in t.columns:
        raise EventDataError(f"the events have no {variant_column!r} column to read the exposure's variant from "
                             f"(columns: {', '.join(t.columns)}).")
    seen = t.filter(t.event == exposure_event)
    out = (seen.group_by([seen.user_id, seen[variant_column].cast("string").name("variant")])
           .aggregate(assigned_at=seen.timestamp.min()).to_pandas())
    if out.empty:
        raise EventDataError(f"no {exposure_event!r} event in the data, so nobody is assigned.")
    return out


def person_metrics(events: pd.DataFrame | ibis.Table, assigned: pd.DataFrame, metrics: Sequence[Metric], *,
                   pre_period: pd.Timedelta | None, post_period: pd.Timedelta | None,
                   observed_until: pd.Timestamp) -> pd.DataFrame:
    """Per assigned person, each metric over the post period (column ``<i>``) and the pre period (``<i>_pre``,
    the CUPED covariate; 0 without pre-period data), ``i`` the metric's position. The post period runs from
    the assignment (inclusive) for ``post_period`` (inclusive), or to ``observed_until``; the pre period is
    the ``pre_period`` before the assignment (the assignment's moment excluded)."""
    t = as_ibis(events)
    until_us = int(to_utc(observed_until).value // 1000)
    post_us = None if post_period is None else int(post_period.value // 1000)
    pre_us = 0 if pre_period is None else int(pre_period.value // 1000)
    at_us = assigned["assigned_at"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[us]").view("int64")
    people = pd.DataFrame({"user_id": id_column(assigned["user_id"]), "at_us": at_us,
                           "k": np.arange(len(assigned), dtype="int64")})  # results come back by position
    columns_out = {"user_id": people["user_id"].array}
    plain = [(i, m) for i, m in enumerate(metrics) if not m.steps]
    if plain:
        names = sorted({e for _, m in plain for e in m.events})
        values = sorted({m.column for _, m in plain if m.column})
        missing = [c for c in ["user_id", "event", "timestamp", *values] if c not in t.columns]
        if missing:
            raise EventDataError(f"the events have no {', '.join(missing)} column, which a metric needs.")
        # Per row, once: the event as a small code and the window it falls in (1 post, -1 pre); rows in neither
        # window are dropped before the aggregation.
        e = t.filter(t.event.isin(names))
        e = e.select(user_id=e.user_id, us=epoch_us(e.timestamp),
                     ev=ibis.cases(*[(e.event == name, c) for c, name in enumerate(names)], else_=-1).cast("int16"),
                     **{f"_v{c}": e[col].cast("float64").fill_null(0.0) for c, col in enumerate(values)})
        # handed over as Arrow: DuckDB's scan of a pandas object column of 500k ids is the slower way in
        p = ibis.memtable(pa.table({"user_id": pa.array(people["user_id"].array), "at_us": people["at_us"].to_numpy(),
                                    "k": people["k"].to_numpy()}))
        j = e.inner_join(p, "user_id")
        delta = j.us - j.at_us
        # Rows in the pre window (delta < 0) or the post window (delta >= 0, up to the end of observation).
        inside = (delta >= -pre_us) & (j.us <= until_us)
        if post_us is not None:
            inside = inside & (delta <= post_us)
        j = j.filter(inside)
        # Each row's person and cell (event code, and post or pre) come back; the sums per person are NumPy
        # bincounts: DuckDB's group-by of 4M rows into 476k persons took 0.27 s of a 0.74 s query.
        j = j.select(k=j.k.cast("int32"), c=(j.ev * 2 + (delta >= 0).cast("int16")).cast("int16"),
                     **{f"_v{c}": j[f"_v{c}"] for c in range(len(values))})
        got = j.to_pyarrow()
        k = got["k"].to_numpy().astype(np.int64)
        cell = got["c"].to_numpy()
        n_people = len(people)
        for i, m in plain:
            codes = [names.index(name) for name in m.events]
            hit = np.isin(cell >> 1, codes) if len(codes) > 1 else (cell >> 1) == codes[0]
            slot = k[hit] * 2 + (cell[hit] & 1)  # per person: [pre, post]
            weights = got[f"_v{values.index(m.column)}"].to_numpy()[hit] if m.kind == "value" else None
            per = np.bincount(slot, weights=weights, minlength=2 * n_people).reshape(n_people, 2).astype(float)
            if m.kind == "conversion":
                per = (per > 0).astype(float)
            columns_out[f"m{i}"], columns_out[f"m{i}_pre"] = per[:, 1].copy(), per[:, 0].copy()
    for i, m in enumerate(metrics):
        if m.steps:  # in the assignment order, as people
            funnel = _funnel_metric(t, people, m, i, pre_us, post_us, until_us, observed_until)
            for suffix in ("", "_pre"):
                columns_out[f"m{i}{suffix}"] = funnel[f"m{i}{suffix}"].to_numpy(float)
    out = pd.DataFrame({"user_id": columns_out["user_id"]})
    for i in range(len(metrics)):
        for suffix in ("", "_pre"):
            out[f"{i}{suffix}"] = columns_out.get(f"m{i}{suffix}", 0.0)
    return out


def _funnel_metric(t: ibis.Table, people: pd.DataFrame, m: Metric, i: int, pre_us: int, post_us: int | None,
                   until_us: int, observed_until: pd.Timestamp) -> pd.DataFrame:
    """Step ``m.step`` of the funnel reached inside each person's post window (and pre window)."""
    from helpers.funnel import compute_funnel

    p = ibis.memtable(pa.table({"user_id": pa.array(people["user_id"].array), "at_us": people["at_us"].to_numpy()}))
    e = t.mutate(us=epoch_us(t.timestamp))
    j = e.inner_join(p, "user_id")
    delta = j.us - j.at_us
    out = people[["user_id"]].copy()
    windows = {"": (delta >= 0) & (j.us <= until_us) & ((delta <= post_us) if post_us is not None else True),
               "_pre": (delta < 0) & (delta >= -pre_us)}
    for suffix, window in windows.items():
        within = j.filter(window).drop("us", "at_us")
        span = (pd.Timedelta(microseconds=post_us) if post_us is not None else
                observed_until - pd.Timestamp(people["at_us"].min() * 1000, tz="UTC")) if suffix == "" else \
            pd.Timedelta(microseconds=max(pre_us, 1))
        if suffix == "_pre" and pre_us == 0:
            out[f"m{i}{suffix}"] = 0.0
            continue
        options = {"conversion_window": span, **m.funnel_options}
        import warnings

        with warnings.catch_warnings():  # a step nobody reaches in the window is a result here, not a warning
            warnings.simplefilter("ignore", UserWarning)
            r = compute_funnel(within, list(m.steps), observed_until=observed_until, **options)
        reached = r.per_user.loc[r.per_user["furthest_step"] >= m.step, "user_id"].astype(str)
        out[f"m{i}{suffix}"] = out["user_id"].isin(set(reached)).astype(float).to_numpy()
    return out


def counts_by_arm(values: np.ndarray, arm: np.ndarray, n_arms: int) -> tuple[np.ndarray, np.ndarray,
                                                                             np.ndarray]:
    """Per arm: persons, mean and sample standard deviation of ``values`` (``arm`` codes 0..n_arms-1)."""
    n = np.bincount(arm, minlength=n_arms).astype(float)
    s = np.bincount(arm, weights=values, minlength=n_arms)
    s2 = np.bincount(arm, weights=values * values, minlength=n_arms)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s / n
        var = np.maximum(s2 - n * mean * mean, 0) / (n - 1)
    return n, mean, np.sqrt(var)


def load_assignments(source: str | Any | pd.DataFrame, *, experiment: str | None = None,
                     users: pd.DataFrame | None = None) -> pd.DataFrame:
    """The assignment table of one experiment, read from a Parquet or CSV file (or a DataFrame), with user
    attributes (a persona, a plan) joined on for :func:`~helpers.experiments.readout`'s ``by``.

    A file holding several experiments has an ``experiment`` column; pick one with ``experiment``. The file
    is only read. Attributes of ``users`` that the assignments already have are not joined again.

    Examples
    --------
    >>> a = pd.DataFrame({"experiment": ["x", "x", "y"], "user_id": ["1", "2", "1"], "variant": ["A", "B", "A"],
    ...                   "assigned_at": ["2024-01-01"] * 3})
    >>> load_assignments(a, experiment="x", users=pd.DataFrame({"user_id": ["1"], "persona": ["p"]}))[
    ...     ["user_id", "variant", "persona"]].fillna("-").values.tolist()
    [['1', 'A', 'p'], ['2', 'B', '-']]
    """
    from pathlib import Path

    if isinstance(source, pd.DataFrame):
        table, where = source.copy(), "assignments"
    else:
        path = Path(source)
        where = str(path)
        if not path.exists():
            raise EventDataError(f"{path}: no such assignments file (it needs user_id, variant and assigned_at).")
        try:
            # Arrow-backed columns: 500k ids as Python strings took 0.15-0.4 s to read, more than the check after
            table = pd.read_parquet(path, dtype_backend="pyarrow") if path.suffix in (".parquet", ".pq") or \
                path.is_dir() else pd.read_csv(path, dtype={"user_id": str, "variant": str})
        except Exception as exc:  # noqa: BLE001 - any reader failure, said with the file's name
            raise EventDataError(f"{path}: cannot be read as an assignments table ({exc}).") from exc
    missing = [c for c in ("user_id", "variant", "assigned_at") if c not in table.columns]
    if missing:
        raise EventDataError(f"{where} has no column {', '.join(missing)} (columns: {', '.join(map(str, table.columns))}).")
    if "experiment" in table.columns:
        names = sorted(table["experiment"].dropna().astype(str).unique().tolist())
        if experiment is None and len(names) > 1:
            raise EventDataError(f"{where} holds {len(names)} experiments ({', '.join(names)}); pick one with "
                                 f"experiment=...")
        if experiment is not None:
            if experiment not in names:
                raise EventDataError(f"{where}: no experiment {experiment!r} (experiments: {', '.join(names)}).")
            table = table[table["experiment"].astype(str) == experiment]
    table = table.assign(user_id=table["user_id"].astype(ID_DTYPE))
    if users is not None and "user_id" in users.columns:
        extra = [c for c in users.columns if c != "user_id" and c not in table.columns]
        if extra:
            attrs = users[["user_id", *extra]].assign(user_id=users["user_id"].astype(ID_DTYPE))
            table = table.merge(attrs.drop_duplicates("user_id"), on="user_id", how="left")
    return table.reset_index(drop=True)
