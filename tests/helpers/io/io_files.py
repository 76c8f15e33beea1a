"""Small files and frames the io tests write and read."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

UTC = "UTC"


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz=UTC)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


CSV = """user_id,event,timestamp,channel,value,page
007,visit,2025-01-01T10:00:00Z,web,,home
007,signup,2025-01-01T10:05:00+01:00,web,,
42,visit,2025-01-02 08:00:00,app,,pricing
42,purchase,2025-01-03T00:00:00Z,app,19.5,
"""


def frame(**columns) -> pd.DataFrame:
    n = max(len(v) for v in columns.values())
    base = {"user_id": ["u1"] * n, "event": ["e"] * n}
    return pd.DataFrame({**base, **columns})
