"""Path-level attribution models in NumPy: the Markov chain's removal effects and the Shapley value.

Both work on distinct paths (channel codes in order) with their counts, never on events: ten million events
reduce to a few thousand paths. Both are linear in the path counts up to a normalisation, which is what makes
the bootstrap over persons cheap (a replicate only reweights the same paths).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy import sparse
from scipy.sparse.linalg import spsolve

EXACT_SHAPLEY_CHANNELS = 12  # 2^12 coalitions; beyond, permutation sampling
SHAPLEY_PERMUTATIONS = 4000
DENSE_STATES = 400  # up to this many Markov states the chain is solved with dense linear algebra


@dataclass
class Paths:
    """Distinct paths: flattened channel codes with their path index, and per-path counts."""

    code: np.ndarray  # int, every touch of every distinct path, in order
    path: np.ndarray  # int, the distinct path each touch belongs to
    position: np.ndarray  # int, 0-based position within its path
    length: np.ndarray  # int, touches per distinct path
    n_channels: int


def parse_paths(paths: pa.Array | list[str], n_channels: int, sep: str = ",") -> Paths:
    """Distinct path strings (``"0,3,1"``) as flat arrays.

    Examples
    --------
    >>> p = parse_paths(["0,1", "2"], 3)
    >>> p.code.tolist(), p.path.tolist(), p.position.tolist(), p.length.tolist()
    ([0, 1, 2], [0, 0, 1], [0, 1, 0], [2, 1])
    """
    lists = pc.split_pattern(pa.array(paths, pa.string()), sep)
    offsets = lists.offsets.to_numpy()
    length = np.diff(offsets)
    code = pc.cast(lists.flatten(), pa.int64()).to_numpy()
    path = np.repeat(np.arange(len(length)), length)
    position = np.arange(code.size) - offsets[:-1][path]
    return Paths(code=code, path=path, position=position, length=length, n_channels=n_channels)


@dataclass
class Chain:
    """The Markov chain's structure: states, and for every transition the path that makes it and what it counts."""

    state_key: np.ndarray  # per state: the channel codes of its history, as a (states, order) array (-1: none)
    src: np.ndarray  # transition from-state (index; start = n_states)
    dst: np.ndarray  # to-state (index; conversion = n_states + 1, null = n_states + 2)
    path: np.ndarray  # the path whose journeys make it
    kind: np.ndarray  # 0: every journey of the path, 1: its conversions, 2: its non-conversions
    n_states: int
    contains: np.ndarray  # (channels, states) bool: the state's history includes the channel
    maps: Any = None  # the distinct transitions and the path-count maps, filled on first use

    @property
    def start(self) -> int:
        return self.n_states


