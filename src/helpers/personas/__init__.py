"""Behavioural personas: per-user features from events, clustered into a few explainable groups.

Feature semantics (one row per user who has at least one event, index ``user_id``):

- ``events``: events counted; ``active_days``: distinct UTC dates with an event;
  ``sessions``: distinct ``session_id`` values (30-minute sessions when the data
  has none); ``events_per_active_day`` = events / active_days;
- ``tenure_days``: first to last event; ``recency_days``: last event to
  ``observed_until`` (default: the last timestamp in the data);
- ``purchases``: count of ``purchase_events``; ``monetary_value``: the sum of their
  ``value``; ``purchases_per_active_day``;
- ``share_<property>__<value>``: for each of ``properties`` (default ``page``), the
  share of the user's events carrying that property that have ``<value>``
  (e.g. the share of their page views that were ``pricing``), for the
  ``top_values`` most frequent values; 0 for users without such events;
- ``share_event__<name>``: the share of the user's events that are ``<name>``, for
  the ``top_events`` most frequent event types; ``share_channel__<name>``: the
  same for every channel;
- ``days_to__<event>``: days from the first event to the first ``<event>``, for
  each of ``milestones`` present in the data (NaN when never);
- ``mean_survey_score``: the mean ``value`` of ``survey_event`` (NaN without one);
- ``attr__<column>__<value>``: one-hot user attributes, when ``users`` is given.

With ``first_days=7`` only each user's first 7 days of events count (from
their first event): features of new users, usable as early predictors.

Personas (:func:`fit_personas`, :class:`PersonaModel`) cluster users on the
feature groups named in :data:`FEATURE_GROUPS`. By default only the behaviour
*mix* is used (``content``, ``actions`` and ``channels``: what people look at,
what they do, where they come from), not volume, tenure, spend or milestones:
those measure how far along a user is and how long they stayed, which are the
outcomes the funnel and retention analyses break down by persona, so
clustering on them would make those breakdowns circular and split users by
lifecycle stage rather than behaviour. Every feature still appears in the
profile and the names. Share features keep their natural 0-1 scale (a
Euclidean distance between behaviour mixes, in which a rare, noisy event type
weighs little); other features are log-transformed when skewed, standardized,
and scaled to the spread of a typical share feature.

Where things live::

    features.py  user_features, FEATURE_GROUPS, feature_group, informative_groups
    fitting.py   the fitting steps: check, scale, choose k, cluster, order, describe
    model.py     PersonaModel, fit_personas
    kpis.py      persona_kpis, persona_table, kpi_headline, save_personas
"""

from __future__ import annotations

from helpers.personas.features import (
                                       DEFAULT_FEATURE_GROUPS,
                                       FEATURE_GROUPS,
                                       feature_group,
                                       informative_groups,
                                       user_features,
)
from helpers.personas.kpis import kpi_headline, persona_kpis, persona_table, save_personas
from helpers.personas.model import PersonaModel, fit_personas

__all__ = [
    "DEFAULT_FEATURE_GROUPS", "FEATURE_GROUPS", "PersonaModel", "feature_group", "fit_personas",
    "informative_groups", "kpi_headline", "persona_kpis", "persona_table", "save_personas", "user_features",
]
