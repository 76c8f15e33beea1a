"""load_events: any supported input to the canonical event table.

Every dropped row is counted by its rule (a missing field, the time range,
an exact duplicate) and every value that cannot be converted is an error.
"""

from __future__ import annotations

import json
import os
from typing import Mapping

import numpy as np
import pandas as pd
import pyarrow as pa

from helpers.io.reading import STITCH_COLUMNS, _apply_mapping, _stitching_preset, _label, _na_like, _preset_hint, _read, _resolve_mapping, _where
from helpers.io.schema import _LOAD_INFO_KEY, CANONICAL_COLUMNS, STRING, EventDataError, _as_string, _closest, _examples
from helpers.io.timestamps import _TIMESTAMP_UNITS, _bound, _parse_timestamps


def load_events(
    source: str | os.PathLike[str] | pd.DataFrame,
    *,
    mapping: str | Mapping[str, str] | None = None,
    timestamp_unit: str | None = None,
    timestamp_format: str | None = None,
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
    normalize_ids: bool = False,
    default_event: str | None = None,
    drop_duplicates: bool = True,
    stitch: bool | None = None,
) -> pd.DataFrame:
    """Load an event export as the canonical event table (see the module docstring).

    Parameters
    ----------
    source
        A CSV or TSV file (also ``.gz``), a Parquet file, folder or glob, a JSON
        lines file (also ``.gz``; nested objects are flattened to ``a.b``
        names), or a pandas DataFrame. Files are only read.
    mapping
        ``{export column: canonical column}`` (as in ``DataFrame.rename``), or
        a preset: ``"amplitude"``, ``"segment"``, ``"mixpanel"``, ``"ga4"``.
    timestamp_unit
        ``"s"``, ``"ms"``, ``"us"`` or ``"ns"`` for epoch numbers; ``None``
        reads each value's unit from its magnitude (presets set it) and refuses
        a guess that puts values before 1990 or more than a year ahead.
    timestamp_format
        A ``strftime`` format for timestamps written another way than ISO
        8601, e.g. ``"%Y%m%d"`` for ``20250131``; taken as UTC.
    start, end
        Keep events with ``start <= timestamp < end`` (naive values are UTC);
        the rows left out are counted.
    normalize_ids
        Strip spaces around user ids and lower-case them, so that ``"U1"``,
        ``"u1"`` and ``" u1 "`` are one user (:func:`data_quality` reports such
        ids when this is off); the rows whose id changed are counted.
    default_event
        The event of every row when the export has no event column (a table
        of purchases: ``"purchase"``); an event column, when present, wins.
    drop_duplicates
        Remove rows equal to an earlier row in every column (the default;
        counted, with examples). ``False`` keeps them, for exports where equal
        rows are real repeats (two equal purchases on one day); they are
        still counted.
    stitch
        Give every event the id of the person behind it across anonymous ids,
        devices and logins (:func:`helpers.identity.stitch_identities`).
        ``None`` (the default) stitches when the export has ids to stitch: the
        Segment (``anonymousId``), Amplitude (``device_id``), Mixpanel
        (``$device_id``, ``distinct_id``, ``$user_id``) and GA4
        (``user_pseudo_id``, ``user_id``) presets, or an ``anonymous_id``,
        ``distinct_id`` or ``device_id`` column (after ``mapping``). ``False``
        keeps ``user_id`` as it is (Segment then falls back to ``anonymousId``
        where ``userId`` is null). The counts are in the load record and
        :func:`data_quality`.

    Returns
    -------
    pandas.DataFrame
        Columns ``user_id``, ``event``, ``timestamp`` first, then the optional
        ``session_id``, ``channel``, ``value`` present, then the properties.
        ``.attrs["helpers.load"]`` records the source, the rows read, the
        duplicates removed and the rows dropped per reason;
        :func:`data_quality` shows them.

    Raises
    ------
    EventDataError
        With the source, the column and up to five offending values.

    Examples
    --------
    >>> raw = pd.DataFrame({"userId": ["7", "7", None], "anonymousId": ["a1", "a1", "a2"],
    ...                     "event": ["Signed Up", "Signed Up", "Viewed"],
    ...                     "timestamp": ["2025-01-01T10:00:00+01:00"] * 2 + ["2025-01-02T00:00:00Z"]})
    >>> ev = load_events(raw, mapping="segment")
    >>> ev[["user_id", "event", "timestamp"]]
      user_id      event                 timestamp
    0       7  Signed Up 2025-01-01 09:00:00+00:00
    2      a2     Viewed 2025-01-02 00:00:00+00:00
    >>> ev.attrs["helpers.load"]["duplicates_removed"]
    1
    """
    preset = _resolve_mapping(mapping)
    if timestamp_unit is not None and timestamp_unit not in _TIMESTAMP_UNITS:
        raise EventDataError(f"timestamp_unit must be one of {', '.join(_TIMESTAMP_UNITS)} or None, not {timestamp_unit!r}.")
    bounds = {name: _bound(name, value) for name, value in (("start", start), ("end", end)) if value is not None}
    unit = timestamp_unit or (preset.timestamp_unit if preset else None)
    label, where = _label(source), _where(source)
    raw = _read(source, preset.rename if preset else {}, preset.user_fallback if preset else None)
    rows_read = len(raw)
    has_identity = bool(preset and preset.identity)
    preset, stitching = _stitching_preset(preset, stitch, [str(c) for c in raw.columns])
    df = _apply_mapping(raw, preset, label)
    del raw
    id_columns = [c for c in STITCH_COLUMNS[:-1] if c in df.columns]
    if not has_identity and stitch is not False and id_columns and "user_id" in df.columns:
        stitching = True
    if not stitching:
        id_columns = []

    if default_event is not None and "event" not in df.columns:
        df = df.assign(event=pd.array([str(default_event)] * len(df), dtype=STRING))
    columns = [str(c) for c in df.columns]
    for col in CANONICAL_COLUMNS:
        if col not in df.columns:
            sources = {v: k for k, v in preset.rename.items()} if preset else {}
            wanted = f"'{sources[col]}' (mapped to '{col}')" if col in sources else f"'{col}'"
            raise EventDataError(
                f"{label}: required column {wanted} is missing. Columns present: {', '.join(columns)}."
                f"{_closest(sources.get(col, col), columns)}{_preset_hint(columns)}"
                " Pass mapping={export column: canonical column} to rename."
            )

    user_id = _as_string(df["user_id"])
    ids_normalized = 0
    if normalize_ids:
        normal = user_id.str.strip().str.lower()
        normal = normal.mask((normal == "").fillna(False))
        ids_normalized = int((normal != user_id).fillna(False).sum())
        user_id = normal
    if user_id.isna().all() and not stitching:
        raise EventDataError(
            f"{label}: column 'user_id' is null in all {rows_read:,} rows, e.g. {_examples(df['user_id'], np.ones(len(df), bool), where)}."
        )
    event = _as_string(df["event"])
    timestamp = _parse_timestamps(df["timestamp"], unit, source, "timestamp", timestamp_format)
    out = {"user_id": user_id, "event": event, "timestamp": timestamp}
    for col in ("session_id", "channel"):
        if col in df.columns:
            out[col] = _as_string(df[col])
    if "value" in df.columns:
        given = df["value"].mask(_na_like(df["value"]))  # 'NA', 'null'...: no value
        value = pd.to_numeric(given, errors="coerce").astype("float64")
        bad = (given.notna() & value.isna()).to_numpy()
        if bad.any():
            raise EventDataError(
                f"{label}: column 'value' has {int(bad.sum()):,} value(s) that are not numbers, e.g. "
                f"{_examples(df['value'], bad, where)}."
            )
        infinite = np.isinf(value.to_numpy())
        if infinite.any():  # a sum over them is inf or NaN: every revenue total would be unreadable
            raise EventDataError(
                f"{label}: column 'value' has {int(infinite.sum()):,} infinite value(s), e.g. "
                f"{_examples(df['value'], infinite, where)}; revenue and scores must be finite numbers."
            )
        out["value"] = value
        del value
    properties = [c for c in df.columns if c not in out]
    events = pd.DataFrame(out, copy=False)  # the columns are new already: a copy would double the peak
    for col in properties:
        prop = df[col]
        if prop.dtype == object and pd.api.types.infer_dtype(prop, skipna=True) == "string":
            prop = prop.astype(STRING)  # text properties as Arrow strings, like the canonical columns
        events[col] = prop
    # Only ``events`` may hold the columns from here: dropping rows then frees each original as it goes.
    del df, out, user_id, event, timestamp

    identity = None
    if stitching:
        from helpers.identity import stitch_identities

        for col in id_columns:
            events[col] = _as_string(events[col])
        stitched = stitch_identities(events, id_columns=(*id_columns, "user_id"), _drop_unkeyed=False)
        events = stitched.events
        identity = {m: int(v) for m, v in zip(stitched.report["measure"], stitched.report["value"])}
        del stitched
        if events["user_id"].isna().all():
            raise EventDataError(f"{label}: no row has a user id or any of {', '.join(id_columns)}.")

    dropped: dict[str, int] = {}
    keep = np.ones(len(events), dtype=bool)
    for reason, mask in (
        ("null user_id" if not stitching else f"no id (user_id, {', '.join(id_columns)})",
         events["user_id"].isna().to_numpy()),
        ("null event", events["event"].isna().to_numpy()),
        ("null timestamp", events["timestamp"].isna().to_numpy()),
    ):
        hit = mask & keep
        if hit.any():
            dropped[reason] = int(hit.sum())
            keep &= ~mask
    ts = events["timestamp"]
    for reason, name, before in (("before start", "start", True), ("at or after end", "end", False)):
        if name not in bounds:
            continue
        b = bounds[name]
        mask = (ts < b).to_numpy() if before else (ts >= b).to_numpy()
        hit = mask & keep
        if hit.any():
            dropped[reason] = int(hit.sum())
            keep &= ~mask
    del ts
    if not keep.all():
        events = _keep_rows(events, keep)
    if events.empty:
        raise EventDataError(f"{label}: no rows left after dropping {dropped} (of {rows_read:,} rows read).")

    duplicated = _exact_duplicates(events)
    duplicates = int(duplicated.sum())
    # Examples show the event and time only: the report shows them, and user ids never appear in a report.
    examples = [{"event": e, "timestamp": t.isoformat()} for e, t in
                zip(events["event"][duplicated].head(5), events["timestamp"][duplicated].head(5))]
    if duplicates and drop_duplicates:
        events = _keep_rows(events, ~duplicated)

    events.attrs[_LOAD_INFO_KEY] = {
        "source": label,
        "mapping": preset.name if preset else None,
        "rows_read": rows_read,
        "rows": len(events),
        "duplicates_removed": duplicates if drop_duplicates else 0,
        "duplicates_kept": 0 if drop_duplicates else duplicates,
        "duplicate_rule": "rows equal to an earlier row in every column, after conversion",
        "duplicate_examples": examples,
        "dropped": dropped,
        **({"ids_normalized": ids_normalized} if normalize_ids else {}),
        **({"identity": identity, "id_columns": [*id_columns, "user_id"]} if identity is not None else {}),
    }
    return events


