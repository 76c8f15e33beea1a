"""Figures from analysis results. Nothing here reads events or computes a metric.

Every function takes a result object (or one of its tables) and returns a
plotly figure, which renders interactively in JupyterLab and, through
:func:`init_notebook`, survives conversion to a self-contained HTML report.

Names from the data (events, channels, pages, segments, personas) are
hostile until shown otherwise: every one that becomes chart text (labels,
legends, hover, annotations, titles) goes through :func:`label`, which
shortens it and escapes ``& < >``. plotly reads a few HTML tags in text
(``<b>``, ``<a href>``, ``<span style>``...) and turns the escapes back
into the characters, so the name shows as written and no tag of it is read.

Where things live::

    base.py       template, init_notebook, label/labels (safe text), styled tables
    events.py     events_per_day, events_per_type, channel_mix
    funnels.py    funnel_chart, time_to_convert, still_not_converted_chart, drivers_chart, funnel_trend_chart,
                  segment_comparison, paths_sankey, friction_chart
    people.py     persona charts
    retention.py  cohort_heatmap, survival_chart, forest_plot, lifecycle, stickiness, risk, calibration
    journey.py    journey_map, touchpoint_heatmap, kpi_tiles
    attribution.py  attribution_chart, attribution_shift_chart, transition_heatmap
    experiments.py  split_chart, lift_chart, sequential_chart
    value.py      holdout_chart, p_alive_heatmap, value_decile_chart, value_segment_chart
"""

from __future__ import annotations

from helpers.plots.base import (
    LABEL_LIMIT,
    NEUTRAL,
    PALETTE,
    TEMPLATE,
    Table,
    group_colours,
    html_text,
    init_notebook,
    label,
    labels,
    styled,
)
from helpers.plots.attribution import attribution_chart, attribution_shift_chart, transition_heatmap
from helpers.plots.experiments import lift_chart, sequential_chart, split_chart
from helpers.plots.events import channel_mix, events_per_day, events_per_type
from helpers.plots.funnels import (
    drivers_chart,
    friction_chart,
    funnel_chart,
    funnel_trend_chart,
    paths_sankey,
    segment_comparison,
    still_not_converted_chart,
    time_to_convert,
)
from helpers.plots.value import holdout_chart, p_alive_heatmap, value_decile_chart, value_segment_chart
from helpers.plots.journey import Tiles, journey_map, kpi_tiles, touchpoint_heatmap
from helpers.plots.people import k_selection, persona_heatmap, persona_kpis_chart, persona_projection, persona_sizes
from helpers.plots.retention import (
    calibration_chart,
    cohort_heatmap,
    forest_plot,
    lifecycle_chart,
    risk_distribution,
    stickiness_chart,
    survival_chart,
)

__all__ = [
    "attribution_chart", "attribution_shift_chart", "transition_heatmap",
    "lift_chart", "sequential_chart", "split_chart",
    "holdout_chart", "p_alive_heatmap", "value_decile_chart", "value_segment_chart",
    "calibration_chart", "channel_mix", "cohort_heatmap", "drivers_chart", "events_per_day", "events_per_type",
    "forest_plot", "friction_chart", "funnel_chart", "funnel_trend_chart", "html_text", "init_notebook", "journey_map",
    "Tiles", "k_selection", "kpi_tiles", "still_not_converted_chart",
    "group_colours", "label", "LABEL_LIMIT", "NEUTRAL", "labels", "lifecycle_chart", "PALETTE", "paths_sankey", "persona_heatmap",
    "persona_kpis_chart", "persona_projection", "persona_sizes", "risk_distribution", "segment_comparison",
    "stickiness_chart", "styled", "Table", "survival_chart", "TEMPLATE", "time_to_convert", "touchpoint_heatmap",
]
