"""Attribution (#19): the journey rules, each model on hand-made paths, and agreement with independent
computations (a value-iteration Markov solve, a brute-force Shapley over every order of the channels)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from helpers.attribution import (NO_TOUCH, attribute, attribution_headline, intervals_headline,
                                 last_touch_headline, markov_orders)
from helpers.io import EventDataError

T0 = pd.Timestamp("2024-03-01", tz="UTC")


def paths_log(paths, *, gap="1h", conversion="buy") -> pd.DataFrame:
    """One person per path: touches an hour apart, then the conversion an hour after the last (or nothing)."""
    rows = []
    for u, (channels, end) in enumerate(paths):
        for i, c in enumerate(channels):
            rows.append((f"p{u}", "touch", T0 + i * pd.Timedelta(gap), c, np.nan))
        if end == "conv":
            rows.append((f"p{u}", conversion, T0 + len(channels) * pd.Timedelta(gap), None, 10.0 * (u + 1)))
    # the end of observation lies well after every path, so nothing depends on the default observed_until
    rows.append(("zz", "other", T0 + pd.Timedelta("60D"), None, np.nan))
    return pd.DataFrame(rows, columns=["user_id", "event", "timestamp", "channel", "value"])


def credit(result, model=None) -> dict:
    table = result.credit.set_index("channel")
    return table[model].to_dict() if model else table.to_dict("index")


THREE = [("C1 C2 C3".split(), "conv"), (["C1"], "null"), ("C2 C3".split(), "null")]


def test_markov_on_three_paths_by_hand():
    """start->C1 2/3, ->C2 1/3; C1->C2 1/2, ->null 1/2; C2->C3; C3->conv 1/2: P = 1/3, RE .5/1/1, credit .2/.4/.4."""
    r = attribute(paths_log(THREE), "buy", n_bootstrap=0)
    assert r.conversion_probability == pytest.approx(1 / 3)
    assert r.removal_effects.set_index("channel")["removal_effect"].to_dict() == pytest.approx(
        {"C1": 0.5, "C2": 1.0, "C3": 1.0})
    assert credit(r, "markov") == pytest.approx({"C1": 0.2, "C2": 0.4, "C3": 0.4})
    tm = r.transition_matrix
    assert tm.loc["(start)", "C1"] == pytest.approx(2 / 3) and tm.loc["C1", "(null)"] == pytest.approx(0.5)
    assert np.allclose(tm.sum(axis=1), 1.0)


@pytest.mark.parametrize("collapse", [True, False])
def test_markov_with_loops_gives_a_two_and_b_one(collapse):
    """A>B>A>B>B>A, A>B>B>A>A, A>A, all converting: without A nothing converts (RE 1); without B half of the
    chain's conversion probability is left (RE 1/2), so of three conversions A gets 2 and B 1."""
    r = attribute(paths_log([("A B A B B A".split(), "conv"), ("A B B A A".split(), "conv"), (["A", "A"], "conv")]),
                  "buy", collapse_repeats=collapse, n_bootstrap=0)
    assert credit(r, "markov") == pytest.approx({"A": 2.0, "B": 1.0})
    assert r.removal_effects.set_index("channel")["removal_effect"].to_dict() == pytest.approx(
        {"A": 1.0, "B": 0.5})


def test_rule_based_models_by_hand():
    """Journeys of 1, 2 and 4 touches (collapse off): first, last, linear and 40/20/40 position shares."""
    r = attribute(paths_log([(["a"], "conv"), (["a", "b"], "conv"), (["a", "b", "c", "d"], "conv")]), "buy",
                  collapse_repeats=False, models=("first", "last", "linear", "position"), n_bootstrap=0)
    c = credit(r)
    assert c["a"] == pytest.approx({"first": 3, "last": 1, "linear": 1 + 0.5 + 0.25, "position": 1 + 0.5 + 0.4})
    assert c["b"] == pytest.approx({"first": 0, "last": 1, "linear": 0.5 + 0.25, "position": 0.5 + 0.1})
    assert c["c"] == pytest.approx({"first": 0, "last": 0, "linear": 0.25, "position": 0.1})
    assert c["d"] == pytest.approx({"first": 0, "last": 1, "linear": 0.25, "position": 0.4})


