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
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import plotly.io as pio

from helpers.io import DataQualityReport
from helpers.report import escape, shorten

__all__ = ["TEMPLATE", "label", "labels", "channel_mix", "events_per_day", "events_per_type", "friction_chart", "funnel_chart", "init_notebook",
           "cohort_heatmap", "forest_plot", "k_selection", "paths_sankey", "persona_heatmap", "persona_kpis_chart", "persona_projection", "persona_sizes",
           "segment_comparison", "styled", "survival_chart", "time_to_convert", "journey_map", "touchpoint_heatmap",
           "kpi_tiles", "lifecycle_chart", "stickiness_chart", "risk_distribution", "calibration_chart"]

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
    # Seaborn charts are matplotlib Figures kept off pyplot (so they show once): render them as PNG.
    from IPython import get_ipython

    shell = get_ipython()
    if shell is not None:
        from IPython.core.pylabtools import print_figure
        from matplotlib.figure import Figure

        shell.display_formatter.formatters["image/png"].for_type(
            Figure, lambda fig: print_figure(fig, "png", bbox_inches="tight", dpi=110))


LABEL_LIMIT = 80  # characters of a name from the data shown in a chart


def label(value: Any, limit: int = LABEL_LIMIT) -> str:
    """A name from the data as chart text: shortened to ``limit`` characters, ``& < >`` escaped.

    Examples
    --------
    >>> label("<img src=x onerror=alert(1)>")
    '&lt;img src=x onerror=alert(1)&gt;'
    """
    return html_text(shorten(value, limit))


_l = label  # for functions whose own parameter is called ``label``


def labels(values: Any, limit: int = LABEL_LIMIT) -> list[str]:
    """:func:`label` of each value."""
    return [label(v, limit) for v in values]


def html_text(text: str) -> str:
    # quote=False: plotly decodes &amp; &lt; &gt; and numeric references, but shows &quot; as it is
    import html

    return html.escape(text, quote=False)


def _mpl_label(value: Any, limit: int = LABEL_LIMIT) -> str:
    """A name from the data as matplotlib text: shortened, ``$`` escaped (it would start mathtext)."""
    return shorten(value, limit).replace("$", r"\$")


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


# ----------------------------------------------------------------------------- funnels and paths


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
    for i, (name, g) in enumerate(groups):
        text = [f"{u:,} ({c:.1%})" + ("" if k == 1 else f"<br>−{d + p:,} from previous")
                for k, u, c, d, p in zip(g["step_index"], g["users"], g["conversion_from_start"], g["dropped"].shift(1, fill_value=0),
                                         g["in_progress"].shift(1, fill_value=0))]
        fig.add_bar(x=[f"{k}. {label(s)}" for k, s in zip(g["step_index"], g["step"])], y=g["users"],
                    name=label(name or "users"), text=text, textposition="outside", marker_color=PALETTE[i % len(PALETTE)],
                    cliponaxis=False, hovertemplate="%{x}<br>%{y:,} users<extra>" + label(name or "") + "</extra>")
    fig.update_layout(barmode="group", showlegend=result.by is not None, yaxis_title="users")
    from helpers.funnel import _readable

    title = f"Funnel ({result.order}, {_readable(result.conversion_window)} window)" + (f" by {label(result.by)}" if result.by else "")
    return _layout(fig, title, height=460)


def time_to_convert(result, step: int | None = None) -> go.Figure:
    """Histogram of the time from the previous step to ``step`` (default: the last), in hours, among users who reached it."""
    k = step or len(result.steps)
    pu = result.per_user
    reached = pu[pu["furthest_step"] >= k]
    hours = (reached[f"step_{k}_at"] - reached[f"step_{k - 1}_at"]).dt.total_seconds() / 3600
    fig = go.Figure(_binned(hours, 60, PALETTE[0], "%{customdata[0]:.1f}-%{customdata[1]:.1f} h: %{y:,} users"))
    if len(hours):
        fig.add_vline(x=float(hours.median()), line_dash="dash", annotation_text=f"median {hours.median():.1f} h")
    before, after = label(result.steps[k - 2].label), label(result.steps[k - 1].label)
    fig.update_xaxes(title=f"hours from {before} to {after}")
    fig.update_yaxes(title="users")
    return _layout(fig, f"Time to convert: {before} → {after}")


