"""Identity stitching: one person across anonymous ids, devices and logins.

A journey starts anonymous (an ad click, the pricing page, a cart on one
device) and continues identified after signup or login, often on another
device. Stitching gives every event the id of the *person*, so that a funnel
across the signup boundary, a path to purchase and the channel that brought
someone see one person, not an anonymous user who "drops off" and an
identified one who "appears from nowhere".

Rules (:func:`stitch_identities`):

- An id is a value in one of ``id_columns`` (those present; default
  ``anonymous_id``, ``device_id``, ``user_id``); ids are compared within their
  column, so the same text in two columns is two ids. Empty strings are no id.
- Links: an event row carrying two or more ids links them (each of its other
  ids to its identified id, or to its first id in ``id_columns`` order when it
  has no identified id). An optional ``links`` table (alias or identify calls:
  two id columns, optionally a ``timestamp``) adds links; a link without a
  time counts as before every event.
- Links are applied in timestamp order (a link's time is the first time it
  was seen; ties by the ids). A link that would put more than
  ``max_identified_per_person`` distinct identified ids (values of
  ``identified``) into one person is refused and reported, and the ids stay
  with the persons they had: a shared laptop whose anonymous id was first
  linked to Bob stays Bob's when Alice later logs in on it.
- The person id is the person's identified id (the first seen, when several
  are allowed), else its earliest anonymous id (first seen; ties by column
  order, then text).
- Every event is re-keyed: a row belongs to the person of its identified id
  when it has one, else to the person of its first id in ``id_columns``
  order, before and after the first login alike. A row with no id at all is
  dropped and counted.
- The result does not depend on the order of the input rows.

Event-level work is ibis, on the backend: one pass groups the events into
their distinct combinations of ids, each column's ids come back in text
order with their first time seen (an id's number is its position), and the
re-keying runs there too: rows with an identified id keep it, only the others
join the map of anonymous ids. The
per-id work is in NumPy on the driver, because it is as big as the number of
ids, not of events: persons are the connected components of the link graph
(scipy), and only the components that would hold more than the allowed
identified ids (shared devices: few) are resolved link by link in timestamp
order. When a person holds one identified id, that id is already the person
id, so only rows without one go through the re-keying map.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import ibis
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp
from scipy.sparse import csgraph

from helpers.io import EventDataError, to_utc_series

__all__ = ["ID_COLUMNS", "Stitched", "stitch_identities"]

ID_COLUMNS = ("anonymous_id", "device_id", "user_id")


@dataclass
class Stitched:
    """The re-keyed events and how they were stitched.

    ``events``: the events with ``user_id`` the person id (a DataFrame for a
    DataFrame, an ibis table for an ibis table). ``identity_map``: one row per
    id (in column order, then by id): ``id``, ``id_column``, ``person_id``, ``first_seen``. ``report``: tidy
    ``measure``, ``value`` rows (persons, ids, ids per person, persons merged
    across ids, events re-keyed, rows without an id, merges refused).
    ``refused``: each refused link (its two ids and columns, when it was first
    seen, and why); it holds raw ids, so it is for the analyst, never a report.
    """

    events: Any
    identity_map: pd.DataFrame
    report: pd.DataFrame
    refused: pd.DataFrame

    def measure(self, name: str) -> float:
        """One value of ``report`` by its measure name."""
        return float(self.report.set_index("measure").loc[name, "value"])

    def headline(self) -> str:
        """One sentence for the loading page (counts only, no ids)."""
        r = self.report.set_index("measure")["value"]
        refused = int(r["merges refused"])
        text = (f"Identity stitching: {int(r['ids']):,} ids became {int(r['persons']):,} persons "
                f"({int(r['persons with several ids']):,} seen under more than one id); "
                f"{int(r['events re-keyed']):,} events were given their person's id.")
        if refused:
            text += (f" {refused:,} merge(s) were refused because they would have put more than "
                     f"{int(r['max identified per person'])} identified id(s) into one person (a shared device "
                     "or a mistaken identify call); those ids stay with the person they were first linked to.")
        if int(r["rows without an id"]):
            text += f" {int(r['rows without an id']):,} rows had no id at all and were dropped."
        return text


def _text(value: ibis.Value) -> ibis.Value:
    s = value if value.type().is_string() else value.cast("string")
    return s.nullif("")


def _combinations(t: ibis.Table, cols: Sequence[str], identified: str) -> tuple[ibis.Table, ibis.Value, ibis.Value]:
    """One pass over the events: each distinct combination of ids on a row, with its row count and first time;
    and the row's anchor (the id that keys it: its identified id, else its first id in ``cols`` order)."""
    order = [identified] + [c for c in cols if c != identified]
    ids = {c: _text(t[c]) for c in cols}
    combos = t.group_by(**{f"_id_{i}": ids[c] for i, c in enumerate(cols)}).aggregate(
        rows=t.count(), ts=t.timestamp.min())
    anchor_col = ibis.cases(*[(ids[c].notnull(), c) for c in order], else_=ibis.null("string"))
    return combos, anchor_col, ibis.coalesce(*[ids[c] for c in order])