def test_time_decay_halves_weight_per_half_life():
    """Touches 2 and 1 days before the conversion, half life 1 day: weights 1/4 and 1/2, so 1/3 and 2/3."""
    r = attribute(paths_log([(["old", "new"], "conv")], gap="1D"), "buy", half_life="1D", models=("time_decay",),
                  n_bootstrap=0)
    assert credit(r, "time_decay") == pytest.approx({"new": 2 / 3, "old": 1 / 3})
    assert r.half_life == pd.Timedelta("1D")
    assert attribute(paths_log([(["x"], "conv")]), "buy", lookback="8D", models=("time_decay",),
                     n_bootstrap=0).half_life == pd.Timedelta("2D")  # lookback / 4


def test_lookback_is_inclusive_and_older_touches_do_not_count():
    """30 days exactly before counts, 30 days and a second does not; a conversion left with no touch is credited
    to '(no touch)' in every model, so every column still sums to the conversions."""
    buy = T0 + pd.Timedelta("40D")
    ev = pd.DataFrame({"user_id": ["a", "a", "b", "b"], "event": ["t", "buy", "t", "buy"],
                       "timestamp": [buy - pd.Timedelta("30D"), buy, buy - pd.Timedelta("30D") - pd.Timedelta("1s"),
                                     buy], "channel": ["email", None, "ads", None]})
    r = attribute(ev, "buy", lookback="30D", n_bootstrap=0)
    c = r.credit.set_index("channel")
    assert list(c.index) == ["email", NO_TOUCH]  # ads touched no journey at all
    assert (c.loc["email"] == 1).all() and (c.loc[NO_TOUCH] == 1).all()
    assert np.allclose(c.sum(), 2)
    assert any("had no touch" in n for n in r.notes)


def test_touches_after_a_conversion_start_the_next_journey_and_a_touch_at_its_moment_counts():
    ev = pd.DataFrame({"user_id": ["a"] * 5, "event": ["t", "buy", "t", "t", "buy"],
                       "timestamp": [T0, T0 + pd.Timedelta("1h"), T0 + pd.Timedelta("1h"), T0 + pd.Timedelta("2h"),
                                     T0 + pd.Timedelta("3h")],
                       "channel": ["ads", None, "email", "push", None]})
    # the email touch shares the first purchase's moment: it belongs to that purchase, not the next
    r = attribute(ev, "buy", models=("first", "last"), n_bootstrap=0)
    assert credit(r) == {"ads": {"first": 1.0, "last": 0.0}, "email": {"first": 0.0, "last": 1.0},
                         "push": {"first": 1.0, "last": 1.0}}


def test_never_converters_count_only_in_markov():
    """Adding people whose journeys end in null changes Markov but no rule-based model (nor Shapley).

    With three B-only failures: start->A 2/6, ->B 4/6; A->B 1/2, ->conv 1/2; B->conv 2/5, ->null 3/5, so
    P = 1/2, without A 4/15 (RE 7/15), without B 1/6 (RE 2/3); before them both REs were 2/3."""
    base = [(["A", "B"], "conv"), (["A"], "conv"), (["B"], "conv")]
    with_null = base + [(["B"], "null")] * 3
    a = attribute(paths_log(base), "buy", n_bootstrap=0)
    b = attribute(paths_log(with_null), "buy", n_bootstrap=0)
    rules = ["first", "last", "linear", "time_decay", "position", "shapley"]
    pd.testing.assert_frame_equal(a.credit[rules], b.credit[rules])
    assert credit(a, "markov") == pytest.approx({"A": 1.5, "B": 1.5})
    assert b.conversion_probability == pytest.approx(0.5)
    assert credit(b, "markov") == pytest.approx({"A": 3 * 7 / 15 / (7 / 15 + 2 / 3), "B": 3 * 2 / 3 / (7 / 15 + 2 / 3)})
    assert b.summary.set_index("measure").loc["journeys without conversion (null)", "value"] == "3"


def test_touches_after_the_last_conversion_form_a_null_path():
    ev = pd.DataFrame({"user_id": ["a"] * 3, "event": ["t", "buy", "t"],
                       "timestamp": [T0, T0 + pd.Timedelta("1h"), T0 + pd.Timedelta("2h")],
                       "channel": ["ads", None, "social"]})
    r = attribute(ev, "buy", n_bootstrap=0)
    s = r.summary.set_index("measure")["value"]
    assert s["journeys with touches"] == "2" and s["journeys without conversion (null)"] == "1"
    assert r.transition_matrix.loc["social", "(null)"] == 1.0


