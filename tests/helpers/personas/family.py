"""A family of planted persona generators, written independently of the bundled sample.

Each :class:`Generator` plants ``k`` personas that differ only in what its
``differ`` names (``content``: the pages viewed, ``actions``: the event mix,
``channels``: where events come from, ``activity``: how much a user does,
``spend``: how often and how much they buy), with users varying inside a persona
(a Dirichlet draw around the persona's mix, a log-normal activity level) and the
multinomial noise of finite event counts. Options: unequal sizes, heavy-tailed
(Pareto) activity, and noise users whose mix is drawn around the overall mix
(truth ``-1``, left out of the ARI but present in the fit).

Run ``python tests/helpers/personas/family.py`` for the table of every
generator's ARI at the true k and the automatically chosen k.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

EVENTS = ["page_view", "search", "view_item", "add_to_cart", "share", "comment", "upload", "wishlist"]
PAGES = ["home", "deals", "docs", "blog", "pricing", "reviews", "careers", "help", "catalog"]
CHANNELS = ["direct", "search_ads", "social", "email", "app"]
DAYS = 90
START = pd.Timestamp("2026-01-05", tz="UTC")


@dataclass(frozen=True)
class Generator:
    """One planted persona log: ``k`` personas differing in ``differ``; see the module docstring."""

    name: str
    k: int
    differ: tuple[str, ...]
    users: int = 2_400
    sizes: tuple[float, ...] | None = None  # persona shares; equal when None
    heavy_tail: bool = False
    noise_share: float = 0.0
    seed: int = 0
    concentration: float = 25.0  # Dirichlet concentration of a user's mix around the persona's: lower overlaps more
    lift: float = 3.0  # how much a persona raises its signature categories
    extra: dict = field(default_factory=dict)

    def needs_all_groups(self) -> bool:
        """Personas that differ only in volume or spend are invisible to the behaviour-mix default."""
        return not set(self.differ) & {"content", "actions", "channels"}


def _mixes(rng: np.random.Generator, k: int, n: int, lift: float, on: bool) -> np.ndarray:
    """k mixes over n categories: a common base, each persona lifting its own two signature categories."""
    base = rng.dirichlet(np.full(n, 8.0))
    if n == len(EVENTS):
        base[0] += 1.0  # page views are about half of all events, as on most sites
        base /= base.sum()
    out = np.tile(base, (k, 1))
    if on:
        for p in range(k):
            sig = [(2 * p) % n, (2 * p + 1) % n] if k <= n // 2 else [p % n]
            out[p, sig] *= lift
    return out / out.sum(axis=1, keepdims=True)


def _categorical(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One draw per row of ``probs`` (rows sum to 1), vectorised."""
    cum = probs.cumsum(axis=1)
    u = rng.random(len(probs))[:, None]
    return np.minimum((u > cum).sum(axis=1), probs.shape[1] - 1)


