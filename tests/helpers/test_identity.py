"""helpers.identity: each sentence of the stitching rule, on hand-made logs, against an independent reference."""

from __future__ import annotations

import ibis
import numpy as np
import pandas as pd
import pytest

from helpers.funnel import compute_funnel
from helpers.identity import stitch_identities
from helpers.io import EventDataError


def at(day: int, hour: int = 0) -> pd.Timestamp:
    return pd.Timestamp("2025-01-01", tz="UTC") + pd.Timedelta(days=day, hours=hour)


def log(*rows) -> pd.DataFrame:
    """rows: (anonymous_id, user_id, event, day[, device_id])."""
    rows = [r + (None,) * (5 - len(r)) for r in rows]
    return pd.DataFrame({"anonymous_id": pd.array([r[0] for r in rows], dtype="string"),
                         "user_id": pd.array([r[1] for r in rows], dtype="string"),
                         "event": [r[2] for r in rows], "timestamp": [at(r[3]) for r in rows],
                         "device_id": pd.array([r[4] for r in rows], dtype="string")})


def persons(s) -> list[set[str]]:
    m = s.identity_map
    return sorted(({f"{c}:{i}" for c, i in zip(g["id_column"], g["id"])} for _, g in m.groupby("person_id")), key=min)


def test_the_four_identify_calls_give_alice_and_bob_with_one_refused_merge():
    links = pd.DataFrame({"user_id": ["Alice", "Alice", "Bob", "Alice"], "anonymous_id": ["a1", "a2", "b1", "b1"],
                          "timestamp": [at(1), at(2), at(3), at(4)]})
    ev = log(("a1", None, "page_view", 0), ("b1", None, "page_view", 5), ("a2", None, "cart", 6))
    s = stitch_identities(ev, links=links)
    assert persons(s) == [{"anonymous_id:a1", "anonymous_id:a2", "user_id:Alice"}, {"anonymous_id:b1", "user_id:Bob"}]
    assert s.measure("merges refused") == 1
    assert s.refused[["column_a", "id_a", "column_b", "id_b"]].values.tolist() == [["user_id", "Alice", "anonymous_id", "b1"]]
    assert s.events["user_id"].tolist() == ["Alice", "Bob", "Alice"]


def test_rows_with_two_ids_link_them_and_every_earlier_anonymous_event_is_rekeyed():
    ev = log(("d1", None, "ad_click", 0), ("d1", None, "page_view", 1), ("d1", "u1", "signup", 2),
             ("d2", None, "page_view", 3), ("d2", "u1", "login", 3), (None, "u1", "purchase", 4))
    s = stitch_identities(ev)
    assert s.events["user_id"].tolist() == ["u1"] * 6
    assert s.measure("events re-keyed") == 3 and s.measure("persons") == 1 and s.measure("ids") == 3


def test_an_anonymous_page_view_then_an_identified_purchase_is_one_converting_person():
    ev = log(("a9", None, "page_view", 0), ("a9", "c1", "purchase", 1))
    before = compute_funnel(ev.assign(user_id=ev["user_id"].fillna(ev["anonymous_id"])), ["page_view", "purchase"],
                            conversion_window="7D").table
    after = compute_funnel(stitch_identities(ev).events, ["page_view", "purchase"], conversion_window="7D").table
    assert before["users"].tolist() == [1, 0]  # unstitched: the visitor drops off, the buyer never visited
    assert after["users"].tolist() == [1, 1]


def test_a_shared_device_stays_with_its_first_person_and_the_second_keeps_their_identified_rows():
    ev = log(("lap", None, "page_view", 0), ("lap", "bob", "login", 1), ("lap", None, "page_view", 2),
             ("lap", "alice", "login", 3), ("lap", None, "page_view", 4), (None, "alice", "purchase", 5))
    s = stitch_identities(ev)
    assert s.events["user_id"].tolist() == ["bob", "bob", "bob", "alice", "bob", "alice"]
    assert s.measure("merges refused") == 1 and s.refused["id_b"].tolist() == ["lap"]
    s2 = stitch_identities(ev, max_identified_per_person=2)  # allowed: one person, named by the first identified id
    assert set(s2.events["user_id"]) == {"bob"} and s2.measure("merges refused") == 0