def _keep_rows(frame: pd.DataFrame, keep: np.ndarray) -> pd.DataFrame:
    """``frame.loc[keep]`` column by column, each original column released once filtered: the peak is the
    table plus one column, not two tables (``frame`` is consumed)."""
    attrs = dict(frame.attrs)
    columns = {}
    for col in list(frame.columns):
        columns[col] = frame.pop(col)[keep]
    out = pd.DataFrame(columns, copy=False)
    out.attrs.update(attrs)
    return out


def _exact_duplicates(events: pd.DataFrame) -> np.ndarray:
    """Rows equal to an earlier row in every column (nulls equal to nulls).

    DuckDB hashes every row (multi-threaded, over zero-copy Arrow); only rows
    whose hash repeats are compared exactly in pandas, so a hash collision
    can never drop a row. Repeated hashes are found in pandas from the hash
    column alone (measured: about 27 bytes a row; grouping inside DuckDB held about 85).
    """
    import duckdb

    def hashable(col: pd.Series) -> pd.Series:
        if col.dtype == object:  # mixed or nested values (JSON): compare their JSON text
            return col.map(lambda v: None if v is None or v is pd.NA else json.dumps(v, sort_keys=True, default=str))
        return col

    frame = events.copy(deep=False)
    frame.columns = [f"c{i}" for i in range(frame.shape[1])]
    frame = frame.apply(hashable) if frame.dtypes.eq(object).any() else frame
    table = pa.Table.from_pandas(frame, preserve_index=False)
    con = duckdb.connect()
    try:
        con.register("t", table)
        hashes = con.execute(f"SELECT hash({', '.join(frame.columns)}) AS h FROM t").fetchnumpy()["h"]
    finally:
        con.close()
    del table
    candidates = np.flatnonzero(pd.Series(hashes).duplicated(keep=False).to_numpy())
    result = np.zeros(len(events), dtype=bool)
    if len(candidates):
        result[candidates] = frame.iloc[candidates].duplicated(keep="first").to_numpy()
    return result