def _shapley_by_permutations(set_conversions: dict) -> dict:
    """Independent: average marginal contribution over every order of the channels, with v(S) = the conversions
    of journeys whose set lies within S."""
    channels = sorted(set().union(*set_conversions))
    out = dict.fromkeys(channels, 0.0)
    orders = list(itertools.permutations(channels))
    for order in orders:
        seen: set = set()
        for c in order:
            before = sum(n for s, n in set_conversions.items() if s <= seen)
            seen.add(c)
            after = sum(n for s, n in set_conversions.items() if s <= seen)
            out[c] += (after - before) / len(orders)
    return out


def test_shapley_on_three_channels_by_hand():
    """Sets {A}: 3, {A,B}: 2, {B,C}: 1 conversions: A 3 + 1, B 1 + 0.5, C 0.5."""
    paths = [(["A"], "conv")] * 3 + [(["A", "B"], "conv")] * 2 + [(["B", "C"], "conv")] + [(["C"], "null")]
    r = attribute(paths_log(paths), "buy", models=("shapley",), n_bootstrap=0)
    assert credit(r, "shapley") == pytest.approx({"A": 4.0, "B": 1.5, "C": 0.5})
    assert _shapley_by_permutations({frozenset("A"): 3, frozenset("AB"): 2, frozenset("BC"): 1}) == pytest.approx(
        {"A": 4.0, "B": 1.5, "C": 0.5})
    assert r.notes[0] == "Shapley values: exact."


def random_paths(rng, n, channels, p_conv=0.4, max_len=6):
    return [(list(rng.choice(channels, rng.integers(1, max_len + 1))), "conv" if rng.random() < p_conv else "null")
            for _ in range(n)]


def test_shapley_agrees_with_every_order_of_the_channels_and_with_linear_over_distinct_channels():
    rng = np.random.default_rng(5)
    paths = random_paths(rng, 300, list("ABCDE"))
    r = attribute(paths_log(paths), "buy", models=("shapley",), collapse_repeats=False, n_bootstrap=0)
    sets: dict = {}
    for channels, end in paths:
        if end == "conv":
            sets[frozenset(channels)] = sets.get(frozenset(channels), 0) + 1
    assert credit(r, "shapley") == pytest.approx(_shapley_by_permutations(sets))
    linear_distinct: dict = {}
    for s, n in sets.items():
        for c in s:
            linear_distinct[c] = linear_distinct.get(c, 0) + n / len(s)
    assert credit(r, "shapley") == pytest.approx(linear_distinct)


def test_shapley_beyond_twelve_channels_is_sampled_seeded_and_close():
    rng = np.random.default_rng(6)
    channels = [f"ch{i:02d}" for i in range(15)]
    paths = random_paths(rng, 800, channels, max_len=4)
    a = attribute(paths_log(paths), "buy", models=("shapley", "linear"), n_bootstrap=0, seed=1)
    b = attribute(paths_log(paths), "buy", models=("shapley", "linear"), n_bootstrap=0, seed=1)
    assert "sampled" in a.notes[0] and "15 channels" in a.notes[0]
    pd.testing.assert_frame_equal(a.credit, b.credit)
    assert a.credit["shapley"].sum() == pytest.approx(a.conversions)
    exact = {}  # the closed form for this characteristic function: equal shares of distinct channels
    for chs, end in paths:
        if end == "conv":
            for c in set(chs):
                exact[c] = exact.get(c, 0) + 1 / len(set(chs))
    got = credit(a, "shapley")
    assert max(abs(got[c] - exact[c]) for c in exact) < 0.05 * max(exact.values())


def _markov_by_iteration(paths, removed=None, order=1, sweeps=5000) -> float:
    """Independent: transition counts in dicts, then x = r + Q x iterated (no linear algebra)."""
    counts: dict = {}
    for channels, end in paths:
        states = ["start"] + [tuple(channels[max(0, i - order + 1): i + 1]) for i in range(len(channels))] + [end]
        for a, b in zip(states, states[1:]):
            counts.setdefault(a, {}).setdefault(b, 0)
            counts[a][b] += 1
    x = {s: 0.0 for s in counts}
    for _ in range(sweeps):
        for s, out in counts.items():
            total = sum(out.values())
            x[s] = sum(n / total * (1.0 if b == "conv" else 0.0 if b == "null" or (removed and removed in b)
                                    else x[b]) for b, n in out.items())
    return x["start"]