def test_refusals_follow_time_order_not_row_order():
    ev = log(("x", "late", "login", 9), ("x", "early", "login", 2), ("x", None, "page_view", 5))
    s = stitch_identities(ev)
    assert s.identity_map.set_index("id").loc["x", "person_id"] == "early"
    assert s.events["user_id"].tolist() == ["late", "early", "early"]


def test_the_person_id_of_an_anonymous_person_is_its_earliest_id_ties_by_column_order_then_text():
    ev = log(("a2", None, "page_view", 1, "d0"), ("a1", None, "page_view", 3, "d0"))
    s = stitch_identities(ev)
    assert set(s.events["user_id"]) == {"a2"}  # a2 first seen on day 1; d0 too, but anonymous_id comes first
    tie = log(("b", None, "x", 1), ("a", None, "x", 1, "dd"), ("b", None, "y", 2, "dd"))
    assert set(stitch_identities(tie).events["user_id"]) == {"a"}


def test_ids_are_compared_within_their_column_and_rows_without_any_id_are_dropped_and_counted():
    ev = log(("7", None, "page_view", 0), (None, "7", "purchase", 1), (None, None, "noise", 2))
    with pytest.warns(UserWarning, match="1 person id"):
        s = stitch_identities(ev)  # anonymous '7' and user '7' are two persons whose ids read alike
    assert s.measure("persons") == 2 and s.measure("person ids shared by two persons") == 1
    assert s.measure("rows without an id") == 1 and len(s.events) == 2


def test_a_row_keyed_by_its_first_id_when_a_link_between_anonymous_ids_is_refused():
    ev = log(("a", "p1", "login", 0), (None, "p2", "login", 1, "d"), ("a", None, "x", 2, "d"))
    s = stitch_identities(ev)
    assert s.events["user_id"].tolist() == ["p1", "p2", "p1"] and s.measure("merges refused") == 1


