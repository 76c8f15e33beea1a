"""Charts of the loaded events: volume per day, per event type, the channel mix.
"""

from __future__ import annotations

import plotly.graph_objects as go

from helpers.io import DataQualityReport
from helpers.plots.base import PALETTE, _layout, labels


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
        x=table["events"], y=labels(table["event"]), orientation="h", marker_color=PALETTE[0],
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
    channel = labels(table["channel"])
    fig.add_bar(x=table["events"], y=channel, orientation="h", name="events", marker_color=PALETTE[0])
    fig.add_bar(x=table["users"], y=channel, orientation="h", name="users", marker_color=PALETTE[1])
    fig.update_layout(barmode="group")
    fig.update_xaxes(title="count")
    return _layout(fig, "Events and users by channel", height=max(320, 40 * len(table) + 120))
