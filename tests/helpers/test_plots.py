"""Charts stay small at scale: a report page carries bins and thinned curves, never one value per user."""

from __future__ import annotations

import numpy as np
import pandas as pd

from helpers import plots
from helpers.retention import survival_curves


def test_thinning_keeps_the_first_point_and_the_last_of_each_slice():
    curve = pd.DataFrame({"timeline": [0.0, 0.1, 0.2, 1.1, 1.5, 2.0], "survival": [1, 0.9, 0.8, 0.7, 0.6, 0.5]})
    thin = plots.retention._thin_steps(curve, 1.0)
    assert thin["timeline"].tolist() == [0.0, 0.2, 1.5, 2.0]
    assert thin["survival"].tolist() == [1, 0.8, 0.6, 0.5]


def test_a_survival_chart_of_many_distinct_times_is_thinned_but_ends_where_the_curve_ends():
    rng = np.random.default_rng(0)
    n = 40_000
    lifetimes = pd.DataFrame({"duration_days": rng.exponential(60, n).clip(max=180), "churned": rng.random(n) < 0.7,
                              "group": rng.choice(["a", "b"], n)})
    result = survival_curves(lifetimes, by="group")
    fig = plots.survival_chart(result, max_points=500)
    curves = [tr for tr in fig.data if tr.name in ("a", "b")]
    assert len(curves) == 2
    for tr in curves:
        full = result.table[result.table["group"] == tr.name]
        assert len(full) > 10_000 and len(tr.x) <= 502
        assert tr.y[-1] == full["survival"].iloc[-1] and tr.x[-1] == full["timeline"].iloc[-1]
        # every drawn point is a point of the true curve (so a step moves by at most one slice)
        true_at = np.interp(np.asarray(tr.x), full["timeline"], full["survival"])
        assert np.allclose(true_at, tr.y)
    # at-risk numbers come from the full curve: at day 0 everyone in the group is at risk
    at_risk = [tr for tr in fig.data if tr.mode == "text"]
    assert sorted(int(t.text[0].replace(",", "")) for t in at_risk) == sorted(lifetimes["group"].value_counts())


def test_histograms_are_counted_in_python_not_embedded_per_user():
    values = pd.Series(np.random.default_rng(1).random(100_000))
    bar = plots.base._binned(values, 40, "#000000", "%{y}")
    assert len(bar.x) == 40 and int(np.sum(bar.y)) == 100_000
    assert np.allclose(np.asarray(bar.customdata)[:, 1] - np.asarray(bar.customdata)[:, 0], np.asarray(bar.width))
    empty = plots.base._binned(pd.Series([], dtype=float), 40, "#000000", "%{y}")
    assert len(empty.x) == 0


HOSTILE = "<img src=x onerror=alert(1)>"


def _hostile_events() -> pd.DataFrame:
    from helpers.io import load_events

    rows = [("u1", "visit", "2025-01-01 10:00", HOSTILE), ("u1", HOSTILE, "2025-01-01 10:05", "web"),
            ("u1", "buy", "2025-01-01 10:10", "web"), ("u2", "visit", "2025-01-02 10:00", HOSTILE),
            ("u2", HOSTILE, "2025-01-02 11:00", HOSTILE), ("u3", "visit", "2025-01-03", "web")]
    return load_events(pd.DataFrame(rows, columns=["user_id", "event", "timestamp", "channel"]))


def _texts(fig) -> str:
    """Every string of a figure as plotly will read it (its JSON with plotly's own escapes decoded)."""
    import json

    return json.dumps(json.loads(fig.to_json()))


def test_names_from_the_data_reach_chart_text_escaped_and_shortened():
    from helpers import funnel, io, paths

    ev = _hostile_events()
    quality = io.data_quality(ev, as_of="2025-02-01")
    result = funnel.compute_funnel(ev, ["visit", HOSTILE, "buy"], conversion_window="1D")
    by = funnel.compute_funnel(ev, ["visit", HOSTILE], by=pd.Series({"u1": HOSTILE, "u2": "b", "u3": "b"}, name="seg"))
    figures = [plots.events_per_type(quality), plots.channel_mix(quality), plots.funnel_chart(result),
               plots.funnel_chart(by), plots.segment_comparison(funnel.compare_segments(by)),
               plots.paths_sankey(paths.top_paths(ev, end="buy")), plots.time_to_convert(result, step=2),
               plots.friction_chart(funnel.rank_friction(result))]
    for fig in figures:
        text = _texts(fig)
        assert "<img" not in text, fig.layout.title.text
        assert "&lt;img src=x onerror=alert(1)&gt;" in text, fig.layout.title.text
    assert plots.label("é" * 300) == "é" * 80 + "…"