def generate(g: Generator) -> tuple[pd.DataFrame, pd.Series]:
    """The events (canonical table, with a ``page`` property) and each user's planted persona (-1: noise).

    Examples
    --------
    >>> ev, truth = generate(Generator("t", 2, ("content",), users=50))
    >>> sorted(truth.unique().tolist()), set(ev["user_id"]) == set(truth.index)
    ([0, 1], True)
    """
    rng = np.random.default_rng([g.seed, g.k, len(g.differ), 22])
    sizes = np.asarray(g.sizes if g.sizes is not None else np.full(g.k, 1 / g.k), dtype=float)
    n_noise = int(round(g.users * g.noise_share))
    n_real = g.users - n_noise
    counts = np.floor(sizes / sizes.sum() * n_real).astype(int)
    counts[0] += n_real - counts.sum()
    persona = np.r_[np.repeat(np.arange(g.k), counts), np.full(n_noise, -1)]
    n = len(persona)
    d = set(g.differ)

    def user_mix(categories: int, on: bool) -> np.ndarray:
        mixes = _mixes(rng, g.k, categories, g.lift, on)
        centre = np.where(persona[:, None] >= 0, mixes[np.maximum(persona, 0)], mixes.mean(axis=0))
        return np.vstack([rng.dirichlet(g.concentration * c) for c in centre])  # users, not events: small

    event_mix = user_mix(len(EVENTS), "actions" in d)
    page_mix = user_mix(len(PAGES), "content" in d)
    channel_mix = user_mix(len(CHANNELS), "channels" in d)
    # Activity: events per user, log-normal around the persona's level (x3 per step when activity differs).
    level = np.where("activity" in d, 3.0 ** (np.maximum(persona, 0) % 3), 1.0) * np.where(persona < 0, 1.5, 1.0)
    scale = rng.pareto(1.5, n) + 0.3 if g.heavy_tail else rng.lognormal(0, 0.3, n)
    n_events = np.maximum(3, rng.poisson(40 * level * scale)).astype(int)
    active_days = np.minimum(DAYS, np.maximum(1, np.ceil(n_events / rng.uniform(2, 5, n)))).astype(int)
    # Spend: purchase probability per event and order value (persona p buys (1 + 2p) times as often, (1 + 1.5p) times as much).
    buy = np.where(persona >= 0, 0.04 * (1 + 2 * np.maximum(persona, 0) * ("spend" in d)), 0.04)
    basket = np.where(persona >= 0, 30 * (1 + 1.5 * np.maximum(persona, 0) * ("spend" in d)), 30)

    user = np.repeat(np.arange(n), n_events)
    m = len(user)
    kind = _categorical(rng, event_mix[user])
    event = np.asarray(EVENTS, dtype=object)[kind]
    is_buy = rng.random(m) < buy[user]
    event[is_buy] = "purchase"
    value = np.where(is_buy, rng.lognormal(np.log(basket[user]), 0.4), np.nan)
    page = np.where((kind == 0) & ~is_buy, np.asarray(PAGES, dtype=object)[_categorical(rng, page_mix[user])], None)
    channel = np.asarray(CHANNELS, dtype=object)[_categorical(rng, channel_mix[user])]
    first_day = rng.integers(0, DAYS // 3, n)
    span = np.minimum(DAYS - first_day, active_days * rng.uniform(1, 3, n)).astype(float)
    day = first_day[user] + np.floor(rng.integers(0, active_days[user]) * span[user] / active_days[user])
    seconds = day * 86_400 + rng.uniform(0, 86_400, m)
    ids = np.char.add("u", np.arange(n).astype(str)).astype(object)
    events = pd.DataFrame({"user_id": ids[user], "event": event,
                           "timestamp": START + pd.to_timedelta(seconds, unit="s"),
                           "channel": channel, "page": page, "value": value})
    truth = pd.Series(persona, index=pd.Index(ids, name="user_id"), name="persona")
    return events, truth


FAMILY: tuple[Generator, ...] = (
    Generator("content only", 4, ("content",), lift=6.0),
    Generator("event mix only", 4, ("actions",), lift=6.0),
    Generator("channels only", 3, ("channels",), lift=6.0),
    Generator("activity only", 3, ("activity",)),
    Generator("spend only", 3, ("spend",)),
    Generator("all four (the issue's log)", 4, ("content", "actions", "channels", "activity", "spend"), users=4_000),
    Generator("two personas", 2, ("content", "channels")),
    Generator("five, content + events", 5, ("content", "actions"), lift=5.0),
    Generator("six, mixed", 6, ("content", "actions", "channels"), users=3_000, lift=4.0),
    Generator("seven, mixed", 7, ("content", "actions", "channels"), users=3_500, lift=4.0),
    Generator("one persona 5%", 4, ("content", "actions"), sizes=(0.40, 0.30, 0.25, 0.05)),
    Generator("heavy-tailed activity", 4, ("content", "actions", "channels"), heavy_tail=True),
    Generator("10% noise users", 4, ("content", "actions", "channels"), noise_share=0.10),
    Generator("overlapping mixes", 4, ("content", "actions", "channels"), concentration=12.0),
)


def evaluate(g: Generator, **settings) -> dict:
    """Fit on the generator's log at the true k and with automatic k; ARI against the truth (noise users left out)."""
    from sklearn.metrics import adjusted_rand_score

    from helpers.personas import fit_personas, user_features

    events, truth = generate(g)
    f = user_features(events)
    truth = truth.loc[f.index]
    groups = settings.pop("feature_groups", "all" if g.needs_all_groups() else None)
    if groups is not None:
        settings["feature_groups"] = groups
    real = (truth >= 0).to_numpy()
    fixed = fit_personas(f, g.k, **settings)
    auto = fit_personas(f, None, **settings)
    return {"generator": g.name, "k": g.k, "groups": "all" if groups == "all" else "default",
            "ari": adjusted_rand_score(truth[real], fixed.labels_[real]),
            "chosen_k": auto.n_personas_, "ari_auto": adjusted_rand_score(truth[real], auto.labels_[real]),
            "k_by_silhouette": int(auto.k_scores_.loc[auto.k_scores_["silhouette"].idxmax(), "n_personas"]),
            "min_stability": float(fixed.stability_.min()) if hasattr(fixed, "stability_") else float("nan")}


def oracle(g: Generator) -> float:
    """The ARI a classifier given the true labels reaches (5-fold cross-validated logistic regression on
    every feature, log1p and standardized): the ceiling of what the features carry."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import adjusted_rand_score
    from sklearn.model_selection import cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from helpers.personas import user_features

    events, truth = generate(g)
    f = user_features(events)
    truth = truth.loc[f.index]
    real = (truth >= 0).to_numpy()
    X = np.log1p(f.fillna(f.max()).clip(lower=0).to_numpy(float))[real]
    pred = cross_val_predict(make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)), X, truth[real], cv=5)
    return adjusted_rand_score(truth[real], pred)


def table(**settings) -> pd.DataFrame:
    """:func:`evaluate` on every generator of :data:`FAMILY`."""
    return pd.DataFrame([evaluate(g, **dict(settings)) for g in FAMILY])


if __name__ == "__main__":
    import sys

    pd.set_option("display.width", 200)
    t = table()
    print(t.round(3).to_string(index=False))
    for name, part in (("all", t), ("behaviour mix", t[t["groups"] == "default"])):
        print(f"{name}: median ARI {part['ari'].median():.3f}, worst {part['ari'].min():.3f}, "
              f"k right {(part['chosen_k'] == part['k']).sum()}/{len(part)}, "
              f"max off {(part['chosen_k'] - part['k']).abs().max()}; by silhouette "
              f"{(part['k_by_silhouette'] == part['k']).sum()}/{len(part)}")
    sys.exit(0)