def _greedy(edges: pd.DataFrame, identified_nodes: np.ndarray, max_identified: int) -> tuple[dict[int, int], list[int]]:
    """Union-find over ``edges`` (a, b, ts) in timestamp order, refusing a union that would hold more than
    ``max_identified`` identified nodes. Returns node -> root and the positions of the refused edges.

    Only the edges of components that hold too many identified ids come here (shared devices: few), so the
    loop runs over a small table, link by link, as the rule requires.
    """
    parent: dict[int, int] = {}
    idents: dict[int, set[int]] = {}
    marked = set(identified_nodes.tolist())

    def find(x: int) -> int:
        parent.setdefault(x, x)
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:  # path compression
            parent[x], x = root, parent[x]
        return root

    refused = []
    for pos, a, b in zip(range(len(edges)), edges["a"].to_numpy(), edges["b"].to_numpy()):
        ra, rb = find(int(a)), find(int(b))
        if ra == rb:
            continue
        ia = idents.get(ra, {ra} & marked)
        ib = idents.get(rb, {rb} & marked)
        if len(ia | ib) > max_identified:
            refused.append(pos)
            continue
        parent[rb] = ra
        idents[ra] = ia | ib
        idents.pop(rb, None)
    return {n: find(n) for n in list(parent)}, refused


