"""Charts of retention and early warning: cohort heatmap, survival curves, hazard ratios, lifecycle, stickiness, risk and calibration.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from helpers.plots.base import PALETTE, _binned, _l, _layout, _ratio_axis, _rgba, group_colours, label, labels


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
    # An empty cell says why in its hover: the period had not ended when the data stops.
    why = np.where(text == "·", "period not over yet: no rate", np.char.mod("%.1f%%", 100 * np.nan_to_num(z)))
    fig = go.Figure(go.Heatmap(
        z=z[::-1], x=[str(k) for k in rates.columns], y=(avg_labels + rows)[::-1], text=text[::-1], texttemplate="%{text}",
        customdata=why[::-1],
        textfont=dict(size=11), colorscale="Blues", zmin=0, zmax=float(np.nanmax(z[:, 1:])) if z.shape[1] > 1 else 1,
        colorbar=dict(title="retained", tickformat=".0%"),
        hovertemplate="%{y}<br>" + unit + " %{x}: %{customdata}<extra></extra>"))
    fig.update_xaxes(title=f"{unit}s since joining (· = period not over yet)")
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
    colours = group_colours(groups)
    for g in groups:
        full = result.table[result.table["group"] == g]
        t = _thin_steps(full, horizon / max_points)
        colour = colours[str(g)]
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
                        textfont=dict(size=11, color=colour), hoverinfo="skip", row=2, col=1)
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
    _ratio_axis(fig, rows["ci_low"], rows["ci_high"], "hazard ratio: < 1 stays longer, > 1 churns sooner")
    return _layout(fig, title, height=max(300, 34 * len(rows) + 140))


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
                                  rangemode="tozero", tickformat=".1f", tickmode="auto", nticks=6))
    return _layout(fig, "Is the active base growing? New, retained, resurrected and dormant users (faded: period not over)",
                   height=460)


def stickiness_chart(stickiness: pd.DataFrame) -> go.Figure:
    """DAU/MAU per period and the distribution of active days per user, from :func:`helpers.engagement.stickiness`."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("DAU / MAU", "active days per user"))
    fig.add_scatter(x=stickiness["period"], y=stickiness["dau_mau"], mode="lines+markers", marker_color=PALETTE[0],
                    showlegend=False, hovertemplate="%{x|%Y-%m}: %{y:.1%}<extra></extra>", row=1, col=1)
    for i, col in enumerate(["share_1_day", "share_2_3_days", "share_4_7_days", "share_8_plus_days"]):
        fig.add_bar(x=stickiness["period"], y=stickiness[col], name=col.removeprefix("share_").replace("_", " "),
                    marker_color=PALETTE[i + 1], hovertemplate="%{x|%Y-%m}: %{y:.0%}<extra></extra>", row=1, col=2)
    fig.update_layout(barmode="stack")
    fig.update_yaxes(tickformat=".0%")
    fig.update_yaxes(rangemode="tozero", row=1, col=1)  # a ratio's axis starts at 0: no change looks bigger than it is
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
