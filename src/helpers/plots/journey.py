"""Charts of the journey overview: the stage map, touchpoints per stage, KPI tiles.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from helpers.plots.base import _days_text, _layout, label, labels


def journey_map(progression, *, touchpoints: pd.DataFrame | None = None, satisfaction: pd.DataFrame | None = None,
                top_channels: int = 2) -> go.Figure:
    """The journey map: stages top to bottom with users, the share moving on and the median time from the
    previous stage, the top channels (touchpoints) of each stage and its NPS when there are survey answers.

    Stages run down the page, so the map reads the same on a phone as on a desktop. Takes
    :func:`helpers.journey.stage_progression`, optionally :func:`helpers.journey.touchpoint_matrix` and
    :func:`helpers.journey.satisfaction`.
    """
    stages = progression.stages
    entered = stages["entered"] if "entered" in stages else stages["users"]
    names = [label(n.replace("_", " ")) for n in stages["stage"]]
    ticks = []
    for i, name in enumerate(stages["stage"]):
        lines = [f"<b>{names[i]}</b>"]
        if i:
            share, days = stages["share_of_previous"].iloc[i], stages["median_days_from_previous"].iloc[i]
            lines.append(f"{share:.0%} moved on" + ("" if np.isnan(days) else f", median {_days_text(days)}"))
        if touchpoints is not None:
            tp = touchpoints[touchpoints["stage"] == name].nlargest(top_channels, "users")
            if len(tp):
                lines.append("via " + ", ".join(labels(tp["channel"], 20)))
        nps = _nps_text(satisfaction, name)
        if nps:
            lines.append(nps)
        ticks.append("<br>".join(lines))
    fig = go.Figure()
    # Dark: reached after every earlier stage; light: entered skipping one. The total is everyone with an
    # event of the stage, the same count the funnel page shows for its first step.
    fig.add_bar(y=ticks, x=stages["users"], orientation="h", marker_color="#1f5f8b", name="reached in order",
                customdata=stages[["current_active", "current_lapsed"]].to_numpy(),
                hovertemplate="%{x:,} reached in order<br>now here: %{customdata[0]:,} active, "
                              "%{customdata[1]:,} lapsed<extra></extra>")
    fig.add_bar(y=ticks, x=entered - stages["users"], orientation="h", marker_color="#9ecae1",
                name="entered, skipping an earlier stage", text=[f"<b>{n:,}</b>" for n in entered],
                textposition="outside", cliponaxis=False, customdata=entered.to_numpy(),
                hovertemplate="%{customdata:,} entered in all; %{x:,} of them skipped an earlier stage<extra></extra>")
    fig.update_yaxes(autorange="reversed", automargin=True)
    fig.update_xaxes(title="users", range=[0, max(float(entered.max()), 1.0) * 1.18], rangemode="tozero")
    fig.update_layout(barmode="stack", bargap=0.35)
    fig = _layout(fig, "The customer journey: who gets how far, how fast, and through which channels",
                  height=max(360, 78 * len(stages) + 140))
    return fig.update_layout(margin_r=64)  # room for the largest bar's total


def _nps_text(satisfaction: pd.DataFrame | None, stage: str) -> str:
    """A stage's NPS with its interval, or 'too few responses', for the journey map; empty without answers."""
    if satisfaction is None or satisfaction.empty:
        return ""
    row = satisfaction[(satisfaction["metric"] == "nps") & (satisfaction["breakdown"] == "stage")
                       & (satisfaction["group"] == stage)]
    if row.empty:
        return ""
    nps, n = float(row["value"].iloc[0]), int(row["respondents"].iloc[0])
    if "too_few" in row and bool(row["too_few"].iloc[0]):  # one answer would move it by tens of points
        return f"<span style='color:#666'>NPS: too few responses (n={n})</span>"
    colour = "#1a7f37" if nps >= 30 else ("#b42318" if nps < 0 else "#9a6700")
    return (f"<span style='color:{colour}'>NPS {nps:+.0f} ({float(row['ci_low'].iloc[0]):+.0f} to "
            f"{float(row['ci_high'].iloc[0]):+.0f}, n={n})</span>")


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
