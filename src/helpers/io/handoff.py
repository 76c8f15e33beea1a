"""Writing the canonical table and the tables notebooks hand to each other.

Each written table carries a fingerprint of the events it was built from, so
that a stale hand-off from an earlier run is recognised instead of read.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from helpers.io.schema import _LOAD_INFO_KEY, CANONICAL_COLUMNS, EventDataError


def write_events(events: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write a canonical event table to Parquet (timestamps in microseconds, UTC).

    The load record (``events.attrs["helpers.load"]``) travels in the file's
    metadata, so a later notebook can show what loading dropped.

    Examples
    --------
    >>> from helpers.io import load_events
    >>> import tempfile
    >>> ev = load_events(pd.DataFrame({"user_id": ["u1"], "event": ["visit"],
    ...                                "timestamp": ["2025-01-01T00:00:00Z"]}))
    >>> out = write_events(ev, Path(tempfile.mkdtemp()) / "events.parquet")
    >>> load_events(out)["timestamp"].iloc[0]
    Timestamp('2025-01-01 00:00:00+0000', tz='UTC')
    """
    missing = [c for c in CANONICAL_COLUMNS if c not in events.columns]
    if missing:
        raise EventDataError(f"write_events: the table lacks the canonical column(s) {missing}; load it with load_events first.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(events, preserve_index=False)
    info = events.attrs.get(_LOAD_INFO_KEY)
    meta = {**(table.schema.metadata or {}), _FINGERPRINT_KEY: uuid.uuid4().hex.encode()}  # this write of the events
    if info is not None:
        meta[_LOAD_INFO_KEY.encode()] = json.dumps(info).encode()
    table = table.replace_schema_metadata(meta)
    # Microseconds: what Spark, warehouses and ibis' DuckDB types agree on.
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp, coerce_timestamps="us", allow_truncated_timestamps=True, compression="zstd")
    tmp.replace(path)
    return path


_FINGERPRINT_KEY = b"helpers.events_fingerprint"


def events_fingerprint(path: str | os.PathLike[str]) -> str | None:
    """The token :func:`write_events` stored in the file: new at every write, so hand-offs can tell which data
    they were made from (``None`` for a file it did not write)."""
    from helpers.config import resolve_path

    path = resolve_path(path)
    if not path.is_file():
        return None
    return ((pq.read_schema(path).metadata or {}).get(_FINGERPRINT_KEY) or b"").decode() or None


def write_handoff(table: pd.DataFrame, path: str | os.PathLike[str], events_path: str | os.PathLike[str]) -> Path:
    """Write a table one notebook hands to the next (the personas), atomically, stamped with the fingerprint of
    the events it was made from; :func:`current_handoff` reads it back only for those events."""
    from helpers.config import resolve_path

    path = resolve_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    stamp = (events_fingerprint(events_path) or "").encode()
    arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}), _FINGERPRINT_KEY: stamp})
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(arrow, tmp)
    tmp.replace(path)
    return path


def current_handoff(path: str | os.PathLike[str], events_path: str | os.PathLike[str]) -> Path | None:
    """``path`` when it exists and was made from the events now at ``events_path``; else ``None`` (a stale file
    from an earlier run, or another export, is not read: see :func:`handoff_note`).

    Examples
    --------
    >>> current_handoff("no/such/personas.parquet", "no/such/events.parquet") is None
    True
    """
    from helpers.config import resolve_path

    path = resolve_path(path)
    if not path.is_file():
        return None
    made_from = ((pq.read_schema(path).metadata or {}).get(_FINGERPRINT_KEY) or b"").decode()
    return path if made_from and made_from == events_fingerprint(events_path) else None


def handoff_note(path: str | os.PathLike[str], events_path: str | os.PathLike[str], what: str = "personas") -> str:
    """A sentence when a hand-off exists but belongs to other data (and is therefore not used); else ``""``."""
    from helpers.config import resolve_path

    if not resolve_path(path).is_file() or current_handoff(path, events_path) is not None:
        return ""
    return (f"The {what} file from an earlier run was made from other events, so it is not used here: run the "
            f"{what} notebook on these events to break the results down by {what.rstrip('s')}.")


def read_load_info(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The load record that :func:`write_events` stored in a Parquet file, if any."""
    meta = pq.read_schema(path).metadata or {}
    raw = meta.get(_LOAD_INFO_KEY.encode())
    return json.loads(raw) if raw else None