@pytest.mark.parametrize("order", [1, 2])
def test_markov_agrees_with_value_iteration_on_random_paths(order):
    rng = np.random.default_rng(7 + order)
    paths = random_paths(rng, 120, list("ABCD"), max_len=4)
    r = attribute(paths_log(paths), "buy", collapse_repeats=False, markov_order=order, n_bootstrap=0)
    p = _markov_by_iteration(paths, order=order, sweeps=200)
    assert r.conversion_probability == pytest.approx(p, rel=1e-9)
    effects = {c: 1 - _markov_by_iteration(paths, removed=c, order=order, sweeps=200) / p for c in "ABCD"}
    assert r.removal_effects.set_index("channel")["removal_effect"].to_dict() == pytest.approx(effects, rel=1e-9)
    total = sum(effects.values())
    assert credit(r, "markov") == pytest.approx({c: e / total * r.conversions for c, e in effects.items()})


def planted(seed: int, n: int = 3000) -> tuple[pd.DataFrame, dict]:
    """A generator unlike the sample: 'partner' raises a person's conversion chance but is never the last touch;
    'display' is shown to a quarter of people at random and does nothing; the last touch is always 'direct'."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n):
        start = T0 + pd.Timedelta(hours=float(rng.uniform(0, 24 * 20)))
        partner = rng.random() < 0.3
        chans = ["partner"] if partner else []
        if rng.random() < 0.25:  # before or after the partner touch, at random
            chans.insert(int(rng.integers(0, len(chans) + 1)), "display")
        chans.append("direct")
        converts = rng.random() < (0.6 if partner else 0.1)
        for i, c in enumerate(chans):
            rows.append((f"u{u}", "visit", start + pd.Timedelta(hours=i), c, np.nan))
        if converts:
            rows.append((f"u{u}", "purchase", start + pd.Timedelta(hours=len(chans)), None,
                         float(rng.gamma(2, 30))))
    return pd.DataFrame(rows, columns=["user_id", "event", "timestamp", "channel", "value"]), {}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_planted_assisting_channel_gets_markov_credit_that_last_touch_misses(seed):
    ev, _ = planted(seed)
    r = attribute(ev, "purchase", value="value", n_bootstrap=200, seed=seed)
    c = credit(r)
    assert c["partner"]["last"] == 0 and c["partner"]["markov"] > c["display"]["markov"]
    re = r.removal_effects.set_index("channel")["removal_effect"]
    assert re["partner"] > re["display"]
    iv = r.intervals.set_index(["model", "channel"])
    lo, hi = iv.loc[("markov", "partner"), ["low", "high"]]
    assert lo <= c["partner"]["markov"] <= hi and lo > iv.loc[("markov", "display"), "high"]
    # conservation: every model's conversions and value sum to the totals
    assert np.allclose(r.credit.drop(columns="channel").sum(), r.conversions)
    assert np.allclose(r.value_credit.drop(columns="channel").sum(), r.value)
    assert r.value == pytest.approx(ev.loc[ev.event == "purchase", "value"].sum())


def test_a_chain_that_remembers_the_whole_path_gives_each_channel_its_paths_share_of_conversions():
    """Order 1 forgets that partner journeys convert more (direct's conversion rate is pooled), so partner's
    removal effect is about its traffic share; a chain whose order covers the longest path (3 here) reproduces
    every path's probability, so RE(c) is exactly the share of conversions on paths containing c."""
    ev, _ = planted(1)
    first = attribute(ev, "purchase", n_bootstrap=0).removal_effects.set_index("channel")["removal_effect"]
    full = attribute(ev, "purchase", n_bootstrap=0, markov_order=3).removal_effects.set_index("channel")
    touched = ev[ev.channel.notna()].groupby("user_id")["channel"].agg(set)
    buyers = set(ev.loc[ev.event == "purchase", "user_id"])
    share = {c: sum(c in touched[u] for u in buyers) / len(buyers) for c in ("partner", "display", "direct")}
    assert full["removal_effect"].to_dict() == pytest.approx(share, rel=1e-9)
    assert share["partner"] > 0.6 and first["partner"] < 0.4  # what order 1 misses


def test_value_credit_follows_the_conversions_value():
    r = attribute(paths_log([(["a", "b"], "conv"), (["b"], "conv")]), "buy", value="value", n_bootstrap=0)
    v = r.value_credit.set_index("channel")
    assert v.loc["b", "last"] == pytest.approx(10 + 20) and v.loc["a", "first"] == pytest.approx(10)
    assert v.loc["a", "linear"] == pytest.approx(5) and v.loc["b", "linear"] == pytest.approx(25)


def test_result_does_not_depend_on_row_order_and_the_input_is_not_modified():
    rng = np.random.default_rng(8)
    ev = paths_log(random_paths(rng, 200, list("ABCD")))
    # ties at one moment on purpose: two channels at the same time
    ev.loc[ev.index[:40:2], "timestamp"] = ev.loc[ev.index[1:41:2], "timestamp"].to_numpy()
    copy = ev.copy()
    a = attribute(ev, "buy", n_bootstrap=20)
    b = attribute(ev.sample(frac=1, random_state=3), "buy", n_bootstrap=20)
    pd.testing.assert_frame_equal(ev, copy)
    pd.testing.assert_frame_equal(a.credit, b.credit)
    pd.testing.assert_frame_equal(a.intervals, b.intervals)


def test_bootstrap_is_seeded_and_its_intervals_hold_the_estimate():
    ev, _ = planted(4, 1500)
    a = attribute(ev, "purchase", n_bootstrap=40, seed=2)
    b = attribute(ev, "purchase", n_bootstrap=40, seed=2)
    pd.testing.assert_frame_equal(a.intervals, b.intervals)
    iv = a.intervals
    assert ((iv["low"] <= iv["credit"] + 1e-9) & (iv["credit"] <= iv["high"] + 1e-9)).all()
    assert (iv["high"] > iv["low"]).all()
    none = attribute(ev, "purchase", n_bootstrap=0)
    assert none.intervals["low"].isna().all()


def test_vs_last_touch_is_the_difference_from_last_touch():
    r = attribute(paths_log([(["a", "b"], "conv"), (["b"], "conv")]), "buy", n_bootstrap=0)
    d = r.vs_last_touch.set_index(["model", "channel"])
    assert d.loc[("first", "a"), "difference"] == 1.0 and d.loc[("first", "b"), "difference"] == -1.0
    assert d.loc[("first", "b"), "relative_difference"] == pytest.approx(-0.5)
    assert "last" not in d.index.get_level_values("model")


def test_paths_lists_the_most_common_journeys():
    r = attribute(paths_log([(["a", "b"], "conv")] * 3 + [(["a", "b"], "null")] + [(["c"], "null")]), "buy",
                  n_bootstrap=0)
    top = r.paths.iloc[0]
    assert (top["path"], top["journeys"], top["conversions"], top["conversion"]) == ("a > b", 4, 3, 0.75)


@pytest.mark.parametrize("kwargs, message", [
    ({"channel": "source"}, "channel='source' is not a column"),
    ({"value": "revenue"}, "value='revenue' is not a column"),
    ({"value": "channel"}, "must be a number column"),
    ({"models": ("last", "data_driven")}, "choose from first, last"),
    ({"position_weights": (0.5, 0.5, 0.5)}, "sum to 1"),
    ({"lookback": "soon"}, "lookback='soon' is not a time span"),
    ({"markov_order": 0}, "markov_order=0"),
])
def test_bad_arguments_say_what_is_wrong(kwargs, message):
    with pytest.raises(EventDataError, match=message):
        attribute(paths_log(THREE), "buy", **kwargs)


def test_an_unknown_conversion_names_the_events_there_are():
    with pytest.raises(EventDataError, match="conversion \\['purchase'\\]: no such event.*'buy'"):
        attribute(paths_log(THREE), "purchase")


def test_markov_orders_reuses_the_paths_and_matches_a_rerun_at_each_order():
    ev, _ = planted(2, 1500)
    r = attribute(ev, "purchase", n_bootstrap=0)
    table = markov_orders(r, (1, 3)).set_index("channel")
    for k in (1, 3):
        again = attribute(ev, "purchase", n_bootstrap=0, markov_order=k)
        assert table[f"credit_order_{k}"].to_dict() == pytest.approx(credit(again, "markov"))
        assert table[f"removal_effect_order_{k}"].to_dict() == pytest.approx(
            again.removal_effects.set_index("channel")["removal_effect"].to_dict())


def test_headline_names_the_top_channel_of_each_model():
    r = attribute(paths_log([(["a", "b"], "conv"), (["b"], "conv")]), "buy", models=("last", "first"),
                  n_bootstrap=0)
    assert attribution_headline(r).startswith("Of 2 conversions, last touch credits b most (2.0); first touch "
                                              "credits a most (1.0).")  # a tie goes to the first name


def test_headline_names_the_channel_last_touch_undervalues():
    ev, _ = planted(3, 1500)
    text = attribution_headline(attribute(ev, "purchase", n_bootstrap=0))
    assert "Last touch undervalues partner most: Shapley credits it with" in text and "against 0." in text


def test_last_touch_headline_counts_the_credit_moved_and_names_who_gains_and_loses():
    """a>b converts twice, b once: last touch b 3; linear a 1, b 2; so 1 of 3 conversions moves, a gains it."""
    r = attribute(paths_log([(["a", "b"], "conv"), (["a", "b"], "conv"), (["b"], "conv")]), "buy",
                  models=("last", "linear"), n_bootstrap=0)
    assert last_touch_headline(r) == ("Linear moves 1.0 of 3 conversions (33%) away from the channels last touch "
                                      "credits: a gains 1.0; b loses 1.0.")
    same = attribute(paths_log([(["a"], "conv"), (["b"], "conv")]), "buy", models=("last", "linear"), n_bootstrap=0)
    assert last_touch_headline(same).startswith("Linear and last touch agree")


def test_intervals_headline_tells_a_clear_leader_from_an_overlap():
    clear = attribute(paths_log([(["a"], "conv")] * 40 + [(["b"], "conv")] * 5), "buy", models=("last", "shapley"),
                      n_bootstrap=100)
    assert "Shapley's top channel, a, is clearly ahead of b." in intervals_headline(clear)
    close = attribute(paths_log([(["a"], "conv")] * 11 + [(["b"], "conv")] * 10), "buy",
                      models=("last", "shapley"), n_bootstrap=100)
    assert "not clearly ahead of b: their intervals overlap" in intervals_headline(close)
    assert intervals_headline(attribute(paths_log([(["a"], "conv")]), "buy", models=("last",), n_bootstrap=0)) == (
        "Neither Markov nor Shapley was run, so there are no intervals.")


def test_the_samples_planted_affiliate_is_found_by_journey_models_and_missed_by_last_touch():
    """The sample's affiliate review sits between signup and the first cart, never last: last and first touch
    give it nothing, a first-order chain little, and orders 2 and 3 a removal effect close to the planted share
    of buyers who saw a review (about 28%)."""
    from helpers import io
    from helpers.sample import generate_journeys

    j = generate_journeys(6000, seed=3)
    ev = io.load_events(j.export())
    r = attribute(ev, "purchase", markov_order=3, n_bootstrap=0)
    c = r.credit.set_index("channel").loc["affiliate"]
    assert c["last"] == c["first"] == 0 and c["shapley"] > 50 and c["markov"] > 50
    buyers = ev.loc[ev["event"] == "purchase", "user_id"].unique()
    share = j.truth.set_index("user_id").loc[buyers, "saw_affiliate_review"].mean()
    assert 0.2 < share < 0.4
    re = markov_orders(r, (1, 2, 3)).set_index("channel").loc["affiliate"]
    assert re["removal_effect_order_2"] == pytest.approx(share, abs=0.03)
    assert re["removal_effect_order_3"] == pytest.approx(share, abs=0.03)
    assert re["removal_effect_order_1"] < share / 2


def messy_log(rng, n_people, channels, *, minutes=600) -> pd.DataFrame:
    """Touches on a coarse clock (ties between channels, repeats of one channel at one moment), several
    conversions per person (some at a touch's very moment), people who only touch or only convert."""
    rows = []
    for u in range(n_people):
        n_touch = int(rng.integers(0, 12)) if u % 7 else 0
        for _ in range(n_touch):
            rows.append((f"u{u}", "touch", int(rng.integers(0, minutes)), str(rng.choice(channels)), np.nan))
        n_conv = int(rng.integers(0, 4)) if u % 5 else 0
        for when in rng.choice(minutes, size=n_conv, replace=False):  # one person's conversions at distinct times
            rows.append((f"u{u}", "buy", int(when), None, float(rng.integers(1, 100))))
        if u % 11 == 0:  # a touch exactly at a conversion's moment
            convs = [r for r in rows if r[0] == f"u{u}" and r[1] == "buy"]
            if convs:
                rows.append((f"u{u}", "touch", convs[0][2], str(rng.choice(channels)), np.nan))
    ev = pd.DataFrame(rows, columns=["user_id", "event", "minute", "channel", "value"])
    ev["timestamp"] = T0 + pd.to_timedelta(ev.pop("minute") * 7, unit="min")
    return ev


def journey_rows(j) -> list:
    """Journeys as comparable tuples (the order of journeys is the backend's)."""
    out = []
    for i in range(len(j.converted)):
        s = slice(j.offsets[i], j.offsets[i + 1])
        out.append((str(j.user_id[i]), bool(j.converted[i]), float(j.amount[i]),
                    tuple(j.channels[c] for c in j.code[s]), tuple(np.round(j.decay[s], 12))))
    return sorted(out)


@pytest.mark.parametrize("n_channels", [1, 5, 90])  # 90: coded by a join rather than a CASE
@pytest.mark.parametrize("collapse", [True, False])
@pytest.mark.parametrize("lookback_minutes", [28, 602, None])  # multiples of the 7-minute clock: touches on the edge
def test_sorted_keys_and_window_functions_build_the_same_journeys(n_channels, collapse, lookback_minutes):
    from helpers.attribution import journeys
    from helpers.io import as_ibis

    rng = np.random.default_rng(n_channels * 7 + collapse + (lookback_minutes or 1))
    channels = [f"ch{i:02d}" for i in range(n_channels - 1)] + ["Ünïcode > ch"]
    t = as_ibis(messy_log(rng, 400, channels))
    kw = dict(channel="channel", collapse=collapse, half_life_us=3.6e9, value="value",
              lookback_us=lookback_minutes * 60 * 10**6 if lookback_minutes else 2**62)
    fast = journeys.build(t, ["buy"], **kw)
    slow = journeys.build_with_windows(t, ["buy"], **kw)
    assert fast.channels == slow.channels
    got, want = journey_rows(fast), journey_rows(slow)
    assert len(got) > 300 and any(r[1] and not r[3] for r in got)  # some conversions have no touch in reach
    assert any(len(r[3]) > 2 for r in got) or (n_channels == 1 and collapse)
    assert got == want


def test_keys_too_wide_to_pack_fall_back_to_window_functions(monkeypatch):
    from helpers.attribution import journeys

    ev = messy_log(np.random.default_rng(5), 300, list("ABCDE"))
    packed = attribute(ev, "buy", value="value", n_bootstrap=0)
    calls = []
    windows = journeys.build_with_windows
    monkeypatch.setattr(journeys, "KEY_LIMIT", 1000)
    monkeypatch.setattr(journeys, "build_with_windows", lambda *a, **k: calls.append(1) or windows(*a, **k))
    wide = attribute(ev, "buy", value="value", n_bootstrap=0)
    assert calls == [1]
    pd.testing.assert_frame_equal(packed.credit, wide.credit)
    pd.testing.assert_frame_equal(packed.value_credit, wide.value_credit)
    pd.testing.assert_frame_equal(packed.path_counts, wide.path_counts)


def test_people_of_one_kind_add_the_same_journeys_so_counting_kinds_gives_every_paths_counts():
    from helpers.attribution import _people_alike

    rng = np.random.default_rng(4)
    n = 5000  # journeys of ~3,000 people over 30 paths (few common): many people repeat someone else's journeys
    person_ids = np.array([f"p{i}" for i in rng.integers(0, 3000, n)], dtype=object)
    path_id = rng.integers(0, 30, n) ** 3 // 900
    converted = rng.random(n) < 0.3
    size, conv_of, null_of = _people_alike(person_ids, path_id, converted, 30)
    assert size.sum() == len(set(person_ids)) and len(size) < 0.5 * size.sum()
    np.testing.assert_allclose(conv_of @ size, np.bincount(path_id, weights=converted, minlength=30))
    np.testing.assert_allclose(null_of @ size, np.bincount(path_id, weights=~converted, minlength=30))
    # the same people in another row order: the same kinds, in the same order
    perm = rng.permutation(n)
    size2, conv2, _ = _people_alike(person_ids[perm], path_id[perm], converted[perm], 30)
    np.testing.assert_array_equal(size, size2)
    np.testing.assert_array_equal(conv_of.toarray(), conv2.toarray())
