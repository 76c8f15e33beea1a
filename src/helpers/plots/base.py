"""What every chart shares: the template and palette, offline rendering, safe text, and styled tables.

:func:`label` is the one way a name from the data becomes chart text (shortened, ``& < >`` escaped).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import plotly.io as pio

from helpers.report import escape, shorten

TEMPLATE = "plotly_white"
PALETTE = px.colors.qualitative.Safe  # colour-blind safe
NEUTRAL = "#8c8c8c"  # "all", "(none)": groups that are no segment of their own
_NEUTRAL_GROUPS = {"all", "(all)", "(none)", "overall", "users"}


def group_colours(names) -> dict:
    """One colour per group (persona, variant, channel), the same on every page: colours go to the names in
    sorted order, so a persona shown by the funnel, the survival curves and the projection keeps its colour;
    "all" and "(none)" are grey. A chart that shows only some of the groups assigns colours among those: every
    page of the report shows every persona, so they agree there.

    Examples
    --------
    >>> a = group_colours(["Deal hunters", "Browsers", "(none)"])
    >>> a == group_colours(["(none)", "Browsers", "Deal hunters"]), a["(none)"] == NEUTRAL, a["Browsers"] == PALETTE[0]
    (True, True, True)
    """
    distinct = sorted({str(n) for n in names if n is not None})
    own = [n for n in distinct if n not in _NEUTRAL_GROUPS]
    out = {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(own)}
    neutral = NEUTRAL if own else PALETTE[0]  # a chart of "all" alone keeps the house colour
    return {**out, **{n: neutral for n in distinct if n in _NEUTRAL_GROUPS}}


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


TITLE_CHARS = 40  # a title line that fits a phone (390 px) at TITLE_SIZE
TITLE_SIZE = 15
_LINE = 20  # px per title line
_LEGEND_ROW = 22  # px per legend row
_PHONE_WIDTH = 330  # px a chart has on a phone, to size the legend rows


def _legend_entries(fig: go.Figure) -> list[str]:
    if fig.layout.showlegend is False:
        return []
    names = [str(t.name) for t in fig.data if t.type not in ("heatmap", "indicator", "sankey")
             and t.showlegend is not False and t.name]
    names = list(dict.fromkeys(names))
    return names if (len(names) > 1 or fig.layout.showlegend) else []


def _layout(fig: go.Figure, title: str, height: int = 420) -> go.Figure:
    """The house layout: the title wrapped to fit a phone, then the legend under it, then the chart.

    Title and legend sit in the top margin, placed in pixels from the top of the figure, and the margin is
    made tall enough for both (legend rows counted for a phone's width), so neither covers the other, a
    subplot's title or the data at any width.
    """
    import textwrap

    lines = textwrap.wrap(title, TITLE_CHARS) or [""]
    title_px = 20 + _LINE * len(lines)
    entries = _legend_entries(fig)
    rows = 0
    if entries:  # entries flow left to right and wrap at the chart's width
        width, rows = 0, 1
        for name in entries:
            w = 40 + 7 * len(name)
            if width and width + w > _PHONE_WIDTH:
                rows, width = rows + 1, 0
            width += w
    legend_px = rows * _LEGEND_ROW + (6 if rows else 0)
    # Subplot titles are annotations just above each subplot: they need a line of their own.
    subplot_titles = any(a.yref == "paper" and a.yanchor == "bottom" and (a.y or 0) >= 0.99 and not a.showarrow
                         for a in fig.layout.annotations)
    top = title_px + legend_px + (_LINE + 6 if subplot_titles else 8)
    # Text that would have to shrink below 11 px to fit (bar labels of a grouped funnel) is left out, not shrunk:
    # the numbers stay in the hover and in the table below the chart.
    fig.update_layout(
        title=dict(text="<br>".join(lines), x=0, xref="container", xanchor="left", y=1, yref="container",
                   yanchor="top", pad=dict(t=18, l=12), font=dict(size=TITLE_SIZE)),  # 18: a wrapped title's first line clears the edge
        height=height + top - 60, margin=dict(l=10, r=10, t=top, b=10),
        legend=dict(orientation="h", xref="container", x=0, xanchor="left", yref="container",
                    y=1 - title_px / (height + top - 60), yanchor="top", font=dict(size=12)),
        uniformtext=dict(minsize=11, mode="hide"))
    return fig


_RATIO_TICKS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


def _ratio_axis(fig: go.Figure, low: Any, high: Any, title: str) -> None:
    """A log x axis for ratios with explicit 1-2-5 ticks: plotly's own log ticks add small unlabelled-looking
    minor labels ("2", "5" at 9 px) that are unreadable and repeat along the axis."""
    values = np.concatenate([np.asarray(low, float), np.asarray(high, float), [1.0]])
    values = values[np.isfinite(values) & (values > 0)]
    lo, hi = values.min(), values.max()
    ticks = [t for t in _RATIO_TICKS if lo / 2.5 <= t <= hi * 2.5] or [1]
    if len(ticks) > 7:  # a wide range: decades only, so labels do not crowd a phone-width axis
        ticks = [t for t in ticks if np.log10(t) == round(np.log10(t))]
    fig.update_xaxes(type="log", title=title, tickmode="array", tickvals=ticks,
                     ticktext=[f"{t:g}" for t in ticks], minor=dict(showgrid=False))


def _binned(values: pd.Series, bins: int, colour: str, hovertemplate: str) -> go.Bar:
    """A histogram counted here, not in the browser: the page carries ``bins`` bars, not one value per user
    (a plotly Histogram of 1M users embeds all 1M values)."""
    values = pd.Series(values, dtype="float64").dropna()
    counts, edges = np.histogram(values, bins=bins) if len(values) else (np.array([], int), np.array([0.0]))
    return go.Bar(x=(edges[:-1] + edges[1:]) / 2, y=counts, width=np.diff(edges), marker_color=colour,
                  customdata=np.c_[edges[:-1], edges[1:]], hovertemplate=hovertemplate + "<extra></extra>")


def _rgba(colour: str, alpha: float) -> str:
    if colour.startswith("rgb("):
        return colour.replace("rgb(", "rgba(").replace(")", f", {alpha})")
    colour = colour.lstrip("#")
    r, g, b = (int(colour[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r}, {g}, {b}, {alpha})"


SHOWN_ROWS = 10  # a longer table shows its first rows, the rest one click away


class Table:
    """A table for a report page: every cell already formatted and escaped (see :func:`styled`).

    ``data`` is the formatted frame; it displays as HTML in a notebook and in the report.
    """

    def __init__(self, data: pd.DataFrame, numeric: list[str], caption: str | None = None):
        self.data, self.numeric, self.caption = data, numeric, caption

    def _table(self, frame: pd.DataFrame) -> str:
        style = frame.style.hide(axis="index")
        if self.numeric:
            style = style.set_properties(subset=self.numeric, **{"text-align": "right", "white-space": "nowrap",
                                                                      "overflow-wrap": "normal"})
        if self.caption:
            style = style.set_caption(escape(self.caption, None))
        return style.to_html()

    def to_html(self) -> str:
        """The table as HTML; after :data:`SHOWN_ROWS` rows the whole table sits behind "Show all N rows"."""
        if len(self.data) <= SHOWN_ROWS:
            return self._table(self.data)
        return (self._table(self.data.head(SHOWN_ROWS))
                + f"<details><summary>Show all {len(self.data):,} rows</summary>{self._table(self.data)}</details>")

    def _repr_html_(self) -> str:
        return self.to_html()


def styled(table: pd.DataFrame, *, percent: Sequence[str] = (), precision: int = 2, limit: int = 120,
           caption: str | None = None) -> Table:
    """A display-ready table: each number shown as what it is, headers in words, intervals as one column.

    What a column holds comes from the result that made it (:mod:`helpers.units`: rates as percentages,
    ratios and scores as numbers, counts without decimals, p values as ``< 0.001``, durations as ``4 h 16 min``);
    ``percent`` marks more columns as rates. A pair ``ci_low``/``ci_high`` becomes one ``95% CI`` column in the
    unit of its estimate. Columns the result declares hidden are left out. Every other cell, and every column
    name, is text from the data: shortened to ``limit`` characters and HTML-escaped (a name may carry
    ``<script>``). Tables longer than ten rows show the rest behind a click. The caption is ``caption`` or the
    one the result carries (``attrs["caption"]``: which users, how many).

    Examples
    --------
    >>> html = styled(pd.DataFrame({"event": ["<b>x</b>"], "users": [1200]})).to_html()
    >>> "&lt;b&gt;x&lt;/b&gt;" in html, "1,200" in html, "<b>x" in html
    (True, True, False)
    >>> t = pd.DataFrame({"covariate": ["plan"], "hazard_ratio": [0.52], "ci_low": [0.461], "ci_high": [0.577]})
    >>> styled(t).data.to_dict("records")
    [{'Covariate': 'plan', 'Hazard ratio': '0.52', '95% CI': '0.46–0.58'}]
    """
    from helpers import units

    table = table.copy(deep=False)
    for col in percent:
        units.declare(table, {col: "rate"})
    hidden = set(table.attrs.get("hidden", ()))
    columns = [c for c in table.columns if c not in hidden]
    out: dict[str, pd.Series] = {}
    numeric: list[str] = []
    names = {str(c): c for c in columns}
    for col in columns:
        name = str(col)
        if name.endswith("_high") and name[:-5] + "_low" in names or name == "ci_high" and "ci_low" in names:
            continue  # shown with its lower bound
        kind = units.kind_of(table, col)
        high = "ci_high" if name == "ci_low" else name[:-4] + "_high" if name.endswith("_low") else None
        if high in names:
            stem = "" if name == "ci_low" else name[:-4].removesuffix("_ci")
            if stem in names and col not in table.attrs.get("units", {}):
                kind = units.kind_of(table, names[stem])
            head = f"{escape(units.header(table, stem), limit)} 95% CI" if stem else "95% CI"
            lows = table[col].map(lambda v, k=kind: units.format_value(v, k))
            highs = table[names[high]].map(lambda v, k=kind: units.format_value(v, k))
            out[head] = pd.Series([f"{a}–{b}" if a and b else (f"{a}–∞" if a else "") for a, b in zip(lows, highs)],
                                  index=table.index)
            numeric.append(head)
            continue
        head = escape(units.header(table, col), limit)
        if kind == "text":
            out[head] = table[col].map(lambda v: "" if _is_missing(v) else escape(v, limit))
        else:
            if kind == "number" and precision != 2:
                out[head] = table[col].map(lambda v: "" if _is_missing(v) else f"{float(v):,.{precision}f}")
            else:
                out[head] = table[col].map(lambda v, k=kind: units.format_value(v, k))
            numeric.append(head)
    for col, words in table.attrs.get("missing", {}).items():  # an empty cell that means something says it
        head = escape(units.header(table, col), limit)
        if head in out and col in table.columns:
            out[head] = out[head].where(table[col].notna().to_numpy(), escape(words, limit))
    data = pd.DataFrame(out, index=table.index).reset_index(drop=True)
    return Table(data, numeric, caption if caption is not None else table.attrs.get("caption"))


def _is_missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # a list or an array in a cell
        return False