def stitch_identities(
    events: pd.DataFrame | ibis.Table,
    id_columns: Sequence[str] = ID_COLUMNS,
    *,
    identified: str = "user_id",
    links: pd.DataFrame | None = None,
    max_identified_per_person: int = 1,
    _drop_unkeyed: bool = True,
) -> Stitched:
    """Give every event the id of the person behind it (the rules are in the module docstring).

    :func:`helpers.io.load_events` calls this on its own (``stitch=``) for the
    presets that carry several ids and for exports with ``anonymous_id`` or
    ``device_id`` columns.

    Parameters
    ----------
    events
        Events with a ``timestamp`` and the id columns; ``user_id`` (or
        ``identified``) may be null on anonymous rows.
    id_columns
        The id columns, in the order that decides which id keys a row without
        an identified id; those absent from ``events`` are ignored.
    identified
        The column of identified (logged-in) ids.
    links
        Extra links: a table with two of the id columns (one link per row) and
        optionally ``timestamp``.
    max_identified_per_person
        How many distinct identified ids one person may hold (1: a person is
        one account).

    Returns
    -------
    Stitched
        ``events``, ``identity_map``, ``report``, ``refused``.

    Examples
    --------
    >>> ev = pd.DataFrame({"anonymous_id": ["a1", "a1", None], "user_id": [None, "alice", "alice"],
    ...                    "event": ["page_view", "signup", "purchase"],
    ...                    "timestamp": pd.to_datetime(["2025-01-01", "2025-01-02", "2025-01-03"], utc=True)})
    >>> s = stitch_identities(ev)
    >>> s.events["user_id"].tolist()
    ['alice', 'alice', 'alice']
    >>> s.identity_map[["id_column", "id", "person_id"]].values.tolist()
    [['anonymous_id', 'a1', 'alice'], ['user_id', 'alice', 'alice']]
    """
    if not isinstance(max_identified_per_person, (int, np.integer)) or max_identified_per_person < 1:
        raise ValueError(f"max_identified_per_person must be an integer of at least 1, got {max_identified_per_person!r}.")
    is_frame = isinstance(events, pd.DataFrame)
    if not is_frame and not isinstance(events, ibis.Table):
        raise TypeError(f"events must be a pandas DataFrame or an ibis table, got {type(events).__name__}.")
    columns = list(events.columns)
    cols = [c for c in dict.fromkeys(id_columns) if c in columns]
    if identified not in columns:
        raise EventDataError(f"stitch_identities: the identified column {identified!r} is not in the events "
                             f"(columns: {', '.join(map(str, columns))}).")
    if identified not in cols:
        cols.append(identified)
    if "timestamp" not in columns:
        raise EventDataError("stitch_identities: the events need a 'timestamp' column (links apply in time order).")
    position = {c: i for i, c in enumerate(cols)}

    if is_frame:
        frame = events.assign(_row=np.arange(len(events), dtype=np.int64))
        t = ibis.memtable(frame[["_row", "timestamp", *cols]])
    else:
        t = events
    combos, anchor_col, anchor_id = _combinations(t, cols, identified)
    k = len(cols)
    extra = None
    if links is not None:
        table = _extra_links(links, cols, identified, position)
        extra = {name: table[name].combine_chunks() for name in table.column_names}

    # Node numbers follow (column order, id text): every tie below is broken by them, whatever the row order.
    # The backend numbers each column's ids and codes the combinations (string work there is parallel);
    # from here on, per id and per combination of ids (small beside the events), it is Arrow and NumPy.
    combos = combos.cache()
    numbered, coded = [], combos
    for i, c in enumerate(cols):
        ids_i = combos.filter(combos[f"_id_{i}"].notnull()).select(id=combos[f"_id_{i}"], ts=combos.ts)
        if extra is not None:  # ids the links table names, at the links' times (ids only it mentions, too)
            here = [pc.equal(extra[f"{end}_col"], c) for end in "ab"]
            named = pa.table({"id": pa.concat_arrays([extra[f"{end}_id"].filter(h) for end, h in zip("ab", here)]),
                              "ts": pa.concat_arrays([extra["ts"].filter(h) for h in here])})
            if named.num_rows:
                m = ibis.memtable(named)
                ids_i = ids_i.union(m.select(id=m.id, ts=m.ts.cast(combos.ts.type())), distinct=False)
        # When each id was first seen: the first time of a combination holding it, or of a link naming it.
        ids_i = ids_i.group_by("id").aggregate(first_seen=ids_i.ts.min())
        # Fetched in text order, an id's node number is its position (cheaper than numbering on the backend
        # and fetching the numbers); the combinations are coded against the fetched ids.
        got = ids_i.order_by("id").to_pyarrow()
        numbered.append(got)
        first_node = sum(n.num_rows for n in numbered[:-1])  # nodes are numbered across columns, in order
        code = pa.table({f"_id_{i}": got["id"],
                         f"_n_{i}": pa.array(np.arange(first_node, first_node + got.num_rows, dtype=np.int64))})
        coded = coded.left_join(ibis.memtable(code), f"_id_{i}")
    ct = coded.select(*[coded[f"_n_{i}"].fill_null(-1).name(f"_n_{i}") for i in range(k)], "rows", "ts").to_pyarrow()
    uniques = [pc.cast(got["id"].combine_chunks(), pa.string()) for got in numbered]
    seen_parts = [pc.cast(got["first_seen"].combine_chunks(), pa.timestamp("ns", tz="UTC")) for got in numbered]
    offsets = np.concatenate([[0], np.cumsum([len(u) for u in uniques])]).astype(np.int64)
    n_nodes = int(offsets[-1])
    combo_ts = ct["ts"].combine_chunks()
    if extra is not None:  # link times of both kinds in one column
        combo_ts = pc.cast(combo_ts, pa.timestamp("ns", tz="UTC"))
    combo_nodes = [ct[f"_n_{i}"].combine_chunks().to_numpy() for i in range(k)]  # -1: no id of that column
    seen = pa.concat_arrays(seen_parts) if seen_parts else pa.array([], pa.timestamp("ns", tz="UTC"))
    # never seen (only links without a time): last
    seen_ns = pc.fill_null(pc.cast(seen, pa.int64()), np.iinfo(np.int64).max).to_numpy()

    def node_of(i: int, values: pa.Array) -> np.ndarray:
        """Node numbers of ids of column ``i`` (-1 for no id): for the links table, small."""
        pos = pc.index_in(values, value_set=uniques[i])
        return pc.fill_null(pc.add(pos, offsets[i]), -1).to_numpy(zero_copy_only=False).astype(np.int64)

    # The row's anchor: its identified id, else its first id in column order.
    anchor = np.full(len(ct), -1, dtype=np.int64)
    for i in reversed([position[identified]] + [j for j in range(k) if cols[j] != identified]):
        anchor = np.where(combo_nodes[i] >= 0, combo_nodes[i], anchor)
    # Links: from each combination's other ids to its anchor, and the links table's; first time seen.
    link_a, link_b, link_ts = [], [], []
    for i in range(k):
        other = (combo_nodes[i] >= 0) & (combo_nodes[i] != anchor)
        link_a.append(anchor[other])
        link_b.append(combo_nodes[i][other])
        link_ts.append(combo_ts.filter(pa.array(other)))
    if extra is not None:
        for end, out_list in (("a", link_a), ("b", link_b)):
            nodes_end = np.full(len(extra["a_id"]), -1, dtype=np.int64)
            for i, c in enumerate(cols):
                here = pc.equal(extra[f"{end}_col"], c).to_numpy(zero_copy_only=False)
                nodes_end[here] = node_of(i, extra[f"{end}_id"].filter(pa.array(here)))
            out_list.append(nodes_end)
        link_ts.append(pc.cast(extra["ts"], pa.timestamp("ns", tz="UTC")))
    edges = pa.table({"a": np.concatenate(link_a), "b": np.concatenate(link_b), "ts_min": pa.concat_arrays(link_ts)})
    if k > 2 or extra is not None:  # two ids per row and no links table: each pair is one combination already
        g = edges.group_by(["a", "b"]).aggregate([("ts_min", "min")])
        edges = pa.table({"a": g["a"], "b": g["b"], "ts_min": g["ts_min_min"]})
    edge_a, edge_b = edges["a"].to_numpy(), edges["b"].to_numpy()

    node = np.arange(n_nodes, dtype=np.int64)
    ids = pa.concat_arrays(uniques) if uniques else pa.array([], pa.string())
    sizes = np.diff(offsets)
    columns_arr = pa.DictionaryArray.from_arrays(pa.array(np.repeat(np.arange(k, dtype=np.int32), sizes)),
                                                 pa.array(cols, pa.string()))
    is_identified = np.repeat(np.array([c == identified for c in cols]), sizes)
    group = node.copy()
    if len(edge_a):
        # Connected components; each is named by its smallest node (the refusal below moves nodes to roots).
        graph = sp.coo_matrix((np.ones(len(edge_a), dtype=np.int8), (edge_a, edge_b)), shape=(n_nodes, n_nodes))
        _, label = csgraph.connected_components(graph, directed=False)
        smallest = np.full(label.max() + 1, n_nodes, dtype=np.int64)
        np.minimum.at(smallest, label, node)
        group = smallest[label]
    counts = np.bincount(group, weights=is_identified, minlength=n_nodes)
    conflicted = counts > max_identified_per_person  # by group (a group is named by its smallest node)

    refused = pd.DataFrame(columns=["column_a", "id_a", "column_b", "id_b", "first_seen", "reason"])
    if conflicted.any():
        inside = conflicted[group[edge_a]]
        ce = pd.DataFrame({"a": edge_a[inside], "b": edge_b[inside],
                           "ts": to_utc_series(edges["ts_min"].filter(pa.array(inside)).to_pandas())})
        # time order, links without a time first, ties by the ids (through their node numbers)
        ce = ce.assign(_lo=np.minimum(ce["a"], ce["b"]), _hi=np.maximum(ce["a"], ce["b"]))
        ce = ce.sort_values(["ts", "_lo", "_hi"], na_position="first", kind="mergesort").reset_index(drop=True)
        roots, refused_pos = _greedy(ce, node[is_identified & conflicted[group]], max_identified_per_person)
        moved = np.fromiter(roots.keys(), dtype=np.int64, count=len(roots))
        group[moved] = np.fromiter(roots.values(), dtype=np.int64, count=len(roots))
        bad = ce.iloc[refused_pos]
        a_n, b_n = bad["a"].to_numpy(np.int64), bad["b"].to_numpy(np.int64)
        refused = pd.DataFrame({
            "column_a": columns_arr.take(a_n).to_pylist(), "id_a": ids.take(a_n).to_pylist(),
            "column_b": columns_arr.take(b_n).to_pylist(), "id_b": ids.take(b_n).to_pylist(),
            "first_seen": bad["ts"].to_numpy(),
            "reason": f"would put more than {max_identified_per_person} identified id(s) into one person",
        })

    # The person id: the first identified id, else the earliest anonymous id (ties: column order, then text,
    # which is node order).
    # Per group, a minimum in three steps (no sort): identified if any, then first seen, then node number.
    big = np.iinfo(np.int64).max
    has_identified = np.zeros(n_nodes, dtype=bool)
    has_identified[group[is_identified]] = True
    eligible = is_identified | ~has_identified[group]
    first_seen_of = np.full(n_nodes, big, dtype=np.int64)
    np.minimum.at(first_seen_of, group[eligible], seen_ns[eligible])
    eligible &= seen_ns == first_seen_of[group]
    person_node = np.full(n_nodes, big, dtype=np.int64)
    np.minimum.at(person_node, group[eligible], node[eligible])
    heads = np.flatnonzero(person_node != big)  # the groups
    person_of = person_node[group]
    person_ids = ids.take(person_of)
    text = lambda arr: pd.arrays.ArrowStringArray(arr.cast("string") if arr.type != "string" else arr)  # noqa: E731
    identity_map = pd.DataFrame({"id": text(ids), "id_column": text(columns_arr), "person_id": text(person_ids),
                                 "first_seen": seen.to_pandas()})

    rows = ct["rows"].to_numpy()
    keyed_at = anchor >= 0
    a_nodes = anchor[keyed_at]
    stats = {"no_id": int(rows[~keyed_at].sum()),
             "rekeyed": int(rows[keyed_at][(~is_identified[a_nodes]) | (person_of[a_nodes] != a_nodes)].sum())}

    # Re-key every row through its anchor id.
    if max_identified_per_person == 1:
        # One identified id per person: it is its person's id, so only the rows without one need the map.
        anonymous_row = _text(t[identified]).isnull()
        others = {c: _text(t[c]) for c in cols if c != identified}
        no_key = ibis.null("string")
        key_col = ibis.cases(*[(anonymous_row & v.notnull(), c) for c, v in others.items()], else_=no_key) \
            if others else no_key
        first_other = ibis.coalesce(*others.values()) if len(others) > 1 else next(iter(others.values()), no_key)
        key_id = ibis.ifelse(anonymous_row, first_other, no_key)
        map_rows = ~is_identified
    else:
        key_col, key_id, map_rows = anchor_col, anchor_id, np.ones(n_nodes, dtype=bool)
    # The map's rows are whole columns' blocks of nodes: slices, not copies.
    mapped = [i for i in range(k) if sizes[i] and map_rows[offsets[i]]]
    keys = ["_aid"] if len(mapped) <= 1 else ["_acol", "_aid"]  # ids of one column: no column to match
    parts = {"_aid": [ids.slice(offsets[i], sizes[i]) for i in mapped],
             "_person": [person_ids.slice(offsets[i], sizes[i]) for i in mapped]}
    if "_acol" in keys:
        parts["_acol"] = [pa.array(np.full(sizes[i], cols[i], dtype=object), pa.string()) for i in mapped]
    mapping = ibis.memtable(pa.table({name: pa.chunked_array(parts[name], pa.string()) for name in keys + ["_person"]}))
    keyed = t.mutate(_acol=key_col, _aid=key_id).left_join(mapping, keys)
    if max_identified_per_person == 1:
        keyed = keyed.mutate(_person=ibis.coalesce(_text(keyed[identified]), keyed._person))
    if is_frame:
        persons = keyed.select("_row", "_person").to_pyarrow().to_pandas().sort_values("_row")
        out = events.copy(deep=False)
        out[identified] = pd.array(persons["_person"].to_numpy(), dtype="string[pyarrow]")
        no_id = out[identified].isna().to_numpy()
        if _drop_unkeyed and no_id.any():
            out = out.loc[~no_id].reset_index(drop=True)
        out.attrs.update(events.attrs)
    elif max_identified_per_person == 1:
        # Two scans in one union rather than one join over every row: the identified rows keep their id as
        # it is (no join; on DuckDB about 0.2 s less of 0.7 s on 13M events), only the others probe the map.
        own = _text(t[identified])
        out = t.filter(own.notnull()).mutate(**{identified: own}).select(*columns)
        if mapped:
            anonymous = t.filter(anonymous_row).mutate(_acol=key_col, _aid=key_id).inner_join(mapping, keys)
            out = out.union(anonymous.mutate(**{identified: anonymous._person}).select(*columns), distinct=False)
    else:
        out = keyed.filter(keyed._person.notnull()).mutate(**{identified: keyed._person}).drop(
            "_acol", "_aid", "_person")
        out = out.select(*columns)

    ids_per_person = np.bincount(group, minlength=n_nodes)
    ids_per_person = ids_per_person[ids_per_person > 0]
    # An anonymous person named by an id whose text is also another person's id: downstream they would be one.
    # Only a person named by an anonymous id can share its name: identified ids are unique in their column.
    anonymous_heads = person_node[heads][~is_identified[person_node[heads]]]
    named = ids.take(anonymous_heads)
    # Persons named by an anonymous id whose text is also an identified id (usually none) clash.
    clash_with_identified = 0
    if len(named) and sizes[position[identified]]:
        here = ibis.memtable(pa.table({"id": named}))
        ident = ibis.memtable(pa.table({"_same": uniques[position[identified]]}))
        clash_with_identified = int(here.semi_join(ident, here.id == ident._same).count().execute())
    # ids are distinct within their column: names can repeat only across columns
    head_columns = np.searchsorted(offsets, anonymous_heads, side="right") - 1
    repeated = 0 if len(np.unique(head_columns)) <= 1 else len(named) - pc.count_distinct(named).as_py()
    collisions = clash_with_identified + repeated
    if collisions:
        warnings.warn(f"stitch_identities: {collisions} person id(s) are shared by two persons (an anonymous id "
                      "with the same text as an identified id); analyses will count each pair as one user.",
                      UserWarning, stacklevel=2)
    report = pd.DataFrame({"measure": [
        "ids", "persons", "persons with several ids", "max ids per person", "events re-keyed", "rows without an id",
        "merges refused", "person ids shared by two persons", "max identified per person"], "value": [
        len(identity_map), len(ids_per_person), int((ids_per_person > 1).sum()),
        int(ids_per_person.max()) if len(ids_per_person) else 0, int(stats["rekeyed"] or 0), int(stats["no_id"] or 0),
        len(refused), collisions, int(max_identified_per_person)]})
    return Stitched(out, identity_map, report, refused)