def test_styled_tables_escape_cells_and_column_names_and_keep_numbers_formatted():
    table = pd.DataFrame({HOSTILE: [HOSTILE, "x" * 500], "users": [1234, 5], "share": [0.5, 0.25]})
    html = plots.styled(table).to_html()
    assert "<img" not in html and html.count("&lt;img src=x onerror=alert(1)&gt;") == 2
    assert "1,234" in html and "50.0%" in html
    assert "x" * 120 + "…" in html and "x" * 121 not in html


def test_a_segment_keeps_its_colour_on_every_chart():
    from helpers.funnel import compare_segments, compute_funnel

    users = [f"u{i}" for i in range(60)]
    ev = pd.DataFrame({"user_id": users * 2, "event": ["visit"] * 60 + ["buy"] * 60,
                       "timestamp": pd.to_datetime(["2025-01-01"] * 60 + ["2025-01-02"] * 60, utc=True)})
    seg = pd.Series(["Browsers", "Deal hunters", "(none)"] * 20, index=users, name="persona")
    result = compute_funnel(ev, ["visit", "buy"], by=seg)
    bars = {t.name: t.marker.color for t in plots.funnel_chart(result).data}
    dots = {t.name: t.marker.color for t in plots.segment_comparison(compare_segments(result)).data}
    assert bars == dots and len(set(bars.values())) == 3 and bars["(none)"] == plots.NEUTRAL


def test_an_empty_cell_that_means_something_says_it_and_an_open_interval_shows_infinity():
    from helpers import units

    t = units.declare(pd.DataFrame({"group": ["a", "b"], "median_days": [12.5, np.nan], "median_low": [10.0, 90.0],
                                    "median_high": [15.0, np.nan]}),
                      {"median_days": "days", "median_low": "days", "median_high": "days"},
                      headers={"median": "Median lifetime"}, missing={"median_days": "not reached"})
    rows = plots.styled(t).data.to_dict("records")
    assert rows[1] == {"Group": "b", "Median days": "not reached", "Median lifetime 95% CI": "90.0 days–∞"}
    assert rows[0]["Median days"] == "12.5 days"


def test_the_dau_mau_axis_starts_at_zero():
    table = pd.DataFrame({"period": pd.to_datetime(["2025-01-01", "2025-02-01"]), "dau_mau": [0.12, 0.14],
                          "share_1_day": [0.5, 0.5], "share_2_3_days": [0.2, 0.2], "share_4_7_days": [0.2, 0.2],
                          "share_8_plus_days": [0.1, 0.1]})
    assert plots.stickiness_chart(table).layout.yaxis.rangemode == "tozero"


def test_experiment_charts_escape_names_and_show_the_readouts_numbers():
    from helpers import experiments

    t0 = pd.Timestamp("2025-01-01", tz="UTC")
    n = 400
    a = pd.DataFrame({"user_id": [f"p{i}" for i in range(n)], "variant": np.where(np.arange(n) % 2, HOSTILE, "A"),
                      "assigned_at": t0 + pd.to_timedelta(np.arange(n), unit="h"),
                      "plan": np.where(np.arange(n) % 4 < 2, HOSTILE, "pro")})
    buyers = [f"p{i}" for i in range(n) if i % 3 == 0 or (i % 2 and i % 5 == 0)]
    ev = pd.DataFrame({"user_id": buyers, "event": HOSTILE, "timestamp": t0 + pd.Timedelta("30D")})
    ev = pd.concat([ev, a[["user_id", "assigned_at"]].rename(columns={"assigned_at": "timestamp"}).assign(
        event=HOSTILE, timestamp=lambda d: d["timestamp"] + pd.Timedelta("1h"))], ignore_index=True)
    r = experiments.readout(ev, a, [HOSTILE, experiments.count(HOSTILE)], control="A", post_period="40D",
                            sequential=True, observed_until=t0 + pd.Timedelta("60D"))
    seg = experiments.readout(ev, a, [HOSTILE], control="A", post_period="40D", by="plan",
                              observed_until=t0 + pd.Timedelta("60D"))
    lift = plots.lift_chart(r)
    for fig in (plots.split_chart(r), lift, plots.sequential_chart(r), plots.lift_chart(seg, segment=True)):
        text = _texts(fig)
        assert "<img" not in text and "&lt;img src=x onerror=alert(1)&gt;" in text, fig.layout.title.text
    raw = lift.data[0]  # the raw results: dots at the relative lifts, bars to their interval
    want = r.results[r.results["adjustment"] == "none"].iloc[::-1]
    assert np.allclose(raw.x, want["relative_lift"]) and np.allclose(
        np.asarray(raw.x) + np.asarray(raw.error_x.array), want["relative_ci_high"])
    view = r.sequential_view[r.sequential_view["metric"] == r.metrics[0].name]
    assert np.allclose(plots.sequential_chart(r).data[4].y, view["difference"])
