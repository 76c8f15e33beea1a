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

Written in ibis: links and ids are aggregated on the backend and persons are
found by min-label propagation with pointer jumping over the link table (a
few rounds). Only the components that would hold more than the allowed
identified ids (shared devices: few) are resolved link by link in timestamp
order, in pandas.
"""

from __future__ import annotations

import uuid
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import ibis
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from helpers.io import EventDataError, to_utc_series

__all__ = ["ID_COLUMNS", "Stitched", "stitch_identities"]

ID_COLUMNS = ("anonymous_id", "device_id", "user_id")
_UTC = ibis.dtype("timestamp('UTC')")
_MAX_ROUNDS = 64  # pointer jumping halves distances each round: 64 rounds cover any component


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
    s = value.cast("string")
    return ibis.ifelse(s == "", ibis.null("string"), s)


def _combinations(t: ibis.Table, cols: Sequence[str], identified: str) -> tuple[ibis.Table, ibis.Value, ibis.Value]:
    """One pass over the events: each distinct combination of ids on a row, with its row count and first time,
    and the row's anchor (the id that keys it: its identified id, else its first id in ``cols`` order)."""
    order = [identified] + [c for c in cols if c != identified]

    def anchor(ids: dict[str, ibis.Value]) -> tuple[ibis.Value, ibis.Value]:
        return (ibis.cases(*[(ids[c].notnull(), c) for c in order], else_=ibis.null("string")),
                ibis.coalesce(*[ids[c] for c in order]))

    ids = {c: _text(t[c]) for c in cols}
    # Group on the ids alone (the anchor is a function of them): a narrower key than with the anchor in it.
    combos = t.group_by(**{f"_id_{i}": ids[c] for i, c in enumerate(cols)}).aggregate(
        rows=t.count(), ts=t.timestamp.min())
    a_col, a_id = anchor({c: combos[f"_id_{i}"] for i, c in enumerate(cols)})
    return combos.mutate(a_col=a_col, a_id=a_id).cache(), *anchor(ids)


def _links_table(combos: ibis.Table, cols: Sequence[str]) -> ibis.Table:
    """Links from each combination's other ids to its anchor, with the first time seen."""
    parts = []
    for i, c in enumerate(cols):
        part = combos.select(a_col=combos.a_col, a_id=combos.a_id, b_col=ibis.literal(c), b_id=combos[f"_id_{i}"],
                             ts=combos.ts.cast(_UTC))
        parts.append(part.filter(part.b_id.notnull() & (part.a_col != part.b_col)))
    return ibis.union(*parts) if len(parts) > 1 else parts[0]


def _materialize(expr: ibis.Table) -> ibis.Table:
    """The table computed now. On Spark a cached table keeps its whole lineage, which grows with every round of
    propagation until planning runs out of memory; a local checkpoint cuts it."""
    con = expr.get_backend()
    if con.name != "pyspark":
        return expr.cache()
    frame = con._session.sql(con.compile(expr)).localCheckpoint()  # ibis has no checkpoint of its own
    name = f"_stitch_{uuid.uuid4().hex}"
    frame.createOrReplaceTempView(name)
    return con.table(name)


