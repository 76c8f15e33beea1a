"""The journey overview: stages, how customers move through them, stage KPIs, touchpoints and satisfaction.

The stage map (``config/journey.yaml``, :func:`load_stage_map`) lists the
journey's stages in order; each names the events that mean a customer is in it
(an event, optionally with exact-match property filters, a list meaning any of
the values). An event row belongs to the first stage whose rule it matches.

Progression rules (:func:`stage_progression`):

- a user *entered* a stage when they have any of its events, at any time and
  in any order (a customer who lands straight on the pricing page and signs up
  entered signup without passing awareness);
- a user *reaches* stage 1 at their first stage-1 event, and stage k at their
  first stage-k event at or after reaching stage k-1 (the ordered funnel over the
  stages, with no time limit: equal to ``compute_funnel`` with one event per
  stage and an unbounded window);
- ``median_days_from_previous`` is measured between those reach times;
- a user's *current* stage is the stage of their latest stage event (a later
  stage wins a tie); they are ``active`` when their last event of any kind is at
  most ``inactivity`` before ``observed_until``, else ``lapsed``;
- *flows* are the moves between the stages of consecutive stage events of a
  user (repeats collapsed), forwards, skipping ahead, or back (loops: a customer
  who returns to consideration).

Where things live::

    stages.py        StageMap, load_stage_map: the stages and the rules that place an event in one
    progression.py   stage_progression: reach, current stage, flows; stage_display: the map with its definitions
    kpis.py          KPIS, stage_kpis, touchpoint_matrix
    satisfaction.py  satisfaction, satisfaction_display: NPS, CSAT and CES per stage (minimum responses)
    changes.py       journey_changes: before and after a date, equal windows, tested
"""

from __future__ import annotations

from helpers.journey.changes import (
    changes_display,
    changes_headline,
    journey_changes,
    kpi_display,
    midpoint,
)
from helpers.journey.kpis import (
    KPIS,
    Kpi,
    stage_kpis,
    touchpoint_headline,
    touchpoint_matrix,
)
from helpers.journey.progression import (
    JourneyProgression,
    stage_display,
    stage_progression,
)
from helpers.journey.satisfaction import (
    MIN_RESPONSES,
    SURVEYS,
    satisfaction,
    satisfaction_display,
    satisfaction_headline,
)
from helpers.journey.stages import Stage, StageMap, StageRule, load_stage_map
from helpers.stats import Z95

__all__ = [
    "changes_display", "changes_headline", "journey_changes", "JourneyProgression", "Kpi", "kpi_display", "KPIS",
    "load_stage_map", "MIN_RESPONSES", "midpoint", "satisfaction", "satisfaction_display", "Stage", "stage_display", "stage_kpis", "stage_progression", "StageMap",
    "StageRule", "SURVEYS", "satisfaction_headline", "touchpoint_headline", "touchpoint_matrix", "Z95",
]
