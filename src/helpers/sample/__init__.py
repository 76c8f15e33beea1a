"""The bundled sample: synthetic customer journeys with a known ground truth.

:func:`generate_journeys` simulates a subscription shop whose customers move
through awareness (``ad_click``, landing ``page_view``), consideration
(``page_view`` with a ``page``), purchase (``signup``, ``add_to_cart``,
``checkout_started``, ``purchase``), onboarding/adoption
(``onboarding_step``, ``first_value``, ``feature_used``), retention
(``subscription_renewed``, ``repeat_purchase``, ``subscription_cancelled``),
expansion and advocacy (``nps_response``, ``csat_response``, ``review``,
``referral_sent``), on channels ads, search, social, email, push, web, app,
support, referral and affiliate.

What is planted, and returned apart from the events (:class:`Journeys`):

- five latent personas (:data:`PERSONAS`) that differ in channel mix, pages,
  speed, conversion, spend, activity, satisfaction and churn hazard;
- churn: from signup, a Weibull proportional-hazards lifetime with shape
  :data:`WEIBULL_SHAPE`, hazard ratio ``persona.hazard_ratio`` against the
  baseline persona ``researcher``, times :data:`ACTIVATION_HAZARD_RATIO` for
  users who reach ``first_value`` (always within their first week). A user
  who churns has a last session at the churn moment (and a
  ``subscription_cancelled`` if they had bought); activity thins out in the
  three weeks before. Users still alive at the end are right-censored;
- a planted conversion driver (``tutorial_completed``, :data:`TUTORIAL_SHARE`)
  and a planted assisting channel (``affiliate``: a reviews ``page_view``
  between signup and the first cart, :data:`AFFILIATE_SHARE`), which is never
  the last touch before a purchase (``truth.saw_affiliate_review``);
- non-contractual repeat purchases: after the first purchase a buyer re-orders
  from the BG/NBD process with Gamma-Gamma spend (:data:`REPEAT_PURCHASE`,
  the rate scaled per persona by ``repeat_rate_ratio``), until they drop out or
  leave the product (``truth.repeat_rate``, ``repeat_dropout``,
  ``repeat_spend_mean``, ``still_buying``);
- an A/B ``variant`` (users table) that lifts signup -> first_value by
  :data:`VARIANT_LIFT` (absolute) and nothing else directly; each person is
  assigned at signup (``assignments.parquet``, :meth:`Journeys.assignments`);
- devices and logins: every row carries the ``anonymous_id`` of the device
  it came from. Before signup a person is anonymous on their first device;
  a quarter of those who sign up later also use a second device, whose
  sessions begin anonymous and continue logged in; 1% of them sometimes log
  in on the first device of the person who signed up just before them (a
  shared household laptop), always logged in there. :meth:`Journeys.export`
  (what ``write_sample`` writes) has ``user_id`` null on the anonymous rows;
  ``identities`` holds the truth (device -> person); identity stitching
  recovers it exactly, persons who never signed up keeping their device id;
- the funnel probabilities per persona (``truth.funnel``), timestamp ties
  (``app_open`` and the next event in the same second; some ``first_value``
  logged with the last onboarding step), noise events, and exact duplicate
  rows (SDK retries, :data:`DUPLICATE_RATE`) that loading must remove.

The persona, the lifetimes and the probabilities never appear in the events.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from helpers.sample.plants import AFFILIATE_SHARE, REPEAT_PURCHASE, TUTORIAL_SHARE  # noqa: F401
from helpers.sample.plants import plant_affiliate, plant_repeat_purchases, plant_tutorial, signup_assignments

__all__ = [
    "ACTIVATION_HAZARD_RATIO",
    "DUPLICATE_RATE",
    "PERSONAS",
    "REPEAT_PURCHASE",
    "Journeys",
    "Persona",
    "VARIANT_LIFT",
    "WEIBULL_SHAPE",
    "generate_journeys",
    "write_sample",
]

DAY = 86_400.0  # seconds
WEIBULL_SHAPE = 0.8  # < 1: the churn hazard falls with tenure, as it does in most products
BASELINE_SCALE_DAYS = 140.0  # baseline persona, not activated: median lifetime about 88 days
ACTIVATION_HAZARD_RATIO = 0.6  # reaching first_value in the first week
VARIANT_LIFT = 0.05  # variant B: +5 points on signup -> first_value
DUPLICATE_RATE = 0.003
PART_USERS = 500_000  # write_sample generates larger samples in parts of this many users (memory)
CHURN_SLOWDOWN_DAYS = 21.0  # activity thins out over the last three weeks before churn
CHURN_SLOWDOWN_KEEP = 0.35
PLAN_PRICE = {"basic": 19.0, "pro": 49.0}
COUNTRIES = {"US": 0.34, "GB": 0.12, "DE": 0.12, "FR": 0.09, "IN": 0.1, "BR": 0.08, "CA": 0.07, "AU": 0.05, "NL": 0.03}

EVENTS = (
    "ad_click", "page_view", "signup", "onboarding_step", "first_value", "add_to_cart", "checkout_started",
    "purchase", "repeat_purchase", "subscription_renewed", "subscription_cancelled", "feature_used", "search",
    "support_ticket", "csat_response", "nps_response", "review", "referral_sent", "app_open", "email_open",
    "tutorial_completed",
)
CHANNELS = ("ads", "search", "social", "email", "push", "web", "app", "support", "referral", "affiliate")
PAGES = ("home", "pricing", "features", "docs", "blog", "deals", "reviews", "checkout")
ACQUISITION = ("ads", "search", "social", "email", "referral")
SESSION_EVENTS = ("page_view", "feature_used", "search", "add_to_cart", "shop_visit", "support_ticket",
                  "review", "referral_sent")
# A session event logged as another event: a visit to the shop is a page view (repeat purchases are planted apart,
# from the BG/NBD process: see helpers.sample.plants.plant_repeat_purchases).
SESSION_ALIASES = {"shop_visit": "page_view"}


@dataclass(frozen=True)
class Persona:
    """Behaviour of one latent persona (probabilities are per user unless said)."""

    name: str
    share: float
    hazard_ratio: float  # churn hazard relative to the baseline persona "researcher"
    acquisition: dict[str, float]  # acquisition channel mix
    app_share: float  # share of sessions in the app (else web)
    campaign_share: float  # share of sessions started from an email or push
    pages: dict[str, float]  # which pages they look at: each persona has a signature page
    pages_before_signup: float  # mean extra page views while considering
    signup: float
    signup_days: float  # mean days from first visit to signup
    first_value: float  # P(first_value | signup) in variant A
    first_value_hours: float
    cart: float  # P(add_to_cart | signup)
    checkout: float  # P(checkout_started | add_to_cart)
    purchase: float  # P(purchase | checkout_started)
    cart_days: float  # mean days from signup to the first cart
    spend: float  # median order value
    pro_share: float  # share of buyers on the pro plan
    sessions_per_week: float
    events_per_session: float
    session_mix: dict[str, float]
    nps_mean: float
    repeat_rate_ratio: float = 1.0  # repeat-purchase rate against the sample's BG/NBD rate (plants.REPEAT_PURCHASE)


PERSONAS: tuple[Persona, ...] = (
    Persona("power_user", 0.16, 0.5, {"search": .3, "referral": .3, "email": .2, "social": .1, "ads": .1},
            app_share=.85, campaign_share=.1, pages={"features": .8, "docs": .1, "pricing": .1},
            pages_before_signup=4, signup=.75, signup_days=.7, first_value=.80, first_value_hours=4,
            cart=.7, checkout=.8, purchase=.85, cart_days=3, spend=60, pro_share=.7,
            sessions_per_week=1.2, events_per_session=4,
            session_mix={"feature_used": 6, "search": 2, "page_view": 1.5, "add_to_cart": .5, "shop_visit": .25,
                         "support_ticket": .04, "review": .06, "referral_sent": .1}, nps_mean=9.0, repeat_rate_ratio=2.0),
    Persona("deal_seeker", 0.22, 1.5, {"email": .45, "ads": .25, "social": .15, "search": .1, "referral": .05},
            app_share=.45, campaign_share=.6, pages={"deals": .85, "pricing": .15},
            pages_before_signup=6, signup=.55, signup_days=1.5, first_value=.55, first_value_hours=10,
            cart=.8, checkout=.55, purchase=.6, cart_days=2, spend=25, pro_share=.1,
            sessions_per_week=.65, events_per_session=3,
            session_mix={"page_view": 4, "add_to_cart": 2.5, "search": 1, "shop_visit": .3, "feature_used": .4,
                         "support_ticket": .06, "review": .05, "referral_sent": .03}, nps_mean=6.3, repeat_rate_ratio=1.5),
    Persona("researcher", 0.20, 1.0, {"search": .55, "ads": .15, "referral": .1, "email": .1, "social": .1},
            app_share=.1, campaign_share=.1, pages={"docs": .5, "blog": .3, "pricing": .2},
            pages_before_signup=14, signup=.5, signup_days=6, first_value=.65, first_value_hours=20,
            cart=.45, checkout=.75, purchase=.8, cart_days=8, spend=120, pro_share=.55,
            sessions_per_week=.5, events_per_session=4.5,
            session_mix={"page_view": 5, "search": 2, "feature_used": 2, "add_to_cart": .3, "shop_visit": .08,
                         "support_ticket": .15, "review": .15, "referral_sent": .02}, nps_mean=7.6, repeat_rate_ratio=0.6),
    Persona("social_sharer", 0.17, 1.25, {"social": .65, "ads": .2, "referral": .1, "search": .05},
            app_share=.7, campaign_share=.25, pages={"reviews": .8, "features": .1, "home": .1},
            pages_before_signup=3, signup=.6, signup_days=.3, first_value=.6, first_value_hours=6,
            cart=.75, checkout=.5, purchase=.7, cart_days=.5, spend=45, pro_share=.3,
            sessions_per_week=.8, events_per_session=3,
            session_mix={"feature_used": 2, "page_view": 2, "referral_sent": 1.2, "review": .5, "add_to_cart": .8,
                         "shop_visit": .15, "search": .3, "support_ticket": .03}, nps_mean=8.3, repeat_rate_ratio=1.0),
    Persona("casual_browser", 0.25, 2.2, {"ads": .55, "social": .2, "search": .2, "email": .05},
            app_share=.3, campaign_share=.2, pages={"home": .7, "blog": .2, "deals": .1},
            pages_before_signup=2, signup=.25, signup_days=3, first_value=.4, first_value_hours=30,
            cart=.35, checkout=.5, purchase=.55, cart_days=6, spend=30, pro_share=.15,
            sessions_per_week=.4, events_per_session=2.2,
            session_mix={"page_view": 3, "feature_used": 1, "search": .5, "add_to_cart": .3, "shop_visit": .05,
                         "support_ticket": .05, "review": .02, "referral_sent": .01}, nps_mean=5.4, repeat_rate_ratio=0.5),
)
BASELINE_PERSONA = "researcher"


@dataclass
class Journeys:
    """Generated events, the users table, and the hidden ground truth.

    ``events`` and ``users`` are what an export would hold. ``truth`` has one
    row per user (``persona``, ``signed_up_at``, ``activated``, ``purchased``,
    ``lifetime_days`` from signup, ``churned``, ``churned_at``, and the repeat-purchase truth of
    :func:`~helpers.sample.plants.plant_repeat_purchases`);
    ``hazard_ratios`` the planted Cox coefficients as ratios; ``funnel`` the
    per-persona step probabilities; ``observed_until`` the end of the data.
    """

    events: pd.DataFrame
    users: pd.DataFrame
    truth: pd.DataFrame
    hazard_ratios: pd.DataFrame
    funnel: pd.DataFrame
    observed_until: pd.Timestamp
    personas: tuple[Persona, ...] = field(default=PERSONAS, repr=False)
    identities: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    anonymous_rows: np.ndarray | None = field(default=None, repr=False)

    def export(self) -> pd.DataFrame:
        """The events as a tracking export holds them: ``user_id`` null on the rows before login."""
        out = self.events.copy(deep=False)
        if self.anonymous_rows is not None:
            out["user_id"] = out["user_id"].mask(self.anonymous_rows)
        return out

    def assignments(self) -> pd.DataFrame:
        """The onboarding experiment: each person who signed up, assigned to their ``variant`` at signup
        (``user_id, variant, assigned_at``); B lifts signup -> first_value by :data:`VARIANT_LIFT`, nothing else."""
        return signup_assignments(self.users, self.truth)


class _Events:
    """Columnar event buffers: appended as whole arrays, never row by row."""

    def __init__(self) -> None:
        self.parts: list[dict[str, np.ndarray]] = []

    def add(self, user: np.ndarray, event: str | np.ndarray, t: np.ndarray, channel: int | np.ndarray,
            *, value: np.ndarray | None = None, page: np.ndarray | None = None, step: np.ndarray | None = None) -> None:
        n = len(user)
        if n == 0:
            return
        code = np.full(n, EVENTS.index(event), np.int8) if isinstance(event, str) else event.astype(np.int8)
        chan = np.full(n, channel, np.int8) if np.isscalar(channel) else np.asarray(channel, np.int8)
        self.parts.append({
            "user": user.astype(np.int32), "event": code, "t": t.astype(np.float64), "channel": chan,
            "value": np.full(n, np.nan) if value is None else value.astype(np.float64),
            "page": np.full(n, -1, np.int8) if page is None else page.astype(np.int8),
            "step": np.full(n, -1, np.int8) if step is None else step.astype(np.int8),
        })

    def concat(self) -> dict[str, np.ndarray]:
        return {k: np.concatenate([p[k] for p in self.parts]) for k in self.parts[0]}


def _choice(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One categorical draw per row of ``probs`` (rows sum to 1), vectorised."""
    cum = probs.cumsum(axis=1)
    u = rng.random(len(probs))[:, None]
    return np.minimum((u > cum).sum(axis=1), probs.shape[1] - 1)


