"""Figures from analysis results. Nothing here reads events or computes a metric.

Every function takes a result object (or one of its tables) and returns a
plotly figure, which renders interactively in JupyterLab and, through
:func:`init_notebook`, survives conversion to a self-contained HTML report.
"""

from __future__ import annotations

import plotly.express as px
import plotly.graph_objects as go
import plotly.io as pio

from helpers.io import DataQualityReport

__all__ = ["init_notebook", "events_per_day", "events_per_type", "channel_mix", "TEMPLATE"]

TEMPLATE = "plotly_white"
PALETTE = px.colors.qualitative.Safe  # colour-blind safe


def init_notebook() -> None:
    """Set the plotly renderer for notebooks that also become HTML reports.

    plotly 6+ emits only a JSON mime type by default, which nbconvert drops:
    charts vanish from HTML. ``notebook`` adds HTML with plotly.js embedded
    once (offline); ``plotly_mimetype`` keeps JupyterLab's native rendering.
    """
    pio.renderers.default = "plotly_mimetype+notebook"
    pio.templates.default = TEMPLATE


def _layout(fig: go.Figure, title: str, height: int = 420) -> go.Figure:
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=60, b=10),
                      legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1.0))
    return fig


def events_per_day(quality: DataQualityReport) -> go.Figure:
    """Events and active users per day (UTC), from :func:`helpers.io.data_quality`.

    Examples
    --------
    >>> import pandas as pd
    >>> from helpers.io import load_events, data_quality
    >>> q = data_quality(load_events(pd.DataFrame({"user_id": ["a", "b"], "event": ["x", "x"],
    ...                                            "timestamp": ["2025-01-01", "2025-01-02"]})))
    >>> [trace.name for trace in events_per_day(q).data]
    ['events', 'active users']
    """
    daily = quality.events_per_day
    fig = go.Figure()
    fig.add_bar(x=daily["date"], y=daily["events"], name="events", marker_color=PALETTE[0], opacity=0.55)
    fig.add_scatter(x=daily["date"], y=daily["users"], name="active users", mode="lines",
                    line=dict(color=PALETTE[1], width=2), yaxis="y2")
    fig.update_layout(yaxis=dict(title="events"), yaxis2=dict(title="active users", overlaying="y", side="right",
                                                             showgrid=False, rangemode="tozero"))
    return _layout(fig, "Events and active users per day (UTC)")


def events_per_type(quality: DataQualityReport, top: int = 25) -> go.Figure:
    """Horizontal bars: the ``top`` event types by count, with the users who did each."""
    table = quality.events_per_type.head(top).iloc[::-1]
    fig = go.Figure(go.Bar(
        x=table["events"], y=table["event"], orientation="h", marker_color=PALETTE[0],
        customdata=table[["users", "share"]].to_numpy(),
        hovertemplate="%{y}<br>%{x:,} events (%{customdata[1]:.1%})<br>%{customdata[0]:,} users<extra></extra>",
    ))
    fig.update_xaxes(title="events")
    return _layout(fig, f"Events by type (top {min(top, len(quality.events_per_type))})", height=max(320, 22 * len(table) + 120))


def channel_mix(quality: DataQualityReport) -> go.Figure:
    """Events and users per channel; an empty figure with a note when there is no ``channel`` column."""
    fig = go.Figure()
    if quality.channels is None:
        fig.add_annotation(text="The events have no channel column.", showarrow=False)
        return _layout(fig, "Channels", height=200)
    table = quality.channels.iloc[::-1]
    fig.add_bar(x=table["events"], y=table["channel"], orientation="h", name="events", marker_color=PALETTE[0])
    fig.add_bar(x=table["users"], y=table["channel"], orientation="h", name="users", marker_color=PALETTE[1])
    fig.update_layout(barmode="group")
    fig.update_xaxes(title="count")
    return _layout(fig, "Events and users by channel", height=max(320, 40 * len(table) + 120))
