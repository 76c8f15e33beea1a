"""data_quality: what the loading page reports about the events.

What was dropped and why, suspicious ids (NA-like spellings, ids differing
only by case or spaces), coverage of optional columns and properties.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import ibis
import pandas as pd

from helpers.io.backend import as_ibis
from helpers.io.schema import _LOAD_INFO_KEY, NA_SPELLINGS
from helpers.io.times import to_utc, utc_naive


@dataclass
class DataQualityReport:
    """What the loaded events contain and what loading removed.

    ``summary`` is the one table to show; the other attributes hold the
    detail behind it.
    """

    rows: int
    users: int
    first_timestamp: pd.Timestamp
    last_timestamp: pd.Timestamp
    rows_read: int | None
    duplicates_removed: int | None
    dropped: pd.DataFrame
    nulls: pd.DataFrame
    events_per_type: pd.DataFrame
    events_per_day: pd.DataFrame
    channels: pd.DataFrame | None
    single_event_users: int
    future_timestamps: int
    pre_2000_timestamps: int
    as_of: pd.Timestamp
    source: str | None = None
    warnings: list[str] = field(default_factory=list)
    na_like_ids: int = 0
    duplicates_kept: int = 0
    duplicate_examples: list[dict[str, str]] = field(default_factory=list)
    id_variants: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["key", "ids", "examples"]))
    users_if_normalized: int | None = None
    identity: dict[str, int] | None = None

    @property
    def summary(self) -> pd.DataFrame:
        """One row per check: ``check``, ``value``."""
        dropped = int(self.dropped["rows"].sum()) if len(self.dropped) else 0
        rows = [
            ("source", self.source or "(in memory)"),
            ("rows read", "n/a" if self.rows_read is None else f"{self.rows_read:,}"),
            ("exact duplicates removed", "n/a" if self.duplicates_removed is None else f"{self.duplicates_removed:,}"),
            *([("exact duplicates kept (drop_duplicates=False)", f"{self.duplicates_kept:,}")] if self.duplicates_kept else []),
            ("rows dropped by rules", f"{dropped:,}"
             + (" (" + "; ".join(f"{why}: {n:,}" for why, n in zip(self.dropped["reason"], self.dropped["rows"])) + ")"
                if dropped else "")),
            ("events", f"{self.rows:,}"),
            ("users", f"{self.users:,}"),
            ("event types", f"{len(self.events_per_type):,}"),
            ("first event", str(self.first_timestamp)),
            ("last event", str(self.last_timestamp)),
            ("days covered", f"{(self.last_timestamp - self.first_timestamp).days + 1:,}"),
            ("users with a single event", f"{self.single_event_users:,} ({self.single_event_users / max(self.users, 1):.1%})"),
            (f"timestamps after {self.as_of:%Y-%m-%d %H:%M} UTC", f"{self.future_timestamps:,}"),
            ("timestamps before 2000", f"{self.pre_2000_timestamps:,}"),
            *([("identity stitching", f"{self.identity['ids']:,} ids became {self.identity['persons']:,} persons; "
                f"{self.identity['events re-keyed']:,} events re-keyed; {self.identity['merges refused']:,} merges "
                "refused")] if self.identity else []),
            ("user ids spelled like a missing value", f"{self.na_like_ids:,} rows"),
            ("user ids differing only by case or spaces",
             f"{int(self.id_variants['ids'].sum()):,} ids that would be {len(self.id_variants):,} users"
             if len(self.id_variants) else "none"),
        ]
        rows += [(f"nulls in {col}", f"{n:,} ({share:.1%})")
                 for col, n, share in zip(self.nulls["column"], self.nulls["nulls"], self.nulls["share"]) if n]
        return pd.DataFrame(rows, columns=["check", "value"])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready facts for a report's index page (no user ids)."""
        return {
            "source": self.source, "rows": self.rows, "users": self.users,
            "first": self.first_timestamp.isoformat(), "last": self.last_timestamp.isoformat(),
            "rows_read": self.rows_read, "duplicates_removed": self.duplicates_removed,
            "dropped": dict(zip(self.dropped["reason"], self.dropped["rows"].astype(int).tolist())),
            "summary": self.summary.to_dict("records"), "warnings": list(self.warnings),
            "na_like_ids": self.na_like_ids, "users_if_normalized": self.users_if_normalized,
            "identity": self.identity,
        }

    def headline(self) -> str:
        """One sentence for a reader: size, span and what loading removed.

        Examples
        --------
        >>> from helpers.io import load_events
        >>> ev = load_events(pd.DataFrame({"user_id": ["u1", "u1", "u2"], "event": ["a", "a", "b"],
        ...                                "timestamp": ["2025-01-01", "2025-01-01", "2025-01-03"]}))
        >>> data_quality(ev, as_of="2025-02-01").headline()
        '2 events from 2 users over 3 days (2025-01-01 to 2025-01-03, UTC); 1 exact duplicate row removed; 2 users (100.0%) have a single event.'
        """
        days = (self.last_timestamp.normalize() - self.first_timestamp.normalize()).days + 1
        parts = [f"{self.rows:,} events from {self.users:,} users over {days:,} days "
                 f"({self.first_timestamp:%Y-%m-%d} to {self.last_timestamp:%Y-%m-%d}, UTC)"]
        if self.duplicates_removed:
            parts.append(f"{self.duplicates_removed:,} exact duplicate row{'s' if self.duplicates_removed != 1 else ''} removed")
        if self.duplicates_kept:
            parts.append(f"{self.duplicates_kept:,} duplicate rows were kept as real repeats (drop_duplicates=False)")
        dropped = int(self.dropped["rows"].sum()) if len(self.dropped) else 0
        if dropped:
            parts.append(f"{dropped:,} rows dropped by rules (" + ", ".join(
                f"{why}: {n:,}" for why, n in zip(self.dropped["reason"], self.dropped["rows"])) + ")")
        if self.identity:
            i = self.identity
            parts.append(f"{i['ids']:,} anonymous, device and user ids were stitched into {i['persons']:,} persons "
                         f"({i['events re-keyed']:,} events re-keyed, {i['merges refused']:,} merges refused)")
        parts.append(f"{self.single_event_users:,} users ({self.single_event_users / max(self.users, 1):.1%}) have a single event")
        return "; ".join(parts) + "."

    def activity_headline(self) -> str:
        """One sentence: how daily active users changed from the first weeks to the last, and the busiest day.

        Examples
        --------
        >>> from helpers.io import load_events
        >>> days = pd.date_range("2025-01-01", periods=60, freq="D")
        >>> ev = load_events(pd.DataFrame({"user_id": [f"u{i % (2 + i // 20)}" for i in range(60)], "event": "x",
        ...                                "timestamp": days}))
        >>> data_quality(ev, as_of="2025-06-01").activity_headline()
        'Daily active users stayed about level: 1.0 a day in the first 4 weeks and 1.0 in the last 4 (+0%); the busiest day was 2025-01-01 with 1 events.'
        """
        d = self.events_per_day
        if len(d) < 2:
            return f"The data covers {len(d)} day: too short to say how activity changes."
        window = min(28, len(d) // 2)  # four weeks at each end, or halves of a shorter span
        first, last = float(d["users"].head(window).mean()), float(d["users"].tail(window).mean())
        change = last / first - 1 if first else float("nan")
        trend = "grew" if change > 0.1 else ("fell" if change < -0.1 else "stayed about level")
        span = f"{window // 7} weeks" if window % 7 == 0 else f"{window} days"
        busiest = d.loc[d["events"].idxmax()]
        fmt = (lambda v: f"{v:,.0f}") if max(first, last) >= 10 else (lambda v: f"{v:,.1f}")
        return (f"Daily active users {trend}: {fmt(first)} a day in the first {span} and {fmt(last)} in the last "
                f"{span.split(' ', 1)[0]} ({change:+.0%}); the busiest day was {pd.Timestamp(busiest['date']):%Y-%m-%d} "
                f"with {int(busiest['events']):,} events.")

    def types_headline(self) -> str:
        """One sentence: the most common event, who does it, and how concentrated the event mix is.

        Examples
        --------
        >>> from helpers.io import load_events
        >>> ev = load_events(pd.DataFrame({"user_id": ["a", "a", "b", "b"], "event": ["view", "view", "view", "buy"],
        ...                                "timestamp": ["2025-01-01", "2025-01-02", "2025-01-02", "2025-01-03"]}))
        >>> data_quality(ev, as_of="2025-02-01").types_headline()
        'view is the most common of 2 event types: 75% of events, done by 100% of users; the top 3 make up 100%.'
        """
        t = self.events_per_type
        if t.empty:
            return "There are no events."
        top = t.iloc[0]
        return (f"{top['event']} is the most common of {len(t):,} event types: {top['share']:.0%} of events, done by "
                f"{top['users'] / max(self.users, 1):.0%} of users; the top 3 make up {t['share'].head(3).sum():.0%}.")

    def channels_headline(self) -> str:
        """One sentence: the channel with the most events and the one that reaches the most users."""
        c = self.channels
        if c is None or c.empty:
            return "The events have no channel, so this data cannot say which channels bring customers."
        by_events, by_users = c.loc[c["events"].idxmax()], c.loc[c["users"].idxmax()]
        text = f"{by_events['channel']} carries the most events ({by_events['events'] / c['events'].sum():.0%})"
        if by_users["channel"] != by_events["channel"]:
            return text + (f", while {by_users['channel']} reaches the most users ({int(by_users['users']):,}, "
                           f"{by_users['users'] / max(self.users, 1):.0%} of them).")
        return text + f" and reaches the most users ({by_users['users'] / max(self.users, 1):.0%} of them)."

    def identity_note(self) -> str:
        """A sentence on identity stitching: how many ids became how many persons, or why nothing was stitched."""
        i = self.identity
        if not i:
            return ("Each user id is taken as one person: the export has no anonymous or device id beside it to "
                    "stitch (or stitching was switched off).")
        text = (f"{i['ids']:,} ids (anonymous, device and user ids) belong to {i['persons']:,} persons; "
                f"{i['persons with several ids']:,} persons were seen under more than one id, and "
                f"{i['events re-keyed']:,} events (visits before signup or login) now carry their person's id.")
        if i["merges refused"]:
            text += (f" {i['merges refused']:,} merges were refused because they would have joined two identified "
                     "accounts (a shared device or a mistaken identify call); such a device stays with the person "
                     "first seen on it.")
        if i.get("person ids shared by two persons"):
            text += (f" {i['person ids shared by two persons']:,} anonymous persons have an id that reads like another "
                     "person's user id; they are counted as one user.")
        return text

    def _repr_html_(self) -> str:
        html = self.summary.to_html(index=False, border=0)
        if self.warnings:
            from html import escape  # warnings can quote values from the data

            html += "<ul>" + "".join(f"<li>{escape(w)}</li>" for w in self.warnings) + "</ul>"
        return html


def data_quality(
    events: pd.DataFrame | ibis.Table,
    *,
    load_info: Mapping[str, Any] | None = None,
    as_of: str | pd.Timestamp | None = None,
) -> DataQualityReport:
    """Profile a canonical event table: size, coverage, nulls and suspicious values.

    Counts rows, users, the date range, events per type and per day, channels
    (when there is a ``channel`` column), nulls per column, users with a
    single event, timestamps after ``as_of`` (default: now, the one check
    that must look at the clock) and before 2000; with the load record of
    :func:`load_events` (taken from ``events.attrs`` or ``load_info``), the
    duplicates removed and rows dropped per reason. Suspicious ids: rows
    whose user id spells a missing value (``na_like_ids``: "NA", "null"...),
    and ids equal but for case or surrounding spaces (``id_variants``: one
    row per would-be user with the ids and up to five of them as examples,
    largest first; ``users_if_normalized``). The examples are raw ids, for
    the analyst: the summary and the warnings show counts only.

    Examples
    --------
    >>> from helpers.io import load_events
    >>> ev = load_events(pd.DataFrame({"user_id": ["u1", "u1", "u2", None], "event": ["a", "b", "a", "a"],
    ...                                "timestamp": ["2025-01-01", "2025-01-02", "1999-05-01", "2025-01-01"]}))
    >>> q = data_quality(ev, as_of="2025-06-01")
    >>> q.rows, q.users, q.single_event_users, q.pre_2000_timestamps
    (3, 2, 1, 1)
    >>> q.dropped.to_dict("records")
    [{'reason': 'null user_id', 'rows': 1}]
    """
    info = load_info if load_info is not None else (events.attrs.get(_LOAD_INFO_KEY) if isinstance(events, pd.DataFrame) else None)
    t = as_ibis(events)
    as_of_ts = pd.Timestamp.now(tz="UTC") if as_of is None else to_utc(as_of)
    y2k = pd.Timestamp("2000-01-01", tz="UTC")

    totals = t.aggregate(
        rows=t.count(),
        users=t.user_id.nunique(),
        first=t.timestamp.min(),
        last=t.timestamp.max(),
        future=(t.timestamp > ibis.literal(as_of_ts.to_pydatetime())).sum(),
        pre_2000=(t.timestamp < ibis.literal(y2k.to_pydatetime())).sum(),
        na_like=t.user_id.isin(list(NA_SPELLINGS)).sum(),
        **{f"null__{c}": t[c].isnull().sum() for c in t.columns},
    ).execute().iloc[0]
    rows = int(totals["rows"])

    per_type = (
        t.group_by("event").aggregate(events=t.count(), users=t.user_id.nunique())
        .execute().sort_values(["events", "event"], ascending=[False, True], ignore_index=True)
    )
    per_type["share"] = per_type["events"] / rows
    day = utc_naive(t.timestamp).date().name("date")
    per_day = t.group_by(day).aggregate(events=t.count(), users=t.user_id.nunique()).execute()
    per_day["date"] = pd.to_datetime(per_day["date"])
    per_day = per_day.sort_values("date", ignore_index=True)
    channels = None
    if "channel" in t.columns:
        channels = (
            t.group_by("channel").aggregate(events=t.count(), users=t.user_id.nunique())
            .execute().sort_values(["events"], ascending=False, ignore_index=True)
        )
        channels["channel"] = channels["channel"].fillna("(none)")
        channels["share"] = channels["events"] / rows
    per_user = t.group_by("user_id").aggregate(n=t.count())
    single = int(per_user.filter(per_user.n == 1).count().execute())
    ids = t.select("user_id").distinct()
    keyed = ids.mutate(key=ids.user_id.strip().lower())
    variants = (keyed.group_by("key").aggregate(ids=keyed.count(), examples=keyed.user_id.collect())
                .filter(lambda g: g.ids > 1).execute())
    variants = variants.sort_values(["ids", "key"], ascending=[False, True], ignore_index=True)
    variants["examples"] = variants["examples"].map(lambda ids: sorted(ids)[:5])  # a handful of would-be users
    variants["ids"] = variants["ids"].astype("int64")

    nulls = pd.DataFrame({"column": list(t.columns), "nulls": [int(totals[f"null__{c}"]) for c in t.columns]})
    nulls["share"] = nulls["nulls"] / max(rows, 1)
    dropped_map = (info or {}).get("dropped", {})
    dropped = pd.DataFrame({"reason": list(dropped_map), "rows": [int(v) for v in dropped_map.values()]})

    report = DataQualityReport(
        rows=rows,
        users=int(totals["users"]),
        first_timestamp=pd.Timestamp(totals["first"]).tz_convert("UTC"),
        last_timestamp=pd.Timestamp(totals["last"]).tz_convert("UTC"),
        rows_read=(info or {}).get("rows_read"),
        duplicates_removed=(info or {}).get("duplicates_removed"),
        duplicates_kept=int((info or {}).get("duplicates_kept", 0)),
        duplicate_examples=list((info or {}).get("duplicate_examples", [])),
        dropped=dropped,
        nulls=nulls,
        events_per_type=per_type,
        events_per_day=per_day,
        channels=channels,
        single_event_users=single,
        future_timestamps=int(totals["future"]),
        pre_2000_timestamps=int(totals["pre_2000"]),
        as_of=as_of_ts,
        source=(info or {}).get("source"),
        identity=(info or {}).get("identity"),
        na_like_ids=int(totals["na_like"]),
        id_variants=variants,
        users_if_normalized=int(totals["users"]) - int((variants["ids"] - 1).sum()),
    )
    if report.future_timestamps:
        report.warnings.append(f"{report.future_timestamps:,} events are timestamped after {as_of_ts:%Y-%m-%d}: check clocks or time zones.")
    if report.pre_2000_timestamps:
        report.warnings.append(f"{report.pre_2000_timestamps:,} events are timestamped before 2000: often epoch zero or a wrong unit.")
    if report.duplicates_removed or report.duplicates_kept:
        n, done = ((report.duplicates_removed, "removed") if report.duplicates_removed
                   else (report.duplicates_kept, "kept as real repeats (drop_duplicates=False)"))
        shown = "; ".join(f"{e['event']} at {e['timestamp']}" for e in report.duplicate_examples[:3])
        report.warnings.append(f"{n:,} duplicate rows (rule: {(info or {}).get('duplicate_rule', 'equal in every column')}) "
                               f"were {done}, e.g. {shown}.")
    if report.na_like_ids:
        report.warnings.append(f"{report.na_like_ids:,} rows have a user id spelled like a missing value ('NA', "
                               "'null', 'None'...): kept as ids; check whether the export wrote missing ids that way.")
    if len(variants):
        report.warnings.append(f"{int(variants['ids'].sum()):,} user ids differ from another only by case or spaces "
                               f"({report.users:,} users, {report.users_if_normalized:,} if they were one): load with "
                               "normalize_ids=True to merge them.")
    if dropped_map:
        report.warnings.append("Rows dropped: " + "; ".join(f"{k}: {v:,}" for k, v in dropped_map.items()) + ".")
    return report
