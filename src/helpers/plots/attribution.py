"""Charts of attribution results: credit by channel under each model, the shift from last touch, the chain.

Every function takes an :class:`helpers.attribution.AttributionResult`; channel names go through
:func:`label` (they come from the tracked site).
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from helpers.plots.base import NEUTRAL, PALETTE, _layout, label, labels

_LABELS = {"first": "first touch", "last": "last touch", "linear": "linear", "time_decay": "time decay",
           "position": "position based", "markov": "Markov", "shapley": "Shapley"}


def attribution_chart(result, models=None) -> go.Figure:
    """Share of conversions credited to each channel, one bar per model; Markov and Shapley with their
    bootstrap 95% intervals.

    Examples
    --------
    >>> import pandas as pd
    >>> from helpers.attribution import attribute
    >>> ev = pd.DataFrame({"user_id": ["a", "a", "a"], "event": ["t", "t", "buy"],
    ...                    "timestamp": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"], utc=True),
    ...                    "channel": ["ads", "web", None]})
    >>> len(attribution_chart(attribute(ev, "buy", models=("first", "last"), n_bootstrap=0)).data)
    2
    """
    models = [m for m in (models or result.models) if m in result.credit.columns]
    credit = result.credit.set_index("channel")
    total = float(result.conversions) or 1.0
    order = credit[models].mean(axis=1).sort_values().index  # most credited channel on top
    iv = result.intervals.set_index(["model", "channel"]) if len(result.intervals) else None
    fig = go.Figure()
    for i, m in enumerate(models):
        share = credit.loc[order, m] / total
        error = None
        if iv is not None and m in iv.index.get_level_values("model"):
            lo = iv.loc[m]["low"].reindex(order) / total
            hi = iv.loc[m]["high"].reindex(order) / total
            if lo.notna().any():
                error = dict(type="data", symmetric=False, array=(hi - share).fillna(0).clip(lower=0),
                             arrayminus=(share - lo).fillna(0).clip(lower=0), color=NEUTRAL, thickness=1)
        fig.add_bar(y=labels(order), x=share, orientation="h", name=_LABELS[m], error_x=error,
                    marker_color=PALETTE[i % len(PALETTE)], customdata=credit.loc[order, m],
                    hovertemplate="%{y}<br>" + _LABELS[m] + ": %{x:.1%} of conversions (%{customdata:,.1f})"
                                  "<extra></extra>")
    fig.update_layout(barmode="group")
    fig.update_xaxes(title="share of conversions credited", tickformat=".0%")
    return _layout(fig, f"Which channels get the credit for {result.conversions:,} conversions, by model",
                   height=max(360, 22 * len(order) * max(len(models), 1) // 2 + 160))


def attribution_shift_chart(result) -> go.Figure:
    """How many conversions each model moves to (right) or away from (left) each channel, against last touch."""
    d = result.vs_last_touch
    fig = go.Figure()
    if not len(d):
        fig.add_annotation(text="Last touch was not among the models, so there is nothing to compare with.",
                           showarrow=False)
        return _layout(fig, "Change against last touch", height=200)
    order = d.groupby("channel")["difference"].mean().sort_values().index
    for i, (m, g) in enumerate(d.groupby("model", sort=False)):
        g = g.set_index("channel").reindex(order)
        fig.add_scatter(y=labels(order), x=g["difference"], mode="markers", name=_LABELS.get(m, label(m)),
                        marker=dict(size=10, color=PALETTE[(i + 1) % len(PALETTE)]),
                        customdata=np.c_[g["credit"], g["last_touch"]],
                        hovertemplate="%{y}<br>%{x:+,.1f} conversions<br>%{customdata[0]:,.1f} against "
                                      "%{customdata[1]:,.1f} by last touch<extra></extra>")
    fig.add_vline(x=0, line_dash="dash", line_color=NEUTRAL)
    fig.update_xaxes(title="conversions credited minus last touch's")
    return _layout(fig, "What last touch misses: conversions each model moves between channels",
                   height=max(320, 30 * len(order) + 160))


def transition_heatmap(result) -> go.Figure:
    """The Markov chain's transition probabilities (from the row's state to the column's)."""
    tm = result.transition_matrix
    z = tm.to_numpy(float)
    # Higher-order chains have many states; past ~12 columns the cells are too narrow for a legible
    # 11 px label, so the numbers move to the hover.
    legible = tm.shape[1] <= 12
    text = np.where(legible & (z >= 0.005), np.char.mod("%.0f%%", np.round(100 * z)), "")
    fig = go.Figure(go.Heatmap(z=z, x=labels(tm.columns), y=labels(tm.index), text=text, texttemplate="%{text}",
                               textfont=dict(size=11), colorscale="Blues", zmin=0, zmax=1,
                               colorbar=dict(tickformat=".0%"),
                               hovertemplate="from %{y}<br>to %{x}: %{z:.1%}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", title="from")
    fig.update_xaxes(title="to", tickangle=-40)
    return _layout(fig, "Where journeys go next: Markov transition probabilities",
                   height=max(360, 34 * len(tm) + 200))