def _binned(values: pd.Series, bins: int, colour: str, hovertemplate: str) -> go.Bar:
    """A histogram counted here, not in the browser: the page carries ``bins`` bars, not one value per user
    (a plotly Histogram of 1M users embeds all 1M values)."""
    values = pd.Series(values, dtype="float64").dropna()
    counts, edges = np.histogram(values, bins=bins) if len(values) else (np.array([], int), np.array([0.0]))
    return go.Bar(x=(edges[:-1] + edges[1:]) / 2, y=counts, width=np.diff(edges), marker_color=colour,
                  customdata=np.c_[edges[:-1], edges[1:]], hovertemplate=hovertemplate + "<extra></extra>")


def segment_comparison(comparison: pd.DataFrame, segment: str | None = None) -> go.Figure:
    """Conversion per step transition and segment with 95% intervals, from :func:`helpers.funnel.compare_segments`."""
    seg = segment or comparison.columns[0]
    fig = go.Figure()
    for i, (name, g) in enumerate(comparison.groupby(seg, sort=True)):
        steps = [f"{label(a)} → {label(b)}" for a, b in zip(g["from_step"], g["step"])]
        fig.add_scatter(x=steps, y=g["conversion"], mode="markers", name=label(name), marker=dict(size=11, color=PALETTE[i % len(PALETTE)]),
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


# ----------------------------------------------------------------------------- personas


def persona_heatmap(model, *, top_features: int = 24):
    """Seaborn heatmap: personas x their most distinctive clustering features, coloured by log2 ratio to the overall mean.

    Cells show the ratio (``2.0x`` = twice the average user). Returns a matplotlib
    Figure (not attached to pyplot, so a notebook shows it once).
    """
    import seaborn as sns
    from matplotlib.figure import Figure

    ratio = model.profile_matrix("ratio")
    spread = np.log2(ratio.clip(lower=1 / 16, upper=16)).abs().max().sort_values(ascending=False)
    # The outcomes next to the behaviour: profiled, not clustered on (unless chosen).
    outcomes = [c for c in ("events", "active_days", "tenure_days", "purchases", "monetary_value", "days_to__purchase",
                            "mean_survey_score") if c not in ratio.columns]
    everything = model.profile_matrix("ratio", used_only=False)
    ratio = pd.concat([ratio[spread.index[:top_features]], everything[[c for c in outcomes if c in everything.columns]]],
                      axis=1)
    fig = Figure(figsize=(min(2 + 0.55 * ratio.shape[1], 18), 1.2 + 0.55 * len(ratio)), layout="constrained")
    ax = fig.subplots()
    cell_text = ratio.map(lambda v: "" if pd.isna(v) else f"{v:.1f}x")
    sns.heatmap(np.log2(ratio.clip(lower=1 / 16, upper=16)), ax=ax, cmap="RdBu_r", center=0, vmin=-3, vmax=3,
                annot=cell_text, fmt="", annot_kws={"fontsize": 7}, cbar_kws={"label": "log2 ratio to all users"})
    from helpers.personas import _readable

    ax.set_xticklabels([_mpl_label(_readable(c.get_text())) for c in ax.get_xticklabels()], rotation=40, ha="right",
                       fontsize=8)
    ax.set_yticklabels([_mpl_label(c.get_text()) for c in ax.get_yticklabels()], rotation=0)
    ax.set_ylabel("")
    ax.set_xlabel("")
    ax.set_title("What sets each persona apart (ratio of the persona's mean to all users')")
    return fig


def persona_sizes(model) -> go.Figure:
    """Users per persona, largest first, with their share."""
    table = model.summary().iloc[::-1]
    fig = go.Figure(go.Bar(x=table["users"], y=labels(table["name"]), orientation="h", marker_color=PALETTE[0],
                           text=[f"{u:,} ({s:.0%})" for u, s in zip(table["users"], table["share"])], textposition="auto",
                           customdata=np.array(labels(table["description"], 300), dtype=object)[:, None],
                           hovertemplate="%{customdata[0]}<br>%{x:,} users<extra></extra>"))
    fig.update_xaxes(title="users")
    return _layout(fig, "Persona sizes", height=max(280, 46 * len(table) + 120))


def persona_projection(projection: pd.DataFrame) -> go.Figure:
    """Scatter of :meth:`helpers.personas.PersonaModel.projection` (PCA, a sample of users), coloured by persona."""
    fig = go.Figure()
    for i, (name, g) in enumerate(projection.groupby("name", sort=False)):
        fig.add_scatter(x=g["pc1"], y=g["pc2"], mode="markers", name=label(name),
                        marker=dict(size=4, opacity=0.55, color=PALETTE[i % len(PALETTE)]),
                        hovertemplate=label(name) + "<extra></extra>")
    kept = projection.attrs.get("explained_variance")
    fig.update_xaxes(title="first principal component")
    fig.update_yaxes(title="second principal component")
    note = f" ({kept:.0%} of the variance)" if kept is not None else ""
    return _layout(fig, f"Personas in two dimensions{note}, {len(projection):,} sampled users", height=520)


def k_selection(model) -> go.Figure:
    """Silhouette per candidate number of personas, the chosen one marked."""
    scores = model.k_scores_
    fig = go.Figure()
    fig.add_scatter(x=scores["n_personas"], y=scores["silhouette"], mode="lines+markers", name="silhouette",
                    marker=dict(size=9, color=PALETTE[0]), hovertemplate="k=%{x}: %{y:.3f}<extra></extra>")
    chosen = scores[scores["chosen"]]
    fig.add_scatter(x=chosen["n_personas"], y=chosen["silhouette"], mode="markers", name="chosen",
                    marker=dict(size=16, symbol="star", color=PALETTE[1]), hovertemplate="chosen k=%{x}<extra></extra>")
    fig.update_xaxes(title="number of personas", dtick=1)
    fig.update_yaxes(title="silhouette (higher = better separated)")
    return _layout(fig, "How many personas? Silhouette on a sample of users", height=380)


def persona_kpis_chart(kpis: pd.DataFrame) -> go.Figure:
    """Conversion, NPS and churn share per persona with 95% intervals, from :func:`helpers.personas.persona_kpis`."""
    from plotly.subplots import make_subplots

    rows = kpis[kpis["persona"].astype(str) != "(all)"]
    names = labels(rows["name"] if "name" in rows.columns else rows["persona"])
    fig = make_subplots(rows=1, cols=3, subplot_titles=("conversion to purchase", "NPS", "churned"))
    fig.add_bar(x=names, y=rows["conversion"], marker_color=PALETTE[0], row=1, col=1, showlegend=False,
                error_y=dict(type="data", symmetric=False, array=rows["conversion_high"] - rows["conversion"],
                             arrayminus=rows["conversion"] - rows["conversion_low"]),
                hovertemplate="%{x}: %{y:.1%}<extra></extra>")
    fig.add_bar(x=names, y=rows["nps"], marker_color=PALETTE[1], row=1, col=2, showlegend=False,
                error_y=dict(type="data", symmetric=False, array=rows["nps_high"] - rows["nps"],
                             arrayminus=rows["nps"] - rows["nps_low"]),
                hovertemplate="%{x}: NPS %{y:.0f}<extra></extra>")
    fig.add_bar(x=names, y=rows["churn_share"], marker_color=PALETTE[2], row=1, col=3, showlegend=False,
                hovertemplate="%{x}: %{y:.1%} churned<extra></extra>")
    fig.update_yaxes(tickformat=".0%", row=1, col=1)
    fig.update_yaxes(tickformat=".0%", row=1, col=3)
    fig.update_xaxes(tickangle=-30)
    for col, measure in ((1, "conversion"), (2, "nps"), (3, "churn_share")):
        if rows[measure].isna().all():  # unavailable: say so where the bars would be
            axis = "" if col == 1 else str(col)
            fig.add_annotation(text="unavailable in this data", showarrow=False, xref=f"x{axis} domain",
                               yref=f"y{axis} domain", x=0.5, y=0.5, font=dict(color="#666"))
    return _layout(fig, "How the personas differ on what the business measures (95% intervals)", height=460)


# ----------------------------------------------------------------------------- retention


def cohort_heatmap(table, *, max_offsets: int = 26) -> go.Figure:
    """Cohort retention rates (cohort x periods since joining) from :func:`helpers.retention.cohort_retention`.

    Incomplete cells (their period had not ended) are left blank with a dot, never
    drawn as zero; the top row is the size-weighted average over complete cohorts.
    """
    rates = table.rates.iloc[:, :max_offsets]
    incomplete = table.incomplete.iloc[:, :max_offsets]
    sizes = table.counts[0]
    fmt = {"D": "%Y-%m-%d", "W": "%Y-%m-%d", "M": "%Y-%m"}[table.period]
    if table.by is None:
        rows = [f"{c:{fmt}} (n={n:,})" for c, n in zip(rates.index, sizes)]
        avg_labels = ["average"]
    else:
        rows = [f"{label(g)} {c:{fmt}} (n={n:,})" for (g, c), n in zip(rates.index, sizes)]
        avg_labels = [f"{label(g)}: average" for g in table.average.index]
    avg = table.average.iloc[:, :max_offsets]
    z = np.vstack([avg.to_numpy(float), rates.to_numpy(float)])
    text = np.vstack([np.where(np.isnan(avg.to_numpy(float)), "·", np.char.mod("%.0f%%", 100 * np.nan_to_num(avg.to_numpy(float)))),
                      np.where(incomplete.to_numpy(), "·", np.char.mod("%.0f%%", 100 * np.nan_to_num(rates.to_numpy(float))))])
    unit = {"D": "day", "W": "week", "M": "month"}[table.period]
    fig = go.Figure(go.Heatmap(
        z=z[::-1], x=[str(k) for k in rates.columns], y=(avg_labels + rows)[::-1], text=text[::-1], texttemplate="%{text}",
        textfont=dict(size=9), colorscale="Blues", zmin=0, zmax=float(np.nanmax(z[:, 1:])) if z.shape[1] > 1 else 1,
        colorbar=dict(title="retained", tickformat=".0%"),
        hovertemplate="%{y}<br>" + unit + " %{x}: %{z:.1%}<extra></extra>"))
    fig.update_xaxes(title=f"{unit}s since joining (· = period not over yet)", side="top")
    fig.update_layout(plot_bgcolor="#f3f3f3")
    mode = "active in" if table.mode == "on" else "active in or after"
    return _layout(fig, f"Share of each cohort {mode} each {unit} since joining", height=max(360, 18 * len(z) + 160))


def survival_chart(result, *, at_risk_every: int = 30, max_points: int = 1000) -> go.Figure:
    """Kaplan-Meier curves with their interval bands, and the users at risk under the axis.

    Takes :func:`helpers.retention.survival_curves`. With many distinct times
    (a million lifetimes in fractional days), each curve is drawn from the last
    value in each of ``max_points`` equal slices of the time axis, so a step
    moves by at most one slice (0.18 days over 180) and the page stays small.
    """
    from plotly.subplots import make_subplots

    groups = list(dict.fromkeys(result.table["group"]))
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.8, 0.2], vertical_spacing=0.04)
    horizon = float(result.table["timeline"].max())
    ticks = np.arange(0, horizon + 1, at_risk_every)
    for i, g in enumerate(groups):
        full = result.table[result.table["group"] == g]
        t = _thin_steps(full, horizon / max_points)
        colour = PALETTE[i % len(PALETTE)]
        fig.add_scatter(x=t["timeline"], y=t["ci_high"], mode="lines", line=dict(width=0, shape="hv"), showlegend=False,
                        hoverinfo="skip", row=1, col=1)
        fig.add_scatter(x=t["timeline"], y=t["ci_low"], mode="lines", line=dict(width=0, shape="hv"), fill="tonexty",
                        fillcolor=_rgba(colour, 0.18), showlegend=False, hoverinfo="skip", row=1, col=1)
        fig.add_scatter(x=t["timeline"], y=t["survival"], mode="lines", name=label(g), line=dict(color=colour, shape="hv", width=2),
                        hovertemplate=label(g) + "<br>day %{x:.0f}: %{y:.1%} remain<extra></extra>", row=1, col=1)
        # Users at risk at each tick: those whose time is at least the tick.
        at_risk = [int(full.loc[full["timeline"] >= x, "at_risk"].iloc[0]) if (full["timeline"] >= x).any() else 0
                   for x in ticks]
        fig.add_scatter(x=ticks, y=[label(g)] * len(ticks), mode="text", text=[f"{n:,}" for n in at_risk], showlegend=False,
                        textfont=dict(size=9, color=colour), hoverinfo="skip", row=2, col=1)
    fig.update_yaxes(title="still there", tickformat=".0%", range=[0, 1.02], row=1, col=1)
    fig.update_yaxes(title="at risk", showgrid=False, row=2, col=1)
    fig.update_xaxes(title="days since start", row=2, col=1)
    p = "" if np.isnan(result.logrank_p) else f" (log-rank p={result.logrank_p:.2g})"
    return _layout(fig, f"How long customers stay: Kaplan-Meier with {100 * (1 - result.alpha):.0f}% bands{p}", height=560)


