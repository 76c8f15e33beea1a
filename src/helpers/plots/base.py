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


def _mpl_label(value: Any, limit: int = LABEL_LIMIT) -> str:
    """A name from the data as matplotlib text: shortened, ``$`` escaped (it would start mathtext)."""
    return shorten(value, limit).replace("$", r"\$")


def _layout(fig: go.Figure, title: str, height: int = 420) -> go.Figure:
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=60, b=10),
                      legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1.0))
    return fig


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


def _days_text(days: float) -> str:
    return f"{days * 24:.1f} h" if days < 1 else f"{days:.1f} days"


def styled(table: pd.DataFrame, *, percent: Sequence[str] = (), precision: int = 2, limit: int = 120):
    """A display-ready table: counts with thousands separators, shares as percentages, durations rounded.

    Columns named ``conversion*``, ``share*``, ``survival_*``, ``ci_*``,
    ``difference`` or listed in ``percent`` are shown as percentages. Every other cell, and every
    column name, is text from the data: shortened to ``limit`` characters and
    HTML-escaped (a name may carry ``<script>``).

    Examples
    --------
    >>> html = styled(pd.DataFrame({"event": ["<b>x</b>"], "users": [1200]})).to_html()
    >>> "&lt;b&gt;x&lt;/b&gt;" in html, "1,200" in html, "<b>x" in html
    (True, True, False)
    """
    fmt: dict[str, Any] = {}
    text = lambda v: "" if _is_missing(v) else escape(v, limit)  # noqa: E731 - the formatter of text cells
    for col in table.columns:
        dtype = table[col].dtype
        if col in percent or str(col).startswith(("conversion", "share", "ci_", "goal_share", "downstream", "survival_")) or col in ("difference", "churn_share"):
            fmt[col] = "{:.1%}"
        elif str(col).startswith("p_"):
            fmt[col] = "{:.3g}"
        elif pd.api.types.is_bool_dtype(dtype):
            fmt[col] = text
        elif pd.api.types.is_integer_dtype(dtype):
            fmt[col] = "{:,}"
        elif pd.api.types.is_float_dtype(dtype):
            fmt[col] = "{:,.%df}" % precision
        elif pd.api.types.is_timedelta64_dtype(dtype):
            fmt[col] = lambda v: "" if pd.isna(v) else str(pd.Timedelta(v).round("min"))
        else:
            fmt[col] = text
    return (table.style.format(fmt, na_rep="").format_index(text, axis=1).format_index(text, axis=0)
            .hide(axis="index"))


def _is_missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # a list or an array in a cell
        return False
