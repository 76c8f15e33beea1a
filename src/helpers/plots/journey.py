"""Charts of the journey overview: the stage map, touchpoints per stage, KPI tiles.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from helpers.plots.base import PALETTE, _days_text, _layout, label, labels


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
                nps, n = float(row["value"].iloc[0]), int(row["respondents"].iloc[0])
                if "too_few" in row and bool(row["too_few"].iloc[0]):  # one answer would move it by tens of points
                    lines.append(f"<span style='color:#666'>NPS: too few responses (n={n})</span>")
                else:
                    colour = "#1a7f37" if nps >= 30 else ("#b42318" if nps < 0 else "#9a6700")
                    lines.append(f"<span style='color:{colour}'>NPS {nps:+.0f} (95% CI {float(row['ci_low'].iloc[0]):+.0f} "
                                 f"to {float(row['ci_high'].iloc[0]):+.0f}, n={n})</span>")
        below.append("<br>".join(filter(None, lines)))
    fig.update_xaxes(tickvals=x, ticktext=[f"<b>{label(n)}</b><br>{b}" for n, b in zip(stages["stage"], below)])
    fig.update_yaxes(title="users who reached the stage", range=[0, top * 1.35])
    fig.update_layout(showlegend=False, bargap=0.3)
    return _layout(fig, "The customer journey: who gets how far, how fast, through which channels, and how they feel",
                   height=520)


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
    from helpers.journey.satisfaction import too_few_responses

    # A score on too few answers is no headline: the table below says "too few responses" with its interval.
    rows = kpis[kpis["available"].to_numpy() & ~too_few_responses(kpis)].reset_index(drop=True)
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