def _thin_steps(curve: pd.DataFrame, resolution: float) -> pd.DataFrame:
    """The first row and the last row in each ``resolution``-wide slice of ``timeline`` (sorted): a step curve
    that looks the same at screen resolution."""
    if len(curve) <= 2 or resolution <= 0:
        return curve
    curve = curve.sort_values("timeline", kind="stable")
    slice_no = np.floor(curve["timeline"].to_numpy() / resolution)
    keep = np.r_[slice_no[1:] != slice_no[:-1], True]
    keep[0] = True
    return curve[keep]


def _rgba(colour: str, alpha: float) -> str:
    if colour.startswith("rgb("):
        return colour.replace("rgb(", "rgba(").replace(")", f", {alpha})")
    colour = colour.lstrip("#")
    r, g, b = (int(colour[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r}, {g}, {b}, {alpha})"


def forest_plot(table: pd.DataFrame, *, label: str | None = None, title: str = "Hazard ratios (95% intervals)") -> go.Figure:
    """Hazard ratios with intervals on a log axis; left of 1 = stays longer.

    Takes ``HazardResult.table`` (covariate, level, baseline) or the
    :func:`helpers.retention.retention_drivers` table (event).
    """
    rows = table.iloc[::-1]
    if label is not None:
        names = labels(rows[label])
    elif "event" in rows.columns:
        names = ["did " + _l(e) for e in rows["event"]]
    else:
        names = [f"{_l(c)}: {_l(lv)} vs {_l(b)}" if lv != "" else _l(c)
                 for c, lv, b in zip(rows["covariate"], rows["level"], rows["baseline"])]
    fig = go.Figure(go.Scatter(
        x=rows["hazard_ratio"], y=list(names), mode="markers", marker=dict(size=10, color=PALETTE[0]),
        error_x=dict(type="data", symmetric=False, array=rows["ci_high"] - rows["hazard_ratio"],
                     arrayminus=rows["hazard_ratio"] - rows["ci_low"]),
        customdata=rows[["p"]].to_numpy(), hovertemplate="%{y}<br>HR %{x:.2f} (p=%{customdata[0]:.2g})<extra></extra>"))
    fig.add_vline(x=1, line_dash="dash", line_color="grey")
    fig.update_xaxes(type="log", title="hazard ratio: < 1 stays longer, > 1 churns sooner")
    return _layout(fig, title, height=max(300, 34 * len(rows) + 140))


# ----------------------------------------------------------------------------- the journey overview


def journey_map(progression, *, touchpoints: pd.DataFrame | None = None, satisfaction: pd.DataFrame | None = None,
                top_channels: int = 2) -> go.Figure:
    """The journey map: stages left to right with users, the share moving on and the median time between stages,
    the top channels (touchpoints) of each stage and its NPS when there are survey answers.

    Takes :func:`helpers.journey.stage_progression`, optionally
    :func:`helpers.journey.touchpoint_matrix` and :func:`helpers.journey.satisfaction`.
    """
    stages = progression.stages
    x = list(range(len(stages)))
    fig = go.Figure()
    fig.add_bar(x=x, y=stages["users"], marker_color=PALETTE[0], width=0.55, name="users who reached the stage",
                text=[f"<b>{n:,}</b>" for n in stages["users"]], textposition="outside", cliponaxis=False,
                customdata=stages[["current_active", "current_lapsed"]].to_numpy(),
                hovertemplate="%{y:,} reached<br>now here: %{customdata[0]:,} active, %{customdata[1]:,} lapsed<extra></extra>")
    top = max(float(stages["users"].max()), 1.0)
    for i in x[1:]:
        share, days = stages["share_of_previous"].iloc[i], stages["median_days_from_previous"].iloc[i]
        move_on = f"{share:.0%} move on" + ("" if np.isnan(days) else f"<br>median {_days_text(days)}")
        fig.add_annotation(x=i - 0.5, y=top * 1.22, text=move_on, showarrow=False, font=dict(size=11, color="#444"))
        fig.add_annotation(x=i - 0.22, y=top * 1.08, ax=i - 0.78, ay=top * 1.08, xref="x", yref="y", axref="x", ayref="y",
                           showarrow=True, arrowhead=3, arrowwidth=1.5, arrowcolor="#888", text="")
    below = []
    for i, name in enumerate(stages["stage"]):
        lines = []
        if touchpoints is not None:
            tp = touchpoints[touchpoints["stage"] == name].nlargest(top_channels, "users")
            lines.append("via " + ", ".join(labels(tp["channel"], 40)) if len(tp) else "")
        if satisfaction is not None:
            row = satisfaction[(satisfaction["metric"] == "nps") & (satisfaction["breakdown"] == "stage")
                               & (satisfaction["group"] == name)]
            if len(row):
                nps = float(row["value"].iloc[0])
                colour = "#1a7f37" if nps >= 30 else ("#b42318" if nps < 0 else "#9a6700")
                lines.append(f"<span style='color:{colour}'>NPS {nps:+.0f} (n={int(row['respondents'].iloc[0])})</span>")
        below.append("<br>".join(filter(None, lines)))
    fig.update_xaxes(tickvals=x, ticktext=[f"<b>{label(n)}</b><br>{b}" for n, b in zip(stages["stage"], below)])
    fig.update_yaxes(title="users who reached the stage", range=[0, top * 1.35])
    fig.update_layout(showlegend=False, bargap=0.3)
    return _layout(fig, "The customer journey: who gets how far, how fast, through which channels, and how they feel",
                   height=520)


def _days_text(days: float) -> str:
    return f"{days * 24:.1f} h" if days < 1 else f"{days:.1f} days"


def touchpoint_heatmap(touchpoints: pd.DataFrame, value: str = "users") -> go.Figure:
    """Stages x channels from :func:`helpers.journey.touchpoint_matrix`: users, or ``conversion_to_next``."""
    order = list(dict.fromkeys(touchpoints["stage"]))
    wide = touchpoints.pivot(index="stage", columns="channel", values=value).reindex(order)
    wide = wide[wide.sum().sort_values(ascending=False).index]
    users = touchpoints.pivot(index="stage", columns="channel", values="users").reindex(order)[wide.columns]
    share = value != "users"
    text = wide.map(lambda v: "" if pd.isna(v) else (f"{v:.0%}" if share else f"{v:,.0f}"))
    fig = go.Figure(go.Heatmap(z=wide.to_numpy(float), x=labels(wide.columns), y=labels(wide.index), text=text.to_numpy(),
                               texttemplate="%{text}", colorscale="Blues", customdata=users.to_numpy(),
                               hovertemplate="%{y} via %{x}<br>%{text} (%{customdata:,} users)<extra></extra>",
                               colorbar=dict(tickformat=".0%" if share else ",")))
    fig.update_yaxes(autorange="reversed")
    title = "Share who reach the next stage, by stage and channel" if share else "Users at each stage, by channel"
    return _layout(fig, title, height=max(320, 48 * len(wide) + 140))


def kpi_tiles(kpis: pd.DataFrame, *, columns: int = 4) -> go.Figure:
    """One tile per available KPI from :func:`helpers.journey.stage_kpis`, with its stage and interval."""
    rows = kpis[kpis["available"]].reset_index(drop=True)
    n_rows = max(1, int(np.ceil(len(rows) / columns)))
    fig = go.Figure()
    if rows.empty:
        fig.add_annotation(text="No stage KPI is available: the stage map lists none, or the data lacks their events.",
                           showarrow=False)
        return _layout(fig, "Stage KPIs", height=200)
    for i, r in enumerate(rows.to_dict("records")):  # one tile per KPI (a dozen)
        row, col = divmod(i, columns)
        unit = r["unit"]
        number = dict(valueformat=".1%" if unit == "share" else (",.0f" if unit in ("users", "count") else ".2f"),
                      font=dict(size=30))
        if unit not in ("share", "users", "count"):
            number["suffix"] = f" {unit}" if unit not in ("score",) else ""
        ci = "" if pd.isna(r["ci_low"]) else (f"<br><span style='font-size:11px'>95% CI {r['ci_low']:.1%}–{r['ci_high']:.1%}</span>"
                                               if unit == "share" else
                                               f"<br><span style='font-size:11px'>95% CI {r['ci_low']:.1f}–{r['ci_high']:.1f}</span>")
        fig.add_trace(go.Indicator(mode="number", value=float(r["value"]), number=number,
                                   title=dict(text=f"<span style='font-size:12px;color:#666'>{label(r['stage'])}</span><br>"
                                                   f"{label(r['kpi'].replace('_', ' '))}{ci}", font=dict(size=14)),
                                   domain=dict(row=row, column=col)))
    fig.update_layout(grid=dict(rows=n_rows, columns=columns, pattern="independent"))
    return _layout(fig, "Stage KPIs (definitions in the table below)", height=170 * n_rows + 80)


# ----------------------------------------------------------------------------- engagement and early warning


def lifecycle_chart(lifecycle: pd.DataFrame) -> go.Figure:
    """New, retained and resurrected users up, dormant down, per period, with the quick ratio on the right axis.

    Takes :func:`helpers.engagement.lifecycle`; incomplete periods are faded.
    """
    opacity = np.where(lifecycle["complete"], 0.9, 0.4)
    fig = go.Figure()
    for i, (col, sign) in enumerate([("retained", 1), ("new", 1), ("resurrected", 1), ("dormant", -1)]):
        fig.add_bar(x=lifecycle["period"], y=sign * lifecycle[col], name=col, marker=dict(color=PALETTE[i], opacity=opacity),
                    hovertemplate="%{x|%Y-%m-%d}: %{y:,} " + col + "<extra></extra>")
    fig.add_scatter(x=lifecycle["period"], y=lifecycle["quick_ratio"], name="quick ratio", yaxis="y2", mode="lines+markers",
                    line=dict(color="#333", width=2), hovertemplate="%{x|%Y-%m-%d}: quick ratio %{y:.2f}<extra></extra>")
    fig.update_layout(barmode="relative", yaxis=dict(title="users"),
                      yaxis2=dict(title="(new + resurrected) / dormant", overlaying="y", side="right", showgrid=False,
                                  rangemode="tozero"))
    return _layout(fig, "Is the active base growing? New, retained, resurrected and dormant users (faded: period not over)",
                   height=460)


def stickiness_chart(stickiness: pd.DataFrame) -> go.Figure:
    """DAU/MAU per period and the distribution of active days per user, from :func:`helpers.engagement.stickiness`."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("DAU / MAU", "active days per user in the period"))
    fig.add_scatter(x=stickiness["period"], y=stickiness["dau_mau"], mode="lines+markers", marker_color=PALETTE[0],
                    showlegend=False, hovertemplate="%{x|%Y-%m}: %{y:.1%}<extra></extra>", row=1, col=1)
    for i, col in enumerate(["share_1_day", "share_2_3_days", "share_4_7_days", "share_8_plus_days"]):
        fig.add_bar(x=stickiness["period"], y=stickiness[col], name=col.removeprefix("share_").replace("_", " "),
                    marker_color=PALETTE[i + 1], hovertemplate="%{x|%Y-%m}: %{y:.0%}<extra></extra>", row=1, col=2)
    fig.update_layout(barmode="stack")
    fig.update_yaxes(tickformat=".0%")
    return _layout(fig, "How often do active users come back?", height=420)


def risk_distribution(risk) -> go.Figure:
    """Histogram of the (calibrated, when present) churn probabilities of the active users, from
    :func:`helpers.risk.churn_risk`."""
    fig = go.Figure(_binned(risk.scores[risk.probability], 40, PALETTE[1],
                            "%{customdata[0]:.1%}-%{customdata[1]:.1%}: %{y:,} users"))
    kind = "calibrated probability" if risk.probability == "calibrated_probability" else "probability"
    fig.update_xaxes(title=f"{kind} of churning within {risk.horizon.days} days", tickformat=".0%")
    fig.update_yaxes(title="active users")
    return _layout(fig, f"Churn risk of the {len(risk.scores):,} users active at {risk.observed_until:%Y-%m-%d}")


def calibration_chart(risk) -> go.Figure:
    """Predicted against observed churn per risk decile on the time split (``churn_risk``), or observed churn per
    health decile (``health_score``)."""
    cal = risk.calibration
    key = "risk_decile" if "risk_decile" in cal.columns else "health_decile"
    fig = go.Figure()
    fig.add_bar(x=cal[key], y=cal["observed"], name="observed churn", marker_color=PALETTE[0],
                hovertemplate="decile %{x}: %{y:.1%} churned<extra></extra>")
    if "predicted" in cal.columns:
        fig.add_scatter(x=cal[key], y=cal["predicted"], name="predicted (model)", mode="lines+markers",
                        line=dict(color=PALETTE[1], width=2), hovertemplate="decile %{x}: %{y:.1%} predicted<extra></extra>")
    if "calibrated" in cal.columns and not np.allclose(cal["calibrated"], cal["predicted"]):
        how = "out of time" if str(risk.validation.get("calibration_check", "")).startswith("out") else "cross-fitted"
        fig.add_scatter(x=cal[key], y=cal["calibrated"], name=f"calibrated (checked {how})", mode="lines+markers",
                        line=dict(color=PALETTE[2], width=2, dash="dot"),
                        hovertemplate="decile %{x}: %{y:.1%} calibrated<extra></extra>")
    fig.add_hline(y=risk.validation["base_churn"], line_dash="dash", line_color="grey", annotation_text="average")
    fig.update_xaxes(title=key.replace("_", " ") + (" (10 = riskiest)" if key == "risk_decile" else " (1 = least healthy)"),
                     dtick=1)
    fig.update_yaxes(title=f"churned within {risk.horizon.days} days after the cut", tickformat=".0%")
    v = risk.validation
    return _layout(fig, f"Can the score be trusted? Time split at {v['cut']:%Y-%m-%d}: concordance {v['concordance']:.2f}",
                   height=420)


def styled(table: pd.DataFrame, *, percent: Sequence[str] = (), precision: int = 2, limit: int = 120):
    """A display-ready table: counts with thousands separators, shares as percentages, durations rounded.

    Columns named ``conversion*``, ``share*``, ``survival_*``, ``ci_*``,
    ``difference`` or listed in ``percent`` are shown as percentages. Every other cell, and every
    column name, is text from the data: shortened to ``limit`` characters and
    HTML-escaped (a name may carry ``<script>``).

    Examples
    --------
    >>> html = styled(pd.DataFrame({"event": ["<b>x</b>"], "users": [1200]})).to_html()
    >>> "&lt;b&gt;x&lt;/b&gt;" in html, "1,200" in html, "<b>x" in html
    (True, True, False)
    """
    fmt: dict[str, Any] = {}
    text = lambda v: "" if _is_missing(v) else escape(v, limit)  # noqa: E731 - the formatter of text cells
    for col in table.columns:
        dtype = table[col].dtype
        if col in percent or str(col).startswith(("conversion", "share", "ci_", "goal_share", "downstream", "survival_")) or col in ("difference", "churn_share"):
            fmt[col] = "{:.1%}"
        elif str(col).startswith("p_"):
            fmt[col] = "{:.3g}"
        elif pd.api.types.is_bool_dtype(dtype):
            fmt[col] = text
        elif pd.api.types.is_integer_dtype(dtype):
            fmt[col] = "{:,}"
        elif pd.api.types.is_float_dtype(dtype):
            fmt[col] = "{:,.%df}" % precision
        elif pd.api.types.is_timedelta64_dtype(dtype):
            fmt[col] = lambda v: "" if pd.isna(v) else str(pd.Timedelta(v).round("min"))
        else:
            fmt[col] = text
    return (table.style.format(fmt, na_rep="").format_index(text, axis=1).format_index(text, axis=0)
            .hide(axis="index"))


def _is_missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # a list or an array in a cell
        return False
