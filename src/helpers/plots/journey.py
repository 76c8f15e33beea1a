"""Charts of the journey overview: the stage map, touchpoints per stage, KPI tiles.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from helpers.plots.base import _layout, label, labels
from helpers.units import format_value


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
            lines.append(f"{share:.0%} moved on" + ("" if np.isnan(days) else f", median {format_value(days, 'days')}"))  # as in the stage table
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
    # An empty cell says why (in its hover): nobody was seen there through the channel, or the stage is the last.
    last = order[-1] if order else None
    why = [[f"{t} ({int(n):,} users)" if t else ("no users through this channel here" if not n else
                                                  "last stage: there is no next stage" if share and stage == last else "no value")
            for t, n in zip(t_row, n_row)]
           for stage, t_row, n_row in zip(wide.index, text.to_numpy(), users.fillna(0).to_numpy())]
    fig = go.Figure(go.Heatmap(z=wide.to_numpy(float), x=labels(wide.columns), y=labels(wide.index), text=text.to_numpy(),
                               texttemplate="%{text}", colorscale="Blues", customdata=why,
                               hovertemplate="%{y} via %{x}<br>%{customdata}<extra></extra>",
                               colorbar=dict(tickformat=".0%" if share else ",")))
    fig.update_yaxes(autorange="reversed")
    title = "Share who reach the next stage, by stage and channel" if share else "Users at each stage, by channel"
    return _layout(fig, title, height=max(320, 48 * len(wide) + 140))


class Tiles:
    """Headline numbers as HTML tiles that wrap to the width of the screen (a phone shows two a row): every text
    escaped. Displays in a notebook and in the report."""

    def __init__(self, tiles: list[tuple[str, str, str, str]], empty: str = ""):
        self.tiles, self.empty = tiles, empty  # (over, value, label, detail)

    def _repr_html_(self) -> str:
        from helpers.report import escape

        if not self.tiles:
            return f"<p>{escape(self.empty)}</p>"
        box = ("border:1px solid #dde3ea;border-radius:8px;padding:10px 12px;min-width:0")
        items = "".join(
            f'<div class="kpi-tile" style="{box}"><div style="font-size:12px;color:#666">{escape(over)}</div>'
            f'<div style="font-size:24px;font-weight:600;color:#1f3b57;overflow-wrap:anywhere">{escape(value)}</div>'
            f'<div style="font-size:14px">{escape(name)}</div><div style="font-size:12px;color:#555">{escape(detail)}</div></div>'
            for over, value, name, detail in self.tiles)
        return ('<div class="kpi-tiles" style="display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));'
                f'gap:10px;margin:12px 0">{items}</div>')


def kpi_tiles(kpis: pd.DataFrame) -> Tiles:
    """One tile per available KPI from :func:`helpers.journey.stage_kpis`: its stage, value and interval.

    HTML, not a chart: the tiles wrap to the screen's width, so the numbers never overlap on a phone.

    Examples
    --------
    >>> k = pd.DataFrame({"stage": ["signup"], "kpi": ["signup_rate"], "value": [0.495], "unit": ["share"],
    ...                   "ci_low": [0.489], "ci_high": [0.502], "available": [True], "denominator": [20000],
    ...                   "definition": ["users who signed up / all users"]})
    >>> kpi_tiles(k).tiles
    [('signup', '49.5%', 'signup rate', '95% CI 48.9% – 50.2%')]
    >>> kpi_tiles(k.assign(available=False)).tiles  # nothing to show: the page says so instead
    []
    """
    from helpers.journey.changes import kpi_display
    from helpers.journey.satisfaction import too_few_responses

    # A score on too few answers is no headline: the table below says "too few responses" with its interval.
    empty = "No stage KPI is available: the stage map lists none, or the data lacks their events."
    if kpis.empty or "available" not in kpis:
        return Tiles([], empty)
    rows = kpis[kpis["available"].to_numpy() & ~too_few_responses(kpis)].reset_index(drop=True)
    if rows.empty:
        return Tiles([], empty)
    shown = kpi_display(rows)
    tiles = [(str(r["Stage"]).replace("_", " "), r["Value"], r["KPI"], f"95% CI {r['95% CI']}" if r["95% CI"] else "")
             for r in shown.to_dict("records")]
    return Tiles(tiles, empty)
