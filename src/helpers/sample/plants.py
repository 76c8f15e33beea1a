"""What the sample plants for the "why" analyses: a conversion driver, an assisting channel, and the
assignment table of its onboarding experiment.

Each draws from its own generator (``default_rng([seed, issue])``), so adding one moved no other draw of the
sample. See :mod:`helpers.sample` for the rest of what is planted.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

DAY = 86_400.0
# The planted conversion driver: the tutorial is completed, before the purchase, by this share of buyers and of
# the other signups (an association).
TUTORIAL_SHARE = {"buyers": 0.55, "others": 0.12}
# The planted assisting channel: a review on an affiliate site, seen after signup and before the first cart (or
# within two weeks of signup) by this share of buyers and of the other signups; never the last touch before a
# purchase, so last-touch attribution gives it nothing.
AFFILIATE_SHARE = {"buyers": 0.3, "others": 0.1}


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
