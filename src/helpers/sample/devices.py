"""Devices and logins in the sample: which rows are anonymous, on which device, and the truth of who is who.

See :mod:`helpers.sample` for what is planted.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SECOND_DEVICE_SHARE = 0.25  # of those who sign up
SECOND_DEVICE_SESSIONS = 0.3  # of their sessions after signup
SHARED_DEVICE_SHARE = 0.01  # of those who sign up: sometimes log in on the previous sign-up's first device
SHARED_DEVICE_SESSIONS = 0.3


def _device_ids(numbers: np.ndarray) -> np.ndarray:
    """Distinct anonymous ids: an odd multiplier is a bijection modulo 2**48, so distinct numbers never collide."""
    mixed = (numbers.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) & np.uint64(2**48 - 1)
    return np.char.add("anon-", np.char.zfill(np.char.lower(np.vectorize(np.base_repr)(mixed.astype(np.int64), 16)), 12))


def add_devices(events: pd.DataFrame, user_ids: np.ndarray, signup_s: np.ndarray, origin: pd.Timestamp,
             first_user: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Add ``anonymous_id`` to ``events`` in place; return the device truth and which rows are anonymous.

    Own random stream, so that the journeys are the same with or without devices.
    """
    rng = np.random.default_rng([seed, 104])
    n = len(user_ids)
    idx = np.searchsorted(user_ids, events["user_id"].to_numpy(dtype=str))
    secs = (events["timestamp"] - origin).dt.total_seconds().to_numpy()
    logged_in = secs >= signup_s[idx]
    signed = np.isfinite(signup_s)
    first = _device_ids(np.arange(first_user, first_user + n))
    second = _device_ids(np.arange(first_user, first_user + n) + 2**40)
    has_second = signed & (rng.random(n) < SECOND_DEVICE_SHARE)
    # A shared laptop: the person who signed up just before (strictly earlier) owns it.
    order = np.flatnonzero(signed)[np.argsort(signup_s[signed], kind="stable")]
    owner = np.full(n, -1)
    earlier = np.r_[False, np.diff(signup_s[order]) > 0]
    owner[order[1:]] = np.where(earlier[1:], order[:-1], -1)
    shares = (owner >= 0) & (rng.random(n) < SHARED_DEVICE_SHARE)

    session, starts = pd.factorize(events["session_id"])
    n_sessions = len(starts)
    s_user = np.zeros(n_sessions, dtype=np.int64)
    s_user[session] = idx
    s_first = pd.Series(secs).groupby(session).min().to_numpy()
    # Sessions that start after the signup moment: the signup session itself stays on the first device, which
    # is what links the anonymous visits before it to the person.
    s_after = s_first > signup_s[s_user]
    draw = rng.random(n_sessions)
    on_shared = s_after & shares[s_user] & (draw < SHARED_DEVICE_SESSIONS)
    on_second = s_after & has_second[s_user] & ~on_shared & (rng.random(n_sessions) < SECOND_DEVICE_SESSIONS)
    first_ts = pd.Series(secs).groupby(session).transform("min").to_numpy()
    last_ts = pd.Series(secs).groupby(session).transform("max").to_numpy()
    # A second-device session opens anonymous (its first second) and logs in after; a one-moment session stays
    # logged in, or the device would never be linked.
    opens_anonymous = on_second[session] & (secs == first_ts) & (last_ts > first_ts)
    device = np.where(on_shared[session], first[np.maximum(owner[idx], 0)], np.where(on_second[session], second[idx],
                                                                                    first[idx]))
    events["anonymous_id"] = pd.array(device, dtype="string[pyarrow]")
    anonymous = ~logged_in | opens_anonymous

    used_second = np.unique(idx[on_second[session]])
    shared_owner = np.unique(owner[idx[on_shared[session]]])
    truth = pd.DataFrame({"anonymous_id": np.r_[first, second[used_second]],
                          "user_id": np.r_[user_ids, user_ids[used_second]],
                          "kind": np.r_[np.where(np.isin(np.arange(n), shared_owner), "shared", "first"),
                                        np.full(used_second.size, "second")]})
    for col in truth.columns:
        truth[col] = truth[col].astype("string[pyarrow]")
    return truth, anonymous
