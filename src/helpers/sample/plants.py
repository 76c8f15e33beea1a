"""What the sample plants for the "why" and "worth" analyses: a conversion driver, an assisting channel, the
assignment table of its onboarding experiment, and non-contractual repeat purchases from the BG/NBD process.

Each draws from its own generator (``default_rng([seed, issue])``), so adding one moved no other draw of the
sample. See :mod:`helpers.sample` for the rest of what is planted.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from helpers.value.bgnbd import repeat_times

DAY = 86_400.0
# The planted conversion driver: the tutorial is completed, before the purchase, by this share of buyers and of
# the other signups (an association).
TUTORIAL_SHARE = {"buyers": 0.55, "others": 0.12}
# The planted assisting channel: a review on an affiliate site, seen after signup and before the first cart (or
# within two weeks of signup) by this share of buyers and of the other signups; never the last touch before a
# purchase, so last-touch attribution gives it nothing.
AFFILIATE_SHARE = {"buyers": 0.3, "others": 0.1}
# The planted repeat purchases (per day): after the first purchase a buyer re-orders at rate
# λ = persona.repeat_rate_ratio · Gamma(r, rate alpha) and, after each repeat purchase, stops with probability
# p ~ Beta(a, b) (the BG/NBD process); each order is worth Gamma(spend_p, rate ν), ν ~ Gamma(spend_q, rate
# spend_gamma) per buyer (Gamma-Gamma: mean spend_p · spend_gamma / (spend_q - 1) = 40).
REPEAT_PURCHASE = {"r": 0.8, "alpha": 25.0, "a": 1.0, "b": 4.0, "spend_p": 6.0, "spend_q": 4.0, "spend_gamma": 20.0}


def plant_tutorial(out: Any, seed: int, signs_up: np.ndarray, buys: np.ndarray, signup_t: np.ndarray,
                   purchase_t: np.ndarray, active_end: np.ndarray, own_channel: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """``tutorial_completed`` between signup and the purchase (or within two weeks of signup); (who, when)."""
    n = signs_up.size
    rng = np.random.default_rng([seed, 18])
    tutorial = signs_up & (rng.random(n) < np.where(buys, TUTORIAL_SHARE["buyers"], TUTORIAL_SHARE["others"]))
    end = np.where(buys, purchase_t, np.minimum(signup_t + 14 * DAY, active_end))
    when = signup_t + rng.uniform(0.05, 0.95, n) * (end - signup_t)
    who = np.flatnonzero(tutorial & (when < active_end))
    out.add(who, "tutorial_completed", when[who], own_channel[who])
    return tutorial, when


def plant_affiliate(out: Any, seed: int, signs_up: np.ndarray, buys: np.ndarray, signup_t: np.ndarray,
                    cart_t: np.ndarray, active_end: np.ndarray, channel: int, page: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """A reviews ``page_view`` on the affiliate channel between signup and the first cart; (who, when)."""
    n = signs_up.size
    rng = np.random.default_rng([seed, 19])
    affiliate = signs_up & (rng.random(n) < np.where(buys, AFFILIATE_SHARE["buyers"], AFFILIATE_SHARE["others"]))
    end = np.where(buys, cart_t, np.minimum(signup_t + 14 * DAY, active_end))
    when = signup_t + rng.uniform(0.05, 0.95, n) * (end - signup_t)
    who = np.flatnonzero(affiliate & (when < active_end))
    out.add(who, "page_view", when[who], channel, page=np.full(who.size, page))
    return affiliate, when


def signup_assignments(users: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Each person who signed up, assigned to their ``variant`` at the moment of signup: ``user_id, variant,
    assigned_at`` (what an experiment platform logs)."""
    signed = truth["signed_up_at"].notna().to_numpy()
    out = pd.DataFrame({"user_id": users["user_id"].to_numpy()[signed], "variant": users["variant"].to_numpy()[signed],
                        "assigned_at": pd.to_datetime(truth["signed_up_at"].to_numpy()[signed], utc=True)})
    return out.astype({"user_id": "string[pyarrow]", "variant": "string[pyarrow]"})


def plant_repeat_purchases(out: Any, seed: int, buys: np.ndarray, purchase_t: np.ndarray, active_end: np.ndarray,
                           rate_ratio: np.ndarray, own_channel: np.ndarray, horizon: float) -> pd.DataFrame:
    """``repeat_purchase`` events from the BG/NBD process (:data:`REPEAT_PURCHASE`) after each buyer's first
    purchase; the truth per user.

    Buying also ends when the customer leaves the product (``active_end``, the subscription churn): a second,
    continuous-time way to stop that the BG/NBD model does not have, as in a real shop. Vectorised by
    :func:`helpers.value.bgnbd.repeat_times`, the kernel of :func:`helpers.value.simulate_bgnbd_purchases`: the
    K ~ Poisson(λ · exposure) order times a buyer would make without dropping out are uniform over the
    exposure, sorted, and cut at the N-th, N ~ Geometric(p).

    The truth (one row per user, NaN / False for non-buyers): ``repeat_rate`` (λ per day), ``repeat_dropout``
    (p), ``repeat_spend_mean`` (E[value] = spend_p / ν) and ``still_buying`` (at ``horizon``: not dropped out and
    not churned).
    """
    n = buys.size
    k = REPEAT_PURCHASE
    rng = np.random.default_rng([seed, 21])
    lam = rate_ratio * rng.gamma(k["r"], 1.0 / k["alpha"], n)
    p = rng.beta(k["a"], k["b"], n)
    nu = rng.gamma(k["spend_q"], 1.0 / k["spend_gamma"], n)
    exposure = np.where(buys, np.maximum(active_end - purchase_t, 0.0), 0.0)
    orders = rng.poisson(lam * exposure / DAY)  # without dropping out
    stops_after = rng.geometric(np.clip(p, 1e-12, 1.0))
    owner, at = repeat_times(purchase_t, exposure, orders, stops_after, rng)
    value = np.round(rng.gamma(k["spend_p"], 1.0 / nu[owner]), 2)
    out.add(owner, "repeat_purchase", at, own_channel[owner], value=value)
    return pd.DataFrame({
        "repeat_rate": np.where(buys, lam, np.nan),
        "repeat_dropout": np.where(buys, p, np.nan),
        "repeat_spend_mean": np.where(buys, k["spend_p"] / nu, np.nan),
        "still_buying": buys & (orders < stops_after) & (active_end >= horizon),
    })