def _components(edges: ibis.Table) -> ibis.Table:
    """(node, label): label = the smallest node of the node's connected component, by min-label propagation.

    Each round a node takes the smallest label among itself and its neighbours, then its label's label
    (pointer jumping). Labels only decrease, so an unchanged sum of labels means nothing changed.
    """
    both = _materialize(edges.select(u=edges.a, v=edges.b).union(edges.select(u=edges.b, v=edges.a)).distinct())
    labels = _materialize(both.group_by(node=both.u).aggregate(label=ibis.least(both.u.min(), both.v.min())))
    total = int(labels.label.sum().execute())
    for _ in range(_MAX_ROUNDS):
        nb = both.join(labels, both.v == labels.node).group_by(u=both.u).aggregate(m=labels.label.min())
        step = _materialize(labels.join(nb, labels.node == nb.u).select(node=labels.node,
                                                                        label=ibis.least(labels.label, nb.m)))
        hop = step.select(h_node=step.node, h_label=step.label)  # pointer jumping: take the label's label
        jumped = _materialize(step.join(hop, step.label == hop.h_node).select(
            node=step.node, label=ibis.least(step.label, hop.h_label)))
        now = int(jumped.label.sum().execute())
        if now == total:
            return jumped
        labels, total = jumped, now
    raise RuntimeError("identity stitching did not converge")  # cannot happen: labels only decrease


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
    link_rows = _links_table(combos, cols)
    if links is not None:
        link_rows = ibis.union(link_rows, _extra_links(links, cols, identified, position), distinct=False)
    edges_by_id = link_rows.group_by(["a_col", "a_id", "b_col", "b_id"]).aggregate(ts=link_rows.ts.min()).cache()
    # Rows per anchor id (null: rows without an id) in one pass; every id on a row is its anchor or a link's far
    # end, so anchors and links together know every id and when it was first seen.
    anchors = combos.group_by(["a_col", "a_id"]).aggregate(rows=combos.rows.sum(), first_seen=combos.ts.min()).cache()
    e = edges_by_id
    id_parts = [anchors.filter(anchors.a_id.notnull()).select(id_column=anchors.a_col, id=anchors.a_id,
                                                               first_seen=anchors.first_seen),
                e.select(id_column=e.b_col, id=e.b_id, first_seen=e.ts)]
    if links is not None:  # ids only the links mention may sit on the near end
        id_parts.append(e.select(id_column=e.a_col, id=e.a_id, first_seen=e.ts))
    all_ids = ibis.union(*id_parts, distinct=False)
    all_ids = all_ids.group_by(["id_column", "id"]).aggregate(first_seen=all_ids.first_seen.min())
    # Node numbers follow (column order, id text): every tie below is broken by them, whatever the row order.
    column_pos = ibis.cases(*[(all_ids.id_column == c, i) for i, c in enumerate(cols)], else_=len(cols))
    nodes = all_ids.mutate(node=ibis.row_number().over(order_by=[column_pos, all_ids.id]),
                           is_identified=all_ids.id_column == identified).cache()

    na = nodes.select(a_col=nodes.id_column, a_id=nodes.id, a=nodes.node)
    nb = nodes.select(b_col=nodes.id_column, b_id=nodes.id, b=nodes.node)
    edges = edges_by_id.join(na, ["a_col", "a_id"]).join(nb, ["b_col", "b_id"]).select("a", "b", "ts").cache()
    labels = _components(edges) if int(edges.count().execute()) else None

    # Per id from here: arrays indexed by node number (row_number: 0..n-1), no string sorting.
    table = nodes.to_pyarrow()
    n_nodes = table.num_rows
    row_of = np.empty(n_nodes, dtype=np.int64)  # node numbers are a permutation of 0..n-1 (row_number)
    row_of[table["node"].to_numpy().astype(np.int64)] = np.arange(n_nodes)
    table = table.take(row_of)
    node = np.arange(n_nodes, dtype=np.int64)
    columns_arr = table["id_column"].combine_chunks()
    is_identified = table["is_identified"].to_numpy()
    seen = pc.cast(table["first_seen"], pa.timestamp("ns", tz="UTC"))
    seen_ns = pc.fill_null(pc.cast(seen, pa.int64()), np.iinfo(np.int64).max).to_numpy()  # never seen: last
    ids = table["id"]
    group = node.copy()
    if labels is not None:
        lab = labels.to_pyarrow()
        group[lab["node"].to_numpy().astype(np.int64)] = lab["label"].to_numpy().astype(np.int64)
    counts = np.bincount(group, weights=is_identified, minlength=n_nodes)
    conflicted = counts > max_identified_per_person  # by group (a group is named by its smallest node)

    refused = pd.DataFrame(columns=["column_a", "id_a", "column_b", "id_b", "first_seen", "reason"])
    if conflicted.any():
        inside = node[conflicted[group]]
        mem = ibis.memtable(pd.DataFrame({"n": inside}))
        ce = edges.join(mem, edges.a == mem.n).select("a", "b", "ts").to_pyarrow().to_pandas()
        ce["ts"] = to_utc_series(ce["ts"])
        # time order, links without a time first, ties by the ids (through their node numbers)
        ce = ce.assign(_lo=np.minimum(ce["a"], ce["b"]), _hi=np.maximum(ce["a"], ce["b"]))
        ce = ce.sort_values(["ts", "_lo", "_hi"], na_position="first", kind="mergesort").reset_index(drop=True)
        roots, refused_pos = _greedy(ce, node[is_identified], max_identified_per_person)
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
    order = np.lexsort((node, seen_ns, ~is_identified, group))
    in_order = group[order]
    first_in = np.flatnonzero(np.r_[True, in_order[1:] != in_order[:-1]])  # sorted by group: where each begins
    heads = in_order[first_in]
    person_node = np.empty(n_nodes, dtype=np.int64)
    person_node[heads] = node[order][first_in]
    person_of = person_node[group]
    person_ids = ids.take(person_of)
    text = lambda arr: pd.arrays.ArrowStringArray(arr.cast("string") if arr.type != "string" else arr)  # noqa: E731
    identity_map = pd.DataFrame({"id": text(ids), "id_column": text(columns_arr), "person_id": text(person_ids),
                                 "first_seen": seen.to_pandas()})

    # Re-key every row through its anchor id.
    keyed = t.mutate(_acol=anchor_col, _aid=anchor_id)
    mapping = ibis.memtable(pa.table({"_acol": columns_arr, "_aid": ids, "_person": person_ids}))
    keyed = keyed.left_join(mapping, ["_acol", "_aid"])
    anchor_rows = anchors.left_join(na, [anchors.a_col == na.a_col, anchors.a_id == na.a_id]).select(
        anchors.rows, na.a).to_pyarrow().to_pandas()
    keyed_at = anchor_rows["a"].notna().to_numpy()
    a_nodes = anchor_rows["a"].to_numpy()[keyed_at].astype(np.int64)
    rows = anchor_rows["rows"].to_numpy()
    stats = {"no_id": int(rows[~keyed_at].sum()),
             "rekeyed": int(rows[keyed_at][(~is_identified[a_nodes]) | (person_of[a_nodes] != a_nodes)].sum())}

    if is_frame:
        persons = keyed.select("_row", "_person").to_pyarrow().to_pandas().sort_values("_row")
        out = events.copy(deep=False)
        out[identified] = pd.array(persons["_person"].to_numpy(), dtype="string[pyarrow]")
        no_id = out[identified].isna().to_numpy()
        if _drop_unkeyed and no_id.any():
            out = out.loc[~no_id].reset_index(drop=True)
        out.attrs.update(events.attrs)
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
    clash_with_identified = int(pc.sum(pc.is_in(named, value_set=ids.filter(pa.array(is_identified)))).as_py() or 0)
    collisions = clash_with_identified + len(named) - pc.count_distinct(named).as_py()
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


def _extra_links(links: pd.DataFrame, cols: Sequence[str], identified: str, position: dict[str, int]) -> ibis.Table:
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
    t = ibis.memtable(frame.reset_index(drop=True))
    return t.mutate(ts=t.ts.cast(_UTC))
