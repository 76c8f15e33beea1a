"""The sample's event buffers as the canonical event table: user ids, 30-minute sessions, labels, and the
planted exact duplicates (SDK retries)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from helpers.sample import CHANNELS, DUPLICATE_RATE, EVENTS, PAGES


def user_id_strings(n: int, first: int = 1, width: int | None = None) -> np.ndarray:
    """``u`` and a zero-padded number, from ``first``, at least 6 digits (``u000001``)."""
    width = max(6, len(str(first + n - 1)), width or 0)
    return np.char.add("u", np.char.zfill(np.arange(first, first + n).astype(str), width))


def to_frame(cols: dict[str, np.ndarray], user_ids: np.ndarray, origin: pd.Timestamp,
             rng: np.random.Generator) -> pd.DataFrame:
    """Columns to the canonical layout, with 30-minute sessions and a few exact duplicates."""
    order = np.lexsort((cols["event"], cols["t"], cols["user"]))
    cols = {k: v[order] for k, v in cols.items()}
    user, t = cols["user"], cols["t"]
    new_user = np.r_[True, user[1:] != user[:-1]]
    new_session = new_user | np.r_[True, np.diff(t) > 1800.0]
    session_no = np.cumsum(new_session) - np.repeat(np.cumsum(new_session)[new_user], np.diff(np.r_[np.flatnonzero(new_user), user.size]))
    ids = pa.array(user_ids).take(pa.array(user))
    session = pc.binary_join_element_wise(ids, pc.cast(pa.array(session_no), pa.string()), "-s")

    def text(arr: pa.Array) -> pd.arrays.ArrowStringArray:
        return pd.arrays.ArrowStringArray(pc.cast(arr, pa.string()))  # zero-copy into pandas

    def labels(codes: np.ndarray, names: tuple[str, ...]) -> pd.arrays.ArrowStringArray:
        mask = pa.array(codes < 0)
        dictionary = pa.DictionaryArray.from_arrays(pa.array(np.maximum(codes, 0).astype(np.int32)), pa.array(names))
        return text(pc.if_else(mask, pa.scalar(None, pa.string()), dictionary.cast(pa.string())))

    stamp = (origin.value + (t * 1e9).astype(np.int64)).view("datetime64[ns]")
    frame = pd.DataFrame({
        "user_id": text(ids),
        "event": labels(cols["event"], EVENTS),
        "timestamp": pd.Series(stamp).dt.tz_localize("UTC"),
        "session_id": text(session),
        "channel": labels(cols["channel"], CHANNELS),
        "value": cols["value"],
        "page": labels(cols["page"], PAGES),
        "onboarding_step": pd.array(np.where(cols["step"] >= 0, cols["step"], np.nan)).astype("Int8"),
    })
    dupes = np.flatnonzero(rng.random(len(frame)) < DUPLICATE_RATE)
    if dupes.size:  # SDK retries: the same row twice, right after itself
        frame = frame.take(np.sort(np.r_[np.arange(len(frame)), dupes])).reset_index(drop=True)
    frame.attrs["planted_duplicates"] = int(dupes.size)
    return frame
