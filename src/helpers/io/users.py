"""User tables beside the events (one row per user: attributes, plans, variants).
"""

from __future__ import annotations

import os
from typing import Sequence

import pandas as pd

from helpers.io.reading import _format_kind
from helpers.io.schema import EventDataError


def read_users(source: str | os.PathLike[str] | None, *, required: bool = True) -> pd.DataFrame | None:
    """A user table (Parquet or CSV, one row per user) with ``user_id`` as a string column.

    Relative paths are taken from the project root, as in notebooks. A missing
    file is an error, or ``None`` with ``required=False`` (optional tables such
    as the personas, which exist only once their notebook has run).

    Examples
    --------
    >>> read_users("no/such/users.parquet", required=False) is None
    True
    """
    from helpers.config import resolve_path

    if source is None:
        if required:
            raise EventDataError("no user table given (None).")
        return None
    path = resolve_path(source)
    if not path.exists():
        if required:
            raise EventDataError(f"{path}: user table not found.")
        return None
    frame = pd.read_parquet(path) if _format_kind(path) == "parquet" else pd.read_csv(path, dtype={"user_id": str})
    if "user_id" not in frame.columns:
        raise EventDataError(f"{path}: a user table needs a 'user_id' column (columns: {', '.join(map(str, frame.columns))}).")
    frame["user_id"] = frame["user_id"].astype(str)
    return frame


def read_user_tables(sources: Sequence[str | os.PathLike[str] | None]) -> pd.DataFrame | None:
    """All user tables found among ``sources`` merged on ``user_id`` (outer); the first source wins a shared column.

    Missing files are skipped (``None`` when none exists): e.g. the personas,
    which exist once their notebook has run, beside the users export.

    Examples
    --------
    >>> a = pd.DataFrame({"user_id": ["1", "2"], "persona": ["x", "y"]})
    >>> b = pd.DataFrame({"user_id": ["2", "3"], "plan": ["pro", "free"], "persona": ["z", "z"]})
    >>> read_user_tables([None, a, b]).to_dict("list")
    {'user_id': ['1', '2', '3'], 'persona': ['x', 'y', nan], 'plan': [nan, 'pro', 'free']}
    """
    merged = None
    for src in sources:
        if src is None:
            continue
        frame = src.assign(user_id=src["user_id"].astype(str)) if isinstance(src, pd.DataFrame) else read_users(src, required=False)
        if frame is None:
            continue
        if merged is None:
            merged = frame
        else:
            new = [c for c in frame.columns if c == "user_id" or c not in merged.columns]
            merged = merged.merge(frame[new], on="user_id", how="outer")
    return merged


def available(columns: Sequence[str], table: pd.DataFrame | None) -> list[str]:
    """Those of ``columns`` that ``table`` has, in the order given (e.g. the breakdowns a run can offer).

    Examples
    --------
    >>> available(["persona", "channel", "plan"], pd.DataFrame(columns=["plan", "persona"]))
    ['persona', 'plan']
    """
    return [] if table is None else [c for c in columns if c in table.columns]


def user_attribute(columns: str | Sequence[str], sources: Sequence[str | os.PathLike[str] | pd.DataFrame | None], *,
                   required: bool = True) -> pd.Series | None:
    """A user-level attribute as a Series indexed by ``user_id`` (string), named after its column.

    Takes the first of ``columns`` found in the first of ``sources`` (user
    tables: Parquet/CSV paths or DataFrames with a ``user_id`` column) that has
    it; missing files are skipped. Used for breakdowns: "persona when the
    persona notebook ran, else acquisition channel". When no table has any of
    the columns: an error, or ``None`` with ``required=False`` (a report
    section then says why it is skipped).

    Examples
    --------
    >>> users = pd.DataFrame({"user_id": [1, 2], "plan": ["pro", "free"]})
    >>> user_attribute(["persona", "plan"], [None, users]).to_dict()
    {'1': 'pro', '2': 'free'}
    """
    wanted = [columns] if isinstance(columns, str) else list(columns)
    tables = []
    for src in sources:
        if src is None:
            continue
        if isinstance(src, pd.DataFrame):
            tables.append(("DataFrame", src))
            continue
        frame = read_users(src, required=False)
        if frame is not None:
            tables.append((str(src), frame))
    for col in wanted:
        for label, frame in tables:
            if col in frame.columns:
                if "user_id" not in frame.columns:
                    raise EventDataError(f"{label}: a user table needs a 'user_id' column (columns: {', '.join(frame.columns)}).")
                series = frame.set_index(frame["user_id"].astype(str))[col]
                series.index.name = "user_id"
                return series.rename(col)
    if not required:
        return None
    raise EventDataError(f"none of the columns {wanted} is in the user tables "
                         f"({'; '.join(f'{lbl}: {list(f.columns)}' for lbl, f in tables) or 'none found'}).")