def test_shuffled_input_gives_the_same_map_and_the_same_person_per_row():
    rng = np.random.default_rng(5)
    n = 3000
    anon = np.char.add("a", rng.integers(0, 400, n).astype(str))
    user = np.where(rng.random(n) < 0.4, np.char.add("u", rng.integers(0, 150, n).astype(str)), None)
    ev = pd.DataFrame({"anonymous_id": anon, "user_id": pd.array(user, dtype="string"), "event": "e",
                       "timestamp": pd.Timestamp("2025-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 10**6, n), "s"),
                       "k": np.arange(n)})
    a = stitch_identities(ev)
    b = stitch_identities(ev.sample(frac=1, random_state=1).reset_index(drop=True))
    pd.testing.assert_frame_equal(a.identity_map, b.identity_map)
    pd.testing.assert_frame_equal(a.events.sort_values("k").reset_index(drop=True),
                                  b.events.sort_values("k").reset_index(drop=True))
    assert a.measure("merges refused") > 0  # the random log has shared anonymous ids


def reference(ev: pd.DataFrame, cols=("anonymous_id", "device_id", "user_id"), max_identified: int = 1) -> dict:
    """The rule written plainly: every link in time order, union-find with the refusal, person ids as stated."""
    links = []
    for row in ev.itertuples(index=False):
        ids = [(c, getattr(row, c)) for c in cols if c in ev.columns and pd.notna(getattr(row, c))]
        anchor = next((i for i in ids if i[0] == "user_id"), ids[0] if ids else None)
        links += [(row.timestamp, min(anchor, i), max(anchor, i)) for i in ids if i != anchor]
    first = {}
    for link in sorted(links):
        first.setdefault((link[1], link[2]), link[0])
    parent, members = {}, {}

    def find(x):
        parent.setdefault(x, x)
        members.setdefault(x, {x})
        while parent[x] != x:
            x = parent[x]
        return x

    for (a, b), _ in sorted(first.items(), key=lambda kv: (kv[1], kv[0])):
        ra, rb = find(a), find(b)
        if ra != rb:
            if len({m for m in members[ra] | members[rb] if m[0] == "user_id"}) > max_identified:
                continue
            parent[rb] = ra
            members[ra] |= members.pop(rb)
    return {m: r for r in {find(x) for x in list(parent)} for m in members[r]}


def test_agrees_with_a_plain_reference_on_random_logs():
    rng = np.random.default_rng(11)
    for trial in range(6):
        n = 400
        ev = pd.DataFrame({
            "anonymous_id": pd.array(np.where(rng.random(n) < 0.8, np.char.add("a", rng.integers(0, 60, n).astype(str)),
                                              None), dtype="string"),
            "device_id": pd.array(np.where(rng.random(n) < 0.3, np.char.add("d", rng.integers(0, 30, n).astype(str)),
                                           None), dtype="string"),
            "user_id": pd.array(np.where(rng.random(n) < 0.3, np.char.add("u", rng.integers(0, 25, n).astype(str)),
                                         None), dtype="string"),
            "event": "e",
            "timestamp": pd.Timestamp("2025-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 5000, n), "min")})
        ev = ev[ev[["anonymous_id", "device_id", "user_id"]].notna().any(axis=1)].reset_index(drop=True)
        max_identified = 1 + trial % 2  # one identified id per person re-keys by a shortcut; two take the map
        s = stitch_identities(ev, max_identified_per_person=max_identified)
        ref = reference(ev, max_identified=max_identified)
        got = {(c, i): p for c, i, p in zip(s.identity_map["id_column"], s.identity_map["id"], s.identity_map["person_id"])}
        # same partition of the linked ids into persons
        groups_ref = {}
        for node, root in ref.items():
            groups_ref.setdefault(root, set()).add(node)
        for members in groups_ref.values():
            assert len({got[m] for m in members}) == 1, (trial, members)
        assert len({got[m] for m in ref}) == len(groups_ref), trial
        # every row has the person of its anchor: its identified id, else its first id in column order
        anchor = [("user_id", u) if pd.notna(u) else ("anonymous_id", a) if pd.notna(a) else ("device_id", d)
                  for a, d, u in zip(ev["anonymous_id"], ev["device_id"], ev["user_id"])]
        assert s.events["user_id"].tolist() == [got[x] for x in anchor], trial
        # the same events as an ibis table (re-keyed on the backend, its own way): the same person per row
        numbered = ev.assign(event=[f"row{i}" for i in range(len(ev))])
        on_backend = stitch_identities(ibis.memtable(numbered), max_identified_per_person=max_identified).events
        persons_by_row = on_backend.execute().set_index("event")["user_id"]
        assert len(persons_by_row) == len(ev) and persons_by_row.index.is_unique, trial
        assert persons_by_row.loc[numbered["event"]].tolist() == [got[x] for x in anchor], trial


def test_ibis_input_gives_an_ibis_table_with_the_same_persons():
    ev = log(("d1", None, "page_view", 0), ("d1", "u1", "signup", 2), ("d2", None, "x", 3))
    s = stitch_identities(ibis.memtable(ev))
    out = s.events.execute()
    assert isinstance(s.events, ibis.Table) and list(out.columns) == list(ev.columns)
    assert sorted(out["user_id"]) == ["d2", "u1", "u1"]
    # empty strings are no id; a row without any id is dropped, on the backend too
    bare = log(("d1", "", "page_view", 0), ("d1", "u1", "signup", 2), ("", None, "x", 3), ("d3", "", "y", 4))
    assert sorted(stitch_identities(ibis.memtable(bare)).events.execute()["user_id"]) == ["d3", "u1", "u1"]
    pd.testing.assert_frame_equal(s.identity_map, stitch_identities(ev).identity_map)


def test_bad_arguments_say_what_is_wrong():
    ev = log(("a", "u", "x", 0))
    with pytest.raises(EventDataError, match="identified column 'account'"):
        stitch_identities(ev, identified="account")
    with pytest.raises(ValueError, match="max_identified_per_person"):
        stitch_identities(ev, max_identified_per_person=0)
    with pytest.raises(EventDataError, match="exactly two of the id columns"):
        stitch_identities(ev, links=pd.DataFrame({"user_id": ["u"]}))
