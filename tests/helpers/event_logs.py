"""Hand-made event logs for the helpers' tests."""

from __future__ import annotations

import pandas as pd


def log(*rows) -> pd.DataFrame:
    """rows: (user, event, ISO time[, value])."""
    df = pd.DataFrame([r + (None,) * (4 - len(r)) for r in rows], columns=["user_id", "event", "timestamp", "value"])
    df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True, format="ISO8601")
    df["value"] = df["value"].astype(float)
    return df


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")
