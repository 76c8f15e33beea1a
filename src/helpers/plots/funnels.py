"""Charts of funnels and paths: steps with intervals, time to convert, segments, the Sankey, friction.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from helpers.plots.base import (
    NEUTRAL,
    PALETTE,
    _binned,
    _layout,
    _ratio_axis,
    _rgba,
    group_colours,
    label,
    labels,
)
from helpers.units import human_duration


def funnel_chart(result) -> go.Figure:
    """Users per step with conversion from start and the drop from the previous step; a bar group per segment.

    Examples
    --------
    >>> import pandas as pd
    >>> from helpers.funnel import compute_funnel
    >>> toy = pd.DataFrame({"user_id": ["a", "a", "b"], "event": ["visit", "buy", "visit"],
    ...                     "timestamp": pd.to_datetime(["2025-01-01", "2025-01-02", "2025-01-01"], utc=True)})
    >>> len(funnel_chart(compute_funnel(toy, ["visit", "buy"])).data)
    1
    """
    table = result.table
    fig = go.Figure()
    groups = [(None, table)] if result.by is None else list(table.groupby(result.by, sort=True))
    colours = group_colours(name for name, _ in groups)
    for name, g in groups:
        text = [f"{u:,} ({c:.1%})" + ("" if k == 1 else f"<br>−{d + p:,} from previous")
                for k, u, c, d, p in zip(g["step_index"], g["users"], g["conversion_from_start"], g["dropped"].shift(1, fill_value=0),
                                         g["in_progress"].shift(1, fill_value=0))]
        fig.add_bar(x=[f"{k}. {label(s)}" for k, s in zip(g["step_index"], g["step"])], y=g["users"],
                    name=label(name or "users"), text=text, textposition="outside",
                    marker_color=colours.get(str(name), PALETTE[0]),
                    cliponaxis=False, hovertemplate="%{x}<br>%{y:,} users<extra>" + label(name or "") + "</extra>")
    fig.update_layout(barmode="group", showlegend=result.by is not None, yaxis_title="users")
    from helpers.funnel import _readable

    title = f"Funnel ({result.order}, {_readable(result.conversion_window)} window)" + (f" by {label(result.by)}" if result.by else "")
    return _layout(fig, title, height=460)


def time_to_convert(result, step: int | None = None) -> go.Figure:
    """Histogram of time to convert, in hours: from :func:`helpers.funnel.time_to_convert` (its bins, with the
    median and 90th percentile marked), or from a funnel result (previous step to ``step``, default the last)."""
    from helpers.funnel import TimeToConvert

    if isinstance(result, TimeToConvert):
        return _time_to_convert_bins(result)
    k = step or len(result.steps)
    pu = result.per_user
    reached = pu[pu["furthest_step"] >= k]
    hours = (reached[f"step_{k}_at"] - reached[f"step_{k - 1}_at"]).dt.total_seconds() / 3600
    fig = go.Figure(_binned(hours, 60, PALETTE[0], "%{customdata[0]:.1f}-%{customdata[1]:.1f} h: %{y:,} users"))
    if len(hours):
        fig.add_vline(x=float(hours.median()), line_dash="dash", annotation_text="median " + human_duration(pd.Timedelta(hours=float(hours.median()))))
    before, after = label(result.steps[k - 2].label), label(result.steps[k - 1].label)
    fig.update_xaxes(title=f"hours from {before} to {after}")
    fig.update_yaxes(title="users")
    return _layout(fig, f"Time to convert: {before} → {after}")


def segment_comparison(comparison: pd.DataFrame, segment: str | None = None) -> go.Figure:
    """Conversion per step transition and segment with 95% intervals, from :func:`helpers.funnel.compare_segments`."""
    seg = segment or comparison.columns[0]
    fig = go.Figure()
    colours = group_colours(comparison[seg].unique())
    for name, g in comparison.groupby(seg, sort=True):
        steps = [f"{label(a)} → {label(b)}" for a, b in zip(g["from_step"], g["step"])]
        fig.add_scatter(x=steps, y=g["conversion"], mode="markers", name=label(name),
                        marker=dict(size=11, color=colours[str(name)]),
                        error_y=dict(type="data", symmetric=False, array=g["ci_high"] - g["conversion"],
                                     arrayminus=g["conversion"] - g["ci_low"]),
                        customdata=g[["entered", "p_holm"]].to_numpy(),
                        hovertemplate="%{x}<br>%{y:.1%} of %{customdata[0]:,}<br>p (Holm) %{customdata[1]:.3g}<extra>" + label(name) + "</extra>")
    fig.update_yaxes(title="conversion from previous step", tickformat=".0%")
    return _layout(fig, f"Step conversion by {label(seg)}, with 95% intervals")


def paths_sankey(paths: pd.DataFrame, top: int = 15) -> go.Figure:
    """Sankey of the top paths from :func:`helpers.paths.top_paths` (node = event at a position)."""
    rows = paths.head(top)
    nodes: dict[str, int] = {}
    links: dict[tuple[int, int], int] = {}
    for path, units in zip(rows["path"], rows["units"]):
        steps = path.split(" → ")
        ids = [nodes.setdefault(f"{i + 1}. {label(s)}", len(nodes)) for i, s in enumerate(steps)]
        for a, b in zip(ids, ids[1:]):
            links[(a, b)] = links.get((a, b), 0) + int(units)
    if not links:  # a Sankey without links breaks plotly.js ("Invalid array length"): say it in words
        fig = go.Figure()
        fig.add_annotation(text="Every path is a single event here: there is no sequence of events to draw.",
                           showarrow=False)
        return _layout(fig, f"Top {len(rows)} paths", height=200)
    fig = go.Figure(go.Sankey(node=dict(label=list(nodes), pad=12, thickness=14, color=PALETTE[0]),
                              link=dict(source=[a for a, _ in links], target=[b for _, b in links], value=list(links.values()))))
    return _layout(fig, f"Top {len(rows)} paths", height=480)


def friction_chart(friction: pd.DataFrame, top: int = 10) -> go.Figure:
    """Horizontal bars: users (or value) lost per transition, from :func:`helpers.funnel.rank_friction`."""
    rows = friction.head(top).iloc[::-1]
    metric = "value_lost" if "value_lost" in rows.columns else "users_lost"
    seg = rows.columns[0] if rows.columns[0] != "step_index" else None
    names = [f"{label(a)} → {label(b)}" + (f" ({label(g)})" if seg else "")
             for a, b, g in zip(rows["from_step"], rows["to_step"], rows[seg] if seg else rows["from_step"])]
    fig = go.Figure(go.Bar(x=rows[metric], y=names, orientation="h", marker_color=PALETTE[1],
                           hovertemplate="%{y}<br>%{x:,.0f}<extra></extra>"))
    fig.update_xaxes(title=metric.replace("_", " "))
    return _layout(fig, "Where the funnel loses most", height=max(300, 36 * len(rows) + 120))


def _time_to_convert_bins(ttc) -> go.Figure:
    h = ttc.histogram
    lo, hi = (h["bin_start"] / pd.Timedelta(hours=1)).to_numpy(float), (h["bin_end"] / pd.Timedelta(hours=1)).to_numpy(float)
    fig = go.Figure(go.Bar(x=(lo + hi) / 2, y=h["converters"], width=hi - lo, marker_color=PALETTE[0],
                           customdata=np.c_[lo, hi],
                           hovertemplate="%{customdata[0]:.1f}-%{customdata[1]:.1f} h: %{y:,} converters<extra></extra>"))
    stats = ttc.summary.set_index("statistic")["value"]
    for name, dash in (("p50", "dash"), ("p90", "dot")):
        if ttc.converters and pd.notna(stats[name]):
            x = stats[name] / pd.Timedelta(hours=1)
            fig.add_vline(x=float(x), line_dash=dash, annotation_text=f"{'median' if name == 'p50' else '90%'} "
                          + human_duration(stats[name]))
    before, after = label(ttc.from_step), label(ttc.to_step)
    fig.update_xaxes(title=f"hours from {before} to {after}")
    fig.update_yaxes(title="converters")
    return _layout(fig, f"Time to convert: {before} → {after}")


def still_not_converted_chart(ttc) -> go.Figure:
    """The Kaplan-Meier share still not converted over time (hours), with its 95% band, from
    :func:`helpers.funnel.time_to_convert`; people still inside their window are censored, not failures."""
    c = ttc.curve
    fig = go.Figure()
    fig.add_scatter(x=c["timeline"], y=c["ci_high"], mode="lines", line=dict(width=0, shape="hv"), showlegend=False,
                    hoverinfo="skip")
    fig.add_scatter(x=c["timeline"], y=c["ci_low"], mode="lines", line=dict(width=0, shape="hv"), fill="tonexty",
                    fillcolor=_rgba(PALETTE[0], 0.18), showlegend=False, hoverinfo="skip")
    fig.add_scatter(x=c["timeline"], y=c["still_not_converted"], mode="lines", line=dict(color=PALETTE[0], shape="hv"),
                    showlegend=False, hovertemplate="%{x:.1f} h: %{y:.1%} not converted yet<extra></extra>")
    fig.update_yaxes(title="not converted yet", tickformat=".0%", range=[0, 1.02])
    fig.update_xaxes(title=f"hours since {label(ttc.from_step)}")
    return _layout(fig, f"Still not at {label(ttc.to_step)} (Kaplan-Meier, open windows censored)")


def drivers_chart(drivers: pd.DataFrame, top: int = 8, alpha: float = 0.05) -> go.Figure:
    """The strongest drivers each way as odds ratios (log axis) with 95% intervals, from
    :func:`helpers.funnel.conversion_drivers`; Holm-significant ones in colour, the others grey."""
    if not len(drivers):
        fig = go.Figure()
        fig.add_annotation(text="No behaviour was seen by enough people to compare.", showarrow=False)
        return _layout(fig, "What converters do differently", height=200)
    up = drivers[drivers["odds_ratio"] >= 1].head(top)
    down = drivers[drivers["odds_ratio"] < 1].tail(top)
    rows = pd.concat([up, down]).drop_duplicates(subset=["candidate"]).sort_values("odds_ratio")
    significant = rows["p_adjusted"] < alpha
    fig = go.Figure(go.Scatter(
        x=rows["odds_ratio"], y=labels(rows["candidate"]), mode="markers",
        marker=dict(size=10, color=np.where(significant, np.where(rows["odds_ratio"] >= 1, PALETTE[0], PALETTE[1]),
                                            NEUTRAL)),
        error_x=dict(type="data", symmetric=False, array=rows["odds_ratio_high"] - rows["odds_ratio"],
                     arrayminus=rows["odds_ratio"] - rows["odds_ratio_low"], color=NEUTRAL),
        customdata=np.c_[rows["conversion_seen"], rows["conversion_not_seen"], rows["p_adjusted"]],
        hovertemplate="%{y}<br>odds ratio %{x:.2f}<br>conversion %{customdata[0]:.1%} if done, "
                      "%{customdata[1]:.1%} if not<br>p (Holm) %{customdata[2]:.2g}<extra></extra>"))
    fig.add_vline(x=1, line_dash="dash", line_color=NEUTRAL)
    _ratio_axis(fig, rows["odds_ratio_low"], rows["odds_ratio_high"],
                "odds ratio of converting (log scale; 1 = no difference)")
    return _layout(fig, f"What converters do differently (reached {label(drivers.attrs.get('target', 'the goal'))})",
                   height=max(300, 34 * len(rows) + 140))


def funnel_trend_chart(trend: pd.DataFrame) -> go.Figure:
    """Conversion per entry period with 95% intervals (from :func:`helpers.funnel.funnel_trend`): final periods
    solid, periods whose people are still inside their window hollow and dashed, so they do not read as a drop."""
    fig = go.Figure()
    seg = next((c for c in trend.columns if c not in {"period_start", "entered", "converted", "conversion",
                                                       "conversion_low", "conversion_high", "in_progress", "is_final"}),
               None)
    groups = [(None, trend)] if seg is None else list(trend.groupby(seg, sort=True))
    colours = group_colours(str(n) for n, _ in groups)
    for name, g in groups:
        colour = colours.get(str(name), PALETTE[0])
        g = g[g["entered"] > 0]
        for final, part in ((True, g[g["is_final"]]), (False, g[~g["is_final"]])):
            if not len(part):
                continue
            nm = label(name) if name is not None else "conversion"
            fig.add_scatter(x=part["period_start"], y=part["conversion"], mode="lines+markers",
                            name=nm + ("" if final else " (not final)"), legendgroup=nm,
                            line=dict(color=colour, dash="solid" if final else "dot"),
                            marker=dict(size=8, color=colour if final else "white", line=dict(color=colour, width=2)),
                            error_y=dict(type="data", symmetric=False, array=part["conversion_high"] - part["conversion"],
                                         arrayminus=part["conversion"] - part["conversion_low"], color=colour),
                            customdata=np.c_[part["entered"], part["in_progress"]],
                            hovertemplate="%{x|%Y-%m-%d}: %{y:.1%} of %{customdata[0]:,}"
                                          + ("" if final else "<br>%{customdata[1]:,} still in their window")
                                          + "<extra></extra>")
    fig.update_yaxes(title="conversion", tickformat=".0%", rangemode="tozero")
    fig.update_xaxes(title="entered in the period from")
    what = f"{label(trend.attrs.get('from_step', ''))} → {label(trend.attrs.get('to_step', ''))}"
    return _layout(fig, f"Conversion by entry period: {what}")