def chain(paths: Paths, order: int = 1) -> Chain:
    """States are the last ``order`` channels (order 1: the channel); transitions from start, between states,
    and from a path's last state to conversion or null."""
    n = paths.code.size
    hist = np.full((n, order), -1, np.int64)
    for j in range(order):  # hist[:, j]: the channel j touches back (within the same path)
        back = np.arange(n) - j
        ok = paths.position >= j
        hist[ok, j] = paths.code[back[ok]]
    base = paths.n_channels + 1
    if base ** order < 2**62:  # a history as one integer: a 1-D unique is far faster than unique rows
        packed = ((hist + 1) * base ** np.arange(order)).sum(axis=1)
        uniq, state = np.unique(packed, return_inverse=True)
        keys = (uniq[:, None] // base ** np.arange(order)) % base - 1
    else:
        keys, state = np.unique(hist, axis=0, return_inverse=True)
    state = state.ravel()
    s = len(keys)
    start, conv, null = s, s + 1, s + 2
    first = paths.position == 0
    prev = np.where(first, start, np.roll(state, 1))
    last = paths.position == paths.length[paths.path] - 1
    src = np.concatenate([prev, state[last], state[last]])
    dst = np.concatenate([state, np.full(last.sum(), conv), np.full(last.sum(), null)])
    path = np.concatenate([paths.path, paths.path[last], paths.path[last]])
    kind = np.concatenate([np.zeros(n, np.int8), np.ones(last.sum(), np.int8), np.full(last.sum(), 2, np.int8)])
    contains = np.zeros((paths.n_channels, s), bool)
    for j in range(order):
        ok = keys[:, j] >= 0
        contains[keys[ok, j], np.flatnonzero(ok)] = True
    return Chain(state_key=keys, src=src, dst=dst, path=path, kind=kind, n_states=s, contains=contains)


def _edge_maps(ch: Chain, n_paths: int) -> tuple[np.ndarray, np.ndarray, list[sparse.csr_matrix]]:
    """Distinct transitions and, per kind, the sparse map from path counts to their counts (built once)."""
    size = ch.n_states + 3
    pair, edge = np.unique(ch.src.astype(np.int64) * size + ch.dst, return_inverse=True)
    edge = edge.ravel()
    maps = []
    for kind in (0, 1, 2):
        m = ch.kind == kind
        maps.append(sparse.csr_matrix((np.ones(m.sum()), (edge[m], ch.path[m])), shape=(len(pair), n_paths)))
    return pair // size, pair % size, maps


def transition_counts(ch: Chain, conversions: np.ndarray, nulls: np.ndarray) -> np.ndarray | sparse.csr_matrix:
    """Transition counts between all states (start, states, conversion, null) for these path counts; dense when
    the chain is small (order 1 always is), sparse otherwise."""
    if ch.maps is None or ch.maps[2][0].shape[1] != len(conversions):
        ch.maps = _edge_maps(ch, len(conversions))
    src, dst, (m_total, m_conv, m_null) = ch.maps
    w = m_total @ (conversions + nulls) + m_conv @ conversions + m_null @ nulls
    size = ch.n_states + 3
    if size <= DENSE_STATES:
        out = np.zeros((size, size))
        out[src, dst] = w
        return out
    return sparse.coo_matrix((w, (src, dst)), shape=(size, size)).tocsr()


def _probabilities(counts: np.ndarray | sparse.csr_matrix) -> np.ndarray | sparse.csr_matrix:
    out = np.asarray(counts.sum(axis=1)).ravel()
    with np.errstate(divide="ignore"):
        inv = np.where(out > 0, 1.0 / out, 0.0)
    if isinstance(counts, np.ndarray):
        return counts * inv[:, None]
    return sparse.diags(inv) @ counts


def conversion_probability(prob: np.ndarray | sparse.csr_matrix, n_states: int,
                           removed: np.ndarray | None = None) -> float:
    """P(reaching conversion from start), solved exactly on the absorbing chain: (I - Q) x = r.

    ``removed``: states whose inflow goes to null (their x is 0), i.e. they are taken out of the system.
    """
    keep = np.ones(n_states + 1, bool)  # transient states and start
    if removed is not None:
        keep[:n_states] &= ~removed
    idx = np.flatnonzero(keep)
    if isinstance(prob, np.ndarray):
        q = prob[np.ix_(idx, idx)]
        x = np.linalg.solve(np.eye(len(idx)) - q, prob[idx, n_states + 1])
        return float(x[-1])
    q = prob[idx][:, idx]
    r = np.asarray(prob[idx, n_states + 1].todense()).ravel()
    system = (sparse.identity(len(idx), format="csc") - q.tocsc())
    x = np.atleast_1d(spsolve(system, r))
    return float(x[-1])  # start is the last kept index


def removal_effects(ch: Chain, conversions: np.ndarray, nulls: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """RE(c) = 1 - P(conversion without c) / P(conversion) per channel, P, and the transition probabilities."""
    prob = _probabilities(transition_counts(ch, conversions, nulls))
    p = conversion_probability(prob, ch.n_states)
    effects = np.zeros(ch.contains.shape[0])
    if p <= 0:
        return effects, p, prob
    for c in range(ch.contains.shape[0]):  # one small solve per channel
        if ch.contains[c].any():
            effects[c] = 1.0 - conversion_probability(prob, ch.n_states, ch.contains[c]) / p
    return effects, p, prob


def markov_credit(effects: np.ndarray, total: float) -> np.ndarray:
    """Credit proportional to the removal effects, summing to ``total``."""
    s = effects.sum()
    return effects / s * total if s > 0 else np.zeros_like(effects)


# --- Shapley ---------------------------------------------------------------------------------------------------


def path_sets(paths: Paths) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each distinct path's set of channels: (set index per path, flat members, set index per member)."""
    keys = np.zeros((len(paths.length), paths.n_channels), bool)
    keys[paths.path, paths.code] = True
    sets, set_of_path = np.unique(keys, axis=0, return_inverse=True)
    member_set, member = np.nonzero(sets)
    return set_of_path.ravel(), member, member_set


def shapley_matrix(member: np.ndarray, member_set: np.ndarray, n_sets: int, n_channels: int, *,
                   seed: int = 0, permutations: int = SHAPLEY_PERMUTATIONS) -> tuple[np.ndarray, str]:
    """The linear map from conversions per channel set to Shapley credit per channel, and how it was computed.

    The characteristic function is v(S) = the conversions of journeys whose channel set lies within S.
    Up to :data:`EXACT_SHAPLEY_CHANNELS` channels it is evaluated on every coalition (a subset-sum transform over
    2^n bitmasks) and the Shapley formula applied exactly; beyond, the value is averaged over seeded random
    orders of the channels (in each, a set's conversions go to its member that joins last).
    """
    present = np.unique(member)
    n = len(present)
    out = np.zeros((n_channels, n_sets))
    if n == 0:
        return out, "exact"
    local = np.searchsorted(present, member)
    if n <= EXACT_SHAPLEY_CHANNELS:
        masks = np.zeros(n_sets, np.int64)
        np.bitwise_or.at(masks, member_set, np.int64(1) << local)
        size = 1 << n
        popcount = np.array([bin(m).count("1") for m in range(size)])
        weight = np.array([math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n) if k < n else 0.0
                           for k in range(n + 1)])
        everything = np.arange(size)
        # v_s(S) = 1 when set s lies within coalition S: the game with one conversion on set s (one row per set)
        within = (everything[None, :] & masks[:, None]) == masks[:, None]
        for c in range(n):
            without = everything[(everything >> c) & 1 == 0]
            gain = within[:, without | (1 << c)].astype(np.float64) - within[:, without]
            out[present[c]] = gain @ weight[popcount[without]]
        return out, "exact"
    rng = np.random.default_rng(seed)
    counts = np.zeros((n, n_sets))
    for _ in range(permutations):
        rank = rng.permutation(n)
        r = rank[local]
        order = np.lexsort((r, member_set))  # by set, then rank: a set's last member is its group's last row
        last_row = np.flatnonzero(np.r_[member_set[order][1:] != member_set[order][:-1], True])
        counts[local[order][last_row], member_set[order][last_row]] += 1
    out[present] = counts / permutations
    return out, f"sampled ({permutations:,} random orders of {n} channels, seed {seed})"