def _extra_links(links: pd.DataFrame, cols: Sequence[str], identified: str, position: dict[str, int]) -> pa.Table:
    """A links table (two id columns, optionally ``timestamp``) as link rows like those of the events."""
    if not isinstance(links, pd.DataFrame):
        raise TypeError(f"links must be a pandas DataFrame, got {type(links).__name__}.")
    pair = [c for c in links.columns if c in cols]
    if len(pair) != 2:
        raise EventDataError(f"links: a links table needs exactly two of the id columns {', '.join(cols)} "
                             f"(it has {', '.join(map(str, links.columns))}).")
    first, second = sorted(pair, key=lambda c: (c != identified, position[c]))
    ts = to_utc_series(links["timestamp"]) if "timestamp" in links.columns else pd.Series(
        pd.NaT, index=links.index, dtype="datetime64[ns, UTC]")
    frame = pd.DataFrame({"a_col": first, "a_id": links[first].astype("string"), "b_col": second,
                          "b_id": links[second].astype("string"), "ts": ts})
    frame = frame[frame["a_id"].notna() & frame["b_id"].notna() & (frame["a_id"] != "") & (frame["b_id"] != "")]
    return pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False).cast(pa.schema([
        ("a_col", pa.string()), ("a_id", pa.string()), ("b_col", pa.string()), ("b_id", pa.string()),
        ("ts", pa.timestamp("ns", tz="UTC"))]))
