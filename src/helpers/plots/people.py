"""Charts of personas: profile heatmap, sizes, the 2-D projection, k selection, KPIs per persona.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from helpers.plots.base import PALETTE, _layout, _mpl_label, group_colours, label, labels


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
    from helpers.personas.features import _readable

    ax.set_xticklabels([_mpl_label(_readable(c.get_text())) for c in ax.get_xticklabels()], rotation=40, ha="right",
                       fontsize=11)
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
