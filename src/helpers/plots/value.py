"""Charts of customer value: the holdout check (predicted against actual purchases by calibration
frequency), P(alive) by repeat purchases and time since the last purchase, value by decile and by segment.

Every function takes a table from :mod:`helpers.value`; segment names go through :func:`label`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from helpers.plots.base import NEUTRAL, PALETTE, _layout, label, labels


def holdout_chart(check) -> go.Figure:
    """The calibration plot: mean actual and predicted holdout purchases per calibration frequency.

    Examples
    --------
    >>> from helpers.value import HoldoutCheck
    >>> t = pd.DataFrame({"frequency": ["0", "1+"], "customers": [5, 2], "actual": [0.2, 1.0], "predicted": [0.3, 0.9]})
    >>> [d.name for d in holdout_chart(HoldoutCheck(t, 0.1, 3.0, 3.3, 30.0, "days")).data]
    ['actual', 'predicted']
    """
    t = check.table
    custom = t["customers"].to_numpy()
    fig = go.Figure()
    fig.add_scatter(x=t["frequency"], y=t["actual"], name="actual", mode="lines+markers", marker_color=PALETTE[0],
                    customdata=custom, hovertemplate="%{x} repeat purchases (%{customdata:,} customers): "
                                                     "%{y:.2f} actual<extra></extra>")
    fig.add_scatter(x=t["frequency"], y=t["predicted"], name="predicted", mode="lines+markers",
                    line=dict(dash="dash"), marker_color=PALETTE[1], customdata=custom,
                    hovertemplate="%{x} repeat purchases (%{customdata:,} customers): %{y:.2f} predicted<extra></extra>")
    fig.update_xaxes(title="repeat purchases before the holdout", type="category")
    fig.update_yaxes(title="holdout purchases per customer", rangemode="tozero")
    return _layout(fig, f"Did the model predict purchases it had not seen? Purchases per customer in the "
                        f"{check.duration:g}-{check.unit[:-1]} holdout, actual and predicted", height=380)


def p_alive_heatmap(grid: pd.DataFrame) -> go.Figure:
    """Mean P(alive) of the customers in each cell of repeat purchases × days since the last purchase
    (:func:`helpers.value.p_alive_grid`); empty cells have no customer.

    Examples
    --------
    >>> g = pd.DataFrame({"repeat_purchases": ["0", "1"], "days_since_last": ["0-30", "0-30"], "customers": [3, 2],
    ...                   "p_alive": [1.0, 0.7]})
    >>> p_alive_heatmap(g).data[0].z.shape
    (2, 1)
    """
    rows = list(dict.fromkeys(grid["repeat_purchases"]))
    cols = sorted(dict.fromkeys(grid["days_since_last"]), key=lambda c: float(c.split("-")[0]))
    z = grid.pivot(index="repeat_purchases", columns="days_since_last", values="p_alive").reindex(index=rows, columns=cols)
    n = grid.pivot(index="repeat_purchases", columns="days_since_last", values="customers").reindex(index=rows, columns=cols)
    values = z.to_numpy(float)
    text = np.where(np.isfinite(values), np.char.mod("%.0f%%", np.round(100 * np.nan_to_num(values))), "")
    fig = go.Figure(go.Heatmap(z=values, x=cols, y=rows, text=text, texttemplate="%{text}", textfont=dict(size=11),
                               customdata=n.fillna(0).to_numpy(int), colorscale="RdYlGn", zmin=0, zmax=1,
                               colorbar=dict(tickformat=".0%", title="P(alive)"),
                               hovertemplate="%{y} repeat purchases, last %{x} days ago<br>%{customdata:,} customers, "
                                             "mean P(alive) %{z:.0%}<extra></extra>"))
    fig.update_xaxes(title="days since the last purchase")
    fig.update_yaxes(title="repeat purchases", type="category")
    return _layout(fig, "Still a customer? The probability grows with repeat purchases and falls with time since "
                        "the last one", height=max(340, 34 * len(rows) + 180))


def value_decile_chart(deciles: pd.DataFrame) -> go.Figure:
    """Each decile's share of predicted value (decile 1: the most valuable tenth of customers), with the
    cumulative share.

    Examples
    --------
    >>> d = pd.DataFrame({"decile": [1, 2], "customers": [1, 1], "total": [3.0, 1.0], "share": [0.75, 0.25],
    ...                   "cumulative_share": [0.75, 1.0]})
    >>> len(value_decile_chart(d).data)
    2
    """
    what = "value" if deciles.attrs.get("measure", "customer_value") == "customer_value" else "purchases"
    x = [f"top {10 * d}%" if d == 1 else f"{10 * (d - 1)}-{10 * d}%" for d in deciles["decile"]]
    fig = go.Figure()
    fig.add_bar(x=x, y=deciles["share"], name=f"share of predicted {what}", marker_color=PALETTE[0],
                customdata=deciles["customers"],
                hovertemplate="%{x} (%{customdata:,} customers): %{y:.1%}<extra></extra>")
    fig.add_scatter(x=x, y=deciles["cumulative_share"], name="cumulative", mode="lines+markers", marker_color=NEUTRAL,
                    hovertemplate="up to %{x}: %{y:.1%}<extra></extra>")
    fig.add_hline(y=0.1, line_dash="dot", line_color=NEUTRAL)  # an even spread
    fig.update_yaxes(tickformat=".0%", rangemode="tozero", title=f"share of predicted {what}")
    fig.update_xaxes(title="customers ranked by predicted value, in tenths")
    return _layout(fig, f"How concentrated is {what}? Each tenth of customers' share (dotted: an even spread)",
                   height=380)


def value_segment_chart(table: pd.DataFrame) -> go.Figure:
    """Each segment's share of customers against its share of predicted value, and the share likely lapsed
    (:func:`helpers.value.value_by_segment`; its first column names the segments).

    Examples
    --------
    >>> t = pd.DataFrame({"persona": ["a", "b"], "customers": [3, 1], "share": [0.5, 0.5], "lapsed_share": [0.1, 0.2]})
    >>> [d.name for d in value_segment_chart(t).data]
    ['share of customers', 'share of predicted value', 'likely lapsed']
    """
    by = table.columns[0]
    names = labels(table[by])
    customers = table["customers"] / table["customers"].sum()
    fig = go.Figure()
    fig.add_bar(x=names, y=customers, name="share of customers", marker_color=NEUTRAL,
                hovertemplate="%{x}: %{y:.1%} of customers<extra></extra>")
    fig.add_bar(x=names, y=table["share"], name="share of predicted value", marker_color=PALETTE[0],
                hovertemplate="%{x}: %{y:.1%} of predicted value<extra></extra>")
    fig.add_scatter(x=names, y=table["lapsed_share"], name="likely lapsed", mode="markers",
                    marker=dict(symbol="diamond", size=11, color=PALETTE[3 % len(PALETTE)]),
                    hovertemplate="%{x}: %{y:.1%} likely lapsed (P(alive) < 50%)<extra></extra>")
    fig.update_yaxes(tickformat=".0%", rangemode="tozero")
    fig.update_layout(barmode="group")
    return _layout(fig, f"Where the value is: each {label(by)}'s share of customers and of predicted value", height=380)
