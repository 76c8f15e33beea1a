"""Conversion funnels: who reaches each step, who drops, who is still in progress.

Semantics (each sentence is pinned by a test):

- A step is an event name, ``"*"`` for any event, a list of event names
  (any of them: ``["product1", "product2"]``), or ``Step(event, where={...})``
  whose property filters must match exactly.
- A step whose events are not in the data is warned about, naming the
  closest event names, and counted as reached by nobody (``absent_steps``).
- ``order="ordered"``: a user reaches step k when some occurrence of step 1 is
  followed by an occurrence of step 2 at or after it, step 3 at or after that,
  and so on; other events may come in between. Steps are matched greedily,
  each to the earliest qualifying moment; several consecutive steps may share
  a moment when it holds a separate event for each of them.
- ``order="strict"``: as ordered, and no event of any name happens strictly
  between (in time) two consecutive matched steps. Where a step could share
  the previous step's moment or take the very next moment, the attempt takes
  whichever reaches further (a, a at one second, then a, b: a, a, b is reached).
- ``order="any"``: the steps may happen in any order; an attempt starts at any
  funnel event, and reaches step k when steps 1..k each occur (as separate
  occurrences where a step repeats) within the window from that start. A
  step's time is when the first k steps had all happened.
- Every step after the first must happen within ``conversion_window`` of the
  attempt's start (inclusive). Every occurrence of step 1 (in ``any``: of any
  step) starts an attempt; each user counts once, at the furthest step of
  their best attempt, the earliest such attempt when several tie.
- The same event used in two steps needs two separate occurrences; events
  with equal timestamps count in funnel order.
- ``exclusions=[("cancel", 1, 2)]``: an attempt with a ``cancel`` event strictly
  between its matched steps 1 and 2 (0-based indices into ``steps``) is void
  and not counted at all; a later clean attempt still counts.
- ``by``: an event column, read at the counted attempt's first event (first
  touch), or a user-level Series/DataFrame mapped on ``user_id``; missing
  values form the segment ``"(none)"``.
- Censoring: events after ``observed_until`` (default: the last timestamp) are
  ignored; a user whose counted attempt started less than
  ``conversion_window`` before ``observed_until`` and has not finished is
  ``in_progress`` at their step, not ``dropped``.

Where things live::

    engine.py   compute_funnel, Step, FunnelResult: the rules above, and the
                portable ibis plan (Spark and any other backend)
    fast.py     the DuckDB fast path: one query fetches the step rows sorted,
                NumPy finds the attempts; chosen by engine="auto" on DuckDB
    plan.py     what both engines share: distinct step specs, Hall subsets
    compare.py  compare_segments, rank_friction, their headlines and tiles, value_per_conversion
    drivers.py  conversion_drivers (what converters did that others did not), early_signals
    trends.py   funnel_trend (conversion by entry period), time_to_convert
"""

from __future__ import annotations

from helpers.funnel.compare import (
    _difference_interval,  # noqa: F401 - tested where it is used
    compare_segments,
    comparison_headline,
    friction_headline,
    friction_tile,
    rank_friction,
    value_per_conversion,
)
from helpers.funnel.drivers import (
    conversion_drivers,
    drivers_headline,
    early_signals,
    event_property_columns,
    outcome_groups,
    signal_outcome,
)
from helpers.funnel.engine import (
    NONE_SEGMENT,
    FunnelResult,
    Order,
    Step,
    _readable,  # noqa: F401 - read by helpers.plots
    compute_funnel,
)
from helpers.funnel.trends import (
    TimeToConvert,
    funnel_trend,
    time_to_convert,
    trend_headline,
)
from helpers.stats import (  # public here too, where they were first
    holm_adjust,
    wilson_interval,
)

__all__ = ["FunnelResult", "NONE_SEGMENT", "Order", "Step", "compare_segments", "comparison_headline",
           "compute_funnel", "conversion_drivers", "drivers_headline", "early_signals", "event_property_columns", "friction_headline",
           "friction_tile", "funnel_trend", "holm_adjust", "outcome_groups", "rank_friction", "signal_outcome", "TimeToConvert",
           "time_to_convert", "trend_headline", "value_per_conversion", "wilson_interval"]
