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
    from plotly.subplots import make_subplots

    daily = quality.events_per_day
    # Events and users are different things: each gets its own panel and axis, sharing the dates.
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.1,
                        subplot_titles=("events per day", "active users per day"))
    fig.add_bar(x=daily["date"], y=daily["events"], name="events", marker_color=PALETTE[0], showlegend=False,
                hovertemplate="%{x|%Y-%m-%d}: %{y:,} events<extra></extra>", row=1, col=1)
    fig.add_scatter(x=daily["date"], y=daily["users"], name="active users", mode="lines", showlegend=False,
                    line=dict(color=PALETTE[1], width=2), hovertemplate="%{x|%Y-%m-%d}: %{y:,} users<extra></extra>",
                    row=2, col=1)
    fig.update_yaxes(rangemode="tozero")
    fig.update_yaxes(title="events", row=1, col=1)
    fig.update_yaxes(title="users", row=2, col=1)
    return _layout(fig, "Events and active users per day (UTC)", height=480)


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
    from plotly.subplots import make_subplots

    table = quality.channels.iloc[::-1]
    channel = labels(table["channel"])
    # One panel for events, one for users: two counts of different things never share an axis.
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.06, subplot_titles=("events", "users"))
    fig.add_bar(x=table["events"], y=channel, orientation="h", name="events", marker_color=PALETTE[0], showlegend=False,
                hovertemplate="%{y}: %{x:,} events<extra></extra>", row=1, col=1)
    fig.add_bar(x=table["users"], y=channel, orientation="h", name="users", marker_color=PALETTE[1], showlegend=False,
                hovertemplate="%{y}: %{x:,} users<extra></extra>", row=1, col=2)
    fig.update_xaxes(nticks=4)
    fig.update_yaxes(automargin=True)
    return _layout(fig, "Events and users by channel", height=max(320, 40 * len(table) + 120))
