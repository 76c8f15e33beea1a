"""Charts of an experiment readout: the split, the relative lift of every metric with its interval (raw and
CUPED), and the sequential view over time.

Every function takes a :class:`helpers.experiments.Readout`; metric, variant and segment names go through
:func:`label` (they come from the data or the config).
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from helpers.plots.base import NEUTRAL, PALETTE, _layout, _rgba, label, labels

_ADJUSTMENT = {"none": "raw", "cuped": "CUPED-adjusted"}


def split_chart(r) -> go.Figure:
    """Persons per variant against the planned split (the sample ratio mismatch check).

    Examples
    --------
    >>> import pandas as pd
    >>> from helpers.experiments import readout
    >>> t0 = pd.Timestamp("2024-01-01", tz="UTC")
    >>> a = pd.DataFrame({"user_id": list("abcd"), "variant": ["A", "B"] * 2, "assigned_at": t0})
    >>> ev = pd.DataFrame({"user_id": ["a"], "event": ["buy"], "timestamp": [t0]})
    >>> len(split_chart(readout(ev, a, ["buy"], control="A", observed_until=t0)).data)
    2
    """
    s = r.srm
    fig = go.Figure()
    fig.add_bar(x=labels(s["variant"]), y=s["persons"], name="assigned", marker_color=PALETTE[0],
                hovertemplate="%{x}: %{y:,} persons<extra></extra>")
    fig.add_scatter(x=labels(s["variant"]), y=s["expected"], mode="markers", name="planned",
                    marker=dict(symbol="line-ew-open", size=40, color=NEUTRAL, line=dict(width=3)),
                    hovertemplate="%{x}: %{y:,.0f} planned<extra></extra>")
    fig.update_yaxes(title="persons", rangemode="tozero")
    verdict = "healthy" if r.split_ok else "BROKEN (sample ratio mismatch)"
    return _layout(fig, f"Persons per variant against the plan: the split is {verdict}, p = {r.srm_p:.2g}",
                   height=340)


def lift_chart(r, *, segment: bool = False) -> go.Figure:
    """The relative lift of each metric (variant against control) with its interval, raw and CUPED-adjusted
    side by side (the always-valid intervals of a sequential readout are in :func:`sequential_chart`). With
    ``segment=True`` (a readout ``by`` a column), one row per metric and segment, Holm-adjusted.

    Examples
    --------
    >>> import pandas as pd
    >>> from helpers.experiments import readout
    >>> t0 = pd.Timestamp("2024-01-01", tz="UTC")
    >>> a = pd.DataFrame({"user_id": list("abcdef"), "variant": ["A", "B"] * 3, "assigned_at": t0})
    >>> ev = pd.DataFrame({"user_id": ["a", "b", "d"], "event": "buy", "timestamp": t0})
    >>> [t.name for t in lift_chart(readout(ev, a, ["buy"], control="A", observed_until=t0)).data]
    ['raw', 'CUPED-adjusted']
    """
    res = r.results
    if "segment" in res.columns:
        res = res[res["segment"].notna()] if segment else res[res["segment"].isna()] if res["segment"].isna().any() else res
    several = len(r.variants) > 2
    keys = res["metric"].astype(str)
    if several:
        keys = keys + " · " + res["variant"].astype(str)
    if segment and "segment" in res.columns:
        keys = keys + " · " + res["segment"].astype(str)
    res = res.assign(_row=labels(keys))
    order = list(dict.fromkeys(res["_row"]))[::-1]  # first metric on top
    families = list(dict.fromkeys(res["adjustment"]))
    fig = go.Figure()
    for i, adjustment in enumerate(families):
        g = res[res["adjustment"] == adjustment].set_index("_row").reindex(order)
        lift = g["relative_lift"]
        err = dict(type="data", symmetric=False, array=(g["relative_ci_high"] - lift).clip(lower=0),
                   arrayminus=(lift - g["relative_ci_low"]).clip(lower=0), thickness=2, width=6,
                   color=PALETTE[i % len(PALETTE)])
        custom = [list(row) for row in zip(g["difference"], g["ci_low"], g["ci_high"], g["p_adjusted"], order)]
        # Raw and adjusted side by side on each metric's row, not on top of each other.
        y = np.arange(len(order)) + (i - (len(families) - 1) / 2) * 0.22
        fig.add_scatter(x=lift, y=y, mode="markers", name=_ADJUSTMENT.get(adjustment, label(adjustment)),
                        marker=dict(size=9, color=PALETTE[i % len(PALETTE)]), error_x=err, customdata=custom,
                        hovertemplate="%{customdata[4]}<br>lift %{x:+.1%}<br>difference %{customdata[0]:+.4g} "
                                      "[%{customdata[1]:+.4g}, %{customdata[2]:+.4g}]<br>Holm p %{customdata[3]:.3g}"
                                      "<extra>" + _ADJUSTMENT.get(adjustment, "") + "</extra>")
    fig.update_yaxes(tickmode="array", tickvals=list(range(len(order))), ticktext=order,
                     range=[-0.6, len(order) - 0.4], showgrid=False, zeroline=False)
    fig.add_vline(x=0, line=dict(color=NEUTRAL, width=1, dash="dot"))
    fig.update_xaxes(title=f"relative lift against {label(r.control)} ({100 * (1 - r.alpha):.0f}% interval)",
                     tickformat="+.0%", zeroline=False)
    title = "Lift of each metric against the control" + (", per segment" if segment else "")
    return _layout(fig, title, height=max(300, 60 * len(order) + 140))


def sequential_chart(r, metric: str | None = None) -> go.Figure:
    """The difference over daily looks for one metric (default: the first), with the fixed-horizon interval
    (not valid when looked at daily) and the always-valid one, which may be read at every look.

    Examples
    --------
    >>> import pandas as pd
    >>> from helpers.experiments import readout
    >>> t0 = pd.Timestamp("2024-01-01", tz="UTC")
    >>> a = pd.DataFrame({"user_id": [str(i) for i in range(40)], "variant": ["A", "B"] * 20,
    ...                   "assigned_at": t0 + pd.to_timedelta(range(40), unit="h")})
    >>> ev = pd.DataFrame({"user_id": [str(i) for i in range(0, 40, 3)], "event": "buy", "timestamp": t0 + pd.Timedelta("3D")})
    >>> r = readout(ev, a, ["buy"], control="A", post_period="2D", observed_until=t0 + pd.Timedelta("6D"), sequential=True)
    >>> len(sequential_chart(r).data)
    5
    """
    if r.sequential_view is None or not len(r.sequential_view):
        raise ValueError("the readout has no sequential view: run readout(..., sequential=True, post_period=...).")
    metric = metric or r.metrics[0].name
    v = r.sequential_view[r.sequential_view["metric"] == metric]
    fig = go.Figure()
    for i, (variant, g) in enumerate(v.groupby("variant", sort=False)):
        colour = PALETTE[i % len(PALETTE)]
        name = label(variant)
        fig.add_scatter(x=g["look"], y=g["cs_high"], mode="lines", line=dict(width=0), showlegend=False,
                        hoverinfo="skip")
        fig.add_scatter(x=g["look"], y=g["cs_low"], mode="lines", line=dict(width=0), fill="tonexty",
                        fillcolor=_rgba(colour, 0.18), name=f"{name}: always-valid interval", hoverinfo="skip")
        fig.add_scatter(x=g["look"], y=g["ci_high"], mode="lines", line=dict(color=colour, width=1, dash="dot"),
                        name=f"{name}: fixed-horizon interval (not valid daily)", legendgroup=f"fixed{i}",
                        hoverinfo="skip")
        fig.add_scatter(x=g["look"], y=g["ci_low"], mode="lines", line=dict(color=colour, width=1, dash="dot"),
                        showlegend=False, legendgroup=f"fixed{i}", hoverinfo="skip")
        fig.add_scatter(x=g["look"], y=g["difference"], mode="lines", line=dict(color=colour, width=2),
                        name=f"{name} minus {label(r.control)}", customdata=np.c_[g["persons"], g["cs_low"], g["cs_high"]],
                        hovertemplate="%{x|%Y-%m-%d}: %{y:+.4g} from %{customdata[0]:,} persons<br>always valid "
                                      "[%{customdata[1]:+.4g}, %{customdata[2]:+.4g}]<extra></extra>")
    fig.add_hline(y=0, line=dict(color=NEUTRAL, width=1, dash="dot"))
    # The first looks, with a handful of persons, have intervals wide enough to flatten the rest of the chart:
    # the axis fits the looks with at least 5% of the final persons (the earlier ones are still there, cut off).
    settled = v[v["persons"] >= max(20, 0.05 * v["persons"].max())]
    if len(settled):
        lo, hi = min(settled["cs_low"].min(), settled["ci_low"].min(), 0), max(settled["cs_high"].max(),
                                                                             settled["ci_high"].max(), 0)
        pad = 0.08 * (hi - lo or 1)
        fig.update_yaxes(range=[lo - pad, hi + pad])
    fig.update_yaxes(title=f"difference in {label(metric)}")
    return _layout(fig, f"{label(metric)} over time: the difference at each daily look", height=380)