def _mix(personas: tuple[Persona, ...], attr: str, names: tuple[str, ...]) -> np.ndarray:
    m = np.array([[getattr(p, attr).get(n, 0.0) for n in names] for p in personas], dtype=float)
    return m / m.sum(axis=1, keepdims=True)


def _repeat_index(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(owner, rank) for ``counts[i]`` items per owner: a vectorised nested loop."""
    owner = np.repeat(np.arange(len(counts)), counts)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return owner, np.arange(owner.size) - starts


def generate_journeys(
    n_users: int = 20_000,
    *,
    seed: int = 0,
    start: str = "2025-01-01",
    days: int = 180,
    first_user: int = 1,
    id_width: int | None = None,
) -> Journeys:
    """Simulate customer journeys with planted personas, churn hazards and an A/B effect.

    Deterministic for a given ``seed`` and arguments. Users arrive over the
    ``days`` after ``start`` (more later, fewer at weekends); everything after
    ``start + days`` is cut off, so late users are right-censored. User ids are
    ``u`` and a zero-padded number from ``first_user`` (``id_width`` digits, at
    least 6): generating in parts (see ``write_sample``) keeps them unique.

    Examples
    --------
    >>> j = generate_journeys(300, seed=1, days=60)
    >>> list(j.events.columns[:6])
    ['user_id', 'event', 'timestamp', 'session_id', 'channel', 'value']
    >>> bool(j.truth["persona"].isin([p.name for p in PERSONAS]).all())
    True
    >>> bool(j.events["timestamp"].max() < j.observed_until)
    True
    """
    if n_users < 1:
        raise ValueError(f"n_users must be at least 1, got {n_users}")
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    rng = np.random.default_rng(seed)
    personas = PERSONAS
    n, horizon = n_users, days * DAY
    out = _Events()
    ch = {c: i for i, c in enumerate(CHANNELS)}

    # --- who arrives when
    persona = rng.choice(len(personas), size=n, p=[p.share for p in personas])
    day_weight = (1.0 + 0.6 * np.arange(days) / days) * np.where(
        (pd.Timestamp(start) + pd.to_timedelta(np.arange(days), "D")).dayofweek >= 5, 0.7, 1.0)
    arrival_day = rng.choice(days, size=n, p=day_weight / day_weight.sum())
    hour = np.mod(rng.normal(14.0, 4.5, n), 24.0)
    first_seen = arrival_day * DAY + hour * 3600.0

    P = {a: np.array([getattr(p, a) for p in personas], dtype=float) for a in (
        "app_share", "campaign_share", "pages_before_signup", "signup", "signup_days", "first_value",
        "first_value_hours", "cart", "checkout", "purchase", "cart_days", "spend", "pro_share",
        "sessions_per_week", "events_per_session", "nps_mean", "hazard_ratio", "repeat_rate_ratio")}
    per = {k: v[persona] for k, v in P.items()}
    acquisition = _choice(rng, _mix(personas, "acquisition", ACQUISITION)[persona])
    page_mix = _mix(personas, "pages", PAGES)
    variant_b = rng.random(n) < 0.5
    country = rng.choice(list(COUNTRIES), size=n, p=np.array(list(COUNTRIES.values())) / sum(COUNTRIES.values()))
    users_idx = np.arange(n)

    # --- awareness: an ad click for paid/social arrivals, then the landing page
    acq_channel = np.array([ch[c] for c in ACQUISITION])[acquisition]
    paid = np.isin(acquisition, [ACQUISITION.index("ads"), ACQUISITION.index("social")])
    out.add(users_idx[paid], "ad_click", first_seen[paid], acq_channel[paid])
    landing = first_seen + np.where(paid, rng.exponential(20.0, n) + 1.0, 0.0)
    out.add(users_idx, "page_view", landing, acq_channel, page=np.full(n, PAGES.index("home")))

    # --- consideration and signup
    signs_up = rng.random(n) < per["signup"]
    signup_t = first_seen + 120.0 + rng.exponential(per["signup_days"] * DAY)
    signs_up &= signup_t < horizon
    consider_span = np.where(signs_up, signup_t - first_seen, rng.exponential(3 * DAY, n))
    n_pre = rng.poisson(per["pages_before_signup"])
    owner, _ = _repeat_index(n_pre)
    pre_t = first_seen[owner] + 60.0 + rng.random(owner.size) * consider_span[owner]
    out.add(owner, "page_view", pre_t, ch["web"], page=_choice(rng, page_mix[persona[owner]]))
    app_user = rng.random(n) < per["app_share"]
    own_channel = np.where(app_user, ch["app"], ch["web"])
    su = users_idx[signs_up]
    out.add(su, "signup", signup_t[su], own_channel[su])

    # --- onboarding and first value (the variant's only direct effect)
    steps_done = np.where(signs_up, (rng.random((n, 3)) < [0.95, 0.8, 0.65]).cumprod(axis=1).sum(axis=1), 0)
    owner, rank = _repeat_index(steps_done)
    step_gaps = rng.exponential(120.0, (n, 3)).cumsum(axis=1) + 5.0
    step_t = signup_t[owner] + step_gaps[owner, rank]
    p_first_value = np.clip(per["first_value"] + VARIANT_LIFT * variant_b, 0, 1)
    activated = signs_up & (rng.random(n) < p_first_value)
    fv_gap = np.minimum(rng.exponential(per["first_value_hours"] * 3600.0), 6 * DAY) + 30.0
    last_step_t = signup_t + np.where(steps_done > 0, step_gaps[users_idx, np.maximum(steps_done - 1, 0)], 0.0)
    same_second = rng.random(n) < 0.15  # logged together with the last onboarding step: a timestamp tie
    fv_t = np.where(same_second & (steps_done > 0), last_step_t, np.maximum(signup_t + fv_gap, last_step_t + 1.0))
    activated &= fv_t < horizon

    # --- lifetime from signup: Weibull proportional hazards
    hazard = per["hazard_ratio"] * np.where(activated, ACTIVATION_HAZARD_RATIO, 1.0)
    lifetime = BASELINE_SCALE_DAYS * DAY * (rng.exponential(1.0, n) / hazard) ** (1.0 / WEIBULL_SHAPE)
    # A user who reached first value was still there to reach it (affects <1% of users).
    lifetime = np.where(activated, np.maximum(lifetime, fv_t - signup_t + 3600.0), lifetime)
    death = signup_t + lifetime
    churned = signs_up & (death < horizon)
    active_end = np.where(signs_up, np.minimum(death, horizon), signup_t)
    done = step_t < active_end[owner]
    out.add(owner[done], "onboarding_step", step_t[done], own_channel[owner[done]], step=rank[done] + 1)
    fa = users_idx[activated]
    out.add(fa, "first_value", fv_t[fa], own_channel[fa])

    # --- purchase funnel
    cart_t = signup_t + 600.0 + rng.exponential(per["cart_days"] * DAY)
    carts = signs_up & (rng.random(n) < per["cart"]) & (cart_t < active_end)
    checkout_t = cart_t + 30.0 + rng.exponential(600.0, n)
    checkouts = carts & (rng.random(n) < per["checkout"]) & (checkout_t < active_end)
    purchase_t = checkout_t + 20.0 + rng.exponential(180.0, n)
    buys = checkouts & (rng.random(n) < per["purchase"]) & (purchase_t < active_end)
    pro = rng.random(n) < per["pro_share"]
    plan = np.where(buys, np.where(pro, "pro", "basic"), "free")
    order_value = np.round(per["spend"] * rng.lognormal(0.0, 0.45, n), 2)
    for mask, name, t in ((carts, "add_to_cart", cart_t), (checkouts, "checkout_started", checkout_t)):
        idx = users_idx[mask]
        out.add(idx, name, t[idx], own_channel[idx], page=np.full(idx.size, PAGES.index("checkout")) if name != "add_to_cart" else None)
    b = users_idx[buys]
    out.add(b, "purchase", purchase_t[b], own_channel[b], value=order_value[b] + np.where(pro[b], PLAN_PRICE["pro"], PLAN_PRICE["basic"]))

    # --- planted for the "why" analyses (each from its own generator): a conversion driver, an assisting channel
    tutorial, tutorial_t = plant_tutorial(out, seed, signs_up, buys, signup_t, purchase_t, active_end, own_channel)
    affiliate, affiliate_t = plant_affiliate(out, seed, signs_up, buys, signup_t, cart_t, active_end,
                                             ch["affiliate"], PAGES.index("reviews"))
    repeat_truth = plant_repeat_purchases(out, seed, buys, purchase_t, active_end, per["repeat_rate_ratio"],
                                          own_channel, horizon)

    # --- monthly renewals while alive, cancellation at churn
    renewals = np.where(buys, np.floor((active_end - purchase_t) / (30 * DAY)).clip(0), 0).astype(int)
    owner, rank = _repeat_index(renewals)
    price = np.where(pro, PLAN_PRICE["pro"], PLAN_PRICE["basic"])
    out.add(owner, "subscription_renewed", purchase_t[owner] + (rank + 1) * 30 * DAY, ch["email"], value=price[owner])
    cancel = users_idx[buys & churned]
    out.add(cancel, "subscription_cancelled", death[cancel], own_channel[cancel])

    # --- active sessions between signup and churn (or the end of the data)
    active_days = np.where(signs_up, (active_end - signup_t) / DAY, 0.0)
    n_sessions = rng.poisson(per["sessions_per_week"] / 7.0 * active_days)
    owner, _ = _repeat_index(n_sessions)
    s_t = signup_t[owner] + rng.random(owner.size) * (active_end[owner] - signup_t[owner])
    near_churn = churned[owner] & (s_t > death[owner] - CHURN_SLOWDOWN_DAYS * DAY)
    keep = ~near_churn | (rng.random(owner.size) < CHURN_SLOWDOWN_KEEP)
    owner, s_t = owner[keep], s_t[keep]
    # The churn moment is the last visit.
    last = users_idx[churned]
    owner, s_t = np.concatenate([owner, last]), np.concatenate([s_t, death[last] - 1.0])
    campaign = rng.random(owner.size) < per["campaign_share"][owner]
    campaign_channel = np.where(rng.random(owner.size) < 0.6, ch["email"], ch["push"])
    in_app = rng.random(owner.size) < per["app_share"][owner]
    session_channel = np.where(in_app, ch["app"], ch["web"])
    opens = owner[in_app]
    out.add(opens, "app_open", s_t[in_app], ch["app"])  # same second as the session's first event: a tie

    n_events = 1 + rng.poisson(np.maximum(per["events_per_session"][owner] - 1.0, 0.0))
    sess, rank = _repeat_index(n_events)
    gaps = np.where(rank == 0, 0.0, 1.0 + rng.exponential(45.0, sess.size))  # >= 1 s: no accidental duplicates
    csum = np.cumsum(gaps)
    t = s_t[sess] + csum - np.repeat(csum[np.cumsum(n_events) - n_events], n_events)
    alive = t < active_end[owner[sess]]  # nothing happens after churn
    sess, rank, t = sess[alive], rank[alive], t[alive]
    user = owner[sess]
    mix = _mix(personas, "session_mix", SESSION_EVENTS)
    kind = np.array([EVENTS.index(SESSION_ALIASES.get(e, e)) for e in SESSION_EVENTS])[_choice(rng, mix[persona[user]])]
    # Carts in later sessions only follow the funnel's first cart, so that "ever added to cart" measures the
    # planted funnel step.
    no_cart = (kind == EVENTS.index("add_to_cart")) & ~(carts[user] & (t > cart_t[user]))
    kind = np.where(no_cart, EVENTS.index("page_view"), kind)
    channel = np.where((rank == 0) & campaign[sess], campaign_channel[sess], session_channel[sess])
    channel = np.where(kind == EVENTS.index("support_ticket"), ch["support"], channel)
    is_view = kind == EVENTS.index("page_view")
    page = np.where(is_view, _choice(rng, page_mix[persona[user]]), -1)
    rng.lognormal(0.0, 0.45, user.size)  # was the session orders' value: drawn still, so later draws stay put
    value = np.full(user.size, np.nan)
    is_review = kind == EVENTS.index("review")
    value = np.where(is_review, np.clip(np.round(rng.normal(per["nps_mean"][user] / 2.0, 0.8)), 1, 5), value)
    out.add(user, kind, t, channel, value=value, page=page)

    # --- surveys: CSAT after half the support tickets, NPS around day 30
    tickets = (kind == EVENTS.index("support_ticket")) & (rng.random(user.size) < 0.5)
    csat_t = t[tickets] + rng.exponential(DAY, tickets.sum()) + 600.0
    csat_ok = csat_t < active_end[user[tickets]]
    csat = np.clip(np.round(rng.normal(per["nps_mean"][user[tickets]] / 2.2, 0.9)), 1, 5)
    out.add(user[tickets][csat_ok], "csat_response", csat_t[csat_ok], ch["email"], value=csat[csat_ok])
    nps_t = signup_t + 30 * DAY + rng.exponential(2 * DAY, n)
    answers = signs_up & (nps_t < active_end) & (rng.random(n) < 0.4)
    nps = np.clip(np.round(rng.normal(per["nps_mean"], 1.8)), 0, 10)
    a = users_idx[answers]
    out.add(a, "nps_response", nps_t[a], ch["email"], value=nps[a])

    # --- noise: opened e-mails that lead nowhere, while the user is around
    n_opens = rng.poisson(np.where(signs_up, active_days / 14.0, 0.3))
    owner, _ = _repeat_index(n_opens)
    lo = np.where(signs_up[owner], signup_t[owner], first_seen[owner])
    hi = np.where(signs_up[owner], active_end[owner], first_seen[owner] + consider_span[owner])
    out.add(owner, "email_open", lo + rng.random(owner.size) * (hi - lo), ch["email"])

    cols = out.concat()
    inside = cols["t"] < horizon
    cols = {k: v[inside] for k, v in cols.items()}
    cols["t"] = np.floor(cols["t"])  # whole seconds, as most exports: more ties
    from helpers.sample.devices import add_devices
    from helpers.sample.frame import to_frame, user_id_strings

    user_ids = user_id_strings(n, first_user, id_width)
    events = to_frame(cols, user_ids, pd.Timestamp(start, tz="UTC"), rng)

    identities, anonymous_rows = add_devices(events, user_ids, np.where(signs_up, np.floor(signup_t), np.inf),
                          pd.Timestamp(start, tz="UTC"), first_user, seed)

    users = pd.DataFrame({
        "user_id": pd.array(user_ids, dtype="string[pyarrow]"),
        "acquisition_channel": pd.array(np.array(ACQUISITION)[acquisition], dtype="string[pyarrow]"),
        "country": pd.array(country, dtype="string[pyarrow]"),
        "device": pd.array(np.where(app_user, "mobile", "desktop"), dtype="string[pyarrow]"),
        "plan": pd.array(plan, dtype="string[pyarrow]"),
        "variant": pd.array(np.where(variant_b, "B", "A"), dtype="string[pyarrow]"),
    })
    origin = pd.Timestamp(start, tz="UTC")

    def to_ts(secs: np.ndarray, mask: np.ndarray) -> pd.Series:
        # Whole seconds as integer nanoseconds, NaT elsewhere: no float-to-timedelta conversion of placeholders.
        ns = np.full(len(secs), np.iinfo(np.int64).min, dtype=np.int64)
        ns[mask] = origin.value + np.floor(secs[mask]).astype(np.int64) * 10**9
        return pd.Series(pd.DatetimeIndex(ns.view("datetime64[ns]")).tz_localize("UTC"))

    truth = pd.DataFrame({
        "user_id": users["user_id"],
        "persona": pd.array(np.array([p.name for p in personas])[persona], dtype="string[pyarrow]"),
        "first_seen": to_ts(first_seen, np.ones(n, bool)),
        "signed_up_at": to_ts(signup_t, signs_up),
        "activated": activated,
        "purchased": buys,
        "completed_tutorial": tutorial & (tutorial_t < np.minimum(active_end, horizon)),
        "saw_affiliate_review": affiliate & (affiliate_t < np.minimum(active_end, horizon)),
        "lifetime_days": np.where(signs_up, lifetime / DAY, np.nan),
        "churned": churned,
        "churned_at": to_ts(death, churned),
        **{c: repeat_truth[c].to_numpy() for c in repeat_truth.columns},
    })
    hr = [{"covariate": f"persona[{p.name}]", "hazard_ratio": p.hazard_ratio, "baseline": BASELINE_PERSONA}
          for p in personas if p.name != BASELINE_PERSONA]
    hr.append({"covariate": "activated", "hazard_ratio": ACTIVATION_HAZARD_RATIO, "baseline": "not activated"})
    funnel = pd.DataFrame([{
        "persona": p.name, "share": p.share, "signup": p.signup, "first_value_A": p.first_value,
        "first_value_B": min(p.first_value + VARIANT_LIFT, 1.0), "add_to_cart": p.cart,
        "checkout_started": p.checkout, "purchase": p.purchase,
    } for p in personas])
    return Journeys(events, users, truth, pd.DataFrame(hr), funnel, origin + pd.Timedelta(days=days),
                    identities=identities, anonymous_rows=anonymous_rows)


def write_sample(out_dir: str | Path, n_users: int = 20_000, *, seed: int = 0, start: str = "2025-01-01",
                 days: int = 180) -> Journeys:
    """Generate journeys and write ``events.parquet``, ``users.parquet`` and ``assignments.parquet`` (the
    onboarding experiment, :meth:`Journeys.assignments`) to ``out_dir``.

    The ground truth is not written: tests regenerate it from the same seed.
    Above ``PART_USERS`` users, the journeys are generated and written in parts
    of that many users (each part with its own seed drawn from ``seed``), so
    memory stays that of one part; the returned ``events`` is then empty (the
    events are in the file) while ``users`` and ``truth`` cover everyone.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if n_users <= PART_USERS:
        j = generate_journeys(n_users, seed=seed, start=start, days=days)
        for name, frame in (("events", j.export()), ("users", j.users), ("assignments", j.assignments())):
            tmp = out / f".{name}.parquet.tmp"
            frame.to_parquet(tmp, index=False, compression="zstd", coerce_timestamps="us", row_group_size=1_000_000)
            tmp.replace(out / f"{name}.parquet")
        return j
    tmp = out / ".events.parquet.tmp"
    writer, parts, rows = None, [], 0
    try:
        for i, first in enumerate(range(0, n_users, PART_USERS)):
            part_seed = int(np.random.SeedSequence([seed, i]).generate_state(1)[0])
            j = generate_journeys(min(PART_USERS, n_users - first), seed=part_seed, start=start, days=days,
                                  first_user=first + 1, id_width=len(str(n_users)))
            table = pa.Table.from_pandas(j.export(), preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema, compression="zstd", coerce_timestamps="us")
            writer.write_table(table, row_group_size=1_000_000)
            rows += len(j.events)
            parts.append(j)
            j.events, j.anonymous_rows = j.events.iloc[:0], None  # keep the per-user tables only
    finally:
        if writer is not None:
            writer.close()
    tmp.replace(out / "events.parquet")
    users = pd.concat([p.users for p in parts], ignore_index=True)
    users.to_parquet(out / ".users.parquet.tmp", index=False, compression="zstd")
    (out / ".users.parquet.tmp").replace(out / "users.parquet")
    assigned = pd.concat([p.assignments() for p in parts], ignore_index=True)
    assigned.to_parquet(out / ".assignments.parquet.tmp", index=False, compression="zstd", coerce_timestamps="us")
    (out / ".assignments.parquet.tmp").replace(out / "assignments.parquet")
    events = parts[0].events
    events.attrs["rows"] = rows
    return Journeys(events, users, pd.concat([p.truth for p in parts], ignore_index=True), parts[0].hazard_ratios,
                    parts[0].funnel, parts[0].observed_until,
                    identities=pd.concat([p.identities for p in parts], ignore_index=True))


def main(argv: list[str] | None = None) -> None:
    """``python -m helpers.sample --out data/sample [--users N] [--seed S]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="output folder (default: data/sample)")
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--start", default="2025-01-01")
    parser.add_argument("--days", type=int, default=180)
    args = parser.parse_args(argv)
    from helpers import config

    out = config.resolve_path(args.out) if args.out else config.SAMPLE_DIR
    j = write_sample(out, args.users, seed=args.seed, start=args.start, days=args.days)
    print(f"wrote {j.events.attrs.get('rows', len(j.events)):,} events of {len(j.users):,} users to {out}")
