"""Charts of personas: profile heatmap, sizes, the 2-D projection, k selection, KPIs per persona.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from helpers.plots.base import NEUTRAL, PALETTE, _layout, group_colours, label, labels


def persona_heatmap(model, *, top_features: int = 24) -> go.Figure:
    """Heatmap: each persona's most distinctive clustering features (rows) by persona (columns), coloured by the
    log2 ratio of the persona's mean to all users' mean; cells show the ratio (``2.0x`` = twice the average user).

    Features run down the page so that the chart reads on a phone (a handful of persona columns, not two dozen
    feature columns). The outcomes (events, purchases, value...) follow the behaviour, profiled, not clustered on.
    """
    from helpers.personas.features import _readable

    ratio = model.profile_matrix("ratio")
    spread = np.log2(ratio.clip(lower=1 / 16, upper=16)).abs().max().sort_values(ascending=False)
    outcomes = [c for c in ("events", "active_days", "tenure_days", "purchases", "monetary_value", "days_to__purchase",
                            "mean_survey_score") if c not in ratio.columns]
    everything = model.profile_matrix("ratio", used_only=False)
    ratio = pd.concat([ratio[spread.index[:top_features]], everything[[c for c in outcomes if c in everything.columns]]],
                      axis=1).T  # rows: features; columns: personas
    z = np.log2(ratio.clip(lower=1 / 16, upper=16)).to_numpy(float)
    text = ratio.map(lambda v: "" if pd.isna(v) else f"{v:.1f}x").to_numpy()
    # An empty cell is a feature the persona has no value for (no user of it did the thing measured).
    why = np.where(text == "", "no value for this persona", text)
    rows, columns = labels([_readable(c) for c in ratio.index], 40), labels(ratio.columns, 30)
    fig = go.Figure(go.Heatmap(z=z, x=columns, y=rows, text=text, texttemplate="%{text}", textfont=dict(size=11),
                               colorscale="RdBu_r", zmid=0, zmin=-3, zmax=3, customdata=why, xgap=1, ygap=1,
                               showscale=False,  # every cell says its ratio; a colour bar would squeeze a phone's columns
                               hovertemplate="%{x}<br>%{y}: %{customdata}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", automargin=True)
    fig.update_xaxes(side="bottom", tickangle=-30, automargin=True)
    fig.update_layout(plot_bgcolor="#f3f3f3")
    return _layout(fig, "What sets each persona apart: its mean against all users' mean (red: more, blue: less)",
                   height=22 * len(rows) + 200)


def persona_sizes(model) -> go.Figure:
    """Users per persona, largest first, with their share."""
    table = model.summary().iloc[::-1]
    colours = group_colours(table["name"])
    fig = go.Figure(go.Bar(x=table["users"], y=labels(table["name"]), orientation="h",
                           marker_color=[colours[str(n)] for n in table["name"]],
                           text=[f"{u:,} ({s:.0%})" for u, s in zip(table["users"], table["share"])], textposition="auto",
                           customdata=np.array(labels(table["description"], 300), dtype=object)[:, None],
                           hovertemplate="%{customdata[0]}<br>%{x:,} users<extra></extra>"))
    fig.update_xaxes(title="users")
    return _layout(fig, "Persona sizes", height=max(280, 46 * len(table) + 120))


def persona_projection(projection: pd.DataFrame) -> go.Figure:
    """Scatter of :meth:`helpers.personas.PersonaModel.projection` (PCA, a sample of users), coloured by persona."""
    fig = go.Figure()
    colours = group_colours(projection["name"].unique())
    for name, g in projection.groupby("name", sort=False):
        fig.add_scatter(x=g["pc1"], y=g["pc2"], mode="markers", name=label(name),
                        marker=dict(size=4, opacity=0.55, color=colours[str(name)]),
                        hovertemplate=label(name) + "<extra></extra>")
    kept = projection.attrs.get("explained_variance")
    fig.update_xaxes(title="first principal component")
    fig.update_yaxes(title="second principal component")
    note = f" ({kept:.0%} of the variance)" if kept is not None else ""
    return _layout(fig, f"Personas in two dimensions{note}, {len(projection):,} sampled users", height=520)


def k_selection(model) -> go.Figure:
    """Stability per candidate number of personas (with its 95% band over subsample pairs) and the
    silhouette for reference, the chosen one marked."""
    scores = model.k_scores_
    metric = "stability" if scores["stability"].notna().any() else "silhouette"
    fig = go.Figure()
    band = 1.96 * scores["stability_se"].fillna(0) if metric == "stability" else None
    fig.add_scatter(x=scores["n_personas"], y=scores[metric], mode="lines+markers", name=metric,
                    error_y=dict(type="data", array=band, visible=band is not None),
                    marker=dict(size=9, color=PALETTE[0]), hovertemplate="k=%{x}: %{y:.3f}<extra></extra>")
    if metric == "stability":
        fig.add_scatter(x=scores["n_personas"], y=scores["silhouette"], mode="lines+markers", name="silhouette",
                        line=dict(dash="dot", color=NEUTRAL), marker=dict(size=6, color=NEUTRAL),
                        hovertemplate="k=%{x}: silhouette %{y:.3f}<extra></extra>")
    chosen = scores[scores["chosen"]]
    fig.add_scatter(x=chosen["n_personas"], y=chosen[metric], mode="markers", name="chosen",
                    marker=dict(size=16, symbol="star", color=PALETTE[1]), hovertemplate="chosen k=%{x}<extra></extra>")
    fig.update_xaxes(title="number of personas", dtick=1)
    # short axis titles: a long rotated one runs under the legend (1 = the same personas from any subsample)
    fig.update_yaxes(title="stability" if metric == "stability" else "silhouette")
    return _layout(fig, "How many personas? The finest grouping that comes back from any subsample", height=380)


def persona_kpis_chart(kpis: pd.DataFrame) -> go.Figure:
    """Conversion, NPS and churn share per persona with 95% intervals, from :func:`helpers.personas.persona_kpis`.

    Personas run down the page (their names once, on the left) in their own colours, one panel per measure.
    """
    from plotly.subplots import make_subplots

    rows = kpis[kpis["persona"].astype(str) != "(all)"]
    raw = rows["name"] if "name" in rows.columns else rows["persona"]
    names, colours = labels(raw), group_colours(raw)
    colour = [colours[str(n)] for n in raw]
    fig = make_subplots(rows=1, cols=3, shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=("converted", "NPS", "churned"))
    fig.add_bar(y=names, x=rows["conversion"], orientation="h", marker_color=colour, row=1, col=1, showlegend=False,
                error_x=dict(type="data", symmetric=False, array=rows["conversion_high"] - rows["conversion"],
                             arrayminus=rows["conversion"] - rows["conversion_low"]),
                hovertemplate="%{y}: %{x:.1%}<extra></extra>")
    fig.add_bar(y=names, x=rows["nps"], orientation="h", marker_color=colour, row=1, col=2, showlegend=False,
                error_x=dict(type="data", symmetric=False, array=rows["nps_high"] - rows["nps"],
                             arrayminus=rows["nps"] - rows["nps_low"]),
                hovertemplate="%{y}: NPS %{x:.0f}<extra></extra>")
    fig.add_bar(y=names, x=rows["churn_share"], orientation="h", marker_color=colour, row=1, col=3, showlegend=False,
                hovertemplate="%{y}: %{x:.1%} churned<extra></extra>")
    fig.update_xaxes(tickformat=".0%", row=1, col=1, rangemode="tozero")
    fig.update_xaxes(tickformat=".0%", row=1, col=3, rangemode="tozero")
    fig.update_xaxes(nticks=4)
    fig.update_yaxes(autorange="reversed", automargin=True)
    for col, measure in ((1, "conversion"), (2, "nps"), (3, "churn_share")):
        if rows[measure].isna().all():  # unavailable: say so where the bars would be
            axis = "" if col == 1 else str(col)
            fig.add_annotation(text="unavailable", showarrow=False, xref=f"x{axis} domain",
                               yref=f"y{axis} domain", x=0.5, y=0.5, font=dict(color="#666"))
    return _layout(fig, "How the personas differ on what the business measures (95% intervals)",
                   height=max(300, 44 * len(rows) + 140))
